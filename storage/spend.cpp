#include "storage/spend.hpp"

#include "storage/schema.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <memory>
#include <string_view>
#include <vector>

namespace tollgate::storage {

namespace {

// Aggregated in SQL down to one row per distinct caller combination, so a month of millions
// of rows becomes thousands before C++ splits department lists.
constexpr const char* spend_sql =
    "SELECT provider, key_fingerprint, departments, user_name,"
    " SUM(CASE WHEN time_ms >= ?1 AND time_ms < ?2 THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN time_ms >= ?1 AND time_ms < ?2 THEN prompt_tokens + completion_tokens ELSE 0 END),"
    " SUM(CASE WHEN time_ms >= ?1 AND time_ms < ?2 THEN cost_micro_usd ELSE 0 END),"
    " SUM(CASE WHEN time_ms >= ?3 AND time_ms < ?4 THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN time_ms >= ?3 AND time_ms < ?4 THEN prompt_tokens + completion_tokens ELSE 0 END),"
    " SUM(CASE WHEN time_ms >= ?3 AND time_ms < ?4 THEN cost_micro_usd ELSE 0 END)"
    " FROM requests WHERE id >= ?7 AND time_ms >= ?5 AND time_ms < ?6"
    " GROUP BY provider, key_fingerprint, departments, user_name";

std::string_view column_text(sqlite3_stmt* stmt, int i) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
  return text == nullptr ? std::string_view{}
                         : std::string_view(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void add(spend_totals& to, const spend_totals& from) {
  to.requests += from.requests;
  to.tokens += from.tokens;
  to.micro_usd += from.micro_usd;
}

void add_named(std::map<std::string, spend_totals, std::less<>>& map, std::string_view name,
               const spend_totals& t) {
  if (name.empty()) return;
  auto it = map.find(name);
  if (it == map.end()) it = map.emplace(std::string(name), spend_totals{}).first;
  add(it->second, t);
}

void accumulate(spend_breakdown& b, std::string_view provider, std::string_view key,
                std::string_view departments, std::string_view user, const spend_totals& t) {
  if (t.requests == 0) return;
  add(b.total, t);
  add_named(b.by_provider, provider, t);
  add_named(b.by_key, key, t);
  add_named(b.by_user, user, t);
  // A list naming a department twice bills it once.
  std::vector<std::string_view> seen;
  while (!departments.empty()) {
    const auto comma = departments.find(',');
    const auto name = trim(departments.substr(0, comma));
    if (!name.empty() && std::find(seen.begin(), seen.end(), name) == seen.end()) {
      seen.push_back(name);
      add_named(b.by_department, name, t);
    }
    if (comma == std::string_view::npos) break;
    departments.remove_prefix(comma + 1);
  }
}

}  // namespace

spend_result rebuild_spend(sqlite3* db, time_range day, time_range month) noexcept {
  spend_result result;
  try {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, spend_sql, -1, &stmt, nullptr) != SQLITE_OK) {
      result.error = std::string("spend query: ") + sqlite3_errmsg(db);
      return result;
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(stmt, sqlite3_finalize);
    sqlite3_bind_int64(stmt, 1, day.start_ms);
    sqlite3_bind_int64(stmt, 2, day.end_ms);
    sqlite3_bind_int64(stmt, 3, month.start_ms);
    sqlite3_bind_int64(stmt, 4, month.end_ms);
    sqlite3_bind_int64(stmt, 5, std::min(day.start_ms, month.start_ms));
    sqlite3_bind_int64(stmt, 6, std::max(day.end_ms, month.end_ms));
    sqlite3_bind_int64(stmt, 7, requests_id_floor(std::min(day.start_ms, month.start_ms)));
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const auto provider = column_text(stmt, 0);
      const auto key = column_text(stmt, 1);
      const auto departments = column_text(stmt, 2);
      const auto user = column_text(stmt, 3);
      const spend_totals d{sqlite3_column_int64(stmt, 4), sqlite3_column_int64(stmt, 5),
                           sqlite3_column_int64(stmt, 6)};
      const spend_totals m{sqlite3_column_int64(stmt, 7), sqlite3_column_int64(stmt, 8),
                           sqlite3_column_int64(stmt, 9)};
      accumulate(result.snapshot.day, provider, key, departments, user, d);
      accumulate(result.snapshot.month, provider, key, departments, user, m);
    }
    if (rc != SQLITE_DONE) {
      result.error = std::string("spend query: ") + sqlite3_errmsg(db);
      result.snapshot = {};
      return result;
    }
    result.ok = true;
  } catch (...) {
    result = {};
    result.error = "spend query: out of memory";
  }
  return result;
}

spend_result rebuild_spend(const std::string& path, time_range day, time_range month) noexcept {
  open_result opened = open_database(path, open_options{.read_only = true});
  if (!opened) {
    spend_result result;
    result.error = std::move(opened.error);
    return result;
  }
  return rebuild_spend(opened.db.get(), day, month);
}

}  // namespace tollgate::storage
