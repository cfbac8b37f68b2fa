#pragma once

#include "core/ledger_record.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

struct sqlite3;

namespace tollgate::storage {

// Read queries behind the /stats endpoints. The ledger runs them on its writer thread (see
// ledger::query_stats); the free functions take any connection, for tools and tests.

struct stats_query {
  std::int64_t start_ms = 0;  // [start_ms, end_ms) in unix milliseconds
  std::int64_t end_ms = 0;
};

struct stats_group {
  std::int64_t requests = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;
  std::int64_t cost_micro_usd = 0;
  // Means over every request of the group, failures included: a request that never saw a
  // first byte counts with the ttfb_ms the proxy recorded for it.
  double avg_duration_ms = 0;
  double avg_ttfb_ms = 0;
};

struct stats_result {
  bool ok = false;
  std::string error;
  stats_group total;
  std::map<std::string, stats_group, std::less<>> by_provider;
  std::map<std::string, stats_group, std::less<>> by_model;
  std::map<int, stats_group> by_status;
  std::int64_t streamed = 0;
  std::int64_t stream_incomplete = 0;  // streamed and not completed
  std::int64_t usage_estimated = 0;
};

struct ledger_row {
  std::int64_t id = 0;  // the row id: stable, growing in the order rows were written
  core::ledger_record record;
};

struct rows_result {
  bool ok = false;
  std::string error;
  std::vector<ledger_row> rows;  // most recently written first: id DESC
  std::int64_t total = 0;        // every row in the ledger, for paging
};

stats_result select_stats(sqlite3* db, const stats_query& query) noexcept;
// A limit below 1 returns no rows (total is still counted), a negative offset counts as 0.
// The caller caps limit: a huge page is read on the writer thread, delaying its commits.
rows_result select_rows(sqlite3* db, std::int64_t limit, std::int64_t offset) noexcept;

}  // namespace tollgate::storage
