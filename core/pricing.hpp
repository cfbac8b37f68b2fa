#pragma once

#include "core/provider_type.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tollgate::core {

// Money is integer micro-USD everywhere spend accumulates: floating point would drift over
// millions of additions and make "spent <= limit" depend on rounding order.
using micro_usd = std::int64_t;

// List price of one model. Rates are micro-USD per 1M tokens, i.e. the USD-per-1M-tokens list
// price times 1e6 ($2.50 / 1M tokens -> 2'500'000), so every published price (down to
// $0.000001 / 1M) is exact.
struct model_price {
  micro_usd input_per_mtok = 0;
  micro_usd output_per_mtok = 0;
  micro_usd cached_input_per_mtok = 0;  // cache reads; equal to input when a model has no discount
  friend bool operator==(const model_price&, const model_price&) = default;
};

// Tokens as the provider reported them, normalised by the adapter to OpenAI's convention:
// `prompt` INCLUDES the `cached` tokens (Anthropic's input_tokens excludes cache reads, so its
// adapter adds them back).
struct token_usage {
  std::int64_t prompt = 0;
  std::int64_t completion = 0;
  std::int64_t cached = 0;
};

// Cost of one request: cached tokens at the cached rate, the rest of the prompt at the input
// rate, completion at the output rate. The three products are summed exactly and the total is
// rounded UP to a whole micro-USD, so spend is never under-counted (over-count < 1 micro-USD
// per request). Negative counts are treated as 0 and cached is capped at prompt.
micro_usd cost_micro_usd(const model_price& price, const token_usage& usage) noexcept;

struct price_entry {
  std::string model;
  model_price price;
};

// Model name -> price. Lookup resolves dated and versioned names to their base
// ("gpt-4o-2024-08-06" -> "gpt-4o", "claude-sonnet-4-5-20250929" -> "claude-sonnet-4-5") by
// the longest entry that is a prefix of the name AND ends at a '-' followed only by numeric
// segments or "latest"/"preview"/"exp". The suffix rule stops "o3" from pricing "o3-pro" or
// "gpt-4o" from pricing "gpt-4o-audio-preview" at the wrong rate: an unknown variant is
// reported unpriced rather than silently mispriced. A leading "models/" (Gemini's resource
// form) is ignored. Matching is case-sensitive, as provider model ids are.
//
// Not thread-safe to mutate; build it at startup (or on an admin change) and share it const.
class price_table {
 public:
  price_table() = default;

  // The built-in list prices (see pricing.cpp for the date they were checked).
  static price_table builtin();

  // Adds or replaces an exact entry; used for TOLLGATE_PRICES and the JSON price file,
  // which is parsed outside core.
  void set(std::string model, model_price price);
  void set_all(const std::vector<price_entry>& entries);

  std::optional<model_price> lookup(std::string_view model) const;
  // Local providers (ollama, mock) are free whatever the model is called.
  std::optional<model_price> lookup(provider_type type, std::string_view model) const;

  std::size_t size() const noexcept { return entries_.size(); }
  const std::map<std::string, model_price, std::less<>>& entries() const noexcept { return entries_; }

 private:
  std::map<std::string, model_price, std::less<>> entries_;
};

// The last lookup, remembered for one thread: a worker whose requests name one model prices
// each with a compare instead of a search through the table. Only for a table that no longer
// changes (tables are built at start-up and shared const).
class price_memo {
 public:
  std::optional<model_price> lookup(const price_table& table, provider_type type, std::string_view model);

 private:
  static constexpr std::size_t max_model = 64;  // longer names are looked up every time

  const price_table* table_ = nullptr;
  provider_type type_{};
  std::array<char, max_model> model_{};
  std::size_t model_size_ = 0;
  std::optional<model_price> price_;
};

struct price_parse_error {
  std::string item;    // the offending comma-separated item, verbatim
  std::string reason;  // why it was rejected
};

// Parses the compact env form "model=in:out[:cached],..." (USD per 1M tokens, up to 6
// decimals, e.g. "gpt-4o=2.5:10:1.25"). An omitted cached rate equals the input rate
// (no discount assumed, so cost is never under-counted). Empty items are skipped.
std::variant<std::vector<price_entry>, price_parse_error> parse_price_overrides(std::string_view text);

// Decimal USD ("2.5", "0.075", "10") -> micro-USD, exactly; nullopt on anything else
// (signs, exponents, more than 6 decimals, overflow).
std::optional<micro_usd> parse_usd_to_micro(std::string_view text) noexcept;

// Remembers which paid models had no price so the caller logs each once (and counts every
// request). Not thread-safe: owned by the thread that accounts requests.
class unpriced_models {
 public:
  // True the first time `model` is seen.
  bool note(std::string_view model);
  const std::set<std::string, std::less<>>& seen() const noexcept { return seen_; }

 private:
  std::set<std::string, std::less<>> seen_;
};

}  // namespace tollgate::core
