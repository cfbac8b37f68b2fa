#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string_view>

namespace tollgate::adapters {

// A non-negative count (tokens, indexes), whatever number type the provider chose to write it
// as (5, or 5.0); nullopt when not a number, negative or not a whole number.
inline std::optional<std::uint64_t> count_of(const boost::json::value& value) noexcept {
  boost::system::error_code ec;
  auto count = value.to_number<std::uint64_t>(ec);
  if (ec) return std::nullopt;
  return count;
}

// count_of a member; nullopt when absent.
inline std::optional<std::uint64_t> read_count(const boost::json::object& object, std::string_view name) {
  const boost::json::value* value = object.if_contains(name);
  if (!value) return std::nullopt;
  return count_of(*value);
}

}  // namespace tollgate::adapters
