#pragma once

#include "core/ledger_record.hpp"
#include "storage/schema.hpp"
#include "storage/spsc_ring.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct sqlite3_stmt;

namespace tollgate::storage {

struct ledger_options {
  std::chrono::milliseconds flush_interval{50};  // TOLLGATE_LEDGER_FLUSH_MS
  std::size_t ring_capacity = 8192;              // per producer, rounded up to a power of two
  unsigned producers = 1;                        // one per proxy worker thread
  // Records of failed commits kept for retry; beyond this the oldest are dropped and counted,
  // so a dead disk costs bounded memory instead of an unbounded backlog.
  std::size_t max_backlog = 65536;
  open_options open{};
};

// A snapshot of relaxed atomics: cheap enough for /metrics and /readyz on any thread.
struct ledger_stats {
  std::uint64_t queued = 0;        // in rings + waiting for retry
  std::uint64_t written = 0;       // committed rows
  std::uint64_t dropped = 0;       // ring full, backlog overflow, or unwritable at stop()
  std::uint64_t write_errors = 0;  // failed opens and failed batch commits
  std::uint64_t commits = 0;       // transactions, from SQLite's commit hook (one per flush)
  int last_error_code = 0;         // SQLite extended result code of the last failure
  bool healthy = false;            // false after a failed open or commit, true after a good one
};

// The usage ledger: producers (proxy workers) hand records over through their own SPSC ring,
// one writer thread drains all rings every flush_interval and commits each batch in a single
// transaction. Producers never touch SQLite and never wait for it.
class ledger {
 public:
  // Opens the database synchronously so health is known before the proxy starts serving; an
  // open failure is not an exception but healthy == false plus last_error(), and the writer
  // keeps retrying the open (at most once a second) so a fixed disk heals without restart.
  ledger(std::string path, ledger_options options);
  ~ledger();

  ledger(const ledger&) = delete;
  ledger& operator=(const ledger&) = delete;

  // Producer `producer` (0 .. producers-1) only; each index must be used by one thread at a
  // time. Never blocks: false means the record was dropped and counted.
  bool submit(unsigned producer, const core::ledger_record& record) noexcept;

  // Drains every ring, commits, and joins the writer (the SIGTERM path). Call after the
  // producers have stopped; records submitted later are dropped and counted. Idempotent.
  void stop() noexcept;

  ledger_stats stats() const noexcept;
  // Takes a mutex, so keep it off reactor threads: it is for logs and /readyz bodies.
  std::string last_error() const;

 private:
  struct producer_slot {
    explicit producer_slot(std::size_t capacity) : ring(capacity) {}
    spsc_ring<core::ledger_record> ring;
    // Written by its producer only, so the increment never contends.
    alignas(64) std::atomic<std::uint64_t> dropped{0};
  };

  void run() noexcept;
  void flush() noexcept;
  bool ensure_open() noexcept;
  bool commit_pending() noexcept;
  void record_failure(int code, std::string message) noexcept;
  void drop_pending(std::size_t count) noexcept;

  const std::string path_;
  const ledger_options options_;
  std::vector<std::unique_ptr<producer_slot>> producers_;

  // Writer-thread state.
  db_handle db_;
  struct stmt_deleter { void operator()(sqlite3_stmt* stmt) const noexcept; };
  std::unique_ptr<sqlite3_stmt, stmt_deleter> insert_;
  std::vector<core::ledger_record> pending_;
  std::chrono::steady_clock::time_point last_open_attempt_{};

  std::atomic<std::uint64_t> pending_size_{0};
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<int> last_error_code_{0};
  std::atomic<bool> healthy_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> wake_pending_{false};

  mutable std::mutex error_mutex_;
  std::string last_error_;

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;  // guarded by wake_mutex_
  std::thread writer_;
};

}  // namespace tollgate::storage
