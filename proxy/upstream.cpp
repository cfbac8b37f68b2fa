#include "proxy/upstream.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace tollgate::proxy {
namespace {

// getaddrinfo gives no TTL; re-resolve this often so DNS changes are picked up.
constexpr auto address_ttl = std::chrono::seconds(30);
// Servers commonly close keep-alive connections idle for about a minute; retire ours first
// rather than race the server's close.
constexpr auto max_idle_time = std::chrono::seconds(45);
// A response header must fit; bodies pass through piece by piece.
constexpr std::size_t max_read_buffer = 64 * 1024;
// Beast reads at most the buffer's free capacity (512 bytes for a fresh buffer): reserving a
// typical stream burst up front turns ten small reads and writes into one.
constexpr std::size_t initial_read_capacity = 16 * 1024;

upstream_failure connect_failure(const error_code& ec) {
  if (ec == beast::error::timeout) return {core::error_kind::upstream_timeout, ec};
  return {core::error_kind::upstream_unreachable, ec};
}

}  // namespace

upstream_connection::upstream_connection(net::any_io_executor executor, ssl::context* tls_context)
    : socket_(executor),
      deadline_(executor, socket_),
      buffer_(max_read_buffer) {
  buffer_.reserve(initial_read_capacity);
  if (tls_context) tls_.emplace(socket_, *tls_context);
}

upstream_pool::upstream_pool(net::any_io_executor executor, ssl::context& tls_context,
                             std::size_t max_idle_per_target, std::chrono::milliseconds connect_timeout)
    : executor_(executor),
      tls_context_(tls_context),
      max_idle_(max_idle_per_target),
      connect_timeout_(connect_timeout),
      resolver_(executor) {}

net::awaitable<boost::system::result<tcp::resolver::results_type, upstream_failure>> upstream_pool::resolve(
    const upstream_target& target) {
  auto now = std::chrono::steady_clock::now();
  std::string key = target.host + ":" + std::to_string(target.port);
  if (auto it = addresses_.find(key); it != addresses_.end() && it->second.expires > now) co_return it->second.endpoints;
  // Asio runs getaddrinfo on its internal resolver thread: the event loop never blocks on DNS.
  auto [ec, endpoints] = co_await resolver_.async_resolve(target.host, std::to_string(target.port), use_nothrow);
  if (ec || endpoints.empty()) co_return upstream_failure{core::error_kind::upstream_unreachable, ec};
  addresses_[key] = {endpoints, now + address_ttl};
  co_return endpoints;
}

std::unique_ptr<upstream_connection> upstream_pool::take_idle(const upstream_target& target,
                                                             std::chrono::steady_clock::time_point now) {
  auto it = idle_.find(target.key);
  if (it == idle_.end()) return nullptr;
  auto& idle = it->second;
  while (!idle.empty()) {
    // Most recently used first: the one least likely to have been closed by the server.
    auto connection = std::move(idle.back());
    idle.pop_back();
    // A connection the server closed meanwhile is caught by the relay's retry-once rule;
    // probing each one here would cost a system call per request.
    if (now - connection->idle_since < max_idle_time && connection->socket().is_open()) return connection;
  }
  return nullptr;
}

net::awaitable<boost::system::result<upstream_lease, upstream_failure>> upstream_pool::acquire(
    const upstream_target& target) {
  if (auto connection = take_idle(target, std::chrono::steady_clock::now())) co_return upstream_lease{std::move(connection), true};

  auto endpoints = co_await resolve(target);
  if (!endpoints) co_return endpoints.error();

  auto connection = std::make_unique<upstream_connection>(executor_, target.tls ? &tls_context_ : nullptr);
  connection->expires_after(connect_timeout_);
  auto [connect_ec_raw, endpoint] = co_await net::async_connect(connection->socket(), *endpoints, use_nothrow);
  error_code connect_ec = connection->checked(connect_ec_raw);
  if (connect_ec) {
    addresses_.erase(target.host + ":" + std::to_string(target.port));  // maybe stale: resolve afresh next time
    co_return connect_failure(connect_ec);
  }
  error_code ignored;
  connection->socket().set_option(tcp::no_delay(true), ignored);

  if (auto* tls = connection->tls_stream()) {
    // SNI, so virtual-hosted APIs present the right certificate, and RFC 6125 host checking
    // on top of chain verification against the system store.
    if (!SSL_set_tlsext_host_name(tls->native_handle(), target.host.c_str()))
      co_return upstream_failure{core::error_kind::upstream_tls, error_code(static_cast<int>(::ERR_get_error()), net::error::get_ssl_category())};
    tls->set_verify_mode(ssl::verify_peer);
    tls->set_verify_callback(ssl::host_name_verification(target.host));
    auto [handshake_ec_raw] = co_await tls->async_handshake(ssl::stream_base::client, use_nothrow);
    error_code handshake_ec = connection->checked(handshake_ec_raw);
    if (handshake_ec) {
      co_return upstream_failure{handshake_ec == beast::error::timeout ? core::error_kind::upstream_timeout
                                                                       : core::error_kind::upstream_tls,
                                 handshake_ec};
    }
  }
  connection->expires_never();
  co_return upstream_lease{std::move(connection), false};
}

void upstream_pool::release(const upstream_target& target, std::unique_ptr<upstream_connection> connection,
                            std::chrono::steady_clock::time_point now) {
  if (max_idle_ == 0) return;
  auto& idle = idle_[target.key];
  if (idle.size() >= max_idle_) idle.pop_front();  // drop the oldest: the likeliest to be stale
  connection->expires_never();
  connection->idle_since = now;
  idle.push_back(std::move(connection));
}

}  // namespace tollgate::proxy
