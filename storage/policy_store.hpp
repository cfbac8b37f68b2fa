#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace tollgate::storage {

// Persisted policy: what the admin API changed at run time, so a restart comes back with it.
// Plain values, no HTTP and no SQLite, so the proxy can build them from JSON and core can check
// them without knowing where they live.

// A provider budget, stored as budgets rows with scope 'provider' (one per period).
struct stored_budget {
  std::string provider;
  std::int64_t monthly_micro_usd = 0;
  std::optional<std::int64_t> daily_micro_usd;
  friend bool operator==(const stored_budget&, const stored_budget&) = default;
};

// A quota on a department, user or key. An empty allow-list means any model.
struct stored_quota {
  std::string scope;  // department | user | key
  std::string name;
  std::optional<std::int64_t> daily_tokens;
  std::optional<std::int64_t> monthly_tokens;
  std::optional<std::int64_t> daily_micro_usd;
  std::optional<std::int64_t> monthly_micro_usd;
  std::vector<std::string> allowed_models;
  friend bool operator==(const stored_quota&, const stored_quota&) = default;
};

// A virtual key. Only its hash is stored; the key itself never reaches the disk.
struct stored_key {
  std::string fingerprint;
  std::string key_hash;
  std::string masked;
  std::string name;
  std::vector<std::string> departments;
  std::string user;
  std::string agent;
  std::int64_t created_ms = 0;
  friend bool operator==(const stored_key&, const stored_key&) = default;
};

// One budget-throttle state change, written by the budget evaluator for the audit trail.
struct audit_row {
  std::int64_t time_ms = 0;
  std::string provider;
  std::string from_state;
  std::string to_state;
  std::int64_t spent_micro_usd = 0;
  std::int64_t budget_micro_usd = 0;
  std::int64_t projected_micro_usd = 0;
  std::string reason;
  friend bool operator==(const audit_row&, const audit_row&) = default;
};

// Sorted: budgets by provider, quotas by (scope, name), keys by fingerprint.
struct policy_state {
  std::vector<stored_budget> budgets;
  std::vector<stored_quota> quotas;
  std::vector<stored_key> keys;
};

struct policy_load_result {
  bool ok = false;
  std::string error;
  policy_state state;
};

// The outcome of a write queued on the ledger.
struct task_result {
  bool ok = false;
  std::string error;
};

struct audit_result {
  bool ok = false;
  std::string error;
  std::vector<audit_row> rows;  // newest first
};

// Start-up load, synchronous, on its own read-only connection (WAL lets it run beside the
// writer). A missing file is ok and empty: the first start has no policy yet. A file an
// older tollgate left unmigrated is read as far as its schema goes.
policy_load_result load_policy(const std::string& path) noexcept;
policy_load_result load_policy(sqlite3* db) noexcept;

// Direct writes on a connection the caller owns and confines to one thread: the ledger's
// writer runs these for the queued operations of the same names. Each save is an upsert
// that replaces the whole stored value (a budget saved without a daily limit loses its old
// one) in one transaction. Deleting what does not exist is ok. Names must be non-empty, list
// entries (departments, allowed models) non-empty and free of '|', the list separator, so
// that they round-trip; a quota's scope must be department, user or key.
task_result write_budget(sqlite3* db, const stored_budget& budget) noexcept;
task_result remove_budget(sqlite3* db, const std::string& provider) noexcept;
task_result write_quota(sqlite3* db, const stored_quota& quota) noexcept;
task_result remove_quota(sqlite3* db, const std::string& scope, const std::string& name) noexcept;
// A key_hash already used by another fingerprint is refused, never silently replaced.
task_result write_key(sqlite3* db, const stored_key& key) noexcept;
task_result remove_key(sqlite3* db, const std::string& fingerprint) noexcept;
task_result insert_audit(sqlite3* db, const audit_row& row) noexcept;
// Newest first (time_ms, then insertion order); a limit below 1 returns no rows.
audit_result select_audit(sqlite3* db, std::int64_t limit) noexcept;

}  // namespace tollgate::storage
