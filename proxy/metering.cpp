#include "proxy/metering.hpp"

#include "proxy/accounting.hpp"
#include "storage/ledger.hpp"

namespace tollgate::proxy {
namespace {

// Into `out`, which the worker reuses: once warm, joining costs no allocation.
std::string_view join(const std::vector<std::string>& items, std::string& out) {
  out.clear();
  for (const auto& item : items) {
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

std::int64_t millis(steady_time from, steady_time to) {
  if (from == steady_time{} || to < from) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

void price(worker_context& worker, request_context& ctx) {
  if (!ctx.provider || !ctx.usage) return;
  auto model_price = worker.last_price.lookup(*worker.prices, ctx.provider->type, ctx.upstream_model);
  // Cost is labelled with the provider's own model name: an alias says nothing about price.
  const auto key = worker_stats::pack_cost_key(ctx.provider_index, worker.stats.model_id(ctx.upstream_model));
  if (!model_price) {
    ctx.unpriced = true;
    ++worker.stats.unpriced_requests[key];
    if (worker.unpriced.note(ctx.upstream_model)) worker.accounts->report_unpriced(ctx.provider->name, ctx.upstream_model);
    return;
  }
  core::token_usage usage{static_cast<std::int64_t>(ctx.usage->prompt_tokens),
                          static_cast<std::int64_t>(ctx.usage->completion_tokens),
                          static_cast<std::int64_t>(ctx.usage->cached_prompt_tokens)};
  ctx.cost_micro_usd = core::cost_micro_usd(*model_price, usage);
  if (ctx.cost_micro_usd > 0)
    worker.stats.cost_micro_usd[key] += ctx.cost_micro_usd;
}

}  // namespace

void meter(worker_context& worker, request_context& ctx) {
  price(worker, ctx);

  // Borrowed text: the ledger copies it into its ring without allocating for a typical row.
  core::ledger_record_view record;
  record.time_ms = ctx.started_unix_ms;
  record.request_id = ctx.id;
  record.key_fingerprint = ctx.caller.key_fingerprint;
  record.departments = join(ctx.caller.departments, worker.departments_buffer);
  record.user = ctx.caller.user;
  record.agent = ctx.caller.agent;
  if (ctx.provider) record.provider = ctx.provider->name;
  record.model = ctx.upstream_model.empty() ? ctx.model : ctx.upstream_model;
  record.route_reason = ctx.route_reason;
  record.http_status = ctx.status;
  if (ctx.usage) {
    record.prompt_tokens = static_cast<std::int64_t>(ctx.usage->prompt_tokens);
    record.completion_tokens = static_cast<std::int64_t>(ctx.usage->completion_tokens);
    record.cached_tokens = static_cast<std::int64_t>(ctx.usage->cached_prompt_tokens);
  }
  record.cost_micro_usd = ctx.cost_micro_usd;
  record.ttfb_ms = millis(ctx.started, ctx.upstream_first_byte);
  record.duration_ms = millis(ctx.started, ctx.finished);
  record.streamed = ctx.stream;
  record.stream_completed = ctx.stream_completed;
  record.usage_estimated = ctx.usage_estimated;
  worker.ledger->submit(worker.index, record);

  if (ctx.reservation != 0 || (ctx.provider && ctx.cost_micro_usd > 0)) {
    settlement s;
    s.reservation = ctx.reservation;
    s.provider_index = ctx.provider_index;
    s.has_provider = ctx.provider != nullptr;
    s.tokens = record.prompt_tokens + record.completion_tokens;
    s.cost = ctx.cost_micro_usd;
    s.time_s = ctx.started_unix_ms / 1000;
    worker.accounts->settle(worker.index, s);
  }
}

}  // namespace tollgate::proxy
