// The fake's Anthropic Messages, Gemini generateContent and Ollama /api/chat formats: request
// parsing (strict where the real API is strict, so a translation bug shows up as a 400),
// deterministic bodies and streams, and each provider's error shape. See
// tests/support/README.md for the exact bytes.

#include "tests/support/fake_wire.hpp"
#include "tests/support/fake_wire_detail.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>

namespace tollgate::testing::fake_wire::detail {
namespace {

namespace json = boost::json;

constexpr std::string_view ollama_created_at = "2024-01-01T00:00:00Z";
// The arguments every tool call answers with, and how an Anthropic stream cuts them up.
constexpr std::string_view tool_arguments = R"({"city":"Paris"})";
constexpr std::array<std::string_view, 3> tool_fragments = {"", R"({"city": )", R"("Paris"})"};

const json::string* string_member(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? v->if_string() : nullptr;
}

// Text of a message's content: a string, Anthropic blocks ({"type":"text","text"}) or Gemini
// parts ({"text"}), concatenated.
std::string content_text(const json::value* content) {
  if (content == nullptr) return {};
  if (const json::string* s = content->if_string()) return std::string(*s);
  std::string text;
  if (const json::array* parts = content->if_array()) {
    for (const auto& part : *parts) {
      const json::object* p = part.if_object();
      if (p == nullptr) continue;
      if (const json::string* t = string_member(*p, "text")) text += *t;
    }
  }
  return text;
}

// Last message whose role is "user" (Gemini: "user" or no role), its text.
std::string last_user_text(const json::array& messages, std::string_view content_key,
                           bool absent_role_is_user) {
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    const json::object* m = it->if_object();
    if (m == nullptr) continue;
    const json::string* role = string_member(*m, "role");
    const bool user = role != nullptr ? *role == "user" : absent_role_is_user;
    if (user) return content_text(m->if_contains(content_key));
  }
  return {};
}

bool is_count(const json::value& v) {
  return (v.is_int64() && v.get_int64() >= 1) || (v.is_uint64() && v.get_uint64() >= 1);
}

std::string parse_anthropic(const json::object& body, script& out) {
  // Anthropic rejects fields it does not know ("Extra inputs are not permitted"): an adapter
  // leaking an OpenAI-only field fails here as it would against the real API.
  static constexpr std::array<std::string_view, 17> known = {
      "model",      "messages",      "max_tokens", "system",       "stop_sequences", "stream",
      "temperature", "top_p",        "top_k",      "tools",        "tool_choice",    "metadata",
      "thinking",   "service_tier",  "container",  "mcp_servers",  "fake"};
  for (const auto& [key, v] : body) {
    if (std::find(known.begin(), known.end(), std::string_view(key)) == known.end()) {
      return std::string(key) + ": Extra inputs are not permitted";
    }
  }
  const json::string* model = string_member(body, "model");
  if (model == nullptr) return "model: Field required";
  out.model.assign(model->data(), model->size());
  const json::value* max_tokens = body.if_contains("max_tokens");
  if (max_tokens == nullptr) return "max_tokens: Field required";
  if (!is_count(*max_tokens)) return "max_tokens: Input should be a valid integer greater than 0";
  const json::value* messages = body.if_contains("messages");
  if (messages == nullptr) return "messages: Field required";
  if (!messages->is_array() || messages->get_array().empty()) {
    return "messages: Input should be a non-empty list";
  }
  if (const json::value* stream = body.if_contains("stream"); stream != nullptr) {
    if (!stream->is_bool()) return "stream: Input should be a valid boolean";
    out.stream = stream->get_bool();
  }
  if (const json::value* tools = body.if_contains("tools"); tools != nullptr) {
    if (!tools->is_array()) return "tools: Input should be a valid list";
    for (const auto& tool : tools->get_array()) {
      const json::object* t = tool.if_object();
      const json::string* name = t != nullptr ? string_member(*t, "name") : nullptr;
      if (name == nullptr || name->empty()) return "tools.0.name: Field required";
      if (!t->contains("input_schema")) return "tools.0.input_schema: Field required";
      if (out.tool_name.empty()) out.tool_name.assign(name->data(), name->size());
    }
  }
  return apply_message_script(last_user_text(messages->get_array(), "content", false), out);
}

std::string parse_gemini(const json::object& body, script& out) {
  static constexpr std::array<std::string_view, 14> known = {
      "contents",         "systemInstruction", "system_instruction", "generationConfig",
      "generation_config", "tools",            "toolConfig",         "tool_config",
      "safetySettings",   "safety_settings",   "cachedContent",      "cached_content",
      "labels",           "fake"};
  for (const auto& [key, v] : body) {
    if (std::find(known.begin(), known.end(), std::string_view(key)) == known.end()) {
      return "Invalid JSON payload received. Unknown name \"" + std::string(key) +
             "\": Cannot find field.";
    }
  }
  if (out.model.empty()) return "model is required in the URL: /v1beta/models/<model>:generateContent";
  const json::value* contents = body.if_contains("contents");
  if (contents == nullptr || !contents->is_array() || contents->get_array().empty()) {
    return "* GenerateContentRequest.contents: contents is not specified";
  }
  if (const json::value* tools = body.if_contains("tools"); tools != nullptr) {
    if (!tools->is_array()) return "Invalid value at 'tools': expected a list";
    for (const auto& tool : tools->get_array()) {
      const json::object* t = tool.if_object();
      const json::value* decls = t != nullptr ? t->if_contains("functionDeclarations") : nullptr;
      if (decls == nullptr && t != nullptr) decls = t->if_contains("function_declarations");
      if (decls == nullptr || !decls->is_array()) continue;
      for (const auto& decl : decls->get_array()) {
        const json::object* d = decl.if_object();
        const json::string* name = d != nullptr ? string_member(*d, "name") : nullptr;
        if (name == nullptr || name->empty()) {
          return "* GenerateContentRequest.tools[0].function_declarations[0].name: Name cannot be empty.";
        }
        if (out.tool_name.empty()) out.tool_name.assign(name->data(), name->size());
      }
    }
  }
  return apply_message_script(last_user_text(contents->get_array(), "parts", true), out);
}

std::string parse_ollama(const json::object& body, script& out) {
  const json::string* model = string_member(body, "model");
  if (model == nullptr || model->empty()) return "model is required";
  out.model.assign(model->data(), model->size());
  const json::value* messages = body.if_contains("messages");
  if (messages == nullptr || !messages->is_array()) return "messages is required";
  out.stream = true;  // Ollama streams unless told not to
  if (const json::value* stream = body.if_contains("stream"); stream != nullptr) {
    if (!stream->is_bool()) return "json: cannot unmarshal stream into a bool";
    out.stream = stream->get_bool();
  }
  if (const json::value* tools = body.if_contains("tools"); tools != nullptr) {
    if (!tools->is_array()) return "json: cannot unmarshal tools into an array";
    for (const auto& tool : tools->get_array()) {
      const json::object* t = tool.if_object();
      const json::value* fn = t != nullptr ? t->if_contains("function") : nullptr;
      const json::string* name = fn != nullptr && fn->is_object() ? string_member(fn->get_object(), "name") : nullptr;
      if (name == nullptr || name->empty()) return "tool function name is required";
      if (out.tool_name.empty()) out.tool_name.assign(name->data(), name->size());
    }
  }
  return apply_message_script(last_user_text(messages->get_array(), "content", false), out);
}

std::string sse(std::string_view type, std::string_view data, bool crlf) {
  const std::string_view eol = crlf ? "\r\n" : "\n";
  std::string out;
  out.reserve(type.size() + data.size() + 20);
  if (!type.empty()) {
    out += "event: ";
    out += type;
    out += eol;
  }
  out += "data: ";
  out += data;
  out += eol;
  out += eol;
  return out;
}

std::string word(int i) {
  std::string w = "w";
  w += std::to_string(i);
  w += ' ';
  return w;
}

// ---- Anthropic ---------------------------------------------------------------------------

std::string anthropic_body(const script& s) {
  std::string content;
  const char* stop = "end_turn";
  if (!s.tool_name.empty()) {
    content = "{\"type\":\"tool_use\",\"id\":\"toolu_fake\",\"name\":" + json_quote(s.tool_name) +
              ",\"input\":" + std::string(tool_arguments) + "}";
    stop = "tool_use";
  } else if (s.events > 0) {
    content = "{\"type\":\"text\",\"text\":\"" + words(s.events, false) + "\"}";
  }
  return "{\"id\":\"msg_fake\",\"type\":\"message\",\"role\":\"assistant\",\"model\":" + json_quote(s.model) +
         ",\"content\":[" + content + "],\"stop_reason\":\"" + stop +
         "\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":" + std::to_string(s.prompt_tokens) +
         ",\"output_tokens\":" + std::to_string(s.events) + "}}";
}

framed_stream anthropic_stream(const script& s) {
  framed_stream out;
  out.content_type = "text/event-stream";
  const bool tool = !s.tool_name.empty();
  auto& ev = out.events;
  ev.push_back(sse("message_start",
                   "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake\",\"type\":\"message\","
                   "\"role\":\"assistant\",\"model\":" + json_quote(s.model) +
                       ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":" +
                       std::to_string(s.prompt_tokens) + ",\"output_tokens\":1}}}",
                   s.crlf));
  const std::string block =
      tool ? "{\"type\":\"tool_use\",\"id\":\"toolu_fake\",\"name\":" + json_quote(s.tool_name) + ",\"input\":{}}"
           : std::string("{\"type\":\"text\",\"text\":\"\"}");
  ev.push_back(sse("content_block_start",
                   "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":" + block + "}", s.crlf));
  ev.push_back(sse("ping", "{\"type\":\"ping\"}", s.crlf));
  out.first_content = ev.size();
  if (tool) {
    for (std::string_view fragment : tool_fragments) {
      ev.push_back(sse("content_block_delta",
                       "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
                       "\"partial_json\":" + json_quote(fragment) + "}}",
                       s.crlf));
    }
  } else {
    for (int i = 0; i < s.events; ++i) {
      ev.push_back(sse("content_block_delta",
                       "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
                       "\"text\":\"" + word(i) + "\"}}",
                       s.crlf));
    }
  }
  out.content_events = ev.size() - out.first_content;
  ev.push_back(sse("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}", s.crlf));
  ev.push_back(sse("message_delta",
                   std::string("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"") +
                       (tool ? "tool_use" : "end_turn") +
                       "\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":" + std::to_string(s.events) + "}}",
                   s.crlf));
  ev.push_back(sse("message_stop", "{\"type\":\"message_stop\"}", s.crlf));
  return out;
}

const char* anthropic_error_type(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

// ---- Gemini ------------------------------------------------------------------------------

std::string gemini_usage(const script& s, int candidates) {
  return "\"usageMetadata\":{\"promptTokenCount\":" + std::to_string(s.prompt_tokens) +
         ",\"candidatesTokenCount\":" + std::to_string(candidates) +
         ",\"totalTokenCount\":" + std::to_string(static_cast<long long>(s.prompt_tokens) + candidates) + "}";
}

std::string gemini_response(const script& s, const std::string& part, bool finished, int candidates) {
  return "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[" + part + "]}," +
         (finished ? "\"finishReason\":\"STOP\"," : "") + "\"index\":0}]," + gemini_usage(s, candidates) +
         ",\"modelVersion\":" + json_quote(s.model) + ",\"responseId\":\"fake-gemini\"}";
}

std::string gemini_function_call(const script& s) {
  return "{\"functionCall\":{\"name\":" + json_quote(s.tool_name) + ",\"args\":" + std::string(tool_arguments) + "}}";
}

std::string gemini_body(const script& s) {
  const std::string part = s.tool_name.empty() ? "{\"text\":\"" + words(s.events, false) + "\"}" : gemini_function_call(s);
  return gemini_response(s, part, true, s.events);
}

framed_stream gemini_stream(const script& s) {
  framed_stream out;
  out.content_type = "text/event-stream";
  // Every event is a content event: there is no end marker.
  if (!s.tool_name.empty()) {
    out.events.push_back(sse({}, gemini_response(s, gemini_function_call(s), true, s.events), s.crlf));
  } else if (s.events == 0) {
    out.events.push_back(sse({}, gemini_response(s, "{\"text\":\"\"}", true, 0), s.crlf));
  } else {
    for (int i = 0; i < s.events; ++i) {
      out.events.push_back(
          sse({}, gemini_response(s, "{\"text\":\"" + word(i) + "\"}", i + 1 == s.events, i + 1), s.crlf));
    }
  }
  out.content_events = out.events.size();
  return out;
}

const char* gemini_status(int status) {
  switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 409: return "ABORTED";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 500: return "INTERNAL";
    case 501: return "NOT_IMPLEMENTED";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return status >= 500 ? "UNKNOWN" : "FAILED_PRECONDITION";
  }
}

// ---- Ollama ------------------------------------------------------------------------------

std::string ollama_head(const script& s) {
  return "{\"model\":" + json_quote(s.model) + ",\"created_at\":\"" + std::string(ollama_created_at) + "\",";
}

std::string ollama_tool_message(const script& s) {
  return "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":" +
         json_quote(s.tool_name) + ",\"arguments\":" + std::string(tool_arguments) + "}}]}";
}

std::string ollama_done(const script& s, std::string_view content) {
  return ollama_head(s) + "\"message\":{\"role\":\"assistant\",\"content\":\"" + std::string(content) +
         "\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":" + std::to_string(s.prompt_tokens) +
         ",\"eval_count\":" + std::to_string(s.events) + "}";
}

std::string ollama_body(const script& s) {
  if (!s.tool_name.empty()) {
    return ollama_head(s) + "\"message\":" + ollama_tool_message(s) +
           ",\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":" + std::to_string(s.prompt_tokens) +
           ",\"eval_count\":" + std::to_string(s.events) + "}";
  }
  return ollama_done(s, words(s.events, false));
}

framed_stream ollama_stream(const script& s) {
  framed_stream out;
  out.content_type = "application/x-ndjson";
  if (!s.tool_name.empty()) {
    out.events.push_back(ollama_head(s) + "\"message\":" + ollama_tool_message(s) + ",\"done\":false}\n");
  } else {
    for (int i = 0; i < s.events; ++i) {
      out.events.push_back(ollama_head(s) + "\"message\":{\"role\":\"assistant\",\"content\":\"" + word(i) +
                           "\"},\"done\":false}\n");
    }
  }
  out.content_events = out.events.size();
  out.events.push_back(ollama_done(s, "") + "\n");
  return out;
}

}  // namespace

std::string parse_provider_request(const json::object& body, script& out) {
  switch (out.kind) {
    case endpoint::anthropic: return parse_anthropic(body, out);
    case endpoint::gemini: return parse_gemini(body, out);
    case endpoint::ollama: return parse_ollama(body, out);
    default: return "not a provider endpoint";
  }
}

std::string provider_body(const script& s) {
  switch (s.kind) {
    case endpoint::anthropic: return anthropic_body(s);
    case endpoint::gemini: return gemini_body(s);
    case endpoint::ollama: return ollama_body(s);
    default: return {};
  }
}

framed_stream provider_stream(const script& s) {
  switch (s.kind) {
    case endpoint::anthropic: return anthropic_stream(s);
    case endpoint::gemini: return gemini_stream(s);
    case endpoint::ollama: return ollama_stream(s);
    default: return {};
  }
}

error_reply provider_error(endpoint kind, int status, std::string_view message, bool scripted) {
  error_reply r;
  switch (kind) {
    case endpoint::anthropic:
      r.body = "{\"type\":\"error\",\"error\":{\"type\":\"" + std::string(anthropic_error_type(status)) +
               "\",\"message\":" + json_quote(message) + "}}";
      if (scripted && status == 429) r.headers.emplace_back("Retry-After", "7");
      break;
    case endpoint::gemini:
      r.body = "{\"error\":{\"code\":" + std::to_string(status) + ",\"message\":" + json_quote(message) +
               ",\"status\":\"" + gemini_status(status) + "\"}}";
      break;
    case endpoint::ollama:
    default:
      r.body = "{\"error\":" + json_quote(message) + "}";
      break;
  }
  return r;
}

}  // namespace tollgate::testing::fake_wire::detail
