#include "core/chunked_decoder.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <string_view>

using tollgate::core::chunked_decoder;
using status = chunked_decoder::status;

namespace {

struct decoded {
  std::string body;
  status what = status::more;
  std::size_t consumed = 0;  // of the whole input
};

// Feeds `wire` in two pieces split at `split`, as reads would deliver it.
decoded decode_split(std::string_view wire, std::size_t split) {
  chunked_decoder decoder;
  decoded result;
  for (std::string_view piece : {wire.substr(0, split), wire.substr(split)}) {
    const std::string copy(piece);  // each piece in its own buffer, as reads deliver them
    auto step = decoder.decode(copy, result.body);
    result.consumed += step.consumed;
    result.what = step.what;
    if (step.what != status::more) break;
  }
  return result;
}

}  // namespace

TEST_CASE("chunked decoder: bodies decode the same split at every byte") {
  struct example {
    std::string_view wire;
    std::string_view body;
  };
  const example examples[] = {
      {"5\r\nhello\r\n0\r\n\r\n", "hello"},
      {"0\r\n\r\n", ""},
      {"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n1\r\n!\r\n0\r\n\r\n", "abcdefghijklmnopqrstuvwxyz!"},
      {"00005\r\nhello\r\n000\r\n\r\n", "hello"},
      {"5;name=value;other\r\nhello\r\n0;last\r\n\r\n", "hello"},
      {"5 ; name=\"quoted\"\r\nhello\r\n0\r\n\r\n", "hello"},
      {"5\r\nhe\r\nl\r\n0\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n", "he\r\nl"},
      {"a\r\ndata: {}\n\n\r\n0\r\n\r\n", "data: {}\n\n"},
  };
  for (const auto& e : examples) {
    for (std::size_t split = 0; split <= e.wire.size(); ++split) {
      INFO(doctest::toString(std::string(e.wire)), " split at ", split);
      const auto result = decode_split(e.wire, split);
      CHECK(result.what == status::done);
      CHECK(result.body == e.body);
      CHECK(result.consumed == e.wire.size());
    }
  }
}

TEST_CASE("chunked decoder: bytes after the body are left for the next message") {
  const std::string_view wire = "3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n";
  chunked_decoder decoder;
  std::string body;
  const auto step = decoder.decode(wire, body);
  CHECK(step.what == status::done);
  CHECK(body == "abc");
  CHECK(wire.substr(step.consumed) == "HTTP/1.1 200 OK\r\n");
  CHECK(decoder.decode("more", body).consumed == 0);
}

TEST_CASE("chunked decoder: an unfinished body asks for more") {
  const std::string_view wire = "5\r\nhello\r\n0\r\n\r\n";
  for (std::size_t n = 0; n < wire.size(); ++n) {
    INFO("first ", n, " bytes");
    chunked_decoder decoder;
    std::string body;
    const auto step = decoder.decode(wire.substr(0, n), body);
    CHECK(step.what == status::more);
    CHECK(step.consumed == n);
  }
}

TEST_CASE("chunked decoder: what is not chunked coding is invalid") {
  const std::string_view invalid[] = {
      "\r\n",                               // no size
      "x\r\n",                              // not hex
      "-5\r\nhello\r\n",                    // signed
      ";ext\r\n",                           // extension without a size
      "5\nhello\r\n",                       // bare LF after the size
      "5\r\nhelloX\r\n",                    // data longer than its size
      "5\r\nhello\rX",                      // CR not followed by LF
      "1000000000000000\r\n",               // 16 hex digits: more than fits
      "5;a\x01\r\nhello\r\n",               // control byte in an extension
      "0\r\nX-T: a\x01\r\n\r\n",            // control byte in a trailer
      "0\r\n\rX",                           // the final CRLF broken
  };
  for (std::string_view wire : invalid) {
    INFO(doctest::toString(std::string(wire)));
    chunked_decoder decoder;
    std::string body;
    CHECK(decoder.decode(wire, body).what == status::invalid);
  }
}

TEST_CASE("chunked decoder: extension and trailer lengths are bounded") {
  chunked_decoder decoder;
  std::string body;
  CHECK(decoder.decode("1;" + std::string(4 * 1024, 'e') + "\r\nx\r\n", body).what == status::more);
  chunked_decoder long_extension;
  CHECK(long_extension.decode("1;" + std::string(4 * 1024 + 1, 'e'), body).what == status::invalid);
  chunked_decoder long_trailer;
  CHECK(long_trailer.decode("0\r\nX-T: " + std::string(16 * 1024, 't'), body).what == status::invalid);
}

TEST_CASE("chunked decoder: a large chunk passes through in pieces") {
  const std::string data(100'000, 'd');
  const std::string wire = "186a0\r\n" + data + "\r\n0\r\n\r\n";
  chunked_decoder decoder;
  std::string body;
  std::size_t at = 0;
  chunked_decoder::step step;
  while (at < wire.size()) {
    const std::size_t n = std::min<std::size_t>(16 * 1024, wire.size() - at);
    step = decoder.decode(std::string_view(wire).substr(at, n), body);
    at += step.consumed;
    if (step.what != status::more) break;
  }
  CHECK(step.what == status::done);
  CHECK(body == data);
}
