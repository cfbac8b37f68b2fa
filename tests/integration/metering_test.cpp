// Usage ledger, caller quotas, provider budgets and the admin API (issue 4): every request is
// metered into the SQLite ledger, limits are enforced from it, and it survives restarts.
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

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;
using testing::http_request;

const std::string admin_token = "itest-admin-token-0123";
const std::string prices = "gpt-test=1000:2000:500";
const std::string forty_chars = "0123456789012345678901234567890123456789";  // estimate: (4 + 40 + 3) / 4 = 11

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

long long micro(double usd) { return std::llround(usd * 1e6); }

std::optional<double> number(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return std::nullopt;
}
std::optional<double> num(const json::object& o, std::string_view key) { return number(o.if_contains(key)); }
// A USD member in micro-USD, or -1 when absent.
long long usd(const json::object& o, std::string_view key) {
  auto v = num(o, key);
  return v ? micro(*v) : -1;
}
bool boolean(const json::object& o, std::string_view key, bool fallback = false) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_bool() ? v->get_bool() : fallback;
}
// A copy of an array member (empty when absent): safe to loop over when `o` is a temporary.
json::array array_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_array() ? v->get_array() : json::array{};
}
const json::object& member(const json::object& o, std::string_view key) {
  static const json::object empty;
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? v->get_object() : empty;
}

http_headers with_bearer(const std::string& token, http_headers h = {}) {
  if (!token.empty()) h["Authorization"] = "Bearer " + token;
  return h;
}

// A request on the operations listener.
// A request on the operations listener; like chat(), status 0 and the reason when it fails.
http_response ops(const tollgate_process& proxy, const std::string& method, const std::string& target,
                  const std::string& token = {}, const std::string& body = {}) {
  try {
    return http_request(proxy.metrics_port(), method, target, body, with_bearer(token), 5s);
  } catch (const std::exception& e) {
    http_response failed;
    failed.body = "no response to " + method + " " + target + ": " + e.what();
    return failed;
  }
}

json::object ops_json(const tollgate_process& proxy, const std::string& target, const std::string& token = {}) {
  const auto res = ops(proxy, "GET", target, token);
  CHECK_MESSAGE(res.status == 200, "GET " << target << " answered " << res.status << ": " << res.body);
  return object_of(res.body);
}

// A chat body that quota tests can count on (see the top of the file).
std::string metered_body(json::object fake = {{"prompt_tokens", 10}, {"events", 5}}, std::string model = "gpt-test",
                         int max_tokens = 5) {
  json::object body{{"model", model},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", forty_chars}}}},
                    {"max_tokens", max_tokens}};
  if (!fake.empty()) body["fake"] = std::move(fake);
  return json::serialize(body);
}

// Never throws: a failed exchange is status 0 with the reason as the body, so one broken
// request fails its own check instead of ending the test case.
http_response chat(const tollgate_process& proxy, const std::string& body, http_headers headers = {}) {
  try {
    return http_request(proxy.port(), "POST", chat_path, body, std::move(headers), 10s);
  } catch (const std::exception& e) {
    http_response failed;
    failed.body = std::string("no response: ") + e.what();
    return failed;
  }
}

http_headers department(const std::string& d, http_headers h = {}) {
  h["x-tollgate-department"] = d;
  return h;
}

// Every ledger row, newest first, read page by page.
std::vector<json::object> all_rows(const tollgate_process& proxy, const std::string& token = {}, int page = 1000) {
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
std::int64_t row_total(const tollgate_process& proxy, const std::string& token = {}) {
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
std::map<std::string, json::object> rows_by_id(const tollgate_process& proxy, std::int64_t count,
                                               const std::string& token = {}) {
  CHECK_MESSAGE(eventually([&] { return row_total(proxy, token) >= count; }, 3s),
                "the ledger has " << row_total(proxy, token) << " rows, expected " << count);
  std::map<std::string, json::object> out;
  for (auto& r : all_rows(proxy, token)) out[str(r, "request_id")] = std::move(r);
  return out;
}

std::string request_id(const http_response& res) { return header(res, "x-tollgate-request-id"); }

std::vector<json::object> events(const tollgate_process& proxy, std::string_view name) {
  std::vector<json::object> out;
  for (const auto& line : proxy.process().stdout_lines()) {
    if (line.find(name) == std::string::npos) continue;
    auto o = testing::parse_json_object(line);
    if (o && str(*o, "event") == name) out.push_back(std::move(*o));
  }
  return out;
}

std::string stdout_tail(const tollgate_process& proxy, std::size_t n = 8) {
  const auto lines = proxy.process().stdout_lines();
  std::string tail;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) tail += lines[i] + "\n";
  return tail;
}

// -1 when the sample is absent, -2 when /metrics cannot be read (never throws).
double metric(const tollgate_process& proxy, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  try {
    return metric_value(scrape(proxy), name, labels).value_or(-1);
  } catch (const std::exception&) {
    return -2;
  }
}

// tgk_ + the first 12 hex digits of the secret's SHA-256, as tollgate shows keys.
std::string fingerprint_of(const std::string& secret) {
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

long long seconds_to_utc_midnight() {
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

void check_quota_refusal(const http_response& res, const quota_expectation& e) {
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
void check_throttled_refusal(const http_response& res, const std::string& provider) {
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
exchange_result exchange(std::uint16_t port, const std::string& body, http_headers headers = {}) {
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
env_map throttle_env(const fake_upstream& hook, env_map extra) {
  env_map env{{"TOLLGATE_PRICES", prices},
              {"TOLLGATE_BUDGETS", "oa=0.000001"},
              {"TOLLGATE_THROTTLE_EVAL_INTERVAL_S", "1"},
              {"TOLLGATE_ALERT_WEBHOOK_URL", "http://127.0.0.1:" + std::to_string(hook.port()) + "/hook"},
              {"TOLLGATE_ADMIN_TOKEN", admin_token}};
  for (auto& [k, v] : extra) env[k] = v;
  return env;
}

bool throttled(const tollgate_process& proxy, const std::string& provider) {
  return metric(proxy, "tollgate_provider_throttled", {{"provider", provider}}) == 1.0;
}

// ---- 1. one row per request ------------------------------------------------------------------

TEST_CASE("metering: every request gets a ledger row with its tokens, exact cost and outcome") {
  proxied_fake p({{"TOLLGATE_PRICES", prices}});
  const auto before_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  struct row {
    std::string what;
    std::string body;
    http_headers headers;
    int status;
    bool streamed, completed, estimated;
    std::int64_t prompt, completion;
    long long cost_micro;
  };
  // "hello" is 3 estimated prompt tokens ((4 + 5 + 3) / 4): what a stream cut before its usage
  // chunk is charged, with the 2 content chunks that were delivered.
  const row rows[] = {
      {"plain", chat_body({{"prompt_tokens", 10}, {"events", 5}}),
       {{"x-tollgate-department", "eng, ops"}, {"x-tollgate-user", "alice"}, {"x-tollgate-agent", "bot-1"}},
       200, false, false, false, 10, 5, 10 * 1000 + 5 * 2000},
      {"streamed", stream_body({{"prompt_tokens", 7}, {"events", 3}}), {}, 200, true, true, false, 7, 3,
       7 * 1000 + 3 * 2000},
      {"stream cut upstream", stream_body({{"events", 5}, {"fail_after", 2}, {"fail_mode", "reset"}}), {}, 200, true,
       false, true, 3, 2, 3 * 1000 + 2 * 2000},
      {"upstream error", chat_body({{"status", 500}}), {}, 500, false, false, false, 0, 0, 0},
  };
  std::vector<std::string> ids;
  for (const auto& r : rows) {
    INFO(r.what);
    const auto res = exchange(p.proxy.port(), r.body, r.headers);
    CHECK(res.status == r.status);
    REQUIRE(!res.id.empty());
    ids.push_back(res.id);
  }

  const auto found = rows_by_id(p.proxy, 4);
  CHECK(found.size() == 4);
  long long total_cost = 0;
  for (std::size_t i = 0; i < std::size(rows); ++i) {
    const auto& r = rows[i];
    INFO(r.what);
    auto it = found.find(ids[i]);
    REQUIRE_MESSAGE(it != found.end(), "no ledger row for request " << ids[i]);
    const auto& got = it->second;
    INFO("row: " << json::serialize(got));
    CHECK(str(got, "provider") == "openai");
    CHECK(str(got, "model") == "gpt-test");
    CHECK(str(got, "route_reason") == "primary");
    CHECK(num(got, "status") == r.status);
    CHECK(num(got, "prompt_tokens") == r.prompt);
    CHECK(num(got, "completion_tokens") == r.completion);
    CHECK(num(got, "cached_tokens") == 0);
    CHECK(usd(got, "cost_usd") == r.cost_micro);
    CHECK(boolean(got, "streamed", !r.streamed) == r.streamed);
    if (r.streamed) CHECK(boolean(got, "stream_completed", !r.completed) == r.completed);
    CHECK(boolean(got, "usage_estimated", !r.estimated) == r.estimated);
    CHECK(str(got, "key_fingerprint").empty());
    CHECK(num(got, "time_ms").value_or(0) >= static_cast<double>(before_ms - 1000));
    CHECK(num(got, "duration_ms").value_or(-1) >= 0);
    CHECK(num(got, "ttfb_ms").value_or(-1) >= 0);
    CHECK(num(got, "ttfb_ms").value_or(0) <= num(got, "duration_ms").value_or(-1));
    CHECK(num(got, "id").has_value());
    if (i == 0) {
      CHECK(str(got, "departments") == "eng,ops");
      CHECK(str(got, "user") == "alice");
      CHECK(str(got, "agent") == "bot-1");
    } else {
      CHECK(str(got, "departments").empty());
      CHECK(str(got, "user").empty());
    }
    total_cost += r.cost_micro;
  }

  // Newest first.
  const auto ordered = all_rows(p.proxy, {}, 2);  // two per page: paging must add up
  REQUIRE(ordered.size() == 4);
  CHECK(str(ordered.front(), "request_id") == ids.back());
  CHECK(str(ordered.back(), "request_id") == ids.front());

  const auto stats = ops_json(p.proxy, "/stats?window=24h");
  INFO("/stats: " << json::serialize(stats));
  // The window must reach the rows just written: start_ms <= time_ms < end_ms.
  INFO("newest row time_ms: " << static_cast<long long>(num(ordered.front(), "time_ms").value_or(-1)));
  CHECK(num(stats, "calls") == 4);
  CHECK(num(stats, "prompt_tokens") == 10 + 7 + 3);
  CHECK(num(stats, "completion_tokens") == 5 + 3 + 2);
  CHECK(num(stats, "cached_tokens") == 0);
  CHECK(usd(stats, "cost_usd") == total_cost);
  CHECK(num(stats, "avg_latency_ms").value_or(-1) >= 0);
  CHECK(num(stats, "avg_ttfb_ms").value_or(-1) >= 0);
  CHECK(num(stats, "streamed") == 2);
  CHECK(num(stats, "streams_incomplete") == 1);
  CHECK(num(stats, "usage_estimated") == 1);
  const auto& provider = member(member(stats, "by_provider"), "openai");
  CHECK(num(provider, "requests") == 4);
  CHECK(num(provider, "prompt_tokens") == 20);
  CHECK(num(provider, "completion_tokens") == 10);
  CHECK(num(provider, "cached_tokens") == 0);
  CHECK(usd(provider, "cost_usd") == total_cost);
  CHECK(num(provider, "avg_duration_ms").has_value());
  CHECK(num(provider, "avg_ttfb_ms").has_value());
  const auto& model = member(member(stats, "by_model"), "gpt-test");
  CHECK(num(model, "requests") == 4);
  CHECK(usd(model, "cost_usd") == total_cost);
  const auto& ok = member(member(stats, "by_status"), "200");
  CHECK(num(ok, "requests") == 3);
  CHECK(usd(ok, "cost_usd") == total_cost);
  CHECK(num(member(member(stats, "by_status"), "500"), "requests") == 1);
  CHECK(member(stats, "by_provider").size() == 1);

  for (const char* bad : {"/stats?window=abc", "/stats?window=0h", "/stats?window=5y", "/stats/raw?limit=0",
                          "/stats/raw?limit=x", "/stats/raw?offset=-1"}) {
    INFO(std::string(bad));
    const auto res = ops(p.proxy, "GET", bad);
    CHECK(res.status == 400);
    CHECK(error_object(res.body).has_value());
  }

  const auto samples = scrape(p.proxy);
  CHECK(micro(metric_value(samples, "tollgate_cost_usd_total", {{"provider", "openai"}, {"model", "gpt-test"}}).value_or(-1)) ==
        total_cost);
  CHECK(metric_value(samples, "tollgate_ledger_written_total").value_or(0) >= 4);
  CHECK(metric_value(samples, "tollgate_ledger_healthy") == 1.0);
  CHECK(metric_value(samples, "tollgate_ledger_write_errors_total") == 0.0);
  CHECK(metric_value(samples, "tollgate_ledger_dropped_total") == 0.0);
  CHECK(metric_value(samples, "tollgate_ledger_queue_depth").has_value());
  CHECK(metric_value(samples, "tollgate_unpriced_requests_total").value_or(0) == 0.0);

  const auto ready = ops(p.proxy, "GET", "/readyz");
  CHECK(ready.status == 200);
  const auto ready_body = object_of(ready.body);
  CHECK(str(ready_body, "status") == "ready");
  CHECK(boolean(member(ready_body, "ledger"), "healthy") == true);
}

TEST_CASE("metering: a model without a price is recorded at cost 0, counted and reported once") {
  proxied_fake p({{"TOLLGATE_PRICES", prices}});
  chat_options o;
  o.model = "unpriced-model-x";
  for (int i = 0; i < 2; ++i) CHECK(chat(p.proxy, chat_body_from(o)).status == 200);
  const auto found = rows_by_id(p.proxy, 2);
  for (const auto& [id, row] : found) {
    CHECK(str(row, "model") == "unpriced-model-x");
    CHECK(usd(row, "cost_usd") == 0);
    CHECK(num(row, "prompt_tokens") == 10);
  }
  CHECK(eventually([&] { return events(p.proxy, "unpriced_model").size() == 1; }, 2s));
  CHECK(metric(p.proxy, "tollgate_unpriced_requests_total", {{"model", "unpriced-model-x"}}) == 2.0);
}

// ---- 2. quotas -------------------------------------------------------------------------------

TEST_CASE("metering: caller quotas refuse with 429 quota_exceeded: cost per department, tokens per user, models") {
  proxied_fake p({{"TOLLGATE_PRICES", prices},
                  {"TOLLGATE_ADMIN_TOKEN", admin_token},
                  {"TOLLGATE_QUOTAS",
                   "department:eng:daily_usd=0.05,monthly_usd=10;user:alice:daily_tokens=40;department:ml:models=gpt-test|allowed-*"}});
  const auto usage_of = [&](const std::string& scope, const std::string& name) {
    for (const auto& q : array_of(ops_json(p.proxy, "/admin/quotas", admin_token), "quotas"))
      if (str(q.as_object(), "scope") == scope && str(q.as_object(), "name") == name) return member(q.as_object(), "usage");
    return json::object{};
  };

  SUBCASE("daily cost of a department") {
    // $0.02 each, $0.021 reserved: two fit under $0.05, the third would not.
    for (int i = 0; i < 2; ++i) {
      const auto res = chat(p.proxy, metered_body(), department("eng"));
      CHECK_MESSAGE(res.status == 200, res.body);
    }
    CHECK(eventually([&] { return usd(usage_of("department", "eng"), "day_usd") == 40000; }, 2s));
    CHECK(micro(metric(p.proxy, "tollgate_budget_spent_usd", {{"scope", "department"}, {"name", "eng"}, {"period", "day"}})) ==
          40000);
    CHECK(micro(metric(p.proxy, "tollgate_budget_limit_usd", {{"scope", "department"}, {"name", "eng"}, {"period", "day"}})) ==
          50000);
    const auto upstream_before = p.fake.stats().requests;
    const quota_expectation eng{"department", "eng", "cost", "day", "eng", 0.05, 0.04, "usd"};
    check_quota_refusal(chat(p.proxy, metered_body(), department("eng")), eng);
    // The strictest department of a list decides.
    check_quota_refusal(chat(p.proxy, metered_body(), department("ops, eng")), eng);
    CHECK(p.fake.stats().requests == upstream_before);  // refused requests never go upstream
    // Other departments, and callers without one, are not affected.
    CHECK(chat(p.proxy, metered_body(), department("ops")).status == 200);
    CHECK(chat(p.proxy, metered_body()).status == 200);
    CHECK(eventually(
        [&] { return metric(p.proxy, "tollgate_quota_rejections_total", {{"quota_type", "cost"}, {"period", "day"}}) == 2.0; },
        2s));
    // Refusals are metered too: 6 requests, 6 rows, and only the 4 served cost anything.
    const auto rows = rows_by_id(p.proxy, 6, admin_token);
    long long eng_cost = 0;
    int refused = 0;
    for (const auto& [id, row] : rows) {
      if (num(row, "status") == 429) {
        ++refused;
        CHECK(usd(row, "cost_usd") == 0);
      }
      if (str(row, "departments") == "eng") eng_cost += usd(row, "cost_usd");
    }
    CHECK(refused == 2);
    CHECK(eng_cost == 40000);
  }

  SUBCASE("daily tokens of a user") {
    // 15 tokens each, 16 reserved: two fit under 40.
    for (int i = 0; i < 2; ++i) CHECK(chat(p.proxy, metered_body(), {{"x-tollgate-user", "alice"}}).status == 200);
    CHECK(eventually([&] { return num(usage_of("user", "alice"), "day_tokens") == 30; }, 2s));
    check_quota_refusal(chat(p.proxy, metered_body(), {{"x-tollgate-user", "alice"}}),
                        {"user", "alice", "tokens", "day", std::nullopt, 40, 30, "tokens"});
    CHECK(chat(p.proxy, metered_body(), {{"x-tollgate-user", "bob"}}).status == 200);
    CHECK(eventually(
        [&] {
          return metric(p.proxy, "tollgate_quota_rejections_total", {{"quota_type", "tokens"}, {"period", "day"}}) == 1.0;
        },
        2s));
  }

  SUBCASE("model allow-list") {
    check_quota_refusal(chat(p.proxy, metered_body({}, "gpt-4o"), department("ml")),
                        {"department", "ml", "model", std::nullopt, "ml", std::nullopt, std::nullopt, ""});
    CHECK(chat(p.proxy, metered_body({}, "allowed-1"), department("ml")).status == 200);
    CHECK(chat(p.proxy, metered_body({}, "gpt-test"), department("ml")).status == 200);
    CHECK(chat(p.proxy, metered_body({}, "gpt-4o"), department("ops")).status == 200);
    CHECK(eventually([&] { return metric(p.proxy, "tollgate_quota_rejections_total", {{"quota_type", "model"}}) == 1.0; },
                     2s));
  }
}

// ---- 3. no overshoot under concurrency -------------------------------------------------------

TEST_CASE("metering: 200 concurrent requests never spend past a department's cost limit") {
  // $0.60 fits 30 requests at $0.02 (28 reservations of $0.021 at once).
  proxied_fake p({{"TOLLGATE_PRICES", prices}, {"TOLLGATE_QUOTAS", "department:eng:daily_usd=0.6"}});
  constexpr int n = 200;
  const long long limit_micro = 600000;
  std::vector<int> status(n, 0);
  std::vector<std::string> ids(n), failures(n);
  std::latch go(n);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      try {
        const auto res = chat(p.proxy, metered_body(), department("eng"));
        status[i] = res.status;
        ids[i] = request_id(res);
        if (res.status != 200 && res.status != 429) failures[i] = res.body;
      } catch (const std::exception& e) {
        failures[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();

  int ok = 0, refused = 0;
  for (int i = 0; i < n; ++i) {
    CHECK_MESSAGE(failures[i].empty(), "request " << i << ": status " << status[i] << ": " << failures[i]);
    ok += status[i] == 200;
    refused += status[i] == 429;
  }
  CHECK(ok >= 1);
  CHECK(refused >= 1);
  CHECK(ok <= 30);
  MESSAGE(ok << " of " << n << " concurrent requests admitted under a $0.60 limit");

  // Every request has a row (refusals too); page through them all, 50 at a time.
  CHECK(eventually([&] { return row_total(p.proxy) >= ok + refused; }, 5s));
  const auto rows = all_rows(p.proxy, {}, 50);
  CHECK(rows.size() == static_cast<std::size_t>(ok + refused));
  std::set<std::string> seen;
  long long spent = 0;
  for (const auto& row : rows) {
    CHECK_MESSAGE(seen.insert(str(row, "request_id")).second, "request id twice: " << str(row, "request_id"));
    if (str(row, "departments") == "eng") spent += usd(row, "cost_usd");
  }
  for (int i = 0; i < n; ++i)
    if (status[i] == 200) CHECK_MESSAGE(seen.count(ids[i]) == 1, "no ledger row for served request " << ids[i]);
  CHECK_MESSAGE(spent <= limit_micro, "department eng spent $" << static_cast<double>(spent) / 1e6 << " of $0.60");
  CHECK(spent == static_cast<long long>(ok) * 20000);
}

// ---- 4. restarts -----------------------------------------------------------------------------

TEST_CASE("metering: spend counted against a quota survives a restart on the same ledger") {
  temp_dir dir;
  fake_upstream fake;
  const env_map env = proxy_env(fake, {{"TOLLGATE_DB_PATH", dir.db()},
                                       {"TOLLGATE_PRICES", prices},
                                       {"TOLLGATE_ADMIN_TOKEN", admin_token},
                                       {"TOLLGATE_QUOTAS", "department:eng:daily_usd=0.05"}});
  const quota_expectation eng{"department", "eng", "cost", "day", "eng", 0.05, 0.04, "usd"};
  {
    tollgate_process first(env);
    CHECK(first.db_path() == dir.db());
    CHECK(chat(first, metered_body(), department("eng")).status == 200);
    CHECK(chat(first, metered_body(), department("eng")).status == 200);
    CHECK(eventually([&] { return micro(metric(first, "tollgate_budget_spent_usd",
                                                      {{"scope", "department"}, {"name", "eng"}, {"period", "day"}})) == 40000; },
                     2s));
    check_quota_refusal(chat(first, metered_body(), department("eng")), eng);
    const auto code = first.stop(5s);
    CHECK_MESSAGE(code == std::optional<int>(0), "stdout tail:\n" << stdout_tail(first) << "stderr:\n"
                                                                   << first.process().stderr_text());
    const auto stopped = events(first, "stopped");
    REQUIRE_MESSAGE(stopped.size() == 1, stdout_tail(first));
    CHECK(num(stopped.front(), "ledger_written").value_or(0) >= 3);
    CHECK(num(stopped.front(), "ledger_dropped") == 0);
    expect_clean_exit(first);
  }
  tollgate_process second(env);
  const auto upstream_before = fake.stats().requests;
  check_quota_refusal(chat(second, metered_body(), department("eng")), eng);
  CHECK(fake.stats().requests == upstream_before);
  bool found = false;
  for (const auto& q : array_of(ops_json(second, "/admin/quotas", admin_token), "quotas")) {
    const auto& o = q.as_object();
    if (str(o, "scope") != "department" || str(o, "name") != "eng") continue;
    found = true;
    INFO(json::serialize(o));
    CHECK(usd(o, "daily_usd") == 50000);
    CHECK(usd(member(o, "usage"), "day_usd") == 40000);
    CHECK(usd(member(o, "usage"), "month_usd") == 40000);
  }
  CHECK_MESSAGE(found, "GET /admin/quotas does not list department eng");
  // The first run's rows are all there, plus the refusal just now.
  CHECK(eventually([&] { return row_total(second, admin_token) == 4; }, 3s));
  expect_clean_exit(second);
}

// ---- 5. an unusable ledger -------------------------------------------------------------------

TEST_CASE("metering: an unusable ledger fails closed for limited requests only, and open on request") {
  struct layout {
    const char* what;
    std::string (*make)(const temp_dir&);  // returns the TOLLGATE_DB_PATH
  };
  const layout layouts[] = {
      {"path below a regular file",
       [](const temp_dir& d) {
         std::ofstream(d.path + "/file") << "not a directory\n";
         return d.path + "/file/tollgate.db";
       }},
      {"corrupt database file",
       [](const temp_dir& d) {
         std::mt19937 random(42);
         std::string bytes(8192, '\0');
         for (auto& b : bytes) b = static_cast<char>(random() & 0xff);
         std::ofstream(d.db(), std::ios::binary) << bytes;
         return d.db();
       }},
  };
  for (const auto& l : layouts) {
    for (bool fail_open : {false, true}) {
      INFO((std::string(l.what) + (fail_open ? ", TOLLGATE_LEDGER_FAIL_OPEN=true" : ", fail closed")));
      temp_dir dir;
      fake_upstream fake;
      const std::string db = l.make(dir);
      std::optional<tollgate_process> proxy;
      try {
        proxy.emplace(proxy_env(fake, {{"TOLLGATE_DB_PATH", db},
                                       {"TOLLGATE_PRICES", prices},
                                       {"TOLLGATE_QUOTAS", "department:eng:daily_usd=1"},
                                       {"TOLLGATE_LEDGER_FAIL_OPEN", fail_open ? "true" : "false"}}));
      } catch (const std::exception& e) {
        FAIL_CHECK("tollgate did not start: " << e.what());
        continue;
      }
      const auto ready = ops(*proxy, "GET", "/readyz");
      const auto ready_body = object_of(ready.body);
      INFO("/readyz: " << ready.status << " " << ready.body);
      CHECK(ready.status == (fail_open ? 200 : 503));
      CHECK(boolean(member(ready_body, "ledger"), "healthy", true) == false);
      CHECK(!str(member(ready_body, "ledger"), "error").empty());
      CHECK_MESSAGE(!events(*proxy, "ledger_unavailable").empty(), stdout_tail(*proxy));

      const auto limited = chat(*proxy, metered_body(), department("eng"));
      if (fail_open) {
        CHECK_MESSAGE(limited.status == 200, limited.body);
      } else {
        INFO("limited request: " << limited.status << " " << limited.body);
        CHECK(limited.status == 503);
        const auto error = error_object(limited.body);
        CHECK(error.has_value());
        if (error) CHECK(str(*error, "code") == "ledger_unavailable");
      }
      // No quota or budget applies: served either way.
      const auto free = chat(*proxy, metered_body(), department("ops"));
      CHECK_MESSAGE(free.status == 200, free.body);

      CHECK(eventually([&] { return metric(*proxy, "tollgate_ledger_write_errors_total") >= 1.0; }, 3s));
      CHECK(metric(*proxy, "tollgate_ledger_healthy") == 0.0);
      expect_clean_exit(*proxy);
    }
  }
}

// ---- 6. cost throttle ------------------------------------------------------------------------

TEST_CASE("metering: a provider over budget is throttled, alerted and audited, and routing falls back") {
  fake_upstream hook;
  multi m(throttle_env(hook, {{"TOLLGATE_COST_THROTTLE_ENABLED", "true"},
                              {"TOLLGATE_FALLBACKS", "gpt-test=ant/claude-sonnet-4-5"}}));
  const auto first = post(m, chat_path, chat_request("gpt-test", "hello"));
  REQUIRE_MESSAGE(first.status == 200, first.body);
  REQUIRE(m.fake.requests().back().target == chat_path);

  CHECK_MESSAGE(eventually([&] { return throttled(m.proxy, "oa"); }, 3s), "oa was not throttled within 3 s");
  CHECK(metric(m.proxy, "tollgate_throttle_transitions_total", {{"provider", "oa"}, {"to", "throttled"}}) == 1.0);
  CHECK(metric(m.proxy, "tollgate_provider_throttled", {{"provider", "ant"}}) == 0.0);
  CHECK(micro(metric(m.proxy, "tollgate_budget_projected_usd", {{"provider", "oa"}})) >= 20000);
  CHECK(micro(metric(m.proxy, "tollgate_budget_limit_usd", {{"scope", "provider"}, {"name", "oa"}, {"period", "month"}})) == 1);
  CHECK(micro(metric(m.proxy, "tollgate_budget_spent_usd", {{"scope", "provider"}, {"name", "oa"}, {"period", "month"}})) ==
        20000);

  const auto check_transition = [](const json::object& t, bool enforced) {
    INFO(json::serialize(t));
    CHECK(str(t, "provider") == "oa");
    CHECK(str(t, "from") == "normal");
    CHECK(str(t, "to") == "throttled");
    CHECK(str(t, "reason") == "projected_over_budget");
    CHECK(usd(t, "spent_usd") == 20000);
    CHECK(usd(t, "budget_usd") == 1);
    CHECK(usd(t, "projected_usd") >= 20000);
    CHECK(num(t, "ratio").value_or(0) >= 1.10);
    CHECK(boolean(t, "enforced", !enforced) == enforced);
    CHECK(num(t, "time_ms").value_or(0) > 0);
  };
  CHECK(eventually([&] { return !events(m.proxy, "throttle_transition").empty(); }, 1s));
  const auto lines = events(m.proxy, "throttle_transition");
  REQUIRE_MESSAGE(lines.size() == 1, stdout_tail(m.proxy));
  check_transition(lines.front(), true);

  // The webhook got the same transition as a JSON POST.
  std::optional<json::object> alert;
  CHECK(eventually(
      [&] {
        for (const auto& r : hook.requests())
          if (r.method == "POST" && r.target == "/hook") alert = object_of(r.body);
        return alert.has_value();
      },
      3s));
  if (alert) {
    check_transition(*alert, true);
    CHECK(!alert->contains("event"));
  }
  CHECK(hook.requests().size() == 1);

  // The audit trail has it.
  std::optional<json::object> audit;
  CHECK(eventually(
      [&] {
        const auto res = ops(m.proxy, "GET", "/admin/audit", admin_token);
        if (res.status != 200) return false;
        for (const auto& r : array_of(object_of(res.body), "audit"))
          if (str(r.as_object(), "provider") == "oa") audit = r.as_object();
        return audit.has_value();
      },
      2s));
  if (audit) {
    INFO(json::serialize(*audit));
    CHECK(str(*audit, "from") == "normal");
    CHECK(str(*audit, "to") == "throttled");
    CHECK(str(*audit, "reason") == "projected_over_budget");
    CHECK(usd(*audit, "spent_usd") == 20000);
    CHECK(usd(*audit, "budget_usd") == 1);
  }

  bool listed = false;
  for (const auto& entry : array_of(ops_json(m.proxy, "/admin/throttle", admin_token), "providers")) {
    const auto& o = entry.as_object();
    if (str(o, "provider") != "oa") continue;
    listed = true;
    CHECK(str(o, "state") == "throttled");
    CHECK(boolean(o, "skipped_by_routing") == true);
  }
  CHECK(listed);

  // The next gpt-test request goes to the fallback.
  const auto second = post(m, chat_path, chat_request("gpt-test", "hello"));
  CHECK_MESSAGE(second.status == 200, second.body);
  CHECK(m.fake.requests().back().target == messages_path);
  const auto rows = rows_by_id(m.proxy, 2, admin_token);
  auto it = rows.find(request_id(second));
  REQUIRE_MESSAGE(it != rows.end(), "no ledger row for " << request_id(second));
  CHECK(str(it->second, "provider") == "ant");
  CHECK(str(it->second, "model") == "claude-sonnet-4-5");
  CHECK(str(it->second, "route_reason") == "fallback");
  auto first_row = rows.find(request_id(first));
  REQUIRE(first_row != rows.end());
  CHECK(str(first_row->second, "route_reason") == "primary");
  CHECK(str(first_row->second, "provider") == "oa");
}

TEST_CASE("metering: a throttled provider without a fallback answers 429 budget_throttled") {
  fake_upstream hook;
  multi m(throttle_env(hook, {{"TOLLGATE_COST_THROTTLE_ENABLED", "true"}}));
  REQUIRE(post(m, chat_path, chat_request("gpt-test", "hello")).status == 200);
  CHECK_MESSAGE(eventually([&] { return throttled(m.proxy, "oa"); }, 3s), "oa was not throttled within 3 s");
  const auto upstream_before = m.fake.stats().requests;
  check_throttled_refusal(post(m, chat_path, chat_request("gpt-test", "hello")), "oa");
  CHECK(m.fake.stats().requests == upstream_before);
  // Other providers are not affected.
  CHECK(post(m, chat_path, chat_request("claude-sonnet-4-5", "hello")).status == 200);
}

TEST_CASE("metering: with the cost throttle in observe mode the state is reported but routing is unchanged") {
  fake_upstream hook;
  multi m(throttle_env(hook, {{"TOLLGATE_COST_THROTTLE_ENABLED", "false"},
                              {"TOLLGATE_FALLBACKS", "gpt-test=ant/claude-sonnet-4-5"}}));
  REQUIRE(post(m, chat_path, chat_request("gpt-test", "hello")).status == 200);
  CHECK_MESSAGE(eventually([&] { return throttled(m.proxy, "oa"); }, 3s), "oa was not reported throttled within 3 s");
  CHECK(eventually([&] { return !events(m.proxy, "throttle_transition").empty(); }, 1s));
  for (const auto& t : events(m.proxy, "throttle_transition")) CHECK(boolean(t, "enforced", true) == false);
  const auto second = post(m, chat_path, chat_request("gpt-test", "hello"));
  CHECK_MESSAGE(second.status == 200, second.body);
  CHECK(m.fake.requests().back().target == chat_path);
  const auto rows = rows_by_id(m.proxy, 2, admin_token);
  auto it = rows.find(request_id(second));
  REQUIRE(it != rows.end());
  CHECK(str(it->second, "provider") == "oa");
  CHECK(str(it->second, "route_reason") == "primary");
}

// ---- 7. provider daily request quota ---------------------------------------------------------

TEST_CASE("metering: a provider's daily request quota sends the rest to the fallback, or refuses") {
  for (bool with_fallback : {true, false}) {
    INFO(std::string(with_fallback ? "with a fallback" : "without a fallback"));
    env_map extra{{"TOLLGATE_PROVIDER_DAILY_QUOTA", "oa=2"}, {"TOLLGATE_PRICES", prices}};
    if (with_fallback) extra["TOLLGATE_FALLBACKS"] = "gpt-test=ant/claude-sonnet-4-5";
    multi m(extra);
    for (int i = 0; i < 2; ++i) {
      const auto res = post(m, chat_path, chat_request("gpt-test", "hello"));
      CHECK_MESSAGE(res.status == 200, res.body);
      CHECK(m.fake.requests().back().target == chat_path);
    }
    const auto third = post(m, chat_path, chat_request("gpt-test", "hello"));
    if (with_fallback) {
      CHECK_MESSAGE(third.status == 200, third.body);
      CHECK(m.fake.requests().back().target == messages_path);
      const auto rows = rows_by_id(m.proxy, 3);
      auto it = rows.find(request_id(third));
      REQUIRE(it != rows.end());
      CHECK(str(it->second, "provider") == "ant");
      CHECK(str(it->second, "route_reason") == "fallback");
    } else {
      const auto upstream_before = m.fake.stats().requests;
      check_throttled_refusal(third, "oa");
      CHECK(m.fake.stats().requests == upstream_before);
      const long long retry = std::atoll(header(third, "retry-after").c_str());
      CHECK(std::abs(retry - seconds_to_utc_midnight()) <= 5);
    }
    CHECK(metric(m.proxy, "tollgate_provider_requests_today", {{"provider", "oa"}}) == 2.0);
  }
}

// ---- 8. virtual keys and the admin API -------------------------------------------------------

TEST_CASE("metering: virtual keys identify callers; admin-created keys, budgets and quotas persist") {
  temp_dir dir;
  fake_upstream fake;
  const std::string eng_secret = "sk-itest-eng-000000001";
  const std::string ml_secret = "sk-itest-ml-000000002";
  const env_map env = proxy_env(fake, {{"TOLLGATE_DB_PATH", dir.db()},
                                       {"TOLLGATE_PRICES", prices},
                                       {"TOLLGATE_KEYS", eng_secret + ",department=eng|ops,user=alice;" + ml_secret +
                                                             ",department=ml"},
                                       {"TOLLGATE_REQUIRE_KEY", "true"},
                                       {"TOLLGATE_ADMIN_TOKEN", admin_token}});
  const auto unauthorized = [](const http_response& res) {
    INFO(res.status << " " << res.body);
    CHECK(res.status == 401);
    const auto error = error_object(res.body);
    CHECK(error.has_value());
    if (error) CHECK(str(*error, "code") == "invalid_api_key");
  };
  const auto admin = [&](const tollgate_process& proxy, const std::string& method, const std::string& target,
                         const std::string& body = {}) { return ops(proxy, method, target, admin_token, body); };
  const auto has_quota = [&](const tollgate_process& proxy, const std::string& scope, const std::string& name) {
    for (const auto& q : array_of(ops_json(proxy, "/admin/quotas", admin_token), "quotas"))
      if (str(q.as_object(), "scope") == scope && str(q.as_object(), "name") == name) return true;
    return false;
  };
  std::string kept_key, kept_fingerprint, deleted_key;
  {
    tollgate_process proxy(env);
    unauthorized(chat(proxy, metered_body()));
    unauthorized(chat(proxy, metered_body(), with_bearer("sk-not-a-known-key-1")));
    unauthorized(chat(proxy, metered_body(), {{"x-api-key", "sk-not-a-known-key-1"}}));

    // The key's department and user win over the headers; its missing agent does not.
    const auto eng = chat(proxy, metered_body(),
                          with_bearer(eng_secret, {{"x-tollgate-department", "hr"},
                                                   {"x-tollgate-user", "mallory"},
                                                   {"x-tollgate-agent", "agent-7"}}));
    CHECK_MESSAGE(eng.status == 200, eng.body);
    const auto ml = chat(proxy, metered_body(), {{"x-api-key", ml_secret}});
    CHECK_MESSAGE(ml.status == 200, ml.body);
    {
      const auto rows = rows_by_id(proxy, 5, admin_token);
      auto it = rows.find(request_id(eng));
      REQUIRE(it != rows.end());
      INFO(json::serialize(it->second));
      CHECK(str(it->second, "key_fingerprint") == fingerprint_of(eng_secret));
      CHECK(str(it->second, "key_fingerprint").size() == 16);
      CHECK(str(it->second, "departments") == "eng,ops");
      CHECK(str(it->second, "user") == "alice");
      CHECK(str(it->second, "agent") == "agent-7");
      it = rows.find(request_id(ml));
      REQUIRE(it != rows.end());
      CHECK(str(it->second, "key_fingerprint") == fingerprint_of(ml_secret));
      CHECK(str(it->second, "departments") == "ml");
    }

    // Keys created at run time work at once, by either header.
    const auto created = admin(proxy, "POST", "/admin/keys", R"({"name":"ci","departments":["qa"],"user":"bot"})");
    REQUIRE_MESSAGE(created.status == 201, created.body);
    const auto created_body = object_of(created.body);
    kept_key = str(created_body, "key");
    kept_fingerprint = str(created_body, "fingerprint");
    CHECK(kept_key.starts_with("tg-"));
    CHECK(kept_fingerprint == fingerprint_of(kept_key));
    const auto by_bearer = chat(proxy, metered_body(), with_bearer(kept_key, {{"x-tollgate-department", "hr"}}));
    CHECK_MESSAGE(by_bearer.status == 200, by_bearer.body);
    CHECK(chat(proxy, metered_body(), {{"x-api-key", kept_key}}).status == 200);
    {
      const auto rows = rows_by_id(proxy, 7, admin_token);
      auto it = rows.find(request_id(by_bearer));
      REQUIRE(it != rows.end());
      CHECK(str(it->second, "key_fingerprint") == kept_fingerprint);
      CHECK(str(it->second, "departments") == "qa");
      CHECK(str(it->second, "user") == "bot");
    }
    const auto keys = admin(proxy, "GET", "/admin/keys");
    CHECK(keys.status == 200);
    CHECK_MESSAGE(keys.body.find(kept_key) == std::string::npos, "GET /admin/keys shows a secret");
    CHECK_MESSAGE(keys.body.find(eng_secret) == std::string::npos, "GET /admin/keys shows a secret");
    std::map<std::string, std::string> sources;
    for (const auto& k : array_of(object_of(keys.body), "keys"))
      sources[str(k.as_object(), "fingerprint")] = str(k.as_object(), "source");
    CHECK(sources[kept_fingerprint] == "admin");
    CHECK(sources[fingerprint_of(eng_secret)] == "environment");
    CHECK(sources[fingerprint_of(ml_secret)] == "environment");

    // A deleted key is refused again.
    const auto temporary = admin(proxy, "POST", "/admin/keys", R"({"name":"temp"})");
    REQUIRE_MESSAGE(temporary.status == 201, temporary.body);
    deleted_key = str(object_of(temporary.body), "key");
    CHECK(chat(proxy, metered_body(), with_bearer(deleted_key)).status == 200);
    CHECK(admin(proxy, "DELETE", "/admin/keys/" + str(object_of(temporary.body), "fingerprint")).status == 200);
    unauthorized(chat(proxy, metered_body(), with_bearer(deleted_key)));
    unauthorized(chat(proxy, metered_body(), {{"x-api-key", deleted_key}}));
    CHECK(admin(proxy, "DELETE", "/admin/keys/" + str(object_of(temporary.body), "fingerprint")).status == 404);
    for (const std::string bad : {R"({"name":)", R"([1,2])", R"({"bogus":1})", R"({"departments":"qa"})",
                                  R"({"name":7})"}) {
      INFO("POST /admin/keys " << bad);
      const auto res = admin(proxy, "POST", "/admin/keys", bad);
      CHECK(res.status == 400);
      CHECK(error_object(res.body).has_value());
    }

    // Budgets round-trip.
    const auto put = admin(proxy, "PUT", "/admin/budgets/openai", R"({"monthly_usd":100,"daily_usd":5})");
    CHECK_MESSAGE(put.status == 200, put.body);
    const auto budgets = ops_json(proxy, "/admin/budgets", admin_token);
    bool budget_listed = false;
    for (const auto& b : array_of(budgets, "budgets")) {
      if (str(b.as_object(), "provider") != "openai") continue;
      budget_listed = true;
      CHECK(usd(b.as_object(), "monthly_usd") == 100'000'000);
      CHECK(usd(b.as_object(), "daily_usd") == 5'000'000);
    }
    CHECK_MESSAGE(budget_listed, json::serialize(budgets));
    CHECK(micro(metric(proxy, "tollgate_budget_limit_usd", {{"scope", "provider"}, {"name", "openai"}, {"period", "month"}})) ==
          100'000'000);
    for (const auto& [target, bad] : std::vector<std::pair<std::string, std::string>>{
             {"/admin/budgets/openai", "not json"},
             {"/admin/budgets/openai", R"({"daily_usd":5})"},
             {"/admin/budgets/openai", R"({"monthly_usd":-1})"},
             {"/admin/budgets/openai", R"({"monthly_usd":"lots"})"},
             {"/admin/budgets/openai", R"({"monthly_usd":10,"weekly_usd":1})"},
             {"/admin/budgets/no-such-provider", R"({"monthly_usd":10})"}}) {
      INFO("PUT " << target << " " << bad);
      CHECK(admin(proxy, "PUT", target, bad).status == 400);
    }
    CHECK(admin(proxy, "DELETE", "/admin/budgets/openai").status == 200);
    CHECK(array_of(ops_json(proxy, "/admin/budgets", admin_token), "budgets").empty());
    CHECK(admin(proxy, "DELETE", "/admin/budgets/openai").status == 404);

    // Quotas round-trip and apply to the next request.
    const auto quota = admin(proxy, "PUT", "/admin/quotas/department/ml", R"({"models":["allowed-*"]})");
    CHECK_MESSAGE(quota.status == 200, quota.body);
    CHECK(has_quota(proxy, "department", "ml"));
    check_quota_refusal(chat(proxy, metered_body(), {{"x-api-key", ml_secret}}),
                        {"department", "ml", "model", std::nullopt, "ml", std::nullopt, std::nullopt, ""});
    CHECK(chat(proxy, metered_body({}, "allowed-1"), {{"x-api-key", ml_secret}}).status == 200);

    CHECK(admin(proxy, "PUT", "/admin/quotas/user/alice", R"({"daily_tokens":1})").status == 200);
    const auto over = chat(proxy, metered_body(), with_bearer(eng_secret));
    CHECK(over.status == 429);
    CHECK(str(error_object(over.body).value_or(json::object{}), "quota_type") == "tokens");
    CHECK(admin(proxy, "DELETE", "/admin/quotas/user/alice").status == 200);
    CHECK(!has_quota(proxy, "user", "alice"));
    CHECK(chat(proxy, metered_body(), with_bearer(eng_secret)).status == 200);
    CHECK(admin(proxy, "DELETE", "/admin/quotas/user/alice").status == 404);
    for (const auto& [target, bad] : std::vector<std::pair<std::string, std::string>>{
             {"/admin/quotas/department/ml", "{"},
             {"/admin/quotas/department/ml", "{}"},
             {"/admin/quotas/department/ml", R"({"daily_tokens":0})"},
             {"/admin/quotas/department/ml", R"({"daily_tokens":"many"})"},
             {"/admin/quotas/department/ml", R"({"models":"gpt-test"})"},
             {"/admin/quotas/department/ml", R"({"hourly_usd":1})"}}) {
      INFO("PUT " << target << " " << bad);
      CHECK(admin(proxy, "PUT", target, bad).status == 400);
    }
    CHECK(admin(proxy, "PUT", "/admin/quotas/team/x", R"({"daily_tokens":5})").status == 404);
    stop_cleanly(proxy);
  }

  // What the admin changed is in the ledger database and applies after a restart.
  tollgate_process proxy(env);
  CHECK(chat(proxy, metered_body(), with_bearer(kept_key)).status == 200);
  CHECK(chat(proxy, metered_body(), {{"x-api-key", kept_key}}).status == 200);
  unauthorized(chat(proxy, metered_body(), with_bearer(deleted_key)));
  CHECK(has_quota(proxy, "department", "ml"));
  CHECK(!has_quota(proxy, "user", "alice"));
  check_quota_refusal(chat(proxy, metered_body(), {{"x-api-key", ml_secret}}),
                      {"department", "ml", "model", std::nullopt, "ml", std::nullopt, std::nullopt, ""});
  CHECK(array_of(ops_json(proxy, "/admin/budgets", admin_token), "budgets").empty());
  stop_cleanly(proxy);
}

TEST_CASE("metering: the admin API is disabled without a token; with one, it and /stats need it") {
  {
    proxied_fake off;
    const auto res = ops(off.proxy, "GET", "/admin/throttle");
    CHECK(res.status == 403);
    const auto error = error_object(res.body);
    CHECK(error.has_value());
    if (error) CHECK(str(*error, "code") == "admin_disabled");
    CHECK(ops(off.proxy, "GET", "/admin/keys", "some-token-123").status == 403);
    CHECK(ops(off.proxy, "GET", "/stats").status == 200);  // no token configured: stats are open
  }
  proxied_fake on({{"TOLLGATE_ADMIN_TOKEN", admin_token}});
  for (const std::string target : {"/admin/throttle", "/admin/quotas", "/admin/budgets", "/admin/keys", "/admin/audit",
                                   "/stats", "/stats/raw"}) {
    INFO(target);
    CHECK(ops(on.proxy, "GET", target).status == 401);
    CHECK(ops(on.proxy, "GET", target, admin_token + "x").status == 401);
    CHECK(ops(on.proxy, "GET", target, admin_token).status == 200);
  }
  CHECK(ops(on.proxy, "GET", "/admin/nope", admin_token).status == 404);
}

// ---- 9. what kill -9 loses -------------------------------------------------------------------

TEST_CASE("metering: kill -9 loses at most the requests of the last flush interval") {
  temp_dir dir;
  fake_upstream fake;
  const env_map env = proxy_env(fake, {{"TOLLGATE_DB_PATH", dir.db()},
                                       {"TOLLGATE_LEDGER_FLUSH_MS", "50"},
                                       {"TOLLGATE_PRICES", prices}});
  using clock = std::chrono::steady_clock;
  struct completed {
    std::string id;
    clock::time_point at;
  };
  std::vector<completed> done;
  clock::time_point killed_at;
  {
    tollgate_process proxy(env);
    http_connection client(proxy.port());
    const auto start = clock::now();
    while (clock::now() - start < 1500ms) {
      const auto res = client.request("POST", chat_path, chat_body());
      REQUIRE_MESSAGE(res.status == 200, res.body);
      done.push_back({request_id(res), clock::now()});
    }
    killed_at = clock::now();
    REQUIRE(proxy.process().signal(SIGKILL));
    CHECK(proxy.process().wait_exit(5s) == std::optional<int>(128 + SIGKILL));
  }
  tollgate_process restarted(env);
  std::set<std::string> stored;
  for (const auto& row : all_rows(restarted)) stored.insert(str(row, "request_id"));

  int lost = 0, lost_old = 0;
  long long oldest_lost_ms = -1;
  for (const auto& d : done) {
    if (stored.count(d.id)) continue;
    ++lost;
    const long long age = std::chrono::duration_cast<std::chrono::milliseconds>(killed_at - d.at).count();
    oldest_lost_ms = std::max(oldest_lost_ms, age);
    if (age > 1000) ++lost_old;
  }
  MESSAGE("kill -9 after " << done.size() << " sequential requests: " << lost << " ledger rows lost"
                           << (lost ? ", all completed within the last " + std::to_string(oldest_lost_ms) + " ms"
                                    : std::string()));
  CHECK_MESSAGE(lost_old == 0, lost_old << " requests completed more than 1 s before the kill have no ledger row");
  CHECK(stored.size() <= done.size());
  expect_clean_exit(restarted);
}

}  // namespace
}  // namespace tollgate::itest

namespace tollgate::itest {
namespace {

TEST_CASE("metering: a virtual key is never passed on to the provider, other client keys still are") {
  // No provider key configured: the client's own Authorization goes upstream, unless it is
  // a tollgate virtual key (that would leak tollgate's secret to a third party).
  fake_upstream fake;
  const std::string secret = "sk-itest-virtual-000001";
  tollgate_process proxy(proxy_env(fake, {{"TOLLGATE_KEYS", secret + ",department=eng"}}));
  const auto with_key = chat(proxy, metered_body(), with_bearer(secret));
  CHECK(with_key.status == 200);
  const auto with_own = chat(proxy, metered_body(), with_bearer("sk-clients-own-provider-key"));
  CHECK(with_own.status == 200);
  const auto seen = fake.requests();
  REQUIRE(seen.size() == 2);
  CHECK(header(seen[0], "authorization").empty());
  CHECK(header(seen[1], "authorization") == "Bearer sk-clients-own-provider-key");
  expect_clean_exit(proxy);
}

}  // namespace
}  // namespace tollgate::itest
