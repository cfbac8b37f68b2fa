// The client's side of a connection: how long tollgate waits for a client, and what it does
// with bytes that arrive ahead of the request being served.

#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

std::string post(const std::string& body, bool close) {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
}

TEST_CASE("client connection: an idle keep-alive connection is closed after TOLLGATE_CLIENT_IDLE_TIMEOUT_MS") {
  proxied_fake p(env_map{{"TOLLGATE_CLIENT_IDLE_TIMEOUT_MS", "300"}});
  testing::http_connection idle(p.proxy.port());
  CHECK(idle.request("POST", chat_path, chat_body()).status == 200);
  CHECK_FALSE(idle.remote_closed(100ms));  // idle, but not for long enough yet
  CHECK(idle.remote_closed(3s));

  testing::http_connection silent(p.proxy.port());  // never sends a byte
  CHECK(silent.remote_closed(3s));
}

// A client that sends its FIN right behind the request (as `nc -N` does) gets the whole
// response; tollgate notices the FIN only at the idle deadline, since it arrived with the
// request and raised no readiness of its own (see proxy/edge_socket.hpp).
TEST_CASE("client connection: a client that half-closes after its request gets the whole response") {
  proxied_fake p(env_map{{"TOLLGATE_CLIENT_IDLE_TIMEOUT_MS", "300"}});
  for (const bool stream : {false, true}) {
    CAPTURE(stream);
    testing::http_connection c(p.proxy.port());
    c.start("POST", chat_path, stream ? stream_body({{"events", 3}}) : chat_body());
    c.shutdown_send();
    CHECK(c.read_header().status == 200);
    const std::string body = c.read_body();
    CHECK(body.find(stream ? "[DONE]" : "\"usage\"") != std::string::npos);
    CHECK(c.remote_closed(3s));
  }
}

TEST_CASE("client connection: serving a request is not cut short by the client idle timeout") {
  proxied_fake p(env_map{{"TOLLGATE_CLIENT_IDLE_TIMEOUT_MS", "200"}});
  testing::http_connection c(p.proxy.port());
  // The upstream takes four idle timeouts to answer, then streams slowly.
  CHECK(c.request("POST", chat_path, chat_body({{"first_byte_delay_ms", 800}})).status == 200);
  const auto streamed = c.request("POST", chat_path, stream_body({{"events", 4}, {"delay_ms", 150}}));
  CHECK(streamed.status == 200);
  CHECK(streamed.body.find("[DONE]") != std::string::npos);
  CHECK(c.request("POST", chat_path, chat_body()).status == 200);  // and the connection lives on
}

TEST_CASE("client connection: pipelined requests are answered in order") {
  proxied_fake p;
  const std::string first = chat_body({{"events", 2}});
  const std::string second = chat_body({{"events", 5}});
  // Both requests in one write: the second waits in tollgate's read buffer while the first is served.
  const std::string replies = testing::raw_exchange(p.proxy.port(), post(first, false) + post(second, true));
  const auto one = replies.find("HTTP/1.1 200");
  const auto two = replies.find("HTTP/1.1 200", one + 1);
  REQUIRE(one != std::string::npos);
  REQUIRE(two != std::string::npos);
  CHECK(replies.find("w0 w1\"") < two);           // two words, in the first response
  CHECK(replies.find("w0 w1 w2 w3 w4\"") > two);  // five, in the second
  CHECK(p.fake.requests().size() == 2);
}

std::string hex(std::size_t n) {
  char text[16];
  std::snprintf(text, sizeof text, "%zx", n);
  return text;
}

TEST_CASE("client connection: requests that are not the plain shape are read by the general parser") {
  proxied_fake p;
  const std::string body = chat_body({{"events", 3}});
  const std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n";
  struct example {
    const char* name;
    std::string request;
  };
  const example examples[] = {
      {"chunked body",
       head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + hex(10) + "\r\n" + body.substr(0, 10) +
           "\r\n" + hex(body.size() - 10) + ";ext=1\r\n" + body.substr(10) + "\r\n0\r\n\r\n"},
      {"folded header line",
       head + "X-Folded: one\r\n two\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body},
      {"Connection: TE",
       head + "Content-Length: " + std::to_string(body.size()) + "\r\nTE: trailers\r\nConnection: TE, close\r\n\r\n" +
           body},
  };
  std::size_t served = 0;
  for (const auto& e : examples) {
    INFO(e.name);
    const std::string reply = testing::raw_exchange(p.proxy.port(), e.request);
    CHECK(reply.starts_with("HTTP/1.1 200"));
    CHECK(reply.find("w0 w1 w2\"") != std::string::npos);
    const auto seen = p.fake.requests();
    REQUIRE(seen.size() == ++served);
    CHECK(seen.back().body == body);  // whole, and unchanged
  }
  // Not HTTP at all: still a clear 400, from the general parser.
  CHECK(testing::raw_exchange(p.proxy.port(), "GET /v1/models HTTP/9.9\r\n\r\n").starts_with("HTTP/1.1 400"));
}

TEST_CASE("client connection: a request is read whole however it is split") {
  proxied_fake p;
  const std::string body = chat_body({{"events", 2}});
  const std::string request = post(body, true);
  const std::size_t head_size = request.find("\r\n\r\n") + 4;
  const std::vector<std::vector<std::string>> splits = {
      {request.substr(0, 7), request.substr(7)},                                    // inside the request line
      {request.substr(0, head_size - 1), request.substr(head_size - 1)},            // before the last LF
      {request.substr(0, head_size), request.substr(head_size)},                    // head, then body
      {request.substr(0, head_size + 5), request.substr(head_size + 5, 9), request.substr(head_size + 14)},
  };
  for (std::size_t i = 0; i < splits.size(); ++i) {
    INFO("split ", i);
    const std::string reply = testing::raw_exchange(p.proxy.port(), splits[i], 30ms);
    CHECK(reply.starts_with("HTTP/1.1 200"));
    CHECK(reply.find("w0 w1\"") != std::string::npos);
  }
  const auto seen = p.fake.requests();
  REQUIRE(seen.size() == splits.size());
  for (const auto& r : seen) CHECK(r.body == body);
}

TEST_CASE("client connection: Expect: 100-continue is answered before the body is read") {
  proxied_fake p;
  const std::string body = chat_body({{"events", 2}});
  const std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                           "Expect: 100-continue\r\nConnection: close\r\n";
  struct example {
    const char* name;
    std::string head;
    std::string body;
  };
  const example examples[] = {
      {"Content-Length", head + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n", body},
      {"chunked", head + "Transfer-Encoding: chunked\r\n\r\n", hex(body.size()) + "\r\n" + body + "\r\n0\r\n\r\n"},
  };
  for (const auto& e : examples) {
    INFO(e.name);
    // The body follows only after a pause, as a client waiting for the interim response sends it.
    const std::string reply = testing::raw_exchange(p.proxy.port(), {e.head, e.body}, 200ms);
    CHECK(reply.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"));
    CHECK(reply.find("w0 w1\"") != std::string::npos);
  }
}

TEST_CASE("client connection: HTTP/1.0 closes after the response unless it asks for keep-alive") {
  proxied_fake p;
  const std::string body = chat_body();
  const std::string head = "POST /v1/chat/completions HTTP/1.0\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n";
  auto started = std::chrono::steady_clock::now();
  CHECK(testing::raw_exchange(p.proxy.port(), head + "\r\n" + body, 3s).starts_with("HTTP/1.1 200"));
  CHECK(elapsed_ms(started) < 2000);  // closed by tollgate, not by the exchange's timeout

  started = std::chrono::steady_clock::now();
  CHECK(testing::raw_exchange(p.proxy.port(), head + "Connection: keep-alive\r\n\r\n" + body, 500ms)
            .starts_with("HTTP/1.1 200"));
  CHECK(elapsed_ms(started) >= 400);  // still open when the exchange gave up, at 500 ms
}

}  // namespace
}  // namespace tollgate::itest
