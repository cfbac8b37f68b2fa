#include "tests/support/chat_reader.hpp"

#include <boost/json.hpp>

#include <cctype>

namespace tollgate::testing {
namespace {

namespace json = boost::json;

const json::string* string_at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* x = json_at(v, path);
  return x != nullptr ? x->if_string() : nullptr;
}

void read_tool_calls(const json::array& calls, const std::string& payload, chat_stream& out) {
  for (const auto& tc : calls) {
    const auto index = json_int(tc, {"index"});
    if (!index) {
      out.problems.push_back("tool call delta without index: " + payload);
      continue;
    }
    auto& call = out.tool_calls[*index];
    if (const auto* id = string_at(tc, {"id"})) call.id = *id;
    if (const auto* type = string_at(tc, {"type"})) call.type = *type;
    if (const auto* name = string_at(tc, {"function", "name"})) call.name += *name;
    if (const auto* args = string_at(tc, {"function", "arguments"})) call.arguments += *args;
  }
}

void read_chunk(const json::object& o, const std::string& payload, chat_stream& out) {
  ++out.chunks;
  const auto* object = o.if_contains("object");
  if (object == nullptr || !object->is_string() || object->get_string() != "chat.completion.chunk") {
    out.problems.push_back("not a chat.completion.chunk: " + payload);
  }
  if (const auto* u = o.if_contains("usage"); u != nullptr && u->is_object()) out.usage = u->get_object();
  const auto* choices = o.if_contains("choices");
  if (choices == nullptr || !choices->is_array()) {
    out.problems.push_back("no choices array: " + payload);
    return;
  }
  for (const auto& c : choices->get_array()) {
    const json::value* delta = json_at(c, {"delta"});
    if (delta == nullptr || !delta->is_object()) {
      out.problems.push_back("a choice without a delta: " + payload);
      continue;
    }
    if (const auto* role = string_at(*delta, {"role"})) out.role = *role;
    if (const auto* text = string_at(*delta, {"content"})) out.content += *text;
    if (const auto* finish = string_at(c, {"finish_reason"})) out.finish_reasons.emplace_back(*finish);
    if (const json::value* calls = json_at(*delta, {"tool_calls"}); calls != nullptr && calls->is_array()) {
      read_tool_calls(calls->get_array(), payload, out);
    }
  }
}

}  // namespace

const json::value* json_at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (std::string_view key : path) {
    if (const auto* o = cur->if_object()) {
      cur = o->if_contains(key);
    } else if (const auto* a = cur->if_array(); a != nullptr && !key.empty() &&
                                                std::isdigit(static_cast<unsigned char>(key[0]))) {
      const std::size_t i = std::stoul(std::string(key));
      cur = i < a->size() ? &(*a)[i] : nullptr;
    } else {
      cur = nullptr;
    }
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

std::string json_str(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::string* s = string_at(v, path);
  return s != nullptr ? std::string(*s) : std::string("<absent>");
}

std::optional<std::int64_t> json_int(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* x = json_at(v, path);
  if (x == nullptr) return std::nullopt;
  if (x->is_int64()) return x->get_int64();
  if (x->is_uint64()) return static_cast<std::int64_t>(x->get_uint64());
  return std::nullopt;
}

chat_stream read_chat_stream(const std::vector<std::string>& payloads) {
  chat_stream out;
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    const std::string& p = payloads[i];
    if (p == "[DONE]") {
      if (i + 1 == payloads.size()) out.done_last = true;
      else out.problems.push_back("[DONE] before the end of the stream");
      continue;
    }
    boost::system::error_code ec;
    const json::value v = json::parse(p, ec);
    if (ec || !v.is_object()) {
      out.problems.push_back("not a JSON object: " + p);
      continue;
    }
    if (v.get_object().contains("error")) {
      if (!out.error_payload.empty()) out.problems.push_back("a second error event: " + p);
      out.error_payload = p;
      continue;
    }
    if (!out.error_payload.empty()) out.problems.push_back("a chunk after the error event: " + p);
    read_chunk(v.get_object(), p, out);
  }
  return out;
}

}  // namespace tollgate::testing
