#include "proxy/admission.hpp"

#include "adapters/anthropic_native.hpp"
#include "core/caller.hpp"
#include "core/json_scan.hpp"
#include "proxy/accounting.hpp"
#include "proxy/cross_thread.hpp"
#include "proxy/http_out.hpp"
#include "proxy/money.hpp"
#include "storage/ledger.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>

namespace tollgate::proxy {
namespace {

namespace json = boost::json;

// The identity headers in one pass over the request's fields: looking each of the five up by
// name costs a case-insensitive tree search apiece. The first occurrence of each counts.
core::caller_headers caller_headers_of(const client_request& request) {
  core::caller_headers h;
  unsigned seen = 0;
  auto take = [&seen](unsigned bit, std::string_view& slot, std::string_view value) {
    if (seen & bit) return;
    seen |= bit;
    slot = value;
  };
  constexpr std::string_view prefix = "x-tollgate-";
  for (const auto& f : request.fields()) {
    if (f.name() == core::header_name::authorization) {
      take(1, h.authorization, f.value());
      continue;
    }
    std::string_view name = f.name_string();
    if (beast::iequals(name, "x-api-key")) {
      take(2, h.api_key, f.value());
    } else if (name.size() > prefix.size() && beast::iequals(name.substr(0, prefix.size()), prefix)) {
      std::string_view rest = name.substr(prefix.size());
      if (beast::iequals(rest, "department")) take(4, h.departments, f.value());
      else if (beast::iequals(rest, "user")) take(8, h.user, f.value());
      else if (beast::iequals(rest, "agent")) take(16, h.agent, f.value());
    }
  }
  return h;
}

std::optional<std::int64_t> top_level_count(std::string_view body, std::string_view key) {
  auto member = core::find_top_level_member(body, key);
  if (!member) return std::nullopt;
  auto text = body.substr(member->value_begin, member->value_end - member->value_begin);
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// The most the request may generate: what it asks for, or the default tollgate itself sends
// to providers that need a number. A request without a cap could in principle run to the
// model's context limit; reserving the default is the documented trade-off.
std::int64_t generation_cap(const worker_context& worker, const admission_input& input) {
  if (!input.generates) return 0;
  if (auto v = top_level_count(input.body, "max_completion_tokens")) return *v;
  if (auto v = top_level_count(input.body, "max_tokens")) return *v;
  return worker.config.default_max_tokens;
}

std::string describe_limit(const core::quota_rejection& r) {
  std::string what = std::string(core::quota_scope_name(r.subject.scope)) + " \"" + r.subject.name + "\"";
  if (r.type == core::quota_type::model) return what + " may not use this model";
  std::string period = r.window ? std::string(core::period_name(*r.window)) + "ly" : std::string();
  if (period == "dayly") period = "daily";
  if (r.type == core::quota_type::cost) {
    char text[96];
    std::snprintf(text, sizeof text, " %s cost limit of $%.6g is reached ($%.6g used or reserved)", period.c_str(),
                  micro_to_usd(r.limit), micro_to_usd(r.current));
    return what + text;
  }
  return what + " " + period + " token limit of " + std::to_string(r.limit) + " is reached (" +
         std::to_string(r.current) + " used or reserved)";
}

}  // namespace

std::optional<admission_refusal> identify_caller(const worker_context& worker, const client_request& request,
                                                 request_context& ctx) {
  auto result = core::identify_caller(worker.policy->keys, caller_headers_of(request), worker.config.require_key);
  if (auto* identity = std::get_if<core::caller_identity>(&result)) {
    ctx.caller = std::move(*identity);
    return std::nullopt;
  }
  auto& rejection = std::get<core::caller_rejection>(result);
  admission_refusal refusal;
  refusal.kind = rejection.error == core::caller_error::bad_header ? core::error_kind::bad_request
                                                                    : core::error_kind::unauthorized;
  refusal.message = rejection.message;
  return refusal;
}

struct pending_admission {
  // The snapshot may be replaced while this request waits for the accounting thread.
  std::shared_ptr<const policy_snapshot> policy;
  core::candidate_list resolved;
  admission_ticket ticket;
};

admission_step::admission_step() = default;
admission_step::admission_step(admission_step&&) noexcept = default;
admission_step& admission_step::operator=(admission_step&&) noexcept = default;
admission_step::~admission_step() = default;

namespace {

admission_refusal all_candidates_skipped(const worker_context& worker, const request_context& ctx,
                                         const core::candidate_list& resolved, std::string_view why,
                                         std::chrono::seconds retry_after) {
  admission_refusal refusal;
  refusal.kind = core::error_kind::budget_throttled;
  refusal.provider = worker.config.providers.providers[resolved.back().provider_index].name;
  refusal.message = "Provider \"" + refusal.provider + "\" " + std::string(why) + ", and the model `" + ctx.model +
                    "` has no fallback that is available.";
  refusal.retry_after = retry_after;
  return refusal;
}

void route_to(worker_context& worker, request_context& ctx, const core::resolved_model& choice, bool primary,
              std::uint64_t reservation) {
  ctx.provider = &worker.config.providers.providers[choice.provider_index];
  ctx.provider_index = static_cast<std::uint32_t>(choice.provider_index);
  ctx.upstream_model = choice.model;
  ctx.route_reason = primary ? "primary" : "fallback";
  ctx.reservation = reservation;
}

constexpr std::string_view over_budget = "is throttled: its projected month-end spend is over budget";

}  // namespace

admission_step admit_and_route(worker_context& worker, request_context& ctx, const admission_input& input) {
  admission_step step;
  const auto& policy = *worker.policy;
  const auto& providers = worker.config.providers.providers;

  auto resolved = core::resolve_candidates(worker.config.providers, ctx.model);
  if (input.anthropic_only && !resolved.empty()) {
    const auto& primary = providers[resolved.front().provider_index];
    resolved.erase(std::remove_if(resolved.begin(), resolved.end(),
                                  [&](const core::resolved_model& r) {
                                    return providers[r.provider_index].type != core::provider_type::anthropic;
                                  }),
                   resolved.end());
    if (resolved.empty()) {
      auto& refusal = step.refusal.emplace();
      refusal.kind = core::error_kind::bad_request;
      refusal.message = "model: " + ctx.model + " is served by provider \"" + primary.name + "\" (" +
                        std::string(core::provider_type_name(primary.type)) +
                        "); /v1/messages needs an anthropic provider. Use /v1/chat/completions.";
      return step;
    }
  }
  if (resolved.empty()) {
    auto& refusal = step.refusal.emplace();
    refusal.kind = core::error_kind::model_not_found;
    refusal.param = "model";
    refusal.message = "The model `" + ctx.model + "` does not exist or is not served by any configured provider "
                      "(see GET /v1/models).";
    return step;
  }

  std::vector<core::quota_subject> subjects;
  for (const auto& d : ctx.caller.departments)
    if (policy.is_limited(core::quota_scope::department, d)) subjects.push_back({core::quota_scope::department, d});
  if (policy.is_limited(core::quota_scope::user, ctx.caller.user))
    subjects.push_back({core::quota_scope::user, ctx.caller.user});
  if (policy.is_limited(core::quota_scope::key, ctx.caller.key_fingerprint))
    subjects.push_back({core::quota_scope::key, ctx.caller.key_fingerprint});

  bool counted = false;   // some candidate counts requests: only the accounting thread may decide
  bool budgeted = false;  // some candidate's spend is enforced
  for (const auto& r : resolved) {
    const auto& flags = policy.providers[r.provider_index];
    counted = counted || flags.has_request_quota;
    budgeted = budgeted || flags.has_budget;
  }
  const bool needs_hop = counted || !subjects.empty();

  // Fail closed: a limit nobody can record spend against is not a limit.
  if ((needs_hop || budgeted) && !worker.config.ledger_fail_open && !worker.ledger->stats().healthy) {
    auto& refusal = step.refusal.emplace();
    refusal.kind = core::error_kind::ledger_unavailable;
    refusal.message = "The usage ledger cannot be written, so this request's quota or budget cannot be enforced; "
                      "tollgate refuses it until the ledger recovers (see /readyz). TOLLGATE_LEDGER_FAIL_OPEN=true "
                      "lets such requests through instead.";
    refusal.retry_after = std::chrono::seconds(5);
    return step;
  }

  if (needs_hop) {
    auto pending = std::make_unique<pending_admission>();
    pending->policy = worker.policy;
    pending->ticket.subjects = std::move(subjects);
    for (const auto& r : resolved)
      pending->ticket.candidates.push_back({static_cast<std::uint32_t>(r.provider_index), r.model});
    pending->ticket.prompt_tokens_estimate = ctx.prompt_tokens_estimate;
    pending->ticket.max_tokens = generation_cap(worker, input);
    pending->resolved = std::move(resolved);
    step.pending = std::move(pending);
    return step;
  }
  for (std::size_t i = 0; i < resolved.size(); ++i) {
    if (policy.providers[resolved[i].provider_index].skipped) continue;
    route_to(worker, ctx, resolved[i], i == 0, 0);
    return step;
  }
  step.refusal = all_candidates_skipped(worker, ctx, resolved, over_budget, worker.config.throttle_eval_interval);
  return step;
}

net::awaitable<std::optional<admission_refusal>> admit_on_accounting_thread(worker_context& worker,
                                                                            request_context& ctx,
                                                                            pending_admission& pending) {
  accounting& accounts = *worker.accounts;
  const admission_ticket& ticket = pending.ticket;
  auto outcome = co_await call_on(accounts.executor(), [&accounts, &ticket] { return accounts.admit(ticket); });
  using verdict = admission_outcome::verdict;
  if (outcome.result == verdict::quota_rejected) {
    admission_refusal refusal;
    refusal.kind = core::error_kind::quota_exceeded;
    refusal.quota = outcome.rejection;
    refusal.retry_after = outcome.rejection->retry_after;
    refusal.message = "Quota exceeded: " + describe_limit(*outcome.rejection) + ".";
    co_return refusal;
  }
  if (outcome.result == verdict::providers_skipped) {
    co_return all_candidates_skipped(worker, ctx, pending.resolved,
                                     outcome.skipped_for_request_quota
                                         ? "has used up its daily request quota (TOLLGATE_PROVIDER_DAILY_QUOTA)"
                                         : over_budget,
                                     outcome.retry_after);
  }
  route_to(worker, ctx, pending.resolved[outcome.candidate], outcome.candidate == 0, outcome.reservation);
  co_return std::nullopt;
}

std::string refusal_response(const admission_refusal& refusal, bool anthropic_shape, bool keep_alive,
                             std::string_view request_id) {
  const auto info = core::describe(refusal.kind);
  std::string body;
  if (anthropic_shape) {
    namespace anthropic = adapters::anthropic;
    body = anthropic::native_error_body(anthropic::native_error_type(info.http_status), refusal.message);
  } else {
    json::object error{{"message", refusal.message},
                       {"type", info.type},
                       {"param", refusal.param.empty() ? json::value(nullptr) : json::value(refusal.param)},
                       {"code", info.code}};
    if (refusal.quota) {
      const auto& q = *refusal.quota;
      const bool is_department = q.subject.scope == core::quota_scope::department;
      error["department"] = is_department ? json::value(q.subject.name) : json::value(nullptr);
      error["scope"] = core::quota_scope_name(q.subject.scope);
      error["subject"] = q.subject.name;
      error["quota_type"] = core::quota_type_name(q.type);
      error["period"] = q.window ? json::value(core::period_name(*q.window)) : json::value(nullptr);
      if (q.type == core::quota_type::cost) {
        error["limit"] = micro_to_usd(q.limit);
        error["current"] = micro_to_usd(q.current);
        error["unit"] = "usd";
      } else if (q.type == core::quota_type::tokens) {
        error["limit"] = q.limit;
        error["current"] = q.current;
        error["unit"] = "tokens";
      } else {
        error["limit"] = nullptr;
        error["current"] = nullptr;
      }
      error["retry_after_s"] = q.retry_after.count();
    }
    if (!refusal.provider.empty()) error["provider"] = refusal.provider;
    body = json::serialize(json::object{{"error", std::move(error)}});
  }
  std::string out;
  out.reserve(body.size() + 224);
  http_out::begin_head(out, info.http_status, keep_alive, request_id);
  http_out::add_header(out, "Content-Type", "application/json");
  if (refusal.retry_after.count() > 0) http_out::add_header(out, "Retry-After", std::to_string(refusal.retry_after.count()));
  http_out::end_head_with_length(out, body.size());
  out += body;
  return out;
}

}  // namespace tollgate::proxy
