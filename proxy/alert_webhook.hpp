#pragma once

#include "core/address.hpp"
#include "proxy/asio.hpp"
#include "proxy/upstream.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace tollgate::proxy {

// POSTs throttle transitions to TOLLGATE_ALERT_WEBHOOK_URL. Runs on the accounting thread's
// event loop, fire and forget: a slow or dead receiver delays nothing but its own alert.
// The same (provider, state) alert is sent at most once per dedupe window, so a provider
// flapping around its threshold pages someone once, not every evaluation.
class alert_webhook {
 public:
  static constexpr std::chrono::minutes dedupe_window{10};
  static constexpr std::chrono::seconds timeout{10};

  alert_webhook(net::any_io_executor executor, core::upstream_url url);

  // Returns false when suppressed as a duplicate.
  bool send(const std::string& dedupe_key, std::string json_body, std::chrono::steady_clock::time_point now);

  std::uint64_t sent() const noexcept { return sent_; }
  std::uint64_t failed() const noexcept { return failed_; }
  std::uint64_t suppressed() const noexcept { return suppressed_; }

 private:
  net::awaitable<void> post(std::string body);

  net::any_io_executor executor_;
  core::upstream_url url_;
  upstream_target target_;
  ssl::context tls_context_{ssl::context::tls_client};
  upstream_pool pool_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_sent_;
  std::uint64_t sent_ = 0;
  std::uint64_t failed_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace tollgate::proxy
