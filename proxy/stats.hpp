#pragma once

#include "core/errors.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tollgate::storage {
struct ledger_stats;
}

namespace tollgate::proxy {

struct accounting_metrics;

// Upper bounds in seconds, shared by every latency histogram: from sub-millisecond proxy
// overhead up to the minutes a long non-streaming generation can take.
inline constexpr std::array<double, 18> latency_buckets_seconds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

struct histogram_data {
  std::array<std::uint64_t, latency_buckets_seconds.size() + 1> counts{};  // last: +Inf
  double sum = 0;
  std::uint64_t count = 0;

  void observe(double seconds) noexcept;
  void merge(const histogram_data& other) noexcept;
};

// Route label index: an adapters::openai::endpoint value, one of these, or unknown_route.
inline constexpr std::uint8_t messages_route = 0x10;  // Anthropic's /v1/messages
inline constexpr std::uint8_t models_route = 0x11;    // GET /v1/models
inline constexpr std::uint8_t unknown_route = 0xff;

inline constexpr std::size_t error_kind_count = static_cast<std::size_t>(core::error_kind::internal) + 1;

// Everything one worker counts. Only its own thread writes it and a scrape copies it on that
// same thread (posted to the worker), so nothing here is atomic or locked: the hot path pays
// a few plain increments and one small hash lookup.
class worker_stats {
 public:
  // Model labels come from clients; past this many distinct names they collapse into "other"
  // so a misbehaving client cannot blow up the metrics cardinality.
  static constexpr std::size_t max_models = 256;
  static constexpr std::uint32_t other_model = 0;

  worker_stats();

  std::uint32_t model_id(std::string_view model);
  void count_request(std::uint8_t route, std::uint32_t model, int status);
  void count_tokens(std::uint32_t model, std::uint64_t prompt, std::uint64_t completion, std::uint64_t cached);
  void count_upstream_error(core::error_kind kind) noexcept { ++upstream_errors[static_cast<std::size_t>(kind)]; }

  histogram_data request_duration;
  histogram_data upstream_ttfb;
  std::int64_t active_requests = 0;
  std::int64_t active_streams = 0;
  std::array<std::uint64_t, error_kind_count> upstream_errors{};
  std::uint64_t client_disconnects = 0;
  std::uint64_t sse_oversized_events = 0;
  std::uint64_t stream_interruptions = 0;
  std::uint64_t upstream_connections_opened = 0;
  std::uint64_t upstream_connections_reused = 0;

  // Read by the renderer.
  struct token_counts {
    std::uint64_t prompt = 0, completion = 0, cached = 0;
  };
  std::vector<std::string> model_names;                     // id -> name
  std::unordered_map<std::uint64_t, std::uint64_t> requests;  // packed (route, model, status) -> count
  std::unordered_map<std::uint32_t, token_counts> tokens;     // model id -> counts
  std::unordered_map<std::uint64_t, std::int64_t> cost_micro_usd;       // (provider, model) -> micro-USD
  std::unordered_map<std::uint64_t, std::uint64_t> unpriced_requests;   // (provider, model) -> requests

  static std::uint64_t pack_cost_key(std::uint32_t provider, std::uint32_t model) noexcept {
    return (std::uint64_t{provider} << 32) | model;
  }

  static std::uint64_t pack(std::uint8_t route, std::uint32_t model, int status) noexcept {
    return (std::uint64_t{route} << 56) | (std::uint64_t{model} << 16) | static_cast<std::uint16_t>(status);
  }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
  };
  std::unordered_map<std::string, std::uint32_t, string_hash, std::equal_to<>> model_ids_;
  std::uint32_t last_model_id_ = other_model;  // the last id looked up; other_model: none yet
};

struct process_state {
  unsigned workers = 0;
  bool ready = false;
  bool draining = false;
};

// Spend, budgets, throttles and the ledger: owned by the accounting and ledger threads.
struct metering_view {
  const std::vector<std::string>* provider_names = nullptr;  // index -> name
  const accounting_metrics* accounts = nullptr;              // null when the snapshot timed out
  const storage::ledger_stats* ledger = nullptr;
};

// Prometheus text exposition of all workers' snapshots. Every metric family tollgate exports
// is named in this function's implementation, and nowhere else.
std::string render_metrics(const std::vector<worker_stats>& snapshots, const process_state& process,
                           const metering_view& metering);

}  // namespace tollgate::proxy
