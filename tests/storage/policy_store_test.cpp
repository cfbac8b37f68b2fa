#include "storage/ledger.hpp"
#include "storage/policy_store.hpp"
#include "storage/schema.hpp"
#include "storage_fixture.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <fstream>
#include <string>
#include <vector>

using namespace tollgate::storage;
using namespace std::chrono_literals;
using tollgate::storage::testing::awaited;
using tollgate::storage::testing::prepare_file;
using tollgate::storage::testing::scalar;
using tollgate::storage::testing::temp_dir;

namespace {

// The writer thread as the admin API will drive it; the flush timer is long so nothing but
// the queued task itself can wake the writer.
ledger_options quiet() { return ledger_options{.flush_interval = 60'000ms}; }

task_result wait(const std::function<void(ledger::task_callback)>& start) {
  awaited<task_result> done;
  start(done.callback());
  return done.get();
}

stored_budget budget(std::string provider, std::int64_t monthly, std::optional<std::int64_t> daily) {
  return stored_budget{std::move(provider), monthly, daily};
}

stored_key key(std::string fingerprint, std::string hash, std::vector<std::string> departments) {
  stored_key k;
  k.fingerprint = std::move(fingerprint);
  k.key_hash = std::move(hash);
  k.masked = "tg-****" + k.fingerprint;
  k.name = "key " + k.fingerprint;
  k.departments = std::move(departments);
  k.user = "alice";
  k.agent = "planner";
  k.created_ms = 1'767'225'600'000;
  return k;
}

policy_state load(const std::string& path) {
  auto loaded = load_policy(path);
  REQUIRE_MESSAGE(loaded.ok, loaded.error);
  return loaded.state;
}

}  // namespace

TEST_CASE("policy: every save round-trips through load_policy after a restart") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");

  stored_quota search;
  search.scope = "department";
  search.name = "search";
  search.daily_tokens = 1'000'000;
  search.monthly_micro_usd = 50'000'000;
  search.allowed_models = {"gpt-4o", "claude-sonnet-4"};
  stored_quota alice;  // no limits at all, only a model list: must still exist
  alice.scope = "user";
  alice.name = "alice";
  alice.allowed_models = {"gpt-4o-mini"};
  stored_quota bare;  // neither limits nor models
  bare.scope = "key";
  bare.name = "fp-9";
  stored_quota all_limits;
  all_limits.scope = "key";
  all_limits.name = "fp-1";
  all_limits.daily_tokens = 1;
  all_limits.monthly_tokens = 2;
  all_limits.daily_micro_usd = 3;
  all_limits.monthly_micro_usd = 9'007'199'254'740'993;  // beyond double precision

  const auto k1 = key("fp-1", "hash-1", {"search", "ads"});
  const auto k2 = key("fp-2", "hash-2", {});
  {
    ledger l(path, quiet());
    CHECK(wait([&](auto cb) { l.save_budget(budget("openai", 5'000'000, 200'000), cb); }).ok);
    CHECK(wait([&](auto cb) { l.save_budget(budget("anthropic", 1'000'000, std::nullopt), cb); }).ok);
    for (const auto& q : {search, alice, bare, all_limits}) {
      const auto r = wait([&](auto cb) { l.save_quota(q, cb); });
      CHECK_MESSAGE(r.ok, r.error);
    }
    CHECK(wait([&](auto cb) { l.save_key(k1, cb); }).ok);
    CHECK(wait([&](auto cb) { l.save_key(k2, cb); }).ok);
    l.stop();
  }
  const auto state = load(path);
  CHECK(state.budgets == std::vector{budget("anthropic", 1'000'000, std::nullopt),
                                     budget("openai", 5'000'000, 200'000)});
  CHECK(state.quotas == std::vector{search, all_limits, bare, alice});  // (scope, name) order
  CHECK(state.keys == std::vector{k1, k2});

  // Upserts replace the whole value; deletes remove it; deleting nothing is fine.
  auto openai_monthly_only = budget("openai", 7'000'000, std::nullopt);
  stored_quota search2;
  search2.scope = "department";
  search2.name = "search";
  search2.monthly_tokens = 42;
  auto k1_renamed = k1;
  k1_renamed.name = "renamed";
  k1_renamed.departments = {"ads"};
  k1_renamed.key_hash = "hash-1b";  // rotated
  {
    ledger l(path, quiet());
    CHECK(wait([&](auto cb) { l.save_budget(openai_monthly_only, cb); }).ok);
    CHECK(wait([&](auto cb) { l.delete_budget("anthropic", cb); }).ok);
    CHECK(wait([&](auto cb) { l.delete_budget("never-existed", cb); }).ok);
    CHECK(wait([&](auto cb) { l.save_quota(search2, cb); }).ok);
    CHECK(wait([&](auto cb) { l.delete_quota("user", "alice", cb); }).ok);
    CHECK(wait([&](auto cb) { l.delete_quota("key", "fp-1", cb); }).ok);
    CHECK(wait([&](auto cb) { l.save_key(k1_renamed, cb); }).ok);
    CHECK(wait([&](auto cb) { l.delete_key("fp-2", cb); }).ok);
    CHECK(wait([&](auto cb) { l.delete_key("fp-404", cb); }).ok);
    l.stop();
  }
  const auto after = load(path);
  CHECK(after.budgets == std::vector{openai_monthly_only});
  CHECK(after.quotas == std::vector{search2, bare});
  CHECK(after.keys == std::vector{k1_renamed});
  CHECK(scalar(path, "SELECT count(*) FROM budgets") == 1);  // the old daily row is gone
  CHECK(scalar(path, "SELECT count(*) FROM quotas") == 1);
}

TEST_CASE("policy: invalid values and a duplicate key hash are refused, nothing changes") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  ledger l(path, quiet());
  REQUIRE(wait([&](auto cb) { l.save_key(key("fp-1", "hash-1", {"search"}), cb); }).ok);

  // Another fingerprint with the same hash: refused, and fp-1 is not silently replaced.
  auto clash = wait([&](auto cb) { l.save_key(key("fp-2", "hash-1", {}), cb); });
  CHECK_FALSE(clash.ok);
  CHECK(clash.error.find("save key fp-2") != std::string::npos);
  CHECK(clash.error.find("UNIQUE") != std::string::npos);

  stored_quota team;
  team.scope = "team";
  team.name = "x";
  auto r = wait([&](auto cb) { l.save_quota(team, cb); });
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("scope") != std::string::npos);

  stored_quota piped;
  piped.scope = "user";
  piped.name = "bob";
  piped.allowed_models = {"a|b"};
  r = wait([&](auto cb) { l.save_quota(piped, cb); });
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("'|'") != std::string::npos);

  r = wait([&](auto cb) { l.save_key(key("fp-3", "hash-3", {""}), cb); });
  CHECK_FALSE(r.ok);
  r = wait([&](auto cb) { l.save_budget(budget("", 1, std::nullopt), cb); });
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("empty") != std::string::npos);
  l.stop();

  const auto state = load(path);
  CHECK(state.budgets.empty());
  CHECK(state.quotas.empty());
  REQUIRE(state.keys.size() == 1);
  CHECK(state.keys[0].fingerprint == "fp-1");
}

TEST_CASE("policy: audit rows are appended and read newest first") {
  temp_dir dir;
  ledger l(dir.file("ledger.db"), quiet());
  std::vector<audit_row> rows;
  for (int i = 0; i < 5; ++i) {
    audit_row row;
    row.time_ms = 1'000 + (i / 2) * 10;  // pairs share a time: insertion order breaks the tie
    row.provider = i % 2 == 0 ? "openai" : "anthropic";
    row.from_state = "normal";
    row.to_state = "throttled-" + std::to_string(i);
    row.spent_micro_usd = 100 * i;
    row.budget_micro_usd = 1'000;
    row.projected_micro_usd = 2'000 + i;
    row.reason = "projected over budget";
    rows.push_back(row);
    const auto r = wait([&](auto cb) { l.append_audit(row, cb); });
    REQUIRE_MESSAGE(r.ok, r.error);
  }
  awaited<audit_result> newest;
  l.query_audit(3, newest.callback());
  const auto got = newest.get();
  REQUIRE_MESSAGE(got.ok, got.error);
  CHECK(got.rows == std::vector{rows[4], rows[3], rows[2]});

  awaited<audit_result> none;
  l.query_audit(0, none.callback());
  const auto empty = none.get();
  CHECK(empty.ok);
  CHECK(empty.rows.empty());

  awaited<audit_result> all;
  l.query_audit(100, all.callback());
  CHECK(all.get().rows.size() == 5);
}

TEST_CASE("policy: load_policy on a missing, corrupt, or old file") {
  temp_dir dir;
  SUBCASE("missing file: ok and empty, and nothing is created") {
    const auto path = dir.file("absent.db");
    const auto loaded = load_policy(path);
    CHECK(loaded.ok);
    CHECK(loaded.state.budgets.empty());
    CHECK(loaded.state.keys.empty());
    CHECK_FALSE(std::filesystem::exists(path));
  }
  SUBCASE("corrupt file: an error value") {
    const auto path = dir.file("corrupt.db");
    {
      std::ofstream out(path, std::ios::binary);
      for (int i = 0; i < 4096; ++i) out.put(static_cast<char>(0x5a ^ i));
    }
    const auto loaded = load_policy(path);
    CHECK_FALSE(loaded.ok);
    CHECK(loaded.error.find("not a database") != std::string::npos);
  }
  SUBCASE("a version 1 file is read as far as it goes, without migrating it") {
    const auto path = dir.file("v1.db");
    prepare_file(path, "INSERT INTO budgets VALUES ('provider','openai','month',NULL,5000000);"
                       "INSERT INTO budgets VALUES ('provider','openai','day',NULL,300000);"
                       "INSERT INTO quotas VALUES ('user','alice','month',1000,NULL);", 1);
    const auto loaded = load_policy(path);
    REQUIRE_MESSAGE(loaded.ok, loaded.error);
    CHECK(loaded.state.budgets == std::vector{budget("openai", 5'000'000, 300'000)});
    REQUIRE(loaded.state.quotas.size() == 1);
    CHECK(loaded.state.quotas[0].monthly_tokens == 1000);
    CHECK_FALSE(loaded.state.quotas[0].daily_tokens);
    CHECK(loaded.state.quotas[0].allowed_models.empty());
    CHECK(loaded.state.keys.empty());
    CHECK(scalar(path, "PRAGMA user_version") == 1);
  }
  SUBCASE("an empty (version 0) file holds no policy") {
    const auto path = dir.file("empty.db");
    std::ofstream(path).flush();
    const auto loaded = load_policy(path);
    CHECK_MESSAGE(loaded.ok, loaded.error);
  }
}
