#pragma once

#include "core/calendar.hpp"
#include "core/config.hpp"
#include "core/pricing.hpp"

#include <string>

namespace tollgate::proxy {

// Start-up pieces of the spending policy that need files, which core does not read.
// Both throw std::runtime_error with a message naming the variable: a wrong price file or
// time zone must stop tollgate before it meters anything wrongly.

// TOLLGATE_TZ as an offset function. A named zone is looked up in the system tz database
// (TZDIR or /usr/share/zoneinfo) and evaluated with the C library's localtime_r, so DST rules
// come from tzdata. Sets the process's TZ: call before any thread starts.
core::utc_offset_fn load_time_zone(const core::time_zone_spec& spec);

// The built-in prices, then TOLLGATE_PRICES_FILE, then TOLLGATE_PRICES (the most specific
// wins). The file is a JSON object of model -> {"input": usd, "output": usd, "cached_input":
// usd}, USD per 1M tokens; cached_input defaults to input.
core::price_table load_prices(const core::config& config);

}  // namespace tollgate::proxy
