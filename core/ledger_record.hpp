#pragma once

#include <cstdint>
#include <string>

namespace tollgate::core {

// One row of the usage ledger: everything needed to account for a single proxied request.
// A plain value type so the proxy can fill it without knowing anything about storage, and
// storage can persist it without knowing anything about HTTP.
struct ledger_record {
  std::int64_t time_ms = 0;          // unix time in milliseconds when the request started
  std::string request_id;
  std::string key_fingerprint;       // never the key itself: only its fingerprint is stored
  std::string departments;           // comma-joined, a request may bill several departments
  std::string user;
  std::string agent;
  std::string provider;
  std::string model;
  std::string route_reason;          // why this provider was chosen (primary, fallback, ...)
  int http_status = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;
  // Integer micro-USD so sums are exact: floating-point dollars drift over millions of rows.
  std::int64_t cost_micro_usd = 0;
  std::int64_t ttfb_ms = 0;
  std::int64_t duration_ms = 0;
  bool streamed = false;
  bool stream_completed = false;     // false for a stream cut short: tokens are what was delivered
  bool usage_estimated = false;      // true when the provider reported no usage and we counted

  friend bool operator==(const ledger_record&, const ledger_record&) = default;
};

}  // namespace tollgate::core
