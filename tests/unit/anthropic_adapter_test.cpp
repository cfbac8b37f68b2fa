// Golden tests for the Anthropic adapter. Inputs and expected outputs live in
// tests/unit/golden/anthropic/ so each case reads as data: OpenAI JSON in, Anthropic JSON out
// (compared as parsed values), or Anthropic SSE in, exact OpenAI SSE text out.
#include "adapters/anthropic.hpp"

#include "core/sse_parser.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#define TOLLGATE_ANTHROPIC_GOLDEN_DIR (std::filesystem::path(__FILE__).parent_path() / "golden" / "anthropic")

namespace adapters = tollgate::adapters;
namespace anthropic = tollgate::adapters::anthropic;
namespace json = boost::json;

namespace {

std::string read_golden(const std::string& name) {
  std::ifstream file(TOLLGATE_ANTHROPIC_GOLDEN_DIR / name, std::ios::binary);
  REQUIRE_MESSAGE(file.good(), "missing golden file " << name);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

json::array read_cases(const std::string& name) {
  json::value cases = json::parse(read_golden(name));
  REQUIRE(cases.is_array());
  return cases.get_array();
}

adapters::translation_options default_options() {
  adapters::translation_options options;
  options.model = "claude-sonnet-4-5";
  return options;
}

adapters::translation_options options_from(const json::object& test_case) {
  auto options = default_options();
  if (const auto* given = test_case.if_contains("options")) {
    const auto& object = given->as_object();
    if (const auto* model = object.if_contains("model")) options.model = std::string(model->as_string());
    if (const auto* max = object.if_contains("default_max_tokens"))
      options.default_max_tokens = static_cast<std::uint32_t>(max->to_number<std::uint64_t>());
    if (const auto* stream = object.if_contains("stream")) options.stream = stream->as_bool();
  }
  return options;
}

// A stream fixture as the relay would see it: one (event type, data) pair per SSE block.
std::vector<std::pair<std::string, std::string>> events_of(const std::string& name) {
  std::vector<std::pair<std::string, std::string>> events;
  tollgate::core::sse_parser parser;
  auto collect = [&](const tollgate::core::sse_event& event) {
    if (event.has_data) events.emplace_back(std::string(event.event), std::string(event.data));
  };
  parser.feed(read_golden(name), collect);
  REQUIRE(parser.finish(collect));
  REQUIRE_FALSE(events.empty());
  return events;
}

struct stream_run {
  std::string output;
  std::unique_ptr<adapters::stream_translator> translator;
};

stream_run run_stream(const std::string& name, const adapters::translation_options& options) {
  stream_run run{{}, anthropic::make_stream_translator(options)};
  for (const auto& [type, data] : events_of(name)) run.translator->on_event(type, data, run.output);
  run.translator->on_end(run.output);
  return run;
}

}  // namespace

// The suite name is what `unit_tests -ts='*anthropic*'` selects.
TEST_SUITE_BEGIN("anthropic");

TEST_CASE("anthropic: request goldens") {
  auto cases = read_cases("requests.json");
  CHECK(cases.size() == 14);
  for (const auto& item : cases) {
    const auto& test_case = item.as_object();
    CAPTURE(test_case.at("name").as_string());
    auto call = anthropic::translate_request(test_case.at("request").as_object(), options_from(test_case));
    REQUIRE_MESSAGE(call.has_value(), (call.has_value() ? "" : call.error().message));
    json::value actual = json::parse(call->body);
    CAPTURE(call->body);
    CHECK(actual == test_case.at("expected"));
  }
}

TEST_CASE("anthropic: every call goes to /messages with the API version, framed as SSE") {
  auto options = default_options();
  auto call = anthropic::translate_request(
      json::parse(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})").as_object(), options);
  REQUIRE(call.has_value());
  CHECK(call->path == "/messages");
  CHECK(call->framing == adapters::stream_framing::sse);
  REQUIRE(call->headers.size() == 1);
  CHECK(call->headers[0].first == "anthropic-version");
  CHECK(call->headers[0].second == "2023-06-01");
}

TEST_CASE("anthropic: parameters that would change the answer silently are refused, naming the field") {
  auto cases = read_cases("rejected_requests.json");
  CHECK(cases.size() == 28);
  for (const auto& item : cases) {
    const auto& test_case = item.as_object();
    json::object request{{"model", "m"}, {"messages", json::array{json::object{{"role", "user"}, {"content", "hi"}}}}};
    for (const auto& member : test_case.at("request").as_object()) request[member.key()] = member.value();
    CAPTURE(json::serialize(request));
    auto call = anthropic::translate_request(request, default_options());
    REQUIRE_FALSE(call.has_value());
    CAPTURE(call.error().message);
    CHECK(call.error().param == test_case.at("param").as_string());
    CHECK(call.error().message.find(test_case.at("message").as_string()) != std::string::npos);
  }
}

TEST_CASE("anthropic: response goldens") {
  auto cases = read_cases("responses.json");
  CHECK(cases.size() == 4);
  for (const auto& item : cases) {
    const auto& test_case = item.as_object();
    CAPTURE(test_case.at("name").as_string());
    auto translated = anthropic::translate_response(json::serialize(test_case.at("response")), default_options());
    REQUIRE_MESSAGE(translated.has_value(), (translated.has_value() ? "" : translated.error()));
    CAPTURE(translated->body);
    CHECK(json::parse(translated->body) == test_case.at("expected"));
    const auto& usage = test_case.at("usage");
    REQUIRE(translated->usage.has_value() == !usage.is_null());
    if (usage.is_null()) continue;
    CHECK(translated->usage->prompt_tokens == usage.at("prompt_tokens").to_number<std::uint64_t>());
    CHECK(translated->usage->completion_tokens == usage.at("completion_tokens").to_number<std::uint64_t>());
    CHECK(translated->usage->cached_prompt_tokens == usage.at("cached_tokens").to_number<std::uint64_t>());
  }
}

TEST_CASE("anthropic: every stop reason has a finish reason") {
  const std::pair<const char*, const char*> rows[] = {
      {"end_turn", "stop"},      {"stop_sequence", "stop"},       {"max_tokens", "length"},
      {"tool_use", "tool_calls"}, {"refusal", "content_filter"},  {"pause_turn", "stop"},
      {"model_context_window_exceeded", "length"}, {"a_reason_from_the_future", "stop"},
  };
  for (const auto& [stop_reason, finish_reason] : rows) {
    CAPTURE(stop_reason);
    std::string body = R"({"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"x"}],)"
                       R"("stop_reason":")" + std::string(stop_reason) + R"("})";
    auto translated = anthropic::translate_response(body, default_options());
    REQUIRE(translated.has_value());
    auto parsed = json::parse(translated->body);
    CHECK(parsed.at("choices").at(0).at("finish_reason") == finish_reason);
  }
}

TEST_CASE("anthropic: a body that is not a Messages response is an error, not a guess") {
  const char* bodies[] = {
      "", "not json", "[]", R"({"type":"error","error":{"type":"api_error","message":"x"}})",
      R"({"id":"msg_1","type":"message","role":"assistant"})", R"({"id":"msg_1","type":"message","content":{}})",
  };
  for (const char* body : bodies) {
    CAPTURE(body);
    auto translated = anthropic::translate_response(body, default_options());
    REQUIRE_FALSE(translated.has_value());
    CHECK_FALSE(translated.error().empty());
  }
}

TEST_CASE("anthropic: error goldens") {
  auto cases = read_cases("errors.json");
  CHECK(cases.size() == 15);
  for (const auto& item : cases) {
    const auto& test_case = item.as_object();
    const auto& body = test_case.at("body");
    std::string raw = body.is_string() ? std::string(body.get_string()) : json::serialize(body);
    int status = static_cast<int>(test_case.at("status").to_number<std::int64_t>());
    CAPTURE(status);
    CAPTURE(raw);
    auto translated = anthropic::translate_error(status, raw);
    CHECK(translated.status == test_case.at("expected_status").to_number<std::int64_t>());
    CAPTURE(translated.body);
    CHECK(json::parse(translated.body) == test_case.at("expected"));
  }
}

TEST_CASE("anthropic: a text stream, client asked for usage") {
  auto options = default_options();
  options.stream = true;
  options.client_wants_usage = true;
  auto run = run_stream("text_stream.sse", options);
  CHECK(run.output == read_golden("text_stream.expected"));
  CHECK(run.translator->complete());
  CHECK(run.translator->output_chunks() == 3);
  auto usage = run.translator->usage();
  REQUIRE(usage);
  CHECK(usage->prompt_tokens == 132);
  CHECK(usage->completion_tokens == 15);
  CHECK(usage->cached_prompt_tokens == 100);
}

TEST_CASE("anthropic: a tool-use stream with thinking, client did not ask for usage") {
  auto options = default_options();
  options.stream = true;
  auto run = run_stream("tool_stream.sse", options);
  CHECK(run.output == read_golden("tool_stream.expected"));
  CHECK(run.translator->complete());
  CHECK(run.translator->output_chunks() == 4);  // one text delta, three argument fragments
  auto usage = run.translator->usage();
  REQUIRE(usage);
  CHECK(usage->prompt_tokens == 472);
  CHECK(usage->completion_tokens == 89);
}

TEST_CASE("anthropic: an error event ends the translated stream") {
  auto options = default_options();
  options.stream = true;
  options.client_wants_usage = true;
  auto run = run_stream("error_stream.sse", options);
  CHECK(run.output == read_golden("error_stream.expected"));  // nothing after the error, not even [DONE]
  CHECK_FALSE(run.translator->complete());
  CHECK(run.translator->output_chunks() == 1);
  auto usage = run.translator->usage();
  REQUIRE(usage);
  CHECK(usage->prompt_tokens == 10);  // still charged for what was sent
}

TEST_CASE("anthropic: stream edge cases") {
  auto options = default_options();
  options.stream = true;
  std::string out;

  SUBCASE("without SSE event names the data's type decides") {
    auto translator = anthropic::make_stream_translator(options);
    translator->on_event("", R"({"type":"message_start","message":{"id":"msg_x","usage":{"input_tokens":3}}})", out);
    translator->on_event("", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}})", out);
    translator->on_event("", R"({"type":"message_stop"})", out);
    CHECK(translator->complete());
    CHECK(translator->output_chunks() == 1);
    CHECK(out.find(R"("delta":{"content":"a"})") != std::string::npos);
    CHECK(out.find(R"("finish_reason":"stop")") != std::string::npos);  // message_stop owed a finish chunk
  }
  SUBCASE("a cut stream is not complete, owes no finish chunk, and keeps its usage") {
    auto translator = anthropic::make_stream_translator(options);
    translator->on_event("message_start", R"({"type":"message_start","message":{"id":"m","usage":{"input_tokens":9,"output_tokens":1}}})", out);
    translator->on_event("message_delta", R"({"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":4}})", out);
    // Some Anthropic-compatible upstreams restate usage with zeros: counts never go down.
    translator->on_event("message_delta", R"({"type":"message_delta","delta":{},"usage":{"input_tokens":0,"output_tokens":2}})", out);
    translator->on_event("content_block_delta", "{not json", out);
    translator->on_end(out);
    CHECK_FALSE(translator->complete());
    CHECK(out.find("finish_reason\":\"") == std::string::npos);
    CHECK(out.ends_with("data: [DONE]\n\n"));
    REQUIRE(translator->usage());
    CHECK(translator->usage()->prompt_tokens == 9);
    CHECK(translator->usage()->completion_tokens == 4);
  }
  SUBCASE("no usage before message_start; a malformed error event still yields an OpenAI error") {
    auto translator = anthropic::make_stream_translator(options);
    CHECK_FALSE(translator->usage());
    translator->on_event("error", "<html>", out);
    CHECK(out == "data: {\"error\":{\"message\":\"Anthropic: stream error\",\"type\":\"server_error\","
                 "\"param\":null,\"code\":null}}\n\n");
    std::string after;
    translator->on_end(after);
    CHECK(after.empty());
  }
}

TEST_CASE("anthropic: native usage accumulates from message_start and message_delta") {
  tollgate::adapters::openai::usage usage;
  anthropic::accumulate_native_usage(
      "message_start",
      R"({"type":"message_start","message":{"id":"m","usage":{"input_tokens":25,"cache_read_input_tokens":100,)"
      R"("cache_creation_input_tokens":7,"output_tokens":1}}})",
      usage);
  CHECK(usage.prompt_tokens == 132);
  CHECK(usage.cached_prompt_tokens == 100);
  CHECK(usage.completion_tokens == 1);
  anthropic::accumulate_native_usage("ping", R"({"type":"ping"})", usage);
  anthropic::accumulate_native_usage("content_block_delta",
                                     R"({"type":"content_block_delta","usage":{"output_tokens":999}})", usage);
  anthropic::accumulate_native_usage("message_delta", R"({"type":"message_delta","usage":{"output_tokens":15}})", usage);
  CHECK(usage.completion_tokens == 15);
  CHECK(usage.prompt_tokens == 132);  // a delta without the prompt side does not zero it
  anthropic::accumulate_native_usage("", R"({"type":"message_delta","usage":{"output_tokens":40}})", usage);
  anthropic::accumulate_native_usage("message_delta", "{broken", usage);
  CHECK(usage.completion_tokens == 40);

  tollgate::adapters::openai::usage whole;
  anthropic::accumulate_native_usage(
      "", R"({"id":"m","type":"message","content":[],"usage":{"input_tokens":5,"output_tokens":6}})", whole);
  CHECK(whole.prompt_tokens == 5);
  CHECK(whole.completion_tokens == 6);
}

TEST_SUITE_END();
