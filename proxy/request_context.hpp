#pragma once

#include "adapters/openai.hpp"
#include "core/caller.hpp"
#include "core/errors.hpp"
#include "core/providers.hpp"
#include "proxy/stats.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tollgate::proxy {

using steady_time = std::chrono::steady_clock::time_point;

// Made for every request and only ever read as text, so it lives inline: making one never
// allocates. Converts to std::string_view wherever text is expected.
class request_id {
 public:
  // A worker's prefix is at most 20 bytes and its counter 16 hex digits (worker_context).
  static constexpr std::size_t max_size = 40;

  request_id() = default;
  // Past max_size the rest is cut, never overflowed.
  request_id(std::string_view prefix, std::string_view suffix) noexcept {
    const std::size_t head = std::min(prefix.size(), max_size);
    const std::size_t tail = std::min(suffix.size(), max_size - head);
    std::copy_n(prefix.data(), head, chars_.data());
    std::copy_n(suffix.data(), tail, chars_.data() + head);
    size_ = static_cast<std::uint8_t>(head + tail);
  }

  std::string_view view() const noexcept { return {chars_.data(), size_}; }
  operator std::string_view() const noexcept { return view(); }
  bool empty() const noexcept { return size_ == 0; }

 private:
  std::array<char, max_size> chars_{};
  std::uint8_t size_ = 0;
};

// Everything known about one request as it moves through admit -> route -> translate ->
// relay -> account. Owned by the session, passed by reference to each phase.
struct request_context {
  request_id id;
  // Views into the request's head, which outlives the account phase.
  std::string_view method;
  std::string_view path;  // target without the query string
  std::uint8_t route = unknown_route;
  std::string model;  // as the client asked for it (alias or "provider/model" included)
  const core::provider_config* provider = nullptr;
  std::uint32_t provider_index = 0;  // valid when provider is set
  std::string upstream_model;        // the provider's name for the model
  // The body sent upstream when it is not the client's (model renamed, stream_options added).
  std::string upstream_body;
  const char* route_reason = "";     // primary, or why a fallback was taken
  core::caller_identity caller;
  std::uint32_t model_id = worker_stats::other_model;
  bool stream = false;

  std::int64_t started_unix_ms = 0;  // for the ledger row
  steady_time started{};
  steady_time upstream_sent{};
  steady_time upstream_first_byte{};
  steady_time finished{};

  int status = 0;           // what the client got (499 when it hung up first)
  int upstream_status = 0;  // 0 when no upstream response header arrived
  std::optional<core::error_kind> error;
  std::optional<adapters::openai::usage> usage;
  bool usage_estimated = false;  // the stream ended before the upstream reported usage
  std::uint64_t prompt_tokens_estimate = 0;
  std::uint64_t output_chunks = 0;  // streamed chunks that carried generated text
  bool stream_completed = false;  // the upstream's stream ended with [DONE]
  std::uint64_t events_relayed = 0;
  std::uint64_t reservation = 0;  // quota reservation to settle, 0 when none
  std::int64_t cost_micro_usd = 0;
  bool unpriced = false;  // a paid model with no known price: cost recorded as 0
  std::uint64_t response_bytes = 0;
};

}  // namespace tollgate::proxy
