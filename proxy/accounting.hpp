#pragma once

#include "core/budget.hpp"
#include "core/calendar.hpp"
#include "core/config.hpp"
#include "core/pricing.hpp"
#include "core/quota.hpp"
#include "proxy/asio.hpp"
#include "proxy/policy_snapshot.hpp"
#include "storage/ledger.hpp"
#include "storage/policy_store.hpp"
#include "storage/spend.hpp"
#include "storage/spsc_ring.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tollgate::proxy {

class alert_webhook;

// One provider a request may go to: the resolved primary, then its fallbacks.
struct admission_candidate {
  std::uint32_t provider_index = 0;
  std::string model;  // the provider's name for it
};

struct admission_ticket {
  std::vector<core::quota_subject> subjects;  // only subjects that have limits
  std::vector<admission_candidate> candidates;
  std::int64_t prompt_tokens_estimate = 0;
  std::int64_t max_tokens = 0;  // from the request, or TOLLGATE_DEFAULT_MAX_TOKENS
};

struct admission_outcome {
  enum class verdict : std::uint8_t { admitted, quota_rejected, providers_skipped };
  verdict result = verdict::admitted;
  std::size_t candidate = 0;         // index into the ticket's candidates when admitted
  std::uint64_t reservation = 0;     // 0: nothing reserved
  std::optional<core::quota_rejection> rejection;
  // providers_skipped: why the last candidate was passed over, and until when.
  bool skipped_for_request_quota = false;
  std::chrono::seconds retry_after{};
};

// What a finished request hands back: the actual usage settles its reservation, its cost
// feeds its provider's budget. Plain data so it travels through a lock-free ring.
struct settlement {
  std::uint64_t reservation = 0;
  std::uint32_t provider_index = 0;
  bool has_provider = false;
  std::int64_t tokens = 0;  // prompt + completion
  core::micro_usd cost = 0;
  std::int64_t time_s = 0;  // unix seconds when the request started
};

// For /metrics: a copy of the accounting thread's counters.
struct accounting_metrics {
  struct spend_line {
    std::string scope;  // provider, department, user, key
    std::string name;
    std::string period;  // day, month
    core::micro_usd spent = 0;
    std::optional<core::micro_usd> limit;
  };
  std::vector<spend_line> spend;
  struct provider_line {
    std::string provider;
    core::micro_usd projected = 0;
    bool throttled = false;
    std::int64_t requests_today = 0;
  };
  std::vector<provider_line> providers;
  std::map<std::pair<std::string, std::string>, std::uint64_t> transitions;       // (provider, to)
  std::map<std::pair<std::string, std::string>, std::uint64_t> quota_rejections;  // (quota_type, period)
  std::uint64_t provider_skips = 0;
  std::uint64_t alerts_sent = 0;
  std::uint64_t alerts_failed = 0;
  std::uint64_t alerts_suppressed = 0;
};

// The owner of every piece of shared money state: caller quotas, provider budgets and their
// throttle, provider request quotas. One thread with its own event loop; workers reach it by
// message (admission), by lock-free ring (settlements), and read the policy_snapshot it
// publishes. Limits therefore hold exactly however many workers admit at once.
class accounting {
 public:
  using clock_fn = std::function<core::sys_seconds()>;
  // Receives each new snapshot; called on the accounting thread, must only post.
  using publish_fn = std::function<void(const policy_snapshot&)>;

  accounting(const core::config& config, storage::ledger& ledger, const core::price_table& prices,
             core::utc_offset_fn zone, clock_fn now);
  ~accounting();
  accounting(const accounting&) = delete;
  accounting& operator=(const accounting&) = delete;

  // Start-up, before any worker runs: env limits, then the admin changes stored in SQLite,
  // then the current day's and month's spend rebuilt from the ledger. Returns log lines.
  std::vector<std::string> load(const storage::policy_state& stored, const storage::spend_snapshot& spend);
  const policy_snapshot& snapshot() const noexcept { return snapshot_; }

  void start(publish_fn publish);
  void stop();  // settles what is queued, then ends the thread

  net::any_io_executor executor() { return io_.get_executor(); }

  // Worker side. admit() runs on the accounting thread (use call_on).
  admission_outcome admit(const admission_ticket& ticket);
  // Never blocks; a full ring falls back to a posted message.
  void settle(unsigned worker, const settlement& s);
  // A paid model had no price: logged once per process, on the accounting thread.
  void report_unpriced(std::string provider, std::string model);

  // For the ops thread's synchronous /metrics handler; nullopt when the thread is stuck.
  std::optional<accounting_metrics> metrics_snapshot(std::chrono::milliseconds timeout);

  // Accounting-thread side (call through call_on).
  accounting_metrics metrics();
  std::string throttle_json();
  std::string budgets_json();
  std::string quotas_json();
  std::string keys_json();
  // Admin changes: applied in memory, persisted by the ledger writer, published to workers.
  // Each returns "" or a user-facing error.
  std::string set_budget(const std::string& provider, core::provider_budget budget);
  std::string remove_budget(const std::string& provider);
  std::string set_quota(const core::quota_subject& subject, core::quota_limits limits);
  std::string remove_quota(const core::quota_subject& subject);
  std::string add_key(const core::virtual_key& key, std::int64_t created_ms);
  std::string remove_key(const std::string& fingerprint);
  // Spend of a subject that just got limits, from the ledger (ran on the writer thread).
  void restore_subject(const core::quota_subject& subject, const storage::spend_snapshot& spend);

  std::size_t provider_index(std::string_view name) const;  // npos when unknown

 private:
  struct provider_info {
    std::string name;
    core::provider_type type;
  };

  void drain_settlements();
  void apply(const settlement& s, core::sys_seconds now);
  net::awaitable<void> evaluate_loop();
  net::awaitable<void> drain_loop();
  void evaluate(core::sys_seconds now);
  void publish();
  void refresh_skips(core::sys_seconds now);
  void persist(std::function<void(storage::ledger&, std::function<void(storage::task_result)>)> op, std::string what);

  const core::config& config_;
  storage::ledger& ledger_;
  const core::price_table& prices_;
  core::utc_offset_fn zone_;
  clock_fn now_;
  std::vector<provider_info> providers_;

  core::quota_book quotas_;
  core::budget_tracker budgets_;
  core::provider_request_quota request_quotas_;
  std::map<core::quota_subject, core::quota_limits> limits_;  // what quotas_ was given
  std::map<std::string, core::provider_budget, std::less<>> budget_config_;
  std::vector<core::virtual_key> keys_;
  std::map<std::string, std::int64_t, std::less<>> key_created_ms_;
  core::unpriced_models unpriced_;

  std::vector<std::unique_ptr<storage::spsc_ring<settlement>>> rings_;
  policy_snapshot snapshot_;
  publish_fn publish_;

  std::map<std::pair<std::string, std::string>, std::uint64_t> transitions_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> quota_rejections_;
  std::uint64_t provider_skips_ = 0;
  std::unique_ptr<alert_webhook> webhook_;

  net::io_context io_{1};
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace tollgate::proxy
