// Golden tests for the Gemini adapter: requests, whole responses and error bodies. Streams are
// in gemini_stream_test.cpp.
#include "adapters/gemini.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <string>

namespace gemini = tollgate::adapters::gemini;
namespace json = boost::json;
using tollgate::adapters::translation_options;

namespace {

translation_options options(bool stream = false) {
  translation_options o;
  o.model = "gemini-2.5-flash";
  o.stream = stream;
  return o;
}

// Objects compare member by member whatever their order; doubles after a serialize round trip.
json::value translated(const char* openai_request) {
  auto call = gemini::translate_request(json::parse(openai_request).as_object(), options());
  REQUIRE(call.has_value());
  return json::parse(call->body);
}

}  // namespace

TEST_SUITE("gemini") {

TEST_CASE("gemini: requests map to generateContent bodies") {
  struct row {
    const char* name;
    const char* openai;
    const char* gemini;
  };
  const row rows[] = {
      {"a user string", R"({"model":"x","messages":[{"role":"user","content":"Hi"}]})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]})"},

      {"system and developer messages join systemInstruction; neighbours with one role merge",
       R"({"model":"x","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},
           {"role":"user","content":[{"type":"text","text":"there"},{"type":"text","text":""}]},
           {"role":"assistant","content":"Hello!"},{"role":"developer","content":[{"type":"text","text":"Use French."}]},
           {"role":"user","content":"Ça va?"}]})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"},{"text":"there"}]},
                       {"role":"model","parts":[{"text":"Hello!"}]},
                       {"role":"user","parts":[{"text":"Ça va?"}]}],
           "systemInstruction":{"parts":[{"text":"Be brief."},{"text":"Use French."}]}})"},

      {"images: data URLs inline, http(s) URLs by reference with a guessed type",
       R"({"model":"x","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
           {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
           {"type":"image_url","image_url":{"url":"https://example.com/cat.WEBP?size=large#top","detail":"high"}},
           {"type":"image_url","image_url":{"url":"https://example.com/photo"}}]}]})",
       R"({"contents":[{"role":"user","parts":[{"text":"What is this?"},
           {"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
           {"fileData":{"mimeType":"image/webp","fileUri":"https://example.com/cat.WEBP?size=large#top"}},
           {"fileData":{"mimeType":"image/jpeg","fileUri":"https://example.com/photo"}}]}]})"},

      {"input audio and inline files",
       R"({"model":"x","messages":[{"role":"user","content":[
           {"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}},
           {"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}]})",
       R"({"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"audio/wav","data":"UklGRg=="}},
           {"inlineData":{"mimeType":"application/pdf","data":"JVBERi0="}}]}]})"},

      {"tool calls become functionCall parts, tool results functionResponse parts named by call id",
       R"({"model":"x","messages":[{"role":"user","content":"Weather in Paris, and the time?"},
           {"role":"assistant","content":null,"tool_calls":[
             {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
             {"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]},
           {"role":"tool","tool_call_id":"call_b","content":"12:00"},
           {"role":"tool","tool_call_id":"call_a","content":"{\"temp\":21}"},
           {"role":"tool","tool_call_id":"call_a","content":[{"type":"text","text":"[1,"},{"type":"text","text":"2]"}]},
           {"role":"user","content":"Thanks"}]})",
       R"({"contents":[{"role":"user","parts":[{"text":"Weather in Paris, and the time?"}]},
           {"role":"model","parts":[
             {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},
              "thoughtSignature":"skip_thought_signature_validator"},
             {"functionCall":{"name":"get_time","args":{}}}]},
           {"role":"user","parts":[
             {"functionResponse":{"name":"get_time","response":{"content":"12:00"}}},
             {"functionResponse":{"name":"get_weather","response":{"temp":21}}},
             {"functionResponse":{"name":"get_weather","response":{"content":"[1,2]"}}},
             {"text":"Thanks"}]}]})"},

      {"the deprecated function_call and function role, and refusal parts",
       R"({"model":"x","messages":[{"role":"user","content":"x"},
           {"role":"assistant","content":[{"type":"refusal","refusal":"Only this:"}],
            "function_call":{"name":"lookup","arguments":"{\"q\":\"x\"}"}},
           {"role":"function","name":"lookup","content":"found"}]})",
       R"({"contents":[{"role":"user","parts":[{"text":"x"}]},
           {"role":"model","parts":[{"text":"Only this:"},
             {"functionCall":{"name":"lookup","args":{"q":"x"}},"thoughtSignature":"skip_thought_signature_validator"}]},
           {"role":"user","parts":[{"functionResponse":{"name":"lookup","response":{"content":"found"}}}]}]})"},

      {"sampling parameters; max_completion_tokens wins; dropped parameters leave no trace",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"max_tokens":100,"max_completion_tokens":200,
           "temperature":0.2,"top_p":0.9,"stop":"END","n":1,"seed":7,"presence_penalty":0.5,"frequency_penalty":-0.5,
           "stream_options":{"include_usage":true},"user":"u1","store":true,"metadata":{"a":"b"},
           "parallel_tool_calls":false,"logprobs":false,"stream":true})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}],
           "generationConfig":{"maxOutputTokens":200,"temperature":0.2,"topP":0.9,"candidateCount":1,"seed":7,
                               "presencePenalty":0.5,"frequencyPenalty":-0.5,"stopSequences":["END"]}})"},

      {"max_tokens alone, stop as a list",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"max_tokens":50,"stop":["a","b"]})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}],
           "generationConfig":{"maxOutputTokens":50,"stopSequences":["a","b"]}})"},

      {"response_format text changes nothing",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"text"}})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]})"},

      {"response_format json_object",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_object"}})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"generationConfig":{"responseMimeType":"application/json"}})"},

      {"response_format json_schema: keywords Gemini rejects are dropped, nullable idioms rewritten",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema",
           "json_schema":{"name":"person","strict":true,"schema":{"$schema":"https://json-schema.org/draft/2020-12/schema",
           "type":"object","additionalProperties":false,"properties":{
             "name":{"type":"string","description":"Full name"},"age":{"type":["integer","null"]},
             "email":{"type":"string","format":"email"},"born":{"type":"string","format":"date-time"},
             "role":{"type":"string","enum":["admin","user"]},"level":{"type":"integer","enum":[1,2]},
             "nick":{"anyOf":[{"type":"string"},{"type":"null"}]},
             "tags":{"type":"array","items":{"type":"string"},"minItems":1},
             "pet":{"oneOf":[{"type":"object","properties":{"kind":{"type":"string"}},"required":["kind"]},{"type":"string"}]},
             "ref":{"$ref":"#/$defs/x"}},
           "required":["name","age","ghost"],"$defs":{"x":{"type":"string"}}}}}})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"generationConfig":{"responseMimeType":"application/json",
           "responseSchema":{"type":"object","properties":{
             "name":{"type":"string","description":"Full name"},"age":{"type":"integer","nullable":true},
             "email":{"type":"string"},"born":{"type":"string","format":"date-time"},
             "role":{"type":"string","enum":["admin","user"]},"level":{"type":"integer"},
             "nick":{"nullable":true,"type":"string"},
             "tags":{"type":"array","items":{"type":"string"},"minItems":1},
             "pet":{"anyOf":[{"type":"object","properties":{"kind":{"type":"string"}},"required":["kind"]},{"type":"string"}]},
             "ref":{}},
           "required":["name","age"]}}})"},

      {"function tools with tool_choice auto; a function without parameters omits them",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"tool_choice":"auto","tools":[
           {"type":"function","function":{"name":"get_weather","description":"Weather","strict":true,
             "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],
                           "additionalProperties":false}}},
           {"type":"function","function":{"name":"now","parameters":{"type":"object","properties":{}}}}]})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"tools":[{"functionDeclarations":[
           {"name":"get_weather","description":"Weather",
            "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},
           {"name":"now"}]}],"toolConfig":{"functionCallingConfig":{"mode":"AUTO"}}})"},

      {"tool_choice none",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"tool_choice":"none",
           "tools":[{"type":"function","function":{"name":"f"}}]})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}],
           "toolConfig":{"functionCallingConfig":{"mode":"NONE"}}})"},

      {"tool_choice required",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"tool_choice":"required",
           "tools":[{"type":"function","function":{"name":"f"}}]})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}],
           "toolConfig":{"functionCallingConfig":{"mode":"ANY"}}})"},

      {"tool_choice naming a function",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"tool_choice":{"type":"function","function":{"name":"g"}},
           "tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}]})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"tools":[{"functionDeclarations":[{"name":"f"},{"name":"g"}]}],
           "toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["g"]}}})"},

      {"tool_choice without tools is dropped",
       R"({"model":"x","messages":[{"role":"user","content":"Hi"}],"tool_choice":"required","tools":[]})",
       R"({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]})"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    CHECK(translated(r.openai) == json::parse(r.gemini));
  }
}

TEST_CASE("gemini: the upstream path names the model and the method") {
  struct row {
    const char* model;
    bool stream;
    const char* path;
  };
  const row rows[] = {
      {"gemini-2.5-flash", false, "/models/gemini-2.5-flash:generateContent"},
      {"gemini-2.5-flash", true, "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"},
      {"models/gemini-2.0-flash", false, "/models/gemini-2.0-flash:generateContent"},
      {"tunedModels/my-tune_1", true, "/tunedModels/my-tune_1:streamGenerateContent?alt=sse"},
      {"odd model/x:y?", false, "/models/odd%20model%2Fx%3Ay%3F:generateContent"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.model);
    translation_options o = options(r.stream);
    o.model = r.model;
    auto call = gemini::translate_request(json::parse(R"({"messages":[{"role":"user","content":"Hi"}]})").as_object(), o);
    REQUIRE(call.has_value());
    CHECK(call->path == r.path);
    CHECK(call->framing == tollgate::adapters::stream_framing::sse);
    CHECK(call->headers.empty());  // the proxy adds x-goog-api-key
  }
}

TEST_CASE("gemini: requests Gemini cannot honour are refused, naming the parameter") {
  struct row {
    const char* openai;
    const char* message_part;
    const char* param;
  };
  const row rows[] = {
      {R"({"messages":[{"role":"user","content":"x"}],"logprobs":true})", "'logprobs' is not supported", "logprobs"},
      {R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", "'top_logprobs'", "top_logprobs"},
      {R"({"messages":[{"role":"user","content":"x"}],"modalities":["text","audio"]})", "'modalities'", "modalities"},
      {R"({"messages":[{"role":"user","content":"x"}],"audio":{"voice":"alloy","format":"wav"}})", "'audio'", "audio"},
      {R"({"messages":[{"role":"user","content":"x"}],"n":2})", "'n' must be 1", "n"},
      {R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "expected a number", "temperature"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1.5})", "expected an integer", "max_tokens"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":5})", "'stop'", "stop"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":["a",1]})", "'stop'", "stop"},
      {R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}})", "response_format.type",
       "response_format.type"},
      {R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]})", "only tools of type 'function'",
       "tools[0]"},
      {R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"description":"d"}}]})",
       "tools[0].function.name", "tools[0].function.name"},
      {R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],
           "tool_choice":"sometimes"})", "'tool_choice'", "tool_choice"},
      {R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function",
           "function":{"name":"f","arguments":"{not json"}}]}]})", "expected a JSON object",
       "messages[1].tool_calls[0].function.arguments"},
      {R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function",
           "function":{"name":"f","arguments":"[1,2]"}}]}]})", "expected a JSON object",
       "messages[1].tool_calls[0].function.arguments"},
      {R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function",
           "function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"other","content":"1"}]})",
       "matches no tool call", "messages[2].tool_call_id"},
      {R"({"messages":[{"role":"tool","content":"1"}]})", "tool_call_id", "messages[0].tool_call_id"},
      {R"({"messages":[{"role":"robot","content":"x"}]})", "unsupported role 'robot'", "messages[0].role"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://h/a.png"}}]}]})",
       "expected an http(s) URL", "messages[0].content[0]"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]})",
       "data:<mime type>;base64", "messages[0].content[0].image_url.url"},
      {R"({"messages":[{"role":"user","content":[{"type":"video","video":{}}]}]})", "unsupported type 'video'",
       "messages[0].content[0]"},
      {R"({"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]})",
       "uploaded file ids are not", "messages[0].content[0]"},
      {R"({"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://h/a.png"}}]}]})",
       "only text parts", "messages[0].content[0]"},
      {R"({"messages":[{"role":"user","content":42}]})", "expected a string or an array", "messages[0].content"},
      {R"({"messages":[{"role":"system","content":"Be brief."}]})", "at least one user or assistant message", "messages"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.openai);
    auto call = gemini::translate_request(json::parse(r.openai).as_object(), options());
    REQUIRE_FALSE(call.has_value());
    CHECK(call.error().message.find(r.message_part) != std::string::npos);
    CHECK(call.error().param == r.param);
  }

  translation_options no_model = options();
  no_model.model.clear();
  auto call = gemini::translate_request(json::parse(R"({"messages":[{"role":"user","content":"x"}]})").as_object(), no_model);
  REQUIRE_FALSE(call.has_value());
  CHECK(call.error().param == "model");
}

TEST_CASE("gemini: a text answer, thoughts left out, usage with thinking billed as output") {
  auto response = gemini::translate_response(
      R"({"candidates":[{"content":{"parts":[{"text":"Planning...","thought":true},{"text":"Hello"},{"text":", world"}],
          "role":"model"},"finishReason":"STOP","index":0,"safetyRatings":[]}],
          "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":27,"thoughtsTokenCount":12,
          "cachedContentTokenCount":4},"modelVersion":"gemini-2.5-flash-001","responseId":"resp-1"})",
      options());
  REQUIRE(response.has_value());
  CHECK(response->body ==
        R"({"id":"resp-1","object":"chat.completion","created":0,"model":"gemini-2.5-flash","choices":[{"index":0,)"
        R"("message":{"role":"assistant","content":"Hello, world"},"logprobs":null,"finish_reason":"stop"}],)"
        R"("usage":{"prompt_tokens":10,"completion_tokens":17,"total_tokens":27,"prompt_tokens_details":)"
        R"({"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":12}}})");
  REQUIRE(response->usage);
  CHECK(response->usage->prompt_tokens == 10);
  CHECK(response->usage->completion_tokens == 17);
  CHECK(response->usage->cached_prompt_tokens == 4);
}

TEST_CASE("gemini: function calls become tool_calls with deterministic ids") {
  auto response = gemini::translate_response(
      R"({"candidates":[{"content":{"parts":[{"text":"Checking."},
          {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln"},
          {"functionCall":{"name":"get_time"}}],"role":"model"},"finishReason":"STOP"}],
          "usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":9,"totalTokenCount":29,"toolUsePromptTokenCount":3}})",
      options());
  REQUIRE(response.has_value());
  CHECK(response->body ==
        R"({"id":"chatcmpl-gemini","object":"chat.completion","created":0,"model":"gemini-2.5-flash","choices":[{"index":0,)"
        R"("message":{"role":"assistant","content":"Checking.","tool_calls":[)"
        R"({"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},)"
        R"({"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{}"}}]},)"
        R"("logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":23,"completion_tokens":9,)"
        R"("total_tokens":29,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}})");
  REQUIRE(response->usage);
  CHECK(response->usage->prompt_tokens == 23);  // tool-use prompt tokens are billed as input

  auto only_call = gemini::translate_response(
      R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}],"role":"model"},"finishReason":"STOP"}]})",
      options());
  REQUIRE(only_call.has_value());
  auto message = json::parse(only_call->body).at("choices").at(0).at("message");
  CHECK(message.at("content").is_null());
  CHECK(message.at("tool_calls").at(0).at("id") == "call_0");
}

TEST_CASE("gemini: finish reasons") {
  struct row {
    const char* gemini;
    const char* openai;
  };
  const row rows[] = {
      {R"("finishReason":"STOP")", "stop"},
      {R"("finishReason":"MAX_TOKENS")", "length"},
      {R"("finishReason":"SAFETY")", "content_filter"},
      {R"("finishReason":"RECITATION")", "content_filter"},
      {R"("finishReason":"BLOCKLIST")", "content_filter"},
      {R"("finishReason":"PROHIBITED_CONTENT")", "content_filter"},
      {R"("finishReason":"SPII")", "content_filter"},
      {R"("finishReason":"OTHER")", "stop"},
      {R"("finishReason":"LANGUAGE")", "stop"},
      {R"("finishReason":"MALFORMED_FUNCTION_CALL")", "stop"},
      {R"("index":0)", "stop"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.gemini);
    std::string body = std::string(R"({"candidates":[{"content":{"parts":[{"text":"x"}],"role":"model"},)") + r.gemini + "}]}";
    auto response = gemini::translate_response(body, options());
    REQUIRE(response.has_value());
    auto parsed = json::parse(response->body).as_object();
    CHECK(parsed.at("choices").at(0).at("finish_reason") == r.openai);
    CHECK_FALSE(parsed.contains("usage"));  // no usageMetadata, no invented usage
    CHECK_FALSE(response->usage);
  }

  // A call cut off by the token limit is still reported as cut off.
  auto truncated = gemini::translate_response(
      R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]},"finishReason":"MAX_TOKENS"}]})",
      options());
  REQUIRE(truncated.has_value());
  CHECK(json::parse(truncated->body).at("choices").at(0).at("finish_reason") == "length");
}

TEST_CASE("gemini: a blocked prompt is a content_filter stop with empty content") {
  auto response = gemini::translate_response(
      R"({"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},
          "usageMetadata":{"promptTokenCount":7,"totalTokenCount":7},"responseId":"blk"})",
      options());
  REQUIRE(response.has_value());
  CHECK(response->body ==
        R"({"id":"blk","object":"chat.completion","created":0,"model":"gemini-2.5-flash","choices":[{"index":0,)"
        R"("message":{"role":"assistant","content":""},"logprobs":null,"finish_reason":"content_filter"}],)"
        R"("usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7,"prompt_tokens_details":)"
        R"({"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}})");
  REQUIRE(response->usage);
  CHECK(response->usage->prompt_tokens == 7);
}

TEST_CASE("gemini: a 200 body that is not an answer is an error for the proxy") {
  struct row {
    const char* body;
    const char* message_part;
  };
  const row rows[] = {
      {"<html>oops</html>", "not JSON"},
      {R"({"error":{"code":500,"message":"boom","status":"INTERNAL"}})", "Gemini: boom"},
      {R"([{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}])", "Gemini: overloaded"},
      {"[1,2]", "not a GenerateContentResponse"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.body);
    auto response = gemini::translate_response(r.body, options());
    REQUIRE_FALSE(response.has_value());
    CHECK(response.error().find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("gemini: error answers become OpenAI error bodies") {
  struct row {
    int status;
    const char* body;
    int expected_status;
    const char* message;
    const char* type;
    const char* code;  // nullptr: JSON null
  };
  const row rows[] = {
      {400, R"({"error":{"code":400,"message":"Invalid value at 'contents'","status":"INVALID_ARGUMENT"}})", 400,
       "Gemini: Invalid value at 'contents'", "invalid_request_error", "INVALID_ARGUMENT"},
      {400, R"({"error":{"code":400,"message":"User location is not supported","status":"FAILED_PRECONDITION"}})", 400,
       "Gemini: User location is not supported", "invalid_request_error", "FAILED_PRECONDITION"},
      {400, R"({"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[
           {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}})",
       401, "Gemini: API key not valid.", "authentication_error", "INVALID_ARGUMENT"},
      {401, R"({"error":{"code":401,"message":"Invalid credentials.","status":"UNAUTHENTICATED"}})", 401,
       "Gemini: Invalid credentials.", "authentication_error", "UNAUTHENTICATED"},
      {403, R"({"error":{"code":403,"message":"Permission denied.","status":"PERMISSION_DENIED"}})", 403,
       "Gemini: Permission denied.", "permission_error", "PERMISSION_DENIED"},
      {404, R"({"error":{"code":404,"message":"models/nope is not found","status":"NOT_FOUND"}})", 404,
       "Gemini: models/nope is not found", "invalid_request_error", "NOT_FOUND"},
      {429, R"({"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}})", 429,
       "Gemini: Quota exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED"},
      {500, R"({"error":{"code":500,"message":"Internal error","status":"INTERNAL"}})", 500, "Gemini: Internal error",
       "server_error", "INTERNAL"},
      {503, R"({"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}})", 503,
       "Gemini: The model is overloaded.", "server_error", "UNAVAILABLE"},
      {504, R"({"error":{"code":504,"message":"Deadline exceeded","status":"DEADLINE_EXCEEDED"}})", 504,
       "Gemini: Deadline exceeded", "server_error", "DEADLINE_EXCEEDED"},
      {429, R"([{"error":{"code":429,"message":"Slow down","status":"RESOURCE_EXHAUSTED"}}])", 429,
       "Gemini: Slow down", "rate_limit_error", "RESOURCE_EXHAUSTED"},
      {500, R"({"error":{"code":500,"status":"INTERNAL"}})", 500, "Gemini: upstream error INTERNAL", "server_error",
       "INTERNAL"},
      {502, "<html><body>Bad Gateway</body></html>", 502,
       "Gemini: upstream answered HTTP 502 without a JSON error body.", "server_error", nullptr},
      {413, "", 413, "Gemini: upstream answered HTTP 413 without a JSON error body.", "invalid_request_error", nullptr},
      {200, R"({"candidates":[]})", 502, "Gemini: upstream answered HTTP 200 without a JSON error body.",
       "server_error", nullptr},
  };
  for (const auto& r : rows) {
    CAPTURE(r.body);
    auto error = gemini::translate_error(r.status, r.body);
    CHECK(error.status == r.expected_status);
    std::string code = r.code ? "\"" + std::string(r.code) + "\"" : std::string("null");
    CHECK(error.body == std::string(R"({"error":{"message":")") + r.message + R"(","type":")" + r.type +
                            R"(","param":null,"code":)" + code + "}}");
  }
}

}  // TEST_SUITE
