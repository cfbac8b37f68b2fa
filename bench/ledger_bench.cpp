// Ledger throughput and submit() latency. The point is to show what a reactor thread pays
// per request (submit) while the writer thread sustains group commits into a real file.
// Usage: ledger_bench [records_per_producer] [db_path or ""] [records/s per producer, 0 = flood]

#include "core/ledger_record.hpp"
#include "storage/ledger.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct producer_result {
  std::vector<std::int64_t> latencies_ns;
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
};

std::int64_t percentile(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  const auto index = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(index), v.end());
  return v[index];
}

}  // namespace

int main(int argc, char** argv) {
  const long per_producer = argc > 1 ? std::atol(argv[1]) : 200'000;
  std::string dir;
  std::string path;
  if (argc > 2 && argv[2][0] != '\0') {
    path = argv[2];
  } else {
    std::string pattern = (std::filesystem::temp_directory_path() / "ledger-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return 1;
    dir = pattern;
    path = dir + "/ledger.db";
  }
  constexpr unsigned producers = 2;
  // Paced like a busy proxy worker rather than a tight loop: bursts every millisecond and a
  // sleep in between, as a reactor would spend time on I/O (a spin would starve the writer on
  // a 2-core box). The default 50k records/s per producer is far past what two reactors
  // proxy to real LLMs. Rate 0 floods the rings to find the writer's ceiling (drops are then
  // expected, and counted).
  const long rate = argc > 3 ? std::atol(argv[3]) : 50'000;

  tollgate::storage::ledger ledger(
      path, tollgate::storage::ledger_options{.flush_interval = std::chrono::milliseconds(50),
                                              .ring_capacity = 65'536,
                                              .producers = producers});
  if (!ledger.stats().healthy) {
    std::fprintf(stderr, "cannot open %s: %s\n", path.c_str(), ledger.last_error().c_str());
    return 1;
  }

  std::vector<producer_result> results(producers);
  const auto start = clock_type::now();
  std::vector<std::thread> threads;
  for (unsigned p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      auto& out = results[p];
      out.latencies_ns.reserve(static_cast<std::size_t>(per_producer));
      tollgate::core::ledger_record r;
      r.key_fingerprint = "tg_ab12";
      r.departments = "search,ads";
      r.user = "alice";
      r.agent = "planner";
      r.provider = "openai";
      r.model = "gpt-4o-mini";
      r.route_reason = "primary";
      r.http_status = 200;
      const long per_tick = std::max(1L, rate / 1000);
      auto next = clock_type::now();
      for (long i = 0; i < per_producer; ++i) {
        r.time_ms = 1'700'000'000'000 + i;
        r.request_id = "p" + std::to_string(p) + "-" + std::to_string(i);
        r.prompt_tokens = i % 1000;
        r.completion_tokens = i % 300;
        r.cost_micro_usd = i % 5000;
        const auto t0 = clock_type::now();
        const bool ok = ledger.submit(p, r);
        const auto t1 = clock_type::now();
        out.latencies_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
        (ok ? out.accepted : out.rejected)++;
        if (rate > 0 && (i + 1) % per_tick == 0) {
          next += std::chrono::milliseconds(1);
          std::this_thread::sleep_until(next);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto submitted = clock_type::now();
  ledger.stop();
  const auto done = clock_type::now();

  std::vector<std::int64_t> all;
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  for (auto& r : results) {
    all.insert(all.end(), r.latencies_ns.begin(), r.latencies_ns.end());
    accepted += r.accepted;
    rejected += r.rejected;
  }
  const auto s = ledger.stats();
  const double seconds = std::chrono::duration<double>(done - start).count();
  const double submit_seconds = std::chrono::duration<double>(submitted - start).count();
  const auto p50 = percentile(all, 0.50);
  const auto p99 = percentile(all, 0.99);
  const auto p999 = percentile(all, 0.999);
  const auto max = *std::max_element(all.begin(), all.end());

  std::printf("ledger_bench: %u producers x %ld records, %ld records/s each (0 = flood), file %s\n",
              producers, per_producer, rate, path.c_str());
  std::printf("  %-26s %14s\n", "metric", "value");
  std::printf("  %-26s %14llu\n", "submitted (accepted)", static_cast<unsigned long long>(accepted));
  std::printf("  %-26s %14llu\n", "dropped (ring full)", static_cast<unsigned long long>(rejected));
  std::printf("  %-26s %14llu\n", "written", static_cast<unsigned long long>(s.written));
  std::printf("  %-26s %14llu\n", "transactions", static_cast<unsigned long long>(s.commits));
  std::printf("  %-26s %14.0f\n", "offered records/s", static_cast<double>(accepted + rejected) / submit_seconds);
  std::printf("  %-26s %14.0f\n", "written records/s", static_cast<double>(s.written) / seconds);
  std::printf("  %-26s %14lld\n", "submit p50 ns", static_cast<long long>(p50));
  std::printf("  %-26s %14lld\n", "submit p99 ns", static_cast<long long>(p99));
  std::printf("  %-26s %14lld\n", "submit p99.9 ns", static_cast<long long>(p999));
  std::printf("  %-26s %14lld\n", "submit max ns", static_cast<long long>(max));
  if (!dir.empty()) std::filesystem::remove_all(dir);
  return s.written == accepted ? 0 : 1;
}
