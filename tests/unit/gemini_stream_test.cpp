// Golden tests for the Gemini stream translator: streamGenerateContent?alt=sse events in,
// chat.completion.chunk events out, fed one event at a time.
#include "adapters/gemini.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace gemini = tollgate::adapters::gemini;
using tollgate::adapters::translation_options;

namespace {

translation_options options(bool client_wants_usage) {
  translation_options o;
  o.model = "gemini-2.5-flash";
  o.stream = true;
  o.client_wants_usage = client_wants_usage;
  return o;
}

std::string chunk(const char* id, const std::string& choices) {
  return std::string("data: {\"id\":\"") + id +
         R"(","object":"chat.completion.chunk","created":0,"model":"gemini-2.5-flash","choices":)" + choices + "}\n\n";
}

std::string role(const char* id) {
  return chunk(id, R"([{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}])");
}

std::string content(const char* id, const char* text) {
  return chunk(id, std::string(R"([{"index":0,"delta":{"content":")") + text + R"("},"finish_reason":null}])");
}

std::string finish(const char* id, const char* reason) {
  return chunk(id, std::string(R"([{"index":0,"delta":{},"finish_reason":")") + reason + R"("}])");
}

struct step {
  const char* data;
  std::string expected;  // what this one event appends
};

// Feeds each event alone and checks exactly what it appended.
void feed(tollgate::adapters::stream_translator& translator, const std::vector<step>& steps) {
  for (const auto& s : steps) {
    CAPTURE(s.data);
    std::string out;
    translator.on_event("", s.data, out);
    CHECK(out == s.expected);
  }
}

}  // namespace

TEST_SUITE("gemini") {

TEST_CASE("gemini stream: a text answer, with the usage chunk the client asked for") {
  auto translator = gemini::make_stream_translator(options(true));
  CHECK_FALSE(translator->usage());
  feed(*translator,
       {
           {R"({"candidates":[{"content":{"parts":[{"text":"Hello"}],"role":"model"},"index":0}],)"
            R"("usageMetadata":{"promptTokenCount":8,"totalTokenCount":8},"modelVersion":"gemini-2.5-flash",)"
            R"("responseId":"abc123"})",
            role("abc123") + content("abc123", "Hello")},
           // An early chunk that forgets the prompt count must not lower it.
           {R"({"candidates":[{"content":{"parts":[{"text":" wor"},{"text":"ld"}],"role":"model"},"index":0}],)"
            R"("usageMetadata":{"candidatesTokenCount":2,"totalTokenCount":10},"responseId":"abc123"})",
            content("abc123", " world")},
       });
  REQUIRE(translator->usage());
  CHECK(translator->usage()->prompt_tokens == 8);
  CHECK(translator->usage()->completion_tokens == 2);
  CHECK_FALSE(translator->complete());
  feed(*translator,
       {
           {R"({"candidates":[{"content":{"parts":[{"text":"thinking","thought":true}],"role":"model"},"index":0}],)"
            R"("responseId":"abc123"})",
            ""},
           {R"({"candidates":[{"content":{"parts":[{"text":"!"}],"role":"model"},"finishReason":"STOP","index":0}],)"
            R"("usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":3,"totalTokenCount":15,"thoughtsTokenCount":4},)"
            R"("responseId":"abc123"})",
            content("abc123", "!") + finish("abc123", "stop")},
       });
  CHECK(translator->complete());
  CHECK(translator->output_chunks() == 3);
  REQUIRE(translator->usage());
  CHECK(translator->usage()->prompt_tokens == 8);
  CHECK(translator->usage()->completion_tokens == 7);  // 3 candidates + 4 thinking

  std::string out;
  translator->on_end(out);
  CHECK(out ==
        R"(data: {"id":"abc123","object":"chat.completion.chunk","created":0,"model":"gemini-2.5-flash","choices":[],)"
        R"("usage":{"prompt_tokens":8,"completion_tokens":7,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0},)"
        R"("completion_tokens_details":{"reasoning_tokens":4}}})"
        "\n\ndata: [DONE]\n\n");
}

TEST_CASE("gemini stream: without include_usage the usage chunk is not sent but usage is still known") {
  auto translator = gemini::make_stream_translator(options(false));
  feed(*translator,
       {
           {R"({"candidates":[{"content":{"parts":[{"text":"Hi \"there\""}],"role":"model"},"finishReason":"MAX_TOKENS"}],)"
            R"("usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"cachedContentTokenCount":2}})",
            role("chatcmpl-gemini") + content("chatcmpl-gemini", R"(Hi \"there\")") + finish("chatcmpl-gemini", "length")},
       });
  std::string out;
  translator->on_end(out);
  CHECK(out == "data: [DONE]\n\n");
  REQUIRE(translator->usage());
  CHECK(translator->usage()->cached_prompt_tokens == 2);
  CHECK(translator->complete());
}

TEST_CASE("gemini stream: function calls arrive whole, one tool-call chunk each") {
  auto translator = gemini::make_stream_translator(options(false));
  feed(*translator,
       {
           {R"({"candidates":[{"content":{"parts":[{"text":"Let me check."}],"role":"model"},"index":0}],"responseId":"r1"})",
            role("r1") + content("r1", "Let me check.")},
           {R"({"candidates":[{"content":{"parts":[)"
            R"({"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln"},)"
            R"({"functionCall":{"name":"get_time","args":{"tz":"CET"}}}],"role":"model"},"finishReason":"STOP","index":0}],)"
            R"("usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":12,"totalTokenCount":42},"responseId":"r1"})",
            chunk("r1", R"([{"index":0,"delta":{"tool_calls":[{"id":"call_0","type":"function","function":)"
                        R"({"name":"get_weather","arguments":"{\"city\":\"Paris\"}"},"index":0}]},"finish_reason":null}])") +
                chunk("r1", R"([{"index":0,"delta":{"tool_calls":[{"id":"call_1","type":"function","function":)"
                            R"({"name":"get_time","arguments":"{\"tz\":\"CET\"}"},"index":1}]},"finish_reason":null}])") +
                finish("r1", "tool_calls")},
           // After the finish reason only usage can still change.
           {R"({"candidates":[{"content":{"parts":[{"text":"late"}]}}],"usageMetadata":{"promptTokenCount":30,)"
            R"("candidatesTokenCount":13,"totalTokenCount":43},"responseId":"r1"})",
            ""},
       });
  CHECK(translator->complete());
  CHECK(translator->output_chunks() == 3);
  REQUIRE(translator->usage());
  CHECK(translator->usage()->completion_tokens == 13);
  std::string out;
  translator->on_end(out);
  CHECK(out == "data: [DONE]\n\n");
}

TEST_CASE("gemini stream: text and calls in one chunk keep the model's order") {
  auto translator = gemini::make_stream_translator(options(false));
  feed(*translator,
       {{R"({"candidates":[{"content":{"parts":[{"text":"A"},{"functionCall":{"name":"f"}},{"text":"B"}]},)"
         R"("finishReason":"STOP"}],"responseId":"m1"})",
         role("m1") + content("m1", "A") +
             chunk("m1", R"([{"index":0,"delta":{"tool_calls":[{"id":"call_0","type":"function","function":)"
                         R"({"name":"f","arguments":"{}"},"index":0}]},"finish_reason":null}])") +
             content("m1", "B") + finish("m1", "tool_calls")}});
  CHECK(translator->output_chunks() == 3);
}

TEST_CASE("gemini stream: an error object mid-stream becomes an OpenAI error event") {
  auto translator = gemini::make_stream_translator(options(true));
  feed(*translator,
       {
           {R"({"candidates":[{"content":{"parts":[{"text":"Once"}],"role":"model"}}],"responseId":"e1",)"
            R"("usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1}})",
            role("e1") + content("e1", "Once")},
           {R"({"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}})",
            R"(data: {"error":{"message":"Gemini: Resource has been exhausted","type":"rate_limit_error","param":null,)"
            R"("code":"RESOURCE_EXHAUSTED"}})"
            "\n\n"},
           {R"({"candidates":[{"content":{"parts":[{"text":"ignored"}]},"finishReason":"STOP"}]})", ""},
       });
  CHECK_FALSE(translator->complete());
  CHECK(translator->output_chunks() == 1);
  REQUIRE(translator->usage());  // what was generated before the error is still charged
  CHECK(translator->usage()->completion_tokens == 1);
  std::string out;
  translator->on_end(out);
  CHECK(out == "data: [DONE]\n\n");
}

TEST_CASE("gemini stream: an error without a code takes its status from the gRPC name") {
  auto translator = gemini::make_stream_translator(options(false));
  feed(*translator, {{R"({"error":{"message":"Try later","status":"UNAVAILABLE"}})",
                      R"(data: {"error":{"message":"Gemini: Try later","type":"server_error","param":null,"code":"UNAVAILABLE"}})"
                      "\n\n"}});
  CHECK_FALSE(translator->usage());
}

TEST_CASE("gemini stream: a blocked prompt ends with content_filter") {
  auto translator = gemini::make_stream_translator(options(false));
  feed(*translator, {{R"({"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},)"
                      R"("usageMetadata":{"promptTokenCount":5,"totalTokenCount":5},"responseId":"b1"})",
                      role("b1") + finish("b1", "content_filter")}});
  CHECK(translator->complete());
  CHECK(translator->output_chunks() == 0);
  CHECK(translator->usage()->prompt_tokens == 5);
}

TEST_CASE("gemini stream: a stream that ends before a finish reason says so") {
  auto translator = gemini::make_stream_translator(options(true));
  feed(*translator, {{R"({"candidates":[{"content":{"parts":[{"text":"Half"}]}}],"responseId":"t1"})",
                      role("t1") + content("t1", "Half")},
                     {"", ""}});
  CHECK_FALSE(translator->complete());
  std::string out;
  translator->on_end(out);
  CHECK(out ==
        R"(data: {"error":{"message":"Gemini: the stream ended before the answer was complete.","type":"server_error",)"
        R"("param":null,"code":null}})"
        "\n\ndata: [DONE]\n\n");
  std::string again;
  translator->on_end(again);  // the stream owes nothing twice
  CHECK(again.empty());
}

TEST_CASE("gemini stream: an event that is not JSON is an error event") {
  auto translator = gemini::make_stream_translator(options(false));
  feed(*translator, {{R"({"candidates":[)",
                      R"(data: {"error":{"message":"Gemini: the stream carried an event that is not JSON.",)"
                      R"("type":"server_error","param":null,"code":null}})"
                      "\n\n"}});
  CHECK_FALSE(translator->complete());
}

TEST_CASE("gemini stream: the array framing (no alt=sse) is read element by element") {
  auto translator = gemini::make_stream_translator(options(false));
  feed(*translator, {{R"([{"candidates":[{"content":{"parts":[{"text":"A"}]}}],"responseId":"a1"},)"
                      R"({"candidates":[{"content":{"parts":[{"text":"B"}]},"finishReason":"STOP"}],"responseId":"a1"}])",
                      role("a1") + content("a1", "A") + content("a1", "B") + finish("a1", "stop")}});
  CHECK(translator->complete());
  CHECK(translator->output_chunks() == 2);
}

}  // TEST_SUITE
