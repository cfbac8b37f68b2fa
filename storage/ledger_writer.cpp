// The writer role and its two threads: a pass in steps (gather, insert slices, commit, run
// the tasks), the idle-priority writer's loop, and the guard that owns the rings and stands in
// for a starved writer. See the ledger class comment for why there are two.
#include "storage/ledger.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <thread>
#include <utility>

namespace tollgate::storage {

namespace {

// Rows one step inserts: about a quarter of a millisecond of writing.
constexpr std::size_t rows_per_slice = 256;
// A pending_ grown past this by a backlog is let go once committed rather than kept at its
// peak, and glibc asked (at most once a second) to hand freed pages back.
constexpr std::size_t retained_pending = 8192;
constexpr auto trim_interval = std::chrono::seconds(1);

}  // namespace

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
  // Not cut short by stop(): the guard answers once more before it leaves. A request made
  // after that, by a writer that started its pass just as stop() came, finds the guard gone:
  // the rings have no other consumer then, so the writer gathers itself.
  gathered_.wait(lock, [this, ticket] { return gathers_done_ >= ticket || guard_gone_; });
  if (gathers_done_ >= ticket) return;
  lock.unlock();
  gather();
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
      last_pass_end_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
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
constexpr auto not_started = std::chrono::steady_clock::time_point::max();

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
// quarter second of records at 65,000/s; or any record overdue) or a task waits on it, and over the last two checks
// it was runnable yet got less than half of the time on a CPU. Merely waiting for a CPU is
// what an idle-priority thread does on a busy machine, and it catches up in the gaps. A
// writer asleep in busy_timeout or on the disk, or busy with a long query, is not starved
// either: taking over could not make it go faster. Where /proc cannot tell, two checks in a
// row without a step stand in for it.
bool ledger::starved_writer() noexcept {
  const std::uint64_t steps = steps_.load(std::memory_order_relaxed);
  const bool progressed = steps != seen_steps_;
  seen_steps_ = steps;
  const std::uint64_t backlog = pending_size_.load(std::memory_order_relaxed) +
                                staged_size_.load(std::memory_order_relaxed) +
                                gathered_size_.load(std::memory_order_relaxed);
  // Overdue: records have waited two flush intervals past the last pass, which a crash
  // would lose, however few.
  const auto since_pass = std::chrono::steady_clock::now().time_since_epoch() -
                          std::chrono::steady_clock::duration(last_pass_end_ns_.load(std::memory_order_relaxed));
  const bool waiting = tasks_queued_.load(std::memory_order_relaxed) != 0 || backlog >= options_.max_backlog / 4 ||
                       (backlog != 0 && since_pass > 2 * options_.flush_interval);
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
      // On duty it also wakes for tasks, counted until they have run: a starved writer may
      // hold some half-way through its pass.
      guard_wake_.wait_for(lock, guard_on_duty_ ? std::min(options_.flush_interval, guard_period) : guard_period,
                           [this] {
                             return stop_requested_ || gathers_done_ < gathers_requested_ || gather_pending_.load() ||
                                    (guard_on_duty_ && tasks_queued_.load() != 0);
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
    if (stopping) {
      std::lock_guard lock(wake_mutex_);
      guard_gone_ = true;
      gathered_.notify_all();
      return;
    }

    const auto now = std::chrono::steady_clock::now();
    if (!guard_on_duty_) {
      if (!starved_writer()) continue;
      duty_ = now - duty_ended_ < retaken_within ? std::min<std::chrono::milliseconds>(duty_ * 2, longest_duty)
                                                : std::chrono::milliseconds(first_duty);
      duty_until_ = not_started;  // the duty's time starts once the guard has the role
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
    std::unique_lock role(role_mutex_, std::defer_lock);
    if (!role.try_lock_for(takeover_wait)) continue;
    if (duty_until_ == not_started) duty_until_ = std::chrono::steady_clock::now() + duty_;
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
