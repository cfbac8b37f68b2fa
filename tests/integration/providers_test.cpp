// One tollgate in front of several providers: OpenAI (passed through), Anthropic, Gemini and
// Ollama (translated from and to OpenAI's chat format) and the built-in mock. All providers
// are the same fake upstream, which answers each provider's own wire format; a translated
// request is scripted through its last user message ("fake:{...}"), the only part of the
// request every adapter keeps verbatim.

#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

inline constexpr const char* messages_path = "/v1/messages";
const std::string openai_key = "sk-oa-key-0123456789";
const std::string anthropic_key = "sk-ant-key-0123456789";
const std::string gemini_key = "gm-key-0123456789";

// oa: openai (gpt-test), ant: anthropic, gem: gemini, oll: ollama; all listing their models.
env_map providers_env(const fake_upstream& fake, env_map extra = {}) {
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

// The fake and tollgate serving all four provider types from it; a clean exit is checked.
struct multi {
  explicit multi(env_map extra = {}) : proxy(providers_env(fake, std::move(extra))) {}
  ~multi() { expect_clean_exit(proxy); }
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
constexpr translated translated_models[] = {
    {"anthropic", "claude-sonnet-4-5"},
    {"gemini", "gemini-2.5-flash"},
    {"ollama", "llama3.2"},
};

std::string script(const json::object& fake) { return "fake:" + json::serialize(fake); }

json::object chat_request(const std::string& model, const std::string& content, bool stream = false,
                          std::optional<bool> include_usage = {}) {
  json::object body{{"model", model},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", content}}}}};
  if (stream) body["stream"] = true;
  if (include_usage) body["stream_options"] = json::object{{"include_usage", *include_usage}};
  return body;
}

json::array weather_tools() {
  return json::array{json::object{
      {"type", "function"},
      {"function", json::object{{"name", "get_weather"},
                                {"description", "Current weather in a city"},
                                {"parameters", json::object{{"type", "object"},
                                                            {"properties", json::object{{"city", json::object{{"type", "string"}}}}},
                                                            {"required", json::array{"city"}}}}}}}};
}

http_response post(const multi& m, const std::string& path, const json::object& body, http_headers headers = {}) {
  return testing::http_request(m.proxy.port(), "POST", path, json::serialize(body), std::move(headers));
}

// The JSON object in `text`, or an empty object (with the failure reported) when it is not one.
json::object object_of(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  CHECK_MESSAGE((!ec && v.is_object()), "not a JSON object: " << text);
  return !ec && v.is_object() ? v.get_object() : json::object{};
}

const json::value* at_path(const json::value& v, std::initializer_list<std::string_view> keys) {
  const json::value* cur = &v;
  for (std::string_view k : keys) {
    if (cur == nullptr) return nullptr;
    if (const auto* o = cur->if_object()) {
      cur = o->if_contains(k);
    } else if (const auto* a = cur->if_array(); a != nullptr && !k.empty() && std::isdigit(static_cast<unsigned char>(k[0]))) {
      const std::size_t i = static_cast<std::size_t>(std::stoul(std::string(k)));
      cur = i < a->size() ? &(*a)[i] : nullptr;
    } else {
      return nullptr;
    }
  }
  return cur;
}
std::string str_at(const json::value& v, std::initializer_list<std::string_view> keys) {
  const auto* x = at_path(v, keys);
  return x != nullptr && x->is_string() ? std::string(x->get_string()) : std::string("<absent>");
}
std::optional<std::int64_t> int_at(const json::value& v, std::initializer_list<std::string_view> keys) {
  const auto* x = at_path(v, keys);
  if (x == nullptr) return std::nullopt;
  if (x->is_int64()) return x->get_int64();
  if (x->is_uint64()) return static_cast<std::int64_t>(x->get_uint64());
  return std::nullopt;
}

// A tool call's arguments must be a JSON string that parses to {"city":"Paris"}.
bool paris(const std::string& arguments) {
  boost::system::error_code ec;
  const json::value v = json::parse(arguments, ec);
  return !ec && v == json::value(json::object{{"city", "Paris"}});
}

// An OpenAI chat.completion.chunk stream, put back together.
struct chat_stream {
  std::size_t chunks = 0;
  bool done_last = false;  // "[DONE]" is the last payload, and only there
  std::string role;
  std::string content;
  std::vector<std::string> finish_reasons;
  std::optional<json::object> usage;  // the last non-null usage
  std::optional<json::object> error;  // an {"error":{...}} event
  struct call {
    std::string id, type, name, arguments;
  };
  std::map<std::int64_t, call> tool_calls;
  std::vector<std::string> problems;
};

chat_stream read_chat_stream(const std::string& body) {
  chat_stream out;
  const auto payloads = sse_payloads(body);
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    const std::string& p = payloads[i];
    if (p == "[DONE]") {
      if (i + 1 == payloads.size()) out.done_last = true;
      else out.problems.push_back("[DONE] before the end");
      continue;
    }
    boost::system::error_code ec;
    json::value v = json::parse(p, ec);
    if (ec || !v.is_object()) {
      out.problems.push_back("not JSON: " + p);
      continue;
    }
    auto& o = v.get_object();
    if (o.contains("error")) {
      if (auto e = error_object(p)) out.error = *e;
      else out.problems.push_back("malformed error event: " + p);
      continue;
    }
    ++out.chunks;
    if (str(o, "object") != "chat.completion.chunk") out.problems.push_back("not a chunk: " + p);
    if (const auto* u = o.if_contains("usage"); u != nullptr && u->is_object()) out.usage = u->get_object();
    const auto* choices = o.if_contains("choices");
    if (choices == nullptr || !choices->is_array()) {
      out.problems.push_back("no choices: " + p);
      continue;
    }
    for (const auto& c : choices->get_array()) {
      const auto* delta = at_path(c, {"delta"});
      if (delta == nullptr || !delta->is_object()) {
        out.problems.push_back("choice without delta: " + p);
        continue;
      }
      if (const auto* r = at_path(*delta, {"role"}); r != nullptr && r->is_string()) out.role = r->get_string();
      if (const auto* t = at_path(*delta, {"content"}); t != nullptr && t->is_string()) out.content += t->get_string();
      if (const auto* f = at_path(c, {"finish_reason"}); f != nullptr && f->is_string()) {
        out.finish_reasons.emplace_back(f->get_string());
      }
      if (const auto* calls = at_path(*delta, {"tool_calls"}); calls != nullptr && calls->is_array()) {
        for (const auto& tc : calls->get_array()) {
          const auto index = int_at(tc, {"index"});
          if (!index) {
            out.problems.push_back("tool call delta without index: " + p);
            continue;
          }
          auto& call = out.tool_calls[*index];
          if (const auto* id = at_path(tc, {"id"}); id != nullptr && id->is_string()) call.id = id->get_string();
          if (const auto* ty = at_path(tc, {"type"}); ty != nullptr && ty->is_string()) call.type = ty->get_string();
          if (const auto* n = at_path(tc, {"function", "name"}); n != nullptr && n->is_string()) call.name += n->get_string();
          if (const auto* a = at_path(tc, {"function", "arguments"}); a != nullptr && a->is_string()) {
            call.arguments += a->get_string();
          }
        }
      }
    }
  }
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

json::object record_of(const multi& m, const http_response& res) {
  const auto record = wait_for_record(m.proxy, header(res, "x-tollgate-request-id"));
  CHECK_MESSAGE(record.has_value(), "no access-log record for " << header(res, "x-tollgate-request-id"));
  return record.value_or(json::object{});
}

// ---- models and routing ------------------------------------------------------------------------

TEST_CASE("providers: GET /v1/models lists every provider's models, prefixed and bare, and the aliases") {
  multi m;
  const auto res = testing::http_request(m.proxy.port(), "GET", "/v1/models");
  REQUIRE(res.status == 200);
  CHECK(header(res, "content-type").starts_with("application/json"));
  const json::value v = json::parse(res.body);
  CHECK(str_at(v, {"object"}) == "list");
  const auto* data = at_path(v, {"data"});
  REQUIRE_MESSAGE((data != nullptr && data->is_array()), res.body);
  std::map<std::string, std::string> owner;  // id -> owned_by
  for (const auto& entry : data->get_array()) {
    INFO(json::serialize(entry));
    CHECK(str_at(entry, {"object"}) == "model");
    CHECK(int_at(entry, {"created"}) == 0);
    owner[str_at(entry, {"id"})] = str_at(entry, {"owned_by"});
  }
  const std::map<std::string, std::string> expected = {
      {"gpt-test", "oa"},           {"oa/gpt-test", "oa"},
      {"claude-sonnet-4-5", "ant"}, {"ant/claude-sonnet-4-5", "ant"},
      {"claude-haiku-4-5", "ant"},  {"ant/claude-haiku-4-5", "ant"},
      {"gemini-2.5-flash", "gem"},  {"gem/gemini-2.5-flash", "gem"},
      {"llama3.2", "oll"},          {"oll/llama3.2", "oll"},
  };
  for (const auto& [id, provider] : expected) {
    INFO(id);
    REQUIRE_MESSAGE(owner.count(id) == 1, res.body);
    CHECK(owner[id] == provider);
  }
  for (const char* alias : {"fast", "smart"}) {
    INFO(alias);
    CHECK_MESSAGE(owner.count(alias) == 1, res.body);
    if (owner.count(alias)) CHECK(owner[alias] != "<absent>");
  }
}

TEST_CASE("providers: each model name reaches its provider with the provider's model name and key") {
  multi m;
  struct row {
    std::string requested;
    std::string target;    // what the fake saw
    std::string model;     // in the upstream body (Gemini: in the URL)
    std::string provider;  // which authentication to expect
  };
  const row rows[] = {
      {"gpt-test", "/v1/chat/completions", "gpt-test", "oa"},
      {"oa/gpt-test", "/v1/chat/completions", "gpt-test", "oa"},
      {"claude-sonnet-4-5", "/v1/messages", "claude-sonnet-4-5", "ant"},
      {"ant/claude-haiku-4-5", "/v1/messages", "claude-haiku-4-5", "ant"},
      {"smart", "/v1/messages", "claude-sonnet-4-5", "ant"},
      {"gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent", "", "gem"},
      {"gem/gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent", "", "gem"},
      {"llama3.2", "/api/chat", "llama3.2", "oll"},
      {"oll/llama3.2", "/api/chat", "llama3.2", "oll"},
      {"fast", "/api/chat", "llama3.2", "oll"},
  };
  for (const auto& r : rows) {
    INFO("model " << r.requested);
    const auto before = m.fake.requests().size();
    const auto res = post(m, chat_path, chat_request(r.requested, "hello"), {{"Authorization", "Bearer client-key"}});
    CHECK_MESSAGE(res.status == 200, res.body);
    const auto recorded = m.fake.requests();
    REQUIRE(recorded.size() == before + 1);
    const auto& up = recorded.back();
    CHECK(up.target == r.target);
    if (!r.model.empty()) CHECK(str(object_of(up.body), "model") == r.model);
    // Each provider gets its own credential and no other provider's.
    const std::string all_headers = [&] {
      std::string s;
      for (const auto& [k, v] : up.headers) s += k + ": " + v + "\n";
      return s;
    }();
    INFO("upstream headers:\n" << all_headers);
    if (r.provider != "oa") CHECK(all_headers.find(openai_key) == std::string::npos);
    if (r.provider != "ant") CHECK(all_headers.find(anthropic_key) == std::string::npos);
    if (r.provider != "gem") CHECK(all_headers.find(gemini_key) == std::string::npos);
    CHECK(up.target.find("key=") == std::string::npos);  // Gemini: a header, never the URL
    if (r.provider == "oa") CHECK(header(up, "authorization") == "Bearer " + openai_key);
    if (r.provider == "ant") {
      CHECK(header(up, "x-api-key") == anthropic_key);
      CHECK(header(up, "anthropic-version") == "2023-06-01");
    }
    if (r.provider == "gem") CHECK(header(up, "x-goog-api-key") == gemini_key);
    if (r.provider != "oa") CHECK(header(up, "authorization").find("client-key") == std::string::npos);
    if (r.provider != "oa") CHECK(header(up, "content-type").starts_with("application/json"));
  }
}

TEST_CASE("providers: an unknown model is a 404 model_not_found naming it, and nothing goes upstream") {
  multi m;
  for (const std::string model : {"no-such-model", "nope/gpt-test", "ant/gpt-test-typo"}) {
    INFO(model);
    for (bool stream : {false, true}) {
      INFO("stream " << stream);
      const auto res = post(m, chat_path, chat_request(model, "hello", stream));
      CHECK(res.status == 404);
      const auto error = error_object(res.body);
      REQUIRE_MESSAGE(error.has_value(), res.body);
      CHECK(str(*error, "code") == "model_not_found");
      CHECK_MESSAGE(str(*error, "message").find(model) != std::string::npos, res.body);
    }
  }
  CHECK(m.fake.stats().requests == 0);
}

TEST_CASE("providers: a bare name nobody lists goes to the first provider without a model list") {
  fake_upstream fake;
  const std::string base = "http://127.0.0.1:" + std::to_string(fake.port());
  tollgate_process proxy({{"TOLLGATE_PROVIDERS", "ant,oll,oa"},
                          {"TOLLGATE_PROVIDER_ANT_TYPE", "anthropic"},
                          {"TOLLGATE_PROVIDER_ANT_BASE_URL", base + "/v1"},
                          {"TOLLGATE_PROVIDER_ANT_MODELS", "claude-x"},
                          {"TOLLGATE_PROVIDER_OLL_TYPE", "ollama"},
                          {"TOLLGATE_PROVIDER_OLL_BASE_URL", base},
                          {"TOLLGATE_PROVIDER_OA_TYPE", "openai"},
                          {"TOLLGATE_PROVIDER_OA_BASE_URL", base + "/v1"},
                          {"ANTHROPIC_API_KEY", anthropic_key}});
  const std::pair<std::string, std::string> rows[] = {
      {"claude-x", "/v1/messages"},   // listed
      {"some-model", "/api/chat"},    // first catch-all: oll
      {"oa/some-model", "/v1/chat/completions"},
  };
  for (const auto& [model, target] : rows) {
    INFO(model);
    const auto res = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(chat_request(model, "hi")));
    CHECK_MESSAGE(res.status == 200, res.body);
    const auto recorded = fake.requests();
    REQUIRE_FALSE(recorded.empty());
    CHECK(recorded.back().target == target);
    CHECK(str(object_of(recorded.back().body), "model") == model.substr(model.find('/') + 1));
  }
  expect_clean_exit(proxy);
}

// ---- translated chat ---------------------------------------------------------------------------

TEST_CASE("providers: a translated chat answer is an OpenAI chat.completion with the provider's usage") {
  multi m;
  for (const auto& t : translated_models) {
    INFO(t.name);
    const auto res = post(m, chat_path, chat_request(t.model, script({{"events", 3}, {"prompt_tokens", 7}})));
    REQUIRE_MESSAGE(res.status == 200, res.body);
    CHECK(header(res, "content-type").starts_with("application/json"));
    const json::value v = object_of(res.body);
    INFO(res.body);
    CHECK(str_at(v, {"object"}) == "chat.completion");
    CHECK(str_at(v, {"choices", "0", "message", "role"}) == "assistant");
    CHECK(str_at(v, {"choices", "0", "message", "content"}) == "w0 w1 w2");
    CHECK(str_at(v, {"choices", "0", "finish_reason"}) == "stop");
    CHECK(int_at(v, {"usage", "prompt_tokens"}) == 7);
    CHECK(int_at(v, {"usage", "completion_tokens"}) == 3);
    CHECK(int_at(v, {"usage", "total_tokens"}) == 10);
    const auto record = record_of(m, res);
    CHECK(int_field(record, "status") == 200);
    CHECK(int_field(record, "prompt_tokens") == 7);
    CHECK(int_field(record, "completion_tokens") == 3);
  }
  CHECK(m.fake.stats().requests == 3);
}

TEST_CASE("providers: a translated stream is an OpenAI chunk stream ending in [DONE]") {
  multi m;
  for (const auto& t : translated_models) {
    for (std::optional<bool> include_usage : {std::optional<bool>{}, std::optional<bool>(false), std::optional<bool>(true)}) {
      INFO(t.name << ", include_usage " << (include_usage ? (*include_usage ? "true" : "false") : "absent"));
      const auto streams_before = m.fake.stats().streams_completed;
      const auto res = post(m, chat_path, chat_request(t.model, script({{"events", 4}, {"prompt_tokens", 9}}), true, include_usage));
      REQUIRE_MESSAGE(res.status == 200, res.body);
      CHECK(header(res, "content-type").starts_with("text/event-stream"));
      CHECK(header(res, "transfer-encoding") == "chunked");
      INFO(res.body);
      const auto s = read_chat_stream(res.body);
      CHECK_MESSAGE(s.problems.empty(), joined(s.problems));
      CHECK(s.done_last);
      CHECK_FALSE(s.error.has_value());
      CHECK(s.role == "assistant");
      CHECK(s.content == "w0 w1 w2 w3 ");
      CHECK(s.finish_reasons == std::vector<std::string>{"stop"});
      CHECK(s.tool_calls.empty());
      if (include_usage == std::optional<bool>(true)) {
        REQUIRE(s.usage.has_value());
        CHECK(int_field(*s.usage, "prompt_tokens") == 9);
        CHECK(int_field(*s.usage, "completion_tokens") == 4);
        CHECK(int_field(*s.usage, "total_tokens") == 13);
      } else {
        CHECK_FALSE(s.usage.has_value());  // the client did not ask for it
      }
      const auto record = record_of(m, res);
      CHECK(record.if_contains("stream_completed") != nullptr);
      if (record.if_contains("stream_completed")) CHECK(record.at("stream_completed") == json::value(true));
      CHECK(int_field(record, "prompt_tokens") == 9);
      CHECK(int_field(record, "completion_tokens") == 4);
      CHECK(m.fake.wait_until([&](const auto& st) { return st.streams_completed == streams_before + 1; }, 2s));
    }
  }
  // The upstream was asked to stream in its own way.
  std::set<std::string> targets;
  for (const auto& r : m.fake.requests()) targets.insert(r.target);
  CHECK(targets.count("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse") == 1);
  for (const auto& r : m.fake.requests()) {
    if (r.target == "/v1/messages") CHECK(object_of(r.body)["stream"] == json::value(true));
    if (r.target == "/api/chat") CHECK(object_of(r.body)["stream"] == json::value(true));
  }
}

TEST_CASE("providers: tool calls come back as OpenAI tool_calls, streamed and not") {
  multi m;
  for (const auto& t : translated_models) {
    INFO(t.name);
    auto body = chat_request(t.model, "What is the weather in Paris?");
    body["tools"] = weather_tools();
    {
      const auto res = post(m, chat_path, body);
      REQUIRE_MESSAGE(res.status == 200, res.body);
      const json::value v = object_of(res.body);
      INFO(res.body);
      CHECK(str_at(v, {"choices", "0", "finish_reason"}) == "tool_calls");
      CHECK(str_at(v, {"choices", "0", "message", "tool_calls", "0", "type"}) == "function");
      CHECK(str_at(v, {"choices", "0", "message", "tool_calls", "0", "function", "name"}) == "get_weather");
      CHECK(paris(str_at(v, {"choices", "0", "message", "tool_calls", "0", "function", "arguments"})));
      CHECK_FALSE(str_at(v, {"choices", "0", "message", "tool_calls", "0", "id"}).empty());
      CHECK(int_at(v, {"usage", "completion_tokens"}) == 5);
    }
    {
      body["stream"] = true;
      const auto res = post(m, chat_path, body);
      REQUIRE_MESSAGE(res.status == 200, res.body);
      INFO(res.body);
      const auto s = read_chat_stream(res.body);
      CHECK_MESSAGE(s.problems.empty(), joined(s.problems));
      CHECK(s.done_last);
      CHECK(s.finish_reasons == std::vector<std::string>{"tool_calls"});
      REQUIRE(s.tool_calls.size() == 1);
      const auto& call = s.tool_calls.begin()->second;
      CHECK(call.name == "get_weather");
      CHECK(call.type == "function");
      CHECK_FALSE(call.id.empty());
      CHECK_MESSAGE(paris(call.arguments), call.arguments);
      const auto record = record_of(m, res);
      CHECK(int_field(record, "completion_tokens") == 5);
    }
  }
  // Every upstream got the tool in its own shape (the fake answers 400 to a malformed one).
  for (const auto& r : m.fake.requests()) {
    INFO(r.target << " " << r.body);
    const json::value v = object_of(r.body);
    if (r.target == "/v1/messages") CHECK(str_at(v, {"tools", "0", "name"}) == "get_weather");
    if (r.target.starts_with("/v1beta/")) {
      CHECK(str_at(v, {"tools", "0", "functionDeclarations", "0", "name"}) == "get_weather");
    }
    if (r.target == "/api/chat") CHECK(str_at(v, {"tools", "0", "function", "name"}) == "get_weather");
  }
}

// ---- errors ---------------------------------------------------------------------------------

TEST_CASE("providers: provider errors become OpenAI-shaped errors with the matching status") {
  multi m;
  struct row {
    std::string name;
    std::string model;
    int upstream_status;
    int status;               // 0: any 5xx
    std::string retry_after;  // expected Retry-After, "" for none
    std::string code;         // expected error code, "" for any
  };
  const row rows[] = {
      {"anthropic overloaded", "claude-sonnet-4-5", 529, 503, "", ""},
      {"anthropic rate limit", "claude-sonnet-4-5", 429, 429, "7", ""},
      {"anthropic invalid request", "claude-sonnet-4-5", 400, 400, "", ""},
      {"anthropic api error", "claude-sonnet-4-5", 500, 0, "", ""},
      {"gemini rate limit", "gemini-2.5-flash", 429, 429, "", ""},
      {"gemini unavailable", "gemini-2.5-flash", 503, 0, "", ""},
      {"ollama model not found", "llama3.2", 404, 404, "", "model_not_found"},
      {"ollama server error", "llama3.2", 500, 0, "", ""},
  };
  for (const auto& r : rows) {
    for (bool stream : {false, true}) {
      INFO(r.name << (stream ? ", stream" : ""));
      const auto res = post(m, chat_path, chat_request(r.model, script({{"status", r.upstream_status}}), stream));
      INFO(res.body);
      if (r.status != 0) CHECK(res.status == r.status);
      else CHECK((res.status >= 500 && res.status <= 599));
      CHECK(header(res, "content-type").starts_with("application/json"));
      const auto error = error_object(res.body);
      REQUIRE_MESSAGE(error.has_value(), "not an OpenAI-shaped error: " << res.body);
      CHECK_FALSE(str(*error, "message").empty());
      if (!r.code.empty()) CHECK(str(*error, "code") == r.code);
      if (!r.retry_after.empty()) CHECK(header(res, "retry-after") == r.retry_after);
      const auto record = record_of(m, res);
      CHECK(int_field(record, "status") == res.status);
      CHECK(int_field(record, "upstream_status") == r.upstream_status);
    }
  }
}

TEST_CASE("providers: a translated stream cut mid-way ends with an error event and [DONE]") {
  struct row {
    std::string model;
    std::string mode;
  };
  const row rows[] = {
      {"claude-sonnet-4-5", "reset"},
      {"gemini-2.5-flash", "reset"},
      {"llama3.2", "reset"},
      {"claude-sonnet-4-5", "truncate"},
      {"llama3.2", "truncate"},
  };
  multi m;
  for (const auto& r : rows) {
    INFO(r.model << ", " << r.mode);
    const auto faults_before = m.fake.stats().faults_injected;
    http_connection c(m.proxy.port());
    c.start("POST", chat_path,
            json::serialize(chat_request(
                r.model, script({{"events", 5}, {"delay_ms", 5}, {"fail_after", 2}, {"fail_mode", r.mode}}), true)));
    const auto head = c.read_header(5s);
    REQUIRE(head.status == 200);
    CHECK(header(head, "content-type").starts_with("text/event-stream"));
    std::string body;
    REQUIRE_NOTHROW(body = c.read_body(5s));  // the chunked response ends properly
    INFO(body);
    const auto s = read_chat_stream(body);
    CHECK_MESSAGE(s.problems.empty(), joined(s.problems));
    CHECK(s.content == "w0 w1 ");  // what was delivered before the failure
    CHECK(s.done_last);
    REQUIRE(s.error.has_value());
    CHECK(str(*s.error, "code") == "upstream_stream_interrupted");
    CHECK(std::find(s.finish_reasons.begin(), s.finish_reasons.end(), "stop") == s.finish_reasons.end());
    // The error event is the last event before [DONE].
    const auto payloads = sse_payloads(body);
    REQUIRE(payloads.size() >= 2);
    CHECK(error_object(payloads[payloads.size() - 2]).has_value());
    CHECK(m.fake.stats().faults_injected == faults_before + 1);

    const auto record = wait_for_record(m.proxy, header(head, "x-tollgate-request-id"));
    REQUIRE(record.has_value());
    CHECK(record->at("stream") == json::value(true));
    CHECK(record->at("stream_completed") == json::value(false));
  }
}

TEST_CASE("providers: a client hanging up mid-stream cancels the translated upstream stream") {
  multi m;
  for (const auto& t : translated_models) {
    INFO(t.name);
    const auto before = m.fake.stats();
    http_connection c(m.proxy.port());
    c.start("POST", chat_path, json::serialize(chat_request(t.model, script({{"events", 50}, {"delay_ms", 20}}), true)));
    const auto head = c.read_header(5s);
    REQUIRE(head.status == 200);
    REQUIRE(c.read_body_some(5s).has_value());
    c.close();
    CHECK(m.fake.wait_until([&](const auto& st) { return st.streams_aborted == before.streams_aborted + 1; }, 2s));
    CHECK(m.fake.stats().streams_completed == before.streams_completed);
    const auto record = wait_for_record(m.proxy, header(head, "x-tollgate-request-id"));
    REQUIRE(record.has_value());
    CHECK(int_field(*record, "status") == 499);
    CHECK(record->at("stream_completed") == json::value(false));
  }
}

TEST_CASE("providers: /v1/completions and /v1/embeddings to a non-OpenAI provider are 400") {
  multi m;
  for (const auto& t : translated_models) {
    INFO(t.name);
    const auto completion = testing::http_request(m.proxy.port(), "POST", completions_path,
                                                  completion_body({}, false, t.model));
    CHECK(completion.status == 400);
    CHECK_MESSAGE(error_object(completion.body).has_value(), completion.body);
    const auto embedding = testing::http_request(m.proxy.port(), "POST", embeddings_path, embedding_body({}, t.model));
    CHECK(embedding.status == 400);
    CHECK_MESSAGE(error_object(embedding.body).has_value(), embedding.body);
  }
  CHECK(m.fake.stats().requests == 0);
  // The OpenAI provider still serves them.
  CHECK(testing::http_request(m.proxy.port(), "POST", completions_path, completion_body({}, false, "gpt-test")).status == 200);
  CHECK(testing::http_request(m.proxy.port(), "POST", embeddings_path, embedding_body({}, "gpt-test")).status == 200);
}

// ---- Anthropic's own API -------------------------------------------------------------------------

json::object messages_request(const std::string& model, bool stream, json::object fake) {
  json::object body{{"model", model},
                    {"max_tokens", 64},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", "Hello, Claude"}}}}};
  if (stream) body["stream"] = true;
  if (!fake.empty()) body["fake"] = std::move(fake);
  return body;
}

TEST_CASE("providers: POST /v1/messages is forwarded natively to an Anthropic model") {
  fake_upstream reference;
  multi m;
  for (bool stream : {false, true}) {
    INFO("stream " << stream);
    const std::string body = json::serialize(messages_request("claude-sonnet-4-5", stream, {{"events", 4}, {"prompt_tokens", 11}}));
    const auto expected = testing::http_request(reference.port(), "POST", messages_path, body);
    REQUIRE(expected.status == 200);
    const auto before = m.fake.requests().size();
    const auto res = testing::http_request(m.proxy.port(), "POST", messages_path, body,
                                           {{"anthropic-version", "2023-06-01"}});
    CHECK(res.status == 200);
    CHECK(same_bytes(res.body, expected.body) == "");
    CHECK(header(res, "content-type") == header(expected, "content-type"));

    const auto recorded = m.fake.requests();
    REQUIRE(recorded.size() == before + 1);
    CHECK(recorded.back().target == "/v1/messages");
    CHECK(same_bytes(recorded.back().body, body) == "");
    CHECK(header(recorded.back(), "x-api-key") == anthropic_key);
    CHECK(header(recorded.back(), "anthropic-version") == "2023-06-01");

    const auto record = record_of(m, res);
    CHECK(int_field(record, "status") == 200);
    CHECK(int_field(record, "prompt_tokens") == 11);
    CHECK(int_field(record, "completion_tokens") == 4);
    if (stream) {
      CHECK(record.if_contains("stream_completed") != nullptr);
      if (record.if_contains("stream_completed")) CHECK(record.at("stream_completed") == json::value(true));
    }
  }
}

TEST_CASE("providers: POST /v1/messages to a model that is not Anthropic's is 400") {
  multi m;
  for (const std::string model : {"gpt-test", "gemini-2.5-flash", "llama3.2", "fast"}) {
    INFO(model);
    const auto res = testing::http_request(m.proxy.port(), "POST", messages_path,
                                           json::serialize(messages_request(model, false, {})));
    CHECK_MESSAGE(res.status == 400, res.body);
  }
  CHECK(m.fake.stats().requests == 0);
}

// ---- the mock provider -----------------------------------------------------------------------

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

TEST_CASE("providers: the mock provider writes max_tokens lorem ipsum words, streamed and not") {
  tollgate_process proxy({{"TOLLGATE_PROVIDERS", "m"},
                          {"TOLLGATE_PROVIDER_M_TYPE", "mock"},
                          {"TOLLGATE_PROVIDER_M_TOKEN_LATENCY_MS", "0"}});
  SUBCASE("not streamed") {
    auto body = chat_request("anything", "hello");
    body["max_tokens"] = 5;
    const auto res = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(body));
    REQUIRE(res.status == 200);
    INFO(res.body);
    const json::value v = object_of(res.body);
    CHECK(str_at(v, {"object"}) == "chat.completion");
    const std::string content = str_at(v, {"choices", "0", "message", "content"});
    CHECK(content.starts_with("lorem ipsum dolor"));
    CHECK(split_words(content).size() == 5);
    CHECK(str_at(v, {"choices", "0", "finish_reason"}) != "<absent>");
    CHECK(int_at(v, {"usage", "completion_tokens"}) == 5);
  }
  SUBCASE("streamed: a role chunk, one chunk per word, a finish chunk, [DONE]") {
    auto body = chat_request("anything", "hello", true);
    body["max_tokens"] = 4;
    const auto res = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(body));
    REQUIRE(res.status == 200);
    CHECK(header(res, "content-type").starts_with("text/event-stream"));
    INFO(res.body);
    const auto s = read_chat_stream(res.body);
    CHECK_MESSAGE(s.problems.empty(), joined(s.problems));
    CHECK(s.done_last);
    CHECK(s.role == "assistant");
    CHECK(s.content.starts_with("lorem ipsum dolor"));
    CHECK(split_words(s.content).size() == 4);
    CHECK(s.chunks == 1 + 4 + 1);
    CHECK(s.finish_reasons.size() == 1);
  }
  SUBCASE("an echo model repeats the last user message") {
    json::object body{{"model", "mock-echo"},
                      {"messages", json::array{json::object{{"role", "user"}, {"content", "first message"}},
                                               json::object{{"role", "assistant"}, {"content", "ok"}},
                                               json::object{{"role", "user"}, {"content", "repeat after me please"}}}}}};
    const auto res = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(body));
    REQUIRE(res.status == 200);
    INFO(res.body);
    CHECK(split_words(str_at(object_of(res.body), {"choices", "0", "message", "content"})) ==
          split_words("repeat after me please"));
    body["stream"] = true;
    const auto streamed = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(body));
    REQUIRE(streamed.status == 200);
    CHECK(split_words(read_chat_stream(streamed.body).content) == split_words("repeat after me please"));
  }
  expect_clean_exit(proxy);
}

TEST_CASE("providers: with nothing configured tollgate runs its built-in mock and says so") {
  tollgate_process proxy(env_map{});  // no providers, no API key, no upstream URL
  const auto mentions_mock = [](const std::vector<std::string>& lines) {
    return std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
      std::string lower = l;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      return lower.find("mock") != std::string::npos;
    });
  };
  CHECK_MESSAGE((mentions_mock(proxy.process().stdout_lines()) || mentions_mock(proxy.process().stderr_lines())),
                "no startup line mentions the mock; started: " << json::serialize(proxy.started_event())
                                                               << "\nstderr:\n" << proxy.process().stderr_text());
  const auto res = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(chat_request("gpt-4o-mini", "hi")));
  CHECK(res.status == 200);
  CHECK(str_at(object_of(res.body), {"object"}) == "chat.completion");
  expect_clean_exit(proxy);
}

}  // namespace
}  // namespace tollgate::itest
