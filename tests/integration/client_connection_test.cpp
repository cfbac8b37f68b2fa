// The client's side of a connection: how long tollgate waits for a client, and what it does
// with bytes that arrive ahead of the request being served.

#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

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

}  // namespace
}  // namespace tollgate::itest
