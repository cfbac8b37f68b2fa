#include "proxy/worker_context.hpp"

#include <charconv>
#include <random>
#include <unistd.h>

namespace tollgate::proxy {
namespace {

std::string random_hex(std::size_t digits) {
  static constexpr char hex[] = "0123456789abcdef";
  std::random_device entropy;
  std::string out;
  for (std::size_t i = 0; i < digits; ++i) out.push_back(hex[entropy() & 0xf]);
  return out;
}

std::string fixed_headers(const core::config& config) {
  std::string out = "Host: " + config.upstream.host;
  if (config.upstream.host.find(':') != std::string::npos) out = "Host: [" + config.upstream.host + "]";
  if (config.upstream.port != (config.upstream.tls ? 443 : 80)) out += ":" + std::to_string(config.upstream.port);
  out += "\r\n";
  if (!config.upstream_api_key.empty()) out += "Authorization: Bearer " + config.upstream_api_key + "\r\n";
  return out;
}

}  // namespace

worker_context::worker_context(unsigned index, const core::config& config, net::any_io_executor executor,
                               ssl::context& tls_context, const std::atomic<bool>& draining)
    : index(index),
      config(config),
      target(upstream_target::make(config.upstream.host, config.upstream.port, config.upstream.tls)),
      upstream_fixed_headers(fixed_headers(config)),
      pool(executor, tls_context, config.upstream_pool_size, config.upstream_connect_timeout),
      log(STDOUT_FILENO, config.access_log),
      draining(draining),
      // Unique across workers and restarts without coordination: random per process and worker.
      id_prefix_(random_hex(8) + "-" + std::to_string(index) + "-") {}

std::string worker_context::next_request_id() {
  char digits[20];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, ++next_id_, 16);
  std::string id = id_prefix_;
  id.append(digits, end);
  return id;
}

}  // namespace tollgate::proxy
