#pragma once

#include "core/ledger_record.hpp"
#include "storage/ledger_queries.hpp"
#include "storage/packed_record.hpp"
#include "storage/policy_store.hpp"
#include "storage/schema.hpp"
#include "storage/spend.hpp"
#include "storage/spsc_ring.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace tollgate::storage {

namespace detail {
// A queued operation for the writer thread; defined in ledger.cpp.
class ledger_task;

// The batch the writer is inserting, which its connection reads as a table; see ledger.cpp.
struct pending_batch {
  std::span<const packed_record> rows;
  std::int64_t first_id = 0;  // the id of rows[0]; the others follow it
};
}  // namespace detail

struct ledger_options {
  std::chrono::milliseconds flush_interval{50};  // TOLLGATE_LEDGER_FLUSH_MS
  std::size_t ring_capacity = 8192;              // per producer, rounded up to a power of two
  unsigned producers = 1;                        // one per proxy worker thread
  // Records of failed commits kept for retry; beyond this the oldest are dropped and counted,
  // so a dead disk costs bounded memory instead of an unbounded backlog. It bounds as well
  // the records gathered for a writer that cannot take them (a stuck or starved one); beyond
  // that new ones are dropped and counted, as by a full ring.
  std::size_t max_backlog = 65536;
  open_options open{};
};

// A snapshot of relaxed atomics: cheap enough for /metrics and /readyz on any thread.
struct ledger_stats {
  std::uint64_t queued = 0;        // in rings + waiting for retry
  std::uint64_t written = 0;       // committed rows
  std::uint64_t dropped = 0;       // ring full, backlog overflow, or unwritable at stop()
  std::uint64_t write_errors = 0;  // failed opens and failed batch commits
  std::uint64_t commits = 0;       // transactions, from SQLite's commit hook (one per flush,
                                   // plus one per policy or audit write)
  std::uint64_t tasks_queued = 0;  // policy writes, audit rows and queries not yet run
  std::uint64_t callback_errors = 0;  // task callbacks that threw (swallowed on the writer)
  std::uint64_t writer_takeovers = 0;  // times the guard took over from a starved writer
  int last_error_code = 0;         // SQLite extended result code of the last failure
  bool healthy = false;            // false after a failed open or commit, true after a good one
};

// The usage ledger: producers (proxy workers) hand records over through their own SPSC ring;
// every flush_interval the writer commits what has arrived in a single transaction. Producers
// never touch SQLite and never wait for it.
//
// The writer runs at idle priority (SCHED_IDLE), on CPU time no request-serving thread wants.
// That is not only about its own share: the scheduler counts a core that runs nothing but
// idle-priority threads as free, so a thread woken by a loopback write goes there instead of
// queueing on its waker's core while the other core idles; under a proxy's load that alone
// was worth about 10% more requests/s. Idle priority can starve on a saturated machine, so a
// guard thread at normal (batch) priority does the part that must never wait: it moves the
// records out of the rings into batches for the writer (when the writer starts a pass, when a
// ring is half full, at least every 100 ms, and between the steps of its own passes), so a
// stalled writer never fills a ring. And when the writer falls behind (or a task waits)
// while it is runnable but without a CPU, the guard takes the writing over for a while (a
// tenth of a second, doubling while the writer keeps starving). One of them writes at a time:
// the work is done in steps (start a pass, insert a slice of rows, run the tasks) under
// role_mutex_.
//
// The same writer also runs the rare operations that need the connection: policy writes,
// audit rows and /stats queries. Any thread queues them (a mutex, not a ring: they are rare);
// the writer wakes at once, runs them in order, and invokes the callback ON THE WRITER'S
// THREAD (or the guard's, or at stop() the calling thread's) so the caller posts the result
// back to its own event loop and must not block in it. Before running queued tasks the writer
// commits every record submitted before them, so a record submitted before a query is visible
// to that query (unless that commit fails: the records then stay pending for retry and the
// query sees what is committed). When the database is unavailable a task completes with
// ok == false and the reason. A task queued after stop() (or one that cannot be queued for
// lack of memory) completes at once with an error, on the calling thread. Callbacks may be
// empty.
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
  // time. Never blocks: false means the record was dropped and counted. The text is copied
  // before it returns, without allocating unless the row's text is unusually long.
  bool submit(unsigned producer, const core::ledger_record_view& record) noexcept;
  bool submit(unsigned producer, const core::ledger_record& record) noexcept {
    return submit(producer, core::view_of(record));
  }

  // Drains every ring, commits, and joins the writer (the SIGTERM path). Call after the
  // producers have stopped; records submitted later are dropped and counted. Idempotent.
  void stop() noexcept;

  using task_callback = std::function<void(task_result)>;
  void save_budget(stored_budget budget, task_callback done) noexcept;
  void delete_budget(std::string provider, task_callback done) noexcept;
  void save_quota(stored_quota quota, task_callback done) noexcept;
  void delete_quota(std::string scope, std::string name, task_callback done) noexcept;
  void save_key(stored_key key, task_callback done) noexcept;
  void delete_key(std::string fingerprint, task_callback done) noexcept;
  void append_audit(audit_row row, task_callback done) noexcept;

  void query_stats(stats_query query, std::function<void(stats_result)> done) noexcept;
  // The rows most recently written first (id DESC); see select_rows for limit and offset.
  void query_rows(std::int64_t limit, std::int64_t offset, std::function<void(rows_result)> done) noexcept;
  // Newest first.
  void query_audit(std::int64_t limit, std::function<void(audit_result)> done) noexcept;
  // rebuild_spend on the writer's connection: a quota set at run time starts from what its
  // subject has really spent, including records submitted just before.
  void query_spend(time_range day, time_range month, std::function<void(spend_result)> done) noexcept;

  ledger_stats stats() const noexcept;
  // Takes a mutex, so keep it off reactor threads: it is for logs and /readyz bodies.
  std::string last_error() const;

 private:
  struct producer_slot {
    explicit producer_slot(std::size_t capacity) : ring(capacity) {}
    spsc_ring<detail::packed_record> ring;
    // Written by its producer only, so the increment never contends.
    alignas(64) std::atomic<std::uint64_t> dropped{0};
  };

  template <typename Result, typename Work>
  void post(std::function<void(Result)> done, Work work) noexcept;
  void enqueue(std::unique_ptr<detail::ledger_task> task) noexcept;
  void run_tasks() noexcept;

  void writer_loop() noexcept;
  void guard_loop() noexcept;
  bool starved_writer() noexcept;  // guard thread only
  void gather() noexcept;          // the guard's, or stop()'s once the threads are gone
  void request_gather() noexcept;  // the writer's: waits for the guard's next gather
  // One step of a pass (see the class comment) by the holder of role_mutex_; false once the
  // pass is complete. `gather_here`: the caller moves the rings' records itself (the guard,
  // stop()); the writer asks the guard instead.
  bool step(bool gather_here) noexcept;
  void start_pass(bool gather_here) noexcept;
  void take_staged() noexcept;
  void insert_slice() noexcept;
  void end_batch(bool committed) noexcept;
  bool begin_batch() noexcept;
  bool failed_batch(const char* what) noexcept;
  bool ensure_open() noexcept;
  void record_failure(int code, std::string message) noexcept;
  void drop_pending(std::size_t count) noexcept;

  const std::string path_;
  const ledger_options options_;
  std::vector<std::unique_ptr<producer_slot>> producers_;

  // The writer role's state: only the holder of role_mutex_ touches it. Timed, so the guard
  // never waits on a starved writer for longer than it may go without gathering.
  std::timed_mutex role_mutex_;
  enum class pass_phase : std::uint8_t { start, inserting, tasks };
  pass_phase phase_ = pass_phase::start;
  std::size_t inserted_ = 0;      // rows of live_pending() inserted by the open transaction
  std::int64_t first_id_ = 0;     // the id of live_pending()[0] in the open transaction
  db_handle db_;
  struct stmt_deleter { void operator()(sqlite3_stmt* stmt) const noexcept; };
  std::unique_ptr<sqlite3_stmt, stmt_deleter> insert_;  // the whole batch
  std::unique_ptr<sqlite3_stmt, stmt_deleter> last_id_;  // the largest id in requests
  detail::pending_batch batch_;
  // Records waiting for a commit are pending_[pending_dropped_..]. The front ones dropped to
  // keep a dead disk's backlog bounded are destroyed in bulk once they reach a quarter of the
  // live ones: at 50k requests/s that is every sixth flush or so, where erasing them at each
  // flush moved the whole backlog (25 MB) twenty times a second. At most 1.25 x max_backlog
  // records are held between flushes.
  std::vector<detail::packed_record> pending_;
  std::size_t pending_dropped_ = 0;
  std::span<const detail::packed_record> live_pending() const noexcept {
    return std::span(pending_).subspan(pending_dropped_);
  }
  std::chrono::steady_clock::time_point last_open_attempt_{};
  std::chrono::steady_clock::time_point last_trim_{};

  std::atomic<std::uint64_t> pending_size_{0};
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<int> last_error_code_{0};
  std::atomic<bool> healthy_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> gather_pending_{false};  // a ring is half full: gather now
  std::atomic<bool> wake_pending_{false};    // much is staged: write now
  std::atomic<std::uint64_t> steps_{0};      // steps taken, for the guard to see progress
  std::atomic<std::uint64_t> takeovers_{0};
  std::atomic<std::int64_t> last_pass_end_ns_{0};  // steady_clock ticks at the last pass's end
  std::atomic<int> writer_tid_{0};           // the writer thread's kernel id, once it runs

  // Records on their way from the rings to pending_: the guard gathers them and stages them
  // in batches; the writer role takes the staged batches. Bounded by max_backlog together.
  std::vector<detail::packed_record> gathering_;  // the guard's (stop()'s once it is gone)
  spsc_ring<std::vector<detail::packed_record>> staged_;
  std::atomic<std::uint64_t> gathered_size_{0};
  std::atomic<std::uint64_t> staged_size_{0};

  // Guard-thread state.
  std::atomic<bool> guard_on_duty_{false};  // the guard writes; the writer stands aside
  std::chrono::steady_clock::time_point duty_until_{};
  std::chrono::steady_clock::time_point duty_ended_{};
  std::chrono::milliseconds duty_{0};
  std::uint64_t seen_steps_ = 0;
  bool seen_sample_ = false;  // seen_cpu_ns_ and seen_at_ hold the writer's last sample
  std::uint64_t seen_cpu_ns_ = 0;
  std::chrono::steady_clock::time_point seen_at_{};
  int starved_checks_ = 0;  // consecutive

  mutable std::mutex error_mutex_;
  std::string last_error_;

  std::mutex wake_mutex_;
  std::condition_variable wake_;        // the writer: tasks, much staged, stop()
  std::condition_variable guard_wake_;  // the guard: gather requests, tasks, stop()
  std::condition_variable gathered_;    // the writer waiting for a gather it asked for
  std::uint64_t gathers_requested_ = 0;  // guarded by wake_mutex_
  std::uint64_t gathers_done_ = 0;       // guarded by wake_mutex_
  bool guard_gone_ = false;              // guarded by wake_mutex_
  std::atomic<bool> stop_requested_{false};  // set under wake_mutex_
  std::vector<std::unique_ptr<detail::ledger_task>> tasks_;    // guarded by wake_mutex_
  std::vector<std::unique_ptr<detail::ledger_task>> running_;  // writer role: this pass's
  std::atomic<std::uint64_t> tasks_queued_{0};
  std::atomic<std::uint64_t> callback_errors_{0};
  std::thread writer_;
  std::thread guard_;
};

}  // namespace tollgate::storage
