#include "storage/ledger.hpp"

#include "core/this_thread.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <new>
#include <span>
#include <string_view>
#include <utility>

namespace tollgate::storage {

namespace {

constexpr std::string_view insert_columns =
    "time_ms, request_id, key_fingerprint, departments, user_name, agent, provider, model,"
    " route_reason, http_status, prompt_tokens, completion_tokens, cached_tokens, cost_micro_usd,"
    " ttfb_ms, duration_ms, streamed, stream_completed, usage_estimated";
constexpr int record_columns = static_cast<int>(std::ranges::count(insert_columns, ',')) + 1;

// Built at compile time so opening the database allocates nothing for it.
template <std::size_t Rows>
constexpr auto insert_sql() {
  constexpr std::string_view head = "INSERT INTO requests (";
  constexpr std::string_view values = ") VALUES ";
  // Each row is "(?,...,?)" plus a separator; the last row's separator slot holds the NUL.
  std::array<char, head.size() + insert_columns.size() + values.size() +
                       Rows * (2 * record_columns + 2)> sql{};
  std::size_t at = 0;
  for (const std::string_view part : {head, insert_columns, values})
    for (const char c : part) sql[at++] = c;
  for (std::size_t row = 0; row < Rows; ++row) {
    if (row != 0) sql[at++] = ',';
    sql[at++] = '(';
    for (int column = 0; column < record_columns; ++column) {
      if (column != 0) sql[at++] = ',';
      sql[at++] = '?';
    }
    sql[at++] = ')';
  }
  return sql;
}

// SQLite builds before 3.32 allow at most 999 parameters in a statement.
static_assert(detail::rows_per_insert * record_columns <= 999);
constexpr auto insert_one_sql = insert_sql<1>();
constexpr auto insert_chunk_sql = insert_sql<detail::rows_per_insert>();

constexpr auto reopen_backoff = std::chrono::seconds(1);

int bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
  // SQLite stores a null pointer as NULL; an empty field is '' like any other text.
  const char* data = text.data() != nullptr ? text.data() : "";
  // SQLITE_STATIC: the record outlives the step that reads it, so no copy is needed.
  return sqlite3_bind_text(stmt, index, data, static_cast<int>(text.size()), SQLITE_STATIC);
}

// Binds the record's record_columns values from parameter `first` + 1 on, in insert_columns
// order.
int bind_record(sqlite3_stmt* stmt, int first, const core::ledger_record_view& r) {
  int rc = SQLITE_OK;
  int i = first;
  auto i64 = [&](std::int64_t v) { if (rc == SQLITE_OK) rc = sqlite3_bind_int64(stmt, ++i, v); };
  auto text = [&](std::string_view v) { if (rc == SQLITE_OK) rc = bind_text(stmt, ++i, v); };
  i64(r.time_ms);
  text(r.request_id);
  text(r.key_fingerprint);
  text(r.departments);
  text(r.user);
  text(r.agent);
  text(r.provider);
  text(r.model);
  text(r.route_reason);
  i64(r.http_status);
  i64(r.prompt_tokens);
  i64(r.completion_tokens);
  i64(r.cached_tokens);
  i64(r.cost_micro_usd);
  i64(r.ttfb_ms);
  i64(r.duration_ms);
  i64(r.streamed ? 1 : 0);
  i64(r.stream_completed ? 1 : 0);
  i64(r.usage_estimated ? 1 : 0);
  return rc;
}

}  // namespace

namespace detail {

class ledger_task {
 public:
  virtual ~ledger_task() = default;
  // `db` is the writer's connection, or nullptr when there is none, `error` then saying why.
  // Returns false when the callback threw.
  virtual bool run(sqlite3* db, std::string_view error) noexcept = 0;
};

}  // namespace detail

namespace {

template <typename Result>
Result error_result(std::string_view error) noexcept {
  Result result;
  try {
    result.error = error;
  } catch (...) {
    // Out of memory for the message: ok == false alone still tells the caller it failed.
  }
  return result;
}

// Runs `work` (one of the noexcept SQL functions) on the writer's connection and hands the
// result to `done`. The callback is caller code on our thread, so a throw is caught here.
template <typename Result, typename Work>
class task_impl final : public detail::ledger_task {
 public:
  task_impl(std::function<void(Result)>&& done, Work&& work) noexcept
      : done_(std::move(done)), work_(std::move(work)) {}

  bool run(sqlite3* db, std::string_view error) noexcept override {
    Result result = db != nullptr ? work_(db) : error_result<Result>(error);
    if (!done_) return true;
    try {
      done_(std::move(result));
      return true;
    } catch (...) {
      return false;
    }
  }

 private:
  std::function<void(Result)> done_;
  Work work_;
};

constexpr std::string_view stopped_error = "ledger stopped";
constexpr std::string_view no_memory_error = "ledger: out of memory while queueing";

}  // namespace

void ledger::stmt_deleter::operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }

ledger::ledger(std::string path, ledger_options options)
    : path_(std::move(path)), options_(std::move(options)) {
  const unsigned count = std::max(1u, options_.producers);
  producers_.reserve(count);
  for (unsigned i = 0; i < count; ++i)
    producers_.push_back(std::make_unique<producer_slot>(options_.ring_capacity));
  ensure_open();
  writer_ = std::thread([this] {
    core::name_this_thread("tg-ledger");
    core::make_this_thread_batch();
    run();
  });
}

ledger::~ledger() { stop(); }

bool ledger::submit(unsigned producer, const core::ledger_record_view& record) noexcept {
  if (producer >= producers_.size()) {
    // A wiring bug, not load: still counted so it cannot go unnoticed.
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  producer_slot& slot = *producers_[producer];
  if (stopped_.load(std::memory_order_relaxed)) {
    slot.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const std::size_t depth = slot.ring.try_write([&record](detail::packed_record& r) { r.assign(record); });
  if (depth == 0) {
    slot.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // Half full: wake the writer early so a burst does not overflow the ring while it sleeps.
  // The exchange makes only one producer per flush pay for the notify; a lost wakeup just
  // waits for the timer.
  if (depth >= slot.ring.capacity() / 2 && !wake_pending_.load(std::memory_order_relaxed) &&
      !wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    wake_.notify_one();
  }
  return true;
}

void ledger::stop() noexcept {
  {
    std::lock_guard lock(wake_mutex_);
    if (stop_requested_) return;
    stop_requested_ = true;
  }
  wake_.notify_one();
  if (writer_.joinable()) writer_.join();
  stopped_.store(true, std::memory_order_relaxed);
  // The writer's last pass ran every task queued before stop_requested_ and none can be
  // queued since; this only matters if the writer never started.
  for (auto& task : tasks_) {
    tasks_queued_.fetch_sub(1, std::memory_order_relaxed);
    if (!task->run(nullptr, stopped_error)) callback_errors_.fetch_add(1, std::memory_order_relaxed);
  }
  tasks_.clear();
  // The writer is gone, so this thread is now the only consumer: anything that slipped into
  // a ring after the final drain is counted, never silently lost.
  std::uint64_t late = 0;
  for (auto& slot : producers_) late += slot->ring.drain([](detail::packed_record&&) {});
  if (late != 0) dropped_.fetch_add(late, std::memory_order_relaxed);
  insert_.reset();
  insert_chunk_.reset();
  db_.reset();
}

template <typename Result, typename Work>
void ledger::post(std::function<void(Result)> done, Work work) noexcept {
  // nothrow new, not make_unique: when the allocation fails `done` has not been moved from
  // yet, so it can still be told.
  std::unique_ptr<detail::ledger_task> task(
      new (std::nothrow) task_impl<Result, Work>(std::move(done), std::move(work)));
  if (!task) {
    if (done) {
      try {
        done(error_result<Result>(no_memory_error));
      } catch (...) {
        callback_errors_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    return;
  }
  enqueue(std::move(task));
}

void ledger::enqueue(std::unique_ptr<detail::ledger_task> task) noexcept {
  bool stopping = false;
  {
    std::lock_guard lock(wake_mutex_);
    stopping = stop_requested_;
    if (!stopping) {
      try {
        tasks_.push_back(std::move(task));  // strong guarantee: on a throw we still own it
        tasks_queued_.fetch_add(1, std::memory_order_relaxed);
      } catch (...) {
      }
    }
  }
  if (!task) {
    wake_.notify_one();
    return;
  }
  // Outside the lock: the callback may well queue another task.
  if (!task->run(nullptr, stopping ? stopped_error : no_memory_error))
    callback_errors_.fetch_add(1, std::memory_order_relaxed);
}

void ledger::save_budget(stored_budget budget, task_callback done) noexcept {
  post(std::move(done), [budget = std::move(budget)](sqlite3* db) { return write_budget(db, budget); });
}

void ledger::delete_budget(std::string provider, task_callback done) noexcept {
  post(std::move(done), [provider = std::move(provider)](sqlite3* db) { return remove_budget(db, provider); });
}

void ledger::save_quota(stored_quota quota, task_callback done) noexcept {
  post(std::move(done), [quota = std::move(quota)](sqlite3* db) { return write_quota(db, quota); });
}

void ledger::delete_quota(std::string scope, std::string name, task_callback done) noexcept {
  post(std::move(done), [scope = std::move(scope), name = std::move(name)](sqlite3* db) {
    return remove_quota(db, scope, name);
  });
}

void ledger::save_key(stored_key key, task_callback done) noexcept {
  post(std::move(done), [key = std::move(key)](sqlite3* db) { return write_key(db, key); });
}

void ledger::delete_key(std::string fingerprint, task_callback done) noexcept {
  post(std::move(done), [fingerprint = std::move(fingerprint)](sqlite3* db) {
    return remove_key(db, fingerprint);
  });
}

void ledger::append_audit(audit_row row, task_callback done) noexcept {
  post(std::move(done), [row = std::move(row)](sqlite3* db) { return insert_audit(db, row); });
}

void ledger::query_stats(stats_query query, std::function<void(stats_result)> done) noexcept {
  post(std::move(done), [query](sqlite3* db) { return select_stats(db, query); });
}

void ledger::query_rows(std::int64_t limit, std::int64_t offset,
                        std::function<void(rows_result)> done) noexcept {
  post(std::move(done), [limit, offset](sqlite3* db) { return select_rows(db, limit, offset); });
}

void ledger::query_audit(std::int64_t limit, std::function<void(audit_result)> done) noexcept {
  post(std::move(done), [limit](sqlite3* db) { return select_audit(db, limit); });
}

void ledger::query_spend(time_range day, time_range month, std::function<void(spend_result)> done) noexcept {
  post(std::move(done), [day, month](sqlite3* db) { return rebuild_spend(db, day, month); });
}

void ledger::run_tasks() noexcept {
  if (running_.empty()) return;
  sqlite3* db = insert_ ? db_.get() : nullptr;
  std::string why;
  if (db == nullptr) {
    try {
      why = "ledger database unavailable: " + last_error();
    } catch (...) {
      // ok == false without a message is still an answer; a hang would not be.
    }
  }
  for (auto& task : running_) {
    // Before the callback, so a caller that saw its result never sees its task still queued.
    tasks_queued_.fetch_sub(1, std::memory_order_relaxed);
    if (!task->run(db, why)) callback_errors_.fetch_add(1, std::memory_order_relaxed);
    task.reset();  // release what the task captured before running the next one
  }
  running_.clear();
}

ledger_stats ledger::stats() const noexcept {
  ledger_stats s;
  s.queued = pending_size_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  for (const auto& slot : producers_) {
    s.queued += slot->ring.size();
    s.dropped += slot->dropped.load(std::memory_order_relaxed);
  }
  s.written = written_.load(std::memory_order_relaxed);
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  s.commits = commits_.load(std::memory_order_relaxed);
  s.last_error_code = last_error_code_.load(std::memory_order_relaxed);
  s.healthy = healthy_.load(std::memory_order_relaxed);
  s.tasks_queued = tasks_queued_.load(std::memory_order_relaxed);
  s.callback_errors = callback_errors_.load(std::memory_order_relaxed);
  return s;
}

std::string ledger::last_error() const {
  std::lock_guard lock(error_mutex_);
  return last_error_;
}

void ledger::record_failure(int code, std::string message) noexcept {
  write_errors_.fetch_add(1, std::memory_order_relaxed);
  last_error_code_.store(code, std::memory_order_relaxed);
  healthy_.store(false, std::memory_order_relaxed);
  std::lock_guard lock(error_mutex_);
  last_error_ = std::move(message);
}

bool ledger::ensure_open() noexcept {
  if (insert_) return true;
  const auto now = std::chrono::steady_clock::now();
  if (last_open_attempt_ != std::chrono::steady_clock::time_point{} &&
      now - last_open_attempt_ < reopen_backoff)
    return false;
  last_open_attempt_ = now;
  open_result opened = open_database(path_, options_.open);
  if (!opened) {
    record_failure(opened.code, std::move(opened.error));
    return false;
  }
  auto prepare = [&](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(opened.db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
        SQLITE_OK) {
      record_failure(sqlite3_extended_errcode(opened.db.get()),
                     "ledger database " + path_ + ": cannot prepare insert: " +
                         sqlite3_errmsg(opened.db.get()));
    }
    return std::unique_ptr<sqlite3_stmt, stmt_deleter>(stmt);
  };
  // Declared after `opened`, so a failure finalizes them before the connection closes.
  auto insert_one = prepare(insert_one_sql.data());
  if (!insert_one) return false;
  auto insert_chunk = prepare(insert_chunk_sql.data());
  if (!insert_chunk) return false;
  // Counted by SQLite itself rather than by our loop, so the stat (and the group-commit test)
  // sees every transaction the connection really commits.
  sqlite3_commit_hook(
      opened.db.get(),
      [](void* commits) {
        static_cast<std::atomic<std::uint64_t>*>(commits)->fetch_add(1, std::memory_order_relaxed);
        return 0;  // 0 lets the commit proceed
      },
      &commits_);
  db_ = std::move(opened.db);
  insert_ = std::move(insert_one);
  insert_chunk_ = std::move(insert_chunk);
  healthy_.store(true, std::memory_order_relaxed);
  return true;
}

void ledger::drop_pending(std::size_t count) noexcept {
  count = std::min(count, pending_.size());
  if (count == 0) return;
  // Oldest first: they have already had the most retries.
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(count));
  dropped_.fetch_add(count, std::memory_order_relaxed);
  pending_size_.store(pending_.size(), std::memory_order_relaxed);
}

bool ledger::commit_pending() noexcept {
  if (pending_.empty()) return true;
  if (!ensure_open()) return false;
  sqlite3* db = db_.get();
  sqlite3_stmt* const one = insert_.get();
  sqlite3_stmt* const chunk = insert_chunk_.get();
  auto failed = [&](const char* what) {
    record_failure(sqlite3_extended_errcode(db),
                   "ledger database " + path_ + ": " + what + ": " + sqlite3_errmsg(db));
    sqlite3_reset(one);
    sqlite3_reset(chunk);
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return false;
  };
  // nullptr on success, else what failed.
  auto insert = [](sqlite3_stmt* stmt, std::span<const detail::packed_record> records) -> const char* {
    int first = 0;
    for (const auto& record : records) {
      if (bind_record(stmt, first, record.view()) != SQLITE_OK) return "cannot bind record";
      first += record_columns;
    }
    if (sqlite3_step(stmt) != SQLITE_DONE) return "cannot insert record";
    sqlite3_reset(stmt);
    return nullptr;
  };
  // IMMEDIATE takes the write lock up front, so a busy database fails here (after
  // busy_timeout) rather than half-way through the batch.
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
    return failed("cannot begin batch");
  // Full chunks through the multi-row statement, whose per-step cost (VDBE setup, opening
  // and closing cursors) is paid once per rows_per_insert rows; the rest one row at a time.
  const std::span<const detail::packed_record> records(pending_);
  const std::size_t chunked = records.size() - records.size() % detail::rows_per_insert;
  for (std::size_t i = 0; i < chunked; i += detail::rows_per_insert)
    if (const char* what = insert(chunk, records.subspan(i, detail::rows_per_insert))) return failed(what);
  for (std::size_t i = chunked; i < records.size(); ++i)
    if (const char* what = insert(one, records.subspan(i, 1))) return failed(what);
  // The binds point into pending_, which is cleared below.
  sqlite3_clear_bindings(one);
  sqlite3_clear_bindings(chunk);
  if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return failed("cannot commit batch");
  written_.fetch_add(pending_.size(), std::memory_order_relaxed);
  healthy_.store(true, std::memory_order_relaxed);
  pending_.clear();
  pending_size_.store(0, std::memory_order_relaxed);
  return true;
}

void ledger::flush() noexcept {
  // Retry a failed open even when idle, so /readyz recovers before the next request arrives.
  if (!insert_) ensure_open();
  for (auto& slot : producers_) {
    // Reserve first so the drain below cannot throw half-way: a ring entry is either still
    // in the ring or in pending_, never lost or duplicated.
    try {
      pending_.reserve(pending_.size() + slot->ring.capacity());
    } catch (...) {
      record_failure(SQLITE_NOMEM, "ledger: out of memory while draining");
      continue;  // stays in the ring; the producer drops and counts once it fills
    }
    slot->ring.drain([this](detail::packed_record&& r) { pending_.push_back(std::move(r)); });
    pending_size_.store(pending_.size(), std::memory_order_relaxed);
  }
  if (!commit_pending() && pending_.size() > options_.max_backlog)
    drop_pending(pending_.size() - options_.max_backlog);
}

void ledger::run() noexcept {
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock lock(wake_mutex_);
      wake_.wait_for(lock, options_.flush_interval, [this] {
        return stop_requested_ || !tasks_.empty() || wake_pending_.load(std::memory_order_relaxed);
      });
      stopping = stop_requested_;
      // Taken before the rings are drained below, so every record submitted before a query
      // was queued is committed before the query runs. Taken in the same critical section
      // that saw stop_requested_, so the stopping pass runs every task queued before stop().
      running_.swap(tasks_);
    }
    wake_pending_.store(false, std::memory_order_relaxed);
    // The SIGTERM path: the open backoff no longer applies, since one more attempt is cheap
    // and gives both the last records and the last tasks their chance.
    if (stopping) last_open_attempt_ = {};
    flush();
    run_tasks();
    if (stopping) break;
  }
  // Records that raced the stopping pass's drain get one more commit; whatever still cannot
  // be written is counted as dropped rather than vanishing.
  flush();
  if (!pending_.empty()) drop_pending(pending_.size());
}

}  // namespace tollgate::storage
