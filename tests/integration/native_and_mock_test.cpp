// Anthropic's own API relayed natively, and the mock provider (explicit and built in).

#include "tests/integration/provider_fixture.hpp"

namespace tollgate::itest {
namespace {

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
      check_completed(record, true);
    }
  }
}

TEST_CASE("providers: POST /v1/messages resolves prefixes and aliases to the provider's model name") {
  multi m;
  for (const std::string model : {"ant/claude-haiku-4-5", "smart"}) {
    INFO(model);
    const auto sent = messages_request(model, false, {});
    const auto res = post(m, messages_path, sent);
    CHECK_MESSAGE(res.status == 200, res.body);
    const auto recorded = m.fake.requests();
    REQUIRE_FALSE(recorded.empty());
    auto up = object_of(recorded.back().body);
    CHECK(str(up, "model") == (model == "smart" ? "claude-sonnet-4-5" : "claude-haiku-4-5"));
    up.erase("model");
    auto expected = sent;
    expected.erase("model");
    CHECK(up == expected);  // nothing else changed
  }
}

TEST_CASE("providers: POST /v1/messages passes Anthropic errors and mid-stream failures on in Anthropic's shape") {
  fake_upstream reference;
  multi m;
  SUBCASE("an error answer") {
    const std::string body = json::serialize(messages_request("claude-sonnet-4-5", false, {{"status", 429}}));
    const auto expected = testing::http_request(reference.port(), "POST", messages_path, body);
    const auto res = testing::http_request(m.proxy.port(), "POST", messages_path, body);
    CHECK(res.status == 429);
    CHECK(same_bytes(res.body, expected.body) == "");
    CHECK(header(res, "retry-after") == "7");
  }
  SUBCASE("a stream broken mid-way ends with an Anthropic error event") {
    const std::string body = json::serialize(
        messages_request("claude-sonnet-4-5", true, {{"events", 4}, {"fail_after", 2}, {"fail_mode", "reset"}}));
    const auto res = testing::http_request(m.proxy.port(), "POST", messages_path, body);
    CHECK(res.status == 200);
    INFO(res.body);
    CHECK(res.body.find("\"text\":\"w1 \"") != std::string::npos);
    CHECK(res.body.find("\"text\":\"w2 \"") == std::string::npos);
    CHECK(res.body.find("event: message_stop") == std::string::npos);
    const std::size_t at = res.body.rfind("event: error\n");
    REQUIRE(at != std::string::npos);
    const auto payloads = sse_payloads(res.body.substr(at));
    REQUIRE(payloads.size() == 1);
    const json::value e = object_of(payloads[0]);
    CHECK(json_str(e, {"type"}) == "error");
    CHECK(json_str(e, {"error", "type"}) != "<absent>");
    const auto record = record_of(m, res);
    check_completed(record, false);
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
  tollgate_process proxy(env_map{{"TOLLGATE_PROVIDERS", "m"},
                                 {"TOLLGATE_PROVIDER_M_TYPE", "mock"},
                                 {"TOLLGATE_PROVIDER_M_TOKEN_LATENCY_MS", "0"}});
  SUBCASE("not streamed") {
    auto body = chat_request("anything", "hello");
    body["max_tokens"] = 5;
    const auto res = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(body));
    REQUIRE(res.status == 200);
    INFO(res.body);
    const json::value v = object_of(res.body);
    CHECK(json_str(v, {"object"}) == "chat.completion");
    const std::string content = json_str(v, {"choices", "0", "message", "content"});
    CHECK(content.starts_with("lorem ipsum dolor"));
    CHECK(split_words(content).size() == 5);
    CHECK(json_str(v, {"choices", "0", "finish_reason"}) != "<absent>");
    CHECK(json_int(v, {"usage", "completion_tokens"}) == 5);
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
                                               json::object{{"role", "user"}, {"content", "repeat after me please"}}}}};
    const auto res = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(body));
    REQUIRE(res.status == 200);
    INFO(res.body);
    CHECK(split_words(json_str(object_of(res.body), {"choices", "0", "message", "content"})) ==
          split_words("repeat after me please"));
    body["stream"] = true;
    const auto streamed = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(body));
    REQUIRE(streamed.status == 200);
    CHECK(split_words(read_chat_stream(streamed.body).content) == split_words("repeat after me please"));
  }
  stop_cleanly(proxy);
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
  auto body = chat_request("gpt-4o-mini", "hi");
  body["max_tokens"] = 2;  // the built-in mock paces its words
  const auto res = testing::http_request(proxy.port(), "POST", chat_path, json::serialize(body));
  CHECK(res.status == 200);
  CHECK(json_str(object_of(res.body), {"object"}) == "chat.completion");
  stop_cleanly(proxy);
}

}  // namespace
}  // namespace tollgate::itest
