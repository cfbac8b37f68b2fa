#pragma once

#include <string_view>
#include <vector>

// The small text helpers every TOLLGATE_* list parser needs, in one place.
namespace tollgate::core::text {

inline bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

enum class empty_items : bool { keep, drop };

// Split on `separator`, each item trimmed. Keep empty items where an empty one is an error
// the parser must report ("a,,b"); drop them where a trailing separator is harmless.
inline std::vector<std::string_view> split(std::string_view text, char separator, empty_items empties) {
  std::vector<std::string_view> items;
  while (true) {
    auto at = text.find(separator);
    auto item = trim(text.substr(0, at));
    if (!item.empty() || empties == empty_items::keep) items.push_back(item);
    if (at == std::string_view::npos) break;
    text.remove_prefix(at + 1);
  }
  return items;
}

}  // namespace tollgate::core::text
