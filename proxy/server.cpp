#include "proxy/server.hpp"

#include "core/json_string.hpp"
#include "proxy/access_log.hpp"
#include "proxy/accounting.hpp"
#include "proxy/admin_api.hpp"
#include "proxy/ops_server.hpp"
#include "proxy/startup_policy.hpp"
#include "proxy/worker.hpp"
#include "storage/ledger.hpp"
#include "storage/policy_store.hpp"
#include "storage/spend.hpp"

#include <boost/asio/signal_set.hpp>

#include <atomic>
#include <filesystem>
#include <future>
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
  core::append_json_string(out, text);
  return out;
}

void tls_client_defaults(ssl::context& context) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  // The system trust store (and SSL_CERT_FILE / SSL_CERT_DIR when set, as OpenSSL honours them).
  context.set_default_verify_paths();
  context.set_verify_mode(ssl::verify_peer);
}

std::int64_t unix_ms(core::sys_seconds t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

core::sys_seconds wall_now() {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

void log_ledger_problem(std::string_view what, const std::string& error) {
  std::string line = "{\"event\":\"ledger_unavailable\",\"what\":";
  core::append_json_string(line, what);
  line += ",\"error\":";
  core::append_json_string(line, error);
  line += "}";
  write_event_line(STDOUT_FILENO, line);
}

// The ledger file's directory is created on first start (./data by default); a failure
// surfaces as an unhealthy ledger, not a crash.
void ensure_parent_directory(const std::string& path) {
  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
}

std::string readiness_body(bool ready, bool draining, const storage::ledger& ledger) {
  auto stats = ledger.stats();
  std::string body = "{\"status\":";
  body += ready ? "\"ready\"" : (draining ? "\"draining\"" : "\"not ready\"");
  body += ",\"ledger\":{\"healthy\":";
  body += stats.healthy ? "true" : "false";
  body += ",\"queued\":" + std::to_string(stats.queued) + ",\"dropped\":" + std::to_string(stats.dropped);
  if (!stats.healthy) {
    body += ",\"error\":";
    core::append_json_string(body, ledger.last_error());
  }
  body += "}}";
  return body;
}

}  // namespace

int run_server(const core::config& config) {
  std::atomic<bool> draining{false};
  std::atomic<bool> ready{false};
  ssl::context tls_context(ssl::context::tls_client);
  tls_client_defaults(tls_context);

  // Before any thread exists: a named zone sets the process's TZ.
  const auto zone = load_time_zone(config.time_zone);
  const auto prices = load_prices(config);

  ensure_parent_directory(config.db_path);
  storage::ledger_options ledger_options;
  ledger_options.flush_interval = config.ledger_flush_interval;
  ledger_options.producers = config.workers;
  storage::ledger ledger(config.db_path, ledger_options);
  if (!ledger.stats().healthy) log_ledger_problem("open", ledger.last_error());

  // Spend so far this day and month, and the admin's stored changes, so limits hold across
  // restarts. Read-only connections, before any request is served.
  const auto now = wall_now();
  const auto day = core::day_bounds(now, zone);
  const auto month = core::month_bounds(now, zone);
  auto spend = storage::rebuild_spend(config.db_path, {unix_ms(day.start), unix_ms(day.end)},
                                      {unix_ms(month.start), unix_ms(month.end)});
  if (!spend.ok) log_ledger_problem("rebuild spend", spend.error);
  auto stored = storage::load_policy(config.db_path);
  if (!stored.ok) log_ledger_problem("load stored policy", stored.error);

  accounting accounts(config, ledger, prices, zone, wall_now);
  for (const auto& note : accounts.load(stored.state, spend.snapshot))
    write_event_line(STDOUT_FILENO, "{\"event\":\"policy_note\",\"message\":" + json_string(note) + "}");

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
    auto& context = workers.back()->context();
    context.accounts = &accounts;
    context.ledger = &ledger;
    context.prices = &prices;
    context.policy = std::make_shared<const policy_snapshot>(accounts.snapshot());
    // Port 0 asks the kernel for a free port once; the other workers join that same port.
    workers.back()->listen(listen_endpoint);
    if (i == 0) listen_endpoint = workers.front()->local_endpoint();
  }

  std::vector<std::string> provider_names;
  for (const auto& p : config.providers.providers) provider_names.push_back(p.name);
  admin_api admin(config, accounts, ledger, zone);
  // Fail closed by default: an unwritable ledger takes the pod out of rotation.
  auto is_ready = [&] {
    return ready.load() && !draining.load() && (config.ledger_fail_open || ledger.stats().healthy);
  };
  ops_server ops({[&] {
                    std::vector<worker_stats> snapshots;
                    for (auto& w : workers)
                      if (auto s = w->snapshot(std::chrono::seconds(2))) snapshots.push_back(std::move(*s));
                    auto accounting_snapshot = accounts.metrics_snapshot(std::chrono::seconds(2));
                    auto ledger_stats = ledger.stats();
                    return render_metrics(snapshots, {config.workers, ready.load(), draining.load()},
                                          {&provider_names, accounting_snapshot ? &*accounting_snapshot : nullptr,
                                           &ledger_stats});
                  },
                  is_ready,
                  [&](bool r) { return readiness_body(r, draining.load(), ledger); },
                  [&](const http::request<http::string_body>& request) { return admin.handle(request); }});
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
  // Each worker gets its own copy of every new policy, so no reference count is shared
  // between cores.
  accounts.start([&workers](const policy_snapshot& next) {
    for (auto& w : workers) {
      auto copy = std::make_shared<const policy_snapshot>(next);
      net::post(w->executor(), [context = &w->context(), copy = std::move(copy)]() mutable {
        context->policy = std::move(copy);
      });
    }
  });
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
  accounts.stop();
  // Every record handed over is committed (or counted as dropped) before the process exits.
  ledger.stop();
  auto ledger_stats = ledger.stats();
  write_event_line(STDOUT_FILENO, "{\"event\":\"stopped\",\"abandoned_requests\":" + std::to_string(abandoned) +
                                      ",\"ledger_written\":" + std::to_string(ledger_stats.written) +
                                      ",\"ledger_dropped\":" + std::to_string(ledger_stats.dropped) + "}");
  return 0;
}

}  // namespace tollgate::proxy
