#include "adapters/mock.hpp"

#include <boost/json.hpp>

#include <array>

namespace tollgate::adapters::mock {
namespace json = boost::json;
namespace {

constexpr std::array<std::string_view, 24> lorem = {
    "lorem",  "ipsum", "dolor",   "sit",     "amet",    "consectetur", "adipiscing", "elit", "sed",    "do",
    "eiusmod", "tempor", "incididunt", "ut",  "labore",  "et",          "dolore",     "magna", "aliqua", "enim",
    "ad",     "minim", "veniam",  "quis"};

constexpr std::size_t default_length = 32;
constexpr std::string_view completion_id = "chatcmpl-mock";
constexpr std::int64_t created = 1700000000;  // fixed: replies are reproducible byte for byte

std::uint64_t requested_length(const json::object& request) {
  for (std::string_view name : {"max_completion_tokens", "max_tokens"}) {
    if (const auto* value = request.if_contains(name)) {
      if (value->is_int64() && value->get_int64() > 0) return static_cast<std::uint64_t>(value->get_int64());
      if (value->is_uint64() && value->get_uint64() > 0) return value->get_uint64();
    }
  }
  return default_length;
}

std::string text_of(const json::value& content) {
  if (content.is_string()) return std::string(content.get_string());
  std::string text;
  if (const auto* parts = content.if_array()) {
    for (const auto& part : *parts) {
      const auto* object = part.if_object();
      const json::value* piece = object ? object->if_contains("text") : nullptr;
      if (piece && piece->is_string()) text += std::string(piece->get_string());
    }
  }
  return text;
}

std::string last_user_text(const json::object& request) {
  const auto* messages = request.if_contains("messages");
  if (!messages || !messages->is_array()) return {};
  const auto& list = messages->get_array();
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    const auto* message = it->if_object();
    if (!message) continue;
    const auto* role = message->if_contains("role");
    const auto* content = message->if_contains("content");
    if (role && role->is_string() && role->get_string() == "user" && content) return text_of(*content);
  }
  return {};
}

std::uint64_t prompt_tokens(const json::object& request) {
  std::uint64_t bytes = 0;
  if (const auto* messages = request.if_contains("messages"); messages && messages->is_array()) {
    for (const auto& m : messages->get_array())
      if (const auto* o = m.if_object(); o && o->contains("content")) bytes += text_of(o->at("content")).size();
  }
  return (bytes + 3) / 4 + 1;
}

json::object chunk_base(std::string_view model) {
  json::object chunk;
  chunk["id"] = completion_id;
  chunk["object"] = "chat.completion.chunk";
  chunk["created"] = created;
  chunk["model"] = model;
  return chunk;
}

std::string event(const json::object& chunk) { return "data: " + json::serialize(chunk) + "\n\n"; }

std::string delta_chunk(std::string_view model, json::object delta, json::value finish_reason, bool with_usage_null) {
  json::object choice;
  choice["index"] = 0;
  choice["delta"] = std::move(delta);
  choice["finish_reason"] = std::move(finish_reason);
  auto chunk = chunk_base(model);
  chunk["choices"] = json::array{std::move(choice)};
  if (with_usage_null) chunk["usage"] = nullptr;
  return event(chunk);
}

json::object usage_object(const openai::usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

}  // namespace

reply make_reply(const json::object& request, std::string_view model) {
  reply r;
  if (model.find("echo") != std::string_view::npos) {
    std::string text = last_user_text(request);
    std::size_t start = 0;
    while (start < text.size() && r.tokens.size() < max_tokens) {
      std::size_t space = text.find(' ', start);
      std::size_t end = space == std::string::npos ? text.size() : space + 1;
      r.tokens.push_back(text.substr(start, end - start));
      start = end;
    }
  } else {
    std::uint64_t length = std::min<std::uint64_t>(requested_length(request), max_tokens);
    for (std::uint64_t i = 0; i < length; ++i) {
      std::string token(lorem[i % lorem.size()]);
      if (i + 1 < length) token.push_back(' ');
      r.tokens.push_back(std::move(token));
    }
  }
  r.usage.prompt_tokens = prompt_tokens(request);
  r.usage.completion_tokens = r.tokens.size();
  return r;
}

std::string completion_body(const reply& r, std::string_view model) {
  std::string content;
  for (const auto& token : r.tokens) content += token;
  json::object message{{"role", "assistant"}, {"content", content}};
  json::object choice{{"index", 0}, {"message", std::move(message)}, {"finish_reason", "stop"}};
  json::object body;
  body["id"] = completion_id;
  body["object"] = "chat.completion";
  body["created"] = created;
  body["model"] = model;
  body["choices"] = json::array{std::move(choice)};
  body["usage"] = usage_object(r.usage);
  return json::serialize(body);
}

std::string embeddings_body(const json::object& request, std::string_view model, openai::usage& usage) {
  std::vector<std::string> inputs;
  if (const auto* input = request.if_contains("input")) {
    if (input->is_string()) inputs.emplace_back(input->get_string());
    if (const auto* list = input->if_array())
      for (const auto& item : *list) inputs.push_back(item.is_string() ? std::string(item.get_string()) : json::serialize(item));
  }
  json::array data;
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    // A small deterministic vector derived from the text, so equal inputs embed equally.
    std::uint32_t hash = 2166136261u;
    for (unsigned char c : inputs[i]) hash = (hash ^ c) * 16777619u;
    json::array vector;
    for (int d = 0; d < 8; ++d) vector.push_back(static_cast<double>((hash >> (d * 4)) & 0xf) / 15.0 - 0.5);
    data.push_back(json::object{{"object", "embedding"}, {"index", i}, {"embedding", std::move(vector)}});
    bytes += inputs[i].size();
  }
  usage = {};
  usage.prompt_tokens = (bytes + 3) / 4;
  json::object body{{"object", "list"}, {"data", std::move(data)}, {"model", model}};
  body["usage"] = json::object{{"prompt_tokens", usage.prompt_tokens}, {"total_tokens", usage.prompt_tokens}};
  return json::serialize(body);
}

std::string role_chunk(std::string_view model, bool with_usage_null) {
  return delta_chunk(model, {{"role", "assistant"}, {"content", ""}}, nullptr, with_usage_null);
}

std::string token_chunk(std::string_view model, std::string_view token, bool with_usage_null) {
  return delta_chunk(model, {{"content", token}}, nullptr, with_usage_null);
}

std::string finish_chunk(std::string_view model, bool with_usage_null) {
  return delta_chunk(model, {}, "stop", with_usage_null);
}

std::string usage_chunk(std::string_view model, const openai::usage& usage) {
  auto chunk = chunk_base(model);
  chunk["choices"] = json::array{};
  chunk["usage"] = usage_object(usage);
  return event(chunk);
}

}  // namespace tollgate::adapters::mock
