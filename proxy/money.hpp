#pragma once

#include "core/pricing.hpp"

#include <cmath>
#include <optional>

namespace tollgate::proxy {

// Money is integer micro-USD inside tollgate; dollars as doubles exist only at the edges
// (JSON bodies, metrics), where a rounding in the 7th decimal is harmless.
inline double micro_to_usd(core::micro_usd value) noexcept { return static_cast<double>(value) / 1e6; }

// A USD amount from a JSON number: nullopt for negatives, NaN and absurd sizes.
inline std::optional<core::micro_usd> usd_to_micro(double usd) noexcept {
  if (!(usd >= 0) || usd > 1e12) return std::nullopt;
  return static_cast<core::micro_usd>(std::llround(usd * 1e6));
}

}  // namespace tollgate::proxy
