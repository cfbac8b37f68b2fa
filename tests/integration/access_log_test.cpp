// The access log: one JSON line per request on stdout with the usage the upstream reported,
// and never a secret or a word of the conversation.

#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <ctime>
#include <set>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "2026-11-22T04:06:00.123Z" as Unix milliseconds; nullopt unless it has exactly that shape.
std::optional<std::int64_t> parse_ts(const std::string& text) {
  std::tm utc{};
  int millis = -1;
  int consumed = 0;
  if (text.size() != 24 ||
      std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &utc.tm_year, &utc.tm_mon, &utc.tm_mday,
                  &utc.tm_hour, &utc.tm_min, &utc.tm_sec, &millis, &consumed) != 7 ||
      consumed != 24)
    return std::nullopt;
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&utc)) * 1000 + millis;
}

bool is_number(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && (v->is_number());
}

TEST_CASE("access log: a line per request with usage from the upstream") {
  proxied_fake p;
  struct row {
    std::string name;
    std::string path;
    std::string body;
    bool stream;
    std::int64_t prompt_tokens;
    std::optional<std::int64_t> completion_tokens;
    std::string model;
  };
  chat_options asked;
  asked.model = "model-asked-usage";
  asked.stream = true;
  asked.include_usage = true;
  asked.fake = {{"events", 6}, {"prompt_tokens", 21}};
  const std::vector<row> rows = {
      {"chat", chat_path, chat_body({{"events", 4}, {"prompt_tokens", 17}}), false, 17, 4, "gpt-test"},
      {"chat stream", chat_path, stream_body({{"events", 5}, {"prompt_tokens", 13}}), true, 13, 5, "gpt-test"},
      {"chat stream, client asked for usage", chat_path, chat_body_from(asked), true, 21, 6, "model-asked-usage"},
      {"completions stream", completions_path, completion_body({{"events", 3}, {"prompt_tokens", 8}}, true), true, 8,
       3, "gpt-test"},
      {"completions", completions_path, completion_body({{"events", 2}, {"prompt_tokens", 9}}), false, 9, 2,
       "gpt-test"},
      {"embeddings", embeddings_path, embedding_body({{"prompt_tokens", 12}}), false, 12, std::nullopt, "emb-test"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    const auto before_ms = unix_ms_now();
    const auto res = testing::http_request(p.proxy.port(), "POST", r.path, r.body);
    const auto after_ms = unix_ms_now();
    REQUIRE(res.status == 200);
    const std::string id = header(res, "x-tollgate-request-id");
    REQUIRE_FALSE(id.empty());
    const auto record = wait_for_record(p.proxy, id);
    REQUIRE(record.has_value());
    INFO(json::serialize(*record));
    // When the request finished, on the system clock: inside the exchange, give or take the
    // milliseconds lost to truncation.
    const auto ts = parse_ts(str(*record, "ts"));
    REQUIRE(ts.has_value());
    CHECK(*ts >= before_ms - 2);
    CHECK(*ts <= after_ms + 2);
    CHECK(str(*record, "method") == "POST");
    CHECK(str(*record, "path") == r.path);
    CHECK(int_field(*record, "status") == 200);
    CHECK(int_field(*record, "upstream_status") == 200);
    CHECK(str(*record, "model") == r.model);
    CHECK(record->at("stream") == json::value(r.stream));
    CHECK(is_number(*record, "ttfb_ms"));
    CHECK(is_number(*record, "duration_ms"));
    if (is_number(*record, "ttfb_ms") && is_number(*record, "duration_ms")) {
      CHECK(record->at("ttfb_ms").to_number<double>() >= 0);
      CHECK(record->at("duration_ms").to_number<double>() >= record->at("ttfb_ms").to_number<double>());
    }
    CHECK(int_field(*record, "prompt_tokens") == r.prompt_tokens);
    if (r.completion_tokens) {
      CHECK(int_field(*record, "completion_tokens") == *r.completion_tokens);
    } else {
      CHECK((int_field(*record, "completion_tokens").value_or(0) == 0));
    }
    CHECK_FALSE(record->contains("error"));
    if (r.stream) {
      CHECK(record->at("stream_completed") == json::value(true));
      const auto events = int_field(*record, "events");
      REQUIRE(events.has_value());
      CHECK(*events >= *r.completion_tokens);      // at least every content event
      CHECK(*events <= *r.completion_tokens + 3);  // role, finish and usage chunks at most
    } else {
      CHECK_FALSE(record->contains("stream_completed"));
    }
  }
  // Exactly one line per request, each id once.
  const auto records = p.proxy.log_records();
  CHECK(records.size() == rows.size());
  std::set<std::string> ids;
  for (const auto& r : records) ids.insert(str(r, "request_id"));
  CHECK(ids.size() == rows.size());
}

TEST_CASE("access log: requests answered by tollgate itself are logged with their error") {
  proxied_fake p;
  struct row {
    std::string method;
    std::string target;
    std::string body;
    int status;
    std::string error;
  };
  const std::vector<row> rows = {
      {"POST", "/nope", chat_body(), 404, "not_found"},
      {"GET", chat_path, "", 405, "method_not_allowed"},
      {"POST", chat_path, "{", 400, "bad_request"},
  };
  for (const auto& r : rows) {
    INFO(r.method << " " << r.target);
    const auto res = testing::http_request(p.proxy.port(), r.method, r.target, r.body);
    CHECK(res.status == r.status);
    const auto record = wait_for_record(p.proxy, header(res, "x-tollgate-request-id"));
    REQUIRE(record.has_value());
    CHECK(int_field(*record, "status") == r.status);
    CHECK(str(*record, "method") == r.method);
    CHECK(str(*record, "path") == r.target);
    CHECK(str(*record, "error") == r.error);
    CHECK(int_field(*record, "upstream_status").value_or(0) == 0);
  }
}

TEST_CASE("access log: client-chosen text is escaped into valid JSON") {
  proxied_fake p;
  // Quotes, backslashes, control characters and non-ASCII, as a client may send in a model name.
  const std::string model = "we\"ird\\model\n\t\x01 caf\xc3\xa9";
  json::object body{{"model", model}, {"messages", json::array{json::object{{"role", "user"}, {"content", "hi"}}}}};
  const auto res = testing::http_request(p.proxy.port(), "POST", chat_path, json::serialize(body));
  const auto record = wait_for_record(p.proxy, header(res, "x-tollgate-request-id"));
  REQUIRE(record.has_value());  // the line parsed as JSON
  CHECK(str(*record, "model") == model);
}

TEST_CASE("access log: no API key and no message content in any output") {
  const std::string key = "sk-live-SECRET-0123456789abcdefXYZ";
  const std::string client_key = "client-SECRET-token-9876";
  const std::string content = "purple-elephant-dances-4242";
  proxied_fake p(env_map{{"OPENAI_API_KEY", key}});

  chat_options o;
  o.content = content;
  o.fake = {{"events", 3}};
  const http_headers auth{{"Authorization", "Bearer " + client_key}};
  CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, chat_body_from(o), auth).status == 200);
  o.stream = true;
  CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, chat_body_from(o), auth).status == 200);
  // Failing paths too: an invalid request, a mid-stream failure, an upstream error status.
  CHECK(testing::http_request(p.proxy.port(), "POST", chat_path,
                              R"({"model":"m","messages":[{"role":"user","content":")" + content + R"("}],"stream":3})",
                              auth)
            .status == 400);
  o.fake = {{"events", 3}, {"fail_mode", "reset"}, {"fail_after", 1}};
  CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, chat_body_from(o), auth).status == 200);
  o.stream = false;
  o.fake = {{"status", 500}};
  CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, chat_body_from(o), auth).status == 500);

  // The key did reach the upstream, so it was in tollgate's hands.
  const auto recorded = p.fake.requests();
  REQUIRE_FALSE(recorded.empty());
  CHECK(header(recorded[0], "authorization") == "Bearer " + key);

  CHECK(p.proxy.wait_for_log_records(5).size() == 5);
  REQUIRE(p.proxy.stop(10s) == std::optional<int>(0));  // all output flushed
  auto lines = p.proxy.process().stdout_lines();
  const auto err = p.proxy.process().stderr_lines();
  lines.insert(lines.end(), err.begin(), err.end());
  CHECK(lines.size() >= 6);
  for (const auto& line : lines) {
    INFO(line);
    CHECK(line.find(key) == std::string::npos);
    CHECK(line.find(key.substr(8, 12)) == std::string::npos);  // not even a fragment
    CHECK(line.find(client_key) == std::string::npos);
    CHECK(line.find(content) == std::string::npos);
  }
}

}  // namespace
}  // namespace tollgate::itest
