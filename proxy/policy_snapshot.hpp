#pragma once

#include "core/caller.hpp"
#include "core/quota.hpp"

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tollgate::proxy {

// What a worker needs to know about keys, quotas, budgets and throttles, without asking the
// accounting thread. Immutable: the accounting thread builds a new one on every change and
// hands each worker its own copy (so no reference count is shared between cores), and a
// request reads whichever copy was current when it was admitted.
struct policy_snapshot {
  core::key_table keys;

  // Subjects with limits. Only those make a request visit the accounting thread; everyone
  // else is admitted without a cross-thread hop.
  struct subject_less {
    using is_transparent = void;
    using view = std::pair<core::quota_scope, std::string_view>;
    static view as_view(const core::quota_subject& s) { return {s.scope, s.name}; }
    bool operator()(const core::quota_subject& a, const core::quota_subject& b) const { return as_view(a) < as_view(b); }
    bool operator()(const core::quota_subject& a, const view& b) const { return as_view(a) < b; }
    bool operator()(const view& a, const core::quota_subject& b) const { return a < as_view(b); }
  };
  std::set<core::quota_subject, subject_less> limited_subjects;

  // Indexed like config.providers.providers.
  struct provider_flags {
    bool has_budget = false;          // spend is enforced against a budget (fail closed applies)
    bool has_request_quota = false;   // every request must be counted by the accounting thread
    bool skipped = false;             // throttled with enforcement on, or over its request quota
  };
  std::vector<provider_flags> providers;

  bool is_limited(core::quota_scope scope, std::string_view name) const {
    return !name.empty() && limited_subjects.find(subject_less::view{scope, name}) != limited_subjects.end();
  }
};

}  // namespace tollgate::proxy
