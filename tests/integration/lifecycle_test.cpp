// Process lifecycle and load: graceful drain on SIGTERM, the drain deadline, and many
// concurrent clients across both workers.

#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <mutex>
#include <thread>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

// True once a new connection to the API port is refused, or accepted and closed without
// being served.
bool refuses_new_connections(std::uint16_t port) {
  try {
    http_connection c(port, 500ms);
    return c.remote_closed(100ms);
  } catch (const http_error&) {
    return true;
  }
}

TEST_CASE("lifecycle: SIGTERM drains: not ready, no new connections, in-flight stream completes") {
  fake_upstream reference;
  proxied_fake p;
  const std::string body = stream_body({{"events", 8}, {"delay_ms", 100}});
  http_connection c(p.proxy.port());
  c.start("POST", chat_path, body);
  const auto head = c.read_header(5s);
  REQUIRE(head.status == 200);
  const auto first = c.read_body_some(5s);
  REQUIRE(first.has_value());

  REQUIRE(p.proxy.process().signal(SIGTERM));
  // Readiness flips while the stream is still running.
  CHECK(eventually(
      [&] { return testing::http_request(p.proxy.metrics_port(), "GET", "/readyz", {}, {}, 1s).status == 503; }, 2s));
  CHECK(eventually([&] { return refuses_new_connections(p.proxy.port()); }, 2s));
  CHECK(p.fake.stats().streams_completed == 0);
  CHECK(p.proxy.process().running());

  // The in-flight stream still completes, byte for byte.
  std::string rest;
  REQUIRE_NOTHROW(rest = c.read_body(5s));
  const std::string got = *first + rest;
  CHECK(same_bytes(got, testing::http_request(reference.port(), "POST", chat_path, body).body) == "");
  CHECK(sse_payloads(got).back() == "[DONE]");

  const auto code = p.proxy.process().wait_exit(5s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  const auto record = wait_for_record(p.proxy, header(head, "x-tollgate-request-id"), 1s);
  REQUIRE(record.has_value());
  CHECK(record->at("stream_completed") == json::value(true));
}

TEST_CASE("lifecycle: SIGTERM closes idle keep-alive connections") {
  proxied_fake p;
  http_connection idle(p.proxy.port());
  CHECK(idle.request("POST", chat_path, chat_body()).status == 200);
  REQUIRE(p.proxy.process().signal(SIGTERM));
  CHECK(idle.remote_closed(2s));
  const auto code = p.proxy.process().wait_exit(5s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

TEST_CASE("lifecycle: the drain deadline ends a stalled stream and the process exits 0") {
  proxied_fake p(env_map{{"TOLLGATE_DRAIN_TIMEOUT_S", "1"}});
  http_connection c(p.proxy.port());
  c.start("POST", chat_path, stream_body({{"events", 5}, {"fail_mode", "stall"}, {"fail_after", 1}}));
  REQUIRE(c.read_header(5s).status == 200);
  REQUIRE(c.read_body_some(5s).has_value());
  REQUIRE(p.fake.wait_until([](const auto& s) { return s.faults_injected == 1; }, 2s));

  const auto start = std::chrono::steady_clock::now();
  const auto code = p.proxy.stop(5s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(elapsed_ms(start) >= 900);   // it did wait for the stream ...
  CHECK(elapsed_ms(start) < 3000);   // ... but not longer than the deadline allows
  CHECK(c.remote_closed(2s));
}

TEST_CASE("lifecycle: 32 concurrent clients x 10 requests, streamed and not") {
  fake_upstream reference;
  proxied_fake p({}, fake_upstream_options{.threads = 2});
  struct variant {
    std::string path;
    std::string body;
    std::string expected;
  };
  std::vector<variant> variants = {
      {chat_path, chat_body({{"events", 3}}), ""},
      {chat_path, stream_body({{"events", 7}}), ""},
      {chat_path, stream_body({{"events", 2}, {"split", true}}), ""},
      {completions_path, completion_body({{"events", 5}}, true), ""},
      {embeddings_path, embedding_body(), ""},
      {chat_path, chat_body({{"events", 40}, {"first_byte_delay_ms", 2}}), ""},
  };
  for (auto& v : variants) {
    const auto r = testing::http_request(reference.port(), "POST", v.path, v.body);
    REQUIRE(r.status == 200);
    v.expected = r.body;
  }

  constexpr int threads = 32;
  constexpr int per_thread = 10;
  std::atomic<int> ok{0};
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  std::vector<std::thread> pool;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      const auto fail = [&](std::string what) {
        std::lock_guard lock(failures_mutex);
        failures.push_back("thread " + std::to_string(t) + ": " + std::move(what));
      };
      try {
        // Half the clients keep their connection, half open one per request.
        std::optional<http_connection> kept;
        if (t % 2 == 0) kept.emplace(p.proxy.port());
        for (int i = 0; i < per_thread; ++i) {
          const auto& v = variants[static_cast<std::size_t>(t + i) % variants.size()];
          const auto r = kept ? kept->request("POST", v.path, v.body, {}, 20s)
                              : testing::http_request(p.proxy.port(), "POST", v.path, v.body, {}, 20s);
          if (r.status != 200) {
            fail("status " + std::to_string(r.status) + ": " + r.body.substr(0, 200));
          } else if (const auto d = same_bytes(r.body, v.expected); !d.empty()) {
            fail(d);
          } else {
            ++ok;
          }
        }
      } catch (const std::exception& e) {
        fail(e.what());
      }
    });
  }
  for (auto& th : pool) th.join();
  MESSAGE("320 requests in " << elapsed_ms(start) << " ms");
  for (const auto& f : failures) FAIL_CHECK(f);
  CHECK(ok == threads * per_thread);
  CHECK(p.fake.stats().requests == static_cast<std::uint64_t>(threads * per_thread));
  CHECK(p.proxy.wait_for_log_records(threads * per_thread).size() == static_cast<std::size_t>(threads * per_thread));
}

}  // namespace
}  // namespace tollgate::itest
