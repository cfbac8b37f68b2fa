#pragma once

#include <cstdint>
#include <map>
#include <string>

struct sqlite3;

namespace tollgate::storage {

// [start_ms, end_ms) in unix milliseconds. The caller computes calendar bounds in
// TOLLGATE_TZ; storage stays free of time zones and wall clocks.
struct time_range {
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;
};

struct spend_totals {
  std::int64_t requests = 0;
  std::int64_t tokens = 0;      // prompt + completion (cached tokens are part of prompt)
  std::int64_t micro_usd = 0;
  friend bool operator==(const spend_totals&, const spend_totals&) = default;
};

// Empty names (no key, no department, no user) are not grouped: only `total` counts them.
struct spend_breakdown {
  spend_totals total;
  std::map<std::string, spend_totals, std::less<>> by_provider;
  std::map<std::string, spend_totals, std::less<>> by_key;
  std::map<std::string, spend_totals, std::less<>> by_department;  // each listed department
  std::map<std::string, spend_totals, std::less<>> by_user;
};

struct spend_snapshot {
  spend_breakdown day;
  spend_breakdown month;
};

struct spend_result {
  bool ok = false;
  std::string error;
  spend_snapshot snapshot;
};

// Rebuilds the in-memory spend counters from the ledger at start-up. A department list
// "a, b" bills each of a and b in full, since every department's quota is checked.
spend_result rebuild_spend(sqlite3* db, time_range day, time_range month) noexcept;
// Convenience: opens `path` read-only for the query (WAL lets it run beside the writer).
spend_result rebuild_spend(const std::string& path, time_range day, time_range month) noexcept;

}  // namespace tollgate::storage
