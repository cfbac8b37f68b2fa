#include "storage/ledger.hpp"

#include "core/this_thread.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <new>
#include <span>
#include <string_view>
#include <utility>

namespace tollgate::storage {

namespace {

constexpr auto reopen_backoff = std::chrono::seconds(1);
// Batches the guard may stage for the writer before it keeps gathering into one: a backlog of
// seconds at the guard's pace.
constexpr std::size_t staged_batches = 64;

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

}  // namespace tollgate::storage
