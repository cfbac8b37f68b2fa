#include "storage/schema.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::storage {

namespace {

// Index i migrates user_version i to i + 1. Each step runs in its own transaction together
// with the user_version bump, so a crash mid-migration leaves the previous version intact.
constexpr std::array<std::string_view, schema_version> migrations = {
    R"sql(
CREATE TABLE requests (
  id                INTEGER PRIMARY KEY,
  time_ms           INTEGER NOT NULL,
  request_id        TEXT    NOT NULL,
  key_fingerprint   TEXT    NOT NULL DEFAULT '',
  departments       TEXT    NOT NULL DEFAULT '',
  user_name         TEXT    NOT NULL DEFAULT '',
  agent             TEXT    NOT NULL DEFAULT '',
  provider          TEXT    NOT NULL,
  model             TEXT    NOT NULL,
  route_reason      TEXT    NOT NULL DEFAULT '',
  http_status       INTEGER NOT NULL,
  prompt_tokens     INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  cached_tokens     INTEGER NOT NULL DEFAULT 0,
  cost_micro_usd    INTEGER NOT NULL DEFAULT 0,
  ttfb_ms           INTEGER NOT NULL DEFAULT 0,
  duration_ms       INTEGER NOT NULL DEFAULT 0,
  streamed          INTEGER NOT NULL DEFAULT 0,
  stream_completed  INTEGER NOT NULL DEFAULT 0,
  usage_estimated   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX requests_time ON requests(time_ms);
CREATE INDEX requests_provider_time ON requests(provider, time_ms);

CREATE TABLE throttle_audit (
  id                  INTEGER PRIMARY KEY,
  time_ms             INTEGER NOT NULL,
  provider            TEXT    NOT NULL,
  from_state          TEXT    NOT NULL,
  to_state            TEXT    NOT NULL,
  spent_micro_usd     INTEGER NOT NULL,
  budget_micro_usd    INTEGER NOT NULL,
  projected_micro_usd INTEGER NOT NULL,
  reason              TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX throttle_audit_provider_time ON throttle_audit(provider, time_ms);

-- Budgets (per provider) and quotas (per department, user or key) share a shape; a NULL
-- limit means "no limit of that kind" so a row can cap tokens, cost, or both.
CREATE TABLE budgets (
  scope           TEXT    NOT NULL,
  name            TEXT    NOT NULL,
  period          TEXT    NOT NULL CHECK (period IN ('day', 'month')),
  limit_tokens    INTEGER,
  limit_micro_usd INTEGER,
  PRIMARY KEY (scope, name, period)
);
CREATE TABLE quotas (
  scope           TEXT    NOT NULL,
  name            TEXT    NOT NULL,
  period          TEXT    NOT NULL CHECK (period IN ('day', 'month')),
  limit_tokens    INTEGER,
  limit_micro_usd INTEGER,
  PRIMARY KEY (scope, name, period)
);
)sql",
    R"sql(
-- Virtual keys: only the hash authenticates, the fingerprint names the key in the ledger and
-- the admin API, and the masked form is what an operator is shown. Departments '|'-joined.
CREATE TABLE virtual_keys (
  fingerprint TEXT    PRIMARY KEY,
  key_hash    TEXT    NOT NULL UNIQUE,
  masked      TEXT    NOT NULL,
  name        TEXT    NOT NULL DEFAULT '',
  departments TEXT    NOT NULL DEFAULT '',
  user_name   TEXT    NOT NULL DEFAULT '',
  agent       TEXT    NOT NULL DEFAULT '',
  created_ms  INTEGER NOT NULL
);

-- A quota's model allow-list ('|'-joined, empty = any model). Every saved quota has exactly
-- one row here, so a quota that only restricts models (no limits, hence no quotas rows)
-- still exists.
CREATE TABLE quota_models (
  scope  TEXT NOT NULL,
  name   TEXT NOT NULL,
  models TEXT NOT NULL,
  PRIMARY KEY (scope, name)
);

-- Newest-first audit paging; requests_time already serves the same for requests (an index
-- entry carries the rowid, so ORDER BY time_ms DESC, id DESC walks it backwards).
CREATE INDEX throttle_audit_time ON throttle_audit(time_ms);
)sql",
    R"sql(
-- No query reads it (the stats, rows and spend queries all range over requests_time), yet
-- every ledger insert paid for maintaining it.
DROP INDEX IF EXISTS requests_provider_time;
)sql",
    R"sql(
-- From here on a row's id bounds its time (requests_id_floor in schema.hpp), so a time window
-- starts at a known id and requests_time, the last index every insert paid for, goes. The
-- rows are copied in the order they were written, each given the least id above the one
-- before that keeps its bound (tollgate_next_request_id), and the copy takes the table's
-- place. Copying appends in order; renumbering in place moved every row twice and took ten
-- times as long. legacy_alter_table keeps the rename from re-checking views, which name the
-- table and find the copy under it; open_database re-creates the table's triggers and any
-- index an operator added.
PRAGMA legacy_alter_table=ON;
CREATE TABLE requests_v4 (
  id                INTEGER PRIMARY KEY,
  time_ms           INTEGER NOT NULL,
  request_id        TEXT    NOT NULL,
  key_fingerprint   TEXT    NOT NULL DEFAULT '',
  departments       TEXT    NOT NULL DEFAULT '',
  user_name         TEXT    NOT NULL DEFAULT '',
  agent             TEXT    NOT NULL DEFAULT '',
  provider          TEXT    NOT NULL,
  model             TEXT    NOT NULL,
  route_reason      TEXT    NOT NULL DEFAULT '',
  http_status       INTEGER NOT NULL,
  prompt_tokens     INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  cached_tokens     INTEGER NOT NULL DEFAULT 0,
  cost_micro_usd    INTEGER NOT NULL DEFAULT 0,
  ttfb_ms           INTEGER NOT NULL DEFAULT 0,
  duration_ms       INTEGER NOT NULL DEFAULT 0,
  streamed          INTEGER NOT NULL DEFAULT 0,
  stream_completed  INTEGER NOT NULL DEFAULT 0,
  usage_estimated   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO requests_v4 (id, time_ms, request_id, key_fingerprint, departments, user_name, agent,
                         provider, model, route_reason, http_status, prompt_tokens,
                         completion_tokens, cached_tokens, cost_micro_usd, ttfb_ms, duration_ms,
                         streamed, stream_completed, usage_estimated)
SELECT tollgate_next_request_id(time_ms), time_ms, request_id, key_fingerprint, departments,
       user_name, agent, provider, model, route_reason, http_status, prompt_tokens,
       completion_tokens, cached_tokens, cost_micro_usd, ttfb_ms, duration_ms, streamed,
       stream_completed, usage_estimated
FROM requests ORDER BY id;
DROP TABLE requests;
ALTER TABLE requests_v4 RENAME TO requests;
PRAGMA legacy_alter_table=OFF;
)sql",
};

// The version (1-based) whose step copies `requests` into a new table: it needs
// tollgate_next_request_id, and what hangs off the old table (triggers, an operator's
// indexes) must be made again on the copy.
constexpr int requests_rebuilt_in = 4;

// tollgate_next_request_id(time_ms) for the copy: called once per row in the order rows were
// written, it returns the least id above the previous one that is at or above the row's
// floor.
void next_request_id(sqlite3_context* out, int, sqlite3_value** argv) noexcept {
  auto* last = static_cast<std::int64_t*>(sqlite3_user_data(out));
  const std::int64_t floor = requests_id_floor(sqlite3_value_int64(argv[0]));
  // Ids here stay below 2^53 plus the row count, so the increment cannot overflow.
  *last = *last == std::numeric_limits<std::int64_t>::min() ? floor : std::max(*last + 1, floor);
  sqlite3_result_int64(out, *last);
}

// The statements that made `table`'s triggers and indexes, in creation order, but not
// `except` (an index the migration drops on purpose) nor the indexes SQLite makes itself.
bool read_dependents(sqlite3* db, const char* table, const char* except, std::vector<std::string>& out) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT sql FROM sqlite_master WHERE type IN ('trigger', 'index') AND tbl_name=?1"
                         " AND name<>?2 AND sql IS NOT NULL ORDER BY rowid",
                         -1, &stmt, nullptr) != SQLITE_OK)
    return false;
  sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
  sqlite3_bind_text(stmt, 2, except, -1, SQLITE_STATIC);
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
  sqlite3_finalize(stmt);
  return rc == SQLITE_DONE;
}

// Runs the step that copies `requests` into a new table (inside the caller's transaction):
// with tollgate_next_request_id defined for it, and the old table's triggers and an
// operator's indexes made again on the copy.
bool rebuild_requests(sqlite3* db, const char* step) {
  auto exec = [db](const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK; };
  std::vector<std::string> dependents;
  if (!read_dependents(db, "requests", "requests_time", dependents)) return false;
  std::int64_t last_id = std::numeric_limits<std::int64_t>::min();
  if (sqlite3_create_function_v2(db, "tollgate_next_request_id", 1, SQLITE_UTF8 | SQLITE_DIRECTONLY, &last_id,
                                 next_request_id, nullptr, nullptr, nullptr) != SQLITE_OK)
    return false;
  bool ok = exec(step);
  for (const std::string& statement : dependents) ok = ok && exec(statement.c_str());
  // A null function deletes it: nothing may call it once last_id is gone.
  sqlite3_create_function_v2(db, "tollgate_next_request_id", 1, SQLITE_UTF8, nullptr, nullptr, nullptr, nullptr,
                             nullptr);
  return ok;
}

open_result fail(sqlite3* db, const std::string& path, std::string_view what) {
  open_result result;
  result.code = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_NOMEM;
  result.error = "ledger database " + path + ": " + std::string(what);
  if (db != nullptr) {
    result.error += ": ";
    result.error += sqlite3_errmsg(db);
  }
  return result;
}

}  // namespace

void db_closer::operator()(sqlite3* db) const noexcept {
  // close_v2 defers the close until the last statement is finalized, so an owner that forgot
  // one leaks nothing worse than a zombie handle.
  sqlite3_close_v2(db);
}

int read_user_version(sqlite3* db) noexcept {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr) != SQLITE_OK) return -1;
  int version = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) version = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  return version;
}

open_result open_database(const std::string& path, const open_options& options) noexcept {
  try {
    sqlite3* raw = nullptr;
    const int flags = options.read_only ? SQLITE_OPEN_READONLY
                                        : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    // NOMUTEX: each connection is confined to one thread (the writer, or the caller of a
    // query), so SQLite's per-connection mutex would be pure overhead.
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    db_handle db(raw);
    if (rc != SQLITE_OK) return fail(raw, path, "cannot open");
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, options.busy_timeout_ms);

    // The first real read: a garbage file fails here with SQLITE_NOTADB, not at open.
    const int version = read_user_version(raw);
    if (version < 0) return fail(raw, path, "cannot read schema version");
    if (version > schema_version) {
      open_result result;
      result.error = "ledger database " + path + " has schema version " +
                     std::to_string(version) + ", newer than this tollgate supports (" +
                     std::to_string(schema_version) + "); refusing to touch it";
      return result;
    }
    if (options.read_only) {
      if (version < schema_version && !options.accept_older) {
        open_result result;
        result.error = "ledger database " + path + " has schema version " +
                       std::to_string(version) + " and needs migrating, but is opened read-only";
        return result;
      }
      open_result result;
      result.db = std::move(db);
      return result;
    }

    char* message = nullptr;
    auto exec = [&](const char* sql) {
      if (sqlite3_exec(raw, sql, nullptr, nullptr, &message) == SQLITE_OK) return true;
      sqlite3_free(message);
      message = nullptr;
      return false;
    };
    if (!exec("PRAGMA journal_mode=WAL")) return fail(raw, path, "cannot enable WAL");
    if (!exec("PRAGMA synchronous=NORMAL")) return fail(raw, path, "cannot set synchronous");
    const int target = std::min(options.target_version, schema_version);
    for (int v = version; v < target; ++v) {
      if (!exec("BEGIN IMMEDIATE")) return fail(raw, path, "cannot start migration");
      const std::string bump = "PRAGMA user_version=" + std::to_string(v + 1);
      const std::string step(migrations[static_cast<std::size_t>(v)]);
      const bool migrated = v + 1 == requests_rebuilt_in ? rebuild_requests(raw, step.c_str()) : exec(step.c_str());
      if (!migrated || !exec(bump.c_str())) {
        auto result = fail(raw, path, "migration to version " + std::to_string(v + 1) + " failed");
        exec("ROLLBACK");
        return result;
      }
      if (!exec("COMMIT")) {
        auto result = fail(raw, path, "cannot commit migration");
        exec("ROLLBACK");
        return result;
      }
    }
    open_result result;
    result.db = std::move(db);
    return result;
  } catch (...) {
    open_result result;
    result.code = SQLITE_NOMEM;
    result.error = "ledger database " + path + ": out of memory while opening";
    return result;
  }
}

}  // namespace tollgate::storage
