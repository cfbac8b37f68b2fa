// What tollgate answers itself, before any upstream is involved: routing, validation of the
// request body, the body size limit and malformed HTTP.

#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <set>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

TEST_CASE("admission: unknown paths get 404, other methods on API paths 405") {
  proxied_fake p;
  struct row {
    std::string method;
    std::string target;
    int status;
  };
  const row rows[] = {
      {"POST", "/v1/unknown", 404},
      {"GET", "/", 404},
      {"POST", "/v1/chat/completions/extra", 404},
      {"POST", "/v2/chat/completions", 404},
      {"GET", "/v1/chat/completions", 405},
      {"GET", "/v1/embeddings", 405},
      {"PUT", "/v1/completions", 405},
      {"DELETE", "/v1/chat/completions", 405},
  };
  std::set<std::string> ids;
  for (const auto& r : rows) {
    INFO(r.method);
    INFO(r.target);
    const auto res = testing::http_request(p.proxy.port(), r.method, r.target,
                                           r.method == "GET" ? "" : chat_body());
    CHECK(res.status == r.status);
    const auto error = error_object(res.body);
    REQUIRE_MESSAGE(error.has_value(), res.body);
    CHECK(str(*error, "type") == "invalid_request_error");
    CHECK(res.headers.count("x-tollgate-request-id") == 1);
    ids.insert(res.headers.count("x-tollgate-request-id") ? res.headers.at("x-tollgate-request-id") : "");
  }
  CHECK(ids.size() == std::size(rows));  // one id per request, none empty
  CHECK_FALSE(ids.contains(""));
  CHECK(p.fake.stats().requests == 0);
}

TEST_CASE("admission: invalid bodies get 400 invalid_request_error naming the field") {
  proxied_fake p;
  struct row {
    std::string name;
    std::string target;
    std::string body;
    std::optional<std::string> param;  // nullopt: the param must be null
  };
  const row rows[] = {
      {"malformed JSON", chat_path, R"({"model":"m","messages":[)", std::nullopt},
      {"not an object", chat_path, R"(["model"])", std::nullopt},
      {"empty body", chat_path, "", std::nullopt},
      {"missing model", chat_path, R"({"messages":[{"role":"user","content":"hi"}]})", "model"},
      {"model not a string", chat_path, R"({"model":42,"messages":[{"role":"user","content":"hi"}]})", "model"},
      {"missing messages", chat_path, R"({"model":"m"})", "messages"},
      {"empty messages", chat_path, R"({"model":"m","messages":[]})", "messages"},
      {"messages not an array", chat_path, R"({"model":"m","messages":"hi"})", "messages"},
      {"stream not a bool", chat_path, R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":"yes"})",
       "stream"},
      {"completions without model", completions_path, R"({"prompt":"hi"})", "model"},
      {"embeddings without model", embeddings_path, R"({"input":"hi"})", "model"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    const auto res = testing::http_request(p.proxy.port(), "POST", r.target, r.body,
                                           {{"Content-Type", "application/json"}});
    CHECK(res.status == 400);
    const auto error = error_object(res.body);
    REQUIRE_MESSAGE(error.has_value(), res.body);
    CHECK(str(*error, "type") == "invalid_request_error");
    CHECK_FALSE(str(*error, "message").empty());
    if (r.param) {
      CHECK(str(*error, "param") == *r.param);
    } else {
      CHECK(error->at("param").is_null());
    }
    CHECK(res.headers.count("x-tollgate-request-id") == 1);
  }
  CHECK(p.fake.stats().requests == 0);  // nothing invalid reaches the upstream
}

TEST_CASE("admission: a body over TOLLGATE_MAX_BODY_BYTES gets 413 and the connection closes") {
  proxied_fake p(env_map{{"TOLLGATE_MAX_BODY_BYTES", "2048"}});

  SUBCASE("just under the limit is proxied") {
    chat_options o;
    o.content = std::string(1800, 'a');
    const std::string body = chat_body_from(o);
    REQUIRE(body.size() <= 2048);
    const auto res = testing::http_request(p.proxy.port(), "POST", chat_path, body);
    CHECK(res.status == 200);
    CHECK(p.fake.stats().requests == 1);
  }
  SUBCASE("over the limit, Content-Length known up front") {
    for (const std::size_t size : {std::size_t{3000}, std::size_t{64 * 1024}}) {
      CAPTURE(size);
      chat_options o;
      o.content = std::string(size, 'a');
      http_connection c(p.proxy.port());
      http_response res;
      REQUIRE_NOTHROW(res = c.request("POST", chat_path, chat_body_from(o)));
      CHECK(res.status == 413);
      const auto error = error_object(res.body);
      REQUIRE_MESSAGE(error.has_value(), res.body);
      CHECK(str(*error, "type") == "invalid_request_error");
      CHECK(res.headers.count("x-tollgate-request-id") == 1);
      CHECK(c.remote_closed(2s));
    }
    CHECK(p.fake.stats().requests == 0);
  }
  SUBCASE("over the limit, chunked: found while the body arrives") {
    const std::string piece(1000, 'a');
    std::string request =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) request += "3e8\r\n" + piece + "\r\n";
    request += "0\r\n\r\n";
    const std::string reply = testing::raw_exchange(p.proxy.port(), request, 3s);
    CHECK(reply.starts_with("HTTP/1.1 413"));
    CHECK(p.fake.stats().requests == 0);
  }
}

TEST_CASE("admission: malformed HTTP gets 400 and the connection closes") {
  proxied_fake p;
  for (const char* raw : {"GARBAGE\r\n\r\n", "POST /v1/chat/completions HTTP/1.1\r\nNoColonHere\r\n\r\n",
                          "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: nope\r\n\r\n"}) {
    INFO(raw);
    const auto start = std::chrono::steady_clock::now();
    const std::string reply = testing::raw_exchange(p.proxy.port(), raw, 3s);
    // raw_exchange returns early only when the server closes.
    CHECK(elapsed_ms(start) < 2500);
    REQUIRE(reply.starts_with("HTTP/1.1 400"));
    const std::size_t head_end = reply.find("\r\n\r\n");
    REQUIRE(head_end != std::string::npos);
    std::string head = reply.substr(0, head_end);
    for (char& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    CHECK(head.find("\r\nx-tollgate-request-id: ") != std::string::npos);
    const std::string body = reply.substr(head_end + 4);
    const auto error = error_object(body);
    REQUIRE_MESSAGE(error.has_value(), body);
    CHECK(str(*error, "type") == "invalid_request_error");
  }
  CHECK(p.fake.stats().requests == 0);
}

}  // namespace
}  // namespace tollgate::itest
