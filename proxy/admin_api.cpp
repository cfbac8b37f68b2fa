#include "proxy/admin_api.hpp"

#include "core/caller.hpp"
#include "proxy/accounting.hpp"
#include "proxy/cross_thread.hpp"
#include "proxy/money.hpp"
#include "storage/ledger.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <charconv>

namespace tollgate::proxy {
namespace {

namespace json = boost::json;
using request_type = http::request<http::string_body>;

constexpr std::int64_t max_page = 1000;

ops_response error(int status, std::string_view code, std::string message) {
  json::object e{{"message", message},
                 {"type", status == 401 ? "authentication_error" : "invalid_request_error"},
                 {"param", nullptr},
                 {"code", code}};
  return {status, json::serialize(json::object{{"error", std::move(e)}})};
}

ops_response ok_json(std::string body, int status = 200) { return {status, std::move(body)}; }

// The parameters here are plain numbers and durations: no percent-decoding needed.
std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return std::string(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
  }
  return std::nullopt;
}

std::optional<std::int64_t> parse_int(std::string_view text) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// "30m", "24h", "7d": the /stats window.
std::optional<std::chrono::seconds> parse_window(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  auto number = parse_int(text.substr(0, text.size() - 1));
  if (!number || *number <= 0) return std::nullopt;
  std::int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return std::nullopt;
  }
  if (*number > 400LL * 86400 / unit) return std::nullopt;
  return std::chrono::seconds(*number * unit);
}

std::int64_t unix_ms(core::sys_seconds t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

json::object group_json(const storage::stats_group& g) {
  return json::object{{"requests", g.requests},
                      {"prompt_tokens", g.prompt_tokens},
                      {"completion_tokens", g.completion_tokens},
                      {"cached_tokens", g.cached_tokens},
                      {"cost_usd", micro_to_usd(g.cost_micro_usd)},
                      {"avg_duration_ms", g.avg_duration_ms},
                      {"avg_ttfb_ms", g.avg_ttfb_ms}};
}

json::object record_json(const storage::ledger_row& row) {
  const auto& r = row.record;
  return json::object{{"id", row.id},
                      {"time_ms", r.time_ms},
                      {"request_id", r.request_id},
                      {"key_fingerprint", r.key_fingerprint},
                      {"departments", r.departments},
                      {"user", r.user},
                      {"agent", r.agent},
                      {"provider", r.provider},
                      {"model", r.model},
                      {"route_reason", r.route_reason},
                      {"status", r.http_status},
                      {"prompt_tokens", r.prompt_tokens},
                      {"completion_tokens", r.completion_tokens},
                      {"cached_tokens", r.cached_tokens},
                      {"cost_usd", micro_to_usd(r.cost_micro_usd)},
                      {"ttfb_ms", r.ttfb_ms},
                      {"duration_ms", r.duration_ms},
                      {"streamed", r.streamed},
                      {"stream_completed", r.stream_completed},
                      {"usage_estimated", r.usage_estimated}};
}

// The request body as a JSON object, or the 400 that says why not.
std::variant<json::object, ops_response> body_object(const request_type& request) {
  boost::system::error_code ec;
  auto value = json::parse(request.body(), ec);
  if (ec) return error(400, "invalid_json", "The body is not valid JSON: " + ec.message() + ".");
  if (!value.is_object()) return error(400, "invalid_json", "The body must be a JSON object.");
  return std::move(value.as_object());
}

// Reads an optional non-negative USD amount; sets `problem` when present but wrong.
std::optional<core::micro_usd> usd_field(const json::object& o, std::string_view key, std::string& problem) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::nullopt;
  const auto& v = it->value();
  std::optional<core::micro_usd> micro;
  if (v.is_double()) micro = usd_to_micro(v.get_double());
  else if (v.is_int64()) micro = usd_to_micro(static_cast<double>(v.get_int64()));
  else if (v.is_uint64()) micro = usd_to_micro(static_cast<double>(v.get_uint64()));
  if (!micro || *micro <= 0) problem = std::string(key) + " must be a positive number of USD";
  return micro;
}

std::optional<std::int64_t> count_field(const json::object& o, std::string_view key, std::string& problem) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::nullopt;
  const auto& v = it->value();
  if (v.is_int64() && v.get_int64() > 0) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() > 0 && v.get_uint64() < (1ULL << 62)) return static_cast<std::int64_t>(v.get_uint64());
  problem = std::string(key) + " must be a positive whole number";
  return std::nullopt;
}

std::vector<std::string> string_list(const json::object& o, std::string_view key, std::string& problem) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return out;
  if (!it->value().is_array()) {
    problem = std::string(key) + " must be an array of strings";
    return out;
  }
  for (const auto& item : it->value().as_array()) {
    if (!item.is_string() || item.as_string().empty()) {
      problem = std::string(key) + " must be an array of non-empty strings";
      return {};
    }
    out.emplace_back(item.as_string());
  }
  return out;
}

std::string string_field(const json::object& o, std::string_view key, std::string& problem) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return {};
  if (!it->value().is_string()) {
    problem = std::string(key) + " must be a string";
    return {};
  }
  return std::string(it->value().as_string());
}

std::string unknown_member(const json::object& o, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : o) {
    bool found = false;
    for (auto k : known) found = found || key == k;
    if (!found) return "unknown field \"" + std::string(key) + "\"";
  }
  return {};
}

// 32 random bytes, base64url: a key nobody guesses, in a form SDKs accept.
std::string new_secret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return {};
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out = "tg-";
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }
std::string_view query_of(std::string_view target) {
  auto q = target.find('?');
  return q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

std::string decoded(std::string_view segment) {
  auto pct = boost::urls::make_pct_string_view(segment);
  if (!pct) return std::string(segment);
  return pct->decode();
}

}  // namespace

admin_api::admin_api(const core::config& config, accounting& accounts, storage::ledger& ledger,
                     core::utc_offset_fn zone)
    : config_(config), accounts_(accounts), ledger_(ledger), zone_(std::move(zone)) {}

bool admin_api::authorized(const request_type& request) const {
  auto it = request.find(http::field::authorization);
  if (it == request.end()) return false;
  std::string_view value = it->value();
  constexpr std::string_view bearer = "Bearer ";
  if (value.size() <= bearer.size() || !beast::iequals(value.substr(0, bearer.size()), bearer)) return false;
  value.remove_prefix(bearer.size());
  const auto& token = config_.admin_token;
  // Constant time, so response timing does not reveal how much of a guess was right.
  return value.size() == token.size() && CRYPTO_memcmp(value.data(), token.data(), token.size()) == 0;
}

net::awaitable<std::optional<ops_response>> admin_api::handle(const request_type& request) {
  const std::string_view target = request.target();
  const std::string_view path = path_of(target);
  const bool is_stats = path == "/stats" || path == "/stats/raw";
  const bool is_admin = path == "/admin" || path.starts_with("/admin/");
  if (!is_stats && !is_admin) co_return std::nullopt;

  if (is_admin && config_.admin_token.empty())
    co_return error(403, "admin_disabled", "The admin API is disabled: set TOLLGATE_ADMIN_TOKEN to enable it.");
  // /stats shows who spends what: once an admin token exists it guards that too.
  if (!config_.admin_token.empty() && !authorized(request))
    co_return error(401, "invalid_admin_token",
                    "Missing or wrong admin token: send Authorization: Bearer <TOLLGATE_ADMIN_TOKEN>.");
  if (is_stats) {
    if (request.method() != http::verb::get) co_return error(405, "method_not_allowed", "Use GET.");
    if (path == "/stats") co_return co_await stats(query_of(target));
    co_return co_await raw_rows(query_of(target));
  }
  co_return co_await admin(request, path.substr(std::string_view("/admin").size()));
}

net::awaitable<ops_response> admin_api::stats(std::string_view query) {
  std::string window_text = query_param(query, "window").value_or("24h");
  auto window = parse_window(window_text);
  if (!window)
    co_return error(400, "invalid_window",
                    "window must be a positive number with a unit s, m, h or d (at most 400d), e.g. 24h; got \"" +
                        window_text + "\".");
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  const auto window_ms = std::chrono::duration_cast<std::chrono::milliseconds>(*window).count();
  storage::stats_query q{now_ms - window_ms, now_ms + 1};
  auto result = co_await await_callback<storage::stats_result>(
      [&](auto done) { ledger_.query_stats(q, std::move(done)); });
  if (!result.ok) co_return error(503, "ledger_unavailable", "The ledger cannot be read: " + result.error);

  json::object by_provider, by_model, by_status;
  for (const auto& [name, g] : result.by_provider) by_provider[name] = group_json(g);
  for (const auto& [name, g] : result.by_model) by_model[name] = group_json(g);
  for (const auto& [status, g] : result.by_status) by_status[std::to_string(status)] = group_json(g);
  json::object root{{"window", window_text},
                    {"start_ms", q.start_ms},
                    {"end_ms", q.end_ms},
                    {"calls", result.total.requests},
                    {"prompt_tokens", result.total.prompt_tokens},
                    {"completion_tokens", result.total.completion_tokens},
                    {"cached_tokens", result.total.cached_tokens},
                    {"cost_usd", micro_to_usd(result.total.cost_micro_usd)},
                    {"avg_latency_ms", result.total.avg_duration_ms},
                    {"avg_ttfb_ms", result.total.avg_ttfb_ms},
                    {"streamed", result.streamed},
                    {"streams_incomplete", result.stream_incomplete},
                    {"usage_estimated", result.usage_estimated},
                    {"by_provider", std::move(by_provider)},
                    {"by_model", std::move(by_model)},
                    {"by_status", std::move(by_status)}};
  co_return ok_json(json::serialize(root));
}

net::awaitable<ops_response> admin_api::raw_rows(std::string_view query) {
  auto read = [&](std::string_view name, std::int64_t fallback, std::int64_t min, std::int64_t max)
      -> std::optional<std::int64_t> {
    auto text = query_param(query, name);
    if (!text) return fallback;
    auto v = parse_int(*text);
    if (!v || *v < min || *v > max) return std::nullopt;
    return v;
  };
  auto limit = read("limit", 100, 1, max_page);
  auto offset = read("offset", 0, 0, std::numeric_limits<std::int64_t>::max() / 2);
  if (!limit) co_return error(400, "invalid_limit", "limit must be a whole number from 1 to 1000.");
  if (!offset) co_return error(400, "invalid_offset", "offset must be a whole number >= 0.");
  auto result = co_await await_callback<storage::rows_result>(
      [&](auto done) { ledger_.query_rows(*limit, *offset, std::move(done)); });
  if (!result.ok) co_return error(503, "ledger_unavailable", "The ledger cannot be read: " + result.error);
  json::array rows;
  for (const auto& row : result.rows) rows.push_back(record_json(row));
  co_return ok_json(json::serialize(json::object{
      {"total", result.total}, {"limit", *limit}, {"offset", *offset}, {"rows", std::move(rows)}}));
}

net::awaitable<ops_response> admin_api::admin(const request_type& request, std::string_view path) {
  auto method = request.method();
  if (path == "/throttle") {
    if (method != http::verb::get) co_return error(405, "method_not_allowed", "Use GET.");
    co_return ok_json(co_await call_on(accounts_.executor(), [this] { return accounts_.throttle_json(); }));
  }
  if (path == "/audit") {
    if (method != http::verb::get) co_return error(405, "method_not_allowed", "Use GET.");
    auto result = co_await await_callback<storage::audit_result>(
        [this](auto done) { ledger_.query_audit(max_page, std::move(done)); });
    if (!result.ok) co_return error(503, "ledger_unavailable", "The ledger cannot be read: " + result.error);
    json::array rows;
    for (const auto& r : result.rows)
      rows.push_back(json::object{{"time_ms", r.time_ms},
                                  {"provider", r.provider},
                                  {"from", r.from_state},
                                  {"to", r.to_state},
                                  {"spent_usd", micro_to_usd(r.spent_micro_usd)},
                                  {"budget_usd", micro_to_usd(r.budget_micro_usd)},
                                  {"projected_usd", micro_to_usd(r.projected_micro_usd)},
                                  {"reason", r.reason}});
    co_return ok_json(json::serialize(json::object{{"audit", std::move(rows)}}));
  }
  if (path == "/budgets" || path.starts_with("/budgets/")) co_return co_await budgets(request, path.substr(8));
  if (path == "/quotas" || path.starts_with("/quotas/")) co_return co_await quotas(request, path.substr(7));
  if (path == "/keys" || path.starts_with("/keys/")) co_return co_await keys(request, path.substr(5));
  co_return error(404, "not_found",
                  "Unknown admin path. The admin API serves /admin/throttle, /admin/audit, /admin/budgets[/<provider>], "
                  "/admin/quotas[/<scope>/<name>] and /admin/keys[/<fingerprint>].");
}

net::awaitable<ops_response> admin_api::budgets(const request_type& request, std::string_view rest) {
  auto method = request.method();
  if (rest.empty() || rest == "/") {
    if (method != http::verb::get) co_return error(405, "method_not_allowed", "Use GET, or PUT/DELETE /admin/budgets/<provider>.");
    co_return ok_json(co_await call_on(accounts_.executor(), [this] { return accounts_.budgets_json(); }));
  }
  std::string provider = decoded(rest.substr(1));
  if (method == http::verb::delete_) {
    auto problem = co_await call_on(accounts_.executor(), [&] { return accounts_.remove_budget(provider); });
    if (!problem.empty()) co_return error(404, "not_found", problem + ".");
    co_return ok_json(json::serialize(json::object{{"deleted", provider}}));
  }
  if (method != http::verb::put) co_return error(405, "method_not_allowed", "Use PUT or DELETE.");
  auto parsed = body_object(request);
  if (auto* failure = std::get_if<ops_response>(&parsed)) co_return *failure;
  const auto& body = std::get<json::object>(parsed);
  std::string problem = unknown_member(body, {"monthly_usd", "daily_usd"});
  auto monthly = usd_field(body, "monthly_usd", problem);
  auto daily = usd_field(body, "daily_usd", problem);
  if (problem.empty() && !monthly) problem = "monthly_usd is required";
  if (!problem.empty()) co_return error(400, "invalid_budget", problem + ".");
  core::provider_budget budget{*monthly, daily};
  problem = co_await call_on(accounts_.executor(), [&] { return accounts_.set_budget(provider, budget); });
  if (!problem.empty()) co_return error(400, "invalid_budget", problem + ".");
  co_return ok_json(co_await call_on(accounts_.executor(), [this] { return accounts_.budgets_json(); }));
}

net::awaitable<ops_response> admin_api::quotas(const request_type& request, std::string_view rest) {
  auto method = request.method();
  if (rest.empty() || rest == "/") {
    if (method != http::verb::get)
      co_return error(405, "method_not_allowed", "Use GET, or PUT/DELETE /admin/quotas/<scope>/<name>.");
    co_return ok_json(co_await call_on(accounts_.executor(), [this] { return accounts_.quotas_json(); }));
  }
  rest.remove_prefix(1);
  auto slash = rest.find('/');
  std::string scope_text = decoded(rest.substr(0, slash));
  std::string name = slash == std::string_view::npos ? std::string() : decoded(rest.substr(slash + 1));
  core::quota_scope scope;
  if (scope_text == "department") scope = core::quota_scope::department;
  else if (scope_text == "user") scope = core::quota_scope::user;
  else if (scope_text == "key") scope = core::quota_scope::key;
  else co_return error(404, "not_found", "Quota scope must be department, user or key; got \"" + scope_text + "\".");
  if (name.empty()) co_return error(404, "not_found", "Name the subject: /admin/quotas/" + scope_text + "/<name>.");
  core::quota_subject subject{scope, name};

  if (method == http::verb::delete_) {
    auto problem = co_await call_on(accounts_.executor(), [&] { return accounts_.remove_quota(subject); });
    if (!problem.empty()) co_return error(404, "not_found", problem + ".");
    co_return ok_json(json::serialize(json::object{{"deleted", json::object{{"scope", scope_text}, {"name", name}}}}));
  }
  if (method != http::verb::put) co_return error(405, "method_not_allowed", "Use PUT or DELETE.");
  auto parsed = body_object(request);
  if (auto* failure = std::get_if<ops_response>(&parsed)) co_return *failure;
  const auto& body = std::get<json::object>(parsed);
  std::string problem = unknown_member(body, {"daily_tokens", "monthly_tokens", "daily_usd", "monthly_usd", "models"});
  core::quota_limits limits;
  limits.daily_tokens = count_field(body, "daily_tokens", problem);
  limits.monthly_tokens = count_field(body, "monthly_tokens", problem);
  limits.daily_cost = usd_field(body, "daily_usd", problem);
  limits.monthly_cost = usd_field(body, "monthly_usd", problem);
  limits.allowed_models = string_list(body, "models", problem);
  if (!problem.empty()) co_return error(400, "invalid_quota", problem + ".");

  // The subject's spend so far this day and month comes from the ledger, so a new quota
  // starts from what was really spent rather than from zero.
  auto now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  auto day = core::day_bounds(now, zone_);
  auto month = core::month_bounds(now, zone_);
  auto spend = co_await await_callback<storage::spend_result>([&](auto done) {
    ledger_.query_spend({unix_ms(day.start), unix_ms(day.end)}, {unix_ms(month.start), unix_ms(month.end)},
                        std::move(done));
  });
  problem = co_await call_on(accounts_.executor(), [&] {
    auto result = accounts_.set_quota(subject, limits);
    if (result.empty() && spend.ok) accounts_.restore_subject(subject, spend.snapshot);
    return result;
  });
  if (!problem.empty()) co_return error(400, "invalid_quota", problem + ".");
  co_return ok_json(co_await call_on(accounts_.executor(), [this] { return accounts_.quotas_json(); }));
}

net::awaitable<ops_response> admin_api::keys(const request_type& request, std::string_view rest) {
  auto method = request.method();
  if (rest.empty() || rest == "/") {
    if (method == http::verb::get)
      co_return ok_json(co_await call_on(accounts_.executor(), [this] { return accounts_.keys_json(); }));
    if (method != http::verb::post)
      co_return error(405, "method_not_allowed", "Use GET or POST /admin/keys, DELETE /admin/keys/<fingerprint>.");
    auto parsed = body_object(request);
    if (auto* failure = std::get_if<ops_response>(&parsed)) co_return *failure;
    const auto& body = std::get<json::object>(parsed);
    std::string problem = unknown_member(body, {"name", "departments", "user", "agent"});
    std::string secret = new_secret();
    if (secret.empty()) co_return error(500, "internal_error", "No randomness available to generate a key.");
    core::virtual_key key = core::make_virtual_key(secret);
    key.name = string_field(body, "name", problem);
    key.departments = string_list(body, "departments", problem);
    key.user = string_field(body, "user", problem);
    key.agent = string_field(body, "agent", problem);
    if (!problem.empty()) co_return error(400, "invalid_key", problem + ".");
    auto created = unix_ms(std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()));
    problem = co_await call_on(accounts_.executor(), [&] { return accounts_.add_key(key, created); });
    if (!problem.empty()) co_return error(409, "conflict", problem + ".");
    json::array departments;
    for (const auto& d : key.departments) departments.push_back(json::string(d));
    // The only time the secret is shown: tollgate keeps just its hash.
    co_return ok_json(json::serialize(json::object{{"key", secret},
                                                   {"fingerprint", key.fingerprint},
                                                   {"masked", key.masked},
                                                   {"name", key.name},
                                                   {"departments", std::move(departments)},
                                                   {"user", key.user},
                                                   {"agent", key.agent},
                                                   {"created_ms", created}}),
                      201);
  }
  std::string fingerprint = decoded(rest.substr(1));
  if (method != http::verb::delete_) co_return error(405, "method_not_allowed", "Use DELETE /admin/keys/<fingerprint>.");
  auto problem = co_await call_on(accounts_.executor(), [&] { return accounts_.remove_key(fingerprint); });
  if (!problem.empty()) co_return error(404, "not_found", problem + ".");
  co_return ok_json(json::serialize(json::object{{"deleted", fingerprint}}));
}

}  // namespace tollgate::proxy
