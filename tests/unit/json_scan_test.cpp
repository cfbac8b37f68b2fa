#include "core/json_scan.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using tollgate::core::find_top_level_member;
using tollgate::core::member_span;
using tollgate::core::top_level_member_capture;
using namespace std::string_view_literals;

namespace {

constexpr std::string_view same_as_find = "\x01";

struct json_case {
  const char* name;
  std::string_view text;
  std::string_view key = "usage";
  std::optional<std::string_view> value = std::nullopt;  // find: nullopt = not found
  std::string_view erased = "";                          // text after erasing, when found
  // Capture, the value a JSON parser reads: "\x01" = as find; nullopt = never complete. It
  // needs the whole object well-formed, and of duplicate members takes the last.
  std::optional<std::string_view> captured = same_as_find;
  // Capture of the text fed whole, which reads it from its end: "\x01" = as captured. It
  // differs only where the text is broken before the member, which that way is not read.
  std::optional<std::string_view> captured_whole = same_as_find;
};

const std::vector<json_case>& cases() {
  static const std::vector<json_case> table = {
      // Position of the member.
      {.name = "only", .text = R"({"usage":null})", .value = "null", .erased = "{}"},
      {.name = "only, spaced", .text = R"({ "usage" : null })", .value = "null",
       .erased = "{  }"},
      {.name = "first", .text = R"({"usage":null,"id":"x"})", .value = "null",
       .erased = R"({"id":"x"})"},
      {.name = "first, spaced", .text = R"({ "usage" : null , "id":"x" })", .value = "null",
       .erased = R"({ "id":"x" })"},
      {.name = "middle", .text = R"({"id":"x","usage":{"prompt_tokens":1},"model":"m"})",
       .value = R"({"prompt_tokens":1})", .erased = R"({"id":"x","model":"m"})"},
      {.name = "last", .text = R"({"id":"x","usage":null})", .value = "null",
       .erased = R"({"id":"x"})"},
      {.name = "last, spaced", .text = R"({"id":"x" , "usage" : null })", .value = "null",
       .erased = R"({"id":"x"  })"},
      {.name = "pretty-printed middle",
       .text = "{\n  \"a\": 1,\n  \"usage\": null,\n  \"c\": 3\n}", .value = "null",
       .erased = "{\n  \"a\": 1,\n  \"c\": 3\n}"},
      {.name = "pretty-printed last", .text = "{\n  \"a\": 1,\n  \"usage\": {}\n}",
       .value = "{}", .erased = "{\n  \"a\": 1\n}"},
      {.name = "whitespace everywhere",
       .text = "\t\r\n {\n\t\"a\"\r\n:\t[ 1 , 2 ]\n,\n\"usage\"\n:\n{ \"t\" : 1 }\n}\n ",
       .value = "{ \"t\" : 1 }", .erased = "\t\r\n {\n\t\"a\"\r\n:\t[ 1 , 2 ]\n\n}\n "},
      {.name = "duplicate key: find takes the first, capture the last", .text = R"({"usage":1,"usage":2})",
       .value = "1", .erased = R"({"usage":2})", .captured = "2"},
      {.name = "duplicate key, apart", .text = R"({"usage":{"a":1},"x":[],"usage":[2],"y":3})",
       .value = R"({"a":1})", .erased = R"({"x":[],"usage":[2],"y":3})", .captured = "[2]"},

      // Every value type.
      {.name = "string", .text = R"({"usage":"s","z":0})", .value = R"("s")",
       .erased = R"({"z":0})"},
      {.name = "string with escaped quote and trailing backslash",
       .text = R"({"usage":"a\"b\\","z":0})", .value = R"("a\"b\\")", .erased = R"({"z":0})"},
      {.name = "empty string", .text = R"({"usage":""})", .value = R"("")", .erased = "{}"},
      {.name = "number", .text = R"({"a":0,"usage":-1.5e+10})", .value = "-1.5e+10",
       .erased = R"({"a":0})"},
      {.name = "number before spaces", .text = R"({"usage":42 ,"a":0})", .value = "42",
       .erased = R"({"a":0})"},
      {.name = "true", .text = R"({"usage":true})", .value = "true", .erased = "{}"},
      {.name = "false", .text = R"({"a":[],"usage":false})", .value = "false",
       .erased = R"({"a":[]})"},
      {.name = "array with brackets in strings", .text = R"({"usage":[1,[2,{"u":"]}"}],"]"]})",
       .value = R"([1,[2,{"u":"]}"}],"]"])", .erased = "{}"},
      {.name = "empty array", .text = R"({"usage":[],"a":1})", .value = "[]",
       .erased = R"({"a":1})"},
      {.name = "nested object", .text = R"({"usage":{"a":{"b":{"usage":[{}]}}},"x":1})",
       .value = R"({"a":{"b":{"usage":[{}]}}})", .erased = R"({"x":1})"},

      // Only depth 1, never inside strings.
      {.name = "nested same key is skipped",
       .text = R"({"choices":[{"usage":1}],"meta":{"usage":2},"usage":3})", .value = "3",
       .erased = R"({"choices":[{"usage":1}],"meta":{"usage":2}})"},
      {.name = "only nested: absent", .text = R"({"a":{"usage":1}})"},
      {.name = "only in an array: absent", .text = R"({"a":[{"usage":1},"usage"]})"},
      {.name = "key text inside a string value", .text = R"({"a":"\"usage\":1","usage":2})",
       .value = "2", .erased = R"({"a":"\"usage\":1"})"},
      {.name = "a string value equal to the key", .text = R"({"a":"usage"})"},
      {.name = "object text inside a string", .text = R"({"x":"{\"usage\":1}"})"},
      {.name = "backslash before the closing quote of a value",
       .text = R"({"a":"x\\","usage":1})", .value = "1", .erased = R"({"a":"x\\"})"},
      {.name = "runs of backslashes, odd before an escaped quote, even before the closing one",
       .text = R"({"a":"\\\"usage\":\\\\","usage":[1]})", .value = "[1]",
       .erased = R"({"a":"\\\"usage\":\\\\"})"},
      {.name = "backslash before the closing quote of a key",
       .text = R"({"a\\":1,"usage":2})", .value = "2", .erased = R"({"a\\":1})"},
      {.name = "\\u escapes in a value", .text = R"({"a":"\u0022usage\u0022:","usage":[]})",
       .value = "[]", .erased = R"({"a":"\u0022usage\u0022:"})"},
      {.name = "non-ASCII text", .text = "{\"a\":\"h\xC3\xA9llo \xE2\x98\x83\",\"usage\":1}",
       .value = "1", .erased = "{\"a\":\"h\xC3\xA9llo \xE2\x98\x83\"}"},

      // Keys compare after unescaping.
      {.name = "escaped key matches", .text = R"({"us\u0061ge":5})", .value = "5",
       .erased = "{}"},
      {.name = "fully escaped key at the length bound",
       .text = R"({"\u0075\u0073\u0061\u0067\u0065":5})", .value = "5", .erased = "{}"},
      {.name = "escaped solidus", .text = R"({"\/usage":1})", .key = "/usage", .value = "1",
       .erased = "{}"},
      {.name = "escaped quote in key", .text = R"({"a\"b":1})", .key = "a\"b", .value = "1",
       .erased = "{}"},
      {.name = "control escapes in key", .text = R"({"\b\f\n\r\t\\":1})", .key = "\b\f\n\r\t\\",
       .value = "1", .erased = "{}"},
      {.name = "two-byte UTF-8 via escape", .text = R"({"caf\u00e9":1})", .key = "caf\xC3\xA9",
       .value = "1", .erased = "{}"},
      {.name = "three-byte UTF-8 via escape", .text = R"({"\u2603":1})", .key = "\xE2\x98\x83",
       .value = "1", .erased = "{}"},
      {.name = "surrogate pair", .text = R"({"\uD83D\uDE00":1})", .key = "\xF0\x9F\x98\x80",
       .value = "1", .erased = "{}"},
      {.name = "lone surrogate never matches", .text = R"({"\uD83D":1})", .key = "\xED\xA0\xBD"},
      {.name = "lone low surrogate never matches", .text = R"({"\uDE00":1})",
       .key = "\xED\xB8\x80"},
      {.name = "high surrogate without its pair", .text = R"({"\uD83Dx":1})",
       .key = "\xED\xA0\xBDx"},
      {.name = "invalid escape never matches", .text = R"({"\q":1,"usage":2})", .key = "q"},
      {.name = "escaped NUL is not the end of the key", .text = R"({"usage\u0000":1})"},
      {.name = "prefix key", .text = R"({"usag":1,"usages":2})"},
      {.name = "keys as long, or longer, that differ at the end",
       .text = R"({"usagf":1,"usagex":2,"us\u0061gf":3,"usage":4})", .value = "4",
       .erased = R"({"usagf":1,"usagex":2,"us\u0061gf":3})"},
      {.name = "empty key", .text = R"({"":1})", .key = "", .value = "1", .erased = "{}"},

      // Not objects, or not well-formed up to the member.
      {.name = "empty text", .text = ""},
      {.name = "blank text", .text = " \n"},
      {.name = "array", .text = R"([{"usage":1}])"},
      {.name = "a JSON string", .text = R"("usage")"},
      {.name = "null", .text = "null"},
      {.name = "empty object", .text = "{}"},
      {.name = "empty object, spaced", .text = "{ }"},
      {.name = "unquoted key", .text = "{usage:1}"},
      {.name = "missing value", .text = R"({"usage":})"},
      {.name = "missing colon", .text = R"({"usage" 1})"},
      {.name = "key without value", .text = R"({"usage"})"},
      {.name = "bracket mismatch before the member", .text = R"({"a":[}],"usage":1})", .captured_whole = "1"},
      {.name = "wrong closing bracket, balanced count", .text = R"({"a":[1},"usage":1})", .captured_whole = "1"},
      {.name = "wrong closing bracket inside", .text = R"({"a":{"b":[}]},"usage":1})", .captured_whole = "1"},
      {.name = "comma before the first key", .text = R"({,"usage":1})", .captured_whole = "1"},
      {.name = "truncated inside the key", .text = R"({"usa)"},
      {.name = "garbage after the value", .text = R"({"usage":1 x})"},
      {.name = "trailing comma after the member", .text = R"({"usage":{"a":1}, })"},
      {.name = "truncated after a string value", .text = R"({"usage":"x")"},
      {.name = "truncated after a number", .text = R"({"usage":12)"},
      {.name = "truncated inside an object value", .text = R"({"usage":{"a":1)"},
      {.name = "malformed after the member", .text = R"({"usage":1,"a":[}],"b":2})", .value = "1",
       .erased = R"({"a":[}],"b":2})", .captured = std::nullopt},
      {.name = "text after the object", .text = R"({"a":0,"usage":[1]} {"usage":2})", .value = "[1]",
       .erased = R"({"a":0} {"usage":2})"},

      // Provider bodies.
      {.name = "OpenAI chat.completion.chunk with usage null",
       .text = R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,)"
               R"("delta":{"content":"hi"}}],"usage":null})",
       .value = "null",
       .erased = R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,)"
                 R"("delta":{"content":"hi"}}]})"},
      {.name = "OpenAI final chunk with usage",
       .text = R"({"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,)"
               R"("total_tokens":21,"prompt_tokens_details":{"cached_tokens":0}}})",
       .value = R"({"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,)"
                R"("prompt_tokens_details":{"cached_tokens":0}})",
       .erased = R"({"id":"c","choices":[]})"},
      {.name = "OpenAI chat.completion",
       .text = R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,)"
               R"("model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",)"
               R"("content":"w0 w1"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,)"
               R"("completion_tokens":2,"total_tokens":12}})",
       .value = R"({"prompt_tokens":10,"completion_tokens":2,"total_tokens":12})",
       .erased = R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,)"
                 R"("model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",)"
                 R"("content":"w0 w1"},"finish_reason":"stop"}]})"},
      {.name = "Anthropic message_start: usage is nested in message",
       .text = R"({"type":"message_start","message":{"id":"m","usage":{"input_tokens":25}}})"},
      {.name = "Anthropic message_delta: usage at depth 1",
       .text = R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},)"
               R"("usage":{"output_tokens":15}})",
       .value = R"({"output_tokens":15})",
       .erased = R"({"type":"message_delta","delta":{"stop_reason":"end_turn"}})"},
  };
  return table;
}

struct capture_result {
  bool complete = false;
  bool overflowed = false;
  bool done = false;
  std::string value;
  bool operator==(const capture_result&) const = default;
};

// Each piece lives in its own heap block, freed after the feed, so ASan sees any view kept.
// The last piece is fed as the text's end unless `more_may_follow`.
capture_result capture(std::string_view key, const std::vector<std::string_view>& pieces,
                       std::size_t max_value_bytes = 64 * 1024, bool more_may_follow = false) {
  top_level_member_capture c(std::string(key), max_value_bytes);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const std::string_view piece = pieces[i];
    auto copy = std::make_unique<char[]>(piece.size() + 1);
    piece.copy(copy.get(), piece.size());
    c.feed(std::string_view(copy.get(), piece.size()), !more_may_follow && i + 1 == pieces.size());
  }
  return {c.complete(), c.overflowed(), c.done(), std::string(c.value())};
}

std::vector<std::string_view> bytes_of(std::string_view text) {
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < text.size(); ++i) out.push_back(text.substr(i, 1));
  return out;
}

}  // namespace

TEST_CASE("find_top_level_member: table") {
  for (const json_case& c : cases()) {
    CAPTURE(c.name);
    CAPTURE(c.text);
    const std::optional<member_span> span = find_top_level_member(c.text, c.key);
    REQUIRE(span.has_value() == c.value.has_value());
    if (!span) continue;
    CHECK(span->value_begin <= span->value_end);
    CHECK(span->value_end <= c.text.size());
    CHECK(span->erase_begin <= span->value_begin);
    CHECK(span->value_end <= span->erase_end);
    CHECK(span->erase_end <= c.text.size());
    CHECK(c.text.substr(span->value_begin, span->value_end - span->value_begin) == *c.value);
    std::string erased(c.text);
    erased.erase(span->erase_begin, span->erase_end - span->erase_begin);
    CHECK(erased == c.erased);
  }
}

TEST_CASE("top_level_member_capture: table, whole, split at every offset, byte by byte") {
  for (const json_case& c : cases()) {
    CAPTURE(c.name);
    CAPTURE(c.text);
    const std::optional<std::string_view> want =
        c.captured == same_as_find ? c.value : c.captured;
    const std::optional<std::string_view> want_whole = c.captured_whole == same_as_find ? want : c.captured_whole;
    const capture_result whole = capture(c.key, {c.text});
    CHECK(whole.complete == want_whole.has_value());
    CHECK(whole.value == want_whole.value_or(""));
    CHECK_FALSE(whole.overflowed);

    // Split: read forwards (an empty first piece leaves the text whole).
    const capture_result split{want.has_value(), false, true, std::string(want.value_or(""))};
    for (std::size_t cut = 1; cut <= c.text.size(); ++cut) {
      CAPTURE(cut);
      CHECK(capture(c.key, {c.text.substr(0, cut), c.text.substr(cut)}) == split);
    }
    CHECK(capture(c.key, {"", c.text}) == whole);
    if (c.text.size() > 1) CHECK(capture(c.key, bytes_of(c.text)) == split);
  }
}

TEST_CASE("top_level_member_capture: done() once the outcome is known") {
  constexpr std::size_t max = 64 * 1024;
  for (bool more_may_follow : {false, true}) {
    CAPTURE(more_may_follow);
    CHECK(capture("usage", {R"({"a":1})"}, max, more_may_follow).done);      // absent
    CHECK(capture("usage", {R"([1])"}, max, more_may_follow).done);          // not an object
    CHECK(capture("usage", {R"({"usage":1})"}, max, more_may_follow).done);  // complete
  }
  // Still looking, until told the text has ended.
  for (std::string_view open : {R"({"a":1,)"sv, R"({"usage":1)"sv, R"({"usage":1,)"sv}) {
    CAPTURE(open);
    CHECK_FALSE(capture("usage", {open}, max, true).done);
    CHECK(capture("usage", {open}).done);
    CHECK_FALSE(capture("usage", {open}).complete);
  }
}

TEST_CASE("top_level_member_capture: a value met is taken only once the object has ended") {
  top_level_member_capture c("usage");
  c.feed(R"({"usage":{"n":1},)");
  CHECK_FALSE(c.complete());
  CHECK(c.value().empty());
  c.feed(R"("usage":{"n":2})");
  CHECK_FALSE(c.complete());
  c.feed("}");
  CHECK(c.complete());
  CHECK(c.value() == R"({"n":2})");
}

TEST_CASE("find_last_top_level_member: settles every table case that is JSON, as the forward scan does") {
  using tollgate::core::detail::find_last_top_level_member;
  using enum tollgate::core::detail::tail_match::outcome;
  std::size_t json_texts = 0;
  for (const json_case& c : cases()) {
    CAPTURE(c.name);
    CAPTURE(c.text);
    boost::system::error_code ec;
    const boost::json::value parsed = boost::json::parse(c.text, ec);
    if (ec || !parsed.is_object()) continue;
    ++json_texts;
    const std::optional<std::string_view> want = c.captured == same_as_find ? c.value : c.captured;
    const auto tail = find_last_top_level_member(c.text, c.key);
    REQUIRE(tail.what != unsure);
    REQUIRE((tail.what == found) == want.has_value());
    if (want) CHECK(c.text.substr(tail.value_begin, tail.value_end - tail.value_begin) == *want);
  }
  CHECK(json_texts > 40);
}

TEST_CASE("find_last_top_level_member: reads only what it must, and says when it cannot tell") {
  using tollgate::core::detail::find_last_top_level_member;
  using enum tollgate::core::detail::tail_match::outcome;
  struct row {
    std::string_view text;
    tollgate::core::detail::tail_match::outcome what;
    std::string_view value = "";
  };
  const row rows[] = {
      // Found without reading what comes before the member: not even broken text.
      {R"(not json at all, "usage":{"n":1}})", found, R"({"n":1})"},
      {R"(not json at all "usage":{"n":1}})", unsure},  // the member follows neither a comma nor the opening brace
      {R"([{]]]"x":1,"usage":{"n":1}})", found, R"({"n":1})"},
      {R"({"usage":[1,{"a":"]"}],"service_tier":"default","system_fingerprint":"fp_1"} )", found,
       R"([1,{"a":"]"}])"},
      {R"({"a":"\"usage\":1","b":2})", absent},
      {R"({ "a" : [ "x" , { } ] , "b" : null })", absent},
      {" { } ", absent},
      {R"(x{"usage":1})", unsure},  // text before the opening brace
      {R"({"usage":1}x)", unsure},  // or after the closing one
      {R"({"usage":1 x})", unsure},
      {R"({"usage":"a\"})", unsure},  // the closing quote is escaped
      {R"({"usage":[1}})", unsure},   // brackets that do not match
      {R"({"a":1 "usage":2})", unsure},
      {R"({"usage"2})", unsure},
      {R"({usage:2})", unsure},
      {"", unsure},
      {"}", unsure},
  };
  for (const row& r : rows) {
    CAPTURE(r.text);
    const auto tail = find_last_top_level_member(r.text, "usage");
    CHECK(tail.what == r.what);
    if (tail.what == found) CHECK(r.text.substr(tail.value_begin, tail.value_end - tail.value_begin) == r.value);
  }
  // Nesting past the depth limit cannot be told apart backwards either.
  const std::string deep = R"({"usage":)" + std::string(tollgate::core::max_json_depth + 1, '[') +
                           std::string(tollgate::core::max_json_depth + 1, ']') + "}";
  CHECK(find_last_top_level_member(deep, "usage").what == unsure);
}

TEST_CASE("top_level_member_capture: max_value_bytes") {
  const std::string_view text = R"({"a":"xxxxxxxxxxxx","usage":"12345","b":"yyyyyyyyyyyy"})";
  struct row {
    std::size_t max;
    capture_result want;
  };
  const row rows[] = {
      {7, {true, false, true, R"("12345")"}},  // exactly the value's size
      {6, {false, true, true, ""}},
      {0, {false, true, true, ""}},
  };
  for (const row& r : rows) {
    CAPTURE(r.max);
    CHECK(capture("usage", {text}, r.max) == r.want);
    for (std::size_t cut = 0; cut <= text.size(); ++cut)
      CHECK(capture("usage", {text.substr(0, cut), text.substr(cut)}, r.max) == r.want);
    CHECK(capture("usage", bytes_of(text), r.max) == r.want);
  }
}

TEST_CASE("top_level_member_capture: bytes after completion are ignored; reset reuses it") {
  top_level_member_capture c("usage");
  c.feed(R"({"usage":{"n":1}})");
  REQUIRE(c.complete());
  c.feed(R"(garbage "usage":2)");
  CHECK(c.value() == R"({"n":1})");

  c.reset();
  CHECK_FALSE(c.complete());
  CHECK(c.value().empty());
  c.feed(R"({"x":1,"us)");
  c.feed(R"(age":[2]})");
  CHECK(c.complete());
  CHECK(c.value() == "[2]");
}

TEST_CASE("top_level_member_capture: survives a move mid-stream") {
  top_level_member_capture a("a_key_longer_than_the_small_string_buffer");
  a.feed(R"({"a_key_longer_than)");
  top_level_member_capture b(std::move(a));
  b.feed(R"(_the_small_string_buffer":"v"})");
  CHECK(b.complete());
  CHECK(b.value() == R"("v")");
}

TEST_CASE("top_level_member_capture: values around the inline room, split anywhere") {
  // The value is kept inline up to 512 bytes and on the heap beyond; a piece may end on
  // either side of that edge, and a spilled value must keep the bytes already taken.
  for (std::size_t size : {1u, 510u, 511u, 512u, 513u, 1025u, 3000u}) {
    CAPTURE(size);
    const std::string want = size == 1 ? "1" : "\"" + std::string(size - 2, 'x') + "\"";
    const std::string text = R"({"a":[1,{"b":2}],"usage":)" + want + R"(,"z":0})";
    const capture_result expected{true, false, true, want};
    CHECK(capture("usage", {text}) == expected);
    for (std::size_t cut = 0; cut <= text.size(); cut += size > 600 ? 7 : 1) {
      CAPTURE(cut);
      CHECK(capture("usage", {text.substr(0, cut), text.substr(cut)}) == expected);
    }
    CHECK(capture("usage", bytes_of(text)) == expected);
  }
}

TEST_CASE("top_level_member_capture: reset after a spilled value, then a small one") {
  top_level_member_capture c("usage");
  const std::string big = R"({"usage":")" + std::string(2000, 'y') + R"("})";
  c.feed(std::string_view(big).substr(0, 700));
  c.feed(std::string_view(big).substr(700));
  REQUIRE(c.complete());
  CHECK(c.value().size() == 2002);
  c.reset();
  c.feed(R"({"usage":{"n")");
  c.feed(R"(:3}})");
  CHECK(c.complete());
  CHECK(c.value() == R"({"n":3})");
}

TEST_CASE("top_level_member_capture: keys split across pieces on both sides of the inline key room") {
  // A split key's bytes are kept in a buffer with inline room for 10-byte keys; longer keys
  // reserve a heap block up front. Both must match wherever the key is cut, escapes included.
  for (std::string_view key : {"k"sv, "ten_bytes_"sv, "eleven_byte"sv, "a_much_longer_key_than_the_inline_room"sv}) {
    CAPTURE(key);
    const std::string text = R"({"x":1,")" + std::string(key) + R"(":[7],"y":2})";
    const capture_result expected{true, false, true, "[7]"};
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
      CAPTURE(cut);
      CHECK(capture(key, {text.substr(0, cut), text.substr(cut)}) == expected);
    }
    CHECK(capture(key, bytes_of(text)) == expected);
    // Escaped to six times its length, the longest spelling that can still match.
    std::string escaped;
    for (char ch : key) {
      static constexpr char hex[] = "0123456789abcdef";
      escaped += "\\u00";
      escaped += hex[static_cast<unsigned char>(ch) >> 4];
      escaped += hex[static_cast<unsigned char>(ch) & 0xf];
    }
    const std::string escaped_text = R"({")" + escaped + R"(":true})";
    CHECK(capture(key, bytes_of(escaped_text)) == capture_result{true, false, true, "true"});
  }
}

TEST_CASE("find_top_level_member: nesting depth limit") {
  auto nested = [](std::size_t depth) {
    return R"({"a":)" + std::string(depth, '[') + std::string(depth, ']') + R"(,"usage":1})";
  };
  const std::string ok = nested(tollgate::core::max_json_depth);
  const std::string too_deep = nested(tollgate::core::max_json_depth + 1);
  CHECK(find_top_level_member(ok, "usage").has_value());
  CHECK_FALSE(find_top_level_member(too_deep, "usage").has_value());
}

TEST_CASE("find_top_level_member: deleting usage:null from every chunk of a stream") {
  const std::string_view chunks[] = {
      R"({"id":"c","choices":[{"delta":{"content":"a"}}],"usage":null})",
      R"({"usage":null,"id":"c","choices":[{"delta":{"content":"b"}}]})",
      R"({"id":"c","usage":null,"choices":[]})",
  };
  const std::string_view want[] = {
      R"({"id":"c","choices":[{"delta":{"content":"a"}}]})",
      R"({"id":"c","choices":[{"delta":{"content":"b"}}]})",
      R"({"id":"c","choices":[]})",
  };
  for (std::size_t i = 0; i < std::size(chunks); ++i) {
    std::string text(chunks[i]);
    const auto span = find_top_level_member(text, "usage");
    REQUIRE(span);
    REQUIRE(text.substr(span->value_begin, span->value_end - span->value_begin) == "null");
    text.erase(span->erase_begin, span->erase_end - span->erase_begin);
    CHECK(text == want[i]);
    CHECK_FALSE(find_top_level_member(text, "usage"));  // and it is still an object
    CHECK(find_top_level_member(text, "id"));
  }
}

TEST_CASE("containers are skipped right at every alignment to the scanner's 16-byte blocks") {
  // The container skipper reads sixteen bytes at a time and trusts its masks only up to a
  // block's first backslash. Each container here is placed after 0..31 bytes of padding, so
  // every tricky byte (quote, backslash run, bracket inside a string, the closing bracket)
  // lands on every position of a block, and on both sides of a block's end.
  const std::string_view containers[] = {
      R"([1,[2,{"u":"]}"}],"]"])",
      R"({"content":"a \"quoted\" [word] {in} text","n":[1,2,3]})",
      R"({"k":"\\","l":"\\\\\"]\\","m":["\"","\\\"[","{"]})",
      R"({"arguments":"{\"location\":\"Paris\",\"days\":[1,2]}","name":"get_weather"})",
      R"([[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]])",
      R"({"text":"line one\nline two\n\n\ttabbed \u0022quote\u0022 \\ end","z":{}})",
      R"(["\\\\\\\\\\\\\\\\","\\\\\\\\\\\\\\\\\"]\"","]"])",
      R"({"a":"}}}}}}}}}}}}}}}}]]]]]]]]]]]]]]]]"})",
      // Not JSON, but within what the scan accepts: a backslash outside strings is passed
      // over like any other stray byte.
      R"([1, \ ,2,"a\"]",\\,3])",
  };
  for (std::string_view container : containers) {
    for (std::size_t padding = 0; padding < 32; ++padding) {
      for (std::string_view filler : {" "sv, "x"sv}) {
        // Filler 'x' inside a string shifts the container without changing the grammar.
        std::string pad;
        for (std::size_t i = 0; i < padding; ++i) pad += filler;
        const std::string text = filler == " " ? "{" + pad + R"("a":)" + std::string(container) +
                                                     R"(,"usage":)" + std::string(container) + ",\"z\":1}"
                                               : R"({"p":")" + pad + R"(","a":)" + std::string(container) +
                                                     R"(,"usage":)" + std::string(container) + ",\"z\":1}";
        CAPTURE(text);
        const auto span = find_top_level_member(text, "usage");
        REQUIRE(span.has_value());
        CHECK(text.substr(span->value_begin, span->value_end - span->value_begin) == container);
        const capture_result expected{true, false, true, std::string(container)};
        CHECK(capture("usage", {text}) == expected);
        for (std::size_t cut = 1; cut < text.size(); cut += 5) {
          CAPTURE(cut);
          CHECK(capture("usage", {text.substr(0, cut), text.substr(cut)}) == expected);
        }
      }
    }
  }
}

TEST_CASE("a bracket mismatch is found at every alignment to the scanner's 16-byte blocks") {
  for (std::size_t padding = 0; padding < 32; ++padding) {
    const std::string pad(padding, ' ');
    for (std::string_view broken : {R"([{"a":"]"]})"sv, R"({"x":[1,2,"}"}})"sv, R"([[["\"]"]]}})"sv}) {
      const std::string text = "{" + pad + R"("a":)" + std::string(broken) + R"(,"usage":1})";
      CAPTURE(text);
      CHECK_FALSE(find_top_level_member(text, "usage").has_value());
      CHECK(capture("usage", {text.substr(0, 1), text.substr(1)}) == capture_result{false, false, true, ""});
      // Fed whole, the text is read from its end, and the mismatch before the member is not.
      CHECK(capture("usage", {text}) == capture_result{true, false, true, "1"});
    }
  }
}

namespace {

// Random JSON for the property below: every value kind, strings full of the bytes the scans
// must not be fooled by, and random blanks between tokens.
class json_writer {
 public:
  explicit json_writer(std::uint64_t seed) : rng_(seed) {}

  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

  std::string blank() {
    static constexpr std::string_view blanks[] = {"", "", "", " ", "\n  ", "\t", "\r\n"};
    return std::string(blanks[pick(std::size(blanks))]);
  }

  std::string string_token() {
    static constexpr std::string_view parts[] = {"a", "usage", "\\\"", "\\\\", "]", "}", "{", "[", ",", ":",
                                                 "\\u0022", "\\n", "h\xC3\xA9", " ", "\\/", "\\\\\\\""};
    std::string out = "\"";
    for (std::size_t n = pick(6); n > 0; --n) out += parts[pick(std::size(parts))];
    return out + "\"";
  }

  std::string value(int depth) {
    switch (depth > 3 ? pick(5) : pick(7)) {
      case 0: return "null";
      case 1: return pick(2) != 0 ? "true" : "false";
      case 2: return std::to_string(static_cast<long long>(pick(2000)) - 1000) + (pick(3) == 0 ? ".5e+3" : "");
      case 3:
      case 4: return string_token();
      case 5: {
        std::string out = "[" + blank();
        for (std::size_t n = pick(4), i = 0; i < n; ++i) out += (i > 0 ? "," + blank() : "") + value(depth + 1) + blank();
        return out + "]";
      }
      default: return object(depth + 1, {});
    }
  }

  // An object whose members are random, with `forced` keys among them at random places.
  std::string object(int depth, std::vector<std::string> forced) {
    std::vector<std::string> keys;
    for (std::size_t n = pick(5); n > 0; --n) keys.push_back(string_token());
    for (auto& key : forced) keys.insert(keys.begin() + static_cast<std::ptrdiff_t>(pick(keys.size() + 1)), key);
    std::string out = "{" + blank();
    for (std::size_t i = 0; i < keys.size(); ++i)
      out += (i > 0 ? "," + blank() : "") + keys[i] + blank() + ":" + blank() + value(depth) + blank();
    return out + "}";
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace

TEST_CASE("usage capture: read whole from the end, or forwards in pieces, it is what a JSON parser reads") {
  json_writer gen(20261122);
  std::size_t with_usage = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<std::string> forced;
    for (std::size_t n = gen.pick(3); n > 0; --n) forced.emplace_back(gen.pick(4) == 0 ? R"("us\u0061ge")" : R"("usage")");
    const std::string text = gen.blank() + gen.object(0, forced) + gen.blank();
    CAPTURE(text);
    const boost::json::value parsed = boost::json::parse(text);
    // A parser keeps the last of duplicate members; look it up by walking them all.
    const boost::json::value* last = nullptr;
    for (const auto& member : parsed.get_object())
      if (member.key() == "usage") last = &member.value();
    const capture_result whole = capture("usage", {text});
    REQUIRE(whole.complete == (last != nullptr));
    if (last != nullptr) {
      ++with_usage;
      CHECK(boost::json::parse(whole.value) == *last);
    }
    const std::size_t cut = 1 + gen.pick(text.size() - 1);
    CAPTURE(cut);
    CHECK(capture("usage", {std::string_view(text).substr(0, cut), std::string_view(text).substr(cut)}) == whole);
  }
  CHECK(with_usage > 1500);
}
