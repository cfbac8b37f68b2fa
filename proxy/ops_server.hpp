#pragma once

#include "proxy/admin_api.hpp"
#include "proxy/asio.hpp"

#include <functional>
#include <string>
#include <thread>

namespace tollgate::proxy {

// The operations listener: /metrics, /healthz, /readyz (and the metering endpoints of
// admin_api) on their own port and thread, so a scrape never competes with traffic on a
// worker's event loop.
class ops_server {
 public:
  struct handlers {
    std::function<std::string()> render_metrics;
    std::function<bool()> ready;
    // {"status":...} detail for /readyz, e.g. why the ledger is unhealthy.
    std::function<std::string(bool ready)> readiness_body;
    // Everything else; nullopt means 404.
    std::function<net::awaitable<std::optional<ops_response>>(const http::request<http::string_body>&)> route;
  };

  explicit ops_server(handlers h);
  ~ops_server();
  ops_server(const ops_server&) = delete;
  ops_server& operator=(const ops_server&) = delete;

  void listen(const tcp::endpoint& endpoint);  // start-up only; throws on failure
  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
  void start();
  net::any_io_executor executor() { return io_.get_executor(); }
  void stop();

 private:
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(tcp::socket socket);

  handlers handlers_;
  net::io_context io_{1};
  tcp::acceptor acceptor_;
  std::thread thread_;
};

}  // namespace tollgate::proxy
