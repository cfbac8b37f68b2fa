// The happy path: what the client gets through tollgate is what the provider sent, byte for
// byte, and what the provider gets is what the client sent (plus the injected usage request).
// Expected bytes come from a second, untouched fake: responses are deterministic, so the same
// request sent to it directly is the reference.

#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

#include <cstdio>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

http_response direct(const fake_upstream& reference, const std::string& path, const std::string& body) {
  return testing::http_request(reference.port(), "POST", path, body);
}

json::object parsed(const std::string& body) { return json::parse(body).as_object(); }

TEST_CASE("passthrough: non-streaming responses are byte-identical to the provider's") {
  fake_upstream reference;
  proxied_fake p;
  struct row {
    std::string name;
    std::string path;
    std::string body;
  };
  const row rows[] = {
      {"chat", chat_path, chat_body()},
      {"chat, no content", chat_path, chat_body({{"events", 0}})},
      {"chat, large body", chat_path, chat_body({{"events", 3000}, {"prompt_tokens", 123}})},
      {"chat, slow header", chat_path, chat_body({{"first_byte_delay_ms", 30}})},
      {"completions", completions_path, completion_body({{"events", 7}})},
      {"embeddings", embeddings_path, embedding_body()},
      {"chat, stream:false explicit", chat_path, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":false})"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    const auto expected = direct(reference, r.path, r.body);
    REQUIRE(expected.status == 200);
    const auto got = testing::http_request(p.proxy.port(), "POST", r.path, r.body);
    CHECK(got.status == 200);
    CHECK(same_bytes(got.body, expected.body) == "");
    CHECK(header(got, "content-type") == header(expected, "content-type"));
    CHECK(header(got, "content-length") == std::to_string(got.body.size()));
    CHECK(got.headers.count("transfer-encoding") == 0);
    CHECK_FALSE(header(got, "x-tollgate-request-id").empty());
  }
}

TEST_CASE("passthrough: the upstream gets the client's request at base path + route") {
  const std::string key = "sk-proxy-owned-key-0123456789";
  proxied_fake p(env_map{{"OPENAI_API_KEY", key}});
  struct row {
    std::string path;
    std::string body;
    const char* upstream_target;
  };
  const row rows[] = {
      {chat_path, chat_body(), "/v1/chat/completions"},
      {completions_path, completion_body(), "/v1/completions"},
      {embeddings_path, embedding_body(), "/v1/embeddings"},
  };
  for (const auto& r : rows) {
    INFO(r.path);
    const auto before = p.fake.requests().size();
    const auto res = testing::http_request(p.proxy.port(), "POST", r.path, r.body,
                                           {{"Authorization", "Bearer client-key"},
                                            {"X-Client-Trace", "trace-42"}});
    CHECK(res.status == 200);
    const auto recorded = p.fake.requests();
    REQUIRE(recorded.size() == before + 1);
    const auto& up = recorded.back();
    CHECK(up.method == "POST");
    CHECK(up.target == r.upstream_target);
    CHECK(same_bytes(up.body, r.body) == "");  // a non-streaming request is forwarded as is
    CHECK(header(up, "authorization") == "Bearer " + key);
    CHECK(up.headers.count("x-client-trace") == 1);
    if (up.headers.count("x-client-trace")) CHECK(header(up, "x-client-trace") == "trace-42");
    CHECK(header(up, "content-type") == "application/json");
  }
}

TEST_CASE("passthrough: without OPENAI_API_KEY the client's Authorization passes through") {
  proxied_fake p;
  const auto res = testing::http_request(p.proxy.port(), "POST", chat_path, chat_body(),
                                         {{"Authorization", "Bearer client-own-key"}});
  CHECK(res.status == 200);
  const auto recorded = p.fake.requests();
  REQUIRE(recorded.size() == 1);
  CHECK(header(recorded[0], "authorization") == "Bearer client-own-key");
}

struct stream_row {
  std::string name;
  std::string path;
  std::string body;
};

std::string chat_stream(json::object fake, std::optional<bool> include_usage = {}) {
  chat_options o;
  o.stream = true;
  o.fake = std::move(fake);
  o.include_usage = include_usage;
  return chat_body_from(o);
}

// Each body through tollgate must equal the reference fake's direct answer to the same body:
// the client did not ask for usage, so it must not see any trace of the usage tollgate asked for.
void check_streams_byte_exact(const std::vector<stream_row>& rows) {
  fake_upstream reference;
  proxied_fake p;
  for (const auto& r : rows) {
    INFO(r.name);
    const auto expected = direct(reference, r.path, r.body);
    REQUIRE(expected.status == 200);
    REQUIRE(header(expected, "content-type") == "text/event-stream");

    const auto got = testing::http_request(p.proxy.port(), "POST", r.path, r.body);
    CHECK(got.status == 200);
    CHECK(header(got, "content-type") == "text/event-stream");
    CHECK(header(got, "transfer-encoding") == "chunked");
    CHECK(got.headers.count("content-length") == 0);
    CHECK_FALSE(header(got, "x-tollgate-request-id").empty());
    CHECK(same_bytes(got.body, expected.body) == "");
    const auto payloads = sse_payloads(got.body);
    REQUIRE_FALSE(payloads.empty());
    CHECK(payloads.back() == "[DONE]");
  }
}

TEST_CASE("passthrough: streamed responses are byte-exact, usage hidden unless asked for") {
  check_streams_byte_exact({
      {"plain", chat_path, chat_stream({})},
      {"no content events", chat_path, chat_stream({{"events", 0}})},
      {"many events", chat_path, chat_stream({{"events", 300}})},
      {"paced", chat_path, chat_stream({{"events", 4}, {"delay_ms", 5}})},
      {"crlf", chat_path, chat_stream({{"crlf", true}})},
      {"split", chat_path, chat_stream({{"split", true}})},
      {"crlf+split", chat_path, chat_stream({{"crlf", true}, {"split", true}})},
      {"include_usage false", chat_path, chat_stream({}, false)},
      {"include_usage true", chat_path, chat_stream({{"prompt_tokens", 33}}, true)},
      {"include_usage true, crlf+split", chat_path, chat_stream({{"crlf", true}, {"split", true}}, true)},
      {"completions", completions_path, completion_body({{"events", 4}}, true)},
      {"completions, crlf", completions_path, completion_body({{"events", 2}, {"crlf", true}}, true)},
  });
}

TEST_CASE("passthrough: SSE comment blocks are forwarded, byte-exact") {
  // The client asked for usage: nothing is hidden, every comment is the provider's.
  check_streams_byte_exact({
      {"comments, include_usage true", chat_path, chat_stream({{"comments", true}}, true)},
      {"crlf+comments+split, include_usage true", chat_path,
       chat_stream({{"crlf", true}, {"comments", true}, {"split", true}}, true)},
  });
}

TEST_CASE("passthrough: with usage hidden, events are exact and keep-alive comments are forwarded at once") {
  // A comment block is forwarded when it arrives: holding keep-alives back to see whether the
  // next event will be dropped would defeat their purpose. So the one the provider sent before
  // the usage chunk tollgate asked for still reaches the client: every event is exact, and the
  // client gets at least the provider's comments.
  fake_upstream reference;
  proxied_fake p;
  for (const auto& [name, fake] : std::vector<std::pair<std::string, json::object>>{
           {"comments", {{"comments", true}}}, {"crlf+comments+split", {{"crlf", true}, {"comments", true}, {"split", true}}}}) {
    INFO(name);
    const auto body = chat_stream(fake);
    const auto expected = direct(reference, chat_path, body);
    const auto got = testing::http_request(p.proxy.port(), "POST", chat_path, body);
    CHECK(got.status == 200);
    CHECK(sse_payloads(got.body) == sse_payloads(expected.body));
    auto comments = [](const std::string& text) {
      std::size_t count = 0;
      for (std::size_t at = text.find(": keep-alive"); at != std::string::npos; at = text.find(": keep-alive", at + 1))
        ++count;
      return count;
    };
    CHECK(comments(got.body) == comments(expected.body) + 1);
  }
}

TEST_CASE("passthrough: include_usage is injected upstream only when the client did not ask") {
  proxied_fake p;
  SUBCASE("client did not ask") {
    const std::string body = stream_body({{"events", 2}});
    CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, body).status == 200);
    const auto recorded = p.fake.requests();
    REQUIRE(recorded.size() == 1);
    auto up = parsed(recorded[0].body);
    REQUIRE(up.contains("stream_options"));
    CHECK(up["stream_options"].as_object()["include_usage"] == json::value(true));
    up.erase("stream_options");
    CHECK(up == parsed(body));  // everything else as the client sent it
  }
  SUBCASE("client asked for usage") {
    chat_options o;
    o.stream = true;
    o.include_usage = true;
    const std::string body = chat_body_from(o);
    CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, body).status == 200);
    const auto recorded = p.fake.requests();
    REQUIRE(recorded.size() == 1);
    CHECK(parsed(recorded[0].body) == parsed(body));
  }
  SUBCASE("client explicitly said no: tollgate still meters") {
    chat_options o;
    o.stream = true;
    o.include_usage = false;
    CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, chat_body_from(o)).status == 200);
    const auto recorded = p.fake.requests();
    REQUIRE(recorded.size() == 1);
    auto up = parsed(recorded[0].body);
    CHECK(up["stream_options"].as_object()["include_usage"] == json::value(true));
  }
  SUBCASE("non-streaming requests are not touched") {
    const std::string body = chat_body();
    CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, body).status == 200);
    const auto recorded = p.fake.requests();
    REQUIRE(recorded.size() == 1);
    CHECK_FALSE(parsed(recorded[0].body).contains("stream_options"));
  }
}

TEST_CASE("passthrough: stream events reach the client as they are produced") {
  proxied_fake p;
  http_connection c(p.proxy.port());
  c.start("POST", chat_path, stream_body({{"events", 3}, {"delay_ms", 100}}));
  const auto head = c.read_header(5s);
  REQUIRE(head.status == 200);
  CHECK(header(head, "content-type") == "text/event-stream");

  // The first event is readable while the provider is still producing the rest.
  const auto first = c.read_body_some(5s);
  REQUIRE(first.has_value());
  CHECK(first->find("data: ") != std::string::npos);
  const auto stats_at_first = p.fake.stats();
  CHECK(stats_at_first.streams_started == 1);
  CHECK(stats_at_first.streams_completed == 0);

  std::string body = *first;
  int pieces = 1;
  while (auto piece = c.read_body_some(5s)) {
    body += *piece;
    ++pieces;
  }
  CHECK(pieces >= 3);  // not buffered up and sent at the end
  // The fake counts a stream once its last write has completed, which can be after tollgate
  // has already relayed those bytes.
  CHECK(p.fake.wait_until([](const auto& st) { return st.streams_completed == 1; }, 2s));
  const auto payloads = sse_payloads(body);
  REQUIRE_FALSE(payloads.empty());
  CHECK(payloads.back() == "[DONE]");
}

TEST_CASE("passthrough: keep-alive client connections and pooled upstream connections") {
  fake_upstream reference;
  proxied_fake p;

  SUBCASE("several requests, streamed and not, on one client connection") {
    http_connection c(p.proxy.port());
    for (int i = 0; i < 6; ++i) {
      CAPTURE(i);
      const std::string body = i % 2 == 0 ? chat_body({{"events", i + 1}}) : stream_body({{"events", i + 1}});
      const auto res = c.request("POST", chat_path, body);
      CHECK(res.status == 200);
      CHECK(same_bytes(res.body, direct(reference, chat_path, body).body) == "");
    }
    CHECK(p.fake.stats().connections <= 2);
    CHECK_FALSE(c.remote_closed());
  }
  SUBCASE("20 sequential requests on fresh client connections reuse upstream connections") {
    for (int i = 0; i < 20; ++i) {
      CAPTURE(i);
      const std::string body = i % 3 == 0 ? stream_body() : chat_body();
      CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, body).status == 200);
    }
    const auto st = p.fake.stats();
    CHECK(st.requests == 20);
    CHECK(st.connections <= 2);  // one pooled connection per worker at most
  }
}

}  // namespace
}  // namespace tollgate::itest

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

TEST_CASE("passthrough: end-to-end response headers pass, hop-by-hop ones do not") {
  const std::string json_body = R"({"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}})";
  const std::string sse_body = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
  const std::string common =
      "X-Request-Id: upstream-req-123\r\n"
      "OpenAI-Processing-Ms: 42\r\n"
      "Set-Cookie: session=abc\r\n"
      "Keep-Alive: timeout=5, max=100\r\n"
      "Proxy-Authenticate: Basic realm=\"up\"\r\n"
      "Connection: keep-alive\r\n";
  struct row {
    std::string name;
    std::string response;
    std::string body;
    std::string expected_body;
  };
  const std::vector<row> rows = {
      {"plain",
       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + common +
           "Content-Length: " + std::to_string(json_body.size()) + "\r\n\r\n" + json_body,
       chat_body(), json_body},
      {"stream",
       "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + common + "Transfer-Encoding: chunked\r\n\r\n" +
           [&] {
             char size[16];
             std::snprintf(size, sizeof size, "%zx\r\n", sse_body.size());
             return std::string(size) + sse_body + "\r\n0\r\n\r\n";
           }(),
       chat_body_from({.stream = true, .include_usage = true}), sse_body},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    raw_upstream upstream(r.response);
    tollgate_process proxy({{"TOLLGATE_UPSTREAM_URL", upstream.url()}});
    const auto got = testing::http_request(proxy.port(), "POST", chat_path, r.body);
    CHECK(got.status == 200);
    CHECK(same_bytes(got.body, r.expected_body) == "");
    CHECK(header(got, "x-request-id") == "upstream-req-123");
    CHECK(header(got, "openai-processing-ms") == "42");
    CHECK(header(got, "set-cookie") == "session=abc");
    CHECK(header(got, "keep-alive").empty());
    CHECK(header(got, "proxy-authenticate").empty());
    CHECK(header(got, "connection").find("keep-alive") == std::string::npos);
    CHECK_FALSE(header(got, "x-tollgate-request-id").empty());
    expect_clean_exit(proxy);
  }
}

TEST_CASE("passthrough: every way an upstream delimits its response reaches the client intact") {
  const std::string json_body =
      R"({"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}})";
  const std::string json_head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
  auto length_of = [](const std::string& body) { return "Content-Length: " + std::to_string(body.size()) + "\r\n"; };
  auto chunk = [](std::string_view data, std::string_view extension = {}) {
    char size[16];
    std::snprintf(size, sizeof size, "%zx", data.size());
    return std::string(size) + std::string(extension) + "\r\n" + std::string(data) + "\r\n";
  };
  struct row {
    std::string name;
    std::string response;
    bool closes = false;  // the upstream ends the body by closing
  };
  const std::vector<row> rows = {
      {"content-length", json_head + length_of(json_body) + "\r\n" + json_body},
      {"chunked, with extensions and trailers",
       json_head + "Transfer-Encoding: chunked\r\n\r\n" + chunk(json_body.substr(0, 7), ";a=b") +
           chunk(json_body.substr(7)) + "0;last\r\nX-Trailer: t\r\n\r\n"},
      {"until the connection closes", json_head + "\r\n" + json_body, true},
      {"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n" + length_of(json_body) + "\r\n" + json_body},
      // Not the plain shape: Beast's parser reads these two heads.
      {"folded header line", json_head + "X-Folded: one\r\n two\r\n" + length_of(json_body) + "\r\n" + json_body},
      {"empty reason phrase", "HTTP/1.1 200 \r\nContent-Type: application/json\r\n" + length_of(json_body) + "\r\n" + json_body},
      {"identity then chunked", json_head + "Transfer-Encoding: identity, chunked\r\n\r\n" + chunk(json_body) + "0\r\n\r\n"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    raw_upstream upstream(r.response, r.closes);
    tollgate_process proxy({{"TOLLGATE_UPSTREAM_URL", upstream.url()}});
    const auto got = testing::http_request(proxy.port(), "POST", chat_path, chat_body());
    CHECK(got.status == 200);
    CHECK(same_bytes(got.body, json_body) == "");
    const auto record = wait_for_record(proxy, header(got, "x-tollgate-request-id"));
    REQUIRE(record);
    CHECK(int_field(*record, "prompt_tokens") == 3);  // the usage was read on the way through
    CHECK(int_field(*record, "completion_tokens") == 4);
    expect_clean_exit(proxy);
  }
}

TEST_CASE("passthrough: a response that is not HTTP is an upstream protocol error") {
  const std::string broken[] = {
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
      "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}",  // the SP after the status code is required
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
  };
  for (const auto& response : broken) {
    INFO(response);
    raw_upstream upstream(response);
    tollgate_process proxy({{"TOLLGATE_UPSTREAM_URL", upstream.url()}});
    const auto got = testing::http_request(proxy.port(), "POST", chat_path, chat_body());
    CHECK(got.status == 502);
    CHECK(got.body.find("upstream") != std::string::npos);
    expect_clean_exit(proxy);
  }
}

}  // namespace
}  // namespace tollgate::itest
