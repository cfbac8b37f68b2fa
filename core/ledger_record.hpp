#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tollgate::core {

// One row of the usage ledger: everything needed to account for a single proxied request.
// A plain value type so the proxy can fill it without knowing anything about storage, and
// storage can persist it without knowing anything about HTTP.
//
// A template over the type of its text fields so the owning and the borrowing forms cannot
// drift apart: see ledger_record and ledger_record_view below.
template <typename Text>
struct basic_ledger_record {
  std::int64_t time_ms = 0;          // unix time in milliseconds when the request started
  Text request_id{};
  Text key_fingerprint{};            // never the key itself: only its fingerprint is stored
  Text departments{};                // comma-joined, a request may bill several departments
  Text user{};
  Text agent{};
  Text provider{};
  Text model{};
  Text route_reason{};               // why this provider was chosen (primary, fallback, ...)
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

  friend bool operator==(const basic_ledger_record&, const basic_ledger_record&) = default;
};

// Owns its text: rows read back from the ledger, tests and tools.
using ledger_record = basic_ledger_record<std::string>;

// Borrows its text, so the proxy fills one per request without copying a string; the ledger
// copies what it needs before submit() returns.
using ledger_record_view = basic_ledger_record<std::string_view>;

// Calls visit(field) on every text field, in declaration order.
template <typename Text, typename Visit>
void for_each_text(const basic_ledger_record<Text>& r, Visit&& visit) {
  for (const Text* field : {&r.request_id, &r.key_fingerprint, &r.departments, &r.user, &r.agent, &r.provider,
                            &r.model, &r.route_reason})
    visit(*field);
}

// The same record with every text field passed through convert(field), in declaration order
// (braced initialisation evaluates left to right).
template <typename To, typename From, typename Convert>
basic_ledger_record<To> convert_text(const basic_ledger_record<From>& r, Convert&& convert) {
  return {.time_ms = r.time_ms,
          .request_id = convert(r.request_id),
          .key_fingerprint = convert(r.key_fingerprint),
          .departments = convert(r.departments),
          .user = convert(r.user),
          .agent = convert(r.agent),
          .provider = convert(r.provider),
          .model = convert(r.model),
          .route_reason = convert(r.route_reason),
          .http_status = r.http_status,
          .prompt_tokens = r.prompt_tokens,
          .completion_tokens = r.completion_tokens,
          .cached_tokens = r.cached_tokens,
          .cost_micro_usd = r.cost_micro_usd,
          .ttfb_ms = r.ttfb_ms,
          .duration_ms = r.duration_ms,
          .streamed = r.streamed,
          .stream_completed = r.stream_completed,
          .usage_estimated = r.usage_estimated};
}

inline ledger_record_view view_of(const ledger_record& r) {
  return convert_text<std::string_view>(r, [](const std::string& text) { return std::string_view(text); });
}

}  // namespace tollgate::core
