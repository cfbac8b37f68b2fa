#pragma once

#include "core/config.hpp"
#include "proxy/access_log.hpp"
#include "proxy/asio.hpp"
#include "proxy/request_context.hpp"
#include "proxy/stats.hpp"
#include "proxy/upstream.hpp"
#include "proxy/wall_clock.hpp"

#include "core/pricing.hpp"
#include "proxy/policy_snapshot.hpp"

#include <atomic>
#include <memory>
#include <cstdint>
#include <string>
#include <vector>

namespace tollgate::storage {
class ledger;
}

namespace tollgate::proxy {

class accounting;
namespace relay_detail {
class disconnect_sweeper;
}

// A provider as one worker sees it: where it lives and the request-invariant header lines
// (Host and its kind of authentication), built once at start-up.
struct provider_runtime {
  const core::provider_config* config = nullptr;
  upstream_target target;
  std::string fixed_headers;
};

// What every session on one worker shares. Owned by that worker and touched only by its
// thread, except the atomics, which the main thread reads while draining.
struct worker_context {
  worker_context(unsigned index, const core::config& config, net::any_io_executor executor,
                 ssl::context& tls_context, const std::atomic<bool>& draining);

  unsigned index;
  const core::config& config;
  std::vector<provider_runtime> providers;  // same order as config.providers.providers
  upstream_pool pool;
  worker_stats stats;
  access_log log;
  wall_clock wall;  // re-anchored by the worker's flush tick
  const std::atomic<bool>& draining;
  std::atomic<int> in_flight{0};
  // The io_context's, found once: looking a service up takes the context's registry lock.
  relay_detail::disconnect_sweeper& disconnect_sweeper;

  // Metering, wired at start-up. The policy is this worker's own copy, replaced by a post
  // from the accounting thread whenever keys, limits or throttles change.
  accounting* accounts = nullptr;
  storage::ledger* ledger = nullptr;
  const core::price_table* prices = nullptr;
  core::price_memo last_price;  // of *prices, which never changes once serving starts
  std::shared_ptr<const policy_snapshot> policy = std::make_shared<const policy_snapshot>();
  core::unpriced_models unpriced;
  std::atomic<int> open_sessions{0};
  std::string departments_buffer;  // meter()'s, reused so joining departments stops allocating

  request_id next_request_id();

 private:
  std::string id_prefix_;
  std::uint64_t next_id_ = 0;
};

}  // namespace tollgate::proxy
