// Provider budgets and the cost throttle, provider request quotas, virtual keys and the admin
// API, and what a kill -9 costs the ledger (issue 4). Pricing conventions: metering_fixture.hpp.

#include "tests/integration/metering_fixture.hpp"

namespace tollgate::itest {
namespace {

using namespace metering;
using namespace std::chrono_literals;
using testing::http_request;

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
