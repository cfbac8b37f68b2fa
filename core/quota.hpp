#pragma once

#include "core/calendar.hpp"
#include "core/pricing.hpp"

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tollgate::core {

// Caller quotas (issue 4): per department, user or virtual key; daily and monthly; tokens and
// cost; a model allow-list.
//
// Threading contract: ONE quota_book for the whole process, owned by ONE thread. Workers do
// not touch it; they send admission / settle / release messages to the owner (e.g. post to
// its executor) and wait for the answer. Because check-and-reserve happens in one place with
// no interleaving, the sum of reservations and actuals can never pass a limit however many
// requests are in flight. Per-worker counter sets would each see only their share and let a
// global limit overshoot by up to (workers - 1) x limit, so they are not an option.
//
// No-overshoot holds as long as actual usage <= the reservation (the worst case the caller
// estimated). An actual above it is still charged in full (accounting must be true), which
// then refuses later admissions; the overshoot is bounded by the estimation error.

enum class quota_scope : std::uint8_t { department, user, key };
enum class quota_type : std::uint8_t { tokens, cost, model };
std::string_view quota_scope_name(quota_scope s) noexcept;
std::string_view quota_type_name(quota_type t) noexcept;
std::string_view period_name(period p) noexcept;

struct quota_subject {
  quota_scope scope;
  std::string name;
  friend auto operator<=>(const quota_subject&, const quota_subject&) = default;
};

struct quota_limits {
  // Default member initializers let callers write {.daily_tokens = 1000} warning-free.
  std::optional<std::int64_t> daily_tokens = std::nullopt;
  std::optional<std::int64_t> monthly_tokens = std::nullopt;
  std::optional<micro_usd> daily_cost = std::nullopt;    // micro-USD
  std::optional<micro_usd> monthly_cost = std::nullopt;  // micro-USD
  // Empty: any model. An entry ending in '*' allows every model starting with the rest.
  std::vector<std::string> allowed_models = {};
};

// The worst case a request can cost: the estimated prompt plus max_tokens (or a configured
// default) of completion, priced at the model's rates.
struct quota_amount {
  std::int64_t tokens = 0;
  micro_usd cost = 0;
};
// An unpriced model reserves 0 cost (its spend cannot be known; it is counted as unpriced
// elsewhere) but its tokens are still reserved.
quota_amount worst_case(std::int64_t estimated_prompt_tokens, std::int64_t max_tokens,
                        const std::optional<model_price>& price) noexcept;

struct admission_request {
  // Every scope the request belongs to; a request may name several departments. Duplicates
  // are counted once. Subjects without configured limits are not tracked.
  std::vector<quota_subject> subjects;
  std::string model;
  quota_amount worst;
};

struct quota_rejection {
  quota_subject subject;
  quota_type type;
  std::optional<period> window;       // nullopt for quota_type::model
  std::int64_t limit = 0;             // tokens, or micro-USD for cost
  std::int64_t current = 0;           // used + reserved in the window before this request
  std::chrono::seconds retry_after{};  // until the window resets; 0 for model (retrying won't help)
};

struct quota_reservation {
  std::uint64_t id = 0;
};

// Counters of one subject, for metrics (tollgate_budget_spent_usd) and the admin API.
struct quota_usage {
  quota_amount day_used;
  quota_amount day_reserved;
  quota_amount month_used;
  quota_amount month_reserved;
};

class quota_book {
 public:
  explicit quota_book(utc_offset_fn zone);

  // Changing limits keeps the counters (and in-flight reservations) of the subject.
  void set_limits(const quota_subject& subject, quota_limits limits);
  void remove_limits(const quota_subject& subject);

  // Checks every limit of every subject at `now`; when all fit, reserves `worst` against each
  // and returns a handle. Otherwise nothing is reserved and the strictest rejection is
  // returned: a model refusal first (no wait helps), then the one that lasts longest (largest
  // retry_after), ties going to the first subject listed.
  std::variant<quota_reservation, quota_rejection> admit(const admission_request& request, sys_seconds now);

  // Replaces the reservation with the actual usage. Actuals are charged to the windows the
  // request was admitted in; when such a window has since rolled over they belong to the
  // closed period (as the ledger row, stamped at admission, does) and are not added to the
  // new one. Returns false for an unknown or already settled handle (a double settle is a
  // no-op, so a retry path cannot double-charge).
  bool settle(quota_reservation reservation, quota_amount actual, sys_seconds now);
  // The request failed before any usage: drops the reservation.
  bool release(quota_reservation reservation, sys_seconds now) { return settle(reservation, {}, now); }

  // Restart: the current day's and month's spend rebuilt from the ledger.
  void restore(const quota_subject& subject, quota_amount day_used, quota_amount month_used, sys_seconds now);

  std::optional<quota_usage> usage(const quota_subject& subject, sys_seconds now);
  std::size_t in_flight() const noexcept { return reservations_.size(); }

 private:
  struct window {
    sys_seconds start{};
    quota_amount used;
    quota_amount reserved;
  };
  struct subject_state {
    quota_limits limits;
    window day;
    window month;
  };
  struct reservation_record {
    std::vector<quota_subject> subjects;
    sys_seconds day_start;
    sys_seconds month_start;
    quota_amount amount;
  };
  struct now_bounds {
    period_bounds day;
    period_bounds month;
  };
  now_bounds bounds_at(sys_seconds now) const;
  static void roll(subject_state& s, const now_bounds& b);

  utc_offset_fn zone_;
  std::map<quota_subject, subject_state> subjects_;
  std::map<std::uint64_t, reservation_record> reservations_;
  std::uint64_t next_id_ = 1;
};

}  // namespace tollgate::core
