#include "proxy/alert_webhook.hpp"

#include "core/json_string.hpp"
#include "proxy/access_log.hpp"

#include <unistd.h>

namespace tollgate::proxy {
namespace {

ssl::context& with_client_defaults(ssl::context& context) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  context.set_default_verify_paths();
  context.set_verify_mode(ssl::verify_peer);
  return context;
}

void log_failure(const std::string& url, std::string_view why) {
  std::string line = "{\"event\":\"alert_webhook_failed\",\"url\":";
  core::append_json_string(line, url);
  line += ",\"error\":";
  core::append_json_string(line, why);
  line += "}";
  write_event_line(STDOUT_FILENO, line);
}

}  // namespace

alert_webhook::alert_webhook(net::any_io_executor executor, core::upstream_url url)
    : executor_(executor),
      url_(std::move(url)),
      target_(upstream_target::make(url_.host, url_.port, url_.tls)),
      pool_(executor, with_client_defaults(tls_context_), 0, std::chrono::duration_cast<std::chrono::milliseconds>(timeout)) {}

bool alert_webhook::send(const std::string& dedupe_key, std::string json_body,
                         std::chrono::steady_clock::time_point now) {
  auto it = last_sent_.find(dedupe_key);
  if (it != last_sent_.end() && now - it->second < dedupe_window) {
    ++suppressed_;
    return false;
  }
  last_sent_[dedupe_key] = now;
  net::co_spawn(executor_, post(std::move(json_body)), net::detached);
  return true;
}

net::awaitable<void> alert_webhook::post(std::string body) {
  const std::string url_text = url_.to_string();
  auto lease = co_await pool_.acquire(target_);
  if (!lease) {
    ++failed_;
    log_failure(url_text, lease.error().cause.message());
    co_return;
  }
  auto& connection = *lease->connection;
  http::request<http::string_body> request{http::verb::post, url_.base_path.empty() ? "/" : url_.base_path, 11};
  std::string host = url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
  if (url_.port != (url_.tls ? 443 : 80)) host += ":" + std::to_string(url_.port);
  request.set(http::field::host, host);
  request.set(http::field::content_type, "application/json");
  request.set(http::field::user_agent, "tollgate");
  request.set(http::field::connection, "close");
  request.body() = std::move(body);
  request.prepare_payload();
  connection.expires_after(timeout);
  auto [write_ec, written] = co_await http::async_write(connection, request, use_nothrow);
  if (write_ec) {
    ++failed_;
    log_failure(url_text, write_ec.message());
    co_return;
  }
  http::response<http::string_body> response;
  auto [read_ec, read] = co_await http::async_read(connection, connection.read_buffer(), response, use_nothrow);
  if (read_ec) {
    ++failed_;
    log_failure(url_text, read_ec.message());
  } else if (response.result_int() / 100 != 2) {
    ++failed_;
    log_failure(url_text, "HTTP " + std::to_string(response.result_int()));
  } else {
    ++sent_;
  }
}

}  // namespace tollgate::proxy
