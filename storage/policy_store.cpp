#include "storage/policy_store.hpp"

#include "storage/schema.hpp"
#include "storage/sql_util.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <string_view>
#include <system_error>
#include <utility>

namespace tollgate::storage {

namespace {

constexpr char list_separator = '|';
constexpr const char* out_of_memory = "out of memory";

task_result success() { return task_result{true, {}}; }

task_result failure(std::string error) {
  task_result result;
  result.error = std::move(error);
  return result;
}

// Empty when `value` can be stored; otherwise why not.
std::string check_name(std::string_view what, std::string_view value) {
  if (value.empty()) return std::string(what) + " must not be empty";
  return {};
}

std::string check_list(std::string_view what, const std::vector<std::string>& entries) {
  for (const auto& entry : entries) {
    if (entry.empty()) return std::string(what) + " must not contain an empty entry";
    if (entry.find(list_separator) != std::string::npos)
      return std::string(what) + " entry '" + entry + "' contains '|', the list separator";
  }
  return {};
}

std::string join(const std::vector<std::string>& entries) {
  std::string joined;
  for (const auto& entry : entries) {
    if (!joined.empty()) joined += list_separator;
    joined += entry;
  }
  return joined;
}

std::vector<std::string> split(std::string_view joined) {
  std::vector<std::string> entries;
  while (!joined.empty()) {
    const auto at = joined.find(list_separator);
    if (at != 0) entries.emplace_back(joined.substr(0, at));
    if (at == std::string_view::npos) break;
    joined.remove_prefix(at + 1);
  }
  return entries;
}

// Runs one statement to completion; empty on success, otherwise the error. The message is
// taken before the statement is finalized, while it still describes this failure.
template <typename Bind>
std::string execute(sqlite3* db, const char* text, Bind&& bind) {
  sql::statement stmt(db, text);
  if (!stmt) return sql::error(db, "cannot prepare");
  bind(stmt);
  if (!stmt.bound()) return sql::error(db, "cannot bind");
  if (stmt.step() != SQLITE_DONE) return sql::error(db, "failed");
  return {};
}

// Every write is one transaction, so a multi-row value (a budget's day and month rows, a
// quota's limits and model list) is never seen or left half-saved. `body` returns an empty
// string on success or the error.
template <typename Body>
task_result in_transaction(sqlite3* db, const std::string& what, Body&& body) noexcept {
  try {
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
      return failure(sql::error(db, what + ": cannot begin"));
    std::string error;
    try {
      error = body();
      if (error.empty() && sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
        error = sql::error(db, "cannot commit");
    } catch (...) {
      error = out_of_memory;
    }
    if (error.empty()) return success();
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return failure(what + ": " + error);
  } catch (...) {
    return failure(out_of_memory);
  }
}

template <typename Body>
task_result single(const std::string& what, Body&& body) noexcept {
  try {
    std::string error = body();
    if (error.empty()) return success();
    return failure(what + ": " + error);
  } catch (...) {
    return failure(out_of_memory);
  }
}

void bind_optional(sql::statement& stmt, int index, const std::optional<std::int64_t>& value) {
  if (value) stmt.bind(index, *value);
  else stmt.bind_null(index);
}

// Reads everything in one read transaction, so a policy saved concurrently by the writer is
// either wholly in the snapshot or wholly absent.
std::string read_policy(sqlite3* db, int version, policy_state& state) {
  std::map<std::string, stored_budget, std::less<>> budgets;
  {
    sql::statement stmt(db,
                        "SELECT name, period, limit_micro_usd FROM budgets WHERE scope='provider'");
    if (!stmt) return sql::error(db, "cannot prepare budgets query");
    int rc = SQLITE_ROW;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      const auto name = stmt.text(0);
      auto it = budgets.find(name);
      if (it == budgets.end()) it = budgets.emplace(std::string(name), stored_budget{}).first;
      it->second.provider = it->first;
      if (stmt.text(1) == "month") it->second.monthly_micro_usd = stmt.int64(2);
      else if (!stmt.is_null(2)) it->second.daily_micro_usd = stmt.int64(2);
    }
    if (rc != SQLITE_DONE) return sql::error(db, "budgets query");
  }

  std::map<std::pair<std::string, std::string>, stored_quota> quotas;
  auto quota_for = [&](std::string_view scope, std::string_view name) -> stored_quota& {
    auto [it, inserted] = quotas.try_emplace({std::string(scope), std::string(name)});
    if (inserted) {
      it->second.scope = it->first.first;
      it->second.name = it->first.second;
    }
    return it->second;
  };
  {
    sql::statement stmt(db, "SELECT scope, name, period, limit_tokens, limit_micro_usd FROM quotas");
    if (!stmt) return sql::error(db, "cannot prepare quotas query");
    int rc = SQLITE_ROW;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      stored_quota& q = quota_for(stmt.text(0), stmt.text(1));
      const bool month = stmt.text(2) == "month";
      auto& tokens = month ? q.monthly_tokens : q.daily_tokens;
      auto& usd = month ? q.monthly_micro_usd : q.daily_micro_usd;
      if (!stmt.is_null(3)) tokens = stmt.int64(3);
      if (!stmt.is_null(4)) usd = stmt.int64(4);
    }
    if (rc != SQLITE_DONE) return sql::error(db, "quotas query");
  }
  if (version >= 2) {
    sql::statement stmt(db, "SELECT scope, name, models FROM quota_models");
    if (!stmt) return sql::error(db, "cannot prepare quota models query");
    int rc = SQLITE_ROW;
    while ((rc = stmt.step()) == SQLITE_ROW)
      quota_for(stmt.text(0), stmt.text(1)).allowed_models = split(stmt.text(2));
    if (rc != SQLITE_DONE) return sql::error(db, "quota models query");

    sql::statement keys(db,
                        "SELECT fingerprint, key_hash, masked, name, departments, user_name, agent,"
                        " created_ms FROM virtual_keys ORDER BY fingerprint");
    if (!keys) return sql::error(db, "cannot prepare keys query");
    while ((rc = keys.step()) == SQLITE_ROW) {
      stored_key& k = state.keys.emplace_back();
      k.fingerprint = keys.text(0);
      k.key_hash = keys.text(1);
      k.masked = keys.text(2);
      k.name = keys.text(3);
      k.departments = split(keys.text(4));
      k.user = keys.text(5);
      k.agent = keys.text(6);
      k.created_ms = keys.int64(7);
    }
    if (rc != SQLITE_DONE) return sql::error(db, "keys query");
  }

  state.budgets.reserve(budgets.size());
  for (auto& [name, budget] : budgets) state.budgets.push_back(std::move(budget));
  state.quotas.reserve(quotas.size());
  for (auto& [subject, quota] : quotas) state.quotas.push_back(std::move(quota));
  return {};
}

}  // namespace

policy_load_result load_policy(sqlite3* db) noexcept {
  policy_load_result result;
  try {
    const int version = read_user_version(db);
    if (version < 0) {
      result.error = sql::error(db, "policy: cannot read schema version");
      return result;
    }
    if (version == 0) {  // never migrated: no tables, so no policy
      result.ok = true;
      return result;
    }
    if (sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
      result.error = sql::error(db, "policy: cannot begin read");
      return result;
    }
    std::string error = read_policy(db, version, result.state);
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);  // read-only: nothing to lose
    if (!error.empty()) {
      result.state = {};
      result.error = "policy: " + error;
      return result;
    }
    result.ok = true;
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    result = {};
    result.error = "policy: out of memory";
  }
  return result;
}

policy_load_result load_policy(const std::string& path) noexcept {
  try {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && !ec) {
      policy_load_result result;
      result.ok = true;  // first start: nothing saved yet
      return result;
    }
    open_result opened = open_database(path, open_options{.read_only = true, .accept_older = true});
    if (!opened) {
      policy_load_result result;
      result.error = std::move(opened.error);
      return result;
    }
    return load_policy(opened.db.get());
  } catch (...) {
    policy_load_result result;
    result.error = "policy: out of memory";
    return result;
  }
}

task_result write_budget(sqlite3* db, const stored_budget& budget) noexcept {
  try {
    if (auto error = check_name("budget provider", budget.provider); !error.empty())
      return failure(std::move(error));
    return in_transaction(db, "save budget " + budget.provider, [&]() -> std::string {
      auto error = execute(db, "DELETE FROM budgets WHERE scope='provider' AND name=?1",
                           [&](sql::statement& s) { s.bind(1, budget.provider); });
      constexpr const char* insert =
          "INSERT INTO budgets (scope, name, period, limit_tokens, limit_micro_usd)"
          " VALUES ('provider', ?1, ?2, NULL, ?3)";
      if (error.empty()) {
        error = execute(db, insert, [&](sql::statement& s) {
          s.bind(1, budget.provider).bind(2, std::string_view("month")).bind(3, budget.monthly_micro_usd);
        });
      }
      if (error.empty() && budget.daily_micro_usd) {
        error = execute(db, insert, [&](sql::statement& s) {
          s.bind(1, budget.provider).bind(2, std::string_view("day")).bind(3, *budget.daily_micro_usd);
        });
      }
      return error;
    });
  } catch (...) {
    return failure(out_of_memory);
  }
}

task_result remove_budget(sqlite3* db, const std::string& provider) noexcept {
  try {
    return single("delete budget " + provider, [&] {
      return execute(db, "DELETE FROM budgets WHERE scope='provider' AND name=?1",
                     [&](sql::statement& s) { s.bind(1, provider); });
    });
  } catch (...) {
    return failure(out_of_memory);
  }
}

task_result write_quota(sqlite3* db, const stored_quota& quota) noexcept {
  try {
    if (quota.scope != "department" && quota.scope != "user" && quota.scope != "key")
      return failure("quota scope '" + quota.scope + "' is not department, user or key");
    if (auto error = check_name("quota name", quota.name); !error.empty()) return failure(std::move(error));
    if (auto error = check_list("quota allowed_models", quota.allowed_models); !error.empty())
      return failure(std::move(error));
    const std::string models = join(quota.allowed_models);
    return in_transaction(db, "save quota " + quota.scope + "/" + quota.name, [&]() -> std::string {
      auto bind_subject = [&](sql::statement& s) { s.bind(1, quota.scope).bind(2, quota.name); };
      auto error = execute(db, "DELETE FROM quotas WHERE scope=?1 AND name=?2", bind_subject);
      auto insert_period = [&](std::string_view period, const std::optional<std::int64_t>& tokens,
                               const std::optional<std::int64_t>& usd) {
        // No limit of either kind is no row: the table's NULLs mean "no limit of that kind".
        if (!error.empty() || (!tokens && !usd)) return;
        error = execute(db,
                        "INSERT INTO quotas (scope, name, period, limit_tokens, limit_micro_usd)"
                        " VALUES (?1, ?2, ?3, ?4, ?5)",
                        [&](sql::statement& s) {
                          bind_subject(s);
                          s.bind(3, period);
                          bind_optional(s, 4, tokens);
                          bind_optional(s, 5, usd);
                        });
      };
      insert_period("day", quota.daily_tokens, quota.daily_micro_usd);
      insert_period("month", quota.monthly_tokens, quota.monthly_micro_usd);
      if (error.empty()) {
        error = execute(db, "INSERT OR REPLACE INTO quota_models (scope, name, models) VALUES (?1, ?2, ?3)",
                        [&](sql::statement& s) { bind_subject(s); s.bind(3, models); });
      }
      return error;
    });
  } catch (...) {
    return failure(out_of_memory);
  }
}

task_result remove_quota(sqlite3* db, const std::string& scope, const std::string& name) noexcept {
  try {
    return in_transaction(db, "delete quota " + scope + "/" + name, [&]() -> std::string {
      auto bind_subject = [&](sql::statement& s) { s.bind(1, scope).bind(2, name); };
      auto error = execute(db, "DELETE FROM quotas WHERE scope=?1 AND name=?2", bind_subject);
      if (error.empty()) error = execute(db, "DELETE FROM quota_models WHERE scope=?1 AND name=?2", bind_subject);
      return error;
    });
  } catch (...) {
    return failure(out_of_memory);
  }
}

task_result write_key(sqlite3* db, const stored_key& key) noexcept {
  try {
    if (auto error = check_name("key fingerprint", key.fingerprint); !error.empty())
      return failure(std::move(error));
    if (auto error = check_name("key hash", key.key_hash); !error.empty()) return failure(std::move(error));
    if (auto error = check_list("key departments", key.departments); !error.empty())
      return failure(std::move(error));
    const std::string departments = join(key.departments);
    // An upsert on the fingerprint rather than INSERT OR REPLACE: REPLACE would also delete
    // whichever other key holds the same hash, silently revoking it.
    return single("save key " + key.fingerprint, [&] {
      return execute(db,
                     "INSERT INTO virtual_keys (fingerprint, key_hash, masked, name, departments,"
                     " user_name, agent, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                     " ON CONFLICT(fingerprint) DO UPDATE SET key_hash=excluded.key_hash,"
                     " masked=excluded.masked, name=excluded.name, departments=excluded.departments,"
                     " user_name=excluded.user_name, agent=excluded.agent,"
                     " created_ms=excluded.created_ms",
                     [&](sql::statement& s) {
                       s.bind(1, key.fingerprint).bind(2, key.key_hash).bind(3, key.masked);
                       s.bind(4, key.name).bind(5, departments).bind(6, key.user).bind(7, key.agent);
                       s.bind(8, key.created_ms);
                     });
    });
  } catch (...) {
    return failure(out_of_memory);
  }
}

task_result remove_key(sqlite3* db, const std::string& fingerprint) noexcept {
  try {
    return single("delete key " + fingerprint, [&] {
      return execute(db, "DELETE FROM virtual_keys WHERE fingerprint=?1",
                     [&](sql::statement& s) { s.bind(1, fingerprint); });
    });
  } catch (...) {
    return failure(out_of_memory);
  }
}

task_result insert_audit(sqlite3* db, const audit_row& row) noexcept {
  try {
    return single("append audit row", [&] {
      return execute(db,
                     "INSERT INTO throttle_audit (time_ms, provider, from_state, to_state,"
                     " spent_micro_usd, budget_micro_usd, projected_micro_usd, reason)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                     [&](sql::statement& s) {
                       s.bind(1, row.time_ms).bind(2, row.provider).bind(3, row.from_state);
                       s.bind(4, row.to_state).bind(5, row.spent_micro_usd).bind(6, row.budget_micro_usd);
                       s.bind(7, row.projected_micro_usd).bind(8, row.reason);
                     });
    });
  } catch (...) {
    return failure(out_of_memory);
  }
}

audit_result select_audit(sqlite3* db, std::int64_t limit) noexcept {
  audit_result result;
  try {
    sql::statement stmt(db,
                        "SELECT time_ms, provider, from_state, to_state, spent_micro_usd,"
                        " budget_micro_usd, projected_micro_usd, reason FROM throttle_audit"
                        " ORDER BY time_ms DESC, id DESC LIMIT ?1");
    if (!stmt) {
      result.error = sql::error(db, "audit query: cannot prepare");
      return result;
    }
    stmt.bind(1, std::max<std::int64_t>(limit, 0));
    int rc = SQLITE_ROW;
    while ((rc = stmt.step()) == SQLITE_ROW) {
      audit_row& row = result.rows.emplace_back();
      row.time_ms = stmt.int64(0);
      row.provider = stmt.text(1);
      row.from_state = stmt.text(2);
      row.to_state = stmt.text(3);
      row.spent_micro_usd = stmt.int64(4);
      row.budget_micro_usd = stmt.int64(5);
      row.projected_micro_usd = stmt.int64(6);
      row.reason = stmt.text(7);
    }
    if (rc != SQLITE_DONE) {
      result.rows.clear();
      result.error = sql::error(db, "audit query");
      return result;
    }
    result.ok = true;
  } catch (...) {
    result = {};
    result.error = "audit query: out of memory";
  }
  return result;
}

}  // namespace tollgate::storage
