#include "adapters/mock.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

namespace mock = tollgate::adapters::mock;
namespace json = boost::json;

TEST_CASE("mock: lorem reply of the requested length, with usage") {
  auto request = json::parse(R"({"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":5})").as_object();
  auto reply = mock::make_reply(request, "mock-lorem");
  REQUIRE(reply.tokens.size() == 5);
  CHECK(reply.tokens[0] == "lorem ");
  CHECK(reply.tokens[4] == "amet");
  CHECK(reply.usage.completion_tokens == 5);
  CHECK(reply.usage.prompt_tokens == 4);  // 11 bytes of text -> 3, plus one for the role framing
  auto body = json::parse(mock::completion_body(reply, "mock-lorem")).as_object();
  CHECK(body.at("object").as_string() == "chat.completion");
  CHECK(body.at("choices").at(0).at("message").at("content").as_string() == "lorem ipsum dolor sit amet");
  CHECK(body.at("usage").at("total_tokens").as_int64() == 9);
}

TEST_CASE("mock: echo models repeat the last user message word by word") {
  auto request = json::parse(
      R"({"model":"m","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},
          {"role":"user","content":[{"type":"text","text":"say this back"}]}]})").as_object();
  auto reply = mock::make_reply(request, "mock-echo");
  REQUIRE(reply.tokens.size() == 3);
  CHECK(reply.tokens[0] == "say ");
  CHECK(reply.tokens[2] == "back");
}

TEST_CASE("mock: lengths are capped and default sensibly") {
  auto huge = json::parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":1000000})").as_object();
  CHECK(mock::make_reply(huge, "m").tokens.size() == mock::max_tokens);
  auto none = json::parse(R"({"model":"m","messages":[{"role":"user","content":"x"}]})").as_object();
  CHECK(mock::make_reply(none, "m").tokens.size() == 32);
}

TEST_CASE("mock: stream chunks have OpenAI's exact shapes") {
  CHECK(mock::token_chunk("m", "hi ", false) ==
        "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi \"},\"finish_reason\":null}]}\n\n");
  CHECK(mock::finish_chunk("m", true).find("\"finish_reason\":\"stop\"}],\"usage\":null}") != std::string::npos);
  tollgate::adapters::openai::usage usage{3, 4, 0};
  CHECK(mock::usage_chunk("m", usage).find("\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}") !=
        std::string::npos);
}

TEST_CASE("mock: embeddings are deterministic per input") {
  auto request = json::parse(R"({"model":"e","input":["a","b","a"]})").as_object();
  tollgate::adapters::openai::usage usage;
  auto body = json::parse(mock::embeddings_body(request, "e", usage)).as_object();
  const auto& data = body.at("data").as_array();
  REQUIRE(data.size() == 3);
  CHECK(data[0].at("embedding") == data[2].at("embedding"));
  CHECK(data[0].at("embedding") != data[1].at("embedding"));
  CHECK(usage.prompt_tokens == 1);
}
