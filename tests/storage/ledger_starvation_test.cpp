// The ledger's two threads under CPU starvation: the writer really runs at idle priority, and
// when a normal-priority thread takes its CPU the guard keeps records and queries moving.
#include "storage/ledger.hpp"
#include "storage_fixture.hpp"

#include <doctest/doctest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

using namespace tollgate::storage;
using namespace std::chrono_literals;
using tollgate::storage::testing::awaited;
using tollgate::storage::testing::make_record;
using tollgate::storage::testing::scalar;
using tollgate::storage::testing::temp_dir;
using tollgate::storage::testing::wait_until;

namespace {

// The scheduling policy (SCHED_*) of this process's thread called `name`, from field 41 of
// /proc/self/task/<tid>/stat; -1 when there is no such thread.
int policy_of_thread(const std::string& name) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string thread_name;
    std::getline(comm, thread_name);
    if (thread_name != name) continue;
    std::ifstream stat_file(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // from field 3 on
    std::string field;
    for (int i = 3; i <= 41 && fields >> field; ++i) {
    }
    return std::stoi(field);
  }
  return -1;
}

// Confines the calling thread, and the threads it starts from now on, to the CPU it is on.
class single_cpu {
 public:
  single_cpu() {
    REQUIRE(::sched_getaffinity(0, sizeof saved_, &saved_) == 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(::sched_getcpu(), &one);
    REQUIRE(::sched_setaffinity(0, sizeof one, &one) == 0);
  }
  single_cpu(const single_cpu&) = delete;
  single_cpu& operator=(const single_cpu&) = delete;
  ~single_cpu() { ::sched_setaffinity(0, sizeof saved_, &saved_); }

 private:
  cpu_set_t saved_;
};

}  // namespace

TEST_CASE("ledger: the writer runs at idle priority; starved of CPU, its guard writes instead") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  single_cpu pinned;
  ledger l(path, ledger_options{.flush_interval = 5ms, .ring_capacity = 8192, .max_backlog = 4000});
  REQUIRE(wait_until([] { return policy_of_thread("tg-ledger-guard") == SCHED_BATCH; }));
  CHECK(policy_of_thread("tg-ledger") == SCHED_IDLE);

  // A normal-priority thread that never sleeps, on the one CPU the ledger's threads may use:
  // an idle-priority thread there gets next to no CPU for as long as it spins.
  std::atomic<bool> spin{true};
  std::thread spinner([&spin] {
    while (spin.load(std::memory_order_relaxed)) {
    }
  });
  std::this_thread::sleep_for(50ms);  // the spinner has the CPU
  // Milliseconds of writing, and over a quarter of max_backlog: the writer is falling behind.
  constexpr int records = 3000;
  for (int i = 0; i < records; ++i) REQUIRE(l.submit(0, make_record(i)));
  const bool written = wait_until([&] { return l.stats().written == records; }, 20'000ms);
  const auto s = l.stats();
  spin.store(false, std::memory_order_relaxed);
  spinner.join();
  CHECK(written);
  CHECK(s.writer_takeovers >= 1);
  CHECK(s.dropped == 0);
  l.stop();
  CHECK(scalar(path, "SELECT count(*) FROM requests") == records);
}

TEST_CASE("ledger: a query gets its answer while the writer is starved, whatever the flush interval") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  single_cpu pinned;
  // The writer wakes for the query only; on its own it would not pass for a minute.
  ledger l(path, ledger_options{.flush_interval = 60'000ms});
  REQUIRE(wait_until([] { return policy_of_thread("tg-ledger") == SCHED_IDLE; }));
  std::atomic<bool> spin{true};
  std::thread spinner([&spin] {
    while (spin.load(std::memory_order_relaxed)) {
    }
  });
  std::this_thread::sleep_for(50ms);  // the spinner has the CPU
  for (int i = 0; i < 10; ++i) REQUIRE(l.submit(0, make_record(i)));
  awaited<rows_result> rows;
  l.query_rows(100, 0, rows.callback());
  const bool answered = rows.ready();
  spin.store(false, std::memory_order_relaxed);
  spinner.join();
  REQUIRE(answered);
  const auto r = rows.get(0ms);
  CHECK(r.ok);
  CHECK(r.rows.size() == 10);  // submitted before the query, so committed before it ran
}
