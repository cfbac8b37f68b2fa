#include "core/policy.hpp"
#include "core/text.hpp"

#include "core/caller.hpp"

#include <algorithm>
#include <charconv>

namespace tollgate::core {
namespace {

// Beyond any real limit, and small enough that sums of a month's usage cannot overflow.
constexpr std::int64_t max_count = 1'000'000'000'000'000;  // 1e15
constexpr std::int64_t max_ratio_bp = 1'000'000;            // 100.0
constexpr std::chrono::minutes max_offset{14 * 60};         // UTC+14 (Kiribati) is the widest in use

using text::trim;

// Trimmed, empty items dropped: a trailing separator is not an error.
std::vector<std::string_view> split(std::string_view text, char separator) {
  return text::split(text, separator, text::empty_items::drop);
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<std::int64_t> parse_count(std::string_view text) {
  if (!all_digits(text)) return std::nullopt;
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 1 || value > max_count) return std::nullopt;
  return value;
}

std::optional<micro_usd> parse_positive_usd(std::string_view text) {
  auto value = parse_usd_to_micro(text);
  if (!value || *value <= 0) return std::nullopt;
  return value;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::optional<quota_scope> parse_scope(std::string_view text) {
  if (text == "department") return quota_scope::department;
  if (text == "user") return quota_scope::user;
  if (text == "key") return quota_scope::key;
  return std::nullopt;
}

std::string check_subject_name(quota_scope scope, std::string_view name) {
  switch (scope) {
    case quota_scope::department:
      if (!valid_department(name))
        return "department " + quoted(name) + " must be 1 to 128 characters of letters, digits and . _ : @ / -";
      return {};
    case quota_scope::user:
      if (name.empty() || name.size() > max_user_length ||
          !std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c <= 0x7e; }))
        return "user " + quoted(name) + " must be 1 to 256 printable ASCII characters";
      return {};
    case quota_scope::key: {
      // A fingerprint, never a secret: TOLLGATE_QUOTAS is printed by --print-config.
      auto hex = name.substr(std::min<std::size_t>(4, name.size()));
      bool lower_hex = std::all_of(hex.begin(), hex.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      });
      if (!name.starts_with("tgk_") || hex.size() != 12 || !lower_hex)
        return "key " + quoted(name) + " must be a key fingerprint tgk_ + 12 lower-case hex digits (see --print-config)";
      return {};
    }
  }
  return "unknown scope";
}

std::string apply_limit(std::string_view limit, std::string_view value, quota_limits& limits) {
  auto count = [&](std::optional<std::int64_t>& field) -> std::string {
    auto parsed = parse_count(value);
    if (!parsed) return std::string(limit) + " must be a whole number from 1 to 10^15, got " + quoted(value);
    field = parsed;
    return {};
  };
  auto usd = [&](std::optional<micro_usd>& field) -> std::string {
    auto parsed = parse_positive_usd(value);
    if (!parsed)
      return std::string(limit) + " must be a positive USD amount with at most 6 decimals, got " + quoted(value);
    field = parsed;
    return {};
  };
  if (limit == "daily_tokens") return count(limits.daily_tokens);
  if (limit == "monthly_tokens") return count(limits.monthly_tokens);
  if (limit == "daily_usd") return usd(limits.daily_cost);
  if (limit == "monthly_usd") return usd(limits.monthly_cost);
  if (limit == "models") {
    auto models = split(value, '|');
    if (models.empty()) return "models lists no model";
    for (auto model : models) {
      auto star = model.find('*');
      if (star != std::string_view::npos && star + 1 != model.size())
        return "models: '*' may only end an entry (a prefix), got " + quoted(model);
      limits.allowed_models.emplace_back(model);
    }
    return {};
  }
  return "unknown limit " + quoted(limit) + " (expected daily_tokens, monthly_tokens, daily_usd, monthly_usd or models)";
}

std::string parse_quota_entry(std::string_view entry, quota_rule& rule) {
  const std::string shape = "expected scope:name:limit=value,...";
  auto colon = entry.find(':');
  if (colon == std::string_view::npos) return shape;
  auto scope_text = trim(entry.substr(0, colon));
  auto scope = parse_scope(scope_text);
  if (!scope) return "unknown scope " + quoted(scope_text) + " (expected department, user or key)";
  auto rest = entry.substr(colon + 1);
  // Names (departments such as "team:eng") and model ids ("llama3.2:1b") may both contain ':',
  // but no name contains '=': the name ends at the last ':' before the first limit's '='.
  auto equals = rest.find('=');
  if (equals == std::string_view::npos)
    return "has no limit (daily_tokens, monthly_tokens, daily_usd, monthly_usd or models)";
  auto split_at = rest.rfind(':', equals);
  if (split_at == std::string_view::npos) return shape;
  auto name = trim(rest.substr(0, split_at));
  if (auto err = check_subject_name(*scope, name); !err.empty()) return err;
  rule.subject = {*scope, std::string(name)};

  std::vector<std::string_view> seen;
  for (auto item : split(rest.substr(split_at + 1), ',')) {
    auto eq = item.find('=');
    if (eq == std::string_view::npos) return "expected limit=value, got " + quoted(item);
    auto limit = trim(item.substr(0, eq));
    if (std::find(seen.begin(), seen.end(), limit) != seen.end()) return std::string(limit) + " is given twice";
    if (auto err = apply_limit(limit, trim(item.substr(eq + 1)), rule.limits); !err.empty()) return err;
    seen.push_back(limit);
  }
  return {};
}

// "name=a:b" lists shared by TOLLGATE_BUDGETS and TOLLGATE_PROVIDER_DAILY_QUOTA.
struct provider_item {
  std::string_view provider;
  std::string_view value;
};
std::string split_provider_item(std::string_view item, std::string_view expected, provider_item& out) {
  auto eq = item.find('=');
  if (eq == std::string_view::npos) return "expected " + std::string(expected) + ", got " + quoted(item);
  out.provider = trim(item.substr(0, eq));
  out.value = trim(item.substr(eq + 1));
  if (out.provider.empty()) return "missing provider name in " + quoted(item);
  return {};
}

// "5", "05", "0530", "05:30" after the sign.
std::optional<std::chrono::minutes> parse_offset_digits(std::string_view text) {
  std::string_view hours = text;
  std::string_view minutes;
  if (auto colon = text.find(':'); colon != std::string_view::npos) {
    hours = text.substr(0, colon);
    minutes = text.substr(colon + 1);
    if (minutes.size() != 2) return std::nullopt;
  } else if (text.size() == 4) {
    hours = text.substr(0, 2);
    minutes = text.substr(2);
  }
  if (hours.empty() || hours.size() > 2 || !all_digits(hours) || (!minutes.empty() && !all_digits(minutes)))
    return std::nullopt;
  int h = std::stoi(std::string(hours));
  int m = minutes.empty() ? 0 : std::stoi(std::string(minutes));
  if (m > 59) return std::nullopt;
  std::chrono::minutes offset(h * 60 + m);
  if (offset > max_offset) return std::nullopt;
  return offset;
}

std::optional<std::chrono::minutes> parse_signed_offset(std::string_view text) {
  if (text.empty() || (text.front() != '+' && text.front() != '-')) return std::nullopt;
  auto magnitude = parse_offset_digits(text.substr(1));
  if (!magnitude) return std::nullopt;
  return text.front() == '-' ? -*magnitude : *magnitude;
}

std::string offset_name(std::chrono::minutes offset) {
  if (offset.count() == 0) return "UTC";
  auto magnitude = offset.count() < 0 ? -offset.count() : offset.count();
  auto two = [](long long v) { return std::string(v < 10 ? "0" : "") + std::to_string(v); };
  return std::string("UTC") + (offset.count() < 0 ? "-" : "+") + two(magnitude / 60) + ":" + two(magnitude % 60);
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != prefix[i]) return false;
  }
  return true;
}

bool iana_like(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  if (!((name.front() >= 'A' && name.front() <= 'Z') || (name.front() >= 'a' && name.front() <= 'z'))) return false;
  std::size_t segment = 0;
  for (char c : name) {
    if (c == '/') {
      if (segment == 0) return false;
      segment = 0;
      continue;
    }
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
              c == '-';
    if (!ok) return false;
    ++segment;
  }
  return segment > 0;
}

}  // namespace

std::string parse_quota_rules(std::string_view text, std::vector<quota_rule>& out) {
  std::vector<quota_rule> rules;
  for (auto entry : split(text, ';')) {
    quota_rule rule;
    if (auto err = parse_quota_entry(entry, rule); !err.empty()) return quoted(entry) + ": " + err;
    if (!rule.limits.daily_tokens && !rule.limits.monthly_tokens && !rule.limits.daily_cost &&
        !rule.limits.monthly_cost && rule.limits.allowed_models.empty())
      return quoted(entry) + ": has no limit (daily_tokens, monthly_tokens, daily_usd, monthly_usd or models)";
    bool duplicate = std::any_of(rules.begin(), rules.end(), [&](const quota_rule& r) { return r.subject == rule.subject; });
    if (duplicate)
      return quoted(entry) + ": " + std::string(quota_scope_name(rule.subject.scope)) + ":" + rule.subject.name +
             " already has a rule; put all its limits in one entry";
    rules.push_back(std::move(rule));
  }
  out = std::move(rules);
  return {};
}

std::string format_quota_rules(const std::vector<quota_rule>& rules) {
  std::string text;
  for (const auto& rule : rules) {
    if (!text.empty()) text += ";";
    text += std::string(quota_scope_name(rule.subject.scope)) + ":" + rule.subject.name + ":";
    std::string limits;
    auto add = [&](std::string_view name, const std::string& value) {
      limits += (limits.empty() ? "" : ",") + std::string(name) + "=" + value;
    };
    const auto& l = rule.limits;
    if (l.daily_tokens) add("daily_tokens", std::to_string(*l.daily_tokens));
    if (l.monthly_tokens) add("monthly_tokens", std::to_string(*l.monthly_tokens));
    if (l.daily_cost) add("daily_usd", format_usd(*l.daily_cost));
    if (l.monthly_cost) add("monthly_usd", format_usd(*l.monthly_cost));
    if (!l.allowed_models.empty()) {
      std::string models;
      for (const auto& m : l.allowed_models) models += (models.empty() ? "" : "|") + m;
      add("models", models);
    }
    text += limits;
  }
  return text;
}

std::string parse_budget_rules(std::string_view text, std::vector<budget_rule>& out) {
  std::vector<budget_rule> rules;
  for (auto item : split(text, ',')) {
    provider_item parts;
    if (auto err = split_provider_item(item, "provider=monthly_usd[:daily_usd]", parts); !err.empty()) return err;
    auto colon = parts.value.find(':');
    auto monthly_text = trim(parts.value.substr(0, colon));
    budget_rule rule{std::string(parts.provider), {}};
    auto monthly = parse_positive_usd(monthly_text);
    if (!monthly) return quoted(item) + ": the monthly budget must be a positive USD amount such as 1000 or 2.5";
    rule.budget.monthly = *monthly;
    if (colon != std::string_view::npos) {
      auto daily = parse_positive_usd(trim(parts.value.substr(colon + 1)));
      if (!daily) return quoted(item) + ": the daily budget must be a positive USD amount such as 25 or 2.5";
      rule.budget.daily = *daily;
    }
    if (std::any_of(rules.begin(), rules.end(), [&](const budget_rule& r) { return r.provider == rule.provider; }))
      return "provider " + quoted(rule.provider) + " has two budgets";
    rules.push_back(std::move(rule));
  }
  out = std::move(rules);
  return {};
}

std::string format_budget_rules(const std::vector<budget_rule>& rules) {
  std::string text;
  for (const auto& rule : rules) {
    text += (text.empty() ? "" : ",") + rule.provider + "=" + format_usd(rule.budget.monthly);
    if (rule.budget.daily) text += ":" + format_usd(*rule.budget.daily);
  }
  return text;
}

std::string parse_provider_request_limits(std::string_view text, std::vector<provider_request_limit>& out) {
  std::vector<provider_request_limit> limits;
  for (auto item : split(text, ',')) {
    provider_item parts;
    if (auto err = split_provider_item(item, "provider=requests_per_day", parts); !err.empty()) return err;
    auto per_day = parse_count(parts.value);
    if (!per_day) return quoted(item) + ": requests per day must be a whole number from 1 to 10^15";
    provider_request_limit limit{std::string(parts.provider), *per_day};
    if (std::any_of(limits.begin(), limits.end(),
                    [&](const provider_request_limit& l) { return l.provider == limit.provider; }))
      return "provider " + quoted(limit.provider) + " has two daily quotas";
    limits.push_back(std::move(limit));
  }
  out = std::move(limits);
  return {};
}

std::string format_provider_request_limits(const std::vector<provider_request_limit>& limits) {
  std::string text;
  for (const auto& l : limits) text += (text.empty() ? "" : ",") + l.provider + "=" + std::to_string(l.per_day);
  return text;
}

std::string parse_time_zone(std::string_view text, time_zone_spec& out) {
  constexpr std::string_view expected =
      "expected UTC, an offset such as +05:30 or UTC-3, or a tz database name such as Europe/Berlin";
  auto value = trim(text);
  if (value.empty()) return std::string(expected);
  auto fixed = [&](std::chrono::minutes offset) {
    out = {offset_name(offset), offset};
    return std::string();
  };
  auto bad_offset = [&] {
    return "offset " + quoted(value) + " must be [+-]HH[:MM] with at most 14 hours and 59 minutes";
  };
  auto signed_after = [&](std::string_view prefix) {
    return starts_with_ci(value, prefix) && value.size() > prefix.size() &&
           (value[prefix.size()] == '+' || value[prefix.size()] == '-');
  };
  auto is = [&](std::string_view word) { return value.size() == word.size() && starts_with_ci(value, word); };
  if (is("UTC") || is("GMT") || is("Z")) return fixed(std::chrono::minutes(0));
  if (value.front() == '+' || value.front() == '-') {
    auto offset = parse_signed_offset(value);
    return offset ? fixed(*offset) : bad_offset();
  }
  if (signed_after("UTC")) {
    auto offset = parse_signed_offset(value.substr(3));
    return offset ? fixed(*offset) : bad_offset();
  }
  if (signed_after("GMT")) {
    // POSIX-style names invert the sign (the tz database's Etc/GMT+2 is UTC-2), so a bare
    // GMT+N is ambiguous; only the harmless zero offset is accepted.
    auto offset = parse_signed_offset(value.substr(3));
    if (offset && offset->count() == 0) return fixed(*offset);
    return quoted(value) + " is ambiguous (tz database GMT+N names mean UTC-N); write UTC" +
           std::string(value.substr(3)) + " or an offset such as +02:00";
  }
  if (!iana_like(value)) return std::string(expected) + ", got " + quoted(value);
  out = {std::string(value), std::nullopt};
  return {};
}

std::string parse_ratio_bp(std::string_view text, std::int64_t& out) {
  auto value = trim(text);
  auto bad = [&] {
    return "expected a decimal ratio with at most 4 decimals such as 1.10, got " + quoted(value);
  };
  auto dot = value.find('.');
  auto whole = value.substr(0, dot);
  auto fraction = dot == std::string_view::npos ? std::string_view{} : value.substr(dot + 1);
  if (!all_digits(whole) || whole.size() > 3) return bad();
  if (dot != std::string_view::npos && (!all_digits(fraction) || fraction.size() > 4)) return bad();
  std::int64_t bp = std::stoll(std::string(whole)) * 10'000;
  std::int64_t scale = 1'000;
  for (char c : fraction) {
    bp += (c - '0') * scale;
    scale /= 10;
  }
  if (bp <= 0) return "must be greater than 0, got " + quoted(value);
  if (bp > max_ratio_bp) return "must be at most 100, got " + quoted(value);
  out = bp;
  return {};
}

std::string format_ratio_bp(std::int64_t bp) {
  std::string fraction = std::to_string(bp % 10'000);
  fraction.insert(0, 4 - fraction.size(), '0');
  while (fraction.size() > 2 && fraction.back() == '0') fraction.pop_back();
  return std::to_string(bp / 10'000) + "." + fraction;
}

std::string format_usd(micro_usd amount) {
  std::string sign = amount < 0 ? "-" : "";
  // Via unsigned so the most negative value does not overflow on negation.
  std::uint64_t magnitude = amount < 0 ? 0 - static_cast<std::uint64_t>(amount) : static_cast<std::uint64_t>(amount);
  std::string fraction = std::to_string(magnitude % 1'000'000);
  fraction.insert(0, 6 - fraction.size(), '0');
  while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
  return sign + std::to_string(magnitude / 1'000'000) + (fraction.empty() ? "" : "." + fraction);
}

}  // namespace tollgate::core
