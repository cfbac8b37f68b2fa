#pragma once

#include "core/calendar.hpp"
#include "core/config.hpp"
#include "proxy/asio.hpp"

#include <functional>
#include <optional>
#include <string>

namespace tollgate::storage {
class ledger;
}

namespace tollgate::proxy {

class accounting;

struct ops_response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// The metering endpoints of the operations listener:
//   GET /stats?window=24h            totals and distributions from the ledger
//   GET /stats/raw?limit=&offset=    ledger rows, newest first
//   /admin/...                       budgets, quotas, keys, throttle state (bearer TOLLGATE_ADMIN_TOKEN)
// Runs on the ops thread; ledger reads run on the ledger's writer thread and state changes on
// the accounting thread, each reached by message, so no reactor ever waits on SQLite.
class admin_api {
 public:
  admin_api(const core::config& config, accounting& accounts, storage::ledger& ledger, core::utc_offset_fn zone);

  // nullopt: not a path this API serves.
  net::awaitable<std::optional<ops_response>> handle(const http::request<http::string_body>& request);

 private:
  net::awaitable<ops_response> stats(std::string_view query);
  net::awaitable<ops_response> raw_rows(std::string_view query);
  net::awaitable<ops_response> admin(const http::request<http::string_body>& request, std::string_view path);
  net::awaitable<ops_response> quotas(const http::request<http::string_body>& request, std::string_view rest);
  net::awaitable<ops_response> budgets(const http::request<http::string_body>& request, std::string_view rest);
  net::awaitable<ops_response> keys(const http::request<http::string_body>& request, std::string_view rest);
  bool authorized(const http::request<http::string_body>& request) const;

  const core::config& config_;
  accounting& accounts_;
  storage::ledger& ledger_;
  core::utc_offset_fn zone_;
};

}  // namespace tollgate::proxy
