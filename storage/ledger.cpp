#include "storage/ledger.hpp"

#include "core/this_thread.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <optional>
#include <limits>
#include <new>
#include <span>
#include <string_view>
#include <utility>

namespace tollgate::storage {

namespace {

constexpr auto reopen_backoff = std::chrono::seconds(1);
// Rows inserted between two yields: about a quarter of a millisecond of writing.
constexpr std::size_t rows_per_slice = 256;
// Batches the guard may stage for the writer before it keeps gathering into one: a backlog of
// seconds at the guard's pace.
constexpr std::size_t staged_batches = 64;
constexpr std::size_t retained_pending = 8192;
constexpr auto trim_interval = std::chrono::seconds(1);

// The records of a batch reach SQLite as the rows of a virtual table that reads them in place,
// so one INSERT ... SELECT writes the whole batch. Binding parameters instead cost more than a
// tenth of the writer's time per row (each bind checks and resets its slot), and a statement
// can only take a few dozen rows' worth of them.
//
// The table exists only on the writer's connection (an eponymous module: nothing is stored
// in the database) and only statements may name it, never a trigger or view in the file.
constexpr const char* pending_table = "tollgate_pending_requests";
constexpr const char* pending_schema =
    "CREATE TABLE x(id, time_ms, request_id, key_fingerprint, departments, user_name, agent, provider,"
    " model, route_reason, http_status, prompt_tokens, completion_tokens, cached_tokens,"
    " cost_micro_usd, ttfb_ms, duration_ms, streamed, stream_completed, usage_estimated)";
constexpr const char* insert_pending_sql =
    "INSERT INTO requests (id, time_ms, request_id, key_fingerprint, departments, user_name, agent,"
    " provider, model, route_reason, http_status, prompt_tokens, completion_tokens, cached_tokens,"
    " cost_micro_usd, ttfb_ms, duration_ms, streamed, stream_completed, usage_estimated)"
    " SELECT * FROM tollgate_pending_requests";

struct pending_cursor : sqlite3_vtab_cursor {
  std::span<const detail::packed_record> rows;
  std::size_t at = 0;
  core::ledger_record_view row;  // rows[at], unpacked once for all its columns

  void unpack() noexcept {
    if (at < rows.size()) row = rows[at].view();
  }
};

// Column `column` of pending_schema, for the row at `index` in its batch. Only the batch's
// first row names its id; the rest get the next ids in turn (see ledger::begin_batch).
void result_column(sqlite3_context* out, const core::ledger_record_view& r, std::size_t index,
                   const detail::pending_batch& batch, int column) noexcept {
  auto text = [out](std::string_view v) {
    // SQLITE_STATIC: the record outlives the statement step that reads it.
    sqlite3_result_text(out, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()), SQLITE_STATIC);
  };
  auto integer = [out](std::int64_t v) { sqlite3_result_int64(out, v); };
  switch (column) {
    case 0:
      if (index == 0) integer(batch.first_id);
      else sqlite3_result_null(out);
      break;
    case 1: integer(r.time_ms); break;
    case 2: text(r.request_id); break;
    case 3: text(r.key_fingerprint); break;
    case 4: text(r.departments); break;
    case 5: text(r.user); break;
    case 6: text(r.agent); break;
    case 7: text(r.provider); break;
    case 8: text(r.model); break;
    case 9: text(r.route_reason); break;
    case 10: integer(r.http_status); break;
    case 11: integer(r.prompt_tokens); break;
    case 12: integer(r.completion_tokens); break;
    case 13: integer(r.cached_tokens); break;
    case 14: integer(r.cost_micro_usd); break;
    case 15: integer(r.ttfb_ms); break;
    case 16: integer(r.duration_ms); break;
    case 17: integer(r.streamed ? 1 : 0); break;
    case 18: integer(r.stream_completed ? 1 : 0); break;
    case 19: integer(r.usage_estimated ? 1 : 0); break;
    default: sqlite3_result_null(out); break;
  }
}

struct pending_vtab : sqlite3_vtab {
  const detail::pending_batch* batch = nullptr;
};

const sqlite3_module pending_module = [] {
  sqlite3_module m{};
  m.iVersion = 0;
  m.xCreate = nullptr;  // eponymous only: CREATE VIRTUAL TABLE cannot make one
  m.xConnect = [](sqlite3* db, void* aux, int, const char* const*, sqlite3_vtab** out, char**) -> int {
    if (const int rc = sqlite3_declare_vtab(db, pending_schema); rc != SQLITE_OK) return rc;
    sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    auto* table = new (std::nothrow) pending_vtab();
    if (table == nullptr) return SQLITE_NOMEM;
    table->batch = static_cast<const detail::pending_batch*>(aux);
    *out = table;
    return SQLITE_OK;
  };
  m.xBestIndex = [](sqlite3_vtab*, sqlite3_index_info* info) -> int {
    info->estimatedCost = 1e6;  // a full scan, the only plan there is
    return SQLITE_OK;
  };
  m.xDisconnect = [](sqlite3_vtab* table) -> int {
    delete static_cast<pending_vtab*>(table);
    return SQLITE_OK;
  };
  m.xDestroy = m.xDisconnect;
  m.xOpen = [](sqlite3_vtab*, sqlite3_vtab_cursor** out) -> int {
    auto* cursor = new (std::nothrow) pending_cursor();
    if (cursor == nullptr) return SQLITE_NOMEM;
    *out = cursor;
    return SQLITE_OK;
  };
  m.xClose = [](sqlite3_vtab_cursor* cursor) -> int {
    delete static_cast<pending_cursor*>(cursor);
    return SQLITE_OK;
  };
  m.xFilter = [](sqlite3_vtab_cursor* base, int, const char*, int, sqlite3_value**) -> int {
    auto* cursor = static_cast<pending_cursor*>(base);
    cursor->rows = static_cast<const pending_vtab*>(base->pVtab)->batch->rows;
    cursor->at = 0;
    cursor->unpack();
    return SQLITE_OK;
  };
  m.xNext = [](sqlite3_vtab_cursor* base) -> int {
    auto* cursor = static_cast<pending_cursor*>(base);
    ++cursor->at;
    cursor->unpack();
    return SQLITE_OK;
  };
  m.xEof = [](sqlite3_vtab_cursor* base) -> int {
    const auto* cursor = static_cast<const pending_cursor*>(base);
    return cursor->at >= cursor->rows.size() ? 1 : 0;
  };
  m.xColumn = [](sqlite3_vtab_cursor* base, sqlite3_context* out, int column) -> int {
    const auto* cursor = static_cast<const pending_cursor*>(base);
    result_column(out, cursor->row, cursor->at, *static_cast<const pending_vtab*>(base->pVtab)->batch, column);
    return SQLITE_OK;
  };
  m.xRowid = [](sqlite3_vtab_cursor* base, sqlite3_int64* rowid) -> int {
    *rowid = static_cast<sqlite3_int64>(static_cast<const pending_cursor*>(base)->at);
    return SQLITE_OK;
  };
  return m;
}();

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
    : path_(std::move(path)), options_(std::move(options)), staged_(staged_batches) {
  const unsigned count = std::max(1u, options_.producers);
  producers_.reserve(count);
  for (unsigned i = 0; i < count; ++i)
    producers_.push_back(std::make_unique<producer_slot>(options_.ring_capacity));
  ensure_open();
  writer_ = std::thread([this] {
    core::name_this_thread("tg-ledger");
    // Where idle priority is refused, batch keeps it from preempting a request-serving thread.
    if (!core::make_this_thread_idle_priority()) core::make_this_thread_batch();
    writer_tid_.store(static_cast<int>(::gettid()), std::memory_order_relaxed);
    writer_loop();
  });
  guard_ = std::thread([this] {
    core::name_this_thread("tg-ledger-guard");
    core::make_this_thread_batch();
    guard_loop();
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
  // Half full: wake the guard early so a burst does not overflow the ring before its next
  // round. The exchange makes only one producer per round pay for the notify; a lost wakeup
  // just waits for the timer.
  if (depth >= slot.ring.capacity() / 2 && !gather_pending_.load(std::memory_order_relaxed) &&
      !gather_pending_.exchange(true, std::memory_order_acq_rel)) {
    guard_wake_.notify_one();
  }
  return true;
}

void ledger::stop() noexcept {
  {
    std::lock_guard lock(wake_mutex_);
    if (stop_requested_) return;
    stop_requested_ = true;
  }
  wake_.notify_all();
  guard_wake_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (guard_.joinable()) guard_.join();
  {
    // Both threads have left at a step boundary, so this thread has every role now. It
    // finishes a pass either of them left half-way, then runs the stopping pass: every task
    // queued before stop_requested_ and every record submitted before it. The open backoff
    // no longer applies, since one more attempt is cheap and gives the last records and
    // tasks their chance.
    std::lock_guard role(role_mutex_);
    while (step(true)) {
    }
    last_open_attempt_ = {};
    while (step(true)) {
    }
    // Records that raced the stopping pass's gather get one more commit; whatever still
    // cannot be written is counted as dropped rather than vanishing.
    while (step(true)) {
    }
    drop_pending(live_pending().size());
  }
  stopped_.store(true, std::memory_order_relaxed);
  // The stopping pass ran every task queued before stop_requested_ and none can be queued
  // since; this only matters if it could not take them.
  for (auto& task : tasks_) {
    tasks_queued_.fetch_sub(1, std::memory_order_relaxed);
    if (!task->run(nullptr, stopped_error)) callback_errors_.fetch_add(1, std::memory_order_relaxed);
  }
  tasks_.clear();
  // No pass runs any more, so this thread is the only consumer: anything that slipped in
  // after the final gather is counted, never silently lost.
  std::uint64_t late = gathering_.size();
  gathering_.clear();
  staged_.drain([&late](std::vector<detail::packed_record>&& batch) { late += batch.size(); });
  for (auto& slot : producers_) late += slot->ring.drain([](detail::packed_record&&) {});
  if (late != 0) dropped_.fetch_add(late, std::memory_order_relaxed);
  gathered_size_.store(0, std::memory_order_relaxed);
  staged_size_.store(0, std::memory_order_relaxed);
  insert_.reset();
  last_id_.reset();
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
    wake_.notify_all();
    guard_wake_.notify_all();  // it writes while on duty
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
  s.queued = pending_size_.load(std::memory_order_relaxed) + gathered_size_.load(std::memory_order_relaxed) +
             staged_size_.load(std::memory_order_relaxed);
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
  s.writer_takeovers = takeovers_.load(std::memory_order_relaxed);
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
                     "ledger database " + path_ + ": cannot prepare statement: " +
                         sqlite3_errmsg(opened.db.get()));
    }
    return std::unique_ptr<sqlite3_stmt, stmt_deleter>(stmt);
  };
  if (const int rc = sqlite3_create_module(opened.db.get(), pending_table, &pending_module, &batch_); rc != SQLITE_OK) {
    record_failure(rc, "ledger database " + path_ + ": cannot register the batch table: " + sqlite3_errstr(rc));
    return false;
  }
  // Declared after `opened`, so a failure finalizes it before the connection closes.
  auto insert = prepare(insert_pending_sql);
  if (!insert) return false;
  auto last_id = prepare("SELECT max(id) FROM requests");
  if (!last_id) return false;
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
  insert_ = std::move(insert);
  last_id_ = std::move(last_id);
  healthy_.store(true, std::memory_order_relaxed);
  return true;
}

void ledger::drop_pending(std::size_t count) noexcept {
  const std::size_t live = live_pending().size();
  count = std::min(count, live);
  if (count == 0) return;
  // Oldest first: they have already had the most retries.
  pending_dropped_ += count;
  if (count == live) {
    pending_.clear();
    pending_dropped_ = 0;
  } else if (pending_dropped_ >= (live - count) / 4) {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(pending_dropped_));
    pending_dropped_ = 0;
  }
  dropped_.fetch_add(count, std::memory_order_relaxed);
  pending_size_.store(live - count, std::memory_order_relaxed);
}

bool ledger::failed_batch(const char* what) noexcept {
  sqlite3* db = db_.get();
  record_failure(sqlite3_extended_errcode(db), "ledger database " + path_ + ": " + what + ": " + sqlite3_errmsg(db));
  sqlite3_reset(insert_.get());
  sqlite3_reset(last_id_.get());
  batch_.rows = {};
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  return false;
}

// Opens the transaction for live_pending() and numbers its rows. False when there is nothing
// to write or the database cannot take it now.
bool ledger::begin_batch() noexcept {
  const std::span<const detail::packed_record> rows = live_pending();
  if (rows.empty() || !ensure_open()) return false;
  sqlite3* db = db_.get();
  // IMMEDIATE takes the write lock up front, so a busy database fails here (after
  // busy_timeout) rather than half-way through the batch.
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
    return failed_batch("cannot begin batch");
  // The first row's id is at or above the floor of every time in the batch and above every
  // id already written; the rows after it take the next ids, so each row's id is at or above
  // its own floor (schema.hpp) and ids keep growing in the order rows are written.
  std::int64_t first_id = 0;
  for (const auto& record : rows) first_id = std::max(first_id, requests_id_floor(record.time_ms()));
  sqlite3_stmt* const last_id = last_id_.get();
  if (sqlite3_step(last_id) != SQLITE_ROW) return failed_batch("cannot read the last id");
  if (sqlite3_column_type(last_id, 0) != SQLITE_NULL) {
    const std::int64_t last = sqlite3_column_int64(last_id, 0);
    // Only a row someone else wrote could sit this high; ours stay below 2^53.
    if (last > std::numeric_limits<std::int64_t>::max() - static_cast<std::int64_t>(rows.size()))
      return failed_batch("no ids left above the largest one in the table");
    first_id = std::max(first_id, last + 1);
  }
  sqlite3_reset(last_id);
  first_id_ = first_id;
  inserted_ = 0;
  return true;
}

// The next slice of the open batch, committing after the last. Slices keep a step short: a
// flush at full load is milliseconds of work, and both a worker sharing the core and a guard
// waiting to take over wait for the step in progress.
void ledger::insert_slice() noexcept {
  const std::span<const detail::packed_record> rows = live_pending();
  sqlite3_stmt* const insert = insert_.get();
  batch_.rows = rows.subspan(inserted_, std::min(rows_per_slice, rows.size() - inserted_));
  batch_.first_id = first_id_ + static_cast<std::int64_t>(inserted_);
  if (sqlite3_step(insert) != SQLITE_DONE) return end_batch(failed_batch("cannot insert records"));
  sqlite3_reset(insert);
  inserted_ += batch_.rows.size();
  batch_.rows = {};  // it points into pending_, which the commit clears
  if (inserted_ < rows.size()) return;
  if (sqlite3_exec(db_.get(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return end_batch(failed_batch("cannot commit batch"));
  end_batch(true);
}

void ledger::end_batch(bool committed) noexcept {
  phase_ = pass_phase::tasks;
  if (committed) {
    written_.fetch_add(live_pending().size(), std::memory_order_relaxed);
    healthy_.store(true, std::memory_order_relaxed);
    pending_.clear();
    pending_dropped_ = 0;
    pending_size_.store(0, std::memory_order_relaxed);
    if (pending_.capacity() > retained_pending) {
      std::vector<detail::packed_record>().swap(pending_);
      const auto now = std::chrono::steady_clock::now();
      if (now - last_trim_ >= trim_interval) {
        last_trim_ = now;
        ::malloc_trim(0);
      }
    }
  } else if (live_pending().size() > options_.max_backlog) {
    drop_pending(live_pending().size() - options_.max_backlog);
  }
}

void ledger::gather() noexcept {
  for (auto& slot : producers_) {
    // Room first, for what the ring holds now, so the drain below cannot throw half-way: a
    // record is either still in the ring or in gathering_, never lost or duplicated.
    const std::size_t count = slot->ring.size();
    if (count == 0) continue;
    try {
      gathering_.reserve(gathering_.size() + count);
    } catch (...) {
      record_failure(SQLITE_NOMEM, "ledger: out of memory while gathering");
      continue;  // stays in the ring; the producer drops and counts once it fills
    }
    slot->ring.drain([this](detail::packed_record&& r) { gathering_.push_back(std::move(r)); }, count);
  }
  // Bounded together with what is staged: a writer stuck for long costs max_backlog records
  // of memory, and beyond that new records are dropped and counted, as a full ring drops them.
  const std::size_t staged = staged_size_.load(std::memory_order_relaxed);
  const std::size_t room = options_.max_backlog > staged ? options_.max_backlog - staged : 0;
  if (gathering_.size() > room) {
    dropped_.fetch_add(gathering_.size() - room, std::memory_order_relaxed);
    gathering_.resize(room);
  }
  if (!gathering_.empty()) {
    const std::size_t count = gathering_.size();
    // A full staging ring (the writer far behind) leaves the batch here to grow.
    if (staged_.try_write([this](std::vector<detail::packed_record>& slot) { slot = std::move(gathering_); }) != 0) {
      gathering_ = {};
      staged_size_.fetch_add(count, std::memory_order_relaxed);
    }
  }
  gathered_size_.store(gathering_.size(), std::memory_order_relaxed);
  // Enough for an early commit, as a half-full ring once asked for.
  if (staged_size_.load(std::memory_order_relaxed) >= options_.ring_capacity / 2 &&
      !wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    wake_.notify_all();
  }
}

void ledger::request_gather() noexcept {
  std::unique_lock lock(wake_mutex_);
  const std::uint64_t ticket = ++gathers_requested_;
  guard_wake_.notify_one();
  // Not cut short by stop(): the guard answers once more before it leaves.
  gathered_.wait(lock, [this, ticket] { return gathers_done_ >= ticket; });
}

void ledger::take_staged() noexcept {
  staged_.drain([this](std::vector<detail::packed_record>&& batch) {
    staged_size_.fetch_sub(batch.size(), std::memory_order_relaxed);
    if (pending_.empty()) {
      pending_ = std::move(batch);  // the usual case: no backlog, nothing to copy
      pending_dropped_ = 0;
      return;
    }
    try {
      // With headroom: reserving only what this batch needs reallocated a growing backlog
      // at every pass.
      const std::size_t needed = pending_.size() + batch.size();
      if (needed > pending_.capacity()) pending_.reserve(needed + needed / 4);
      std::move(batch.begin(), batch.end(), std::back_inserter(pending_));
    } catch (...) {
      record_failure(SQLITE_NOMEM, "ledger: out of memory while taking a batch");
      dropped_.fetch_add(batch.size(), std::memory_order_relaxed);
    }
  });
  pending_size_.store(live_pending().size(), std::memory_order_relaxed);
}

void ledger::start_pass(bool gather_here) noexcept {
  {
    std::lock_guard lock(wake_mutex_);
    running_.swap(tasks_);
  }
  wake_pending_.store(false, std::memory_order_relaxed);
  // After the tasks are taken, so every record submitted before a query was queued is
  // committed before the query runs.
  if (gather_here) {
    gather();
  } else {
    request_gather();
  }
  take_staged();
  // Retry a failed open even when idle, so /readyz recovers before the next request arrives.
  if (!insert_) ensure_open();
  if (begin_batch()) {
    phase_ = pass_phase::inserting;
  } else if (live_pending().empty()) {
    phase_ = pass_phase::tasks;
  } else {
    end_batch(false);
  }
}

bool ledger::step(bool gather_here) noexcept {
  steps_.fetch_add(1, std::memory_order_relaxed);
  switch (phase_) {
    case pass_phase::start:
      start_pass(gather_here);
      return true;
    case pass_phase::inserting:
      insert_slice();
      return true;
    case pass_phase::tasks:
      run_tasks();
      phase_ = pass_phase::start;
      return false;
  }
  return false;
}

namespace {

// How often the guard looks at the rings and the writer on its own. Mostly it runs when
// asked: the writer asks it for the records at the start of each pass, a producer whose ring
// is half full asks it to gather at once. Each time it wakes it may land on a core a worker
// was about to use, which is what the writer's idle priority avoids, so it wakes rarely.
constexpr auto guard_period = std::chrono::milliseconds(100);
// How long an on-duty guard waits for the step a starved writer is in before it goes back to
// gathering.
constexpr auto takeover_wait = std::chrono::milliseconds(10);
// A takeover lasts long enough to catch up, and doubles while the writer starves again soon
// after each handback: on a machine saturated for good the guard ends up doing the writing,
// while a writer that merely fell behind in a burst is back at it within a tenth of a second.
constexpr auto first_duty = std::chrono::milliseconds(100);
constexpr auto retaken_within = std::chrono::seconds(1);
constexpr auto longest_duty = std::chrono::seconds(32);

// What the kernel says of thread `tid` of this process: its state letter ('R' running or
// waiting for a CPU, 'S' asleep, 'D' in the disk...) and its CPU time so far in nanoseconds
// (/proc/self/task/<tid>/stat and .../schedstat). nullopt where /proc does not say.
struct thread_sample {
  char state = '?';
  std::uint64_t cpu_ns = 0;
};

std::optional<std::string_view> read_small_file(const char* path, std::span<char> buffer) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  const ssize_t n = ::read(fd, buffer.data(), buffer.size() - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buffer[static_cast<std::size_t>(n)] = '\0';
  return std::string_view(buffer.data(), static_cast<std::size_t>(n));
}

std::optional<thread_sample> sample_thread(int tid) noexcept {
  char path[64];
  char text[512];
  thread_sample sample;
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
  const auto stat = read_small_file(path, text);
  if (!stat) return std::nullopt;
  // "tid (name) S ...": the name may hold anything, so the state follows its last ')'.
  const std::size_t name_end = stat->rfind(')');
  if (name_end == std::string_view::npos || name_end + 2 >= stat->size()) return std::nullopt;
  sample.state = (*stat)[name_end + 2];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
  const auto schedstat = read_small_file(path, text);
  unsigned long long cpu_ns = 0;
  if (!schedstat || std::sscanf(schedstat->data(), "%llu", &cpu_ns) != 1) return std::nullopt;
  sample.cpu_ns = cpu_ns;
  return sample;
}

}  // namespace

// Starved: the writer is falling behind (a quarter of max_backlog taken or staged for it, a
// quarter second of records at 65,000/s) or a task waits on it, and over the last two checks
// it was runnable yet got less than half of the time on a CPU. Merely waiting for a CPU is
// what an idle-priority thread does on a busy machine, and it catches up in the gaps. A
// writer asleep in busy_timeout or on the disk, or busy with a long query, is not starved
// either: taking over could not make it go faster. Where /proc cannot tell, two checks in a
// row without a step stand in for it.
bool ledger::starved_writer() noexcept {
  const std::uint64_t steps = steps_.load(std::memory_order_relaxed);
  const bool progressed = steps != seen_steps_;
  seen_steps_ = steps;
  const bool waiting = tasks_queued_.load(std::memory_order_relaxed) != 0 ||
                       pending_size_.load(std::memory_order_relaxed) + staged_size_.load(std::memory_order_relaxed) +
                               gathered_size_.load(std::memory_order_relaxed) >=
                           options_.max_backlog / 4;
  const int tid = writer_tid_.load(std::memory_order_relaxed);
  const std::optional<thread_sample> sample = waiting && tid != 0 ? sample_thread(tid) : std::nullopt;
  const auto now = std::chrono::steady_clock::now();
  bool starved = false;
  if (sample && seen_sample_) {
    const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now - seen_at_).count();
    starved = sample->state == 'R' && (sample->cpu_ns - std::min(sample->cpu_ns, seen_cpu_ns_)) * 2 <
                                          static_cast<std::uint64_t>(elapsed);
  } else if (!sample && waiting) {
    starved = !progressed;
  }
  seen_sample_ = sample.has_value();
  if (sample) seen_cpu_ns_ = sample->cpu_ns;
  seen_at_ = now;
  starved_checks_ = starved ? starved_checks_ + 1 : 0;
  return starved_checks_ >= 2;
}

void ledger::writer_loop() noexcept {
  for (;;) {
    {
      std::unique_lock lock(wake_mutex_);
      wake_.wait_for(lock, options_.flush_interval, [this] {
        return stop_requested_ || (!guard_on_duty_ && (!tasks_.empty() || wake_pending_.load()));
      });
      if (stop_requested_) return;
    }
    // Step by step, so a guard taking over part-way goes on from the next step.
    for (bool more = true; more;) {
      std::lock_guard role(role_mutex_);
      if (stop_requested_ || guard_on_duty_) break;
      more = step(false);
    }
  }
}

void ledger::guard_loop() noexcept {
  auto last_pass = std::chrono::steady_clock::now();
  for (;;) {
    std::uint64_t requested = 0;
    bool stopping = false;
    {
      std::unique_lock lock(wake_mutex_);
      guard_wake_.wait_for(lock, guard_on_duty_ ? options_.flush_interval : guard_period, [this] {
        return stop_requested_ || gathers_done_ < gathers_requested_ || gather_pending_.load() ||
               (guard_on_duty_ && !tasks_.empty());
      });
      stopping = stop_requested_;
      requested = gathers_requested_;
    }
    gather_pending_.store(false, std::memory_order_relaxed);
    gather();
    if (requested != 0) {
      // Answered even when stopping: the writer asking holds the role until it has this.
      {
        std::lock_guard lock(wake_mutex_);
        gathers_done_ = requested;
      }
      gathered_.notify_all();
    }
    if (stopping) return;

    const auto now = std::chrono::steady_clock::now();
    if (!guard_on_duty_) {
      if (!starved_writer()) continue;
      duty_ = now - duty_ended_ < retaken_within ? std::min<std::chrono::milliseconds>(duty_ * 2, longest_duty)
                                                : std::chrono::milliseconds(first_duty);
      duty_until_ = now + duty_;
      duty_started_ = false;
      takeovers_.fetch_add(1, std::memory_order_relaxed);
      guard_on_duty_.store(true);
    } else if (now >= duty_until_) {
      {
        std::lock_guard lock(wake_mutex_);
        guard_on_duty_.store(false);
      }
      duty_ended_ = now;
      starved_checks_ = 0;
      seen_sample_ = false;
      wake_.notify_all();  // the writer's turn again
      continue;
    }
    // On duty: the writer's schedule, a pass every flush interval or at once when tasks or
    // much staging wait.
    const bool due = now - last_pass >= options_.flush_interval || tasks_queued_.load(std::memory_order_relaxed) != 0 ||
                     wake_pending_.load(std::memory_order_relaxed);
    if (!due) continue;
    // The starved writer may be in the middle of a step: keep gathering while it finishes.
    // The duty's time starts once the guard has the role.
    std::unique_lock role(role_mutex_, std::defer_lock);
    if (!role.try_lock_for(takeover_wait)) {
      duty_until_ = std::max(duty_until_, std::chrono::steady_clock::now() + takeover_wait);
      continue;
    }
    if (!duty_started_) {
      duty_started_ = true;
      duty_until_ = std::chrono::steady_clock::now() + duty_;
    }
    // A pass at full load is tens of milliseconds here, longer than a ring may go ungathered.
    // And unlike the writer, the guard is not preempted by a waking worker, so it makes way
    // between steps itself.
    while (!stop_requested_ && step(true)) {
      gather();
      std::this_thread::yield();
    }
    last_pass = now;
  }
}

}  // namespace tollgate::storage
