#pragma once

#include "core/config.hpp"
#include "proxy/access_log.hpp"
#include "proxy/asio.hpp"
#include "proxy/stats.hpp"
#include "proxy/upstream.hpp"

#include <atomic>
#include <cstdint>
#include <string>

namespace tollgate::proxy {

// What every session on one worker shares. Owned by that worker and touched only by its
// thread, except the atomics, which the main thread reads while draining.
struct worker_context {
  worker_context(unsigned index, const core::config& config, net::any_io_executor executor,
                 ssl::context& tls_context, const std::atomic<bool>& draining);

  unsigned index;
  const core::config& config;
  upstream_target target;
  // Request-invariant upstream header lines (Host, Authorization), built once.
  std::string upstream_fixed_headers;
  upstream_pool pool;
  worker_stats stats;
  access_log log;
  const std::atomic<bool>& draining;
  std::atomic<int> in_flight{0};
  std::atomic<int> open_sessions{0};

  std::string next_request_id();

 private:
  std::string id_prefix_;
  std::uint64_t next_id_ = 0;
};

}  // namespace tollgate::proxy
