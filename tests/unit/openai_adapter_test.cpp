#include "adapters/openai.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <optional>
#include <string>

namespace openai = tollgate::adapters::openai;
using action = openai::stream_chunk_outcome::action;

TEST_CASE("openai: endpoints map to routes and upstream paths") {
  CHECK(openai::endpoint_for_path("/v1/chat/completions") == openai::endpoint::chat_completions);
  CHECK(openai::endpoint_for_path("/v1/completions") == openai::endpoint::completions);
  CHECK(openai::endpoint_for_path("/v1/embeddings") == openai::endpoint::embeddings);
  CHECK_FALSE(openai::endpoint_for_path("/v1/chat/completions/"));
  CHECK_FALSE(openai::endpoint_for_path("/v2/embeddings"));
  CHECK(openai::path_below_root(openai::endpoint::chat_completions) == "/chat/completions");
  CHECK(openai::route_label(openai::endpoint::embeddings) == "/v1/embeddings");
}

TEST_CASE("openai: a valid non-streaming request goes upstream byte for byte") {
  std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.2})";
  auto request = openai::parse_front_request(openai::endpoint::chat_completions, body);
  REQUIRE(request.has_value());
  CHECK(request->model == "gpt-4o-mini");
  CHECK_FALSE(request->stream);
  CHECK(request->rewritten_body.empty());
}

TEST_CASE("openai: a stream without include_usage is asked for usage, and the client's wish is remembered") {
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"x":1}})";
  auto request = openai::parse_front_request(openai::endpoint::chat_completions, body);
  REQUIRE(request.has_value());
  CHECK(request->stream);
  CHECK_FALSE(request->client_wants_usage);
  auto upstream = boost::json::parse(request->rewritten_body).as_object();
  CHECK(upstream.at("stream_options").at("include_usage").as_bool());
  CHECK(upstream.at("stream_options").at("x").as_int64() == 1);  // other options survive
  CHECK(upstream.at("messages").as_array().size() == 1);
}

TEST_CASE("openai: a stream that already asks for usage is not rewritten") {
  std::string body =
      R"({"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":true}})";
  auto request = openai::parse_front_request(openai::endpoint::completions, body);
  REQUIRE(request.has_value());
  CHECK(request->client_wants_usage);
  CHECK(request->rewritten_body.empty());
}

TEST_CASE("openai: invalid requests get a message and the offending parameter") {
  struct row {
    openai::endpoint kind;
    const char* body;
    const char* message_part;
    const char* param;
  };
  const auto chat = openai::endpoint::chat_completions;
  const row rows[] = {
      {chat, "", "could not parse the JSON body", ""},
      {chat, "{\"model\":", "could not parse the JSON body", ""},
      {chat, "[1,2]", "must be a JSON object", ""},
      {chat, R"({"messages":[{"role":"user","content":"x"}]})", "Missing required parameter: 'model'", "model"},
      {chat, R"({"model":null,"messages":[]})", "Missing required parameter: 'model'", "model"},
      {chat, R"({"model":42,"messages":[{"role":"user"}]})", "Invalid 'model'", "model"},
      {chat, R"({"model":"","messages":[{"role":"user"}]})", "Invalid 'model'", "model"},
      {chat, R"({"model":"m"})", "Missing required parameter: 'messages'", "messages"},
      {chat, R"({"model":"m","messages":"hi"})", "expected an array", "messages"},
      {chat, R"({"model":"m","messages":[]})", "empty array", "messages"},
      {chat, R"({"model":"m","messages":[{"content":"x"}]})", "string 'role'", "messages[0]"},
      {chat, R"({"model":"m","messages":[{"role":"user"},3]})", "string 'role'", "messages[1]"},
      {chat, R"({"model":"m","messages":[{"role":"user"}],"stream":"yes"})", "'stream'", "stream"},
      {chat, R"({"model":"m","messages":[{"role":"user"}],"stream":true,"stream_options":1})", "'stream_options'",
       "stream_options"},
      {chat, R"({"model":"m","messages":[{"role":"user"}],"stream":true,"stream_options":{"include_usage":1}})",
       "include_usage", "stream_options.include_usage"},
      {openai::endpoint::completions, R"({"model":"m"})", "'prompt'", "prompt"},
      {openai::endpoint::embeddings, R"({"model":"m"})", "'input'", "input"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.body);
    auto request = openai::parse_front_request(r.kind, r.body);
    REQUIRE_FALSE(request.has_value());
    CHECK(request.error().message.find(r.message_part) != std::string::npos);
    CHECK(request.error().param == r.param);
  }
}

TEST_CASE("openai: embeddings never stream") {
  auto request = openai::parse_front_request(openai::endpoint::embeddings, R"({"model":"e","input":"x","stream":true})");
  REQUIRE(request.has_value());
  CHECK_FALSE(request->stream);
  CHECK(request->rewritten_body.empty());
}

TEST_CASE("openai: usage objects") {
  auto u = openai::parse_usage(
      R"({"prompt_tokens":120,"completion_tokens":7,"total_tokens":127,"prompt_tokens_details":{"cached_tokens":100}})");
  REQUIRE(u);
  CHECK(u->prompt_tokens == 120);
  CHECK(u->completion_tokens == 7);
  CHECK(u->cached_prompt_tokens == 100);

  auto embeddings = openai::parse_usage(R"({"prompt_tokens":8,"total_tokens":8})");
  REQUIRE(embeddings);
  CHECK(embeddings->prompt_tokens == 8);
  CHECK(embeddings->completion_tokens == 0);

  CHECK_FALSE(openai::parse_usage("null"));
  CHECK_FALSE(openai::parse_usage("{}"));
  CHECK_FALSE(openai::parse_usage(R"({"prompt_tokens":-3})"));
  CHECK_FALSE(openai::parse_usage("{\"prompt_tokens\":"));
}

TEST_CASE("openai: usage objects, edge cases") {
  struct row {
    const char* json;
    std::optional<openai::usage> want;
  };
  using u = openai::usage;
  const row rows[] = {
      // Whole numbers in any spelling count; fractions and negatives do not.
      {R"({"prompt_tokens":1.0,"completion_tokens":1e2})", u{1, 100, 0}},
      {R"({"prompt_tokens":1.5,"completion_tokens":2})", u{0, 2, 0}},
      {R"({"prompt_tokens":-1,"completion_tokens":2})", u{0, 2, 0}},
      {R"({"prompt_tokens":"5"})", std::nullopt},
      // Only the usage object's own members, and cached_tokens only in its details.
      {R"({"x":{"prompt_tokens":5},"completion_tokens":1})", u{0, 1, 0}},
      {R"({"prompt_tokens":1,"cached_tokens":7})", u{1, 0, 0}},
      {R"({"prompt_tokens":1,"prompt_tokens_details":{"x":{"cached_tokens":5}}})", u{1, 0, 0}},
      {R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":5}})", u{1, 0, 5}},
      // Keys are compared unescaped; of repeated ones, the last counts.
      {R"({"prompt\u005ftokens":3,"prompt_tokens_d\u0065tails":{"cached\u005ftokens":2}})", u{3, 0, 2}},
      {R"({"prompt_tokens":1,"prompt_tokens":2})", u{2, 0, 0}},
      {R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":4},"prompt_tokens_details":{}})", u{1, 0, 0}},
      // Not JSON, or more than one value.
      {R"({"prompt_tokens":1} x)", std::nullopt},
      {R"({"prompt_tokens":01})", std::nullopt},
  };
  for (const auto& r : rows) {
    CAPTURE(r.json);
    const auto got = openai::parse_usage(r.json);
    REQUIRE(got.has_value() == r.want.has_value());
    if (!got) continue;
    CHECK(got->prompt_tokens == r.want->prompt_tokens);
    CHECK(got->completion_tokens == r.want->completion_tokens);
    CHECK(got->cached_prompt_tokens == r.want->cached_prompt_tokens);
  }
}

TEST_CASE("openai: stream chunks, usage wanted by the client: everything forwarded, usage read") {
  openai::stream_chunk_outcome out;
  openai::inspect_stream_chunk(R"({"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null})", false, out);
  CHECK(out.what == action::forward);
  CHECK_FALSE(out.found_usage);

  openai::inspect_stream_chunk(R"({"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}})", false, out);
  CHECK(out.what == action::forward);
  REQUIRE(out.found_usage);
  CHECK(out.found_usage->completion_tokens == 4);
}

namespace {
std::string without_erased(std::string_view chunk, const openai::stream_chunk_outcome& out) {
  return std::string(chunk.substr(0, out.erase_begin)) + std::string(chunk.substr(out.erase_end));
}
}  // namespace

TEST_CASE("openai: stream chunks, usage hidden from the client") {
  openai::stream_chunk_outcome out;
  SUBCASE("a chunk without usage is forwarded untouched") {
    openai::inspect_stream_chunk(R"({"id":"x","choices":[{"index":0,"delta":{"content":"\"usage\""}}]})", true, out);
    CHECK(out.what == action::forward);
  }
  SUBCASE("usage:null is removed, every other byte kept") {
    constexpr std::string_view chunk = R"({"id":"x","choices":[{"index":0,"delta":{"content":"a"}}],"usage":null})";
    openai::inspect_stream_chunk(chunk, true, out);
    REQUIRE(out.what == action::erase);
    CHECK(without_erased(chunk, out) == R"({"id":"x","choices":[{"index":0,"delta":{"content":"a"}}]})");
  }
  SUBCASE("the usage-only chunk is dropped but its usage counted") {
    openai::inspect_stream_chunk(R"({"id":"x","choices":[ ],"usage":{"prompt_tokens":3,"completion_tokens":4}})", true, out);
    CHECK(out.what == action::drop);
    REQUIRE(out.found_usage);
    CHECK(out.found_usage->prompt_tokens == 3);
  }
  SUBCASE("usage riding on a content chunk is removed from it, the content kept") {
    constexpr std::string_view chunk = R"({"usage":{"prompt_tokens":1,"completion_tokens":2},"choices":[{"index":0}]})";
    openai::inspect_stream_chunk(chunk, true, out);
    REQUIRE(out.what == action::erase);
    CHECK(without_erased(chunk, out) == R"({"choices":[{"index":0}]})");
    REQUIRE(out.found_usage);
    CHECK(out.found_usage->completion_tokens == 2);
  }
  SUBCASE("a nested usage key is not the chunk's usage") {
    openai::inspect_stream_chunk(R"({"choices":[{"delta":{"usage":null}}]})", true, out);
    CHECK(out.what == action::forward);
  }
}

TEST_CASE("openai: error bodies have OpenAI's shape and escape their text") {
  auto body = boost::json::parse(openai::error_body("bad \"x\"\n", "invalid_request_error", "", "messages"));
  const auto& error = body.at("error").as_object();
  CHECK(error.at("message").as_string() == "bad \"x\"\n");
  CHECK(error.at("type").as_string() == "invalid_request_error");
  CHECK(error.at("param").as_string() == "messages");
  CHECK(error.at("code").is_null());
}

TEST_CASE("openai: prompt size is estimated from the text a request carries") {
  auto chat = openai::parse_front_request(
      openai::endpoint::chat_completions,
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh"}]}],"max_tokens":100})");
  REQUIRE(chat.has_value());
  CHECK(chat->prompt_tokens_estimate == 4);  // "user"(4) + "text"(4) + "abcdefgh"(8) = 16 bytes
  auto completion = openai::parse_front_request(openai::endpoint::completions, R"({"model":"m","prompt":"abcde"})");
  REQUIRE(completion.has_value());
  CHECK(completion->prompt_tokens_estimate == 2);
}

TEST_CASE("openai: chunks that deliver output are recognised") {
  openai::stream_chunk_outcome out;
  struct row {
    const char* data;
    bool delivers;
  };
  const row rows[] = {
      {R"({"choices":[{"delta":{"content":"hi"}}]})", true},
      {R"({"choices":[{"delta":{"role":"assistant","content":""}}]})", false},
      {R"({"choices":[{"delta":{},"finish_reason":"stop"}]})", false},
      {R"({"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\"a"}}]}}]})", true},
      {R"({"choices":[{"text":"x","index":0}]})", true},
  };
  for (const auto& r : rows) {
    CAPTURE(r.data);
    openai::inspect_stream_chunk(r.data, true, out);
    CHECK(out.delivers_output == r.delivers);
  }
}

TEST_CASE("openai: a chunk delivers output when content, text or arguments is not empty, wherever it sits") {
  openai::stream_chunk_outcome out;
  struct example {
    std::string_view member;
    bool delivers;
  };
  const example examples[] = {
      {R"("content":"w")", true},     {R"("text":"w")", true},      {R"("arguments":"{")", true},
      {R"("content":"")", false},     {R"("content":null)", false}, {R"("role":"assistant")", false},
      {R"("xcontent":"w")", false},
  };
  for (const auto& e : examples) {
    for (std::size_t pad = 0; pad < 40; ++pad) {
      const std::string chunk = R"({"id":")" + std::string(pad, 'p') + R"(","choices":[{"delta":{)" + std::string(e.member) + "}}]}";
      CAPTURE(chunk);
      openai::inspect_stream_chunk(chunk, false, out);
      CHECK(out.delivers_output == e.delivers);
    }
  }
}
