#include "storage/ledger.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <utility>

namespace tollgate::storage {

namespace {

constexpr const char* insert_sql =
    "INSERT INTO requests (time_ms, request_id, key_fingerprint, departments, user_name, agent,"
    " provider, model, route_reason, http_status, prompt_tokens, completion_tokens,"
    " cached_tokens, cost_micro_usd, ttfb_ms, duration_ms, streamed, stream_completed,"
    " usage_estimated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

constexpr auto reopen_backoff = std::chrono::seconds(1);

int bind_text(sqlite3_stmt* stmt, int index, const std::string& text) {
  // SQLITE_STATIC: the record outlives the step that reads it, so no copy is needed.
  return sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

int bind_record(sqlite3_stmt* stmt, const core::ledger_record& r) {
  int rc = SQLITE_OK;
  int i = 0;
  auto i64 = [&](std::int64_t v) { if (rc == SQLITE_OK) rc = sqlite3_bind_int64(stmt, ++i, v); };
  auto text = [&](const std::string& v) { if (rc == SQLITE_OK) rc = bind_text(stmt, ++i, v); };
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

void ledger::stmt_deleter::operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }

ledger::ledger(std::string path, ledger_options options)
    : path_(std::move(path)), options_(std::move(options)) {
  const unsigned count = std::max(1u, options_.producers);
  producers_.reserve(count);
  for (unsigned i = 0; i < count; ++i)
    producers_.push_back(std::make_unique<producer_slot>(options_.ring_capacity));
  ensure_open();
  writer_ = std::thread([this] { run(); });
}

ledger::~ledger() { stop(); }

bool ledger::submit(unsigned producer, const core::ledger_record& record) noexcept {
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
  const std::size_t depth = slot.ring.try_push(record);
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
  // The writer is gone, so this thread is now the only consumer: anything that slipped into
  // a ring after the final drain is counted, never silently lost.
  std::uint64_t late = 0;
  for (auto& slot : producers_) late += slot->ring.drain([](core::ledger_record&&) {});
  if (late != 0) dropped_.fetch_add(late, std::memory_order_relaxed);
  insert_.reset();
  db_.reset();
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
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(opened.db.get(), insert_sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                         nullptr) != SQLITE_OK) {
    record_failure(sqlite3_extended_errcode(opened.db.get()),
                   "ledger database " + path_ + ": cannot prepare insert: " +
                       sqlite3_errmsg(opened.db.get()));
    return false;
  }
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
  insert_.reset(stmt);
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
  sqlite3_stmt* stmt = insert_.get();
  auto failed = [&](const char* what) {
    record_failure(sqlite3_extended_errcode(db),
                   "ledger database " + path_ + ": " + what + ": " + sqlite3_errmsg(db));
    sqlite3_reset(stmt);
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return false;
  };
  // IMMEDIATE takes the write lock up front, so a busy database fails here (after
  // busy_timeout) rather than half-way through the batch.
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
    return failed("cannot begin batch");
  for (const auto& record : pending_) {
    if (bind_record(stmt, record) != SQLITE_OK) return failed("cannot bind record");
    if (sqlite3_step(stmt) != SQLITE_DONE) return failed("cannot insert record");
    sqlite3_reset(stmt);
  }
  sqlite3_clear_bindings(stmt);
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
    slot->ring.drain([this](core::ledger_record&& r) { pending_.push_back(std::move(r)); });
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
        return stop_requested_ || wake_pending_.load(std::memory_order_relaxed);
      });
      stopping = stop_requested_;
    }
    wake_pending_.store(false, std::memory_order_relaxed);
    flush();
    if (stopping) break;
  }
  // Final pass for the SIGTERM path: the open backoff no longer applies, one more attempt is
  // cheap, and whatever still cannot be written is counted as dropped rather than vanishing.
  last_open_attempt_ = {};
  flush();
  if (!pending_.empty()) drop_pending(pending_.size());
}

}  // namespace tollgate::storage
