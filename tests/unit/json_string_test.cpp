#include "core/json_string.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <string>
#include <string_view>

using tollgate::core::append_json_string;
using namespace std::string_view_literals;

namespace {

// Byte by byte, as the escaping is specified: the reference the word-at-a-time scan must match.
std::string reference(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) out += std::string("\\u00") + hex[c >> 4] + hex[c & 0xf];
    else out += ch;
  }
  return out + "\"";
}

std::string written(std::string_view text) {
  std::string out = "prefix:";
  append_json_string(out, text);
  REQUIRE(out.starts_with("prefix:"));
  return out.substr(7);
}

}  // namespace

TEST_CASE("json_string: every byte value at every position of strings up to 20 bytes") {
  for (std::size_t length = 1; length <= 20; ++length) {
    for (std::size_t at = 0; at < length; ++at) {
      for (unsigned v = 0; v < 256; ++v) {
        std::string text(length, 'a');
        text[at] = static_cast<char>(v);
        CAPTURE(length);
        CAPTURE(at);
        CAPTURE(v);
        REQUIRE(written(text) == reference(text));
      }
    }
  }
}

TEST_CASE("json_string: runs of escapes, empty text, and what a JSON parser reads back") {
  CHECK(written("") == "\"\"");
  CHECK(written(std::string_view()) == "\"\"");
  const std::string_view texts[] = {
      "plain text longer than one eight-byte word, with nothing to escape",
      "\"\"\"\"\"\"\"\"\"\"",
      "\\\\\\\\\\\\\\\\\\",
      "tab\there, newline\nthere, return\rand a bell \x07 and \x1f and \x7f",
      "h\xC3\xA9llo \xE2\x98\x83 snowman and a stray \xFF byte",
      "a/b?c=\"d\"&e=\\f",
  };
  for (const std::string_view text : texts) {
    CAPTURE(text);
    const std::string json = written(text);
    CHECK(json == reference(text));
    if (text.find('\xFF') != std::string_view::npos) continue;  // not UTF-8: no parser takes it back
    boost::system::error_code ec;
    const auto parsed = boost::json::parse(json, ec);
    REQUIRE_FALSE(ec);
    CHECK(std::string_view(parsed.as_string()) == text);
  }
}
