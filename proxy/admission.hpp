#pragma once

#include "core/errors.hpp"
#include "core/quota.hpp"
#include "proxy/asio.hpp"
#include "proxy/client_request.hpp"
#include "proxy/request_context.hpp"
#include "proxy/worker_context.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace tollgate::proxy {

// Why a request is not let through, with what the response needs to say so.
struct admission_refusal {
  core::error_kind kind = core::error_kind::bad_request;
  std::string message;
  std::string param;
  std::optional<core::quota_rejection> quota;  // quota_exceeded: which limit, for the body
  std::string provider;                        // budget_throttled: the provider passed over last
  std::chrono::seconds retry_after{};          // 0: no Retry-After header
};

// The admit phase, part one: who is calling (ctx.caller). Refuses a missing or unknown key
// when TOLLGATE_REQUIRE_KEY is on, and malformed x-tollgate-* headers.
std::optional<admission_refusal> identify_caller(const worker_context& worker, const client_request& request,
                                                 request_context& ctx);

// What admission needs from the request body.
struct admission_input {
  std::string_view body;
  std::int64_t prompt_tokens_estimate = 0;
  bool generates = true;  // false for embeddings: nothing is generated, so no completion tokens
  // /v1/messages can only go to Anthropic providers.
  bool anthropic_only = false;
};

// The admit phase, part two, and the route phase: picks the first candidate provider (the
// model's primary, then its TOLLGATE_FALLBACKS) that is not throttled or over its daily
// request quota, and reserves the request's worst-case cost against every caller quota.
// On success ctx.provider, provider_index, upstream_model, route_reason and reservation are set.
//
// Requests touched by no limit are decided right here, on the worker, without a coroutine;
// the others carry a pending admission that admit_on_accounting_thread settles in one round
// trip to the accounting thread.
struct pending_admission;

struct admission_step {
  admission_step();
  admission_step(admission_step&&) noexcept;
  admission_step& operator=(admission_step&&) noexcept;
  ~admission_step();

  std::optional<admission_refusal> refusal;
  std::unique_ptr<pending_admission> pending;
};

admission_step admit_and_route(worker_context& worker, request_context& ctx, const admission_input& input);
net::awaitable<std::optional<admission_refusal>> admit_on_accounting_thread(worker_context& worker,
                                                                            request_context& ctx,
                                                                            pending_admission& pending);

// The refusal as a complete HTTP response: OpenAI's error shape (with the quota fields for
// quota_exceeded) or, for /v1/messages, Anthropic's.
std::string refusal_response(const admission_refusal& refusal, bool anthropic_shape, bool keep_alive,
                             std::string_view request_id);

}  // namespace tollgate::proxy
