#pragma once

#include <string>
#include <string_view>

namespace tollgate::core {

// Writes text as a JSON string literal, quotes included, at `out`, which has room for
// 2 + 6 * text.size() bytes; returns the end of what it wrote. Quotes, backslashes and
// control bytes are escaped; every other byte, UTF-8 or not, is copied as it is.
char* write_json_string(char* out, std::string_view text) noexcept;

// The same, appended to a string.
void append_json_string(std::string& out, std::string_view text);

}  // namespace tollgate::core
