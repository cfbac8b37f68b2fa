#include "proxy/server.hpp"

#include "proxy/access_log.hpp"
#include "proxy/ops_server.hpp"
#include "proxy/worker.hpp"

#include <boost/asio/signal_set.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <thread>
#include <unistd.h>
#include <vector>

namespace tollgate::proxy {
namespace {

using clock = std::chrono::steady_clock;

tcp::endpoint resolve_listen_address(net::io_context& io, const core::host_port& address, std::string_view variable) {
  error_code ec;
  auto ip = net::ip::make_address(address.host, ec);
  if (!ec) return {ip, address.port};
  tcp::resolver resolver(io);
  auto results = resolver.resolve(address.host, std::to_string(address.port), ec);
  if (ec || results.empty())
    throw std::runtime_error("cannot resolve " + std::string(variable) + " host \"" + address.host + "\": " + ec.message());
  return *results.begin();
}

std::string endpoint_text(const tcp::endpoint& endpoint) {
  auto address = endpoint.address();
  std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

void tls_client_defaults(ssl::context& context) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  // The system trust store (and SSL_CERT_FILE / SSL_CERT_DIR when set, as OpenSSL honours them).
  context.set_default_verify_paths();
  context.set_verify_mode(ssl::verify_peer);
}

}  // namespace

int run_server(const core::config& config) {
  std::atomic<bool> draining{false};
  std::atomic<bool> ready{false};
  ssl::context tls_context(ssl::context::tls_client);
  tls_client_defaults(tls_context);

  net::io_context main_io{1};
  // Installed before anything can announce readiness: a SIGTERM that arrives right after the
  // started line must drain, not kill.
  net::signal_set signals(main_io, SIGTERM, SIGINT);
  int signal_number = 0;
  signals.async_wait([&](const error_code& ec, int number) {
    if (!ec) signal_number = number;
  });
  auto listen_endpoint = resolve_listen_address(main_io, config.listen, "TOLLGATE_LISTEN");
  auto metrics_endpoint = resolve_listen_address(main_io, config.metrics_listen, "TOLLGATE_METRICS_LISTEN");

  std::vector<std::unique_ptr<worker>> workers;
  for (unsigned i = 0; i < config.workers; ++i) {
    workers.push_back(std::make_unique<worker>(i, config, tls_context, draining));
    // Port 0 asks the kernel for a free port once; the other workers join that same port.
    workers.back()->listen(listen_endpoint);
    if (i == 0) listen_endpoint = workers.front()->local_endpoint();
  }

  ops_server ops({[&] {
                    std::vector<worker_stats> snapshots;
                    for (auto& w : workers)
                      if (auto s = w->snapshot(std::chrono::seconds(2))) snapshots.push_back(std::move(*s));
                    return render_metrics(snapshots, {config.workers, ready.load(), draining.load()});
                  },
                  [&] { return ready.load() && !draining.load(); }});
  ops.listen(metrics_endpoint);

  std::string providers;
  for (const auto& p : config.providers.providers) {
    providers += providers.empty() ? "[" : ",";
    providers += "{\"name\":" + json_string(p.name) + ",\"type\":" + json_string(core::provider_type_name(p.type));
    if (p.type != core::provider_type::mock) providers += ",\"base_url\":" + json_string(p.base_url.to_string());
    providers += "}";
  }
  providers += "]";
  // Ready before the started line, so whoever waits for that line never sees /readyz say 503.
  ready = true;
  write_event_line(STDOUT_FILENO, "{\"event\":\"started\",\"listen\":" + json_string(endpoint_text(listen_endpoint)) +
                                      ",\"metrics_listen\":" + json_string(endpoint_text(ops.local_endpoint())) +
                                      ",\"workers\":" + std::to_string(config.workers) +
                                      ",\"providers\":" + providers +
                                      ",\"builtin_mock\":" + (config.providers.implicit_mock ? "true" : "false") + "}");
  if (config.providers.implicit_mock) {
    write_event_line(STDERR_FILENO,
                     "tollgate: no provider configured and no API key found: answering every model with the built-in "
                     "mock provider (set OPENAI_API_KEY, TOLLGATE_UPSTREAM_URL or TOLLGATE_PROVIDERS for real ones)");
  }
  ops.start();
  for (auto& w : workers) w->start();

  main_io.run();

  // Drain: /readyz turns 503 so the load balancer stops sending, no new connections are
  // accepted, idle keep-alive connections close, in-flight requests get until the deadline.
  draining = true;
  write_event_line(STDOUT_FILENO, "{\"event\":\"draining\",\"signal\":" + std::to_string(signal_number) +
                                      ",\"timeout_s\":" + std::to_string(config.drain_timeout.count()) + "}");
  for (auto& w : workers) w->begin_drain();
  auto deadline = clock::now() + config.drain_timeout;
  auto in_flight = [&] {
    int total = 0;
    for (auto& w : workers) total += w->in_flight();
    return total;
  };
  while (in_flight() > 0 && clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  int abandoned = in_flight();
  for (auto& w : workers) w->stop();
  for (auto& w : workers) w->join();
  ops.stop();
  write_event_line(STDOUT_FILENO, "{\"event\":\"stopped\",\"abandoned_requests\":" + std::to_string(abandoned) + "}");
  return 0;
}

}  // namespace tollgate::proxy
