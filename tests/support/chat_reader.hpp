#pragma once

// Reading what an OpenAI-compatible server answered, for tests: JSON path lookups that never
// throw, and a chat.completion.chunk stream put back together (content, finish reasons, tool
// calls, usage, a terminal error event) with everything unexpected listed in `problems`.

#include <boost/json/value.hpp>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::testing {

// v["a"]["0"]["b"]: object members by name, array elements by decimal index; nullptr when any
// step is missing.
const boost::json::value* json_at(const boost::json::value& v, std::initializer_list<std::string_view> path);
// The string there, or "<absent>" (so a CHECK shows what was missing).
std::string json_str(const boost::json::value& v, std::initializer_list<std::string_view> path);
std::optional<std::int64_t> json_int(const boost::json::value& v, std::initializer_list<std::string_view> path);

struct chat_stream {
  std::size_t chunks = 0;   // chat.completion.chunk payloads
  bool done_last = false;   // "[DONE]" is the last payload (and nowhere else)
  std::string role;         // the last delta.role seen
  std::string content;      // every delta.content, joined
  std::vector<std::string> finish_reasons;  // every non-null finish_reason, in order
  std::optional<boost::json::object> usage;  // the last non-null usage
  std::string error_payload;                 // the {"error":...} event, if one came
  struct tool_call {
    std::string id, type, name, arguments;  // name and arguments joined over deltas
  };
  std::map<std::int64_t, tool_call> tool_calls;  // by index
  std::vector<std::string> problems;             // payloads that break the format
};

// From the `data:` payloads of an SSE body, in order.
chat_stream read_chat_stream(const std::vector<std::string>& payloads);

}  // namespace tollgate::testing
