// Anthropic Messages server-sent events -> OpenAI chat.completion.chunk events.
//
// What each upstream event becomes (every chunk: {"id":<message id>,"object":
// "chat.completion.chunk","created":0,"model":options.model,"choices":[{"index":0,"delta":..,
// "finish_reason":..}]}, plus "usage":null when the client asked for usage, as OpenAI does):
//
//   message_start                 delta {"role":"assistant","content":""}
//   content_block_start text      nothing (its initial text, if any, as a content delta)
//   content_block_start tool_use  delta {"tool_calls":[{"index":k,"id","type":"function",
//                                 "function":{"name","arguments":""}}]}, k counting tool blocks
//   content_block_delta text      delta {"content":<text>}
//   content_block_delta json      delta {"tool_calls":[{"index":k,"function":{"arguments":<partial>}}]}
//   message_delta with stop_reason  delta {} with finish_reason (once per stream)
//   message_stop                  complete(); the finish chunk ("stop") if none was sent yet
//   error                         data: {"error":{...}} and nothing after it, on_end included:
//                                 the relay ends the client stream
//   ping, content_block_stop, thinking / signature / citations deltas, server-tool blocks,
//   unknown events and unparsable payloads: nothing
//   on_end                        the usage chunk ("choices":[]) when the client asked for it
//                                 and usage is known, then data: [DONE]
//
// The finish chunk is sent at message_delta rather than message_stop so that a stream cut
// between the two still tells the client why the answer ended.
#include "adapters/anthropic.hpp"

#include "adapters/anthropic_detail.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace tollgate::adapters::anthropic {
namespace json = boost::json;
namespace {

std::string_view string_member(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  return value && value->is_string() ? std::string_view(value->get_string()) : std::string_view();
}

const json::object* object_member(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  return value ? value->if_object() : nullptr;
}

std::optional<std::uint64_t> index_member(const json::object& object) {
  const json::value* value = object.if_contains("index");
  boost::system::error_code ec;
  std::uint64_t index = value ? value->to_number<std::uint64_t>(ec) : 0;
  return value && !ec ? std::optional<std::uint64_t>(index) : std::nullopt;
}

// Event payloads are small: a stack arena keeps most parses off the heap.
template <class F>
void with_parsed_event(std::string_view event_type, std::string_view data, F&& f) {
  unsigned char arena[4096];
  json::monotonic_resource resource(arena, sizeof(arena));
  boost::system::error_code ec;
  json::value parsed = json::parse(data, ec, &resource);
  const json::object* event = ec ? nullptr : parsed.if_object();
  // SSE carries the type twice (event: line and data.type); NDJSON-style callers pass none.
  std::string_view type = !event_type.empty() || !event ? event_type : string_member(*event, "type");
  f(type, event);
}

void append_usage_object(const openai::usage& usage, std::string& out) {
  out += R"({"prompt_tokens":)" + std::to_string(usage.prompt_tokens);
  out += R"(,"completion_tokens":)" + std::to_string(usage.completion_tokens);
  out += R"(,"total_tokens":)" + std::to_string(usage.prompt_tokens + usage.completion_tokens);
  out += R"(,"prompt_tokens_details":{"cached_tokens":)" + std::to_string(usage.cached_prompt_tokens) + "}}";
}

class chunk_translator final : public stream_translator {
 public:
  explicit chunk_translator(const translation_options& options)
      : model_(options.model), wants_usage_(options.client_wants_usage) {}

  void on_event(std::string_view event_type, std::string_view data, std::string& out) override {
    if (errored_) return;
    with_parsed_event(event_type, data, [&](std::string_view type, const json::object* event) {
      if (type == "error") return on_error(event, out);
      if (!event) return;
      if (type == "message_start") on_message_start(*event, out);
      else if (type == "content_block_start") on_block_start(*event, out);
      else if (type == "content_block_delta") on_block_delta(*event, out);
      else if (type == "message_delta") on_message_delta(*event, out);
      else if (type == "message_stop") on_message_stop(out);
    });
  }

  void on_end(std::string& out) override {
    if (errored_) return;
    if (wants_usage_ && counts_.seen) {
      ensure_prefix();
      out += "data: ";
      out += prefix_;
      out += R"(],"usage":)";
      append_usage_object(counts_.to_openai(), out);
      out += "}\n\n";
    }
    out += "data: [DONE]\n\n";
  }

  std::optional<openai::usage> usage() const override {
    return counts_.seen ? std::optional<openai::usage>(counts_.to_openai()) : std::nullopt;
  }
  bool complete() const override { return complete_; }
  bool failed() const override { return errored_; }
  std::uint64_t output_chunks() const override { return output_chunks_; }

 private:
  void on_message_start(const json::object& event, std::string& out) {
    if (const auto* message = object_member(event, "message")) {
      if (prefix_.empty()) id_ = string_member(*message, "id");
      if (const auto* usage = object_member(*message, "usage")) counts_.merge(*usage);
    }
    ensure_started(out);
  }

  void on_block_start(const json::object& event, std::string& out) {
    const auto* block = object_member(event, "content_block");
    auto index = index_member(event);
    if (!block || !index) return;
    std::string_view type = string_member(*block, "type");
    if (type == "text") {
      append_content(string_member(*block, "text"), out);
    } else if (type == "tool_use") {
      int tool = next_tool_++;
      tools_.emplace_back(*index, tool);
      std::string delta = R"({"tool_calls":[{"index":)" + std::to_string(tool) + R"(,"id":)";
      delta += json::serialize(string_member(*block, "id"));
      delta += R"(,"type":"function","function":{"name":)";
      delta += json::serialize(string_member(*block, "name"));
      delta += R"(,"arguments":""}}]})";
      write_chunk(delta, {}, out);
    }
  }

  void on_block_delta(const json::object& event, std::string& out) {
    const auto* delta = object_member(event, "delta");
    auto index = index_member(event);
    if (!delta || !index) return;
    std::string_view type = string_member(*delta, "type");
    if (type == "text_delta") {
      append_content(string_member(*delta, "text"), out);
    } else if (type == "input_json_delta") {
      std::string_view fragment = string_member(*delta, "partial_json");
      int tool = tool_for_block(*index);
      if (fragment.empty() || tool < 0) return;
      std::string chunk = R"({"tool_calls":[{"index":)" + std::to_string(tool) + R"(,"function":{"arguments":)";
      chunk += json::serialize(fragment);
      chunk += "}}]}";
      write_chunk(chunk, {}, out);
      ++output_chunks_;
    }
  }

  void on_message_delta(const json::object& event, std::string& out) {
    if (const auto* usage = object_member(event, "usage")) counts_.merge(*usage);
    const auto* delta = object_member(event, "delta");
    std::string_view stop_reason = delta ? string_member(*delta, "stop_reason") : std::string_view();
    if (!stop_reason.empty()) finish(detail::finish_reason_for(stop_reason), out);
  }

  void on_message_stop(std::string& out) {
    complete_ = true;
    finish("stop", out);
  }

  void on_error(const json::object* event, std::string& out) {
    const auto* error = event ? object_member(*event, "error") : nullptr;
    std::string_view type = error ? string_member(*error, "type") : std::string_view();
    std::string_view message = error ? string_member(*error, "message") : std::string_view();
    out += "data: ";
    out += detail::error_body_for(type, message.empty() ? std::string_view("stream error") : message);
    out += "\n\n";
    errored_ = true;
  }

  void append_content(std::string_view text, std::string& out) {
    if (text.empty()) return;
    write_chunk(R"({"content":)" + json::serialize(text) + "}", {}, out);
    ++output_chunks_;
  }

  void finish(std::string_view finish_reason, std::string& out) {
    if (finished_) return;
    write_chunk("{}", finish_reason, out);
    finished_ = true;
  }

  int tool_for_block(std::uint64_t index) const {
    for (const auto& [block, tool] : tools_)
      if (block == index) return tool;
    return -1;
  }

  void ensure_prefix() {
    if (!prefix_.empty()) return;
    prefix_ = R"({"id":)" + json::serialize(id_) + R"(,"object":"chat.completion.chunk","created":0,"model":)";
    prefix_ += json::serialize(model_);
    prefix_ += R"(,"choices":[)";
  }

  // Every chunk is preceded by the role chunk, even in a stream that skipped message_start.
  void ensure_started(std::string& out) {
    if (started_) return;
    started_ = true;
    write_chunk(R"({"role":"assistant","content":""})", {}, out);
  }

  void write_chunk(std::string_view delta, std::string_view finish_reason, std::string& out) {
    ensure_started(out);
    ensure_prefix();
    out += "data: ";
    out += prefix_;
    out += R"({"index":0,"delta":)";
    out += delta;
    out += R"(,"finish_reason":)";
    if (finish_reason.empty()) {
      out += "null";
    } else {
      out += '"';
      out += finish_reason;  // one of a fixed set of plain words: nothing to escape
      out += '"';
    }
    out += wants_usage_ ? R"(}],"usage":null})" "\n\n" : "}]}\n\n";
  }

  std::string model_;
  bool wants_usage_;
  std::string id_;
  std::string prefix_;  // a chunk up to and including `"choices":[`, fixed once the id is known
  std::vector<std::pair<std::uint64_t, int>> tools_;  // content block index -> tool_calls index
  int next_tool_ = 0;
  detail::usage_counts counts_;
  std::uint64_t output_chunks_ = 0;
  bool started_ = false;
  bool finished_ = false;
  bool complete_ = false;
  bool errored_ = false;
};

}  // namespace

std::unique_ptr<stream_translator> make_stream_translator(const translation_options& options) {
  return std::make_unique<chunk_translator>(options);
}

void accumulate_native_usage(std::string_view event_type, std::string_view data, openai::usage& usage) {
  with_parsed_event(event_type, data, [&](std::string_view type, const json::object* event) {
    if (!event) return;
    const json::object* counts_object = nullptr;
    if (type == "message_start") {
      if (const auto* message = object_member(*event, "message")) counts_object = object_member(*message, "usage");
    } else if (type == "message_delta" || type == "message") {
      counts_object = object_member(*event, "usage");
    }
    if (!counts_object) return;
    detail::usage_counts counts;
    counts.merge(*counts_object);
    if (!counts.seen) return;
    // Each event states totals, never increments: keep the largest seen, so a message_delta
    // that omits the prompt side cannot zero it.
    auto seen = counts.to_openai();
    usage.prompt_tokens = std::max(usage.prompt_tokens, seen.prompt_tokens);
    usage.completion_tokens = std::max(usage.completion_tokens, seen.completion_tokens);
    usage.cached_prompt_tokens = std::max(usage.cached_prompt_tokens, seen.cached_prompt_tokens);
  });
}

}  // namespace tollgate::adapters::anthropic
