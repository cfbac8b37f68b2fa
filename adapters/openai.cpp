#include "adapters/openai.hpp"

#include "adapters/json_fields.hpp"
#include "core/json_scan.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cstring>

namespace tollgate::adapters::openai {
namespace json = boost::json;
namespace {

struct endpoint_names {
  endpoint kind;
  std::string_view route;
  std::string_view below_root;
};

constexpr std::array<endpoint_names, 3> endpoints = {{
    {endpoint::chat_completions, "/v1/chat/completions", "/chat/completions"},
    {endpoint::completions, "/v1/completions", "/completions"},
    {endpoint::embeddings, "/v1/embeddings", "/embeddings"},
}};

request_error invalid(std::string message, std::string param = {}) {
  return request_error{std::move(message), std::move(param)};
}

std::optional<request_error> require_member(const json::object& body, std::string_view name) {
  auto it = body.find(name);
  if (it == body.end() || it->value().is_null())
    return invalid("Missing required parameter: '" + std::string(name) + "'.", std::string(name));
  return std::nullopt;
}

std::optional<request_error> check_messages(const json::object& body) {
  if (auto missing = require_member(body, "messages")) return missing;
  const auto& messages = body.at("messages");
  if (!messages.is_array()) return invalid("Invalid type for 'messages': expected an array.", "messages");
  const auto& list = messages.get_array();
  if (list.empty()) return invalid("Invalid 'messages': empty array. Expected at least one message.", "messages");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto* message = list[i].if_object();
    const json::value* role = message ? message->if_contains("role") : nullptr;
    if (!role || !role->is_string()) {
      return invalid("Invalid 'messages[" + std::to_string(i) + "]': each message must be an object with a "
                     "string 'role'.", "messages[" + std::to_string(i) + "]");
    }
  }
  return std::nullopt;
}

// Text a prompt contributes: strings anywhere under the given value (message contents,
// content parts, prompt strings or arrays, embedding inputs).
std::uint64_t text_bytes(const json::value& value) {
  switch (value.kind()) {
    case json::kind::string:
      return value.get_string().size();
    case json::kind::array: {
      std::uint64_t total = 0;
      for (const auto& item : value.get_array()) total += text_bytes(item);
      return total;
    }
    case json::kind::object: {
      std::uint64_t total = 0;
      for (const auto& member : value.get_object()) total += text_bytes(member.value());
      return total;
    }
    default:
      return 0;
  }
}

std::uint64_t tokens_for_bytes(std::uint64_t bytes) { return (bytes + 3) / 4; }

// Whether the chunk has a `"content":"`, `"text":"` or `"arguments":"` member with at least one
// character of value. One memchr pass over the colons (a few per chunk) instead of a search per
// name, which kept stopping at every quote.
bool delivers_output(std::string_view data) {
  const char* begin = data.data();
  const char* end = begin + data.size();
  for (const char* colon = begin;
       (colon = static_cast<const char*>(std::memchr(colon, ':', static_cast<std::size_t>(end - colon)))); ++colon) {
    // `"name":"v`: a quote on both sides of the colon, a value that is not empty.
    if (colon - begin < 6 || end - colon < 3 || colon[-1] != '"' || colon[1] != '"' || colon[2] == '"') continue;
    std::string_view key(begin, static_cast<std::size_t>(colon - 1 - begin));
    if (key.ends_with("\"content") || key.ends_with("\"text") || key.ends_with("\"arguments")) return true;
  }
  return false;
}
}  // namespace

std::optional<endpoint> endpoint_for_path(std::string_view path) noexcept {
  for (const auto& e : endpoints)
    if (e.route == path) return e.kind;
  return std::nullopt;
}

std::string_view path_below_root(endpoint kind) noexcept { return endpoints[static_cast<std::size_t>(kind)].below_root; }

std::string_view route_label(endpoint kind) noexcept { return endpoints[static_cast<std::size_t>(kind)].route; }

boost::system::result<front_request, request_error> parse_front_request(endpoint kind, std::string_view body) {
  // Request bodies are small and short-lived: parse them into a stack-backed arena.
  unsigned char arena[8192];
  json::monotonic_resource resource(arena, sizeof(arena));
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec, &resource);
  if (ec) return invalid("We could not parse the JSON body of your request: " + ec.message() + ".");
  json::object* object = parsed.if_object();
  if (!object) return invalid("The request body must be a JSON object.");

  front_request request;
  request.kind = kind;
  if (auto missing = require_member(*object, "model")) return *missing;
  const json::value& model = object->at("model");
  if (!model.is_string() || model.get_string().empty())
    return invalid("Invalid 'model': expected a non-empty string.", "model");
  request.model = std::string(model.get_string());

  switch (kind) {
    case endpoint::chat_completions:
      if (auto error = check_messages(*object)) return *error;
      request.prompt_tokens_estimate = tokens_for_bytes(text_bytes(object->at("messages")));
      break;
    case endpoint::completions:
      if (auto missing = require_member(*object, "prompt")) return *missing;
      request.prompt_tokens_estimate = tokens_for_bytes(text_bytes(object->at("prompt")));
      break;
    case endpoint::embeddings:
      if (auto missing = require_member(*object, "input")) return *missing;
      request.prompt_tokens_estimate = tokens_for_bytes(text_bytes(object->at("input")));
      return request;  // embeddings never stream
  }

  if (const json::value* stream = object->if_contains("stream"); stream && !stream->is_null()) {
    if (!stream->is_bool()) return invalid("Invalid type for 'stream': expected a boolean.", "stream");
    request.stream = stream->get_bool();
  }
  if (!request.stream) return request;

  json::value* options = object->if_contains("stream_options");
  if (options && !options->is_null() && !options->is_object())
    return invalid("Invalid type for 'stream_options': expected an object.", "stream_options");
  if (options && options->is_object()) {
    if (const json::value* include = options->get_object().if_contains("include_usage"); include && !include->is_null()) {
      if (!include->is_bool())
        return invalid("Invalid type for 'stream_options.include_usage': expected a boolean.",
                       "stream_options.include_usage");
      request.client_wants_usage = include->get_bool();
    }
  }
  if (request.client_wants_usage) return request;

  // Every stream is metered, so ask the upstream for its usage chunk.
  if (!options || !options->is_object()) (*object)["stream_options"] = json::object();
  (*object)["stream_options"].get_object()["include_usage"] = true;
  request.rewritten_body = json::serialize(parsed);
  return request;
}

std::optional<usage> parse_usage(std::string_view usage_json) noexcept {
  unsigned char arena[2048];
  json::monotonic_resource resource(arena, sizeof(arena));
  boost::system::error_code ec;
  json::value parsed = json::parse(usage_json, ec, &resource);
  if (ec || !parsed.is_object()) return std::nullopt;
  const auto& object = parsed.get_object();
  usage result;
  auto prompt = read_count(object, "prompt_tokens");
  auto completion = read_count(object, "completion_tokens");
  if (!prompt && !completion) return std::nullopt;
  result.prompt_tokens = prompt.value_or(0);
  result.completion_tokens = completion.value_or(0);
  if (const auto* details = object.if_contains("prompt_tokens_details"); details && details->is_object())
    result.cached_prompt_tokens = read_count(details->get_object(), "cached_tokens").value_or(0);
  return result;
}

void inspect_stream_chunk(std::string_view data, bool hide_usage, stream_chunk_outcome& out) {
  out.what = stream_chunk_outcome::action::forward;
  out.found_usage.reset();
  out.delivers_output = delivers_output(data);
  // OpenAI-style servers put "usage":null last in every chunk of a metered stream. A valid
  // object ending in ,"usage":null} has that member at its top level (the final brace closes
  // the object, and an unescaped quote after a comma cannot be inside a string), so the
  // common case needs no structural scan.
  constexpr std::string_view trailing_null_usage = ",\"usage\":null}";
  if (data.ends_with(trailing_null_usage)) {
    if (!hide_usage) return;
    out.rewritten_data.assign(data.substr(0, data.size() - trailing_null_usage.size()));
    out.rewritten_data.push_back('}');
    out.what = stream_chunk_outcome::action::rewrite;
    return;
  }
  // Most chunks of a stream that was not asked for usage never mention it: skip the scan.
  if (data.find("\"usage\"") == std::string_view::npos) return;
  auto member = core::find_top_level_member(data, "usage");
  if (!member) return;
  std::string_view value = data.substr(member->value_begin, member->value_end - member->value_begin);
  bool is_null = value == "null";
  if (!is_null) out.found_usage = parse_usage(value);
  if (!hide_usage) return;

  if (!is_null) {
    auto choices = core::find_top_level_member(data, "choices");
    if (choices) {
      std::string_view list = data.substr(choices->value_begin, choices->value_end - choices->value_begin);
      std::size_t first = list.find_first_not_of(" \t\r\n", 1);
      if (list.size() >= 2 && list.front() == '[' && first != std::string_view::npos && list[first] == ']') {
        out.what = stream_chunk_outcome::action::drop;
        return;
      }
    }
  }
  out.rewritten_data.assign(data.substr(0, member->erase_begin));
  out.rewritten_data.append(data.substr(member->erase_end));
  out.what = stream_chunk_outcome::action::rewrite;
}

std::string replace_model(std::string_view body, std::string_view model) {
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec || !parsed.is_object()) return std::string(body);  // validated before; nothing to replace
  parsed.get_object()["model"] = model;
  return json::serialize(parsed);
}

std::string models_list(const core::provider_set& providers) {
  json::array data;
  auto add = [&](std::string id, std::string_view owner) {
    data.push_back(json::object{{"id", std::move(id)}, {"object", "model"}, {"created", 0}, {"owned_by", owner}});
  };
  for (const auto& provider : providers.providers)
    for (const auto& model : provider.models) add(provider.name + "/" + model, provider.name);
  for (const auto& provider : providers.providers) {
    for (const auto& model : provider.models) {
      bool ambiguous = std::count_if(providers.providers.begin(), providers.providers.end(), [&](const auto& p) {
                         return std::find(p.models.begin(), p.models.end(), model) != p.models.end();
                       }) > 1;
      // A bare name resolves to the first provider listing it; list it once, with that owner.
      bool first = &provider == &*std::find_if(providers.providers.begin(), providers.providers.end(),
                                               [&](const auto& p) {
                                                 return std::find(p.models.begin(), p.models.end(), model) !=
                                                        p.models.end();
                                               });
      if (first) add(model, ambiguous ? std::string_view("tollgate") : std::string_view(provider.name));
    }
  }
  for (const auto& alias : providers.aliases) add(alias.name, "tollgate-alias");
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

std::string error_body(std::string_view message, std::string_view type, std::string_view code,
                       std::string_view param) {
  json::object error;
  error["message"] = message;
  error["type"] = type;
  error["param"] = param.empty() ? json::value(nullptr) : json::value(param);
  error["code"] = code.empty() ? json::value(nullptr) : json::value(code);
  json::object body;
  body["error"] = std::move(error);
  return json::serialize(body);
}

}  // namespace tollgate::adapters::openai
