// Upstream failures: before any byte reached the client (a proper error response), and in the
// middle of a response (a terminal SSE error event for streams, a broken connection for plain
// bodies). Also TLS to the upstream, and clients that go away.

#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

std::string data_dir() { return TOLLGATE_TEST_DATA_DIR; }

// ---- before the first byte -------------------------------------------------------------------

TEST_CASE("failures: upstream unreachable gets 502 upstream_unreachable") {
  tollgate_process proxy({{"TOLLGATE_UPSTREAM_URL", "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1"},
                          {"TOLLGATE_UPSTREAM_CONNECT_TIMEOUT_MS", "2000"}});
  for (bool stream : {false, true}) {
    INFO("stream " << stream);
    const auto start = std::chrono::steady_clock::now();
    const auto res = testing::http_request(proxy.port(), "POST", chat_path, chat_body({}, stream));
    CHECK(elapsed_ms(start) < 2000);  // refused at once, not a connect timeout
    CHECK(res.status == 502);
    const auto error = error_object(res.body);
    REQUIRE_MESSAGE(error.has_value(), res.body);
    CHECK(str(*error, "code") == "upstream_unreachable");
    CHECK_FALSE(header(res, "x-tollgate-request-id").empty());
    const auto record = wait_for_record(proxy, header(res, "x-tollgate-request-id"));
    REQUIRE(record.has_value());
    CHECK(int_field(*record, "status") == 502);
    CHECK(str(*record, "error") == "connect_failed");
  }
  expect_clean_exit(proxy);
}

TEST_CASE("failures: an upstream that vanished after serving gets 502") {
  std::uint16_t port = 0;
  std::unique_ptr<tollgate_process> proxy;
  {
    fake_upstream fake;
    port = fake.port();
    proxy = std::make_unique<tollgate_process>(proxy_env(fake));
    CHECK(testing::http_request(proxy->port(), "POST", chat_path, chat_body()).status == 200);
  }  // the fake is gone, its pooled connections with it
  INFO("former upstream port " << port);
  const auto res = testing::http_request(proxy->port(), "POST", chat_path, chat_body());
  CHECK(res.status == 502);
  const auto error = error_object(res.body);
  REQUIRE_MESSAGE(error.has_value(), res.body);
  CHECK(str(*error, "code") == "upstream_unreachable");
  expect_clean_exit(*proxy);
}

TEST_CASE("failures: errors before the response header") {
  struct row {
    std::string name;
    json::object fake;
    env_map env;
    int status;
    std::string code;       // tollgate's own error code
    std::string log_error;  // the access log's reason label
    long long max_ms;       // the answer comes this fast
  };
  const std::vector<row> rows = {
      {"header later than TOLLGATE_UPSTREAM_TIMEOUT_MS", {{"first_byte_delay_ms", 3000}},
       {{"TOLLGATE_UPSTREAM_TIMEOUT_MS", "300"}}, 504, "upstream_timeout", "timeout", 2000},
      {"upstream stalls before the header", {{"fail_mode", "stall"}, {"fail_before_header", true}},
       {{"TOLLGATE_UPSTREAM_TIMEOUT_MS", "300"}}, 504, "upstream_timeout", "timeout", 2000},
      {"reset before the header", {{"fail_mode", "reset"}, {"fail_before_header", true}}, {}, 502, "", "", 2000},
      {"closed before the header", {{"fail_mode", "truncate"}, {"fail_before_header", true}}, {}, 502, "", "",
       2000},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    proxied_fake p(r.env);
    for (bool stream : {false, true}) {
      INFO("stream " << stream);
      json::object fake = r.fake;
      const auto start = std::chrono::steady_clock::now();
      const auto res = testing::http_request(p.proxy.port(), "POST", chat_path, chat_body(fake, stream));
      CHECK(elapsed_ms(start) < r.max_ms);
      CHECK(res.status == r.status);
      const auto error = error_object(res.body);
      REQUIRE_MESSAGE(error.has_value(), res.body);
      if (!r.code.empty()) CHECK(str(*error, "code") == r.code);
      const auto record = wait_for_record(p.proxy, header(res, "x-tollgate-request-id"));
      REQUIRE(record.has_value());
      CHECK(int_field(*record, "status") == r.status);
      CHECK_FALSE(str(*record, "error").empty());
      if (!r.log_error.empty()) CHECK(str(*record, "error") == r.log_error);
    }
  }
}

TEST_CASE("failures: upstream error statuses pass through with their body") {
  fake_upstream reference;
  proxied_fake p;
  for (int status : {400, 401, 429, 500, 503}) {
    INFO("status " << status);
    for (bool stream : {false, true}) {
      INFO("stream " << stream);
      const std::string body = chat_body({{"status", status}}, stream);
      const auto expected = testing::http_request(reference.port(), "POST", chat_path, body);
      REQUIRE(expected.status == status);
      const auto got = testing::http_request(p.proxy.port(), "POST", chat_path, body);
      CHECK(got.status == status);
      CHECK(same_bytes(got.body, expected.body) == "");
      CHECK(header(got, "content-type") == "application/json");
      CHECK_FALSE(header(got, "x-tollgate-request-id").empty());
      if (status == 429) CHECK(header(got, "retry-after") == "7");
      const auto record = wait_for_record(p.proxy, header(got, "x-tollgate-request-id"));
      REQUIRE(record.has_value());
      CHECK(int_field(*record, "status") == status);
      CHECK(int_field(*record, "upstream_status") == status);
    }
  }
  // An error status does not poison the connection or the pool.
  CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, chat_body()).status == 200);
}

// ---- TLS to the upstream -----------------------------------------------------------------------

TEST_CASE("failures: https upstream, trusted and untrusted") {
  fake_upstream reference;
  SUBCASE("certificate signed by the CA in SSL_CERT_FILE: works, streaming too") {
    proxied_fake p(env_map{{"SSL_CERT_FILE", data_dir() + "/ca.pem"}},
                   fake_upstream_options{.tls_cert_file = data_dir() + "/server.pem",
                                         .tls_key_file = data_dir() + "/server.key"});
    REQUIRE(p.fake.tls());
    for (const auto& body : {chat_body({{"events", 4}}), stream_body({{"events", 4}}),
                             stream_body({{"events", 3}, {"split", true}})}) {
      const auto got = testing::http_request(p.proxy.port(), "POST", chat_path, body);
      CHECK(got.status == 200);
      CHECK(same_bytes(got.body, testing::http_request(reference.port(), "POST", chat_path, body).body) == "");
    }
    CHECK(p.fake.stats().requests == 3);
    CHECK(p.fake.stats().connections <= 2);  // TLS connections are pooled as well
  }
  SUBCASE("self-signed certificate nobody trusts: 502 upstream_tls_error") {
    proxied_fake p(env_map{{"SSL_CERT_FILE", data_dir() + "/ca.pem"}},
                   fake_upstream_options{.tls_cert_file = data_dir() + "/untrusted.pem",
                                         .tls_key_file = data_dir() + "/untrusted.key"});
    for (bool stream : {false, true}) {
      const auto res = testing::http_request(p.proxy.port(), "POST", chat_path, chat_body({}, stream));
      CHECK(res.status == 502);
      const auto error = error_object(res.body);
      REQUIRE_MESSAGE(error.has_value(), res.body);
      CHECK(str(*error, "code") == "upstream_tls_error");
    }
    CHECK(p.fake.stats().requests == 0);
  }
}

// ---- in the middle of a response ---------------------------------------------------------------

TEST_CASE("failures: a stream broken mid-way ends with an error event and [DONE]") {
  struct row {
    std::string mode;
    std::string code;
    std::string log_error;
  };
  const std::vector<row> rows = {
      {"reset", "upstream_stream_interrupted", "reset"},
      {"truncate", "upstream_stream_interrupted", "truncated"},
      {"stall", "upstream_stream_idle_timeout", "idle_timeout"},
  };
  constexpr int fail_after = 2;
  for (const auto& r : rows) {
    INFO("fail_mode " << r.mode);
    proxied_fake p(env_map{{"TOLLGATE_STREAM_IDLE_TIMEOUT_MS", "300"}});
    http_connection c(p.proxy.port());
    c.start("POST", chat_path,
            stream_body({{"events", 6}, {"delay_ms", 10}, {"fail_mode", r.mode}, {"fail_after", fail_after}}));
    const auto head = c.read_header(5s);
    CHECK(head.status == 200);
    CHECK(header(head, "content-type") == "text/event-stream");
    std::string body;
    REQUIRE_NOTHROW(body = c.read_body(5s));  // the chunked response ends properly

    const auto payloads = sse_payloads(body);
    REQUIRE(payloads.size() >= 3);
    CHECK(payloads.back() == "[DONE]");
    // The events sent before the failure arrived, in order.
    CHECK(body.find("\"content\":\"w0 \"") != std::string::npos);
    CHECK(body.find("\"content\":\"w1 \"") != std::string::npos);
    CHECK(body.find("\"content\":\"w2 \"") == std::string::npos);
    CHECK(body.find("\"usage\"") == std::string::npos);
    // Then one terminal error event.
    const auto error = error_object(payloads[payloads.size() - 2]);
    REQUIRE_MESSAGE(error.has_value(), payloads[payloads.size() - 2]);
    CHECK(str(*error, "code") == r.code);

    const auto record = wait_for_record(p.proxy, header(head, "x-tollgate-request-id"));
    REQUIRE(record.has_value());
    CHECK(record->at("stream") == json::value(true));
    CHECK(record->at("stream_completed") == json::value(false));
    CHECK(str(*record, "error") == r.log_error);
    // A partial stream is still charged for what it delivered.
    const auto completion = int_field(*record, "completion_tokens");
    REQUIRE_MESSAGE(completion.has_value(), json::serialize(*record));
    CHECK(*completion > 0);
    CHECK(*completion <= fail_after);

    // The client connection is still good for the next request.
    CHECK_FALSE(c.remote_closed());
    const auto next = c.request("POST", chat_path, chat_body());
    CHECK(next.status == 200);
  }
}

TEST_CASE("failures: a plain response broken mid-body breaks the client connection") {
  const char* modes[] = {"reset", "truncate", "stall"};
  for (const char* mode : modes) {
    INFO("fail_mode " << mode);
    proxied_fake p(env_map{{"TOLLGATE_STREAM_IDLE_TIMEOUT_MS", "300"}});
    http_connection c(p.proxy.port());
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(c.request("POST", chat_path, chat_body({{"fail_mode", mode}, {"fail_after", 20}}), {}, 5s),
                    http_error);
    CHECK(elapsed_ms(start) < 3000);
    CHECK(c.remote_closed(2s));
    const auto records = p.proxy.wait_for_log_records(1);
    REQUIRE(records.size() == 1);
    CHECK_FALSE(str(records[0], "error").empty());
    // tollgate itself is fine.
    CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, chat_body()).status == 200);
  }
}

// ---- clients that go away ------------------------------------------------------------------------

TEST_CASE("failures: a client that hangs up mid-stream cancels the upstream stream") {
  proxied_fake p;
  http_connection c(p.proxy.port());
  c.start("POST", chat_path, stream_body({{"events", 50}, {"delay_ms", 20}}));
  const auto head = c.read_header(5s);
  REQUIRE(head.status == 200);
  REQUIRE(c.read_body_some(5s).has_value());
  c.close();
  CHECK(p.fake.wait_until([](const auto& s) { return s.streams_aborted == 1; }, 2s));
  CHECK(p.fake.stats().streams_completed == 0);

  const auto record = wait_for_record(p.proxy, header(head, "x-tollgate-request-id"));
  REQUIRE(record.has_value());
  CHECK(int_field(*record, "status") == 499);
  CHECK(str(*record, "error") == "client_disconnected");
  CHECK(record->at("stream_completed") == json::value(false));
}

TEST_CASE("failures: a client that hangs up while the upstream thinks cancels the upstream request") {
  SUBCASE("observed at a bare upstream: its connection is closed") {
    raw_upstream upstream;  // reads the request, never answers
    tollgate_process proxy({{"TOLLGATE_UPSTREAM_URL", upstream.url()}});
    http_connection c(proxy.port());
    c.start("POST", chat_path, chat_body());
    REQUIRE(upstream.wait_request(5s));
    CHECK_FALSE(upstream.wait_closed(50ms).has_value());  // tollgate is waiting, as it should
    const auto closed_by_client = std::chrono::steady_clock::now();
    c.close();
    const auto upstream_closed = upstream.wait_closed(2s);
    REQUIRE(upstream_closed.has_value());
    CHECK(*upstream_closed - closed_by_client < 1s);
    expect_clean_exit(proxy);
  }
  SUBCASE("observed in the access log: 499 client_disconnected, long before the upstream would answer") {
    proxied_fake p;
    http_connection c(p.proxy.port());
    const auto start = std::chrono::steady_clock::now();
    c.start("POST", chat_path, chat_body({{"first_byte_delay_ms", 2000}}));
    REQUIRE(p.fake.wait_until([](const auto& s) { return s.requests == 1; }, 2s));
    c.close();
    const auto records = p.proxy.wait_for_log_records(1, 3s);
    REQUIRE(records.size() == 1);
    CHECK(elapsed_ms(start) < 1500);
    CHECK(int_field(records[0], "status") == 499);
    CHECK(str(records[0], "error") == "client_disconnected");
  }
}

}  // namespace
}  // namespace tollgate::itest
