#include "adapters/ollama.hpp"

#include "core/ndjson_parser.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace json = boost::json;
namespace ollama = tollgate::adapters::ollama;
using tollgate::adapters::stream_framing;
using tollgate::adapters::translation_options;

namespace {

translation_options make_options(bool stream = false, bool wants_usage = false) {
  translation_options options;
  options.model = "llama3.2";
  options.stream = stream;
  options.client_wants_usage = wants_usage;
  return options;
}

const char* const user_hi = R"({"role":"user","content":"hi"})";

std::string with_messages(std::string_view rest) {
  return std::string(R"({"model":"gpt-4o","messages":[)") + user_hi + "]" + std::string(rest) + "}";
}

}  // namespace

TEST_CASE("ollama: the request goes to /api/chat as NDJSON, stream always explicit, exact bytes") {
  const auto request = json::parse(with_messages("")).as_object();
  for (bool stream : {false, true}) {
    CAPTURE(stream);
    auto call = ollama::translate_request(request, make_options(stream));
    REQUIRE(call.has_value());
    CHECK(call->path == "/api/chat");
    CHECK(call->framing == stream_framing::ndjson);
    CHECK(call->headers.empty());
    CHECK(call->body == std::string(R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":)") +
                            (stream ? "true" : "false") + "}");
  }
}

TEST_CASE("ollama: request mapping, golden") {
  struct row {
    const char* name;
    std::string request;
    std::string expected;  // compared as JSON values: member order and number spelling aside
  };
  const row rows[] = {
      {"the request's own stream flag and model give way to the options",
       R"({"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]})",
       R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false})"},
      {"system, developer (as system), names and bookkeeping fields dropped",
       R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"developer","content":"d"},
           {"role":"user","content":"u","name":"bob"}],"user":"x","store":true,"parallel_tool_calls":false,
           "stream_options":{"include_usage":true},"metadata":{"a":"b"}})",
       R"({"model":"llama3.2","messages":[{"role":"system","content":"s"},{"role":"system","content":"d"},
           {"role":"user","content":"u"}],"stream":false})"},
      {"text parts joined by newlines, data: URL images become base64 images",
       R"({"messages":[{"role":"user","content":[{"type":"text","text":"What is"},
           {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
           {"type":"text","text":"in this picture?"},
           {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ","detail":"high"}}]}]})",
       R"({"model":"llama3.2","messages":[{"role":"user","content":"What is\nin this picture?",
           "images":["iVBORw0KGgo=","/9j/4AAQ"]}],"stream":false})"},
      {"null content and an empty parts array are empty strings",
       R"({"messages":[{"role":"user","content":[]},{"role":"assistant","content":null}]})",
       R"({"model":"llama3.2","messages":[{"role":"user","content":""},{"role":"assistant","content":""}],"stream":false})"},
      {"assistant tool calls get object arguments, tool results get the called function's name (or their own)",
       R"({"messages":[{"role":"user","content":"Weather and time?"},
           {"role":"assistant","content":null,"tool_calls":[
             {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
             {"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]},
           {"role":"tool","tool_call_id":"call_a","content":"22C"},
           {"role":"tool","tool_call_id":"call_b","content":[{"type":"text","text":"12:00"}]},
           {"role":"tool","tool_call_id":"call_unknown","content":"?"},
           {"role":"tool","tool_call_id":"call_unknown","name":"lookup","content":"!"}]})",
       R"({"model":"llama3.2","messages":[{"role":"user","content":"Weather and time?"},
           {"role":"assistant","content":"","tool_calls":[
             {"function":{"name":"get_weather","arguments":{"city":"Paris"}}},
             {"function":{"name":"get_time","arguments":{}}}]},
           {"role":"tool","content":"22C","tool_name":"get_weather"},
           {"role":"tool","content":"12:00","tool_name":"get_time"},
           {"role":"tool","content":"?"},{"role":"tool","content":"!","tool_name":"lookup"}],"stream":false})"},
      {"tools pass through, tool_choice auto is dropped",
       with_messages(R"(,"tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather",
           "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
           "tool_choice":"auto")"),
       R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],
           "tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather",
           "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
           "stream":false})"},
      {"tool_choice none withholds the tools",
       with_messages(R"(,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none")"),
       R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false})"},
      {"a named tool_choice cannot be enforced and is dropped",
       with_messages(R"(,"tools":[{"type":"function","function":{"name":"f"}}],
           "tool_choice":{"type":"function","function":{"name":"f"}})"),
       R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],
           "tools":[{"type":"function","function":{"name":"f"}}],"stream":false})"},
      {"sampling parameters go to options",
       with_messages(R"(,"temperature":0.2,"top_p":1,"seed":42,"stop":"END","max_tokens":100,
           "presence_penalty":0.5,"frequency_penalty":-0.5)"),
       R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"options":{"temperature":0.2,"top_p":1,
           "presence_penalty":0.5,"frequency_penalty":-0.5,"num_predict":100,"seed":42,"stop":["END"]},"stream":false})"},
      {"max_completion_tokens wins over max_tokens; a stop list stays a list",
       with_messages(R"(,"max_tokens":10,"max_completion_tokens":20,"stop":["a","b"])"),
       R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":20,"stop":["a","b"]},
           "stream":false})"},
      {"response_format json_object is format json",
       with_messages(R"(,"response_format":{"type":"json_object"})"),
       R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"format":"json","stream":false})"},
      {"response_format json_schema is format <schema>",
       with_messages(R"(,"response_format":{"type":"json_schema","json_schema":{"name":"age","strict":true,
           "schema":{"type":"object","properties":{"age":{"type":"integer"}},"required":["age"]}}})"),
       R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],
           "format":{"type":"object","properties":{"age":{"type":"integer"}},"required":["age"]},"stream":false})"},
      {"response_format text, n 1 and neutral values of unsupported parameters are accepted",
       with_messages(R"(,"response_format":{"type":"text"},"n":1,"logprobs":false,"top_logprobs":null,
           "logit_bias":{},"temperature":null)"),
       R"({"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false})"},
  };
  for (const row& r : rows) {
    CAPTURE(r.name);
    auto call = ollama::translate_request(json::parse(r.request).as_object(), make_options());
    REQUIRE(call.has_value());
    CHECK(json::parse(call->body) == json::parse(r.expected));
    if (json::parse(call->body) != json::parse(r.expected)) MESSAGE(call->body);
  }
}

TEST_CASE("ollama: requests Ollama cannot serve are refused, naming the parameter") {
  struct row {
    std::string request;
    const char* param;
    const char* message_part;
  };
  const std::string image = R"({"type":"image_url","image_url":{"url":")";
  const row rows[] = {
      {with_messages(R"(,"n":2)"), "n", "must be 1"},
      {with_messages(R"(,"n":0)"), "n", "must be 1"},
      {with_messages(R"(,"logprobs":true)"), "logprobs", "logprobs"},
      {with_messages(R"(,"top_logprobs":3)"), "top_logprobs", "top_logprobs"},
      {with_messages(R"(,"logit_bias":{"50256":-100})"), "logit_bias", "logit_bias"},
      {with_messages(R"(,"audio":{"voice":"alloy","format":"wav"})"), "audio", "audio"},
      {with_messages(R"(,"functions":[{"name":"f"}])"), "functions", "tools"},
      {R"({"messages":[{"role":"user","content":[)" + image + R"(https://example.com/cat.png"}}]}]})",
       "messages[0].content[0].image_url", "data: URLs"},
      {R"({"messages":[{"role":"user","content":[)" + image + R"(data:image/png,rawbytes"}}]}]})",
       "messages[0].content[0].image_url", "base64"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})",
       "messages[0].content[0].image_url", "'url'"},
      {R"({"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"input_audio","input_audio":{}}]}]})",
       "messages[0].content[1].type", "input_audio"},
      {R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})", "messages[0].content[0]", "text"},
      {R"({"messages":[{"role":"user","content":5}]})", "messages[0].content", "expected a string"},
      {R"({"messages":[{"role":"function","name":"f","content":"x"}]})", "messages[0].role", "'function'"},
      {R"({"messages":[{"content":"x"}]})", "messages[0]", "string 'role'"},
      {R"({"model":"m"})", "messages", "non-empty array"},
      {R"({"messages":[]})", "messages", "non-empty array"},
      {R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function",
           "function":{"name":"f","arguments":"{\"a\":"}}]}]})",
       "messages[1].tool_calls[0].function.arguments", "not valid JSON"},
      {R"({"messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"[1,2]"}}]}]})",
       "messages[0].tool_calls[0].function.arguments", "JSON object"},
      {R"({"messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"{}"}}]}]})",
       "messages[0].tool_calls[0]", "'name'"},
      {R"({"messages":[{"role":"assistant","tool_calls":{}}]})", "messages[0].tool_calls", "array"},
      {with_messages(R"(,"temperature":"hot")"), "temperature", "number"},
      {with_messages(R"(,"max_tokens":1.5)"), "max_tokens", "integer"},
      {with_messages(R"(,"seed":"7")"), "seed", "integer"},
      {with_messages(R"(,"stop":5)"), "stop", "string"},
      {with_messages(R"(,"stop":["a",1])"), "stop", "string"},
      {with_messages(R"(,"response_format":{"type":"json_schema","json_schema":{"name":"x"}})"),
       "response_format.json_schema.schema", "schema"},
      {with_messages(R"(,"response_format":{"type":"xml"})"), "response_format", "json_schema"},
      {with_messages(R"(,"tools":{})"), "tools", "array"},
      {with_messages(R"(,"tools":[{"type":"custom","custom":{"name":"x"}}])"), "tools[0].type", "function tools"},
      {with_messages(R"(,"tools":[{"type":"function","function":{"description":"no name"}}])"), "tools[0].function",
       "'name'"},
  };
  for (const row& r : rows) {
    CAPTURE(r.request);
    auto call = ollama::translate_request(json::parse(r.request).as_object(), make_options());
    REQUIRE(call.has_error());
    CHECK(call.error().param == r.param);
    CHECK(call.error().message.find(r.message_part) != std::string::npos);
    if (call.error().message.find(r.message_part) == std::string::npos) MESSAGE(call.error().message);
  }
}

TEST_CASE("ollama: responses, golden") {
  struct row {
    const char* name;
    const char* body;
    const char* expected;
    std::uint64_t prompt_tokens, completion_tokens;
  };
  const row rows[] = {
      {"text",
       R"({"model":"llama3.2:latest","created_at":"2023-12-12T14:13:43.416799Z",
           "message":{"role":"assistant","content":"Hello! How are you today?"},"done":true,"done_reason":"stop",
           "total_duration":5191566416,"load_duration":2154458,"prompt_eval_count":26,"prompt_eval_duration":383809000,
           "eval_count":298,"eval_duration":4799921000})",
       R"({"id":"chatcmpl-ollama","object":"chat.completion","created":0,"model":"llama3.2","choices":[{"index":0,)"
       R"("message":{"role":"assistant","content":"Hello! How are you today?"},"logprobs":null,"finish_reason":"stop"}],)"
       R"("usage":{"prompt_tokens":26,"completion_tokens":298,"total_tokens":324}})",
       26, 298},
      {"tool calls: synthesized ids, arguments as JSON text, content null",
       R"({"model":"llama3.2","created_at":"2024-07-22T20:33:28.123648Z","message":{"role":"assistant","content":"",
           "tool_calls":[{"function":{"name":"get_current_weather","arguments":{"format":"celsius","location":"Paris, FR"}}},
           {"function":{"name":"get_time","arguments":{}}}]},"done_reason":"stop","done":true,
           "prompt_eval_count":122,"eval_count":33})",
       R"({"id":"chatcmpl-ollama","object":"chat.completion","created":0,"model":"llama3.2","choices":[{"index":0,)"
       R"("message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_0","type":"function","function":)"
       R"({"name":"get_current_weather","arguments":"{\"format\":\"celsius\",\"location\":\"Paris, FR\"}"}},)"
       R"({"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{}"}}]},)"
       R"("logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":122,"completion_tokens":33,"total_tokens":155}})",
       122, 33},
      {"text beside a tool call is kept; an upstream id is kept",
       R"({"message":{"role":"assistant","content":"Checking.","tool_calls":[{"id":"abc","function":{"name":"f","arguments":{"x":1}}}]},
           "done":true,"prompt_eval_count":5,"eval_count":6})",
       R"({"id":"chatcmpl-ollama","object":"chat.completion","created":0,"model":"llama3.2","choices":[{"index":0,)"
       R"("message":{"role":"assistant","content":"Checking.","tool_calls":[{"id":"abc","type":"function","function":)"
       R"({"name":"f","arguments":"{\"x\":1}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],)"
       R"("usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}})",
       5, 6},
      {"length; a prompt served from cache has no prompt_eval_count",
       R"({"model":"llama3.2","message":{"role":"assistant","content":"Once upon"},"done":true,"done_reason":"length",
           "eval_count":2})",
       R"({"id":"chatcmpl-ollama","object":"chat.completion","created":0,"model":"llama3.2","choices":[{"index":0,)"
       R"("message":{"role":"assistant","content":"Once upon"},"logprobs":null,"finish_reason":"length"}],)"
       R"("usage":{"prompt_tokens":0,"completion_tokens":2,"total_tokens":2}})",
       0, 2},
      {"no done_reason and no counts: stop and zero usage",
       R"({"message":{"role":"assistant","content":"ok","thinking":"hmm"},"done":true})",
       R"({"id":"chatcmpl-ollama","object":"chat.completion","created":0,"model":"llama3.2","choices":[{"index":0,)"
       R"("message":{"role":"assistant","content":"ok"},"logprobs":null,"finish_reason":"stop"}],)"
       R"("usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}})",
       0, 0},
  };
  for (const row& r : rows) {
    CAPTURE(r.name);
    auto translated = ollama::translate_response(r.body, make_options());
    REQUIRE(translated.has_value());
    CHECK(translated->body == r.expected);
    REQUIRE(translated->usage.has_value());
    CHECK(translated->usage->prompt_tokens == r.prompt_tokens);
    CHECK(translated->usage->completion_tokens == r.completion_tokens);
  }
}

TEST_CASE("ollama: a response that is not an Ollama chat answer is an error, not an exception") {
  const std::pair<const char*, const char*> rows[] = {
      {"", "not JSON"},
      {"{\"message\":", "not JSON"},
      {"[1]", "not a JSON object"},
      {R"({"error":"boom"})", "boom"},
      {R"({"done":true})", "'message'"},
      {R"({"message":"hi","done":true})", "'message'"},
  };
  for (const auto& [body, part] : rows) {
    CAPTURE(body);
    auto translated = ollama::translate_response(body, make_options());
    REQUIRE(translated.has_error());
    CHECK(translated.error().find(part) != std::string::npos);
  }
}

TEST_CASE("ollama: error answers become OpenAI-shaped errors, golden") {
  struct row {
    int status;
    std::string body;
    int expected_status;
    std::string expected_body;
  };
  const std::string html = "<html>" + std::string(300, 'x') + "</html>";
  const row rows[] = {
      {404, R"({"error":"model \"llama9\" not found, try pulling it first"})", 404,
       R"({"error":{"message":"Ollama: model \"llama9\" not found, try pulling it first","type":"invalid_request_error",)"
       R"("param":"model","code":"model_not_found"}})"},
      {400, R"({"error":"invalid options: foo"})", 400,
       R"({"error":{"message":"Ollama: invalid options: foo","type":"invalid_request_error","param":null,"code":null}})"},
      {500, R"({"error":"llama runner process has terminated: exit status 2"})", 502,
       R"({"error":{"message":"Ollama: llama runner process has terminated: exit status 2","type":"upstream_error",)"
       R"("param":null,"code":"upstream_error_status"}})"},
      {503, R"({"error":"server busy, please try again.  maximum pending requests exceeded"})", 503,
       R"({"error":{"message":"Ollama: server busy, please try again.  maximum pending requests exceeded",)"
       R"("type":"upstream_error","param":null,"code":"upstream_overloaded"}})"},
      {429, R"({"error":"too many requests"})", 429,
       R"({"error":{"message":"Ollama: too many requests","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}})"},
      {401, "unauthorized", 502,
       R"({"error":{"message":"Ollama: unauthorized","type":"upstream_error","param":null,"code":"upstream_error_status"}})"},
      {502, "", 502,
       R"({"error":{"message":"Ollama: HTTP 502","type":"upstream_error","param":null,"code":"upstream_error_status"}})"},
      {500, html, 502,
       R"({"error":{"message":"Ollama: )" + html.substr(0, 256) +
           R"(","type":"upstream_error","param":null,"code":"upstream_error_status"}})"},
      {400, R"({"error":{"message":"nested"}})", 400,
       R"({"error":{"message":"Ollama: {\"error\":{\"message\":\"nested\"}}","type":"invalid_request_error",)"
       R"("param":null,"code":null}})"},
  };
  for (const row& r : rows) {
    CAPTURE(r.body);
    const auto error = ollama::translate_error(r.status, r.body);
    CHECK(error.status == r.expected_status);
    CHECK(error.body == r.expected_body);
  }
}

namespace {

const std::string head =
    R"(data: {"id":"chatcmpl-ollama","object":"chat.completion.chunk","created":0,"model":"llama3.2","choices":[)";

std::string delta_chunk(std::string_view delta, std::string_view finish = "null") {
  return head + R"({"index":0,"delta":)" + std::string(delta) + R"(,"logprobs":null,"finish_reason":)" +
         std::string(finish) + "}]}\n\n";
}

const std::string role_chunk = delta_chunk(R"({"role":"assistant","content":""})");

struct stream_run {
  std::string out;
  std::unique_ptr<tollgate::adapters::stream_translator> translator;
};

stream_run feed_lines(const std::vector<std::string>& lines, const translation_options& options) {
  stream_run run{{}, ollama::make_stream_translator(options)};
  for (const auto& line : lines) run.translator->on_event("", line, run.out);
  run.translator->on_end(run.out);
  return run;
}

const std::vector<std::string> text_stream = {
    R"({"model":"llama3.2","created_at":"2024-07-22T20:33:28.1Z","message":{"role":"assistant","content":"The"},"done":false})",
    R"({"model":"llama3.2","created_at":"2024-07-22T20:33:28.2Z","message":{"role":"assistant","content":" sky is \"blue\".\n"},"done":false})",
    R"({"model":"llama3.2","created_at":"2024-07-22T20:33:28.3Z","message":{"role":"assistant","content":""},"done":true,)"
    R"("done_reason":"stop","total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,)"
    R"("prompt_eval_duration":342546000,"eval_count":4,"eval_duration":4535599000})",
};

const std::string text_stream_sse_without_usage =
    role_chunk + delta_chunk(R"({"content":"The"})") + delta_chunk(R"({"content":" sky is \"blue\".\n"})") +
    delta_chunk("{}", R"("stop")");

}  // namespace

TEST_CASE("ollama stream: a text stream, golden, with and without the usage chunk") {
  for (bool wants_usage : {true, false}) {
    CAPTURE(wants_usage);
    auto run = feed_lines(text_stream, make_options(true, wants_usage));
    std::string expected = text_stream_sse_without_usage;
    if (wants_usage)
      expected += head + R"(],"usage":{"prompt_tokens":26,"completion_tokens":4,"total_tokens":30}})" "\n\n";
    expected += "data: [DONE]\n\n";
    CHECK(run.out == expected);
    CHECK(run.translator->complete());
    CHECK(run.translator->output_chunks() == 2);
    REQUIRE(run.translator->usage().has_value());
    CHECK(run.translator->usage()->prompt_tokens == 26);
    CHECK(run.translator->usage()->completion_tokens == 4);
  }
}

TEST_CASE("ollama stream: state before the done line, and nothing after it") {
  auto translator = ollama::make_stream_translator(make_options(true));
  std::string out;
  translator->on_event("", text_stream[0], out);
  CHECK(out == role_chunk + delta_chunk(R"({"content":"The"})"));
  CHECK_FALSE(translator->complete());
  CHECK_FALSE(translator->usage().has_value());
  CHECK(translator->output_chunks() == 1);
  translator->on_event("", text_stream[1], out);
  translator->on_event("", text_stream[2], out);
  CHECK(translator->complete());
  const std::string before = out;
  translator->on_event("", text_stream[0], out);  // a stray line after done:true is ignored
  CHECK(out == before);
  translator->on_end(out);
  translator->on_end(out);  // [DONE] exactly once
  CHECK(out == text_stream_sse_without_usage + "data: [DONE]\n\n");
}

TEST_CASE("ollama stream: NDJSON framing and translation together, fed one byte at a time") {
  std::string body;
  for (const auto& line : text_stream) body += line + "\n";
  tollgate::core::ndjson_parser parser;
  auto translator = ollama::make_stream_translator(make_options(true, true));
  std::string out;
  auto on_line = [&](std::string_view line) { translator->on_event("", line, out); };
  for (char c : body) parser.feed(std::string_view(&c, 1), on_line);
  CHECK(parser.finish(on_line));
  translator->on_end(out);
  CHECK(out == text_stream_sse_without_usage + head +
                   R"(],"usage":{"prompt_tokens":26,"completion_tokens":4,"total_tokens":30}})" "\n\n"
                   "data: [DONE]\n\n");
}

TEST_CASE("ollama stream: tool calls, golden") {
  const std::vector<std::string> lines = {
      R"({"model":"qwen3","created_at":"2025-05-27T22:54:57.6Z","message":{"role":"assistant","content":"Let me check."},"done":false})",
      R"({"model":"qwen3","created_at":"2025-05-27T22:54:58.1Z","message":{"role":"assistant","content":"","tool_calls":[)"
      R"({"function":{"name":"get_current_weather","arguments":{"format":"celsius","location":"Toronto"}}}]},"done":false})",
      R"({"model":"qwen3","created_at":"2025-05-27T22:54:58.2Z","message":{"role":"assistant","content":"","tool_calls":[)"
      R"({"function":{"name":"get_time","arguments":{}}},{"function":{"name":"get_date"}}]},"done":false})",
      R"({"model":"qwen3","created_at":"2025-05-27T22:54:58.3Z","message":{"role":"assistant","content":""},"done":true,)"
      R"("done_reason":"stop","prompt_eval_count":122,"eval_count":33})",
  };
  auto run = feed_lines(lines, make_options(true));
  const std::string expected =
      role_chunk + delta_chunk(R"({"content":"Let me check."})") +
      delta_chunk(R"({"tool_calls":[{"index":0,"id":"call_0","type":"function","function":{"name":"get_current_weather",)"
                  R"("arguments":"{\"format\":\"celsius\",\"location\":\"Toronto\"}"}}]})") +
      delta_chunk(R"({"tool_calls":[{"index":1,"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{}"}},)"
                  R"({"index":2,"id":"call_2","type":"function","function":{"name":"get_date","arguments":"{}"}}]})") +
      delta_chunk("{}", R"("tool_calls")") + "data: [DONE]\n\n";
  CHECK(run.out == expected);
  CHECK(run.translator->complete());
  CHECK(run.translator->output_chunks() == 3);
  REQUIRE(run.translator->usage().has_value());
  CHECK(run.translator->usage()->prompt_tokens == 122);
  CHECK(run.translator->usage()->completion_tokens == 33);
}

TEST_CASE("ollama stream: a done line that carries text and a length stop") {
  const std::vector<std::string> lines = {
      R"({"message":{"role":"assistant","content":"Once"},"done":false})",
      R"({"message":{"role":"assistant","content":" upon"},"done":true,"done_reason":"length","eval_count":2})",
  };
  auto run = feed_lines(lines, make_options(true, true));
  CHECK(run.out == role_chunk + delta_chunk(R"({"content":"Once"})") + delta_chunk(R"({"content":" upon"})") +
                       delta_chunk("{}", R"("length")") + head +
                       R"(],"usage":{"prompt_tokens":0,"completion_tokens":2,"total_tokens":2}})" "\n\n"
                       "data: [DONE]\n\n");
  CHECK(run.translator->output_chunks() == 2);
}

TEST_CASE("ollama stream: an error line ends the stream with an OpenAI-style error event") {
  const std::vector<std::string> lines = {
      R"({"message":{"role":"assistant","content":"Hel"},"done":false})",
      R"({"error":"an error was encountered while running the model: unexpected EOF"})",
      R"({"message":{"role":"assistant","content":"lo"},"done":true,"eval_count":2})",
  };
  auto run = feed_lines(lines, make_options(true, true));
  CHECK(run.out == role_chunk + delta_chunk(R"({"content":"Hel"})") +
                       R"(data: {"error":{"message":"Ollama: an error was encountered while running the model: )"
                       R"(unexpected EOF","type":"upstream_error","param":null,"code":null}})" "\n\n");
  CHECK_FALSE(run.translator->complete());
  CHECK_FALSE(run.translator->usage().has_value());
  CHECK(run.translator->output_chunks() == 1);
}

TEST_CASE("ollama stream: an error as the first line, a malformed line, and an unfinished stream") {
  auto error_first = feed_lines({R"({"error":"model \"x\" not found"})"}, make_options(true));
  CHECK(error_first.out ==
        R"(data: {"error":{"message":"Ollama: model \"x\" not found","type":"upstream_error","param":null,"code":null}})"
        "\n\n");

  auto malformed = feed_lines({R"({"message":{"content":"a"}})", "{not json", "[]"}, make_options(true));
  CHECK(malformed.out == role_chunk + delta_chunk(R"({"content":"a"})") +
                             R"(data: {"error":{"message":"Ollama: malformed stream line from upstream",)"
                             R"("type":"upstream_error","param":null,"code":null}})" "\n\n");
  CHECK_FALSE(malformed.translator->complete());

  // No done:true: the relay sees complete() == false and owns the terminal error.
  auto unfinished = feed_lines({text_stream[0]}, make_options(true, true));
  CHECK(unfinished.out == role_chunk + delta_chunk(R"({"content":"The"})"));
  CHECK_FALSE(unfinished.translator->complete());
  CHECK_FALSE(unfinished.translator->usage().has_value());
  CHECK(unfinished.translator->output_chunks() == 1);

  auto empty = feed_lines({}, make_options(true, true));
  CHECK(empty.out.empty());
  CHECK_FALSE(empty.translator->complete());
}

TEST_CASE("ollama stream: the model name is JSON-escaped into every chunk") {
  translation_options options = make_options(true);
  options.model = "we\"ird";
  auto run = feed_lines({R"({"message":{"content":""},"done":true})"}, options);
  CHECK(run.out.find(R"("model":"we\"ird")") != std::string::npos);
  CHECK(json::parse(run.out.substr(6, run.out.find("\n\n") - 6)).at("model").as_string() == "we\"ird");
}
