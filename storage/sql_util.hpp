#pragma once

// Internal to storage/: included by .cpp files only, so sqlite3.h never reaches another layer.

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace tollgate::storage::sql {

// One prepared statement for one call. The admin writes and /stats queries are rare, so
// preparing per call costs nothing that matters; the hot insert keeps its persistent one.
class statement {
 public:
  statement(sqlite3* db, const char* text) noexcept {
    if (sqlite3_prepare_v2(db, text, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  explicit operator bool() const noexcept { return stmt_ != nullptr; }
  sqlite3_stmt* get() const noexcept { return stmt_; }

  // Binders chain through the first failure, so a caller checks once after binding.
  statement& bind(int index, std::int64_t value) noexcept {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  // SQLITE_STATIC: every caller keeps the string alive until the statement has run.
  statement& bind(int index, std::string_view text) noexcept {
    if (rc_ == SQLITE_OK)
      rc_ = sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    return *this;
  }
  statement& bind_null(int index) noexcept {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_null(stmt_, index);
    return *this;
  }
  bool bound() const noexcept { return rc_ == SQLITE_OK; }

  int step() noexcept { return sqlite3_step(stmt_); }

  std::int64_t int64(int column) const noexcept { return sqlite3_column_int64(stmt_, column); }
  bool is_null(int column) const noexcept { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string_view text(int column) const noexcept {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return p == nullptr ? std::string_view{}
                        : std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

// "<what>: <sqlite message>", the shape every storage error takes.
inline std::string error(sqlite3* db, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += sqlite3_errmsg(db);
  return message;
}

}  // namespace tollgate::storage::sql
