#include "tests/support/fake_wire.hpp"

#include "tests/support/fake_wire_detail.hpp"

#include <boost/json.hpp>

#include <cstdint>
#include <cstdio>

namespace tollgate::testing::fake_wire {
namespace {

namespace json = boost::json;

constexpr std::string_view created = "1700000000";

bool get_int(const json::value& v, int lo, int hi, int& out) {
  std::int64_t n = 0;
  if (v.is_int64()) {
    n = v.get_int64();
  } else if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(hi)) {
    n = static_cast<std::int64_t>(v.get_uint64());
  } else {
    return false;
  }
  if (n < lo || n > hi) return false;
  out = static_cast<int>(n);
  return true;
}

// The text of the last user message of an OpenAI chat request (string content or text parts).
std::string last_user_text(const json::object& body) {
  const json::value* messages = body.if_contains("messages");
  if (messages == nullptr || !messages->is_array()) return {};
  const json::array& list = messages->get_array();
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    const json::object* m = it->if_object();
    if (m == nullptr) continue;
    const json::value* role = m->if_contains("role");
    if (role == nullptr || !role->is_string() || role->get_string() != "user") continue;
    const json::value* content = m->if_contains("content");
    if (content == nullptr) return {};
    if (content->is_string()) return std::string(content->get_string());
    std::string text;
    if (const json::array* parts = content->if_array()) {
      for (const auto& part : *parts) {
        const json::object* p = part.if_object();
        const json::value* t = p != nullptr ? p->if_contains("text") : nullptr;
        if (t != nullptr && t->is_string()) text += t->get_string();
      }
    }
    return text;
  }
  return {};
}

}  // namespace

namespace detail {

std::string apply_message_script(std::string_view text, script& out) {
  if (!text.starts_with(script_prefix)) return {};
  text.remove_prefix(script_prefix.size());
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return "the fake: script in the last user message is not a JSON object";
  return apply_fake(v.get_object(), out);
}

std::string apply_fake(const json::object& fake, script& out) {
  for (const auto& [key, v] : fake) {
    bool ok = true;
    if (key == "events") {
      ok = get_int(v, 0, 1'000'000, out.events);
    } else if (key == "prompt_tokens") {
      ok = get_int(v, 0, 1'000'000'000, out.prompt_tokens);
    } else if (key == "delay_ms") {
      ok = get_int(v, 0, 600'000, out.delay_ms);
    } else if (key == "first_byte_delay_ms") {
      ok = get_int(v, 0, 600'000, out.first_byte_delay_ms);
    } else if (key == "status") {
      ok = get_int(v, 200, 599, out.status);
    } else if (key == "fail_after") {
      ok = get_int(v, 0, 1'000'000'000, out.fail_after);
    } else if (key == "fail_mode") {
      const auto* s = v.if_string();
      if (s == nullptr) {
        ok = false;
      } else if (*s == "reset") {
        out.fail = fail_mode::reset;
      } else if (*s == "truncate") {
        out.fail = fail_mode::truncate;
      } else if (*s == "stall") {
        out.fail = fail_mode::stall;
      } else {
        ok = false;
      }
    } else if (key == "fail_before_header" || key == "crlf" || key == "comments" ||
               key == "split") {
      const bool* b = v.if_bool();
      ok = b != nullptr;
      if (ok) {
        if (key == "fail_before_header") out.fail_before_header = *b;
        if (key == "crlf") out.crlf = *b;
        if (key == "comments") out.comments = *b;
        if (key == "split") out.split = *b;
      }
    } else {
      // Strict on purpose: a misspelt option in a test would otherwise silently do nothing.
      return "unknown fake option '" + std::string(key) + "'";
    }
    if (!ok) return "invalid value for fake option '" + std::string(key) + "'";
  }
  return {};
}

}  // namespace detail

std::string words(int n, bool trailing_space) {
  std::string out;
  out.reserve(static_cast<std::size_t>(n) * 5);
  for (int i = 0; i < n; ++i) {
    if (i > 0 && !trailing_space) out += ' ';
    out += 'w';
    out += std::to_string(i);
    if (trailing_space) out += ' ';
  }
  return out;
}

namespace {

std::string usage(const script& s, bool with_completion) {
  std::string out = "{\"prompt_tokens\":" + std::to_string(s.prompt_tokens);
  if (with_completion) out += ",\"completion_tokens\":" + std::to_string(s.events);
  const long long total =
      static_cast<long long>(s.prompt_tokens) + (with_completion ? s.events : 0);
  out += ",\"total_tokens\":" + std::to_string(total) + "}";
  return out;
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

}  // namespace

std::string json_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string parse_script(std::string_view body, endpoint kind, script& out,
                         std::string_view model_from_path, bool path_stream) {
  out = script{};
  out.kind = kind;
  // Request bodies are small: parse into a stack buffer first, the heap only when it overflows.
  unsigned char storage[4096];
  json::monotonic_resource mr(storage, sizeof storage);
  boost::system::error_code ec;
  json::value v = json::parse(body, ec, &mr);
  if (ec) return "We could not parse the JSON body of your request.";
  const json::object* obj = v.if_object();
  if (obj == nullptr) return "We could not parse the JSON body of your request.";

  if (kind == endpoint::anthropic || kind == endpoint::gemini || kind == endpoint::ollama) {
    out.model.assign(model_from_path.data(), model_from_path.size());
    out.stream = path_stream;
    if (std::string error = detail::parse_provider_request(*obj, out); !error.empty()) return error;
  } else {
    const json::value* model = obj->if_contains("model");
    if (model == nullptr || !model->is_string()) return "you must provide a model parameter";
    out.model.assign(model->get_string().data(), model->get_string().size());

    if (const json::value* stream = obj->if_contains("stream"); stream != nullptr) {
      if (!stream->is_bool() && !stream->is_null()) return "'stream' must be a boolean";
      out.stream = stream->is_bool() && stream->get_bool() && kind != endpoint::embeddings;
    }
    if (const json::value* so = obj->if_contains("stream_options"); so != nullptr && so->is_object()) {
      const json::value* iu = so->get_object().if_contains("include_usage");
      out.include_usage = iu != nullptr && iu->is_bool() && iu->get_bool();
    }
    if (kind == endpoint::chat) {
      if (std::string error = detail::apply_message_script(last_user_text(*obj), out); !error.empty()) {
        return error;
      }
    }
  }
  // The body member last: its options win over a message script's.
  if (const json::value* fake = obj->if_contains("fake"); fake != nullptr) {
    if (!fake->is_object()) return "'fake' must be an object";
    if (std::string error = detail::apply_fake(fake->get_object(), out); !error.empty()) return error;
  }
  if (kind == endpoint::ollama && (out.crlf || out.comments)) {
    return "fake options 'crlf' and 'comments' do not apply to NDJSON";
  }
  return {};
}

std::string response_body(const script& s) {
  const std::string model = json_quote(s.model);
  switch (s.kind) {
    case endpoint::chat:
      return "{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion\",\"created\":" +
             std::string(created) + ",\"model\":" + model +
             ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"" +
             words(s.events, false) + "\"},\"finish_reason\":\"stop\"}],\"usage\":" +
             usage(s, true) + "}";
    case endpoint::completions:
      return "{\"id\":\"cmpl-fake\",\"object\":\"text_completion\",\"created\":" +
             std::string(created) + ",\"model\":" + model + ",\"choices\":[{\"text\":\"" +
             words(s.events, false) +
             "\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":" +
             usage(s, true) + "}";
    case endpoint::embeddings:
      return "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
             "\"embedding\":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]}],\"model\":" +
             model + ",\"usage\":" + usage(s, false) + "}";
    case endpoint::anthropic:
    case endpoint::gemini:
    case endpoint::ollama:
      return detail::provider_body(s);
  }
  return {};
}

stream_plan stream_payloads(const script& s) {
  const bool chat = s.kind == endpoint::chat;
  const std::string prefix =
      std::string(chat ? "{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\""
                       : "{\"id\":\"cmpl-fake\",\"object\":\"text_completion\"") +
      ",\"created\":" + std::string(created) + ",\"model\":" + json_quote(s.model) +
      ",\"choices\":[";
  // OpenAI puts "usage":null on every chunk once include_usage is requested.
  const std::string suffix = s.include_usage ? "],\"usage\":null}" : "]}";

  stream_plan plan;
  plan.payloads.reserve(static_cast<std::size_t>(s.events) + 4);
  if (chat) {
    plan.payloads.push_back(
        prefix + "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}" +
        suffix);
  }
  plan.first_content = plan.payloads.size();
  for (int i = 0; i < s.events; ++i) {
    std::string word = "w";  // appended, not "w" + ...: GCC 12 warns falsely (-Wrestrict) there
    word += std::to_string(i);
    word += ' ';
    if (chat) {
      plan.payloads.push_back(prefix + "{\"index\":0,\"delta\":{\"content\":\"" + word +
                              "\"},\"finish_reason\":null}" + suffix);
    } else {
      plan.payloads.push_back(prefix + "{\"text\":\"" + word +
                              "\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}" + suffix);
    }
  }
  if (chat) {
    plan.payloads.push_back(prefix + "{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}" + suffix);
  } else {
    plan.payloads.push_back(
        prefix + "{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}" + suffix);
  }
  if (s.include_usage) plan.payloads.push_back(prefix + "],\"usage\":" + usage(s, true) + "}");
  plan.payloads.emplace_back("[DONE]");
  return plan;
}

framed_stream stream_events(const script& s) {
  if (s.kind == endpoint::anthropic || s.kind == endpoint::gemini || s.kind == endpoint::ollama) {
    return detail::provider_stream(s);
  }
  stream_plan plan = stream_payloads(s);
  framed_stream out;
  out.content_type = "text/event-stream";
  out.first_content = plan.first_content;
  out.content_events = static_cast<std::size_t>(s.events);
  out.events.reserve(plan.payloads.size());
  for (const auto& payload : plan.payloads) out.events.push_back(sse_event(payload, s.crlf));
  return out;
}

error_reply status_error(endpoint kind, int status) {
  const std::string message = "fake upstream error " + std::to_string(status);
  if (kind == endpoint::anthropic || kind == endpoint::gemini || kind == endpoint::ollama) {
    return detail::provider_error(kind, status, message, true);
  }
  error_reply r;
  if (status == 429) {
    r.body = error_body(message, "requests", "rate_limit_exceeded");
    r.headers.emplace_back("Retry-After", "7");
  } else {
    r.body = error_body(message, status >= 500 ? "server_error" : "invalid_request_error");
  }
  return r;
}

error_reply error_for(endpoint kind, int status, std::string_view message) {
  if (kind == endpoint::anthropic || kind == endpoint::gemini || kind == endpoint::ollama) {
    return detail::provider_error(kind, status, message, false);
  }
  return {error_body(message, "invalid_request_error"), {}};
}

std::string sse_event(std::string_view payload, bool crlf) {
  const std::string_view eol = crlf ? "\r\n" : "\n";
  std::string out;
  out.reserve(payload.size() + 10);
  out += "data: ";
  out += payload;
  out += eol;
  out += eol;
  return out;
}

std::string sse_comment(bool crlf) { return crlf ? ": keep-alive\r\n\r\n" : ": keep-alive\n\n"; }

std::string chunk(std::string_view data) {
  char size[20];
  const int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out;
  out.reserve(static_cast<std::size_t>(n) + data.size() + 2);
  out.append(size, static_cast<std::size_t>(n));
  out += data;
  out += "\r\n";
  return out;
}

std::string error_body(std::string_view message, std::string_view type, std::string_view code) {
  return "{\"error\":{\"message\":" + json_quote(message) + ",\"type\":" + json_quote(type) +
         ",\"code\":" + (code.empty() ? std::string("null") : json_quote(code)) + "}}";
}

std::string response_head(int status, std::string_view content_type, long long content_length,
                          bool keep_alive,
                          const std::vector<std::pair<std::string, std::string>>& extra) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\n";
  if (content_length >= 0) {
    out += "Content-Length: " + std::to_string(content_length) + "\r\n";
  } else {
    out += "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n";
  }
  for (const auto& [name, value] : extra) out += name + ": " + value + "\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

}  // namespace tollgate::testing::fake_wire
