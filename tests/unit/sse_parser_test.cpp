#include "core/sse_parser.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

using tollgate::core::sse_event;
using tollgate::core::sse_parser;
using namespace std::string_view_literals;

namespace {

// An owned copy of an event: the parser's views die with the callback.
struct seen_event {
  std::string raw, event, data, id;
  bool has_data = false;
  bool done = false;
  bool operator==(const seen_event&) const = default;
};

[[maybe_unused]] std::ostream& operator<<(std::ostream& os, const seen_event& e) {
  return os << "{raw=" << doctest::toString(e.raw) << " event=" << e.event << " data="
            << doctest::toString(e.data) << " id=" << e.id << " has_data=" << e.has_data << "}";
}

struct run_result {
  std::vector<seen_event> events;
  std::string concatenated_raw;
  bool clean = false;
  std::size_t oversized = 0;
  std::size_t max_buffered = 0;
  std::size_t data_outside_raw = 0;  // single-line payloads that were not a view into raw
};

// Feeds `pieces` in order, each from its own heap allocation that is freed right after the
// feed, so a view kept past its feed shows up under ASan.
run_result run(const std::vector<std::string_view>& pieces, std::size_t max_event_bytes) {
  sse_parser parser(max_event_bytes);
  run_result out;
  auto on_event = [&](const sse_event& e) {
    out.events.push_back({std::string(e.raw), std::string(e.event), std::string(e.data),
                          std::string(e.id), e.has_data, e.is_done()});
    out.concatenated_raw += e.raw;
    const bool single_line = e.has_data && e.data.find('\n') == std::string_view::npos;
    if (single_line && (e.data.data() < e.raw.data() || e.data.data() + e.data.size() > e.raw.data() + e.raw.size()))
      ++out.data_outside_raw;
  };
  for (std::string_view piece : pieces) {
    auto copy = std::make_unique<char[]>(piece.size() + 1);
    piece.copy(copy.get(), piece.size());
    parser.feed(std::string_view(copy.get(), piece.size()), on_event);
    out.max_buffered = std::max(out.max_buffered, parser.buffered_bytes());
  }
  out.clean = parser.finish(on_event);
  out.oversized = parser.oversized_events();
  return out;
}

struct ev {  // expected event, terse for the table
  std::string_view raw, event, data, id;
  bool has_data;
};

struct fixture {
  const char* name;
  std::string_view input;
  std::vector<ev> expected;
  bool clean = true;
  std::size_t oversized = 0;
  std::size_t max_event_bytes = 1 << 20;
  std::string_view passthrough = "\x01";  // concatenated raws; "\x01" means the whole input
};

constexpr std::string_view openai_stream =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],"
    "\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"
    ": keep-alive\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}"
    "\n\n"
    "data: [DONE]\n\n";

constexpr std::string_view anthropic_stream =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":"
    "25,\"output_tokens\":1}}}\r\n\r\n"
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Hello\"}}\r\n\r\n"
    "event: message_delta\r\n"
    "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\r\n\r\n"
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";

std::vector<ev> openai_expected() {
  std::vector<ev> out;
  std::string_view rest = openai_stream;
  while (!rest.empty()) {
    const std::size_t end = rest.find("\n\n") + 2;
    const std::string_view raw = rest.substr(0, end);
    if (raw.front() == ':') out.push_back({raw, "", "", "", false});
    else out.push_back({raw, "", raw.substr(6, raw.size() - 8), "", true});
    rest.remove_prefix(end);
  }
  return out;
}

std::vector<ev> anthropic_expected() {
  std::vector<ev> out;
  std::string_view rest = anthropic_stream;
  while (!rest.empty()) {
    const std::size_t end = rest.find("\r\n\r\n") + 4;
    const std::string_view raw = rest.substr(0, end);
    const std::size_t eol = raw.find("\r\n");
    const std::string_view data_line = raw.substr(eol + 2, raw.size() - eol - 2 - 4);
    out.push_back({raw, raw.substr(7, eol - 7), data_line.substr(6), "", true});
    rest.remove_prefix(end);
  }
  return out;
}

const std::string big_data = "data: " + std::string(100, 'x') + "\n\n";
const std::string oversized_between = "data: a\n\n" + big_data + "data: b\n\n";
const std::string oversized_comment =
    "data: a\n\n:" + std::string(100, 'c') + "\r\n\r\ndata: b\n\n";
const std::string oversized_unterminated = "data: a\n\n" + std::string(100, 'x');

std::vector<fixture> fixtures() {
  return {
      {"empty input", "", {}},
      {"LF", "data: hello\n\n", {{"data: hello\n\n", "", "hello", "", true}}},
      {"CRLF",
       "data: a\r\nevent: e\r\n\r\ndata: b\r\n\r\n",
       {{"data: a\r\nevent: e\r\n\r\n", "e", "a", "", true},
        {"data: b\r\n\r\n", "", "b", "", true}}},
      {"CR (last block held for a possible LF, emitted by finish)",
       "data: a\r\rdata: b\rid: 3\r\r",
       {{"data: a\r\r", "", "a", "", true}, {"data: b\rid: 3\r\r", "", "b", "3", true}}},
      {"mixed terminators",
       "data: a\r\ndata: b\nid: 7\r\r\ndata: c\r\n\n:x\r\r",
       {{"data: a\r\ndata: b\nid: 7\r\r\n", "", "a\nb", "7", true},
        {"data: c\r\n\n", "", "c", "", true},
        {":x\r\r", "", "", "", false}}},
      {"comment-only block is emitted",
       ": keep-alive\n\n:\n\n",
       {{": keep-alive\n\n", "", "", "", false}, {":\n\n", "", "", "", false}}},
      {"comments inside an event",
       ": hi\ndata: x\n: there\ndata: y\n\n",
       {{": hi\ndata: x\n: there\ndata: y\n\n", "", "x\ny", "", true}}},
      {"multi-line data",
       "data: line1\ndata: line2\ndata:line3\n\ndata: solo\n\n",
       {{"data: line1\ndata: line2\ndata:line3\n\n", "", "line1\nline2\nline3", "", true},
        {"data: solo\n\n", "", "solo", "", true}}},
      {"empty data lines inside multi-line data",
       "data: a\ndata:\ndata: b\ndata\n\n",
       {{"data: a\ndata:\ndata: b\ndata\n\n", "", "a\n\nb\n", "", true}}},
      {"event and id fields, last wins",
       "event: add\nid: 42\ndata: {}\n\nevent: a\nevent: b\nid: 1\nid: 2\ndata: x\n\n",
       {{"event: add\nid: 42\ndata: {}\n\n", "add", "{}", "42", true},
        {"event: a\nevent: b\nid: 1\nid: 2\ndata: x\n\n", "b", "x", "2", true}}},
      {"event without data is not dispatchable",
       "event: ping\n\n",
       {{"event: ping\n\n", "ping", "", "", false}}},
      {"empty data", "data:\n\n", {{"data:\n\n", "", "", "", true}}},
      {"data with only the space", "data: \n\n", {{"data: \n\n", "", "", "", true}}},
      {"only one leading space is removed, no colon splitting of the value",
       "data:  two\n\ndata:x:y: z\n\n",
       {{"data:  two\n\n", "", " two", "", true}, {"data:x:y: z\n\n", "", "x:y: z", "", true}}},
      {"data without colon", "data\n\n", {{"data\n\n", "", "", "", true}}},
      {"field names without colon",
       "event\nid\ndata: x\n\n",
       {{"event\nid\ndata: x\n\n", "", "x", "", true}}},
      {"unknown fields and retry ignored, case-sensitive names",
       "retry: 1000\nfoo: bar\nData: no\n data: no\ndata: x\n\n",
       {{"retry: 1000\nfoo: bar\nData: no\n data: no\ndata: x\n\n", "", "x", "", true}}},
      {"id containing NUL is ignored",
       "id: 5\nid: a\0b\ndata: x\n\n"sv,
       {{"id: 5\nid: a\0b\ndata: x\n\n"sv, "", "x", "5", true}}},
      {"[DONE]", "data: [DONE]\n\n", {{"data: [DONE]\n\n", "", "[DONE]", "", true}}},
      {"blank-line-only blocks keep the byte stream whole",
       "\n\r\ndata: a\n\n\n",
       {{"\n", "", "", "", false},
        {"\r\n", "", "", "", false},
        {"data: a\n\n", "", "a", "", true},
        {"\n", "", "", "", false}}},
      {"BOM at stream start is skipped",
       "\xEF\xBB\xBF" "data: x\n\n",
       {{"data: x\n\n", "", "x", "", true}},
       true, 0, 1 << 20, "data: x\n\n"},
      {"BOM prefix that is not a BOM is content",
       "\xEF\xBB" "data: x\n\n",
       {{"\xEF\xBB" "data: x\n\n", "", "", "", false}}},
      {"BOM later in the stream is content",
       "data: a\n\n\xEF\xBB\xBF" "data: b\n\n",
       {{"data: a\n\n", "", "a", "", true}, {"\xEF\xBB\xBF" "data: b\n\n", "", "", "", false}}},
      {"only a BOM", "\xEF\xBB\xBF", {}, true, 0, 1 << 20, ""},
      {"only part of a BOM", "\xEF\xBB", {}, false, 0, 1 << 20, ""},
      {"oversized block between two normal ones",
       oversized_between,
       {{"data: a\n\n", "", "a", "", true}, {"data: b\n\n", "", "b", "", true}},
       true, 1, 64, "data: a\n\ndata: b\n\n"},
      {"oversized comment block with CRLF",
       oversized_comment,
       {{"data: a\n\n", "", "a", "", true}, {"data: b\n\n", "", "b", "", true}},
       true, 1, 64, "data: a\n\ndata: b\n\n"},
      {"block of exactly max_event_bytes is kept",
       "data: 12\n\n",
       {{"data: 12\n\n", "", "12", "", true}}, true, 0, 10},
      {"block one byte over max_event_bytes is dropped",
       "data: 123\n\ndata: 1\n\n",
       {{"data: 1\n\n", "", "1", "", true}}, true, 1, 10, "data: 1\n\n"},
      {"the LF of a final CRLF counts towards the limit",
       "data: 1\r\r\ndata: 2\r\r",
       {{"data: 2\r\r", "", "2", "", true}}, true, 1, 9, "data: 2\r\r"},
      {"unterminated oversized tail",
       oversized_unterminated,
       {{"data: a\n\n", "", "a", "", true}}, false, 1, 64, "data: a\n\n"},
      {"unterminated trailing block is discarded",
       "data: a\n\ndata: b\n",
       {{"data: a\n\n", "", "a", "", true}}, false, 0, 1 << 20, "data: a\n\n"},
      {"trailing CR of a non-blank line is not an event end",
       "data: a\n\ndata: b\r",
       {{"data: a\n\n", "", "a", "", true}}, false, 0, 1 << 20, "data: a\n\n"},
      {"OpenAI chat.completion.chunk stream", openai_stream, openai_expected()},
      {"Anthropic stream with event lines", anthropic_stream, anthropic_expected()},
  };
}

std::vector<seen_event> to_seen(const std::vector<ev>& expected) {
  std::vector<seen_event> out;
  for (const ev& e : expected)
    out.push_back({std::string(e.raw), std::string(e.event), std::string(e.data),
                   std::string(e.id), e.has_data, e.has_data && e.data == "[DONE]"});
  return out;
}

void check_same(const run_result& got, const run_result& want) {
  CHECK(got.events == want.events);
  CHECK(got.concatenated_raw == want.concatenated_raw);
  CHECK(got.clean == want.clean);
  CHECK(got.oversized == want.oversized);
  CHECK(got.data_outside_raw == 0);
}

}  // namespace

TEST_CASE("sse_parser: fixtures, whole and split at every offset and byte by byte") {
  for (const fixture& f : fixtures()) {
    CAPTURE(f.name);
    const std::string_view in = f.input;
    const run_result whole = run({in}, f.max_event_bytes);

    CHECK(whole.events == to_seen(f.expected));
    CHECK(whole.clean == f.clean);
    CHECK(whole.oversized == f.oversized);
    CHECK(whole.concatenated_raw == (f.passthrough == "\x01" ? in : f.passthrough));
    CHECK(whole.data_outside_raw == 0);

    for (std::size_t cut = 0; cut <= in.size(); ++cut) {
      CAPTURE(cut);
      const run_result split = run({in.substr(0, cut), in.substr(cut)}, f.max_event_bytes);
      check_same(split, whole);
      CHECK(split.max_buffered <= f.max_event_bytes);
    }

    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < in.size(); ++i) bytes.push_back(in.substr(i, 1));
    const run_result one_by_one = run(bytes, f.max_event_bytes);
    check_same(one_by_one, whole);
    CHECK(one_by_one.max_buffered <= f.max_event_bytes);
  }
}

TEST_CASE("sse_parser: a block inside one feed is a view into the input, no copy") {
  const std::string input = "data: one\n\ndata: a\ndata: b\n\n";
  const char* first = input.data();
  const char* last = input.data() + input.size();
  auto inside = [&](std::string_view v) {
    return v.data() >= first && v.data() + v.size() <= last;
  };

  sse_parser parser;
  int n = 0;
  parser.feed(input, [&](const sse_event& e) {
    CHECK(inside(e.raw));
    if (n == 0) CHECK(inside(e.data));      // single-line data: a view too
    if (n == 1) CHECK_FALSE(inside(e.data));  // multi-line data: joined buffer
    ++n;
  });
  CHECK(n == 2);
  CHECK(parser.buffered_bytes() == 0);
}

TEST_CASE("sse_parser: only the incomplete tail is buffered") {
  sse_parser parser;
  std::vector<std::string> raws;
  auto keep = [&](const sse_event& e) { raws.emplace_back(e.raw); };
  parser.feed("data: a\n\ndata: par", keep);
  CHECK(raws == std::vector<std::string>{"data: a\n\n"});
  CHECK(parser.buffered_bytes() == "data: par"sv.size());
  parser.feed("tial\n\n", keep);
  CHECK(raws == std::vector<std::string>{"data: a\n\n", "data: partial\n\n"});
  CHECK(parser.buffered_bytes() == 0);
}

TEST_CASE("sse_parser: an oversized block is never buffered, whatever the feed size") {
  sse_parser parser(1024);
  std::vector<std::string> data;
  auto keep = [&](const sse_event& e) { data.emplace_back(e.data); };
  parser.feed("data: ", keep);
  const std::string chunk(4096, 'x');
  for (int i = 0; i < 256; ++i) {  // 1 MiB for a 1 KiB limit
    parser.feed(chunk, keep);
    REQUIRE(parser.buffered_bytes() <= 1024);
  }
  CHECK(parser.oversized_events() == 1);
  parser.feed("\n\ndata: ok\n\n", keep);
  CHECK(data == std::vector<std::string>{"ok"});
  CHECK(parser.oversized_events() == 1);
}

TEST_CASE("sse_parser: a CR-terminated block at the end of a feed waits for the next byte") {
  sse_parser parser;
  std::vector<std::string> raws;
  auto keep = [&](const sse_event& e) { raws.emplace_back(e.raw); };
  parser.feed("data: a\r\n\r", keep);
  CHECK(raws.empty());
  parser.feed("\ndata: b\r\r", keep);
  CHECK(raws == std::vector<std::string>{"data: a\r\n\r\n"});
  parser.feed("data: c\r\r", keep);  // not an LF: the held block is complete as it was
  CHECK(raws == std::vector<std::string>{"data: a\r\n\r\n", "data: b\r\r"});
  CHECK(parser.finish(keep));
  CHECK(raws.back() == "data: c\r\r");
}

TEST_CASE("sse_parser: finish() without a callback reports a held block as not clean") {
  sse_parser parser;
  parser.feed("data: a\r\r", [](const sse_event&) { FAIL("emitted too early"); });
  CHECK_FALSE(parser.finish());
  CHECK(parser.buffered_bytes() == 0);
}

TEST_CASE("sse_parser: finish() starts a new stream; reset() also zeroes the counter") {
  sse_parser parser(9);
  std::vector<std::string> raws;
  auto keep = [&](const sse_event& e) { raws.emplace_back(e.raw); };
  parser.feed("data: too long\n\ndata: x", keep);
  CHECK(parser.oversized_events() == 1);
  CHECK_FALSE(parser.finish(keep));
  CHECK(parser.buffered_bytes() == 0);
  parser.feed("\xEF\xBB\xBF" "data: y\n\n", keep);  // BOM re-armed for the new stream
  CHECK(raws == std::vector<std::string>{"data: y\n\n"});
  CHECK(parser.oversized_events() == 1);
  parser.feed("data: z", keep);
  parser.reset();
  CHECK(parser.oversized_events() == 0);
  CHECK(parser.buffered_bytes() == 0);
  parser.feed("\n\n", keep);  // "data: z" is gone: these are two blank-line blocks
  CHECK(raws == std::vector<std::string>{"data: y\n\n", "\n", "\n"});
  CHECK(parser.finish(keep));
}

TEST_CASE("sse_parser: accepts const and mutable callables") {
  sse_parser parser;
  int count = 0;
  const auto by_const = [&count](const sse_event&) { ++count; };
  parser.feed("data: 1\n\n", by_const);
  struct counter {
    int n = 0;
    void operator()(const sse_event&) { ++n; }
  } by_ref;
  parser.feed("data: 2\n\n", by_ref);
  parser.feed("data: 3\n\n", counter{});
  CHECK(count == 1);
  CHECK(by_ref.n == 1);
}

TEST_CASE("sse_parser: one-line data blocks read the same with LF and with CRLF line ends") {
  // LF blocks of one data line take a shortcut past line splitting; CRLF ones never do.
  const std::string_view lf_stream =
      "data: {\"a\":1}\n\ndata:no space\n\ndata:  two spaces\n\ndata:\n\ndata: \n\n: comment\n\n"
      "event: e\n\ndata\n\ndatum: x\n\nid: 7\n\ndata: [DONE]\n\n";
  std::string crlf_stream;
  for (char c : lf_stream) crlf_stream += c == '\n' ? std::string("\r\n") : std::string(1, c);
  const run_result lf = run({lf_stream}, 1 << 20);
  const run_result crlf = run({crlf_stream}, 1 << 20);
  REQUIRE(lf.events.size() == crlf.events.size());
  for (std::size_t i = 0; i < lf.events.size(); ++i) {
    CAPTURE(i);
    CHECK(lf.events[i].event == crlf.events[i].event);
    CHECK(lf.events[i].data == crlf.events[i].data);
    CHECK(lf.events[i].id == crlf.events[i].id);
    CHECK(lf.events[i].has_data == crlf.events[i].has_data);
    CHECK(lf.events[i].done == crlf.events[i].done);
  }
  CHECK(lf.events[1].data == "no space");
  CHECK(lf.events[2].data == " two spaces");
  CHECK(lf.events[3].has_data);
  CHECK(lf.events[3].data.empty());
}
