#include "proxy/worker_context.hpp"

#include "proxy/relay_internal.hpp"

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

std::string fixed_headers(const core::provider_config& provider) {
  const auto& url = provider.base_url;
  std::string out = "Host: ";
  if (url.host.find(':') != std::string::npos) out += "[" + url.host + "]";
  else out += url.host;
  if (url.port != (url.tls ? 443 : 80)) out += ":" + std::to_string(url.port);
  out += "\r\n";
  if (provider.api_key.empty()) return out;
  switch (provider.type) {
    case core::provider_type::anthropic: out += "x-api-key: " + provider.api_key + "\r\n"; break;
    case core::provider_type::gemini: out += "x-goog-api-key: " + provider.api_key + "\r\n"; break;
    default: out += "Authorization: Bearer " + provider.api_key + "\r\n"; break;
  }
  return out;
}

std::vector<provider_runtime> provider_runtimes(const core::config& config) {
  std::vector<provider_runtime> runtimes;
  for (const auto& provider : config.providers.providers) {
    const auto& url = provider.base_url;
    runtimes.push_back({&provider, upstream_target::make(url.host, url.port, url.tls), fixed_headers(provider)});
  }
  return runtimes;
}

}  // namespace

worker_context::worker_context(unsigned index, const core::config& config, net::any_io_executor executor,
                               ssl::context& tls_context, const std::atomic<bool>& draining)
    : index(index),
      config(config),
      providers(provider_runtimes(config)),
      pool(executor, tls_context, config.upstream_pool_size, config.upstream_connect_timeout),
      log(STDOUT_FILENO, config.access_log),
      draining(draining),
      disconnect_sweeper(net::use_service<relay_detail::disconnect_sweeper>(
          net::query(executor, net::execution::context))),
      // Unique across workers and restarts without coordination: random per process and worker.
      id_prefix_(random_hex(8) + "-" + std::to_string(index) + "-") {}

request_id worker_context::next_request_id() {
  char digits[16];  // a 64-bit counter in hex
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, ++next_id_, 16);
  return request_id(id_prefix_, std::string_view(digits, static_cast<std::size_t>(end - digits)));
}

}  // namespace tollgate::proxy
