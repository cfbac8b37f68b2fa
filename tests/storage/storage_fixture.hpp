#pragma once

#include "core/ledger_record.hpp"
#include "storage/schema.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <thread>

namespace tollgate::storage::testing {

// A fresh directory per test so files, WAL and -shm never leak between cases.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tollgate-storage-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::system_error(errno, std::generic_category());
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline core::ledger_record make_record(std::int64_t n) {
  core::ledger_record r;
  r.time_ms = 1'700'000'000'000 + n;
  r.request_id = "req-" + std::to_string(n);
  r.key_fingerprint = "fp-" + std::to_string(n % 3);
  r.departments = "search,ads";
  r.user = "alice";
  r.agent = "bot";
  r.provider = "openai";
  r.model = "gpt-4o-mini";
  r.route_reason = "primary";
  r.http_status = 200;
  r.prompt_tokens = 10;
  r.completion_tokens = 5;
  r.cost_micro_usd = 3;
  return r;
}

// Opens `path` as tollgate does (created, migrated up to `version`) and runs `sql` on it: how a
// test puts a file into the state it needs before the code under test opens it.
inline void prepare_file(const std::string& path, const char* sql, int version = schema_version) {
  auto opened = open_database(path, open_options{.target_version = version});
  REQUIRE_MESSAGE(opened, opened.error);
  char* error = nullptr;
  const int rc = sqlite3_exec(opened.db.get(), sql, nullptr, nullptr, &error);
  const std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  REQUIRE_MESSAGE(rc == SQLITE_OK, message);
}

// Reads the test's own connection, separate from the writer's, as the admin API will.
inline std::int64_t scalar(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  std::int64_t value = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
    value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

// A ledger callback the test can wait on, with a bound: a task that never completes fails the
// test after `limit` instead of hanging the suite. Also records the thread it ran on.
template <typename Result>
class awaited {
 public:
  std::function<void(Result)> callback() {
    return [state = state_](Result result) {
      state->thread = std::this_thread::get_id();
      state->promise.set_value(std::move(result));
    };
  }

  bool ready(std::chrono::milliseconds limit = std::chrono::milliseconds(10'000)) const {
    return future_.wait_for(limit) == std::future_status::ready;
  }

  Result get(std::chrono::milliseconds limit = std::chrono::milliseconds(10'000)) {
    REQUIRE_MESSAGE(ready(limit), "ledger callback not invoked in time");
    return future_.get();
  }

  // Valid once ready().
  std::thread::id thread() const { return state_->thread; }

 private:
  struct state {
    std::promise<Result> promise;
    std::thread::id thread;
  };
  std::shared_ptr<state> state_ = std::make_shared<state>();
  std::future<Result> future_ = state_->promise.get_future();
};

// Polls `predicate` until it holds or `limit` passes; true if it held.
template <typename Predicate>
bool wait_until(Predicate predicate, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return predicate();
}

}  // namespace tollgate::storage::testing
