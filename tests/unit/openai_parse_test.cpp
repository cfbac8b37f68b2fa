// parse_front_request and parse_usage read their JSON in one SAX pass; here they are held to the
// DOM-based versions they replaced, kept below as the reference, over a corpus of valid and
// invalid bodies and every truncation of them.
#include "adapters/openai.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace openai = tollgate::adapters::openai;
namespace json = boost::json;

namespace {

namespace reference {

openai::request_error invalid(std::string message, std::string param = {}) {
  return openai::request_error{std::move(message), std::move(param)};
}

std::optional<openai::request_error> require_member(const json::object& body, std::string_view name) {
  auto it = body.find(name);
  if (it == body.end() || it->value().is_null())
    return invalid("Missing required parameter: '" + std::string(name) + "'.", std::string(name));
  return std::nullopt;
}

std::optional<openai::request_error> check_messages(const json::object& body) {
  if (auto missing = require_member(body, "messages")) return missing;
  const auto& messages = body.at("messages");
  if (!messages.is_array()) return invalid("Invalid type for 'messages': expected an array.", "messages");
  const auto& list = messages.get_array();
  if (list.empty()) return invalid("Invalid 'messages': empty array. Expected at least one message.", "messages");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto* message = list[i].if_object();
    const json::value* role = message ? message->if_contains("role") : nullptr;
    if (!role || !role->is_string()) {
      return invalid("Invalid 'messages[" + std::to_string(i) + "]': each message must be an object with a "
                     "string 'role'.", "messages[" + std::to_string(i) + "]");
    }
  }
  return std::nullopt;
}

std::uint64_t text_bytes(const json::value& value) {
  switch (value.kind()) {
    case json::kind::string:
      return value.get_string().size();
    case json::kind::array: {
      std::uint64_t total = 0;
      for (const auto& item : value.get_array()) total += text_bytes(item);
      return total;
    }
    case json::kind::object: {
      std::uint64_t total = 0;
      for (const auto& member : value.get_object()) total += text_bytes(member.value());
      return total;
    }
    default:
      return 0;
  }
}

std::uint64_t tokens_for_bytes(std::uint64_t bytes) { return (bytes + 3) / 4; }

boost::system::result<openai::front_request, openai::request_error> parse_front_request(openai::endpoint kind,
                                                                                        std::string_view body) {
  using openai::endpoint;
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec) return invalid("We could not parse the JSON body of your request: " + ec.message() + ".");
  json::object* object = parsed.if_object();
  if (!object) return invalid("The request body must be a JSON object.");

  openai::front_request request;
  request.kind = kind;
  if (auto missing = require_member(*object, "model")) return *missing;
  const json::value& model = object->at("model");
  if (!model.is_string() || model.get_string().empty())
    return invalid("Invalid 'model': expected a non-empty string.", "model");
  request.model = std::string(model.get_string());

  switch (kind) {
    case endpoint::chat_completions:
      if (auto error = check_messages(*object)) return *error;
      request.prompt_tokens_estimate = tokens_for_bytes(text_bytes(object->at("messages")));
      break;
    case endpoint::completions:
      if (auto missing = require_member(*object, "prompt")) return *missing;
      request.prompt_tokens_estimate = tokens_for_bytes(text_bytes(object->at("prompt")));
      break;
    case endpoint::embeddings:
      if (auto missing = require_member(*object, "input")) return *missing;
      request.prompt_tokens_estimate = tokens_for_bytes(text_bytes(object->at("input")));
      return request;
  }

  if (const json::value* stream = object->if_contains("stream"); stream && !stream->is_null()) {
    if (!stream->is_bool()) return invalid("Invalid type for 'stream': expected a boolean.", "stream");
    request.stream = stream->get_bool();
  }
  if (!request.stream) return request;

  json::value* options = object->if_contains("stream_options");
  if (options && !options->is_null() && !options->is_object())
    return invalid("Invalid type for 'stream_options': expected an object.", "stream_options");
  if (options && options->is_object()) {
    if (const json::value* include = options->get_object().if_contains("include_usage"); include && !include->is_null()) {
      if (!include->is_bool())
        return invalid("Invalid type for 'stream_options.include_usage': expected a boolean.",
                       "stream_options.include_usage");
      request.client_wants_usage = include->get_bool();
    }
  }
  if (request.client_wants_usage) return request;

  if (!options || !options->is_object()) (*object)["stream_options"] = json::object();
  (*object)["stream_options"].get_object()["include_usage"] = true;
  request.rewritten_body = json::serialize(parsed);
  return request;
}

std::optional<std::uint64_t> read_count(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  if (!value) return std::nullopt;
  boost::system::error_code ec;
  auto count = value->to_number<std::uint64_t>(ec);
  if (ec) return std::nullopt;
  return count;
}

std::optional<openai::usage> parse_usage(std::string_view usage_json) {
  boost::system::error_code ec;
  json::value parsed = json::parse(usage_json, ec);
  if (ec || !parsed.is_object()) return std::nullopt;
  const auto& object = parsed.get_object();
  openai::usage result;
  auto prompt = read_count(object, "prompt_tokens");
  auto completion = read_count(object, "completion_tokens");
  if (!prompt && !completion) return std::nullopt;
  result.prompt_tokens = prompt.value_or(0);
  result.completion_tokens = completion.value_or(0);
  if (const auto* details = object.if_contains("prompt_tokens_details"); details && details->is_object())
    result.cached_prompt_tokens = read_count(details->get_object(), "cached_tokens").value_or(0);
  return result;
}

}  // namespace reference

constexpr openai::endpoint all_endpoints[] = {openai::endpoint::chat_completions, openai::endpoint::completions,
                                              openai::endpoint::embeddings};

// Rewritten bodies are compared as JSON: the reader keeps the client's bytes where the
// reference reserialised them.
void check_same_front_request(openai::endpoint kind, std::string_view body) {
  const auto got = openai::parse_front_request(kind, body);
  const auto want = reference::parse_front_request(kind, body);
  REQUIRE(got.has_value() == want.has_value());
  if (!want.has_value()) {
    CHECK(got.error().message == want.error().message);
    CHECK(got.error().param == want.error().param);
    return;
  }
  CHECK(got->kind == want->kind);
  CHECK(got->model == want->model);
  CHECK(got->stream == want->stream);
  CHECK(got->client_wants_usage == want->client_wants_usage);
  CHECK(got->prompt_tokens_estimate == want->prompt_tokens_estimate);
  REQUIRE(got->rewritten_body.empty() == want->rewritten_body.empty());
  if (!want->rewritten_body.empty()) CHECK(json::parse(got->rewritten_body) == json::parse(want->rewritten_body));
}

std::string nested(int levels, std::string_view inner) {
  std::string out(static_cast<std::size_t>(levels), '[');
  out += inner;
  out.append(static_cast<std::size_t>(levels), ']');
  return out;
}

std::vector<std::string> request_corpus() {
  const std::string user = R"([{"role":"user","content":"hi"}])";
  auto chat = [&](std::string rest) { return R"({"model":"gpt-4o-mini","messages":)" + user + rest + "}"; };
  auto streamed = [&](std::string options) { return chat(R"(,"stream":true,"stream_options":)" + options); };
  auto with_messages = [](std::string messages) { return R"({"model":"m","messages":)" + messages + R"(,"stream":true})"; };
  std::vector<std::string> corpus = {
      chat(""),
      chat(R"(,"temperature":0.2,"max_tokens":100,"n":1,"stop":["\n"],"user":"u1")"),
      // stream, stream_options, include_usage: every type, and repeated.
      chat(R"(,"stream":true)"),
      chat(R"(,"stream":false)"),
      chat(R"(,"stream":null)"),
      chat(R"(,"stream":"yes")"),
      chat(R"(,"stream":1)"),
      chat(R"(,"stream":{})"),
      chat(R"(,"stream":true,"stream":false)"),
      chat(R"(,"stream":false,"stream":true)"),
      chat(R"(,"stream":true,"stream":null)"),
      chat(R"(,"stream":1,"stream":true)"),
      streamed("null"),
      streamed("{}"),
      streamed(R"({"include_usage":true})"),
      streamed(R"({"include_usage":false})"),
      streamed(R"({"include_usage":null})"),
      streamed(R"({"include_usage":1})"),
      streamed(R"({"include_usage":"true"})"),
      streamed(R"({"x":1,"include_usage":false,"y":[true]})"),
      streamed(R"({"include_usage":true,"include_usage":false})"),
      streamed(R"({"include_usage":false,"include_usage":true})"),
      streamed(R"({"include_usage":1,"include_usage":true})"),
      streamed(R"({"nested":{"include_usage":true}})"),
      streamed(R"([{"include_usage":true}])"),
      streamed("1"),
      streamed("[]"),
      streamed(R"("x")"),
      streamed(R"({"include_usage":true},"stream_options":null)"),
      streamed(R"(null,"stream_options":{"include_usage":true})"),
      streamed(R"(1,"stream_options":{})"),
      chat(R"(,"stream_options":{"include_usage":true},"stream":true)"),
      chat(R"(,"stream_options":7,"stream":false)"),
      // model
      R"({"messages":[{"role":"user"}]})",
      R"({"model":null,"messages":[{"role":"user"}]})",
      R"({"model":42,"messages":[{"role":"user"}]})",
      R"({"model":"","messages":[{"role":"user"}]})",
      R"({"model":["m"],"messages":[{"role":"user"}]})",
      R"({"model":{"model":"m"},"messages":[{"role":"user"}]})",
      R"({"model":"a","model":"b","messages":[{"role":"user"}]})",
      R"({"model":"a","model":null,"messages":[{"role":"user"}]})",
      R"({"model":null,"model":"b","messages":[{"role":"user"}]})",
      R"({"model":"","model":"x","messages":[{"role":"user"}]})",
      R"({"model":"x","model":"","messages":[{"role":"user"}]})",
      R"({"model":"caf\u00e9 \"quoted\" \\ \/ \b\f\n\r\t \ud83d\ude00","messages":[{"role":"user"}]})",
      R"({"metadata":{"model":"m"},"messages":[{"role":"user"}]})",
      // messages
      R"({"model":"m"})",
      R"({"model":"m","messages":null})",
      R"({"model":"m","messages":"hi"})",
      R"({"model":"m","messages":{"role":"user"}})",
      R"({"model":"m","messages":[]})",
      R"({"model":"m","messages":[1]})",
      R"({"model":"m","messages":[[]]})",
      R"({"model":"m","messages":[null]})",
      R"({"model":"m","messages":[{}]})",
      R"({"model":"m","messages":[{"content":"x"}]})",
      R"({"model":"m","messages":[{"role":1}]})",
      R"({"model":"m","messages":[{"role":null}]})",
      R"({"model":"m","messages":[{"role":["user"]}]})",
      R"({"model":"m","messages":[{"role":"user"},3]})",
      R"({"model":"m","messages":[{"role":"user"},{"role":"a","role":5}]})",
      R"({"model":"m","messages":[{"role":5,"role":"a"},{"content":"x"}]})",
      R"({"model":"m","messages":[{"role":"user"},{"content":{"role":"x"}},{"role":2}]})",
      R"({"model":"m","messages":[{"content":[{"role":"user"}]}]})",
      R"({"model":"m","messages":[{"role":"user"}],"messages":[]})",
      R"({"model":"m","messages":[],"messages":[{"role":"user","content":"abc"}]})",
      R"({"model":"m","messages":[1],"messages":[{"role":"user"},2]})",
      R"({"model":"m","messages":[{"role":"user","content":"aaaa"}],"messages":"x"})",
      R"({"model":"m","other":{"messages":[]},"messages":[{"role":"user"}]})",
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh"}]}],"max_tokens":100})",
      R"({"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","name":"x","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://x/y.png","detail":"low"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c1","content":"42"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"integer"}},"type":"object"}}}],"stream":true})",
      R"({"model":"m","messages":[{"role":"user","content":"caf\u00e9 \"q\" \\ \ud83d\ude00 \u0000"}]})",
      R"({"model":"m","messages":[{"role":"user","content":[1,-0,1.5e3,-2.5E-3,18446744073709551615,18446744073709551616,true,false,null]}]})",
      // Repeated keys below the prompt: the last value is the one counted.
      R"({"model":"m","messages":[{"role":"user","content":"aaaaaaaa","content":"b"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"a","cont\u0065nt":"bbbbbbbbbbbb"}]})",
      R"({"model":"m","messages":[{"role":"user","content":{"x":"aaaaaaaa","y":{"x":"b"},"x":"cc"}}]})",
      R"({"model":"m","messages":[{"role":"user","content":[{"text":"a"},{"text":"bbbbb"}]}]})",
      R"({"model":"m","messages":[{"role":"user","role":"assistant","content":"x"}]})",
      R"({"model":"m","messages":[{"role":"user","a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17}]})",
      // Keys the parser hands over in pieces: escaped, and longer than a reader keeps.
      R"({"mod\u0065l":"m","m\u0065ssages":[{"r\u006fle":"user"}],"str\u0065am":true,"stream_opti\u006fns":{"include_\u0075sage":false}})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage\u0000":true}})",
      R"({"model":"m","messages":[{"role":"user","content":"x","aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u0031":"yy","aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u0032":"zzz"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"x","aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u0031":"yy","aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u0031":"zzz"}]})",
      R"({"\u006d\u006f\u0064\u0065\u006c\u006d\u006f\u0064\u0065\u006c\u006d\u006f\u0064\u0065\u006c\u006d\u006f\u0064\u0065\u006c\u006d\u006f\u0064\u0065\u006c":1,"model":"m","messages":[{"role":"user"}]})",
      // Deep nesting, up to json::parse's limit and past it.
      with_messages(R"([{"role":"user","content":)" + nested(29, R"("deep")") + "}]"),
      with_messages(R"([{"role":"user","content":)" + nested(30, R"("deep")") + "}]"),
      with_messages(R"([{"role":"user","content":)" + nested(40, R"("deep")") + "}]"),
      // completions and embeddings
      R"({"model":"m","prompt":"abcde"})",
      R"({"model":"m","prompt":["ab","cde",["f"]],"stream":true})",
      R"({"model":"m","prompt":[[1,2,3]],"stream":true,"stream_options":{"include_usage":true}})",
      R"({"model":"m","prompt":null})",
      R"({"model":"m","prompt":5,"stream":true})",
      R"({"model":"m","prompt":{"a":"bb","a":"c"},"stream":true})",
      R"({"model":"m","prompt":"abc","prompt":null})",
      R"({"model":"e","input":"x","stream":true})",
      R"({"model":"e","input":["one","two"],"encoding_format":"float"})",
      R"({"model":"e","input":[[1,2],[3]]})",
      R"({"model":"e","input":null})",
      R"({"model":"e","input":"aaaa","input":"b"})",
      // Whitespace everywhere, around every token and after the body.
      "\n {\t\"model\" :\r\n \"m\" , \"messages\" : [ { \"role\" : \"user\" , \"content\" : [ \"a\" , 1 ] } ] , "
      "\"stream\" : true , \"stream_options\" : { } } \n\t",
      " {\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],\"prompt\":\"p\",\"input\":\"i\",\"stream\":true}\r\n",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],\"stream\":true\n}",
      // Not an object.
      "[1,2]",
      R"("model")",
      "1",
      "null",
      "true",
      "[{\"model\":\"m\"}]",
      // Not JSON, or not only JSON.
      "",
      " ",
      "{",
      "}",
      R"({"model":)",
      R"({"model":"m",})",
      R"({"model":"m"} x)",
      R"({"model":"m"}{})",
      R"({'model':'m'})",
      R"({model:"m"})",
      "{\"model\":\"m\x01\"}",
      "{\"model\":\"m\xff\"}",
      "{\"model\":\"m\xc3\"}",
      R"({"model":"m","n":tru})",
      R"({"model":"m","n":01})",
      R"({"model":"m","n":1.})",
      R"({"model":"m","n":NaN})",
      R"({"model":"m","n":1e99999})",
      R"({"model":"m"/*c*/})",
      R"({"model":"\x"})",
      R"({"model":"\ud800"})",
      R"({"model":"\ud800\u0041"})",
      R"({"model":"m","messages":[{"role":"user"},]})",
      with_messages(R"([{"role":"user"}])"),
  };
  corpus.back().push_back('\0');  // a NUL after the body
  return corpus;
}

std::vector<std::string> usage_corpus() {
  return {
      R"({"prompt_tokens":9,"completion_tokens":12,"total_tokens":21})",
      R"({"prompt_tokens":120,"completion_tokens":7,"total_tokens":127,"prompt_tokens_details":{"cached_tokens":100,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":3}})",
      R"({"prompt_tokens":8,"total_tokens":8})",
      R"({"completion_tokens":4})",
      R"({"total_tokens":8})",
      R"({})",
      "null",
      "[]",
      R"([{"prompt_tokens":1}])",
      R"("x")",
      "5",
      // What counts as a count.
      R"({"prompt_tokens":-3})",
      R"({"prompt_tokens":-3,"completion_tokens":2})",
      R"({"prompt_tokens":1.0,"completion_tokens":1e2})",
      R"({"prompt_tokens":1.5,"completion_tokens":2})",
      R"({"prompt_tokens":-0,"completion_tokens":-0.0})",
      R"({"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551616})",
      R"({"prompt_tokens":9223372036854775807,"completion_tokens":1e19})",
      R"({"prompt_tokens":1e20,"completion_tokens":3})",
      R"({"prompt_tokens":"5","completion_tokens":true})",
      R"({"prompt_tokens":null,"completion_tokens":[1]})",
      R"({"prompt_tokens":{"prompt_tokens":1},"completion_tokens":2})",
      // Only the top level's names, and the details one level down.
      R"({"x":{"prompt_tokens":5,"completion_tokens":6},"completion_tokens":1})",
      R"({"x":[{"prompt_tokens":5}],"y":{"completion_tokens":6}})",
      R"({"prompt_tokens":1,"cached_tokens":7})",
      R"({"prompt_tokens":1,"prompt_tokens_details":{"x":{"cached_tokens":5}}})",
      R"({"prompt_tokens":1,"prompt_tokens_details":[{"cached_tokens":5}]})",
      R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":"5"}})",
      R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":-5}})",
      R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":5.0}})",
      R"({"prompt_tokens":1,"prompt_tokens_details":null})",
      R"({"prompt_tokens":1,"completion_tokens_details":{"cached_tokens":5}})",
      R"({"prompt_tokens_details":{"cached_tokens":5}})",
      R"({"prompt_tokens_details":{"cached_tokens":5,"prompt_tokens":3},"completion_tokens":1})",
      // Repeated keys: the last one counts.
      R"({"prompt_tokens":1,"prompt_tokens":2})",
      R"({"prompt_tokens":1,"prompt_tokens":"x","completion_tokens":3})",
      R"({"prompt_tokens":1,"prompt_tokens":null})",
      R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":4},"prompt_tokens_details":{}})",
      R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":4},"prompt_tokens_details":{"cached_tokens":2}})",
      R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":4},"prompt_tokens_details":null})",
      R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":4,"cached_tokens":6}})",
      R"({"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":4,"cached_tokens":[]}})",
      R"({"prompt_tokens":1,"prompt_tokens_details":[],"prompt_tokens_details":{"cached_tokens":3}})",
      // Escaped keys.
      R"({"prompt\u005ftokens":3,"completion_tokens":1})",
      R"({"\u0070rompt_tokens":3,"prompt_tokens_d\u0065tails":{"cached\u005ftokens":2}})",
      R"({"prompt_tokens\u0000":3,"completion_tokens":1})",
      R"({"prompt_tokens_details_and_then_some_more_to_be_long_aaaaaaaaaaaaaaaaaaaaaaaaaa\u0061":3,"prompt_tokens":1})",
      // Whitespace, and what is not JSON.
      " \n{ \"prompt_tokens\" : 9 ,\t\"completion_tokens\" :\r\n12 } \n",
      R"({"prompt_tokens":1} x)",
      R"({"prompt_tokens":1}{})",
      R"({"prompt_tokens":1,})",
      R"({"prompt_tokens":01})",
      R"({"prompt_tokens":1)",
      "",
      "{\"prompt_tokens\":1,\"x\":\"\x01\"}",
      "{\"prompt_tokens\":1,\"x\":" + nested(33, "1") + "}",
      "{\"prompt_tokens\":1,\"x\":" + nested(31, "1") + "}",
  };
}

// Every prefix of a text, the text itself included.
std::vector<std::string_view> prefixes(std::string_view text) {
  std::vector<std::string_view> out;
  for (std::size_t n = 0; n <= text.size(); ++n) out.push_back(text.substr(0, n));
  return out;
}

}  // namespace

TEST_CASE("parse_front_request: the same results and errors as the DOM-based version, truncations included") {
  for (const std::string& body : request_corpus()) {
    for (std::string_view text : prefixes(body)) {
      for (openai::endpoint kind : all_endpoints) {
        CAPTURE(text);
        CAPTURE(static_cast<int>(kind));
        check_same_front_request(kind, text);
      }
    }
  }
}

TEST_CASE("parse_front_request: a stream is asked for usage in the client's own bytes") {
  struct row {
    openai::endpoint kind;
    const char* body;
    const char* upstream;
  };
  const row rows[] = {
      {openai::endpoint::chat_completions,
       R"({"model":"m","messages":[{"role":"user","content":"caf\u00e9"}],"temperature":1.0,"stream":true})",
       R"({"model":"m","messages":[{"role":"user","content":"caf\u00e9"}],"temperature":1.0,"stream":true,"stream_options":{"include_usage":true}})"},
      {openai::endpoint::completions, "{\"model\":\"m\",\"prompt\":\"p\",\"stream\":true \n}\r\n",
       "{\"model\":\"m\",\"prompt\":\"p\",\"stream\":true \n,\"stream_options\":{\"include_usage\":true}}\r\n"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.body);
    auto request = openai::parse_front_request(r.kind, r.body);
    REQUIRE(request.has_value());
    CHECK(request->rewritten_body == r.upstream);
  }
}

TEST_CASE("parse_usage: the same counts as the DOM-based version, truncations included") {
  for (const std::string& text : usage_corpus()) {
    for (std::string_view prefix : prefixes(text)) {
      CAPTURE(prefix);
      const auto got = openai::parse_usage(prefix);
      const auto want = reference::parse_usage(prefix);
      REQUIRE(got.has_value() == want.has_value());
      if (!want) continue;
      CHECK(got->prompt_tokens == want->prompt_tokens);
      CHECK(got->completion_tokens == want->completion_tokens);
      CHECK(got->cached_prompt_tokens == want->cached_prompt_tokens);
    }
  }
}

TEST_CASE("parse_usage: random usage objects, in the plain shape read directly or not, as the DOM reads them") {
  // Mostly the shape providers send (whole numbers, one level of nested objects), mixed with
  // what only the general parser takes: strings, arrays, fractions, signs, escapes, deep nesting.
  std::mt19937_64 rng(20261122);
  auto pick = [&rng](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  const std::string_view keys[] = {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
                                   "completion_tokens_details", "cached_tokens", "audio_tokens", "x"};
  const std::string_view scalars[] = {"0", "7", "1234", "18446744073709551615", "9999999999999999999", "null",
                                      "true", "false", "-1", "2.0", "3e2", "\"5\"", "[1]", "01", "1.5"};
  const std::string_view blanks[] = {"", "", "", " ", "\n", "\t "};
  std::function<std::string(int)> value = [&](int depth) -> std::string {
    if (depth < 3 && pick(4) == 0) {
      std::string out = "{";
      for (std::size_t n = pick(4), i = 0; i < n; ++i) {
        if (i > 0) out += ",";
        out += std::string(blanks[pick(std::size(blanks))]) + "\"" + std::string(keys[pick(std::size(keys))]) + "\"" +
               std::string(blanks[pick(std::size(blanks))]) + ":" + std::string(blanks[pick(std::size(blanks))]) +
               value(depth + 1);
      }
      return out + std::string(blanks[pick(std::size(blanks))]) + "}";
    }
    return std::string(scalars[pick(pick(3) == 0 ? std::size(scalars) : 8)]);
  };
  std::size_t counted = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string text = value(0);
    if (text.front() != '{') text = "{\"prompt_tokens\":" + text + "}";
    if (pick(20) == 0) text.insert(pick(text.size() + 1), pick(2) == 0 ? "\\u0061" : "\xC3\xA9");
    CAPTURE(text);
    const auto got = openai::parse_usage(text);
    const auto want = reference::parse_usage(text);
    REQUIRE(got.has_value() == want.has_value());
    if (!want) continue;
    ++counted;
    CHECK(got->prompt_tokens == want->prompt_tokens);
    CHECK(got->completion_tokens == want->completion_tokens);
    CHECK(got->cached_prompt_tokens == want->cached_prompt_tokens);
  }
  CHECK(counted > 500);
}

TEST_CASE("parse_usage: a key's bytes are judged at every position of the sixteen-byte step") {
  // Keys are read sixteen bytes a step; an escape, a control byte or a non-ASCII byte at any
  // place in one sends the object to the general parser, which must then agree.
  const std::string key = "prompt_tokens_and_more_x";  // longer than one step
  for (std::size_t at = 0; at <= key.size(); ++at) {
    for (std::string_view odd : {"\\u0041", "\\\"", "\t", "\xC3\xA9", "\x7f", "\xff", "\""}) {
      std::string text = R"({"completion_tokens":3,")" + key.substr(0, at) + std::string(odd) + key.substr(at) +
                         R"(":1,"prompt_tokens":2})";
      CAPTURE(text);
      const auto got = openai::parse_usage(text);
      const auto want = reference::parse_usage(text);
      REQUIRE(got.has_value() == want.has_value());
      if (want) CHECK(got->prompt_tokens == want->prompt_tokens);
    }
  }
  // An escape that spells a name tollgate reads, past the first step.
  const auto escaped = openai::parse_usage(R"({"prompt_tokens":2,"completion\u005ftokens":5})");
  REQUIRE(escaped.has_value());
  CHECK(escaped->completion_tokens == 5);
}
