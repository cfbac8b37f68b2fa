#include "storage/ledger.hpp"
#include "storage/schema.hpp"
#include "storage_fixture.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace tollgate::storage;
using namespace std::chrono_literals;
using tollgate::core::ledger_record;
using tollgate::storage::testing::awaited;
using tollgate::storage::testing::make_record;
using tollgate::storage::testing::temp_dir;

namespace {

// Long enough that only a queued task (or stop) can wake the writer within a test.
constexpr auto never = 60'000ms;

ledger_record timed(std::int64_t time_ms, std::string provider, std::string model, int status) {
  ledger_record r = make_record(0);
  r.time_ms = time_ms;
  r.request_id = provider + "-" + std::to_string(time_ms);
  r.provider = std::move(provider);
  r.model = std::move(model);
  r.http_status = status;
  return r;
}

}  // namespace

TEST_CASE("ledger tasks: records submitted before a query are visible to it") {
  temp_dir dir;
  constexpr int n = 500;
  ledger l(dir.file("ledger.db"), ledger_options{.flush_interval = never, .producers = 2});
  for (int i = 0; i < n; ++i) REQUIRE(l.submit(static_cast<unsigned>(i % 2), make_record(i)));
  const auto t0 = std::chrono::steady_clock::now();
  awaited<rows_result> rows;
  l.query_rows(n * 2, 0, rows.callback());
  const auto result = rows.get();
  // Woken by the task, not the timer: well under the flush interval.
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  REQUIRE_MESSAGE(result.ok, result.error);
  CHECK(result.total == n);
  CHECK(result.rows.size() == n);
  CHECK(l.stats().written == n);

  awaited<stats_result> stats;
  REQUIRE(l.submit(0, make_record(n)));
  l.query_stats(stats_query{0, std::numeric_limits<std::int64_t>::max()}, stats.callback());
  CHECK(stats.get().total.requests == n + 1);

  awaited<spend_result> spend;
  REQUIRE(l.submit(1, make_record(n + 1)));
  const time_range all{0, std::numeric_limits<std::int64_t>::max()};
  l.query_spend(all, all, spend.callback());
  const auto sp = spend.get();
  REQUIRE_MESSAGE(sp.ok, sp.error);
  CHECK(sp.snapshot.month.total.requests == n + 2);
  CHECK(sp.snapshot.day.by_department.at("ads").requests == n + 2);
}

TEST_CASE("ledger tasks: read-your-writes holds for every producer while the writer is busy") {
  temp_dir dir;
  constexpr unsigned producers = 2;
  constexpr int rounds = 40;
  ledger l(dir.file("ledger.db"), ledger_options{.flush_interval = 1ms, .producers = producers});
  std::vector<std::thread> threads;
  std::atomic<int> stale{0};
  for (unsigned p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < rounds; ++i) {
        auto r = make_record(i);
        r.request_id = "p" + std::to_string(p) + "-" + std::to_string(i);
        if (!l.submit(p, r)) FAIL("dropped");
        // Everything this producer submitted so far must be visible to its next query.
        awaited<rows_result> rows;
        l.query_rows(0, 0, rows.callback());
        const auto result = rows.get();
        if (!result.ok || result.total < i + 1) ++stale;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(stale == 0);
  l.stop();
  CHECK(l.stats().written == producers * rounds);
}

TEST_CASE("ledger tasks: stats totals and group-bys over a window") {
  temp_dir dir;
  ledger l(dir.file("ledger.db"), ledger_options{.flush_interval = never});
  constexpr std::int64_t start = 1'767'225'600'000;
  constexpr std::int64_t end = start + 1'000;

  auto a = timed(start, "openai", "gpt-4o", 200);  // first instant: inside
  a.prompt_tokens = 100;
  a.completion_tokens = 50;
  a.cached_tokens = 10;
  a.cost_micro_usd = 1'000;
  a.duration_ms = 200;
  a.ttfb_ms = 50;
  a.streamed = true;
  a.stream_completed = true;
  auto b = timed(start + 500, "openai", "gpt-4o-mini", 200);
  b.prompt_tokens = 10;
  b.completion_tokens = 5;
  b.cached_tokens = 0;
  b.cost_micro_usd = 20;
  b.duration_ms = 100;
  b.ttfb_ms = 30;
  b.streamed = true;
  b.stream_completed = false;  // cut short
  auto c = timed(end - 1, "anthropic", "claude-sonnet-4", 429);
  c.prompt_tokens = 7;
  c.completion_tokens = 0;
  c.cost_micro_usd = 0;
  c.duration_ms = 31;
  c.ttfb_ms = 0;
  c.usage_estimated = true;
  auto before = timed(start - 1, "openai", "gpt-4o", 200);  // outside: just before
  before.prompt_tokens = 1'000'000;
  before.cost_micro_usd = 1'000'000;
  before.duration_ms = 1'000'000;
  auto after = timed(end, "anthropic", "claude-sonnet-4", 500);  // outside: end is exclusive
  after.prompt_tokens = 1'000'000;
  after.streamed = true;
  for (const auto& r : {a, b, c, before, after}) REQUIRE(l.submit(0, r));

  awaited<stats_result> done;
  l.query_stats(stats_query{start, end}, done.callback());
  const auto s = done.get();
  REQUIRE_MESSAGE(s.ok, s.error);
  CHECK(s.total.requests == 3);
  CHECK(s.total.prompt_tokens == 117);
  CHECK(s.total.completion_tokens == 55);
  CHECK(s.total.cached_tokens == 10);
  CHECK(s.total.cost_micro_usd == 1'020);
  CHECK(s.total.avg_duration_ms == doctest::Approx(331.0 / 3));
  CHECK(s.total.avg_ttfb_ms == doctest::Approx(80.0 / 3));
  CHECK(s.streamed == 2);
  CHECK(s.stream_incomplete == 1);
  CHECK(s.usage_estimated == 1);

  REQUIRE(s.by_provider.size() == 2);
  const auto& openai = s.by_provider.at("openai");
  CHECK(openai.requests == 2);
  CHECK(openai.prompt_tokens == 110);
  CHECK(openai.cost_micro_usd == 1'020);
  CHECK(openai.avg_duration_ms == doctest::Approx(150.0));
  CHECK(openai.avg_ttfb_ms == doctest::Approx(40.0));
  const auto& anthropic = s.by_provider.at("anthropic");
  CHECK(anthropic.requests == 1);
  CHECK(anthropic.avg_duration_ms == doctest::Approx(31.0));

  REQUIRE(s.by_model.size() == 3);
  CHECK(s.by_model.at("gpt-4o").requests == 1);
  CHECK(s.by_model.at("gpt-4o").cached_tokens == 10);
  CHECK(s.by_model.at("gpt-4o-mini").completion_tokens == 5);
  CHECK(s.by_model.at("claude-sonnet-4").prompt_tokens == 7);

  REQUIRE(s.by_status.size() == 2);
  CHECK(s.by_status.at(200).requests == 2);
  CHECK(s.by_status.at(429).requests == 1);
  CHECK(s.by_status.count(500) == 0);

  awaited<stats_result> empty;
  l.query_stats(stats_query{end + 10, end + 20}, empty.callback());
  const auto e = empty.get();
  CHECK(e.ok);
  CHECK(e.total.requests == 0);
  CHECK(e.total.avg_duration_ms == 0.0);
  CHECK(e.by_provider.empty());
}

TEST_CASE("ledger tasks: rows page the most recently written first, with a total") {
  temp_dir dir;
  ledger l(dir.file("ledger.db"), ledger_options{.flush_interval = never});
  // Times 0,0,1,1,2,2,...: the order rows were written in decides, equal times included.
  std::vector<ledger_record> records;
  for (int i = 0; i < 10; ++i) {
    auto r = make_record(i);
    r.time_ms = 1'000 + i / 2;
    r.streamed = i % 3 == 0;
    r.ttfb_ms = i;
    records.push_back(r);
    REQUIRE(l.submit(0, r));
  }
  awaited<rows_result> page;
  l.query_rows(3, 2, page.callback());
  const auto p = page.get();
  REQUIRE_MESSAGE(p.ok, p.error);
  CHECK(p.total == 10);
  REQUIRE(p.rows.size() == 3);
  CHECK(p.rows[0].record == records[7]);  // every field read back
  CHECK(p.rows[1].record == records[6]);
  CHECK(p.rows[2].record == records[5]);
  CHECK(p.rows[0].id > p.rows[1].id);

  awaited<rows_result> tail;
  l.query_rows(5, 8, tail.callback());
  const auto t = tail.get();
  REQUIRE(t.rows.size() == 2);
  CHECK(t.rows[0].record.request_id == "req-1");
  CHECK(t.rows[1].record.request_id == "req-0");

  awaited<rows_result> none;
  l.query_rows(0, 0, none.callback());
  const auto n = none.get();
  CHECK(n.ok);
  CHECK(n.rows.empty());
  CHECK(n.total == 10);

  awaited<rows_result> negative;
  l.query_rows(2, -5, negative.callback());
  const auto neg = negative.get();
  REQUIRE(neg.rows.size() == 2);
  CHECK(neg.rows[0].record.request_id == "req-9");
}

TEST_CASE("ledger tasks: run in order, on the writer thread") {
  temp_dir dir;
  ledger l(dir.file("ledger.db"), ledger_options{.flush_interval = never});
  std::mutex mutex;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  constexpr int n = 20;
  awaited<task_result> last;
  for (int i = 0; i < n; ++i) {
    auto note = [&, i](task_result r) {
      std::lock_guard lock(mutex);
      CHECK(r.ok);
      order.push_back(i);
      threads.push_back(std::this_thread::get_id());
    };
    l.save_budget(stored_budget{"openai", i, std::nullopt}, note);
  }
  l.save_budget(stored_budget{"openai", 999, std::nullopt}, last.callback());
  REQUIRE(last.get().ok);
  std::lock_guard lock(mutex);
  REQUIRE(order.size() == n);
  for (int i = 0; i < n; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);
  for (const auto id : threads) CHECK(id != std::this_thread::get_id());
  CHECK(last.thread() != std::this_thread::get_id());
  CHECK(l.stats().tasks_queued == 0);
}

TEST_CASE("ledger tasks: an empty or throwing callback does not stop the writer") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  ledger l(path, ledger_options{.flush_interval = never});
  l.save_budget(stored_budget{"a", 1, std::nullopt}, {});
  l.save_budget(stored_budget{"b", 2, std::nullopt}, [](task_result) { throw std::runtime_error("boom"); });
  awaited<task_result> after;
  l.save_budget(stored_budget{"c", 3, std::nullopt}, after.callback());
  CHECK(after.get().ok);
  CHECK(l.stats().callback_errors == 1);
  l.stop();
  const auto loaded = load_policy(path);
  REQUIRE(loaded.ok);
  CHECK(loaded.state.budgets.size() == 3);
}

TEST_CASE("ledger tasks: an unavailable database fails every task with a reason, no hang") {
  temp_dir dir;
  std::string path;
  std::string expected;
  SUBCASE("directory does not exist") {
    path = dir.file("missing-dir/ledger.db");
    expected = "unable to open";
  }
  SUBCASE("corrupt file") {
    path = dir.file("corrupt.db");
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>(0xa5 ^ i));
    expected = "not a database";
  }
  ledger l(path, ledger_options{.flush_interval = never});
  REQUIRE_FALSE(l.stats().healthy);

  auto check_failed = [&](bool ok, const std::string& error) {
    CHECK_FALSE(ok);
    CHECK_MESSAGE(error.find("unavailable") != std::string::npos, error);
    CHECK_MESSAGE(error.find(expected) != std::string::npos, error);
  };
  awaited<task_result> budget;
  awaited<task_result> quota;
  awaited<task_result> key;
  awaited<task_result> audit;
  awaited<task_result> removed;
  awaited<stats_result> stats;
  awaited<rows_result> rows;
  awaited<audit_result> audit_rows;
  awaited<spend_result> spend;
  l.save_budget(stored_budget{"openai", 1, std::nullopt}, budget.callback());
  stored_quota q;
  q.scope = "user";
  q.name = "alice";
  stored_key k;
  k.fingerprint = "fp";
  k.key_hash = "h";
  l.save_quota(q, quota.callback());
  l.save_key(k, key.callback());
  l.append_audit(audit_row{}, audit.callback());
  l.delete_key("fp", removed.callback());
  l.query_stats(stats_query{0, 1}, stats.callback());
  l.query_rows(10, 0, rows.callback());
  l.query_audit(10, audit_rows.callback());
  l.query_spend(time_range{0, 1}, time_range{0, 1}, spend.callback());
  for (auto* t : {&budget, &quota, &key, &audit, &removed}) {
    const auto r = t->get();
    check_failed(r.ok, r.error);
  }
  const auto s = stats.get();
  check_failed(s.ok, s.error);
  const auto r = rows.get();
  check_failed(r.ok, r.error);
  const auto a = audit_rows.get();
  check_failed(a.ok, a.error);
  const auto sp = spend.get();
  check_failed(sp.ok, sp.error);
  // Still failing (and answering) at stop.
  awaited<task_result> late;
  l.delete_budget("openai", late.callback());
  l.stop();
  CHECK_FALSE(late.get(0ms).ok);
}

TEST_CASE("ledger tasks: queued before stop() run; queued after complete at once with an error") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  ledger l(path, ledger_options{.flush_interval = never});
  std::vector<awaited<task_result>> before(10);
  for (std::size_t i = 0; i < before.size(); ++i)
    l.save_budget(stored_budget{"p" + std::to_string(i), 1, std::nullopt}, before[i].callback());
  awaited<rows_result> rows;
  REQUIRE(l.submit(0, make_record(1)));
  l.query_rows(10, 0, rows.callback());
  l.stop();
  for (auto& b : before) CHECK(b.get(0ms).ok);  // stop() returned, so every one has run
  CHECK(rows.get(0ms).rows.size() == 1);

  awaited<task_result> after;
  l.save_budget(stored_budget{"late", 1, std::nullopt}, after.callback());
  const auto r = after.get(0ms);  // no writer left: completed on this very thread
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("stopped") != std::string::npos);
  CHECK(after.thread() == std::this_thread::get_id());
  awaited<stats_result> stats;
  l.query_stats(stats_query{0, 1}, stats.callback());
  CHECK_FALSE(stats.get(0ms).ok);
  l.append_audit(audit_row{}, {});  // an empty callback is fine here too
  CHECK(l.stats().tasks_queued == 0);

  const auto loaded = load_policy(path);
  REQUIRE(loaded.ok);
  CHECK(loaded.state.budgets.size() == 10);
}
