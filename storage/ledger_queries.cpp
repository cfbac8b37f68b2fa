#include "storage/ledger_queries.hpp"

#include "storage/schema.hpp"
#include "storage/sql_util.hpp"

#include <algorithm>
#include <utility>

namespace tollgate::storage {

namespace {

// Aggregated in SQL to one row per (provider, model, status), so a month of rows becomes a
// handful before C++ folds them into the three group-bys. The window starts at the id floor of
// its start (schema.hpp) and reads the table from there. Durations are summed, not averaged,
// so groups merge exactly.
constexpr const char* stats_sql =
    "SELECT provider, model, http_status, count(*), sum(prompt_tokens), sum(completion_tokens),"
    " sum(cached_tokens), sum(cost_micro_usd), sum(duration_ms), sum(ttfb_ms), sum(streamed),"
    " sum(streamed AND NOT stream_completed), sum(usage_estimated)"
    " FROM requests WHERE id >= ?3 AND time_ms >= ?1 AND time_ms < ?2 GROUP BY provider, model, http_status";

// The table walked backwards from its last id: the rows most recently written first, no sort.
constexpr const char* rows_sql =
    "SELECT id, time_ms, request_id, key_fingerprint, departments, user_name, agent, provider,"
    " model, route_reason, http_status, prompt_tokens, completion_tokens, cached_tokens,"
    " cost_micro_usd, ttfb_ms, duration_ms, streamed, stream_completed, usage_estimated"
    " FROM requests ORDER BY id DESC LIMIT ?1 OFFSET ?2";

struct accumulator {
  stats_group group;
  std::int64_t duration_ms = 0;
  std::int64_t ttfb_ms = 0;

  void add(const accumulator& other) {
    group.requests += other.group.requests;
    group.prompt_tokens += other.group.prompt_tokens;
    group.completion_tokens += other.group.completion_tokens;
    group.cached_tokens += other.group.cached_tokens;
    group.cost_micro_usd += other.group.cost_micro_usd;
    duration_ms += other.duration_ms;
    ttfb_ms += other.ttfb_ms;
  }

  stats_group finish() const {
    stats_group g = group;
    if (g.requests > 0) {
      g.avg_duration_ms = static_cast<double>(duration_ms) / static_cast<double>(g.requests);
      g.avg_ttfb_ms = static_cast<double>(ttfb_ms) / static_cast<double>(g.requests);
    }
    return g;
  }
};

template <typename Key, typename Compare>
void finish_all(const std::map<Key, accumulator, Compare>& from, std::map<Key, stats_group, Compare>& to) {
  for (const auto& [key, acc] : from) to.emplace(key, acc.finish());
}

// A read transaction, so the count and the page (or the stats groups) see the same snapshot
// even when run on a connection other than the writer's.
class read_transaction {
 public:
  explicit read_transaction(sqlite3* db) noexcept
      : db_(db), open_(sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr) == SQLITE_OK) {}
  ~read_transaction() {
    if (open_) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  }
  read_transaction(const read_transaction&) = delete;
  read_transaction& operator=(const read_transaction&) = delete;
  explicit operator bool() const noexcept { return open_; }

 private:
  sqlite3* db_;
  bool open_;
};

}  // namespace

stats_result select_stats(sqlite3* db, const stats_query& query) noexcept {
  stats_result result;
  try {
    sql::statement stmt(db, stats_sql);
    if (!stmt) {
      result.error = sql::error(db, "stats query: cannot prepare");
      return result;
    }
    stmt.bind(1, query.start_ms).bind(2, query.end_ms).bind(3, requests_id_floor(query.start_ms));
    accumulator total;
    std::map<std::string, accumulator, std::less<>> by_provider;
    std::map<std::string, accumulator, std::less<>> by_model;
    std::map<int, accumulator> by_status;
    auto into = [](auto& map, auto key) -> accumulator& {
      auto it = map.find(key);
      if (it == map.end()) it = map.emplace(typename std::decay_t<decltype(map)>::key_type(key), accumulator{}).first;
      return it->second;
    };
    int rc = SQLITE_ROW;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      accumulator row;
      row.group.requests = stmt.int64(3);
      row.group.prompt_tokens = stmt.int64(4);
      row.group.completion_tokens = stmt.int64(5);
      row.group.cached_tokens = stmt.int64(6);
      row.group.cost_micro_usd = stmt.int64(7);
      row.duration_ms = stmt.int64(8);
      row.ttfb_ms = stmt.int64(9);
      total.add(row);
      into(by_provider, stmt.text(0)).add(row);
      into(by_model, stmt.text(1)).add(row);
      into(by_status, static_cast<int>(stmt.int64(2))).add(row);
      result.streamed += stmt.int64(10);
      result.stream_incomplete += stmt.int64(11);
      result.usage_estimated += stmt.int64(12);
    }
    if (rc != SQLITE_DONE) {
      result = {};
      result.error = sql::error(db, "stats query");
      return result;
    }
    result.total = total.finish();
    finish_all(by_provider, result.by_provider);
    finish_all(by_model, result.by_model);
    finish_all(by_status, result.by_status);
    result.ok = true;
  } catch (...) {
    result = {};
    result.error = "stats query: out of memory";
  }
  return result;
}

rows_result select_rows(sqlite3* db, std::int64_t limit, std::int64_t offset) noexcept {
  rows_result result;
  try {
    read_transaction snapshot(db);
    if (!snapshot) {
      result.error = sql::error(db, "rows query: cannot begin read");
      return result;
    }
    {
      sql::statement count(db, "SELECT count(*) FROM requests");
      if (!count || count.step() != SQLITE_ROW) {
        result.error = sql::error(db, "rows query: count");
        return result;
      }
      result.total = count.int64(0);
    }
    sql::statement stmt(db, rows_sql);
    if (!stmt) {
      result.error = sql::error(db, "rows query: cannot prepare");
      return result;
    }
    stmt.bind(1, std::max<std::int64_t>(limit, 0)).bind(2, std::max<std::int64_t>(offset, 0));
    result.rows.reserve(static_cast<std::size_t>(
        std::clamp<std::int64_t>(std::min(limit, result.total - std::max<std::int64_t>(offset, 0)), 0, 4096)));
    int rc = SQLITE_ROW;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      ledger_row& row = result.rows.emplace_back();
      int i = 0;
      auto i64 = [&] { return stmt.int64(i++); };
      auto text = [&] { return std::string(stmt.text(i++)); };
      row.id = i64();
      core::ledger_record& r = row.record;
      r.time_ms = i64();
      r.request_id = text();
      r.key_fingerprint = text();
      r.departments = text();
      r.user = text();
      r.agent = text();
      r.provider = text();
      r.model = text();
      r.route_reason = text();
      r.http_status = static_cast<int>(i64());
      r.prompt_tokens = i64();
      r.completion_tokens = i64();
      r.cached_tokens = i64();
      r.cost_micro_usd = i64();
      r.ttfb_ms = i64();
      r.duration_ms = i64();
      r.streamed = i64() != 0;
      r.stream_completed = i64() != 0;
      r.usage_estimated = i64() != 0;
    }
    if (rc != SQLITE_DONE) {
      result = {};
      result.error = sql::error(db, "rows query");
      return result;
    }
    result.ok = true;
  } catch (...) {
    result = {};
    result.error = "rows query: out of memory";
  }
  return result;
}

}  // namespace tollgate::storage
