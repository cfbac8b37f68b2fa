#pragma once

// One tollgate in front of several providers: OpenAI (passed through), Anthropic, Gemini and
// Ollama (translated from and to OpenAI's chat format) and the built-in mock. All providers
// are the same fake upstream, which answers each provider's own wire format; a translated
// request is scripted through its last user message ("fake:{...}"), the only part of the
// request every adapter keeps verbatim.

#include "tests/integration/helpers.hpp"
#include "tests/support/chat_reader.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <set>
#include <sstream>

namespace tollgate::itest {

using namespace std::chrono_literals;
using testing::chat_stream;
using testing::json_at;
using testing::json_int;
using testing::json_str;

inline constexpr const char* messages_path = "/v1/messages";
inline const std::string openai_key = "sk-oa-key-0123456789";
inline const std::string anthropic_key = "sk-ant-key-0123456789";
inline const std::string gemini_key = "gm-key-0123456789";

// oa: openai (gpt-test), ant: anthropic, gem: gemini, oll: ollama; all listing their models.
inline env_map providers_env(const fake_upstream& fake, env_map extra = {}) {
  const std::string base = "http://127.0.0.1:" + std::to_string(fake.port());
  env_map env{
      {"TOLLGATE_PROVIDERS", "oa,ant,gem,oll"},
      {"TOLLGATE_PROVIDER_OA_TYPE", "openai"},
      {"TOLLGATE_PROVIDER_OA_BASE_URL", base + "/v1"},
      {"TOLLGATE_PROVIDER_OA_MODELS", "gpt-test"},
      {"TOLLGATE_PROVIDER_ANT_TYPE", "anthropic"},
      {"TOLLGATE_PROVIDER_ANT_BASE_URL", base + "/v1"},
      {"TOLLGATE_PROVIDER_ANT_MODELS", "claude-sonnet-4-5,claude-haiku-4-5"},
      {"TOLLGATE_PROVIDER_GEM_TYPE", "gemini"},
      {"TOLLGATE_PROVIDER_GEM_BASE_URL", base + "/v1beta"},
      {"TOLLGATE_PROVIDER_GEM_MODELS", "gemini-2.5-flash"},
      {"TOLLGATE_PROVIDER_OLL_TYPE", "ollama"},
      {"TOLLGATE_PROVIDER_OLL_BASE_URL", base},
      {"TOLLGATE_PROVIDER_OLL_MODELS", "llama3.2"},
      {"TOLLGATE_MODEL_ALIASES", "fast=oll/llama3.2,smart=ant/claude-sonnet-4-5"},
      {"OPENAI_API_KEY", openai_key},
      {"ANTHROPIC_API_KEY", anthropic_key},
      {"GEMINI_API_KEY", gemini_key},
  };
  for (auto& [k, v] : extra) env[k] = v;
  return env;
}

// SIGTERM and the shared clean-exit checks, with the exit code and the last lines in the
// message when it is not 0.
inline void stop_cleanly(tollgate_process& proxy) {
  const auto code = proxy.stop(5s);
  if (code != std::optional<int>(0)) {
    const auto lines = proxy.process().stdout_lines();
    std::string tail;
    for (std::size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) tail += lines[i] + "\n";
    FAIL_CHECK("tollgate exit code " << (code ? std::to_string(*code) : "none: still running after 5 s")
                                     << " (128+n: killed by signal n); last stdout lines:\n" << tail);
  }
  expect_clean_exit(proxy);
}

// The fake and tollgate serving all four provider types from it; a clean exit is checked.
struct multi {
  explicit multi(env_map extra = {}) : proxy(providers_env(fake, std::move(extra))) {}
  ~multi() { stop_cleanly(proxy); }
  multi(const multi&) = delete;
  multi& operator=(const multi&) = delete;
  fake_upstream fake;
  tollgate_process proxy;
};

// The translated providers, one model of each.
struct translated {
  const char* name;
  const char* model;
};
inline constexpr translated translated_models[] = {
    {"anthropic", "claude-sonnet-4-5"},
    {"gemini", "gemini-2.5-flash"},
    {"ollama", "llama3.2"},
};

inline std::string script(const json::object& fake) { return "fake:" + json::serialize(fake); }

inline json::object chat_request(const std::string& model, const std::string& content, bool stream = false,
                          std::optional<bool> include_usage = {}) {
  json::object body{{"model", model},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", content}}}}};
  if (stream) body["stream"] = true;
  if (include_usage) body["stream_options"] = json::object{{"include_usage", *include_usage}};
  return body;
}

inline json::array weather_tools() {
  return json::array{json::object{
      {"type", "function"},
      {"function", json::object{{"name", "get_weather"},
                                {"description", "Current weather in a city"},
                                {"parameters", json::object{{"type", "object"},
                                                            {"properties", json::object{{"city", json::object{{"type", "string"}}}}},
                                                            {"required", json::array{"city"}}}}}}}};
}

inline http_response post(const multi& m, const std::string& path, const json::object& body, http_headers headers = {}) {
  return testing::http_request(m.proxy.port(), "POST", path, json::serialize(body), std::move(headers));
}

// The JSON object in `text`, or an empty object (with the failure reported) when it is not one.
inline json::object object_of(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  CHECK_MESSAGE((!ec && v.is_object()), "not a JSON object: " << text);
  return !ec && v.is_object() ? v.get_object() : json::object{};
}

// A tool call's arguments must be a JSON string that parses to {"city":"Paris"}.
inline bool paris(const std::string& arguments) {
  boost::system::error_code ec;
  const json::value v = json::parse(arguments, ec);
  return !ec && v == json::value(json::object{{"city", "Paris"}});
}

inline chat_stream read_chat_stream(const std::string& body) { return testing::read_chat_stream(sse_payloads(body)); }

inline std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

inline json::object record_of(const multi& m, const http_response& res) {
  const auto record = wait_for_record(m.proxy, header(res, "x-tollgate-request-id"));
  CHECK_MESSAGE(record.has_value(), "no access-log record for " << header(res, "x-tollgate-request-id"));
  return record.value_or(json::object{});
}

// Access-log checks collected in a loop and run after it: records are flushed every ~100 ms,
// so one wait serves them all.
class log_checks {
 public:
  void add(const http_response& res, std::string what, std::function<void(const json::object&)> check) {
    checks_.push_back({header(res, "x-tollgate-request-id"), std::move(what), std::move(check)});
  }
  void run(const tollgate_process& proxy) const {
    std::map<std::string, json::object> found;
    eventually(
        [&] {
          for (auto& r : proxy.log_records()) found[str(r, "request_id")] = std::move(r);
          return std::all_of(checks_.begin(), checks_.end(), [&](const auto& c) { return found.count(c.id) == 1; });
        },
        3s);
    for (const auto& c : checks_) {
      INFO(c.what);
      auto it = found.find(c.id);
      CHECK_MESSAGE(it != found.end(), "no access-log record for request " << c.id);
      if (it != found.end()) c.check(it->second);
    }
  }

 private:
  struct entry {
    std::string id, what;
    std::function<void(const json::object&)> check;
  };
  std::vector<entry> checks_;
};

inline void check_completed(const json::object& record, bool completed) {
  CHECK_MESSAGE(record.if_contains("stream_completed") != nullptr, json::serialize(record));
  if (record.if_contains("stream_completed")) CHECK(record.at("stream_completed") == json::value(completed));
}

// ---- the fake itself ---------------------------------------------------------------------------


}  // namespace tollgate::itest
