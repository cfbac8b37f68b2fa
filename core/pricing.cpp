#include "core/pricing.hpp"
#include "core/text.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace tollgate::core {

namespace {

constexpr micro_usd usd(double dollars_per_mtok) {
  // Only used on the literal table below, whose values have at most 4 decimals; the +0.5
  // makes the conversion exact despite binary representation (e.g. 0.075 * 1e6).
  return static_cast<micro_usd>(dollars_per_mtok * 1'000'000.0 + 0.5);
}

constexpr model_price p(double in, double out, double cached) { return {usd(in), usd(out), usd(cached)}; }

struct builtin_row {
  const char* model;
  model_price price;
};

// List prices, USD per 1M tokens (input, output, cached input / cache read), standard tier,
// short-context band. Checked 2026-11-22 against the providers' public pricing pages as
// mirrored by third-party price trackers (the search tool's stored pages). Override with
// TOLLGATE_PRICES or TOLLGATE_PRICES_FILE when they change.
// Not modelled: long-context surcharges (Gemini 2.5 Pro > 200k prompt tokens bills $2.50/$15),
// Anthropic cache WRITES (billed above input; tokens reported as cache_creation are charged
// at the input rate here, an under-count of 25%), batch and priority tiers.
constexpr builtin_row builtin_rows[] = {
    // OpenAI
    {"gpt-4o", p(2.50, 10.00, 1.25)},
    {"gpt-4o-mini", p(0.15, 0.60, 0.075)},
    {"gpt-4.1", p(2.00, 8.00, 0.50)},
    {"gpt-4.1-mini", p(0.40, 1.60, 0.10)},
    {"gpt-4.1-nano", p(0.10, 0.40, 0.025)},
    {"o3", p(2.00, 8.00, 0.50)},
    {"o4-mini", p(1.10, 4.40, 0.275)},
    {"gpt-5", p(1.25, 10.00, 0.125)},
    {"gpt-5-mini", p(0.25, 2.00, 0.025)},
    {"gpt-5-nano", p(0.05, 0.40, 0.005)},
    // Anthropic: cache reads are 0.1x input.
    {"claude-sonnet-4", p(3.00, 15.00, 0.30)},
    {"claude-sonnet-4-5", p(3.00, 15.00, 0.30)},
    {"claude-opus-4", p(15.00, 75.00, 1.50)},
    {"claude-opus-4-1", p(15.00, 75.00, 1.50)},
    // Opus 4.5 onwards dropped to $5/$25; listed one by one because "claude-opus-4-7" must not
    // fall back to the "claude-opus-4" entry under the numeric-suffix rule.
    {"claude-opus-4-5", p(5.00, 25.00, 0.50)},
    {"claude-opus-4-6", p(5.00, 25.00, 0.50)},
    {"claude-opus-4-7", p(5.00, 25.00, 0.50)},
    {"claude-opus-4-8", p(5.00, 25.00, 0.50)},
    {"claude-haiku-4-5", p(1.00, 5.00, 0.10)},
    {"claude-3-5-haiku", p(0.80, 4.00, 0.08)},
    // Gemini: cached input is 0.1x input (implicit and explicit caching reads).
    {"gemini-2.5-pro", p(1.25, 10.00, 0.125)},
    {"gemini-2.5-flash", p(0.30, 2.50, 0.03)},
    {"gemini-2.5-flash-lite", p(0.10, 0.40, 0.01)},
    {"gemini-2.0-flash", p(0.10, 0.40, 0.025)},
};

// A suffix that only dates or versions a model: "-2024-08-06", "-20250929", "-001", "-latest".
bool is_version_suffix(std::string_view rest) {
  if (rest.empty()) return true;
  if (rest.front() != '-') return false;
  rest.remove_prefix(1);
  while (true) {
    const auto dash = rest.find('-');
    const auto segment = rest.substr(0, dash);
    const bool numeric = !segment.empty() && std::all_of(segment.begin(), segment.end(),
                                                         [](char c) { return c >= '0' && c <= '9'; });
    if (!numeric && segment != "latest" && segment != "preview" && segment != "exp") return false;
    if (dash == std::string_view::npos) return true;
    rest.remove_prefix(dash + 1);
  }
}

using text::trim;

}  // namespace

micro_usd cost_micro_usd(const model_price& price, const token_usage& usage) noexcept {
  const std::int64_t prompt = std::max<std::int64_t>(usage.prompt, 0);
  const std::int64_t cached = std::clamp<std::int64_t>(usage.cached, 0, prompt);
  const std::int64_t completion = std::max<std::int64_t>(usage.completion, 0);
  // 128-bit so that no realistic token count times rate can overflow before the division.
  __extension__ using wide = __int128;
  const wide numerator = wide{prompt - cached} * price.input_per_mtok + wide{cached} * price.cached_input_per_mtok +
                         wide{completion} * price.output_per_mtok;
  if (numerator <= 0) return 0;
  const wide total = (numerator + 999'999) / 1'000'000;
  return total > std::numeric_limits<micro_usd>::max() ? std::numeric_limits<micro_usd>::max()
                                                       : static_cast<micro_usd>(total);
}

price_table price_table::builtin() {
  price_table table;
  for (const auto& row : builtin_rows) table.set(row.model, row.price);
  return table;
}

void price_table::set(std::string model, model_price price) { entries_.insert_or_assign(std::move(model), price); }

void price_table::set_all(const std::vector<price_entry>& entries) {
  for (const auto& e : entries) set(e.model, e.price);
}

std::optional<model_price> price_table::lookup(std::string_view model) const {
  if (model.starts_with("models/")) model.remove_prefix(7);
  // Try prefixes from longest to shortest; the map lookup is exact so each probe is cheap and
  // the first hit is the longest match.
  for (std::size_t len = model.size(); len > 0; --len) {
    if (len < model.size() && model[len] != '-') continue;
    auto it = entries_.find(model.substr(0, len));
    if (it != entries_.end() && is_version_suffix(model.substr(len))) return it->second;
  }
  return std::nullopt;
}

std::optional<model_price> price_table::lookup(provider_type type, std::string_view model) const {
  if (type == provider_type::ollama || type == provider_type::mock) return model_price{};
  return lookup(model);
}

std::optional<model_price> price_memo::lookup(const price_table& table, provider_type type, std::string_view model) {
  if (table_ == &table && type_ == type && std::string_view(model_.data(), model_size_) == model) return price_;
  auto price = table.lookup(type, model);
  if (model.size() <= max_model) {
    table_ = &table;
    type_ = type;
    std::copy(model.begin(), model.end(), model_.begin());
    model_size_ = model.size();
    price_ = price;
  }
  return price;
}

std::optional<micro_usd> parse_usd_to_micro(std::string_view text) noexcept {
  const auto dot = text.find('.');
  const auto whole = text.substr(0, dot);
  const auto frac = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  if (whole.empty() && frac.empty()) return std::nullopt;
  if (dot != std::string_view::npos && frac.empty()) return std::nullopt;  // "2." is a typo
  if (frac.size() > 6) return std::nullopt;
  auto digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(whole) || !digits(frac)) return std::nullopt;
  micro_usd units = 0;
  if (!whole.empty()) {
    auto [ptr, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), units);
    if (ec != std::errc{} || ptr != whole.data() + whole.size()) return std::nullopt;
  }
  if (units > std::numeric_limits<micro_usd>::max() / 1'000'000 - 1) return std::nullopt;
  micro_usd fraction = 0;
  for (std::size_t i = 0; i < 6; ++i) fraction = fraction * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  return units * 1'000'000 + fraction;
}

std::variant<std::vector<price_entry>, price_parse_error> parse_price_overrides(std::string_view text) {
  std::vector<price_entry> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto raw = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    const auto item = trim(raw);
    if (item.empty()) continue;
    auto fail = [&](const char* reason) { return price_parse_error{std::string(item), reason}; };
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) return fail("expected model=in:out[:cached]");
    const auto model = trim(item.substr(0, eq));
    if (model.empty()) return fail("empty model name");
    std::vector<micro_usd> rates;
    auto rest = item.substr(eq + 1);
    while (true) {
      const auto colon = rest.find(':');
      const auto field = trim(rest.substr(0, colon));
      const auto value = parse_usd_to_micro(field);
      if (!value) return fail("price is not a non-negative decimal USD amount with at most 6 decimals");
      rates.push_back(*value);
      if (colon == std::string_view::npos) break;
      rest = rest.substr(colon + 1);
    }
    if (rates.size() < 2 || rates.size() > 3) return fail("expected 2 or 3 prices (in:out[:cached])");
    out.push_back({std::string(model), {rates[0], rates[1], rates.size() == 3 ? rates[2] : rates[0]}});
  }
  return out;
}

bool unpriced_models::note(std::string_view model) {
  if (seen_.find(model) != seen_.end()) return false;
  seen_.emplace(model);
  return true;
}

}  // namespace tollgate::core
