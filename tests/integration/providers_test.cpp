// Routing and translation: one tollgate in front of OpenAI (passed through), Anthropic, Gemini
// and Ollama (translated), all played by the fake upstream in its provider formats.

#include "tests/integration/provider_fixture.hpp"

namespace tollgate::itest {
namespace {

TEST_CASE("providers: the fake speaks each format, scripted by the message, with meaningful stats") {
  fake_upstream fake;
  struct row {
    std::string name;
    std::string target;
    json::object body;  // "CONTENT" is replaced by the script
  };
  const auto user = [](const std::string& text) {
    return json::array{json::object{{"role", "user"}, {"content", text}}};
  };
  const auto gemini_user = [](const std::string& text) {
    return json::array{json::object{{"role", "user"}, {"parts", json::array{json::object{{"text", text}}}}}};
  };
  // Plain; a reset after one content event; fail_after beyond the content: the end never comes.
  for (const std::string& script_text : {std::string("fake:{\"events\":3}"),
                                         std::string("fake:{\"events\":3,\"fail_after\":1,\"fail_mode\":\"reset\"}"),
                                         std::string("fake:{\"events\":3,\"fail_after\":9,\"fail_mode\":\"truncate\"}")}) {
    const bool faulted = script_text.find("fail_mode") != std::string::npos;
    const row rows[] = {
        {"openai", "/v1/chat/completions", {{"model", "m"}, {"stream", true}, {"messages", user(script_text)}}},
        {"anthropic", "/v1/messages",
         {{"model", "m"}, {"max_tokens", 8}, {"stream", true}, {"messages", user(script_text)}}},
        {"gemini", "/v1beta/models/m:streamGenerateContent?alt=sse", {{"contents", gemini_user(script_text)}}},
        {"ollama", "/api/chat", {{"model", "m"}, {"messages", user(script_text)}}},  // streams by default
    };
    for (const auto& r : rows) {
      INFO(r.name << (faulted ? ", faulted" : ""));
      const auto before = fake.stats();
      std::string body;
      bool broke = false;
      try {
        const auto res = testing::http_request(fake.port(), "POST", r.target, json::serialize(r.body));
        CHECK(res.status == 200);
        body = res.body;
      } catch (const http_error&) {
        broke = true;
      }
      CHECK(broke == faulted);
      if (!faulted) {
        CHECK(body.find("w2 ") != std::string::npos);
        CHECK(body.find("w3 ") == std::string::npos);
      }
      CHECK(fake.wait_until(
          [&](const auto& st) {
            return st.streams_started == before.streams_started + 1 &&
                   st.streams_completed == before.streams_completed + (faulted ? 0 : 1) &&
                   st.faults_injected == before.faults_injected + (faulted ? 1 : 0);
          },
          2s));
    }
  }
  // Strict where the real APIs are: a translation bug shows up as a 400 in the provider's shape.
  const auto missing_max_tokens = testing::http_request(
      fake.port(), "POST", "/v1/messages", R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  CHECK(missing_max_tokens.status == 400);
  CHECK(json_str(object_of(missing_max_tokens.body), {"type"}) == "error");
  const auto unknown_field = testing::http_request(fake.port(), "POST", "/v1beta/models/m:generateContent",
                                                   R"({"contents":[{"parts":[{"text":"x"}]}],"model":"m"})");
  CHECK(unknown_field.status == 400);
  CHECK(json_str(object_of(unknown_field.body), {"error", "status"}) == "INVALID_ARGUMENT");
  const auto bad_option = testing::http_request(fake.port(), "POST", "/api/chat",
                                                R"({"model":"m","messages":[{"role":"user","content":"fake:{\"evnts\":1}"}]})");
  CHECK(bad_option.status == 400);
  CHECK(json_str(object_of(bad_option.body), {"error"}).find("evnts") != std::string::npos);
}

// ---- models and routing ------------------------------------------------------------------------

TEST_CASE("providers: GET /v1/models lists every provider's models, prefixed and bare, and the aliases") {
  multi m;
  const auto res = testing::http_request(m.proxy.port(), "GET", "/v1/models");
  REQUIRE(res.status == 200);
  CHECK(header(res, "content-type").starts_with("application/json"));
  const json::value v = json::parse(res.body);
  CHECK(json_str(v, {"object"}) == "list");
  const auto* data = json_at(v, {"data"});
  REQUIRE_MESSAGE((data != nullptr && data->is_array()), res.body);
  std::map<std::string, std::string> owner;  // id -> owned_by
  for (const auto& entry : data->get_array()) {
    INFO(json::serialize(entry));
    CHECK(json_str(entry, {"object"}) == "model");
    CHECK(json_int(entry, {"created"}) == 0);
    owner[json_str(entry, {"id"})] = json_str(entry, {"owned_by"});
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
  for (const std::string model : {"no-such-model", "nope/gpt-test"}) {
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
  tollgate_process proxy(env_map{{"TOLLGATE_PROVIDERS", "ant,oll,oa"},
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
  stop_cleanly(proxy);
}

TEST_CASE("providers: two providers of one type each send their own key (API_KEY_ENV)") {
  fake_upstream fake;
  const std::string base = "http://127.0.0.1:" + std::to_string(fake.port());
  tollgate_process proxy(env_map{{"TOLLGATE_PROVIDERS", "work,personal,g"},
                                 {"TOLLGATE_PROVIDER_WORK_TYPE", "anthropic"},
                                 {"TOLLGATE_PROVIDER_WORK_BASE_URL", base + "/v1"},
                                 {"TOLLGATE_PROVIDER_WORK_MODELS", "claude-a"},
                                 {"TOLLGATE_PROVIDER_PERSONAL_TYPE", "anthropic"},
                                 {"TOLLGATE_PROVIDER_PERSONAL_BASE_URL", base + "/v1"},
                                 {"TOLLGATE_PROVIDER_PERSONAL_MODELS", "claude-b"},
                                 {"TOLLGATE_PROVIDER_PERSONAL_API_KEY_ENV", "MY_PERSONAL_KEY"},
                                 {"TOLLGATE_PROVIDER_G_TYPE", "gemini"},
                                 {"TOLLGATE_PROVIDER_G_BASE_URL", base + "/v1beta"},
                                 {"TOLLGATE_PROVIDER_G_API_KEY_ENV", "MY_GEMINI_KEY"},
                                 {"ANTHROPIC_API_KEY", "sk-ant-work"},
                                 {"MY_PERSONAL_KEY", "sk-ant-personal"},
                                 {"MY_GEMINI_KEY", "gm-mine"}});
  const std::pair<std::string, std::pair<std::string, std::string>> rows[] = {
      {"claude-a", {"x-api-key", "sk-ant-work"}},
      {"claude-b", {"x-api-key", "sk-ant-personal"}},
      {"personal/claude-b", {"x-api-key", "sk-ant-personal"}},
      {"gemini-any", {"x-goog-api-key", "gm-mine"}},  // g lists no models: the catch-all
  };
  for (const auto& [model, auth] : rows) {
    INFO(model);
    const auto res = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(chat_request(model, "hi")));
    CHECK_MESSAGE(res.status == 200, res.body);
    const auto recorded = fake.requests();
    REQUIRE_FALSE(recorded.empty());
    CHECK(header(recorded.back(), auth.first) == auth.second);
  }
  stop_cleanly(proxy);
}

// ---- translated chat ---------------------------------------------------------------------------

TEST_CASE("providers: a translated chat answer is an OpenAI chat.completion with the provider's usage") {
  multi m;
  log_checks logs;
  for (const auto& t : translated_models) {
    INFO(t.name);
    const auto res = post(m, chat_path, chat_request(t.model, script({{"events", 3}, {"prompt_tokens", 7}})));
    REQUIRE_MESSAGE(res.status == 200, res.body);
    CHECK(header(res, "content-type").starts_with("application/json"));
    const json::value v = object_of(res.body);
    INFO(res.body);
    CHECK(json_str(v, {"object"}) == "chat.completion");
    CHECK(json_str(v, {"choices", "0", "message", "role"}) == "assistant");
    CHECK(json_str(v, {"choices", "0", "message", "content"}) == "w0 w1 w2");
    CHECK(json_str(v, {"choices", "0", "finish_reason"}) == "stop");
    CHECK(json_int(v, {"usage", "prompt_tokens"}) == 7);
    CHECK(json_int(v, {"usage", "completion_tokens"}) == 3);
    CHECK(json_int(v, {"usage", "total_tokens"}) == 10);
    logs.add(res, t.name, [](const json::object& record) {
      CHECK(int_field(record, "status") == 200);
      CHECK(int_field(record, "prompt_tokens") == 7);
      CHECK(int_field(record, "completion_tokens") == 3);
    });
  }
  logs.run(m.proxy);
  CHECK(m.fake.stats().requests == 3);
}

TEST_CASE("providers: a translated stream is an OpenAI chunk stream ending in [DONE]") {
  multi m;
  log_checks logs;
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
      CHECK(s.error_payload.empty());
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
      logs.add(res, std::string(t.name) + (include_usage ? " include_usage" : ""), [](const json::object& record) {
        check_completed(record, true);
        CHECK(int_field(record, "prompt_tokens") == 9);
        CHECK(int_field(record, "completion_tokens") == 4);
      });
      CHECK(m.fake.wait_until([&](const auto& st) { return st.streams_completed == streams_before + 1; }, 2s));
    }
  }
  logs.run(m.proxy);
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
  log_checks logs;
  for (const auto& t : translated_models) {
    INFO(t.name);
    auto body = chat_request(t.model, "What is the weather in Paris?");
    body["tools"] = weather_tools();
    {
      const auto res = post(m, chat_path, body);
      REQUIRE_MESSAGE(res.status == 200, res.body);
      const json::value v = object_of(res.body);
      INFO(res.body);
      CHECK(json_str(v, {"choices", "0", "finish_reason"}) == "tool_calls");
      CHECK(json_str(v, {"choices", "0", "message", "tool_calls", "0", "type"}) == "function");
      CHECK(json_str(v, {"choices", "0", "message", "tool_calls", "0", "function", "name"}) == "get_weather");
      CHECK(paris(json_str(v, {"choices", "0", "message", "tool_calls", "0", "function", "arguments"})));
      CHECK_FALSE(json_str(v, {"choices", "0", "message", "tool_calls", "0", "id"}).empty());
      CHECK(json_int(v, {"usage", "completion_tokens"}) == 5);
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
      logs.add(res, t.name, [](const json::object& record) { CHECK(int_field(record, "completion_tokens") == 5); });
    }
  }
  logs.run(m.proxy);
  // Every upstream got the tool in its own shape (the fake answers 400 to a malformed one).
  for (const auto& r : m.fake.requests()) {
    INFO(r.target << " " << r.body);
    const json::value v = object_of(r.body);
    if (r.target == "/v1/messages") CHECK(json_str(v, {"tools", "0", "name"}) == "get_weather");
    if (r.target.starts_with("/v1beta/")) {
      CHECK(json_str(v, {"tools", "0", "functionDeclarations", "0", "name"}) == "get_weather");
    }
    if (r.target == "/api/chat") CHECK(json_str(v, {"tools", "0", "function", "name"}) == "get_weather");
  }
}

TEST_CASE("providers: translated streams survive CRLF line ends, comments and events split across reads") {
  multi m;
  log_checks logs;
  struct row {
    std::string model;
    json::object framing;
  };
  const row rows[] = {
      {"claude-sonnet-4-5", {{"crlf", true}}},
      {"claude-sonnet-4-5", {{"comments", true}}},
      {"claude-sonnet-4-5", {{"split", true}}},
      {"claude-sonnet-4-5", {{"crlf", true}, {"comments", true}, {"split", true}}},
      {"gemini-2.5-flash", {{"crlf", true}}},  // what Gemini really sends
      {"gemini-2.5-flash", {{"comments", true}, {"split", true}}},
      {"gemini-2.5-flash", {{"crlf", true}, {"split", true}}},
      {"llama3.2", {{"split", true}}},
  };
  for (const auto& r : rows) {
    INFO(r.model << " " << json::serialize(r.framing));
    json::object fake = r.framing;
    fake["events"] = 3;
    const auto res = post(m, chat_path, chat_request(r.model, script(fake), true, true));
    REQUIRE_MESSAGE(res.status == 200, res.body);
    INFO(res.body);
    const auto s = read_chat_stream(res.body);
    CHECK_MESSAGE(s.problems.empty(), joined(s.problems));
    CHECK(s.done_last);
    CHECK(s.content == "w0 w1 w2 ");
    CHECK(s.finish_reasons == std::vector<std::string>{"stop"});
    REQUIRE(s.usage.has_value());
    CHECK(int_field(*s.usage, "completion_tokens") == 3);
    logs.add(res, r.model + " " + json::serialize(r.framing), [](const json::object& record) { check_completed(record, true); });
  }
  logs.run(m.proxy);
}

TEST_CASE("providers: each provider has its own upstream timeout") {
  multi m(env_map{{"TOLLGATE_PROVIDER_ANT_TIMEOUT_MS", "300"}});
  const auto start = std::chrono::steady_clock::now();
  const auto slow = post(m, chat_path, chat_request("claude-sonnet-4-5", script({{"first_byte_delay_ms", 3000}})));
  CHECK(elapsed_ms(start) < 2000);
  CHECK(slow.status == 504);
  const auto error = error_object(slow.body);
  REQUIRE_MESSAGE(error.has_value(), slow.body);
  CHECK(str(*error, "code") == "upstream_timeout");
  // Another provider keeps the default timeout.
  CHECK(post(m, chat_path, chat_request("llama3.2", script({{"first_byte_delay_ms", 450}}))).status == 200);
}

// ---- errors ---------------------------------------------------------------------------------

TEST_CASE("providers: provider errors become OpenAI-shaped errors with the matching status") {
  multi m;
  log_checks logs;
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
      logs.add(res, r.name, [status = res.status, upstream = r.upstream_status](const json::object& record) {
        CHECK(int_field(record, "status") == status);
        CHECK(int_field(record, "upstream_status") == upstream);
      });
    }
  }
  logs.run(m.proxy);
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
      {"gemini-2.5-flash", "truncate"},
      {"llama3.2", "truncate"},
  };
  multi m;
  log_checks logs;
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
    const auto error = error_object(s.error_payload);
    REQUIRE_MESSAGE(error.has_value(), "no OpenAI-shaped error event");
    CHECK(str(*error, "code") == "upstream_stream_interrupted");
    CHECK(std::find(s.finish_reasons.begin(), s.finish_reasons.end(), "stop") == s.finish_reasons.end());
    // The error event is the last event before [DONE].
    const auto payloads = sse_payloads(body);
    REQUIRE(payloads.size() >= 2);
    CHECK(error_object(payloads[payloads.size() - 2]).has_value());
    CHECK(m.fake.stats().faults_injected == faults_before + 1);

    logs.add(head, r.model + ", " + r.mode, [](const json::object& record) {
      CHECK(record.at("stream") == json::value(true));
      check_completed(record, false);
    });
  }
  logs.run(m.proxy);
}

TEST_CASE("providers: a client hanging up mid-stream cancels the translated upstream stream") {
  multi m;
  log_checks logs;
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
    logs.add(head, t.name, [](const json::object& record) {
      CHECK(int_field(record, "status") == 499);
      check_completed(record, false);
    });
  }
  logs.run(m.proxy);
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

}  // namespace
}  // namespace tollgate::itest
