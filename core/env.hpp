#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tollgate::core {

struct config_error {
  std::string variable;
  std::string message;
};

// The environment as seen by the loader; injected so tests never touch the real one.
using env_lookup = std::function<std::optional<std::string>(std::string_view name)>;

}  // namespace tollgate::core
