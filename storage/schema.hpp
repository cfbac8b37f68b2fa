#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct sqlite3;

namespace tollgate::storage {

// The schema version this build writes. Bump it and append a migration step in schema.cpp;
// never edit a step that has shipped, since existing files have already run it.
inline constexpr int schema_version = 4;

// A ledger row's id bounds its time from above: id >= requests_id_floor(time_ms), and ids grow
// in the order rows are written. A window over time_ms therefore starts at a known id, and
// the table needs no index on time (which every insert would pay to maintain): rows from t on
// all have ids from requests_id_floor(t) on. Times are clamped to [0, 2^43) ms (until the
// year 2248), so ids stay below 2^53 and exact in any JSON reader.
inline constexpr int requests_id_time_shift = 10;
inline constexpr std::int64_t requests_id_max_time_ms = (std::int64_t{1} << 43) - 1;
constexpr std::int64_t requests_id_floor(std::int64_t time_ms) noexcept {
  return (time_ms < 0 ? 0 : time_ms > requests_id_max_time_ms ? requests_id_max_time_ms : time_ms)
         << requests_id_time_shift;
}

struct db_closer {
  void operator()(sqlite3* db) const noexcept;
};
using db_handle = std::unique_ptr<sqlite3, db_closer>;

struct open_options {
  // Read-only opens never migrate or switch journal mode; they exist for tools, for tests of
  // the unwritable-database path, and for running as root where chmod cannot deny writes.
  bool read_only = false;
  int busy_timeout_ms = 5000;
  // Read-only opens of a file an older tollgate left behind (not yet migrated) succeed instead
  // of failing; the reader must check read_user_version and skip what that version lacks.
  // For start-up readers that may run before the ledger has migrated the file.
  bool accept_older = false;
  // Migrate no further than this: lets a test build a file exactly as an older tollgate left
  // it. Production code never sets it.
  int target_version = schema_version;
};

// Errors are values: a corrupt, unwritable or too-new file must become a readiness failure
// and a log line in the proxy, never a crash or an exception unwinding through a reactor.
struct open_result {
  db_handle db;
  int code = 0;       // SQLite extended result code, or 0 when the failure is ours
  std::string error;  // human-readable, includes the path
  explicit operator bool() const noexcept { return db != nullptr; }
};

// Opens (creating if needed) and migrates the ledger database to schema_version: WAL,
// synchronous=NORMAL (durable across process crashes, at most the last commits lost on power
// loss, which is the trade Envoy-style access logs make too), busy_timeout.
open_result open_database(const std::string& path, const open_options& options = {}) noexcept;

// The database's PRAGMA user_version, or -1 when it cannot be read.
int read_user_version(sqlite3* db) noexcept;

}  // namespace tollgate::storage
