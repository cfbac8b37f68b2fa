#include "core/ndjson_parser.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using tollgate::core::ndjson_parser;
using namespace std::string_literals;
using namespace std::string_view_literals;

namespace {

using lines = std::vector<std::string>;

struct run_result {
  lines seen;
  bool clean = false;
  std::size_t oversized = 0;
  std::size_t max_buffered = 0;
};

// Feeds `pieces` in order, each from its own heap allocation that is freed right after the
// feed, so a view kept past its feed shows up under ASan.
run_result run(const std::vector<std::string_view>& pieces, std::size_t max_line_bytes) {
  ndjson_parser parser(max_line_bytes);
  run_result out;
  auto on_line = [&](std::string_view line) { out.seen.emplace_back(line); };
  for (std::string_view piece : pieces) {
    auto copy = std::make_unique<char[]>(piece.size() + 1);
    piece.copy(copy.get(), piece.size());
    parser.feed(std::string_view(copy.get(), piece.size()), on_line);
    out.max_buffered = std::max(out.max_buffered, parser.buffered_bytes());
  }
  out.clean = parser.finish(on_line);
  out.oversized = parser.oversized_lines();
  return out;
}

struct fixture {
  const char* name;
  std::string_view input;
  lines expected;
  bool clean = true;
  std::size_t oversized = 0;
  std::size_t max_line_bytes = 1 << 20;
};

constexpr std::string_view ollama_stream =
    R"({"model":"llama3.2","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":"The"},"done":false})"
    "\n"
    R"({"model":"llama3.2","created_at":"2024-01-01T00:00:01Z","message":{"role":"assistant","content":" sky\n"},"done":false})"
    "\n"
    R"({"model":"llama3.2","created_at":"2024-01-01T00:00:02Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":2})"
    "\n";

lines ollama_expected() {
  lines out;
  std::string_view rest = ollama_stream;
  while (!rest.empty()) {
    const std::size_t lf = rest.find('\n');
    out.emplace_back(rest.substr(0, lf));
    rest.remove_prefix(lf + 1);
  }
  return out;
}

const std::string long_line = std::string(100, 'x');
const std::string oversized_between = "{\"a\":1}\n" + long_line + "\n{\"b\":2}\n";
const std::string oversized_crlf = "a\r\n" + long_line + "\r\nb\r\n";
const std::string oversized_unterminated = "a\n" + long_line;
const std::string two_oversized = long_line + "\n" + long_line + "\nz\n";

std::vector<fixture> fixtures() {
  return {
      {"empty input", "", {}},
      {"one line", "{\"a\":1}\n", {"{\"a\":1}"}},
      {"several lines", "1\n22\n333\n", {"1", "22", "333"}},
      {"CRLF", "{\"a\":1}\r\n{\"b\":2}\r\n", {"{\"a\":1}", "{\"b\":2}"}},
      {"mixed LF and CRLF", "a\nb\r\nc\n", {"a", "b", "c"}},
      {"a lone CR is content, not a terminator", "a\rb\nc\r\r\n", {"a\rb", "c\r"}},
      {"empty lines are skipped", "\n\na\n\n\r\nb\n\n", {"a", "b"}},
      {"blank lines (spaces, tabs, CRs) are skipped", " \n\t\r\n \r \nx\n", {"x"}},
      {"leading and trailing spaces of a real line are kept", "  {} \n", {"  {} "}},
      {"only newlines", "\n\r\n\n", {}},
      {"unterminated last line is emitted by finish", "a\nb", {"a", "b"}, false},
      {"unterminated last line with CR", "a\nb\r", {"a", "b"}, false},
      {"unterminated blank tail is still a clean end", "a\n \r", {"a"}, true},
      {"bytes that look like JSON framing are not interpreted", "{\"s\":\"}\\n{\"}\n[1,\n2]\n",
       {"{\"s\":\"}\\n{\"}", "[1,", "2]"}},
      {"NUL and UTF-8 bytes pass through", "a\0b\n\xC3\xA9\n"sv, {"a\0b"s, "\xC3\xA9"}},
      {"line of exactly max_line_bytes is kept", "12345\n", {"12345"}, true, 0, 5},
      {"CRLF does not count towards the limit", "12345\r\n", {"12345"}, true, 0, 5},
      {"line one byte over max_line_bytes is dropped", "123456\n1\n", {"1"}, true, 1, 5},
      {"a CR inside the line counts", "1234\r5\nok\n", {"ok"}, true, 1, 5},
      {"a kept CR before CRLF counts", "1234\r\r\nok\n", {"ok"}, true, 1, 4},
      {"oversized line between two normal ones", oversized_between, {"{\"a\":1}", "{\"b\":2}"},
       true, 1, 16},
      {"oversized line with CRLF", oversized_crlf, {"a", "b"}, true, 1, 16},
      {"two oversized lines are counted twice", two_oversized, {"z"},
       true, 2, 16},
      {"unterminated oversized tail", oversized_unterminated, {"a"}, false, 1, 16},
      {"unterminated tail of exactly max_line_bytes is emitted", "a\n12345", {"a", "12345"}, false,
       0, 5},
      {"Ollama /api/chat stream", ollama_stream, ollama_expected()},
  };
}

void check_same(const run_result& got, const run_result& want) {
  CHECK(got.seen == want.seen);
  CHECK(got.clean == want.clean);
  CHECK(got.oversized == want.oversized);
}

}  // namespace

TEST_CASE("ndjson_parser: fixtures, whole and split at every offset and byte by byte") {
  for (const fixture& f : fixtures()) {
    CAPTURE(f.name);
    const std::string_view in = f.input;
    const run_result whole = run({in}, f.max_line_bytes);

    CHECK(whole.seen == f.expected);
    CHECK(whole.clean == f.clean);
    CHECK(whole.oversized == f.oversized);

    for (std::size_t cut = 0; cut <= in.size(); ++cut) {
      CAPTURE(cut);
      const run_result split = run({in.substr(0, cut), in.substr(cut)}, f.max_line_bytes);
      check_same(split, whole);
      CHECK(split.max_buffered <= f.max_line_bytes + 1);
    }

    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < in.size(); ++i) bytes.push_back(in.substr(i, 1));
    const run_result one_by_one = run(bytes, f.max_line_bytes);
    check_same(one_by_one, whole);
    CHECK(one_by_one.max_buffered <= f.max_line_bytes + 1);
  }
}

TEST_CASE("ndjson_parser: a line inside one feed is a view into the input, no copy") {
  const std::string input = "{\"a\":1}\r\n{\"b\":2}\npart";
  const char* first = input.data();
  const char* last = input.data() + input.size();
  ndjson_parser parser;
  int n = 0;
  parser.feed(input, [&](std::string_view line) {
    CHECK(line.data() >= first);
    CHECK(line.data() + line.size() <= last);
    ++n;
  });
  CHECK(n == 2);
  CHECK(parser.buffered_bytes() == 4);  // only the incomplete tail is copied
  lines seen;
  parser.feed("ial\n", [&](std::string_view line) {
    CHECK_FALSE((line.data() >= first && line.data() < last));  // joined in the parser's buffer
    seen.emplace_back(line);
  });
  CHECK(seen == lines{"partial"});
  CHECK(parser.buffered_bytes() == 0);
}

TEST_CASE("ndjson_parser: an oversized line is never buffered, whatever the feed size") {
  ndjson_parser parser(1024);
  lines seen;
  auto keep = [&](std::string_view line) { seen.emplace_back(line); };
  const std::string chunk(4096, 'x');
  for (int i = 0; i < 256; ++i) {  // 1 MiB for a 1 KiB limit
    parser.feed(chunk, keep);
    REQUIRE(parser.buffered_bytes() <= 1024);
  }
  CHECK(parser.oversized_lines() == 1);  // counted while still inside it
  parser.feed("tail of the long line\n{\"ok\":true}\n", keep);
  CHECK(seen == lines{"{\"ok\":true}"});
  CHECK(parser.oversized_lines() == 1);
  CHECK(parser.finish(keep));
}

TEST_CASE("ndjson_parser: finish() starts a new stream; reset() also zeroes the counter") {
  ndjson_parser parser(4);
  lines seen;
  auto keep = [&](std::string_view line) { seen.emplace_back(line); };
  parser.feed("toolong\nab", keep);
  CHECK(parser.oversized_lines() == 1);
  CHECK_FALSE(parser.finish(keep));
  CHECK(seen == lines{"ab"});
  CHECK(parser.buffered_bytes() == 0);
  parser.feed("cd\n", keep);  // "ab" is not glued to the next stream
  CHECK(seen == lines{"ab", "cd"});
  CHECK(parser.oversized_lines() == 1);

  parser.feed("toolong", keep);  // discarding when the stream ends
  CHECK_FALSE(parser.finish(keep));
  parser.feed("ef\n", keep);  // the new stream is not discarding
  CHECK(seen == lines{"ab", "cd", "ef"});
  CHECK(parser.oversized_lines() == 2);

  parser.feed("gh", keep);
  parser.reset();
  CHECK(parser.oversized_lines() == 0);
  CHECK(parser.buffered_bytes() == 0);
  parser.feed("ij\n", keep);
  CHECK(seen == lines{"ab", "cd", "ef", "ij"});
  CHECK(parser.finish(keep));
}

TEST_CASE("ndjson_parser: accepts const and mutable callables") {
  ndjson_parser parser;
  int count = 0;
  const auto by_const = [&count](std::string_view) { ++count; };
  parser.feed("1\n", by_const);
  struct counter {
    int n = 0;
    void operator()(std::string_view) { ++n; }
  } by_ref;
  parser.feed("2\n3\n", by_ref);
  parser.feed("4\n", counter{});
  CHECK(count == 1);
  CHECK(by_ref.n == 2);
}
