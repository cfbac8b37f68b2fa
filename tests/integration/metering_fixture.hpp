#pragma once

// Shared by the metering_* integration tests (issue 4): prices that make the arithmetic exact,
// request bodies, and readers for the ledger endpoints, metrics and refusals.
//
// Prices are set so the arithmetic is exact: gpt-test costs $0.001 per prompt token and $0.002
// per completion token (1000 and 2000 micro-USD). The fake reports prompt_tokens as scripted
// and completion_tokens = events. Quota admission reserves a worst case of
// ceil(message text bytes / 4) prompt tokens plus max_tokens; the metered bodies below carry a
// 40-character prompt (estimate 11 >= the 10 the fake reports) and max_tokens 5, so a
// reservation (21000 micro-USD, 16 tokens) always covers what the request really costs (20000
// micro-USD, 15 tokens) and the number of requests a limit admits does not depend on when the
// settlement of the previous one lands.

#include "tests/integration/provider_fixture.hpp"

#include <openssl/evp.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <random>
#include <set>

namespace tollgate::itest::metering {

using testing::http_request;

inline const std::string admin_token = "itest-admin-token-0123";
inline const std::string prices = "gpt-test=1000:2000:500";
inline const std::string forty_chars = "0123456789012345678901234567890123456789";  // estimate: (4 + 40 + 3) / 4 = 11

// ---- helpers ---------------------------------------------------------------------------------

// A temporary directory removed with the object, for ledgers shared by two processes.
struct temp_dir {
  temp_dir() {
    char pattern[] = "/tmp/tollgate-metering-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string db() const { return path + "/tollgate.db"; }
  std::string path;
};

inline long long micro(double usd) { return std::llround(usd * 1e6); }

inline std::optional<double> number(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return std::nullopt;
}
inline std::optional<double> num(const json::object& o, std::string_view key) { return number(o.if_contains(key)); }
// A USD member in micro-USD, or -1 when absent.
inline long long usd(const json::object& o, std::string_view key) {
  auto v = num(o, key);
  return v ? micro(*v) : -1;
}
inline bool boolean(const json::object& o, std::string_view key, bool fallback = false) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_bool() ? v->get_bool() : fallback;
}
// A copy of an array member (empty when absent): safe to loop over when `o` is a temporary.
inline json::array array_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_array() ? v->get_array() : json::array{};
}
inline const json::object& member(const json::object& o, std::string_view key) {
  static const json::object empty;
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? v->get_object() : empty;
}

inline http_headers with_bearer(const std::string& token, http_headers h = {}) {
  if (!token.empty()) h["Authorization"] = "Bearer " + token;
  return h;
}

// A request on the operations listener.
// A request on the operations listener; like chat(), status 0 and the reason when it fails.
inline http_response ops(const tollgate_process& proxy, const std::string& method, const std::string& target,
                  const std::string& token = {}, const std::string& body = {}) {
  try {
    return http_request(proxy.metrics_port(), method, target, body, with_bearer(token), 5s);
  } catch (const std::exception& e) {
    http_response failed;
    failed.body = "no response to " + method + " " + target + ": " + e.what();
    return failed;
  }
}

inline json::object ops_json(const tollgate_process& proxy, const std::string& target, const std::string& token = {}) {
  const auto res = ops(proxy, "GET", target, token);
  CHECK_MESSAGE(res.status == 200, "GET " << target << " answered " << res.status << ": " << res.body);
  return object_of(res.body);
}

// A chat body that quota tests can count on (see the top of the file).
inline std::string metered_body(json::object fake = {{"prompt_tokens", 10}, {"events", 5}}, std::string model = "gpt-test",
                         int max_tokens = 5) {
  json::object body{{"model", model},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", forty_chars}}}},
                    {"max_tokens", max_tokens}};
  if (!fake.empty()) body["fake"] = std::move(fake);
  return json::serialize(body);
}

// Never throws: a failed exchange is status 0 with the reason as the body, so one broken
// request fails its own check instead of ending the test case.
inline http_response chat(const tollgate_process& proxy, const std::string& body, http_headers headers = {}) {
  try {
    return http_request(proxy.port(), "POST", chat_path, body, std::move(headers), 10s);
  } catch (const std::exception& e) {
    http_response failed;
    failed.body = std::string("no response: ") + e.what();
    return failed;
  }
}

inline http_headers department(const std::string& d, http_headers h = {}) {
  h["x-tollgate-department"] = d;
  return h;
}

// Every ledger row, the most recently written first, read page by page.
inline std::vector<json::object> all_rows(const tollgate_process& proxy, const std::string& token = {}, int page = 1000) {
  std::vector<json::object> rows;
  for (std::int64_t offset = 0;;) {
    const auto res = ops(proxy, "GET", "/stats/raw?limit=" + std::to_string(page) + "&offset=" + std::to_string(offset), token);
    REQUIRE_MESSAGE(res.status == 200, res.body);
    const auto root = object_of(res.body);
    const auto* list = root.if_contains("rows");
    REQUIRE_MESSAGE((list != nullptr && list->is_array()), res.body);
    for (const auto& r : list->get_array())
      if (r.is_object()) rows.push_back(r.get_object());
    offset += static_cast<std::int64_t>(list->get_array().size());
    const auto total = num(root, "total").value_or(0);
    if (list->get_array().empty() || static_cast<double>(offset) >= total) break;
  }
  return rows;
}

// -1 when /stats/raw does not answer with a total (never throws: used in failure messages).
inline std::int64_t row_total(const tollgate_process& proxy, const std::string& token = {}) {
  try {
    const auto res = ops(proxy, "GET", "/stats/raw?limit=1", token);
    if (res.status != 200) return -1;
    boost::system::error_code ec;
    const auto v = json::parse(res.body, ec);
    if (ec || !v.is_object()) return -1;
    return static_cast<std::int64_t>(num(v.get_object(), "total").value_or(-1));
  } catch (const std::exception&) {
    return -1;
  }
}

// Rows keyed by request id, once at least `count` exist (records are handed to the ledger just
// after the response is written).
inline std::map<std::string, json::object> rows_by_id(const tollgate_process& proxy, std::int64_t count,
                                               const std::string& token = {}) {
  CHECK_MESSAGE(eventually([&] { return row_total(proxy, token) >= count; }, 3s),
                "the ledger has " << row_total(proxy, token) << " rows, expected " << count);
  std::map<std::string, json::object> out;
  for (auto& r : all_rows(proxy, token)) out[str(r, "request_id")] = std::move(r);
  return out;
}

inline std::string request_id(const http_response& res) { return header(res, "x-tollgate-request-id"); }

inline std::vector<json::object> events(const tollgate_process& proxy, std::string_view name) {
  std::vector<json::object> out;
  for (const auto& line : proxy.process().stdout_lines()) {
    if (line.find(name) == std::string::npos) continue;
    auto o = testing::parse_json_object(line);
    if (o && str(*o, "event") == name) out.push_back(std::move(*o));
  }
  return out;
}

inline std::string stdout_tail(const tollgate_process& proxy, std::size_t n = 8) {
  const auto lines = proxy.process().stdout_lines();
  std::string tail;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) tail += lines[i] + "\n";
  return tail;
}

// -1 when the sample is absent, -2 when /metrics cannot be read (never throws).
inline double metric(const tollgate_process& proxy, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  try {
    return metric_value(scrape(proxy), name, labels).value_or(-1);
  } catch (const std::exception&) {
    return -2;
  }
}

// tgk_ + the first 12 hex digits of the secret's SHA-256, as tollgate shows keys.
inline std::string fingerprint_of(const std::string& secret) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  REQUIRE(EVP_Digest(secret.data(), secret.size(), digest, &size, EVP_sha256(), nullptr) == 1);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "tgk_";
  for (unsigned i = 0; i < 6; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0x0f];
  }
  return out;
}

inline long long seconds_to_utc_midnight() {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return 86400 - now % 86400;
}

// The quota_exceeded error of a 429 (and its Retry-After), checked against what it must say.
struct quota_expectation {
  std::string scope, subject, quota_type;
  std::optional<std::string> period;  // nullopt: null
  std::optional<std::string> department;
  std::optional<double> limit, current;  // USD for cost, tokens for tokens
  std::string unit;
};

inline void check_quota_refusal(const http_response& res, const quota_expectation& e) {
  INFO("response: " << res.status << " " << res.body);
  CHECK(res.status == 429);
  const auto error = error_object(res.body);
  REQUIRE_MESSAGE(error.has_value(), "not an OpenAI-shaped error body");
  CHECK(str(*error, "type") == "quota_exceeded");
  CHECK(str(*error, "code") == "quota_exceeded");
  CHECK(error->at("param").is_null());
  CHECK(!str(*error, "message").empty());
  CHECK(str(*error, "scope") == e.scope);
  CHECK(str(*error, "subject") == e.subject);
  CHECK(str(*error, "quota_type") == e.quota_type);
  if (e.department) CHECK(str(*error, "department") == *e.department);
  else CHECK((error->contains("department") && error->at("department").is_null()));
  if (e.period) CHECK(str(*error, "period") == *e.period);
  else CHECK((error->contains("period") && error->at("period").is_null()));
  if (e.quota_type == "cost") {
    CHECK(usd(*error, "limit") == micro(*e.limit));
    CHECK(usd(*error, "current") == micro(*e.current));
  } else if (e.quota_type == "tokens") {
    CHECK(num(*error, "limit") == e.limit);
    CHECK(num(*error, "current") == e.current);
  }
  if (!e.unit.empty()) CHECK(str(*error, "unit") == e.unit);
  const auto retry_after_s = num(*error, "retry_after_s");
  REQUIRE_MESSAGE(retry_after_s.has_value(), "no retry_after_s");
  if (e.quota_type == "model") {
    CHECK(*retry_after_s == 0);
    CHECK_MESSAGE(header(res, "retry-after").empty(), "a model refusal cannot be retried later");
  } else {
    // A daily quota resets at the next UTC midnight (TOLLGATE_TZ defaults to UTC).
    const long long expected = seconds_to_utc_midnight();
    CHECK(std::abs(static_cast<long long>(*retry_after_s) - expected) <= 5);
    CHECK(header(res, "retry-after") == std::to_string(static_cast<long long>(*retry_after_s)));
  }
}

// The budget_throttled 429: every candidate provider is throttled or out of daily requests.
inline void check_throttled_refusal(const http_response& res, const std::string& provider) {
  INFO("response: " << res.status << " " << res.body);
  CHECK(res.status == 429);
  const auto error = error_object(res.body);
  REQUIRE_MESSAGE(error.has_value(), "not an OpenAI-shaped error body");
  CHECK(str(*error, "type") == "budget_throttled");
  CHECK(str(*error, "code") == "budget_throttled");
  CHECK(str(*error, "provider") == provider);
  CHECK_MESSAGE(!header(res, "retry-after").empty(), "a throttled request should say when to retry");
}

// One streamed or plain exchange that tolerates a body the proxy ends abruptly.
struct exchange_result {
  int status = 0;
  std::string id;
  std::string body;
};
inline exchange_result exchange(std::uint16_t port, const std::string& body, http_headers headers = {}) {
  http_connection c(port);
  c.start("POST", chat_path, body, std::move(headers));
  const auto head = c.read_header(10s);
  exchange_result r{head.status, request_id(head), {}};
  try {
    r.body = c.read_body(10s);
  } catch (const http_error&) {
    // A stream cut upstream may end without the terminating chunk; the row is what matters here.
  }
  return r;
}

// Throttle tests: tollgate with oa/ant/gem/oll, gpt-test priced, a tiny oa budget re-evaluated
// every second, and the alert webhook pointed at a second fake.
inline env_map throttle_env(const fake_upstream& hook, env_map extra) {
  env_map env{{"TOLLGATE_PRICES", prices},
              {"TOLLGATE_BUDGETS", "oa=0.000001"},
              {"TOLLGATE_THROTTLE_EVAL_INTERVAL_S", "1"},
              {"TOLLGATE_ALERT_WEBHOOK_URL", "http://127.0.0.1:" + std::to_string(hook.port()) + "/hook"},
              {"TOLLGATE_ADMIN_TOKEN", admin_token}};
  for (auto& [k, v] : extra) env[k] = v;
  return env;
}

inline bool throttled(const tollgate_process& proxy, const std::string& provider) {
  return metric(proxy, "tollgate_provider_throttled", {{"provider", provider}}) == 1.0;
}

// ---- 1. one row per request ------------------------------------------------------------------

}  // namespace tollgate::itest::metering
