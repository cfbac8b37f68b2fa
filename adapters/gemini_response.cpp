// Gemini answers -> OpenAI answers: generateContent bodies, streamGenerateContent?alt=sse events
// and error bodies. The request side lives in gemini.cpp.
#include "adapters/gemini.hpp"

#include "adapters/json_fields.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

namespace tollgate::adapters::gemini {
namespace json = boost::json;
namespace {

const json::value* member(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  return value && !value->is_null() ? value : nullptr;
}

std::string_view string_member(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  return value && value->is_string() ? std::string_view(value->get_string()) : std::string_view();
}

// ---- usage -----------------------------------------------------------------------------------------

// Stream chunks repeat usageMetadata with running totals; keeping the largest value seen per
// field means a chunk that omits or under-reports a field never lowers what is charged.
struct usage_counts {
  std::uint64_t prompt = 0;
  std::uint64_t candidates = 0;
  std::uint64_t thoughts = 0;     // thinking tokens: billed as output
  std::uint64_t tool_prompt = 0;  // results of Google-side tools fed back in: billed as input
  std::uint64_t cached = 0;
  std::uint64_t total = 0;
  bool seen = false;

  void merge(const json::object& response) {
    const json::value* metadata = member(response, "usageMetadata");
    if (!metadata || !metadata->is_object()) return;
    const auto& m = metadata->get_object();
    seen = true;
    prompt = std::max(prompt, read_count(m, "promptTokenCount").value_or(0));
    candidates = std::max(candidates, read_count(m, "candidatesTokenCount").value_or(0));
    thoughts = std::max(thoughts, read_count(m, "thoughtsTokenCount").value_or(0));
    tool_prompt = std::max(tool_prompt, read_count(m, "toolUsePromptTokenCount").value_or(0));
    cached = std::max(cached, read_count(m, "cachedContentTokenCount").value_or(0));
    total = std::max(total, read_count(m, "totalTokenCount").value_or(0));
  }

  openai::usage to_usage() const { return openai::usage{prompt + tool_prompt, candidates + thoughts, cached}; }

  json::object to_json() const {
    openai::usage u = to_usage();
    return json::object{
        {"prompt_tokens", u.prompt_tokens},
        {"completion_tokens", u.completion_tokens},
        {"total_tokens", total != 0 ? total : u.prompt_tokens + u.completion_tokens},
        {"prompt_tokens_details", json::object{{"cached_tokens", cached}}},
        {"completion_tokens_details", json::object{{"reasoning_tokens", thoughts}}},
    };
  }
};

// ---- candidates -------------------------------------------------------------------------------------

// "" while the candidate is still being generated.
std::string_view openai_finish_reason(std::string_view reason) {
  if (reason.empty() || reason == "FINISH_REASON_UNSPECIFIED") return {};
  if (reason == "MAX_TOKENS") return "length";
  constexpr std::array<std::string_view, 8> filtered = {"SAFETY",
                                                        "RECITATION",
                                                        "BLOCKLIST",
                                                        "PROHIBITED_CONTENT",
                                                        "SPII",
                                                        "IMAGE_SAFETY",
                                                        "IMAGE_PROHIBITED_CONTENT",
                                                        "IMAGE_RECITATION"};
  if (std::find(filtered.begin(), filtered.end(), reason) != filtered.end()) return "content_filter";
  return "stop";  // STOP, and reasons OpenAI has no word for (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ...)
}

// A call the model asked for ends the turn the way OpenAI's tool_calls does; a length or filter
// stop still wins because it says the answer was cut short.
std::string_view final_reason(std::string_view reason, bool has_tool_calls) {
  return reason == "stop" && has_tool_calls ? "tool_calls" : reason;
}

const json::object* first_candidate(const json::object& response) {
  const json::value* candidates = member(response, "candidates");
  if (!candidates || !candidates->is_array() || candidates->get_array().empty()) return nullptr;
  return candidates->get_array()[0].if_object();
}

const json::array* candidate_parts(const json::object& candidate) {
  const json::value* content = member(candidate, "content");
  const json::value* parts = content && content->is_object() ? member(content->get_object(), "parts") : nullptr;
  return parts ? parts->if_array() : nullptr;
}

// Thought summaries ("thought": true) are the model's reasoning, not its answer.
bool is_answer_text(const json::object& part) {
  const json::value* thought = part.if_contains("thought");
  return part.contains("text") && part.at("text").is_string() &&
         !(thought && thought->is_bool() && thought->get_bool());
}

json::object openai_tool_call(const json::object& call, std::uint64_t index) {
  const json::value* args = member(call, "args");
  return json::object{
      {"id", "call_" + std::to_string(index)},
      {"type", "function"},
      {"function", json::object{{"name", string_member(call, "name")},
                                {"arguments", args ? json::serialize(*args) : std::string("{}")}}},
  };
}

bool blocked_prompt(const json::object& response) {
  const json::value* feedback = member(response, "promptFeedback");
  return feedback && feedback->is_object() && member(feedback->get_object(), "blockReason");
}

// ---- errors ------------------------------------------------------------------------------------------

struct gemini_error {
  int code = 0;
  std::string message;
  std::string status;
  bool bad_api_key = false;
};

int status_for_name(std::string_view name) {
  struct entry {
    std::string_view name;
    int status;
  };
  constexpr std::array<entry, 10> table = {{{"INVALID_ARGUMENT", 400},
                                            {"FAILED_PRECONDITION", 400},
                                            {"OUT_OF_RANGE", 400},
                                            {"UNAUTHENTICATED", 401},
                                            {"PERMISSION_DENIED", 403},
                                            {"NOT_FOUND", 404},
                                            {"RESOURCE_EXHAUSTED", 429},
                                            {"INTERNAL", 500},
                                            {"UNAVAILABLE", 503},
                                            {"DEADLINE_EXCEEDED", 504}}};
  for (const auto& e : table)
    if (e.name == name) return e.status;
  return 0;
}

std::string_view type_for_status(int status) {
  if (status == 401) return "authentication_error";
  if (status == 403) return "permission_error";
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

// {"error":{...}}; read_error also takes the array-wrapped form [{"error":{...}}].
std::optional<gemini_error> read_error_object(const json::object& object) {
  const json::value* error = member(object, "error");
  if (!error || !error->is_object()) return std::nullopt;
  const auto& fields = error->get_object();
  gemini_error result;
  result.code = static_cast<int>(std::min<std::uint64_t>(read_count(fields, "code").value_or(0), 999));
  result.message = std::string(string_member(fields, "message"));
  result.status = std::string(string_member(fields, "status"));
  // A wrong key is a 400 INVALID_ARGUMENT to Gemini; OpenAI clients expect a 401 for it.
  if (const json::value* details = member(fields, "details"); details && details->is_array()) {
    for (const auto& detail : details->get_array())
      if (detail.is_object() && string_member(detail.get_object(), "reason") == "API_KEY_INVALID")
        result.bad_api_key = true;
  }
  return result;
}

std::optional<gemini_error> read_error(const json::value& body) {
  const json::value* root = &body;
  if (body.is_array() && !body.get_array().empty()) root = &body.get_array()[0];
  const auto* object = root->if_object();
  return object ? read_error_object(*object) : std::nullopt;
}

std::string error_message(const gemini_error& error) {
  if (!error.message.empty()) return "Gemini: " + error.message;
  return "Gemini: upstream error" + (error.status.empty() ? std::string() : " " + error.status);
}

// ---- stream ------------------------------------------------------------------------------------------

class gemini_stream final : public stream_translator {
 public:
  explicit gemini_stream(const translation_options& options)
      : model_(options.model), client_wants_usage_(options.client_wants_usage) {}

  void on_event(std::string_view, std::string_view data, std::string& out) override {
    if (errored_ || ended_) return;
    std::size_t begin = data.find_first_not_of(" \t\r\n");
    if (begin == std::string_view::npos) return;
    data = data.substr(begin);
    if (data.starts_with("[DONE]")) return;
    boost::system::error_code ec;
    json::value parsed = json::parse(data, ec);
    if (ec) return emit_error(out, 502, "Gemini: the stream carried an event that is not JSON.", {});
    if (parsed.is_array()) {  // the non-SSE framing: one array of responses
      for (const auto& item : parsed.get_array())
        if (item.is_object() && !errored_) on_response(item.get_object(), out);
    } else if (parsed.is_object()) {
      on_response(parsed.get_object(), out);
    }
  }

  void on_end(std::string& out) override {
    if (ended_) return;
    ended_ = true;
    if (!errored_ && !finished_) emit_error(out, 502, "Gemini: the stream ended before the answer was complete.", {});
    if (!errored_ && client_wants_usage_ && usage_.seen) {
      out += "data: ";
      out += prefix_;
      out += "[],\"usage\":";
      out += json::serialize(usage_.to_json());
      out += "}\n\n";
    }
    out += "data: [DONE]\n\n";
  }

  std::optional<openai::usage> usage() const override {
    if (!usage_.seen) return std::nullopt;
    return usage_.to_usage();
  }

  bool complete() const override { return finished_; }

  bool failed() const override { return errored_; }
  std::uint64_t output_chunks() const override { return output_chunks_; }

 private:
  void on_response(const json::object& response, std::string& out) {
    if (auto error = read_error_object(response)) {
      int status = error->code >= 400 ? error->code : status_for_name(error->status);
      return emit_error(out, status ? status : 500, error_message(*error), error->status);
    }
    usage_.merge(response);
    if (finished_) return;  // a trailing chunk can only add usage
    if (prefix_.empty()) start(response, out);

    const json::object* candidate = first_candidate(response);
    if (!candidate) {
      if (blocked_prompt(response)) finish("content_filter", out);
      return;
    }
    if (const json::array* parts = candidate_parts(*candidate)) {
      std::string text;
      for (const auto& item : *parts) {
        const auto* part = item.if_object();
        if (!part) continue;
        if (is_answer_text(*part)) text += part->at("text").get_string();
        const json::value* call = member(*part, "functionCall");
        if (!call || !call->is_object()) continue;
        emit_text(text, out);  // keep the order the model produced
        text.clear();
        json::object tool_call = openai_tool_call(call->get_object(), tool_calls_);
        tool_call.emplace("index", tool_calls_++);
        emit_delta(json::object{{"tool_calls", json::array{std::move(tool_call)}}}, out);
        ++output_chunks_;
      }
      emit_text(text, out);
    }
    std::string_view reason = openai_finish_reason(string_member(*candidate, "finishReason"));
    if (!reason.empty()) finish(final_reason(reason, tool_calls_ > 0), out);
  }

  // The first chunk fixes the id every later chunk repeats, and opens the assistant message.
  void start(const json::object& response, std::string& out) {
    std::string_view id = string_member(response, "responseId");
    prefix_ = "{\"id\":";
    prefix_ += json::serialize(json::value(id.empty() ? std::string_view("chatcmpl-gemini") : id));
    prefix_ += ",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":";
    prefix_ += json::serialize(json::value(model_));
    prefix_ += ",\"choices\":";
    emit_delta(json::object{{"role", "assistant"}, {"content", ""}}, out);
  }

  void emit_text(const std::string& text, std::string& out) {
    if (text.empty()) return;
    emit_delta(json::object{{"content", text}}, out);
    ++output_chunks_;
  }

  void emit_delta(json::object delta, std::string& out, std::string_view finish_reason = {}) {
    json::object choice{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", nullptr}};
    if (!finish_reason.empty()) choice["finish_reason"] = finish_reason;
    out += "data: ";
    out += prefix_;
    out += json::serialize(json::array{std::move(choice)});
    out += "}\n\n";
  }

  void finish(std::string_view reason, std::string& out) {
    emit_delta(json::object(), out, reason);
    finished_ = true;
  }

  void emit_error(std::string& out, int status, const std::string& message, std::string_view code) {
    out += "data: ";
    out += openai::error_body(message, type_for_status(status), code);
    out += "\n\n";
    errored_ = true;
  }

  std::string model_;
  bool client_wants_usage_;
  std::string prefix_;  // '{"id":..,"object":..,"created":0,"model":..,"choices":' once the first chunk came
  usage_counts usage_;
  std::uint64_t tool_calls_ = 0;
  std::uint64_t output_chunks_ = 0;
  bool finished_ = false;
  bool errored_ = false;
  bool ended_ = false;
};

}  // namespace

boost::system::result<translated_response, std::string> translate_response(std::string_view body,
                                                                           const translation_options& options) {
  using result_type = boost::system::result<translated_response, std::string>;
  auto failure = [](std::string message) { return result_type(boost::system::in_place_error, std::move(message)); };
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec) return failure("Gemini returned a body that is not JSON: " + ec.message() + ".");
  if (auto error = read_error(parsed)) return failure(error_message(*error));
  const auto* response = parsed.if_object();
  if (!response) return failure("Gemini returned JSON that is not a GenerateContentResponse.");

  std::string text;
  json::array tool_calls;
  std::string_view reason = "stop";
  if (const json::object* candidate = first_candidate(*response)) {
    if (const json::array* parts = candidate_parts(*candidate)) {
      for (const auto& item : *parts) {
        const auto* part = item.if_object();
        if (!part) continue;
        if (is_answer_text(*part)) text += part->at("text").get_string();
        if (const json::value* call = member(*part, "functionCall"); call && call->is_object())
          tool_calls.push_back(openai_tool_call(call->get_object(), tool_calls.size()));
      }
    }
    std::string_view mapped = openai_finish_reason(string_member(*candidate, "finishReason"));
    if (!mapped.empty()) reason = mapped;
  } else if (blocked_prompt(*response)) {
    reason = "content_filter";
  }
  reason = final_reason(reason, !tool_calls.empty());

  json::object message{{"role", "assistant"}};
  // OpenAI sends null content beside tool calls and a string otherwise.
  message["content"] = text.empty() && !tool_calls.empty() ? json::value(nullptr) : json::value(text);
  if (!tool_calls.empty()) message["tool_calls"] = std::move(tool_calls);

  std::string_view id = string_member(*response, "responseId");
  json::object out{
      {"id", id.empty() ? std::string_view("chatcmpl-gemini") : id},
      {"object", "chat.completion"},
      {"created", 0},
      {"model", options.model},
      {"choices",
       json::array{json::object{
           {"index", 0}, {"message", std::move(message)}, {"logprobs", nullptr}, {"finish_reason", reason}}}},
  };
  usage_counts counts;
  counts.merge(*response);
  translated_response result;
  if (counts.seen) {
    out["usage"] = counts.to_json();
    result.usage = counts.to_usage();
  }
  result.body = json::serialize(out);
  return result;
}

translated_error translate_error(int status, std::string_view body) {
  translated_error result;
  result.status = status >= 400 && status <= 599 ? status : 502;
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  std::optional<gemini_error> error = ec ? std::nullopt : read_error(parsed);
  if (!error) {
    result.body =
        openai::error_body("Gemini: upstream answered HTTP " + std::to_string(status) + " without a JSON error body.",
                           type_for_status(result.status), {});
    return result;
  }
  if (error->bad_api_key) result.status = 401;
  result.body = openai::error_body(error_message(*error), type_for_status(result.status), error->status);
  return result;
}

std::unique_ptr<stream_translator> make_stream_translator(const translation_options& options) {
  return std::make_unique<gemini_stream>(options);
}

}  // namespace tollgate::adapters::gemini
