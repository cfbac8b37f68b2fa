#pragma once

// Shared pieces of the integration tests: request bodies, a fake + proxy pair, parsers for
// what tollgate answers (OpenAI error bodies, SSE payloads, Prometheus text) and a bare TCP
// upstream that only watches its connection.

#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/tollgate_process.hpp"

#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tollgate::itest {

namespace json = boost::json;
using testing::fake_upstream;
using testing::fake_upstream_options;
using testing::http_connection;
using testing::http_error;
using testing::http_headers;
using testing::http_response;
using testing::tollgate_process;
using env_map = std::map<std::string, std::string>;

inline constexpr const char* chat_path = "/v1/chat/completions";
inline constexpr const char* completions_path = "/v1/completions";
inline constexpr const char* embeddings_path = "/v1/embeddings";

// ---- request bodies ------------------------------------------------------------------------

struct chat_options {
  std::string model = "gpt-test";
  bool stream = false;
  std::optional<bool> include_usage{};  // stream_options.include_usage, when set
  std::string content = "hello";
  json::object fake{};                  // the fake's script; omitted when empty
};
std::string chat_body_from(const chat_options& o);
std::string chat_body(json::object fake = {}, bool stream = false);
std::string stream_body(json::object fake = {});  // chat, stream:true, no stream_options
std::string completion_body(json::object fake = {}, bool stream = false, std::string model = "gpt-test");
std::string embedding_body(json::object fake = {}, std::string model = "emb-test");

// ---- environment and fixtures ----------------------------------------------------------------

std::string upstream_url(const fake_upstream& fake);  // http://127.0.0.1:P/v1 (https://localhost:P/v1)
env_map proxy_env(const fake_upstream& fake, env_map extra = {});

// A fake provider and tollgate (2 workers) in front of it. On destruction tollgate gets
// SIGTERM and must exit 0 without a sanitizer report: every test also checks a clean shutdown.
struct proxied_fake {
  explicit proxied_fake(env_map extra = {}, fake_upstream_options options = {});
  ~proxied_fake();
  proxied_fake(const proxied_fake&) = delete;
  proxied_fake& operator=(const proxied_fake&) = delete;
  fake_upstream fake;
  tollgate_process proxy;
};

// SIGTERM (if still running), then checks exit code 0 and no sanitizer report on stderr.
void expect_clean_exit(tollgate_process& proxy);

// A free loopback port nobody listens on (bound, then released).
std::uint16_t closed_port();

// ---- responses -------------------------------------------------------------------------------

// The "error" object of an OpenAI-shaped error body, if the body has exactly that shape:
// {"error":{"message":string,"type":string,"param":string|null,"code":string|null}}.
std::optional<json::object> error_object(const std::string& body);
std::string str(const json::object& o, std::string_view key);  // string member or ""

// A header (lower-case name) of a response or recorded request; "" when absent.
template <class Message>
std::string header(const Message& m, const std::string& name) {
  auto it = m.headers.find(name);
  return it == m.headers.end() ? std::string() : it->second;
}

// "" when equal, otherwise where the bytes first differ, with escaped context: a readable
// failure message for bodies too long to print whole. Use as CHECK(same_bytes(a, b) == "").
std::string same_bytes(const std::string& got, const std::string& expected);

// The data payloads of an SSE body, in order ("[DONE]" included).
std::vector<std::string> sse_payloads(const std::string& body);

// ---- access log ------------------------------------------------------------------------------

// Waits for the access-log record of request_id (records are flushed every ~100 ms).
std::optional<json::object> wait_for_record(const tollgate_process& proxy, const std::string& request_id,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(3));
std::optional<std::int64_t> int_field(const json::object& record, std::string_view key);

// ---- metrics ---------------------------------------------------------------------------------

struct metric_sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
std::vector<metric_sample> parse_prometheus(const std::string& text);
// Sum of the samples named `name` whose labels include `labels`; nullopt if there is none.
std::optional<double> metric_value(const std::vector<metric_sample>& samples, const std::string& name,
                                   const std::map<std::string, std::string>& labels = {});
std::vector<metric_sample> scrape(const tollgate_process& proxy);

// ---- a bare upstream for what the fake cannot do ----------------------------------------------

// Accepts connections and reads one request from each (header plus Content-Length body). With
// a canned response it writes those exact bytes back and keeps the connection (or, with
// close_after_response, ends its side of it); without one it never answers. Records when it saw a request and when the first peer closed: enough to
// prove that tollgate gives up on an upstream request whose client went away.
class raw_upstream {
 public:
  explicit raw_upstream(std::string canned_response = {}, bool close_after_response = false);
  ~raw_upstream();
  raw_upstream(const raw_upstream&) = delete;
  raw_upstream& operator=(const raw_upstream&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  bool wait_request(std::chrono::milliseconds timeout) const;
  // The time the (first) peer closed its connection, once it has.
  std::optional<std::chrono::steady_clock::time_point> wait_closed(std::chrono::milliseconds timeout) const;

 private:
  void run();

  std::string canned_;
  bool close_after_response_ = false;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<bool> closed_{false};
  std::chrono::steady_clock::time_point closed_at_{};
  mutable std::mutex mutex_;
  std::thread thread_;
};

// Polls pred every 5 ms until it holds or the timeout passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

inline long long elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace tollgate::itest
