#include "proxy/startup_policy.hpp"

#include <boost/json.hpp>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tollgate::proxy {
namespace {

namespace json = boost::json;

std::optional<core::micro_usd> usd_member(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return std::nullopt;
  // Through the exact decimal parser, so "2.5" and 2.5 price identically.
  std::string text = it->value().is_string() ? std::string(it->value().as_string()) : json::serialize(it->value());
  return core::parse_usd_to_micro(text);
}

}  // namespace

core::utc_offset_fn load_time_zone(const core::time_zone_spec& spec) {
  if (spec.fixed_offset) return core::fixed_offset(*spec.fixed_offset);
  const char* dir = std::getenv("TZDIR");
  std::filesystem::path file = std::filesystem::path(dir && *dir ? dir : "/usr/share/zoneinfo") / spec.name;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    throw std::runtime_error("invalid TOLLGATE_TZ: unknown time zone \"" + spec.name + "\" (no " + file.string() +
                             "; is the tzdata package installed?)");
  ::setenv("TZ", (":" + spec.name).c_str(), 1);
  ::tzset();
  return [](core::sys_seconds t) {
    std::time_t seconds = static_cast<std::time_t>(t.time_since_epoch().count());
    std::tm local{};
    ::localtime_r(&seconds, &local);
    return std::chrono::minutes(local.tm_gmtoff / 60);
  };
}

core::price_table load_prices(const core::config& config) {
  auto table = core::price_table::builtin();
  if (!config.prices_file.empty()) {
    std::ifstream in(config.prices_file);
    if (!in) throw std::runtime_error("invalid TOLLGATE_PRICES_FILE: cannot read " + config.prices_file);
    std::stringstream text;
    text << in.rdbuf();
    boost::system::error_code ec;
    auto root = json::parse(text.str(), ec);
    if (ec || !root.is_object())
      throw std::runtime_error("invalid TOLLGATE_PRICES_FILE: " + config.prices_file +
                               " is not a JSON object of model -> {input, output, cached_input}" +
                               (ec ? " (" + ec.message() + ")" : ""));
    for (const auto& [model, value] : root.as_object()) {
      auto fail = [&](std::string why) {
        return std::runtime_error("invalid TOLLGATE_PRICES_FILE: " + config.prices_file + ": model \"" +
                                  std::string(model) + "\": " + why);
      };
      if (!value.is_object()) throw fail("expected {\"input\": usd, \"output\": usd[, \"cached_input\": usd]}");
      const auto& o = value.as_object();
      for (const auto& [key, unused] : o)
        if (key != "input" && key != "output" && key != "cached_input")
          throw fail("unknown field \"" + std::string(key) + "\"");
      auto input = usd_member(o, "input");
      auto output = usd_member(o, "output");
      if (!input || !output) throw fail("input and output must be USD per 1M tokens (up to 6 decimals)");
      auto cached = o.contains("cached_input") ? usd_member(o, "cached_input") : input;
      if (!cached) throw fail("cached_input must be USD per 1M tokens (up to 6 decimals)");
      table.set(std::string(model), core::model_price{*input, *output, *cached});
    }
  }
  table.set_all(config.price_overrides);
  return table;
}

}  // namespace tollgate::proxy
