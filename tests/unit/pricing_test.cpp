#include "core/pricing.hpp"

#include <doctest/doctest.h>

#include <string>
#include <variant>
#include <vector>

namespace {

using namespace tollgate::core;

}  // namespace

TEST_CASE("pricing: builtin lookups resolve dated names to their base") {
  const auto table = price_table::builtin();
  struct row {
    const char* model;
    micro_usd in, out, cached;
  };
  const row rows[] = {
      {"gpt-4o", 2'500'000, 10'000'000, 1'250'000},
      {"gpt-4o-2024-08-06", 2'500'000, 10'000'000, 1'250'000},
      {"gpt-4o-mini-2024-07-18", 150'000, 600'000, 75'000},
      {"gpt-4.1-nano-2025-04-14", 100'000, 400'000, 25'000},
      {"gpt-4.1-2025-04-14", 2'000'000, 8'000'000, 500'000},
      {"o3-2025-04-16", 2'000'000, 8'000'000, 500'000},
      {"o4-mini", 1'100'000, 4'400'000, 275'000},
      {"gpt-5-mini-2025-08-07", 250'000, 2'000'000, 25'000},
      {"claude-sonnet-4-5-20250929", 3'000'000, 15'000'000, 300'000},
      {"claude-sonnet-4-20250514", 3'000'000, 15'000'000, 300'000},
      {"claude-opus-4-1-20250805", 15'000'000, 75'000'000, 1'500'000},
      {"claude-opus-4-5-20251101", 5'000'000, 25'000'000, 500'000},
      {"claude-haiku-4-5-20251001", 1'000'000, 5'000'000, 100'000},
      {"claude-3-5-haiku-latest", 800'000, 4'000'000, 80'000},
      {"gemini-2.5-flash-lite", 100'000, 400'000, 10'000},
      {"models/gemini-2.5-pro", 1'250'000, 10'000'000, 125'000},
      {"gemini-2.0-flash-001", 100'000, 400'000, 25'000},
  };
  for (const auto& r : rows) {
    const std::string model = r.model;
    CAPTURE(model);
    const auto price = table.lookup(r.model);
    REQUIRE(price.has_value());
    CHECK(price->input_per_mtok == r.in);
    CHECK(price->output_per_mtok == r.out);
    CHECK(price->cached_input_per_mtok == r.cached);
  }
}

TEST_CASE("pricing: unknown variants are unpriced rather than mispriced") {
  const auto table = price_table::builtin();
  CHECK_FALSE(table.lookup("o3-pro").has_value());
  CHECK_FALSE(table.lookup("gpt-4o-audio-preview-2024-12-17").has_value());
  CHECK_FALSE(table.lookup("gpt-4").has_value());
  CHECK_FALSE(table.lookup("gpt-4o2").has_value());
  CHECK_FALSE(table.lookup("").has_value());
  CHECK_FALSE(table.lookup("llama3").has_value());
  // Local providers cost nothing whatever the model.
  CHECK(table.lookup(provider_type::ollama, "llama3") == model_price{});
  CHECK(table.lookup(provider_type::mock, "gpt-4o") == model_price{});
  CHECK(table.lookup(provider_type::openai, "gpt-4o") == table.lookup("gpt-4o"));
  CHECK_FALSE(table.lookup(provider_type::openai, "llama3").has_value());
}

TEST_CASE("pricing: cost arithmetic") {
  const model_price gpt4o{2'500'000, 10'000'000, 1'250'000};
  // 1000 prompt (200 cached) + 500 completion:
  // 800 * 2.5 + 200 * 1.25 + 500 * 10 = 2000 + 250 + 5000 = 7250 micro-USD.
  CHECK(cost_micro_usd(gpt4o, {1000, 500, 200}) == 7250);
  CHECK(cost_micro_usd(gpt4o, {1'000'000, 0, 0}) == 2'500'000);
  CHECK(cost_micro_usd(gpt4o, {0, 1'000'000, 0}) == 10'000'000);
  CHECK(cost_micro_usd(gpt4o, {0, 0, 0}) == 0);
  // One token of gpt-4o-mini input is 0.15 micro-USD: rounded up to 1, never to 0.
  CHECK(cost_micro_usd({150'000, 600'000, 75'000}, {1, 0, 0}) == 1);
  // Rounding happens once on the sum, not per component: 3 * 0.15 + 1 * 0.6 = 1.05 -> 2.
  CHECK(cost_micro_usd({150'000, 600'000, 75'000}, {3, 1, 0}) == 2);
  // cached > prompt is capped; negatives count as zero.
  CHECK(cost_micro_usd(gpt4o, {100, 0, 500}) == cost_micro_usd(gpt4o, {100, 0, 100}));
  CHECK(cost_micro_usd(gpt4o, {-5, -5, -5}) == 0);
  // Big numbers do not overflow: 10^12 tokens of opus output = $75M.
  CHECK(cost_micro_usd({15'000'000, 75'000'000, 1'500'000}, {0, 1'000'000'000'000, 0}) == 75'000'000'000'000);
  CHECK(cost_micro_usd(model_price{}, {123, 456, 7}) == 0);
}

TEST_CASE("pricing: usd parsing is exact") {
  CHECK(parse_usd_to_micro("2.5") == 2'500'000);
  CHECK(parse_usd_to_micro("0.075") == 75'000);
  CHECK(parse_usd_to_micro("10") == 10'000'000);
  CHECK(parse_usd_to_micro(".5") == 500'000);
  CHECK(parse_usd_to_micro("0.000001") == 1);
  CHECK_FALSE(parse_usd_to_micro("0.0000001").has_value());
  CHECK_FALSE(parse_usd_to_micro("-1").has_value());
  CHECK_FALSE(parse_usd_to_micro("1e3").has_value());
  CHECK_FALSE(parse_usd_to_micro("2.").has_value());
  CHECK_FALSE(parse_usd_to_micro("").has_value());
  CHECK_FALSE(parse_usd_to_micro("99999999999999999999").has_value());
}

TEST_CASE("pricing: TOLLGATE_PRICES overrides") {
  auto parsed = parse_price_overrides("gpt-4o=2:8:0.5, my-model=0.1:0.2 ,,");
  REQUIRE(std::holds_alternative<std::vector<price_entry>>(parsed));
  const auto& entries = std::get<std::vector<price_entry>>(parsed);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].model == "gpt-4o");
  CHECK(entries[0].price == model_price{2'000'000, 8'000'000, 500'000});
  CHECK(entries[1].model == "my-model");
  CHECK(entries[1].price == model_price{100'000, 200'000, 100'000});  // cached defaults to input

  auto table = price_table::builtin();
  table.set_all(entries);
  CHECK(table.lookup("gpt-4o-2024-08-06") == model_price{2'000'000, 8'000'000, 500'000});
  CHECK(table.lookup("gpt-4o-mini")->input_per_mtok == 150'000);  // untouched
  CHECK(table.lookup("my-model-20250101") == model_price{100'000, 200'000, 100'000});
  // A later entry for the same model wins; an exact dated entry beats its base.
  table.set("gpt-4o-2024-05-13", {5'000'000, 15'000'000, 5'000'000});
  CHECK(table.lookup("gpt-4o-2024-05-13")->input_per_mtok == 5'000'000);
  CHECK(table.lookup("gpt-4o-2024-08-06")->input_per_mtok == 2'000'000);

  CHECK(std::get<std::vector<price_entry>>(parse_price_overrides("")).empty());

  struct bad {
    const char* text;
    const char* item;
  };
  const bad bads[] = {
      {"gpt-4o=2:8,broken", "broken"},
      {"=1:2", "=1:2"},
      {"m=1", "m=1"},
      {"m=1:2:3:4", "m=1:2:3:4"},
      {"ok=1:2, m=1:x", "m=1:x"},
      {"m=1:-2", "m=1:-2"},
      {"m=1::2", "m=1::2"},
  };
  for (const auto& b : bads) {
    const std::string text = b.text;
    CAPTURE(text);
    auto result = parse_price_overrides(b.text);
    REQUIRE(std::holds_alternative<price_parse_error>(result));
    CHECK(std::get<price_parse_error>(result).item == b.item);
    CHECK_FALSE(std::get<price_parse_error>(result).reason.empty());
  }
}

TEST_CASE("pricing: unpriced models are reported once") {
  unpriced_models seen;
  CHECK(seen.note("mystery-1"));
  CHECK_FALSE(seen.note("mystery-1"));
  CHECK(seen.note("mystery-2"));
  CHECK(seen.seen().size() == 2);
}

TEST_CASE("pricing: price_memo answers what the table answers, through every change of question") {
  auto table = price_table::builtin();
  auto other = price_table::builtin();
  other.set("gpt-4o", model_price{1, 2, 3});
  const std::string long_name(80, 'x');  // past the memo's room: looked up every time
  struct question {
    const price_table* table;
    provider_type type;
    std::string model;
  };
  const std::vector<question> questions = {
      {&table, provider_type::openai, "gpt-4o"},
      {&table, provider_type::openai, "gpt-4o"},
      {&table, provider_type::openai, "gpt-4o-2024-08-06"},
      {&table, provider_type::ollama, "gpt-4o"},  // local: free, whatever the name
      {&table, provider_type::openai, "gpt-4o"},
      {&other, provider_type::openai, "gpt-4o"},  // another table, same name
      {&table, provider_type::openai, "gpt-4o"},
      {&table, provider_type::openai, "no-such-model"},
      {&table, provider_type::openai, "no-such-model"},
      {&table, provider_type::openai, ""},
      {&table, provider_type::openai, long_name},
      {&table, provider_type::openai, "gpt-4o"},
      {&table, provider_type::openai, "gpt-4"},  // a prefix of the remembered name
  };
  price_memo memo;
  for (const auto& q : questions) {
    CAPTURE(q.model);
    CHECK(memo.lookup(*q.table, q.type, q.model) == q.table->lookup(q.type, q.model));
  }
}
