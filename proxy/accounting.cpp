#include "proxy/accounting.hpp"

#include "core/json_string.hpp"
#include "core/this_thread.hpp"
#include "proxy/access_log.hpp"
#include "proxy/alert_webhook.hpp"
#include "proxy/money.hpp"

#include <boost/json.hpp>

#include <future>
#include <unistd.h>

namespace tollgate::proxy {
namespace {

namespace json = boost::json;
using core::quota_scope;

// Settlements wait in their rings at most this long; admissions drain them first anyway, so
// this only bounds how stale /metrics and the budget evaluator can be.
constexpr std::chrono::milliseconds drain_interval{20};
constexpr std::size_t ring_capacity = 4096;

std::int64_t unix_ms(core::sys_seconds t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

bool has_any_limit(const core::quota_limits& l) {
  return l.daily_tokens || l.monthly_tokens || l.daily_cost || l.monthly_cost || !l.allowed_models.empty();
}

storage::stored_quota to_stored(const core::quota_subject& subject, const core::quota_limits& limits) {
  storage::stored_quota q;
  q.scope = std::string(core::quota_scope_name(subject.scope));
  q.name = subject.name;
  q.daily_tokens = limits.daily_tokens;
  q.monthly_tokens = limits.monthly_tokens;
  q.daily_micro_usd = limits.daily_cost;
  q.monthly_micro_usd = limits.monthly_cost;
  q.allowed_models = limits.allowed_models;
  return q;
}

core::quota_limits from_stored(const storage::stored_quota& q) {
  return core::quota_limits{q.daily_tokens, q.monthly_tokens, q.daily_micro_usd, q.monthly_micro_usd, q.allowed_models};
}

storage::stored_key to_stored(const core::virtual_key& key, std::int64_t created_ms) {
  return storage::stored_key{key.fingerprint, key.hash_hex, key.masked, key.name, key.departments,
                             key.user,        key.agent,    created_ms};
}

core::virtual_key from_stored(const storage::stored_key& k) {
  core::virtual_key key;
  key.hash_hex = k.key_hash;
  key.fingerprint = k.fingerprint;
  key.masked = k.masked;
  key.name = k.name;
  key.departments = k.departments;
  key.user = k.user;
  key.agent = k.agent;
  return key;
}

std::optional<quota_scope> scope_from_name(std::string_view name) {
  if (name == "department") return quota_scope::department;
  if (name == "user") return quota_scope::user;
  if (name == "key") return quota_scope::key;
  return std::nullopt;
}

json::value optional_usd(const std::optional<core::micro_usd>& v) {
  return v ? json::value(micro_to_usd(*v)) : json::value(nullptr);
}
json::value optional_count(const std::optional<std::int64_t>& v) { return v ? json::value(*v) : json::value(nullptr); }

}  // namespace

accounting::accounting(const core::config& config, storage::ledger& ledger, const core::price_table& prices,
                       core::utc_offset_fn zone, clock_fn now)
    : config_(config),
      ledger_(ledger),
      prices_(prices),
      zone_(zone),
      now_(std::move(now)),
      quotas_(zone),
      budgets_(core::throttle_settings{config.throttle_ratio_bp, config.unthrottle_ratio_bp, config.cost_throttle_enabled},
               zone),
      request_quotas_(zone) {
  for (const auto& p : config.providers.providers) providers_.push_back({p.name, p.type});
  for (unsigned i = 0; i < config.workers; ++i)
    rings_.push_back(std::make_unique<storage::spsc_ring<settlement>>(ring_capacity));
  if (config.alert_webhook) webhook_ = std::make_unique<alert_webhook>(io_.get_executor(), *config.alert_webhook);
}

accounting::~accounting() { stop(); }

std::size_t accounting::provider_index(std::string_view name) const {
  for (std::size_t i = 0; i < providers_.size(); ++i)
    if (providers_[i].name == name) return i;
  return std::string::npos;
}

std::vector<std::string> accounting::load(const storage::policy_state& stored, const storage::spend_snapshot& spend) {
  std::vector<std::string> notes;
  for (const auto& rule : config_.quotas) limits_[rule.subject] = rule.limits;
  for (const auto& rule : config_.budgets) budget_config_[rule.provider] = rule.budget;
  keys_ = config_.keys;

  // Admin changes stored in SQLite override the environment for the same provider, subject
  // or key: the environment is the baseline a fresh pod starts from.
  for (const auto& b : stored.budgets) {
    if (provider_index(b.provider) == std::string::npos) {
      notes.push_back("stored budget for unknown provider \"" + b.provider + "\" ignored");
      continue;
    }
    budget_config_[b.provider] = core::provider_budget{b.monthly_micro_usd, b.daily_micro_usd};
  }
  for (const auto& q : stored.quotas) {
    auto scope = scope_from_name(q.scope);
    if (!scope) continue;
    limits_[core::quota_subject{*scope, q.name}] = from_stored(q);
  }
  for (const auto& k : stored.keys) {
    std::erase_if(keys_, [&](const core::virtual_key& e) { return e.fingerprint == k.fingerprint; });
    keys_.push_back(from_stored(k));
    key_created_ms_[k.fingerprint] = k.created_ms;
  }

  for (const auto& [subject, limits] : limits_) quotas_.set_limits(subject, limits);
  for (const auto& [provider, budget] : budget_config_) budgets_.set_budget(provider, budget);
  for (const auto& limit : config_.provider_daily_quota) request_quotas_.set_limit(limit.provider, limit.per_day);

  const auto now = now_();
  for (const auto& [provider, month] : spend.month.by_provider) {
    auto day = spend.day.by_provider.find(provider);
    core::micro_usd day_spent = day == spend.day.by_provider.end() ? 0 : day->second.micro_usd;
    budgets_.restore_spend(provider, month.micro_usd, day_spent, now);
  }
  for (const auto& [provider, day] : spend.day.by_provider) request_quotas_.restore(provider, day.requests, now);
  for (const auto& [subject, limits] : limits_) restore_subject(subject, spend);

  evaluate(now);
  publish();
  return notes;
}

void accounting::restore_subject(const core::quota_subject& subject, const storage::spend_snapshot& spend) {
  auto pick = [&](const storage::spend_breakdown& b) -> const std::map<std::string, storage::spend_totals, std::less<>>& {
    switch (subject.scope) {
      case quota_scope::department: return b.by_department;
      case quota_scope::user: return b.by_user;
      case quota_scope::key: break;
    }
    return b.by_key;
  };
  auto amount = [&](const storage::spend_breakdown& b) {
    const auto& m = pick(b);
    auto it = m.find(subject.name);
    return it == m.end() ? core::quota_amount{} : core::quota_amount{it->second.tokens, it->second.micro_usd};
  };
  quotas_.restore(subject, amount(spend.day), amount(spend.month), now_());
}

void accounting::start(publish_fn publish) {
  publish_ = std::move(publish);
  net::co_spawn(io_, drain_loop(), net::detached);
  net::co_spawn(io_, evaluate_loop(), net::detached);
  thread_ = std::thread([this] {
    core::name_this_thread("tg-accounts");
    io_.run();
  });
}

void accounting::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    net::post(io_, [this] {
      drain_settlements();
      io_.stop();
    });
    thread_.join();
  } else {
    drain_settlements();
  }
}

// ---- worker side -------------------------------------------------------------------------

admission_outcome accounting::admit(const admission_ticket& ticket) {
  drain_settlements();
  const auto now = now_();
  admission_outcome out;
  std::optional<std::size_t> chosen;
  for (std::size_t i = 0; i < ticket.candidates.size(); ++i) {
    const auto& name = providers_[ticket.candidates[i].provider_index].name;
    if (budgets_.should_skip(name)) {
      out.skipped_for_request_quota = false;
      out.retry_after = std::chrono::seconds(config_.throttle_eval_interval);
      continue;
    }
    if (request_quotas_.over_quota(name, now)) {
      out.skipped_for_request_quota = true;
      out.retry_after = request_quotas_.retry_after(now);
      continue;
    }
    chosen = i;
    break;
  }
  if (!chosen) {
    ++provider_skips_;
    out.result = admission_outcome::verdict::providers_skipped;
    return out;
  }
  const auto& candidate = ticket.candidates[*chosen];
  const auto& provider = providers_[candidate.provider_index];
  out.candidate = *chosen;
  if (!ticket.subjects.empty()) {
    auto worst = core::worst_case(ticket.prompt_tokens_estimate, ticket.max_tokens,
                                  prices_.lookup(provider.type, candidate.model));
    auto verdict = quotas_.admit(core::admission_request{ticket.subjects, candidate.model, worst}, now);
    if (auto* rejection = std::get_if<core::quota_rejection>(&verdict)) {
      auto period = rejection->window ? std::string(core::period_name(*rejection->window)) : std::string("none");
      ++quota_rejections_[{std::string(core::quota_type_name(rejection->type)), period}];
      out.result = admission_outcome::verdict::quota_rejected;
      out.rejection = *rejection;
      return out;
    }
    out.reservation = std::get<core::quota_reservation>(verdict).id;
  }
  // Checked above, so this only counts.
  request_quotas_.try_acquire(provider.name, now);
  return out;
}

void accounting::settle(unsigned worker, const settlement& s) {
  if (worker < rings_.size() && rings_[worker]->try_push(s) != 0) return;
  net::post(io_, [this, s] { apply(s, now_()); });
}

void accounting::report_unpriced(std::string provider, std::string model) {
  net::post(io_, [this, provider = std::move(provider), model = std::move(model)] {
    if (!unpriced_.note(provider + "/" + model)) return;
    std::string line = "{\"event\":\"unpriced_model\",\"provider\":";
    core::append_json_string(line, provider);
    line += ",\"model\":";
    core::append_json_string(line, model);
    line += ",\"message\":\"no price known: its requests are recorded with cost 0 and counted in "
            "tollgate_unpriced_requests_total; set TOLLGATE_PRICES or TOLLGATE_PRICES_FILE\"}";
    write_event_line(STDOUT_FILENO, line);
  });
}

void accounting::drain_settlements() {
  const auto now = now_();
  for (auto& ring : rings_) ring->drain([&](const settlement& s) { apply(s, now); });
}

void accounting::apply(const settlement& s, core::sys_seconds now) {
  if (s.reservation != 0) quotas_.settle(core::quota_reservation{s.reservation}, {s.tokens, s.cost}, now);
  if (s.has_provider && s.cost > 0 && s.provider_index < providers_.size())
    budgets_.record_spend(providers_[s.provider_index].name, s.cost, core::sys_seconds(std::chrono::seconds(s.time_s)));
}

net::awaitable<void> accounting::drain_loop() {
  net::steady_timer timer(io_);
  for (;;) {
    timer.expires_after(drain_interval);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    if (ec) co_return;
    drain_settlements();
  }
}

net::awaitable<void> accounting::evaluate_loop() {
  net::steady_timer timer(io_);
  for (;;) {
    timer.expires_after(config_.throttle_eval_interval);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    if (ec) co_return;
    drain_settlements();
    evaluate(now_());
  }
}

void accounting::evaluate(core::sys_seconds now) {
  for (const auto& t : budgets_.evaluate(now)) {
    const auto to = std::string(core::throttle_state_name(t.to));
    const auto from = std::string(core::throttle_state_name(t.from));
    const auto reason = std::string(core::throttle_reason_name(t.reason));
    ++transitions_[{t.provider, to}];

    json::object fields;
    fields["provider"] = t.provider;
    fields["from"] = from;
    fields["to"] = to;
    fields["reason"] = reason;
    fields["spent_usd"] = micro_to_usd(t.spent);
    fields["budget_usd"] = micro_to_usd(t.budget);
    fields["projected_usd"] = micro_to_usd(t.projected);
    fields["ratio"] = static_cast<double>(t.ratio_bp) / 10'000.0;
    fields["enforced"] = config_.cost_throttle_enabled;
    fields["time_ms"] = unix_ms(t.at);

    json::object line{{"event", "throttle_transition"}};
    for (const auto& [k, v] : fields) line[k] = v;
    write_event_line(STDOUT_FILENO, json::serialize(line));

    storage::audit_row row{unix_ms(t.at), t.provider, from, to, t.spent, t.budget, t.projected, reason};
    persist([row](storage::ledger& l, auto done) { l.append_audit(row, std::move(done)); },
            "throttle audit row for " + t.provider);
    if (webhook_) webhook_->send(t.provider + "/" + to, json::serialize(fields), std::chrono::steady_clock::now());
  }
  refresh_skips(now);
}

void accounting::refresh_skips(core::sys_seconds) {
  bool changed = false;
  for (std::size_t i = 0; i < providers_.size() && i < snapshot_.providers.size(); ++i) {
    bool skip = budgets_.should_skip(providers_[i].name);
    if (snapshot_.providers[i].skipped != skip) changed = true;
  }
  if (changed) publish();
}

void accounting::publish() {
  policy_snapshot next;
  next.keys = core::key_table(keys_);
  for (const auto& [subject, limits] : limits_)
    if (has_any_limit(limits)) next.limited_subjects.insert(subject);
  next.providers.resize(providers_.size());
  for (std::size_t i = 0; i < providers_.size(); ++i) {
    const auto& name = providers_[i].name;
    next.providers[i].has_budget = budget_config_.contains(name);
    next.providers[i].skipped = budgets_.should_skip(name);
  }
  for (const auto& limit : config_.provider_daily_quota)
    if (auto i = provider_index(limit.provider); i != std::string::npos) next.providers[i].has_request_quota = true;
  snapshot_ = std::move(next);
  if (publish_) publish_(snapshot_);
}

void accounting::persist(std::function<void(storage::ledger&, std::function<void(storage::task_result)>)> op,
                         std::string what) {
  op(ledger_, [what = std::move(what)](storage::task_result result) {
    if (result.ok) return;
    std::string line = "{\"event\":\"ledger_write_failed\",\"what\":";
    core::append_json_string(line, what);
    line += ",\"error\":";
    core::append_json_string(line, result.error);
    line += "}";
    write_event_line(STDOUT_FILENO, line);
  });
}

// ---- reads for /metrics and /admin -------------------------------------------------------

std::optional<accounting_metrics> accounting::metrics_snapshot(std::chrono::milliseconds timeout) {
  if (!thread_.joinable() || stopped_) return metrics();
  auto promise = std::make_shared<std::promise<accounting_metrics>>();
  auto future = promise->get_future();
  net::post(io_, [this, promise] { promise->set_value(metrics()); });
  if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return future.get();
}

accounting_metrics accounting::metrics() {
  drain_settlements();
  const auto now = now_();
  accounting_metrics m;
  for (const auto& p : providers_) {
    auto status = budgets_.status(p.name);
    auto budget = budget_config_.find(p.name);
    const bool budgeted = budget != budget_config_.end();
    if (status || budgeted) {
      core::micro_usd month = status ? status->month_spent : 0;
      core::micro_usd day = status ? status->day_spent : 0;
      m.spend.push_back({"provider", p.name, "month", month,
                         budgeted ? std::optional<core::micro_usd>(budget->second.monthly) : std::nullopt});
      m.spend.push_back({"provider", p.name, "day", day, budgeted ? budget->second.daily : std::nullopt});
    }
    m.providers.push_back({p.name, status ? status->projected : 0, budgets_.is_throttled(p.name),
                           request_quotas_.used_today(p.name, now)});
  }
  for (const auto& [subject, limits] : limits_) {
    auto usage = quotas_.usage(subject, now);
    if (!usage) continue;
    auto scope = std::string(core::quota_scope_name(subject.scope));
    m.spend.push_back({scope, subject.name, "day", usage->day_used.cost, limits.daily_cost});
    m.spend.push_back({scope, subject.name, "month", usage->month_used.cost, limits.monthly_cost});
  }
  m.transitions = transitions_;
  m.quota_rejections = quota_rejections_;
  m.provider_skips = provider_skips_;
  if (webhook_) {
    m.alerts_sent = webhook_->sent();
    m.alerts_failed = webhook_->failed();
    m.alerts_suppressed = webhook_->suppressed();
  }
  return m;
}

std::string accounting::throttle_json() {
  drain_settlements();
  const auto now = now_();
  json::array providers;
  for (const auto& p : providers_) {
    json::object o{{"provider", p.name}};
    auto status = budgets_.status(p.name);
    o["state"] = budgets_.is_throttled(p.name) ? "throttled" : "normal";
    o["enforced"] = config_.cost_throttle_enabled;
    o["skipped_by_routing"] = budgets_.should_skip(p.name);
    o["month_spent_usd"] = micro_to_usd(status ? status->month_spent : 0);
    o["day_spent_usd"] = micro_to_usd(status ? status->day_spent : 0);
    o["projected_usd"] = micro_to_usd(status ? status->projected : 0);
    o["ratio"] = status ? static_cast<double>(status->ratio_bp) / 10'000.0 : 0.0;
    auto budget = budget_config_.find(p.name);
    o["monthly_budget_usd"] = budget == budget_config_.end() ? json::value(nullptr) : json::value(micro_to_usd(budget->second.monthly));
    o["daily_budget_usd"] = budget == budget_config_.end() ? json::value(nullptr) : optional_usd(budget->second.daily);
    o["requests_today"] = request_quotas_.used_today(p.name, now);
    providers.push_back(std::move(o));
  }
  json::object root{{"throttle_ratio", static_cast<double>(config_.throttle_ratio_bp) / 10'000.0},
                    {"unthrottle_ratio", static_cast<double>(config_.unthrottle_ratio_bp) / 10'000.0},
                    {"enforced", config_.cost_throttle_enabled},
                    {"providers", std::move(providers)}};
  return json::serialize(root);
}

std::string accounting::budgets_json() {
  json::array out;
  for (const auto& [provider, budget] : budget_config_) {
    out.push_back(json::object{{"provider", provider},
                               {"monthly_usd", micro_to_usd(budget.monthly)},
                               {"daily_usd", optional_usd(budget.daily)}});
  }
  return json::serialize(json::object{{"budgets", std::move(out)}});
}

std::string accounting::quotas_json() {
  drain_settlements();
  const auto now = now_();
  json::array out;
  for (const auto& [subject, limits] : limits_) {
    json::object o{{"scope", core::quota_scope_name(subject.scope)}, {"name", subject.name}};
    o["daily_tokens"] = optional_count(limits.daily_tokens);
    o["monthly_tokens"] = optional_count(limits.monthly_tokens);
    o["daily_usd"] = optional_usd(limits.daily_cost);
    o["monthly_usd"] = optional_usd(limits.monthly_cost);
    json::array models;
    for (const auto& m : limits.allowed_models) models.push_back(json::string(m));
    o["models"] = std::move(models);
    if (auto usage = quotas_.usage(subject, now)) {
      o["usage"] = json::object{{"day_tokens", usage->day_used.tokens},
                                {"day_usd", micro_to_usd(usage->day_used.cost)},
                                {"month_tokens", usage->month_used.tokens},
                                {"month_usd", micro_to_usd(usage->month_used.cost)},
                                {"reserved_day_tokens", usage->day_reserved.tokens},
                                {"reserved_day_usd", micro_to_usd(usage->day_reserved.cost)}};
    }
    out.push_back(std::move(o));
  }
  return json::serialize(json::object{{"quotas", std::move(out)}});
}

std::string accounting::keys_json() {
  json::array out;
  for (const auto& k : keys_) {
    json::array departments;
    for (const auto& d : k.departments) departments.push_back(json::string(d));
    json::object o{{"fingerprint", k.fingerprint}, {"masked", k.masked},  {"name", k.name},
                   {"departments", std::move(departments)}, {"user", k.user}, {"agent", k.agent}};
    auto created = key_created_ms_.find(k.fingerprint);
    o["created_ms"] = created == key_created_ms_.end() ? json::value(nullptr) : json::value(created->second);
    o["source"] = created == key_created_ms_.end() ? "environment" : "admin";
    out.push_back(std::move(o));
  }
  return json::serialize(json::object{{"keys", std::move(out)}});
}

// ---- admin changes -----------------------------------------------------------------------

std::string accounting::set_budget(const std::string& provider, core::provider_budget budget) {
  if (provider_index(provider) == std::string::npos) return "unknown provider \"" + provider + "\"";
  if (budget.monthly <= 0) return "monthly_usd must be greater than 0";
  budget_config_[provider] = budget;
  budgets_.set_budget(provider, budget);
  storage::stored_budget row{provider, budget.monthly, budget.daily};
  persist([row](storage::ledger& l, auto done) { l.save_budget(row, std::move(done)); }, "budget of " + provider);
  drain_settlements();
  evaluate(now_());
  publish();
  return {};
}

std::string accounting::remove_budget(const std::string& provider) {
  if (!budget_config_.contains(provider)) return "no budget for provider \"" + provider + "\"";
  budget_config_.erase(provider);
  budgets_.remove_budget(provider);
  persist([provider](storage::ledger& l, auto done) { l.delete_budget(provider, std::move(done)); },
          "budget of " + provider);
  evaluate(now_());
  publish();
  return {};
}

std::string accounting::set_quota(const core::quota_subject& subject, core::quota_limits limits) {
  if (!has_any_limit(limits)) return "a quota needs at least one limit";
  limits_[subject] = limits;
  quotas_.set_limits(subject, limits);
  auto row = to_stored(subject, limits);
  persist([row](storage::ledger& l, auto done) { l.save_quota(row, std::move(done)); },
          "quota of " + subject.name);
  publish();
  return {};
}

std::string accounting::remove_quota(const core::quota_subject& subject) {
  if (!limits_.contains(subject)) return "no quota for " + std::string(core::quota_scope_name(subject.scope)) + " \"" + subject.name + "\"";
  limits_.erase(subject);
  quotas_.remove_limits(subject);
  auto scope = std::string(core::quota_scope_name(subject.scope));
  persist([scope, name = subject.name](storage::ledger& l, auto done) { l.delete_quota(scope, name, std::move(done)); },
          "quota of " + subject.name);
  publish();
  return {};
}

std::string accounting::add_key(const core::virtual_key& key, std::int64_t created_ms) {
  for (const auto& k : keys_)
    if (k.fingerprint == key.fingerprint || k.hash_hex == key.hash_hex) return "this key already exists";
  keys_.push_back(key);
  key_created_ms_[key.fingerprint] = created_ms;
  auto row = to_stored(key, created_ms);
  persist([row](storage::ledger& l, auto done) { l.save_key(row, std::move(done)); }, "key " + key.fingerprint);
  publish();
  return {};
}

std::string accounting::remove_key(const std::string& fingerprint) {
  auto removed = std::erase_if(keys_, [&](const core::virtual_key& k) { return k.fingerprint == fingerprint; });
  if (removed == 0) return "no key with fingerprint \"" + fingerprint + "\"";
  key_created_ms_.erase(fingerprint);
  persist([fingerprint](storage::ledger& l, auto done) { l.delete_key(fingerprint, std::move(done)); },
          "key " + fingerprint);
  publish();
  return {};
}

}  // namespace tollgate::proxy
