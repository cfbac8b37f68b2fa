#pragma once

#include <cstdint>
#include <string_view>

namespace tollgate::core {

// Who caused a failure: it decides whether a retry or a fallback can help, and which
// counter and log field record it.
enum class error_source : std::uint8_t { client, upstream, internal };

enum class error_kind : std::uint8_t {
  // client
  bad_request,
  not_found,
  model_not_found,
  method_not_allowed,
  payload_too_large,
  client_disconnected,
  unauthorized,        // TOLLGATE_REQUIRE_KEY and no valid virtual key
  quota_exceeded,      // a caller quota (department, user or key) would be passed
  budget_throttled,    // every candidate provider is over budget or its daily request quota
  // upstream
  upstream_unreachable,       // DNS, connect refused/failed
  upstream_tls,               // handshake or certificate verification failed
  upstream_timeout,           // no response header within the upstream timeout
  upstream_protocol,          // the upstream spoke something that is not HTTP/1.1
  upstream_stream_reset,      // the connection broke after the response started
  upstream_stream_truncated,  // the body ended before its framing said it would
  upstream_stream_idle,       // silence longer than the stream idle timeout
  upstream_status,            // the upstream answered with an error status (passed through)
  // internal
  draining,
  ledger_unavailable,  // fail closed: spend cannot be recorded, so limits cannot be enforced
  internal,
};

struct error_info {
  error_source source;
  int http_status;          // status a client gets when nothing was sent yet
  std::string_view type;    // OpenAI-shaped error "type"
  std::string_view code;    // OpenAI-shaped error "code"
  std::string_view reason;  // metric label and log field
  bool retryable;           // safe to try another attempt or provider before the first byte
};

constexpr error_info describe(error_kind kind) noexcept {
  switch (kind) {
    case error_kind::bad_request:
      return {error_source::client, 400, "invalid_request_error", "invalid_request", "bad_request", false};
    case error_kind::not_found:
      return {error_source::client, 404, "invalid_request_error", "not_found", "not_found", false};
    case error_kind::model_not_found:
      return {error_source::client, 404, "invalid_request_error", "model_not_found", "model_not_found", false};
    case error_kind::method_not_allowed:
      return {error_source::client, 405, "invalid_request_error", "method_not_allowed", "method_not_allowed", false};
    case error_kind::payload_too_large:
      return {error_source::client, 413, "invalid_request_error", "payload_too_large", "payload_too_large", false};
    case error_kind::client_disconnected:
      // 499 is nginx's convention for "client closed request"; it only ever appears in logs.
      return {error_source::client, 499, "client_error", "client_disconnected", "client_disconnected", false};
    case error_kind::unauthorized:
      return {error_source::client, 401, "invalid_request_error", "invalid_api_key", "unauthorized", false};
    case error_kind::quota_exceeded:
      return {error_source::client, 429, "quota_exceeded", "quota_exceeded", "quota_exceeded", false};
    case error_kind::budget_throttled:
      return {error_source::internal, 429, "budget_throttled", "budget_throttled", "budget_throttled", false};
    case error_kind::upstream_unreachable:
      return {error_source::upstream, 502, "upstream_error", "upstream_unreachable", "connect_failed", true};
    case error_kind::upstream_tls:
      return {error_source::upstream, 502, "upstream_error", "upstream_tls_error", "tls", true};
    case error_kind::upstream_timeout:
      return {error_source::upstream, 504, "upstream_error", "upstream_timeout", "timeout", true};
    case error_kind::upstream_protocol:
      return {error_source::upstream, 502, "upstream_error", "upstream_protocol_error", "protocol", true};
    case error_kind::upstream_stream_reset:
      return {error_source::upstream, 502, "upstream_error", "upstream_stream_interrupted", "reset", true};
    case error_kind::upstream_stream_truncated:
      return {error_source::upstream, 502, "upstream_error", "upstream_stream_interrupted", "truncated", true};
    case error_kind::upstream_stream_idle:
      return {error_source::upstream, 504, "upstream_error", "upstream_stream_idle_timeout", "idle_timeout", true};
    case error_kind::upstream_status:
      return {error_source::upstream, 502, "upstream_error", "upstream_error_status", "status", false};
    case error_kind::draining:
      return {error_source::internal, 503, "server_error", "draining", "draining", true};
    case error_kind::ledger_unavailable:
      return {error_source::internal, 503, "server_error", "ledger_unavailable", "ledger_unavailable", true};
    case error_kind::internal:
      return {error_source::internal, 500, "server_error", "internal_error", "internal", false};
  }
  return {error_source::internal, 500, "server_error", "internal_error", "internal", false};
}

}  // namespace tollgate::core
