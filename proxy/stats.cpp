#include "proxy/stats.hpp"

#include "proxy/accounting.hpp"
#include "proxy/money.hpp"
#include "storage/ledger.hpp"

#include "adapters/openai.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>
#include <tuple>

namespace tollgate::proxy {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::string route_name(std::uint8_t route) {
  if (route == unknown_route) return "other";
  if (route == messages_route) return "/v1/messages";
  if (route == models_route) return "/v1/models";
  return std::string(adapters::openai::route_label(static_cast<adapters::openai::endpoint>(route)));
}

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric labelled(std::vector<ClientMetric::Label> labels) {
  ClientMetric metric;
  metric.label = std::move(labels);
  return metric;
}

ClientMetric scalar(MetricType type, double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric = labelled(std::move(labels));
  if (type == MetricType::Counter) metric.counter.value = value;
  else metric.gauge.value = value;
  return metric;
}

ClientMetric histogram(const histogram_data& data) {
  ClientMetric metric;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < latency_buckets_seconds.size(); ++i) {
    cumulative += data.counts[i];
    metric.histogram.bucket.push_back({cumulative, latency_buckets_seconds[i]});
  }
  cumulative += data.counts.back();
  metric.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  metric.histogram.sample_count = data.count;
  metric.histogram.sample_sum = data.sum;
  return metric;
}

void render_metering(std::vector<MetricFamily>& families, const metering_view& metering,
                     const std::map<std::pair<std::string, std::string>, std::int64_t>& cost,
                     const std::map<std::pair<std::string, std::string>, std::uint64_t>& unpriced) {
  auto& cost_family = families.emplace_back(family(
      "tollgate_cost_usd_total", "Spend in USD from provider-reported usage and the price table, by provider and model.",
      MetricType::Counter));
  for (const auto& [labels, micro] : cost)
    cost_family.metric.push_back(scalar(MetricType::Counter, micro_to_usd(micro),
                                        {{"provider", labels.first}, {"model", labels.second}}));
  auto& unpriced_family = families.emplace_back(family(
      "tollgate_unpriced_requests_total",
      "Requests to a paid model with no known price (recorded at cost 0; set TOLLGATE_PRICES).", MetricType::Counter));
  for (const auto& [labels, count] : unpriced)
    unpriced_family.metric.push_back(scalar(MetricType::Counter, static_cast<double>(count),
                                            {{"provider", labels.first}, {"model", labels.second}}));

  auto& spent = families.emplace_back(family(
      "tollgate_budget_spent_usd",
      "Spend in the current period, by scope (provider, department, user, key), name and period (day, month).",
      MetricType::Gauge));
  auto& limit = families.emplace_back(family(
      "tollgate_budget_limit_usd", "Configured cost limit of a provider budget or caller quota, same labels.",
      MetricType::Gauge));
  auto& projected = families.emplace_back(family(
      "tollgate_budget_projected_usd", "Projected month-end spend per provider (spent / elapsed fraction of the month).",
      MetricType::Gauge));
  auto& throttled = families.emplace_back(family(
      "tollgate_provider_throttled", "1 while a provider is throttled for its budget (skipped by routing when "
      "TOLLGATE_COST_THROTTLE_ENABLED), else 0.", MetricType::Gauge));
  auto& daily_requests = families.emplace_back(family(
      "tollgate_provider_requests_today", "Requests counted today against TOLLGATE_PROVIDER_DAILY_QUOTA.",
      MetricType::Gauge));
  auto& transitions = families.emplace_back(family(
      "tollgate_throttle_transitions_total", "Throttle state changes, by provider and new state.", MetricType::Counter));
  auto& rejections = families.emplace_back(family(
      "tollgate_quota_rejections_total", "Requests refused with 429 quota_exceeded, by quota type and period.",
      MetricType::Counter));
  auto& alerts = families.emplace_back(family(
      "tollgate_alerts_total", "Throttle alerts to TOLLGATE_ALERT_WEBHOOK_URL, by result (sent, failed, suppressed).",
      MetricType::Counter));
  if (const auto* a = metering.accounts) {
    for (const auto& line : a->spend) {
      prometheus::ClientMetric::Label scope{"scope", line.scope}, name{"name", line.name}, period{"period", line.period};
      spent.metric.push_back(scalar(MetricType::Gauge, micro_to_usd(line.spent), {scope, name, period}));
      if (line.limit) limit.metric.push_back(scalar(MetricType::Gauge, micro_to_usd(*line.limit), {scope, name, period}));
    }
    for (const auto& p : a->providers) {
      projected.metric.push_back(scalar(MetricType::Gauge, micro_to_usd(p.projected), {{"provider", p.provider}}));
      throttled.metric.push_back(scalar(MetricType::Gauge, p.throttled ? 1 : 0, {{"provider", p.provider}}));
      daily_requests.metric.push_back(
          scalar(MetricType::Gauge, static_cast<double>(p.requests_today), {{"provider", p.provider}}));
    }
    for (const auto& [labels, count] : a->transitions)
      transitions.metric.push_back(scalar(MetricType::Counter, static_cast<double>(count),
                                          {{"provider", labels.first}, {"to", labels.second}}));
    for (const auto& [labels, count] : a->quota_rejections)
      rejections.metric.push_back(scalar(MetricType::Counter, static_cast<double>(count),
                                         {{"quota_type", labels.first}, {"period", labels.second}}));
    alerts.metric.push_back(scalar(MetricType::Counter, static_cast<double>(a->alerts_sent), {{"result", "sent"}}));
    alerts.metric.push_back(scalar(MetricType::Counter, static_cast<double>(a->alerts_failed), {{"result", "failed"}}));
    alerts.metric.push_back(
        scalar(MetricType::Counter, static_cast<double>(a->alerts_suppressed), {{"result", "suppressed"}}));
    families.push_back(family("tollgate_budget_throttled_rejections_total",
                              "Requests refused with 429 budget_throttled: every candidate provider was throttled or "
                              "over its daily request quota.",
                              MetricType::Counter));
    families.back().metric.push_back(scalar(MetricType::Counter, static_cast<double>(a->provider_skips)));
  }
  if (const auto* l = metering.ledger) {
    auto single = [&](std::string name, std::string help, MetricType type, double value) {
      families.push_back(family(std::move(name), std::move(help), type));
      families.back().metric.push_back(scalar(type, value));
    };
    single("tollgate_ledger_queue_depth", "Ledger records waiting to be committed to SQLite.", MetricType::Gauge,
           static_cast<double>(l->queued));
    single("tollgate_ledger_written_total", "Ledger records committed to SQLite.", MetricType::Counter,
           static_cast<double>(l->written));
    single("tollgate_ledger_write_errors_total", "Failed ledger database opens and batch commits.", MetricType::Counter,
           static_cast<double>(l->write_errors));
    single("tollgate_ledger_dropped_total",
           "Ledger records lost: queue full, retry backlog full, or unwritable at shutdown.", MetricType::Counter,
           static_cast<double>(l->dropped));
    single("tollgate_ledger_writer_takeovers_total",
           "Times the ledger's idle-priority writer was starved of CPU with work waiting and its guard thread "
           "took over the writing for a while.",
           MetricType::Counter, static_cast<double>(l->writer_takeovers));
    single("tollgate_ledger_healthy", "1 while the ledger database is open and its last commit succeeded.",
           MetricType::Gauge, l->healthy ? 1 : 0);
  }
}

}  // namespace

void histogram_data::observe(double seconds) noexcept {
  auto bucket = std::lower_bound(latency_buckets_seconds.begin(), latency_buckets_seconds.end(), seconds);
  ++counts[static_cast<std::size_t>(bucket - latency_buckets_seconds.begin())];
  sum += seconds;
  ++count;
}

void histogram_data::merge(const histogram_data& other) noexcept {
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  sum += other.sum;
  count += other.count;
}

worker_stats::worker_stats() { model_names.emplace_back("other"); }

std::uint32_t worker_stats::model_id(std::string_view model) {
  // A request is usually for the model the one before it named, and is looked up twice (as
  // sent, and as the provider calls it): one compare instead of hashing the name each time.
  if (last_model_id_ != other_model && model_names[last_model_id_] == model) return last_model_id_;
  if (auto it = model_ids_.find(model); it != model_ids_.end()) return last_model_id_ = it->second;
  if (model_names.size() > max_models) return other_model;
  auto id = static_cast<std::uint32_t>(model_names.size());
  model_names.emplace_back(model);
  model_ids_.emplace(std::string(model), id);
  return last_model_id_ = id;
}

void worker_stats::count_request(std::uint8_t route, std::uint32_t model, int status) {
  ++requests[pack(route, model, status)];
}

void worker_stats::count_tokens(std::uint32_t model, std::uint64_t prompt, std::uint64_t completion,
                                std::uint64_t cached) {
  auto& counts = tokens[model];
  counts.prompt += prompt;
  counts.completion += completion;
  counts.cached += cached;
}

std::string render_metrics(const std::vector<worker_stats>& snapshots, const process_state& process,
                           const metering_view& metering) {
  // Workers number their models independently: merge by name.
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests;
  std::map<std::string, worker_stats::token_counts> tokens;
  std::array<std::uint64_t, error_kind_count> upstream_errors{};
  histogram_data duration;
  histogram_data ttfb;
  double active_requests = 0, active_streams = 0;
  std::uint64_t disconnects = 0, oversized = 0, interruptions = 0, opened = 0, reused = 0;
  std::map<std::pair<std::string, std::string>, std::int64_t> cost;         // (provider, model) -> micro-USD
  std::map<std::pair<std::string, std::string>, std::uint64_t> unpriced;    // (provider, model) -> requests
  auto provider_name = [&](std::uint64_t key) -> std::string {
    auto index = static_cast<std::size_t>(key >> 32);
    if (metering.provider_names && index < metering.provider_names->size()) return (*metering.provider_names)[index];
    return "unknown";
  };

  for (const auto& s : snapshots) {
    for (const auto& [key, count] : s.requests) {
      auto route = static_cast<std::uint8_t>(key >> 56);
      auto model = static_cast<std::uint32_t>((key >> 16) & 0xffffffffffULL);
      auto status = static_cast<int>(key & 0xffff);
      requests[{route_name(route), s.model_names.at(model), status}] += count;
    }
    for (const auto& [model, counts] : s.tokens) {
      auto& total = tokens[s.model_names.at(model)];
      total.prompt += counts.prompt;
      total.completion += counts.completion;
      total.cached += counts.cached;
    }
    for (const auto& [key, micro] : s.cost_micro_usd)
      cost[{provider_name(key), s.model_names.at(key & 0xffffffffULL)}] += micro;
    for (const auto& [key, count] : s.unpriced_requests)
      unpriced[{provider_name(key), s.model_names.at(key & 0xffffffffULL)}] += count;
    for (std::size_t i = 0; i < error_kind_count; ++i) upstream_errors[i] += s.upstream_errors[i];
    duration.merge(s.request_duration);
    ttfb.merge(s.upstream_ttfb);
    active_requests += static_cast<double>(s.active_requests);
    active_streams += static_cast<double>(s.active_streams);
    disconnects += s.client_disconnects;
    oversized += s.sse_oversized_events;
    interruptions += s.stream_interruptions;
    opened += s.upstream_connections_opened;
    reused += s.upstream_connections_reused;
  }

  std::vector<MetricFamily> families;

  auto& req = families.emplace_back(family("tollgate_requests_total",
                                           "Requests answered, by API route, requested model and HTTP status.",
                                           MetricType::Counter));
  for (const auto& [labels, count] : requests) {
    const auto& [route, model, status] = labels;
    req.metric.push_back(scalar(MetricType::Counter, static_cast<double>(count),
                                {{"route", route}, {"model", model}, {"status", std::to_string(status)}}));
  }

  families.push_back(family("tollgate_request_duration_seconds",
                            "Time from a request's arrival to the last byte of its response.", MetricType::Histogram));
  families.back().metric.push_back(histogram(duration));
  families.push_back(family("tollgate_upstream_ttfb_seconds",
                            "Time from sending a request upstream to the upstream's response header.",
                            MetricType::Histogram));
  families.back().metric.push_back(histogram(ttfb));

  auto& tok = families.emplace_back(
      family("tollgate_tokens_total", "Tokens metered, by model and kind (prompt, completion, cached_prompt).",
             MetricType::Counter));
  for (const auto& [model, counts] : tokens) {
    tok.metric.push_back(scalar(MetricType::Counter, static_cast<double>(counts.prompt), {{"model", model}, {"kind", "prompt"}}));
    tok.metric.push_back(scalar(MetricType::Counter, static_cast<double>(counts.completion), {{"model", model}, {"kind", "completion"}}));
    tok.metric.push_back(scalar(MetricType::Counter, static_cast<double>(counts.cached), {{"model", model}, {"kind", "cached_prompt"}}));
  }

  auto& errors = families.emplace_back(
      family("tollgate_upstream_errors_total", "Upstream failures, by reason.", MetricType::Counter));
  for (std::size_t i = 0; i < error_kind_count; ++i) {
    auto info = core::describe(static_cast<core::error_kind>(i));
    if (info.source != core::error_source::upstream) continue;
    errors.metric.push_back(scalar(MetricType::Counter, static_cast<double>(upstream_errors[i]),
                                   {{"reason", std::string(info.reason)}}));
  }

  auto single = [&](std::string name, std::string help, MetricType type, double value) {
    families.push_back(family(std::move(name), std::move(help), type));
    families.back().metric.push_back(scalar(type, value));
  };
  single("tollgate_active_requests", "Requests in flight.", MetricType::Gauge, active_requests);
  single("tollgate_active_streams", "Streamed (SSE) responses being relayed right now.", MetricType::Gauge, active_streams);
  single("tollgate_client_disconnects_total", "Clients that hung up before their response was complete.",
         MetricType::Counter, static_cast<double>(disconnects));
  single("tollgate_stream_interruptions_total",
         "Streams that ended with an injected error event because the upstream failed mid-stream.",
         MetricType::Counter, static_cast<double>(interruptions));
  single("tollgate_sse_oversized_events_total", "Server-sent events dropped for exceeding TOLLGATE_MAX_SSE_EVENT_BYTES.",
         MetricType::Counter, static_cast<double>(oversized));
  single("tollgate_upstream_connections_opened_total", "New upstream connections (TCP, plus TLS when https).",
         MetricType::Counter, static_cast<double>(opened));
  single("tollgate_upstream_connections_reused_total", "Requests sent on a pooled keep-alive upstream connection.",
         MetricType::Counter, static_cast<double>(reused));
  single("tollgate_workers", "Worker threads (event loops).", MetricType::Gauge, process.workers);
  single("tollgate_ready", "1 when accepting traffic, 0 while starting or draining.", MetricType::Gauge,
         process.ready && !process.draining ? 1 : 0);
  single("tollgate_draining", "1 after SIGTERM while in-flight requests finish.", MetricType::Gauge,
         process.draining ? 1 : 0);

  render_metering(families, metering, cost, unpriced);
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace tollgate::proxy
