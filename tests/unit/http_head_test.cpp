#include "core/http_head.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using tollgate::core::body_framing;
using tollgate::core::head_status;
using tollgate::core::max_plain_headers;
using tollgate::core::read_response_head;
using tollgate::core::response_head;
using tollgate::core::read_request_head;
using tollgate::core::request_head;
using namespace std::string_view_literals;

namespace {

head_status status_of(std::string_view bytes) {
  request_head head;
  return read_request_head(bytes, head);
}

std::string with_headers(std::string_view lines) {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n" + std::string(lines) + "\r\n";
}

}  // namespace

TEST_CASE("http head: a typical SDK request") {
  const std::string bytes =
      "POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
      "Host: localhost:8080\r\n"
      "content-type: application/json\r\n"
      "Authorization:Bearer sk-1 \t\r\n"
      "X-Empty:\r\n"
      "Content-Length: 27\r\n"
      "\r\n"
      "{\"model\":\"m\",\"messages\":[]}";
  request_head head;
  REQUIRE(read_request_head(bytes, head) == head_status::complete);
  CHECK(head.method == "POST");
  CHECK(head.target == "/v1/chat/completions?x=1");
  CHECK(head.http11);
  CHECK(head.keep_alive);
  CHECK(head.content_length == 27);
  CHECK(bytes.substr(head.head_bytes) == R"({"model":"m","messages":[]})");
  REQUIRE(head.headers.count == 5);
  CHECK(head.headers.lines[0].name == "Host");
  CHECK(head.headers.lines[0].value == "localhost:8080");
  CHECK(head.headers.lines[1].name == "content-type");
  CHECK(head.headers.lines[2].value == "Bearer sk-1");  // blanks around the value are not part of it
  CHECK(head.headers.lines[3].value.empty());
  CHECK(head.headers.lines[4].value == "27");
  using tollgate::core::header_name;
  const header_name ids[] = {header_name::host, header_name::content_type, header_name::authorization,
                             header_name::other, header_name::content_length};
  for (std::size_t i = 0; i < 5; ++i) CHECK(head.headers.lines[i].id == ids[i]);
}

TEST_CASE("http head: every prefix of a head is incomplete, never misread") {
  const std::string head_text =
      "GET /v1/models HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n";
  for (std::size_t n = 0; n < head_text.size(); ++n) {
    INFO("prefix of ", n, " bytes");
    CHECK(status_of(std::string_view(head_text).substr(0, n)) == head_status::incomplete);
  }
  request_head head;
  REQUIRE(read_request_head(head_text + "GET / HTTP/1.1\r\n", head) == head_status::complete);
  CHECK(head.head_bytes == head_text.size());  // a pipelined request after it is left alone
  CHECK(head.content_length == 0);
}

TEST_CASE("http head: keep-alive follows the version and the Connection options") {
  struct example {
    std::string_view bytes;
    bool keep_alive;
  };
  const example examples[] = {
      {"GET / HTTP/1.1\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nconnection: Keep-Alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nCONNECTION: , KEEP-ALIVE ,\r\n\r\n", true},
  };
  for (const auto& e : examples) {
    INFO(e.bytes);
    request_head head;
    REQUIRE(read_request_head(e.bytes, head) == head_status::complete);
    CHECK(head.keep_alive == e.keep_alive);
  }
}

TEST_CASE("http head: Content-Length in any case, once, digits only") {
  request_head head;
  REQUIRE(read_request_head(with_headers("CONTENT-LENGTH: 007\r\n"), head) == head_status::complete);
  CHECK(head.content_length == 7);
  REQUIRE(read_request_head(with_headers("Content-Length: 999999999999999999\r\n"), head) == head_status::complete);
  CHECK(head.content_length == 999'999'999'999'999'999ULL);
  CHECK(status_of(with_headers("Content-Length: 1\r\nContent-Length: 1\r\n")) == head_status::unusual);
  CHECK(status_of(with_headers("Content-Length: 1000000000000000000\r\n")) == head_status::unusual);
  CHECK(status_of(with_headers("Content-Length: -1\r\n")) == head_status::unusual);
  CHECK(status_of(with_headers("Content-Length: 1 2\r\n")) == head_status::unusual);
  CHECK(status_of(with_headers("Content-Length: 0x10\r\n")) == head_status::unusual);
  CHECK(status_of(with_headers("Content-Length:\r\n")) == head_status::unusual);
}

TEST_CASE("http head: what is not the plain shape is left to the general parser") {
  const std::string_view unusual[] = {
      // framing and protocol switches
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: TE\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: close, keep-alive\r\n\r\n",
      // line structure
      "GET / HTTP/1.1\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\rX",
      "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
      "\r\nGET / HTTP/1.1\r\n\r\n",
      // request line
      "GET  / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1 \r\n\r\n",
      "GET /\r\n\r\n",
      "GET / HTTP/2.0\r\n\r\n",
      "GET / http/1.1\r\n\r\n",
      "G(T / HTTP/1.1\r\n\r\n",
      "GET /a\x7f HTTP/1.1\r\n\r\n",
      "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
      // header lines
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET / HTTP/1.1\r\n: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost\r\n\r\n",
      "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nX-A: a\x01\r\n\r\n",
      "GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n",
  };
  for (std::string_view bytes : unusual) {
    INFO(doctest::toString(std::string(bytes)));
    CHECK(status_of(bytes) == head_status::unusual);
  }
  // A NUL inside a value (std::string_view literals would stop at it).
  CHECK(status_of(with_headers(std::string("X-A: a\0b\r\n", 10))) == head_status::unusual);
}

TEST_CASE("http head: values may carry obs-text and tabs") {
  const std::string bytes = with_headers("X-Name: Jos\xc3\xa9\tsmith\r\n");  // outlives the views into it
  request_head head;
  REQUIRE(read_request_head(bytes, head) == head_status::complete);
  CHECK(head.headers.lines[1].value == "Jos\xc3\xa9\tsmith");
}

TEST_CASE("http head: more header lines than it keeps is unusual, exactly that many is not") {
  std::string lines;
  for (std::size_t i = 1; i < max_plain_headers; ++i) lines += "X-" + std::to_string(i) + ": v\r\n";
  request_head head;
  REQUIRE(read_request_head(with_headers(lines), head) == head_status::complete);
  CHECK(head.headers.count == max_plain_headers);
  CHECK(status_of(with_headers(lines + "X-Last: v\r\n")) == head_status::unusual);
}

TEST_CASE("http head: block scanning finds a control byte at every position of a value") {
  // Values are read sixteen bytes a step, then eight, then one: 40 bytes put each position of
  // each step's block under test.
  constexpr std::size_t size = 40;
  for (std::size_t at = 0; at < size; ++at) {
    for (char bad : {'\x00', '\x01', '\x0b', '\x1f', '\x7f', '\n', '\r'}) {
      std::string value(size, 'v');
      value[at] = bad;
      INFO("byte ", static_cast<int>(bad), " at ", at);
      CHECK(status_of(with_headers("X-A: " + value + "\r\n")) == head_status::unusual);
    }
    for (char fine : {'\t', '\x80', '\xc3', '\xff', ' ', '~'}) {
      std::string value(size, 'v');
      value[at] = fine;
      INFO("byte ", static_cast<int>(fine), " at ", at);
      const std::string bytes = with_headers("X-A: " + value + "\r\n");
      request_head head;
      REQUIRE(read_request_head(bytes, head) == head_status::complete);
      std::string_view expected(value);  // a blank at either end is not part of the value
      if (at == 0 && (fine == '\t' || fine == ' ')) expected.remove_prefix(1);
      if (at == size - 1 && (fine == '\t' || fine == ' ')) expected.remove_suffix(1);
      CHECK(head.headers.lines[1].value == expected);
    }
  }
}

TEST_CASE("http head: block scanning of names, methods and targets stops at the right byte") {
  // Sixteen bytes a step are taken on sight when they are letters, digits and '-' (names,
  // methods) or visible ASCII (targets); any other byte, at any position, is judged alone.
  constexpr std::size_t size = 40;
  for (std::size_t at = 0; at < size; ++at) {
    for (char token : {'_', '!', '~', '.', '|', '`', '^', '\'', 'Z', '0', '9'}) {
      std::string name(size, 'n');
      name[at] = token;
      INFO("name byte ", static_cast<int>(token), " at ", at);
      const std::string bytes = with_headers(name + ": v\r\n");
      request_head head;
      REQUIRE(read_request_head(bytes, head) == head_status::complete);
      CHECK(head.headers.lines[1].name == name);
      std::string method(size, 'M');
      method[at] = token;
      const std::string request = method + " / HTTP/1.1\r\n\r\n";
      REQUIRE(read_request_head(request, head) == head_status::complete);
      CHECK(head.method == method);
    }
    for (char not_token : {'@', '(', '/', '"', '[', '{', ' ', '\t', '\x7f', '\x80', '\xc3', '\x01'}) {
      std::string name(size, 'n');
      name[at] = not_token;
      INFO("name byte ", static_cast<int>(not_token), " at ", at);
      CHECK(status_of(with_headers(name + ": v\r\n")) == head_status::unusual);
      std::string method(size, 'M');
      method[at] = not_token;
      CHECK(status_of(method + " / HTTP/1.1\r\n\r\n") == head_status::unusual);
    }
    for (char visible : {'!', '"', '~', '%', '?', '#', '\x21', '\x7e'}) {
      std::string target = "/" + std::string(size - 1, 't');
      target[at == 0 ? 1 : at] = visible;
      INFO("target byte ", static_cast<int>(visible), " at ", at);
      const std::string request = "GET " + target + " HTTP/1.1\r\n\r\n";
      request_head head;
      REQUIRE(read_request_head(request, head) == head_status::complete);
      CHECK(head.target == target);
    }
    for (char invisible : {' ', '\x7f', '\x80', '\xff', '\x01', '\x00'}) {
      std::string target = "/" + std::string(size - 1, 't');
      target[at == 0 ? 1 : at] = invisible;
      INFO("target byte ", static_cast<int>(invisible), " at ", at);
      CHECK(status_of("GET " + target + " HTTP/1.1\r\n\r\n") == head_status::unusual);
    }
  }
}

TEST_CASE("http head: a provider's response") {
  const std::string bytes =
      "HTTP/1.1 200 OK\r\n"
      "Date: Sun, 22 Nov 2026 08:00:00 GMT\r\n"
      "Content-Type: application/json\r\n"
      "Content-Length: 2\r\n"
      "x-request-id: abc\r\n"
      "\r\n"
      "{}";
  response_head head;
  REQUIRE(read_response_head(bytes, head) == head_status::complete);
  CHECK(head.status == 200);
  CHECK(head.http11);
  CHECK(head.keep_alive);
  CHECK(head.framing == body_framing::length);
  CHECK(head.content_length == 2);
  CHECK(bytes.substr(head.head_bytes) == "{}");
  REQUIRE(head.headers.count == 4);
  CHECK(head.headers.lines[0].value == "Sun, 22 Nov 2026 08:00:00 GMT");
  CHECK(head.headers.lines[3].name == "x-request-id");
  for (std::size_t n = 0; n < head.head_bytes; ++n) {
    INFO("prefix of ", n, " bytes");
    CHECK(read_response_head(std::string_view(bytes).substr(0, n), head) == head_status::incomplete);
  }
}

TEST_CASE("http head: how a response's body is delimited") {
  struct example {
    std::string_view bytes;
    body_framing framing;
    bool keep_alive;
  };
  const example examples[] = {
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", body_framing::chunked, true},
      {"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\nConnection: close\r\n\r\n", body_framing::chunked, false},
      {"HTTP/1.1 200 OK\r\n\r\n", body_framing::until_close, false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", body_framing::length, false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", body_framing::length, true},
      {"HTTP/1.1 204 No Content\r\n\r\n", body_framing::none, true},
      {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", body_framing::none, true},
      {"HTTP/1.1 100 Continue\r\n\r\n", body_framing::none, true},
      {"HTTP/1.1 500 \r\nContent-Length: 0\r\n\r\n", body_framing::length, true},  // empty reason
  };
  for (const auto& e : examples) {
    INFO(e.bytes);
    response_head head;
    REQUIRE(read_response_head(e.bytes, head) == head_status::complete);
    CHECK(head.framing == e.framing);
    CHECK(head.keep_alive == e.keep_alive);
  }
}

TEST_CASE("http head: responses that are not the plain shape") {
  const std::string_view unusual[] = {
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
      "HTTP/1.1 200\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1 099 OK\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
      "ICY 200 OK\r\n\r\n",
  };
  for (std::string_view bytes : unusual) {
    INFO(doctest::toString(std::string(bytes)));
    response_head head;
    CHECK(read_response_head(bytes, head) == head_status::unusual);
  }
}

TEST_CASE("http head: header names tollgate acts on are classified in any case; every other is other") {
  using tollgate::core::classify_header;
  using tollgate::core::header_name;
  struct row {
    std::string_view spelled;
    header_name expected;
  };
  const row known[] = {
      {"accept-encoding", header_name::accept_encoding},
      {"authorization", header_name::authorization},
      {"connection", header_name::connection},
      {"content-length", header_name::content_length},
      {"content-type", header_name::content_type},
      {"expect", header_name::expect},
      {"host", header_name::host},
      {"keep-alive", header_name::keep_alive},
      {"proxy-authenticate", header_name::proxy_authenticate},
      {"proxy-authorization", header_name::proxy_authorization},
      {"proxy-connection", header_name::proxy_connection},
      {"retry-after", header_name::retry_after},
      {"te", header_name::te},
      {"trailer", header_name::trailer},
      {"transfer-encoding", header_name::transfer_encoding},
      {"upgrade", header_name::upgrade},
  };
  for (const auto& r : known) {
    CAPTURE(r.spelled);
    std::string upper(r.spelled), mixed(r.spelled);
    for (std::size_t i = 0; i < upper.size(); ++i) {
      if (upper[i] >= 'a' && upper[i] <= 'z') upper[i] = static_cast<char>(upper[i] - 'a' + 'A');
      if (i % 2 == 0) mixed[i] = upper[i];
    }
    CHECK(classify_header(r.spelled) == r.expected);
    CHECK(classify_header(upper) == r.expected);
    CHECK(classify_header(mixed) == r.expected);
    // One character off, one short, one long: never the name.
    for (std::size_t i = 0; i < r.spelled.size(); ++i) {
      std::string off(r.spelled);
      off[i] = off[i] == 'x' ? 'y' : 'x';
      CHECK(classify_header(off) == header_name::other);
    }
    CHECK(classify_header(r.spelled.substr(1)) == header_name::other);
    CHECK(classify_header(std::string(r.spelled) + "s") == header_name::other);
  }
  // Same lengths as names in the vocabulary, and tokens whose OR with 0x20 is a letter or '-'
  // only for letters.
  for (std::string_view other : {"", "x", "accept", "user-agent", "x-api-key", "Content_Type", "content.type",
                                 "x-tollgate-user", "cookie", "date", "server", "openai-organization"}) {
    CAPTURE(other);
    CHECK(classify_header(other) == header_name::other);
  }
}
