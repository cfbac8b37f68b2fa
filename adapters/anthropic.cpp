// OpenAI chat.completions <-> Anthropic Messages API, whole requests and responses.
// Streams are in anthropic_stream.cpp.
//
// Request mapping. A parameter whose loss would change the answer without the client noticing
// is refused with a 400 naming it; one whose loss changes nothing the client can observe is
// dropped.
//
// | OpenAI field                          | Anthropic field               | notes                                                         |
// |---------------------------------------|-------------------------------|---------------------------------------------------------------|
// | model                                 | model                         | options.model (alias and provider prefix already resolved)    |
// | messages, role system / developer     | system                        | texts joined with "\n\n"; string or text parts                |
// | messages, role user                   | messages, role user           | string stays a string; text part -> text block                |
// | content part image_url (data: URL)    | image, source type base64     | media_type from the URL; non-base64 data URLs are a 400       |
// | content part image_url (http/https)   | image, source type url        | "detail" dropped                                              |
// | other content parts (input_audio,...) | -                             | 400                                                           |
// | messages, role assistant              | messages, role assistant      | text (and refusal) parts -> text blocks                       |
// | assistant tool_calls[]                | tool_use blocks               | input = parsed function.arguments ("" -> {}); bad JSON -> 400 |
// | messages, role tool                   | user message, tool_result     | consecutive tool messages share one user message              |
// | consecutive same-role messages        | one message                   | Anthropic requires alternation; tool_result blocks go first   |
// | messages[].name                       | -                             | dropped                                                       |
// | max_completion_tokens, max_tokens     | max_tokens                    | the former wins; default options.default_max_tokens           |
// | temperature                           | temperature                   | unchanged: Anthropic's range is 0..1, above it Anthropic 400s |
// | top_p                                 | top_p                         |                                                               |
// | stop (string or array)                | stop_sequences                |                                                               |
// | stream                                | stream                        | taken from options.stream (the proxy's decision)              |
// | tools[] (type function)               | tools[]                       | parameters -> input_schema ({"type":"object"} if absent);     |
// |                                       |                               | "strict" dropped; other tool types -> 400                     |
// | tool_choice                           | tool_choice                   | auto->auto, required->any, none->none, function->tool;        |
// |                                       |                               | dropped when the request has no tools                         |
// | parallel_tool_calls: false            | tool_choice.                  | only with tools and a tool_choice other than none             |
// |                                       | disable_parallel_tool_use     |                                                               |
// | user                                  | metadata.user_id              |                                                               |
// | n > 1                                 | -                             | 400                                                           |
// | logprobs: true, top_logprobs > 0      | -                             | 400                                                           |
// | response_format (not "text")          | -                             | 400                                                           |
// | audio, modalities with "audio"        | -                             | 400                                                           |
// | functions, function_call (legacy)     | -                             | 400: use tools                                                |
// | logit_bias (non-empty)                | -                             | 400                                                           |
// | presence_penalty, frequency_penalty,  | -                             | dropped, as is any field not named in this table              |
// | seed, stream_options, store,          |                               |                                                               |
// | metadata, service_tier,               |                               |                                                               |
// | reasoning_effort, parallel_tool_calls |                               |                                                               |
//
// Response mapping: id kept; "created" 0 (no clock here, none in the message); model =
// options.model; text blocks joined (content null when there are none); tool_use ->
// tool_calls with the input serialized as arguments; thinking and server-tool blocks dropped.
// prompt_tokens = input + cache_read + cache_creation (OpenAI counts the whole prompt),
// cached_tokens = cache_read.
#include "adapters/anthropic.hpp"

#include "adapters/json_fields.hpp"

#include "adapters/anthropic_detail.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <vector>

namespace tollgate::adapters::anthropic {
namespace json = boost::json;
namespace {

using maybe_error = std::optional<openai::request_error>;

openai::request_error invalid(std::string message, std::string param) {
  return openai::request_error{std::move(message), std::move(param)};
}

openai::request_error unsupported(std::string_view what, std::string param, std::string_view advice = {}) {
  std::string message(what);
  message += " is not supported for Anthropic models";
  if (!advice.empty()) {
    message += "; ";
    message += advice;
  }
  message += '.';
  return invalid(std::move(message), std::move(param));
}

const json::value* present(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  return value && !value->is_null() ? value : nullptr;
}

std::string_view string_or_empty(const json::value* value) {
  return value && value->is_string() ? std::string_view(value->get_string()) : std::string_view();
}

std::string indexed(std::string_view base, std::size_t index) {
  return std::string(base) + '[' + std::to_string(index) + ']';
}

bool is_number_above(const json::value& value, double limit) {
  boost::system::error_code ec;
  double number = value.to_number<double>(ec);
  return !ec && number > limit;
}

maybe_error check_unsupported(const json::object& request) {
  if (const auto* n = present(request, "n"); n && (!n->is_number() || is_number_above(*n, 1)))
    return unsupported("'n' other than 1", "n", "send one request per choice");
  if (const auto* logprobs = present(request, "logprobs"); logprobs && !(logprobs->is_bool() && !logprobs->get_bool()))
    return unsupported("'logprobs'", "logprobs");
  if (const auto* top = present(request, "top_logprobs"); top && (!top->is_number() || is_number_above(*top, 0)))
    return unsupported("'top_logprobs'", "top_logprobs");
  if (const auto* format = present(request, "response_format")) {
    const auto* object = format->if_object();
    std::string_view type = object ? string_or_empty(object->if_contains("type")) : std::string_view();
    if (type != "text")
      return unsupported("'response_format' of type '" + std::string(type) + "'", "response_format",
                         "describe the format in the prompt or ask for a tool call");
  }
  if (present(request, "audio")) return unsupported("'audio'", "audio");
  if (const auto* modalities = present(request, "modalities"); modalities && modalities->is_array()) {
    for (const auto& modality : modalities->get_array())
      if (modality.is_string() && modality.get_string() == "audio")
        return unsupported("Audio output ('modalities')", "modalities");
  }
  if (present(request, "functions")) return unsupported("'functions'", "functions", "use 'tools'");
  if (present(request, "function_call")) return unsupported("'function_call'", "function_call", "use 'tool_choice'");
  if (const auto* bias = present(request, "logit_bias"); bias && !(bias->is_object() && bias->get_object().empty()))
    return unsupported("'logit_bias'", "logit_bias");
  return std::nullopt;
}

json::object text_block(std::string_view text) {
  return json::object{{"type", "text"}, {"text", text}};
}

// "data:image/png;base64,AAAA" or an http(s) URL -> an image block.
maybe_error append_image(const json::object& part, const std::string& path, json::array& blocks) {
  const json::value* image_url = part.if_contains("image_url");
  std::string_view url = string_or_empty(image_url);  // a bare string is tolerated
  if (image_url && image_url->is_object()) url = string_or_empty(image_url->get_object().if_contains("url"));
  if (url.empty()) return invalid("Invalid '" + path + ".image_url': expected an object with a 'url'.", path + ".image_url.url");

  json::object source;
  if (url.starts_with("data:")) {
    constexpr std::string_view marker = ";base64,";
    std::size_t at = url.find(marker);
    if (at == std::string_view::npos || at == 5)
      return invalid("Invalid '" + path + ".image_url.url': a data URL must look like data:<media type>;base64,<data>.",
                     path + ".image_url.url");
    source = {{"type", "base64"}, {"media_type", url.substr(5, at - 5)}, {"data", url.substr(at + marker.size())}};
  } else if (url.starts_with("https://") || url.starts_with("http://")) {
    source = {{"type", "url"}, {"url", url}};
  } else {
    return invalid("Invalid '" + path + ".image_url.url': expected a data: or http(s) URL.", path + ".image_url.url");
  }
  blocks.push_back(json::object{{"type", "image"}, {"source", std::move(source)}});
  return std::nullopt;
}

// A message's content (string, null or parts) as blocks. Empty text is skipped: Anthropic
// rejects empty text blocks, and an empty OpenAI message says nothing.
maybe_error append_content(const json::value& content, const std::string& path, bool user, json::array& blocks) {
  if (content.is_null()) return std::nullopt;
  if (content.is_string()) {
    if (!content.get_string().empty()) blocks.push_back(text_block(content.get_string()));
    return std::nullopt;
  }
  const auto* parts = content.if_array();
  if (!parts) return invalid("Invalid type for '" + path + "': expected a string or an array of content parts.", path);
  for (std::size_t j = 0; j < parts->size(); ++j) {
    std::string part_path = indexed(path, j);
    const auto* part = (*parts)[j].if_object();
    std::string_view type = part ? string_or_empty(part->if_contains("type")) : std::string_view();
    if (type == "text" || (!user && type == "refusal")) {
      const json::value* text = part->if_contains(type);
      if (!text || !text->is_string())
        return invalid("Invalid '" + part_path + "': expected a string '" + std::string(type) + "'.", part_path);
      if (!text->get_string().empty()) blocks.push_back(text_block(text->get_string()));
    } else if (user && type == "image_url") {
      if (auto error = append_image(*part, part_path, blocks)) return error;
    } else {
      return unsupported("Content part type '" + std::string(type) + "'", part_path + ".type");
    }
  }
  return std::nullopt;
}

maybe_error append_system(const json::value& content, const std::string& path, std::string& system) {
  json::array blocks;
  if (auto error = append_content(content, path, false, blocks)) return error;
  for (const auto& block : blocks) {
    if (!system.empty()) system += "\n\n";
    system += block.get_object().at("text").get_string();
  }
  return std::nullopt;
}

maybe_error append_tool_calls(const json::value& calls, const std::string& path, json::array& blocks) {
  const auto* list = calls.if_array();
  if (!list) return invalid("Invalid type for '" + path + "': expected an array.", path);
  for (std::size_t j = 0; j < list->size(); ++j) {
    std::string call_path = indexed(path, j);
    const auto* call = (*list)[j].if_object();
    const json::value* function = call ? call->if_contains("function") : nullptr;
    const auto* fn = function ? function->if_object() : nullptr;
    std::string_view id = call ? string_or_empty(call->if_contains("id")) : std::string_view();
    std::string_view name = fn ? string_or_empty(fn->if_contains("name")) : std::string_view();
    if (id.empty() || name.empty())
      return invalid("Invalid '" + call_path + "': expected an 'id' and a 'function' with a 'name'.", call_path);

    // Anthropic wants the arguments as an object; OpenAI sends them as JSON text.
    std::string_view arguments = string_or_empty(fn->if_contains("arguments"));
    json::value input = json::object();
    if (arguments.find_first_not_of(" \t\r\n") != std::string_view::npos) {
      boost::system::error_code ec;
      input = json::parse(arguments, ec);
      if (ec || !input.is_object())
        return invalid("Invalid '" + call_path + ".function.arguments': expected a JSON object encoded as a string.",
                       call_path + ".function.arguments");
    }
    blocks.push_back(json::object{{"type", "tool_use"}, {"id", id}, {"name", name}, {"input", std::move(input)}});
  }
  return std::nullopt;
}

maybe_error append_tool_result(const json::object& message, const std::string& path, json::array& blocks) {
  std::string_view id = string_or_empty(message.if_contains("tool_call_id"));
  if (id.empty()) return invalid("Missing required parameter: '" + path + ".tool_call_id'.", path + ".tool_call_id");
  json::object result{{"type", "tool_result"}, {"tool_use_id", id}};
  if (const auto* content = present(message, "content")) {
    json::array parts;
    if (auto error = append_content(*content, path + ".content", false, parts)) return error;
    if (content->is_string() && !parts.empty()) result["content"] = content->get_string();
    else if (!parts.empty()) result["content"] = std::move(parts);
  }
  blocks.push_back(std::move(result));
  return std::nullopt;
}

struct pending_message {
  const char* role;
  json::array blocks;
  bool plain_string;  // one string content, never merged: sent as a string like the client wrote it
};

maybe_error translate_messages(const json::array& messages, json::object& out) {
  std::string system;
  std::vector<pending_message> turns;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    std::string path = indexed("messages", i);
    const auto* message = messages[i].if_object();
    std::string_view role = message ? string_or_empty(message->if_contains("role")) : std::string_view();
    const json::value* content = message ? message->if_contains("content") : nullptr;
    static const json::value null_content;
    if (!content) content = &null_content;

    json::array blocks;
    const char* anthropic_role = "user";
    if (role == "system" || role == "developer") {
      if (auto error = append_system(*content, path + ".content", system)) return error;
      continue;
    } else if (role == "user") {
      if (auto error = append_content(*content, path + ".content", true, blocks)) return error;
    } else if (role == "assistant") {
      anthropic_role = "assistant";
      if (auto error = append_content(*content, path + ".content", false, blocks)) return error;
      if (const auto* calls = present(*message, "tool_calls"))
        if (auto error = append_tool_calls(*calls, path + ".tool_calls", blocks)) return error;
    } else if (role == "tool") {
      if (auto error = append_tool_result(*message, path, blocks)) return error;
    } else {
      return invalid("Invalid '" + path + ".role': '" + std::string(role) + "' is not supported for Anthropic models.",
                     path + ".role");
    }
    if (blocks.empty()) continue;

    if (!turns.empty() && std::string_view(turns.back().role) == anthropic_role) {
      auto& last = turns.back();
      for (auto& block : blocks) last.blocks.push_back(std::move(block));
      last.plain_string = false;
    } else {
      bool plain = role != "tool" && content->is_string() && blocks.size() == 1;
      turns.push_back(pending_message{anthropic_role, std::move(blocks), plain});
    }
  }
  if (turns.empty())
    return invalid("Invalid 'messages': Anthropic models need at least one user or assistant message with content.",
                   "messages");

  if (!system.empty()) out["system"] = std::move(system);
  json::array list;
  list.reserve(turns.size());
  for (auto& turn : turns) {
    json::object message{{"role", turn.role}};
    if (turn.plain_string) {
      message["content"] = std::move(turn.blocks[0].get_object()["text"]);
    } else {
      // Anthropic wants a user turn's tool results before anything else in it.
      std::stable_partition(turn.blocks.begin(), turn.blocks.end(), [](const json::value& block) {
        return block.get_object().at("type").get_string() == "tool_result";
      });
      message["content"] = std::move(turn.blocks);
    }
    list.push_back(std::move(message));
  }
  out["messages"] = std::move(list);
  return std::nullopt;
}

maybe_error translate_tools(const json::object& request, json::object& out) {
  const auto* tools = present(request, "tools");
  if (!tools) return std::nullopt;
  const auto* list = tools->if_array();
  if (!list) return invalid("Invalid type for 'tools': expected an array.", "tools");
  json::array translated;
  for (std::size_t i = 0; i < list->size(); ++i) {
    std::string path = indexed("tools", i);
    const auto* tool = (*list)[i].if_object();
    std::string_view type = tool ? string_or_empty(tool->if_contains("type")) : std::string_view();
    if (type != "function") return unsupported("Tool type '" + std::string(type) + "'", path + ".type");
    const json::value* function = tool->if_contains("function");
    const auto* fn = function ? function->if_object() : nullptr;
    std::string_view name = fn ? string_or_empty(fn->if_contains("name")) : std::string_view();
    if (name.empty()) return invalid("Missing required parameter: '" + path + ".function.name'.", path + ".function.name");
    json::object entry{{"name", name}};
    if (const auto* description = present(*fn, "description"); description && description->is_string())
      entry["description"] = description->get_string();
    const auto* parameters = present(*fn, "parameters");
    if (parameters && !parameters->is_object())
      return invalid("Invalid type for '" + path + ".function.parameters': expected an object.", path + ".function.parameters");
    entry["input_schema"] = parameters ? *parameters : json::value(json::object{{"type", "object"}});
    translated.push_back(std::move(entry));
  }
  if (translated.empty()) return std::nullopt;
  out["tools"] = std::move(translated);

  json::object choice;
  if (const auto* tool_choice = present(request, "tool_choice")) {
    const auto* object = tool_choice->if_object();
    const json::value* function = object ? object->if_contains("function") : nullptr;
    std::string_view name = function && function->is_object() ? string_or_empty(function->get_object().if_contains("name"))
                                                               : std::string_view();
    std::string_view word = string_or_empty(tool_choice);
    if (word == "auto") choice = {{"type", "auto"}};
    else if (word == "required") choice = {{"type", "any"}};
    else if (word == "none") choice = {{"type", "none"}};
    else if (object && string_or_empty(object->if_contains("type")) == "function" && !name.empty())
      choice = {{"type", "tool"}, {"name", name}};
    else
      return invalid("Invalid 'tool_choice': expected \"auto\", \"required\", \"none\" or "
                     "{\"type\":\"function\",\"function\":{\"name\":...}}.", "tool_choice");
  }
  // Anthropic may call several tools at once unless told not to, like OpenAI.
  if (const auto* parallel = present(request, "parallel_tool_calls"); parallel && parallel->is_bool() && !parallel->get_bool()) {
    if (choice.empty()) choice = {{"type", "auto"}};
    if (choice.at("type").get_string() != "none") choice["disable_parallel_tool_use"] = true;
  }
  if (!choice.empty()) out["tool_choice"] = std::move(choice);
  return std::nullopt;
}

maybe_error translate_sampling(const json::object& request, const translation_options& options, json::object& out) {
  std::uint64_t max_tokens = options.default_max_tokens;
  for (std::string_view name : {"max_completion_tokens", "max_tokens"}) {
    const auto* value = present(request, name);
    if (!value) continue;
    boost::system::error_code ec;
    max_tokens = value->to_number<std::uint64_t>(ec);
    if (ec || max_tokens == 0)
      return invalid("Invalid '" + std::string(name) + "': expected a positive integer.", std::string(name));
    break;
  }
  out["max_tokens"] = max_tokens;

  for (std::string_view name : {"temperature", "top_p"}) {
    const auto* value = present(request, name);
    if (!value) continue;
    if (!value->is_number()) return invalid("Invalid type for '" + std::string(name) + "': expected a number.", std::string(name));
    out[name] = *value;
  }

  if (const auto* stop = present(request, "stop")) {
    json::array sequences;
    if (stop->is_string()) {
      sequences.push_back(stop->get_string());
    } else if (const auto* list = stop->if_array()) {
      for (const auto& item : *list) {
        if (!item.is_string()) return invalid("Invalid 'stop': expected a string or an array of strings.", "stop");
        sequences.push_back(item);
      }
    } else {
      return invalid("Invalid 'stop': expected a string or an array of strings.", "stop");
    }
    if (!sequences.empty()) out["stop_sequences"] = std::move(sequences);
  }
  if (options.stream) out["stream"] = true;
  if (std::string_view user = string_or_empty(present(request, "user")); !user.empty())
    out["metadata"] = json::object{{"user_id", user}};
  return std::nullopt;
}

}  // namespace

namespace detail {

void usage_counts::merge(const json::object& usage) {
  auto take = [&](std::string_view name, std::uint64_t& count) {
    if (auto value = read_count(usage, name)) {
      count = std::max(count, *value);
      seen = true;
    }
  };
  take("input_tokens", input);
  take("output_tokens", output);
  take("cache_read_input_tokens", cache_read);
  take("cache_creation_input_tokens", cache_creation);
}

openai::usage usage_counts::to_openai() const noexcept {
  return openai::usage{input + cache_read + cache_creation, output, cache_read};
}

std::string_view finish_reason_for(std::string_view stop_reason) noexcept {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  // end_turn, stop_sequence, pause_turn (a server tool paused the turn) and reasons newer
  // than this adapter: the model stopped on its own.
  return "stop";
}

struct error_mapping {
  std::string_view anthropic_type;
  int anthropic_status;
  int openai_status;
  std::string_view openai_type;
};

// 529 becomes 503 because OpenAI clients retry 503 and know nothing of 529.
constexpr std::array<error_mapping, 9> error_mappings = {{
    {"invalid_request_error", 400, 400, "invalid_request_error"},
    {"authentication_error", 401, 401, "authentication_error"},
    {"billing_error", 402, 402, "invalid_request_error"},
    {"permission_error", 403, 403, "permission_error"},
    {"not_found_error", 404, 404, "invalid_request_error"},
    {"request_too_large", 413, 413, "invalid_request_error"},
    {"rate_limit_error", 429, 429, "rate_limit_error"},
    {"api_error", 500, 500, "server_error"},
    {"overloaded_error", 529, 503, "server_error"},
}};

std::string_view openai_error_type_for(std::string_view anthropic_type) noexcept {
  for (const auto& mapping : error_mappings)
    if (mapping.anthropic_type == anthropic_type) return mapping.openai_type;
  return "server_error";  // unknown types come from Anthropic's side of the line
}

std::string error_body_for(std::string_view anthropic_type, std::string_view message) {
  return openai::error_body("Anthropic: " + std::string(message), openai_error_type_for(anthropic_type), anthropic_type);
}

}  // namespace detail

boost::system::result<upstream_call, openai::request_error> translate_request(const json::object& openai_request,
                                                                              const translation_options& options) {
  if (auto error = check_unsupported(openai_request)) return *error;
  json::object out;
  out["model"] = options.model;
  const json::value* messages = openai_request.if_contains("messages");
  if (!messages || !messages->is_array()) return invalid("Invalid type for 'messages': expected an array.", "messages");
  if (auto error = translate_messages(messages->get_array(), out)) return *error;
  if (auto error = translate_sampling(openai_request, options, out)) return *error;
  if (auto error = translate_tools(openai_request, out)) return *error;

  upstream_call call;
  call.path = "/messages";
  call.body = json::serialize(out);
  call.headers.emplace_back("anthropic-version", api_version);
  call.framing = stream_framing::sse;
  return call;
}

boost::system::result<translated_response, std::string> translate_response(std::string_view body,
                                                                           const translation_options& options) {
  // translated_response is an aggregate, so a plain std::string would also construct one:
  // say explicitly which side of the result is meant.
  auto fail = [](std::string why) {
    return boost::system::result<translated_response, std::string>(boost::system::in_place_error, std::move(why));
  };
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec) return fail("Anthropic response is not JSON: " + ec.message());
  const auto* message = parsed.if_object();
  if (!message) return fail("Anthropic response is not a JSON object");
  if (string_or_empty(message->if_contains("type")) != "message")
    return fail("Anthropic response is not of type \"message\"");
  const json::value* content = message->if_contains("content");
  if (!content || !content->is_array()) return fail("Anthropic response has no content array");

  std::string text;
  bool has_text = false;
  json::array tool_calls;
  for (const auto& item : content->get_array()) {
    const auto* block = item.if_object();
    std::string_view type = block ? string_or_empty(block->if_contains("type")) : std::string_view();
    if (type == "text") {
      has_text = true;
      text += string_or_empty(block->if_contains("text"));
    } else if (type == "tool_use") {
      const json::value* input = block->if_contains("input");
      json::object function{{"name", string_or_empty(block->if_contains("name"))},
                            {"arguments", input ? json::serialize(*input) : std::string("{}")}};
      tool_calls.push_back(json::object{
          {"id", string_or_empty(block->if_contains("id"))}, {"type", "function"}, {"function", std::move(function)}});
    }
    // thinking, redacted_thinking and server-tool blocks have no chat.completion counterpart.
  }

  json::object reply{{"role", "assistant"}};
  reply["content"] = has_text ? json::value(text) : json::value(nullptr);
  if (!tool_calls.empty()) reply["tool_calls"] = std::move(tool_calls);
  std::string_view stop_reason = string_or_empty(message->if_contains("stop_reason"));
  json::object choice{{"index", 0}, {"message", std::move(reply)}};
  choice["finish_reason"] = stop_reason.empty() ? json::value(nullptr) : json::value(detail::finish_reason_for(stop_reason));

  json::object out{{"id", string_or_empty(message->if_contains("id"))},
                   {"object", "chat.completion"},
                   {"created", 0},
                   {"model", options.model},
                   {"choices", json::array{std::move(choice)}}};
  translated_response result;
  if (const json::value* usage = message->if_contains("usage"); usage && usage->is_object()) {
    detail::usage_counts counts;
    counts.merge(usage->get_object());
    if (counts.seen) {
      result.usage = counts.to_openai();
      out["usage"] = json::object{
          {"prompt_tokens", result.usage->prompt_tokens},
          {"completion_tokens", result.usage->completion_tokens},
          {"total_tokens", result.usage->prompt_tokens + result.usage->completion_tokens},
          {"prompt_tokens_details", json::object{{"cached_tokens", result.usage->cached_prompt_tokens}}}};
    }
  }
  result.body = json::serialize(out);
  return result;
}

translated_error translate_error(int status, std::string_view body) {
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  const json::object* error = nullptr;
  if (!ec && parsed.is_object())
    if (const json::value* inner = parsed.get_object().if_contains("error"); inner && inner->is_object())
      error = &inner->get_object();

  std::string anthropic_type(error ? string_or_empty(error->if_contains("type")) : std::string_view());
  std::string message(error ? string_or_empty(error->if_contains("message")) : std::string_view());
  if (!error) {
    // Not Anthropic's JSON (a load balancer page, plain text): say so, with a printable excerpt.
    message = "upstream answered HTTP " + std::to_string(status) + " without a JSON error";
    std::string excerpt;
    for (char c : body.substr(0, 200)) excerpt += (c >= 0x20 && c < 0x7f) ? c : ' ';
    excerpt.erase(excerpt.find_last_not_of(' ') + 1);  // npos + 1 == 0: all blank erases all
    excerpt.erase(0, excerpt.find_first_not_of(' '));
    if (!excerpt.empty()) message += ": " + excerpt;
  } else if (message.empty()) {
    message = "upstream answered HTTP " + std::to_string(status);
  }

  translated_error result;
  const detail::error_mapping* mapping = nullptr;
  for (const auto& candidate : detail::error_mappings)
    if (candidate.anthropic_status == status) mapping = &candidate;
  std::string_view openai_type;
  if (mapping) {
    result.status = mapping->openai_status;
    openai_type = mapping->openai_type;
    if (anthropic_type.empty()) anthropic_type = mapping->anthropic_type;
  } else if (status >= 400 && status < 500) {
    result.status = status;
    openai_type = "invalid_request_error";
  } else {
    // Other 5xx (and non-error statuses that should not have come here) are the upstream's fault.
    result.status = status >= 500 && status < 600 ? status : 502;
    openai_type = "server_error";
  }
  result.body = openai::error_body("Anthropic: " + message, openai_type, anthropic_type);
  return result;
}

}  // namespace tollgate::adapters::anthropic
