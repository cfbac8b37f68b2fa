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

#include "tests/integration/metering_fixture.hpp"

#include <set>

namespace tollgate::itest {
namespace {

using namespace metering;
using namespace std::chrono_literals;
using testing::http_request;

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

  const auto after_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
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
    // The request's start on the system clock (the worker derives it from the steady clock).
    CHECK(num(got, "time_ms").value_or(0) >= static_cast<double>(before_ms - 1000));
    CHECK(num(got, "time_ms").value_or(0) <= static_cast<double>(after_ms + 1000));
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

  // The most recently written first, ids falling. (Two workers' rows reach the ledger in one
  // batch, one worker's after the other's, so that order is not quite the order of start times.)
  const auto ordered = all_rows(p.proxy, {}, 2);  // two per page: paging must add up
  REQUIRE(ordered.size() == 4);
  std::set<std::string> listed;
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    listed.insert(str(ordered[i], "request_id"));
    if (i > 0) CHECK(num(ordered[i - 1], "id").value_or(-1) > num(ordered[i], "id").value_or(-1));
  }
  CHECK(listed == std::set<std::string>(ids.begin(), ids.end()));

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

}  // namespace
}  // namespace tollgate::itest
