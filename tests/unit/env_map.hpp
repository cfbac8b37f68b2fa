#pragma once

#include "core/config.hpp"

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace tollgate::testing {

// A fixed environment for load_config: the variables given, nothing else.
inline core::env_lookup env_of(std::map<std::string, std::string> values) {
  return [values = std::move(values)](std::string_view name) -> std::optional<std::string> {
    auto it = values.find(std::string(name));
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace tollgate::testing
