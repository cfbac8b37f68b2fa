#include "adapters/openai.hpp"

#include "core/json_scan.hpp"
#include "core/swar.hpp"

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

// Whether the chunk has a `"content":"`, `"text":"` or `"arguments":"` member with at least one
// character of value. One pass over the colons (a dozen per chunk) instead of a search per
// name, which kept stopping at every quote.
bool delivers_output(std::string_view data) {
  return core::swar::find_each(data, ':', [data](std::size_t colon) {
    // `"name":"v`: a quote on both sides of the colon, a value that is not empty.
    if (colon < 6 || data.size() - colon < 3 || data[colon - 1] != '"' || data[colon + 1] != '"' ||
        data[colon + 2] == '"')
      return false;
    const std::string_view key = data.substr(0, colon - 1);
    return key.ends_with("\"content") || key.ends_with("\"text") || key.ends_with("\"arguments");
  });
}
}  // namespace

std::optional<endpoint> endpoint_for_path(std::string_view path) noexcept {
  for (const auto& e : endpoints)
    if (e.route == path) return e.kind;
  return std::nullopt;
}

std::string_view path_below_root(endpoint kind) noexcept { return endpoints[static_cast<std::size_t>(kind)].below_root; }

std::string_view route_label(endpoint kind) noexcept { return endpoints[static_cast<std::size_t>(kind)].route; }

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
    out.erase_begin = data.size() - trailing_null_usage.size();
    out.erase_end = data.size() - 1;  // the closing brace stays
    out.what = stream_chunk_outcome::action::erase;
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
  out.erase_begin = member->erase_begin;
  out.erase_end = member->erase_end;
  out.what = stream_chunk_outcome::action::erase;
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
