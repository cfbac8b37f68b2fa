#include "adapters/ollama.hpp"

#include "adapters/json_fields.hpp"

#include "core/errors.hpp"

#include <boost/json.hpp>

#include <string_view>
#include <unordered_map>
#include <utility>

namespace tollgate::adapters::ollama {
namespace json = boost::json;
namespace {

using request_error = openai::request_error;
using maybe_error = std::optional<request_error>;

constexpr std::string_view completion_id = "chatcmpl-ollama";

request_error invalid(std::string message, std::string param) {
  return request_error{std::move(message), std::move(param)};
}

request_error unsupported(std::string_view param, std::string_view why) {
  return invalid("Unsupported parameter for Ollama: '" + std::string(param) + "' " + std::string(why),
                 std::string(param));
}

std::string indexed(std::string_view base, std::size_t i) {
  return std::string(base) + "[" + std::to_string(i) + "]";
}

// Absent and JSON null mean the same thing in an OpenAI request.
const json::value* present(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  return value && !value->is_null() ? value : nullptr;
}

// ---- request -------------------------------------------------------------------------------

// Ollama has one content string per message: text parts are joined (with a newline, so two
// parts never run into one word), and images travel beside it as bare base64.
maybe_error read_content(const json::value* content, const std::string& where, std::string& text,
                         json::array& images) {
  if (!content) return std::nullopt;
  if (const auto* s = content->if_string()) {
    text.assign(s->data(), s->size());
    return std::nullopt;
  }
  const auto* parts = content->if_array();
  if (!parts) return invalid("Invalid type for '" + where + "': expected a string or an array of content parts.", where);
  for (std::size_t j = 0; j < parts->size(); ++j) {
    const std::string part_where = indexed(where, j);
    const auto* part = (*parts)[j].if_object();
    const json::value* type = part ? part->if_contains("type") : nullptr;
    if (!type || !type->is_string())
      return invalid("Invalid '" + part_where + "': expected an object with a string 'type'.", part_where);
    const std::string_view kind = type->get_string();
    if (kind == "text" || kind == "refusal") {
      const json::value* value = part->if_contains(kind);
      if (!value || !value->is_string())
        return invalid("Invalid '" + part_where + "': missing string '" + std::string(kind) + "'.", part_where);
      if (!text.empty()) text.push_back('\n');
      text.append(value->get_string().data(), value->get_string().size());
    } else if (kind == "image_url") {
      const json::value* image = part->if_contains("image_url");
      if (const auto* image_object = image ? image->if_object() : nullptr) image = image_object->if_contains("url");
      const std::string url_where = part_where + ".image_url";
      if (!image || !image->is_string()) return invalid("Invalid '" + url_where + "': missing 'url'.", url_where);
      const std::string_view url = image->get_string();
      const std::size_t comma = url.find(',');
      const std::string_view header = url.substr(0, comma);
      if (!url.starts_with("data:") || comma == std::string_view::npos || !header.ends_with(";base64"))
        return invalid("Ollama accepts images only as base64 data: URLs (data:image/png;base64,...); it cannot "
                       "fetch '" + url_where + "'.", url_where);
      images.emplace_back(url.substr(comma + 1));
    } else {
      return invalid("Unsupported content part type '" + std::string(kind) + "' for Ollama: only text and "
                     "image_url parts are supported.", part_where + ".type");
    }
  }
  return std::nullopt;
}

// OpenAI sends tool-call arguments as JSON text; Ollama wants the object itself.
maybe_error read_arguments(const json::value* arguments, const std::string& where, json::value& out) {
  out = json::object();
  if (!arguments) return std::nullopt;
  if (arguments->is_object()) {  // lenient: some clients send the object already
    out = *arguments;
    return std::nullopt;
  }
  if (!arguments->is_string()) return invalid("Invalid type for '" + where + "': expected a JSON string.", where);
  const std::string_view text = arguments->get_string();
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::nullopt;  // "" means no arguments
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec) return invalid("Invalid '" + where + "': not valid JSON (" + ec.message() + ").", where);
  if (!parsed.is_object()) return invalid("Invalid '" + where + "': Ollama needs a JSON object.", where);
  out = std::move(parsed);
  return std::nullopt;
}

// Maps a tool call id to its function name, so a later tool result can say which tool it
// answers: Ollama identifies results by tool_name, not by id.
using call_names = std::unordered_map<std::string_view, std::string_view>;

maybe_error read_tool_calls(const json::value& calls, const std::string& where, call_names& names,
                            json::array& out) {
  const auto* list = calls.if_array();
  if (!list) return invalid("Invalid type for '" + where + "': expected an array.", where);
  for (std::size_t k = 0; k < list->size(); ++k) {
    const std::string call_where = indexed(where, k);
    const auto* call = (*list)[k].if_object();
    const json::value* function = call ? call->if_contains("function") : nullptr;
    const auto* function_object = function ? function->if_object() : nullptr;
    const json::value* name = function_object ? function_object->if_contains("name") : nullptr;
    if (!name || !name->is_string())
      return invalid("Invalid '" + call_where + "': expected a function call with a string 'name'.", call_where);
    json::value arguments;
    if (auto error = read_arguments(present(*function_object, "arguments"), call_where + ".function.arguments", arguments))
      return error;
    if (const json::value* id = call->if_contains("id"); id && id->is_string()) names[id->get_string()] = name->get_string();
    out.push_back(json::object{{"function", json::object{{"name", *name}, {"arguments", std::move(arguments)}}}});
  }
  return std::nullopt;
}

maybe_error translate_messages(const json::value* messages, json::array& out) {
  const auto* list = messages ? messages->if_array() : nullptr;
  if (!list || list->empty())
    return invalid("Invalid 'messages': expected a non-empty array.", "messages");
  call_names names;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string where = indexed("messages", i);
    const auto* message = (*list)[i].if_object();
    const json::value* role_value = message ? message->if_contains("role") : nullptr;
    if (!role_value || !role_value->is_string())
      return invalid("Invalid '" + where + "': expected an object with a string 'role'.", where);
    std::string_view role = role_value->get_string();
    if (role == "developer") role = "system";  // OpenAI's newer name for the system prompt
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      return invalid("Invalid '" + where + ".role': Ollama supports system, developer, user, assistant and tool "
                     "messages, not '" + std::string(role) + "'.", where + ".role");

    std::string text;
    json::array images;
    if (auto error = read_content(present(*message, "content"), where + ".content", text, images)) return error;
    json::object translated;
    translated["role"] = role;
    translated["content"] = text;
    if (!images.empty()) translated["images"] = std::move(images);
    if (role == "assistant") {
      if (const json::value* calls = present(*message, "tool_calls")) {
        json::array tool_calls;
        if (auto error = read_tool_calls(*calls, where + ".tool_calls", names, tool_calls)) return error;
        if (!tool_calls.empty()) translated["tool_calls"] = std::move(tool_calls);
      }
    } else if (role == "tool") {
      const json::value* id = message->if_contains("tool_call_id");
      const auto* id_string = id ? id->if_string() : nullptr;
      const auto found = id_string ? names.find(*id_string) : names.end();
      const json::value* name = message->if_contains("name");  // some clients label results themselves
      if (found != names.end()) translated["tool_name"] = found->second;
      else if (name && name->is_string()) translated["tool_name"] = *name;
    }
    out.push_back(std::move(translated));
  }
  return std::nullopt;
}

maybe_error translate_tools(const json::value& tools, json::array& out) {
  const auto* list = tools.if_array();
  if (!list) return invalid("Invalid type for 'tools': expected an array.", "tools");
  for (std::size_t k = 0; k < list->size(); ++k) {
    const std::string where = indexed("tools", k);
    const auto* tool = (*list)[k].if_object();
    const json::value* type = tool ? tool->if_contains("type") : nullptr;
    const json::value* function = tool ? tool->if_contains("function") : nullptr;
    if (!type || !type->is_string() || type->get_string() != "function")
      return invalid("Invalid '" + where + ".type': Ollama supports only function tools.", where + ".type");
    const auto* function_object = function ? function->if_object() : nullptr;
    const json::value* name = function_object ? function_object->if_contains("name") : nullptr;
    if (!name || !name->is_string())
      return invalid("Invalid '" + where + ".function': expected an object with a string 'name'.", where + ".function");
    // Ollama takes OpenAI's function schema as is (name, description, parameters).
    out.push_back(json::object{{"type", "function"}, {"function", *function_object}});
  }
  return std::nullopt;
}

// Sampling parameters live in Ollama's "options" object, mostly under the same names.
maybe_error translate_options(const json::object& request, json::object& options) {
  struct rename {
    std::string_view openai, ollama;
  };
  constexpr rename numbers[] = {{"temperature", "temperature"},
                                {"top_p", "top_p"},
                                {"presence_penalty", "presence_penalty"},
                                {"frequency_penalty", "frequency_penalty"}};
  for (const auto& [from, to] : numbers) {
    const json::value* value = present(request, from);
    if (!value) continue;
    if (!value->is_number()) return invalid("Invalid type for '" + std::string(from) + "': expected a number.", std::string(from));
    options[to] = *value;
  }
  // Both spellings of the output limit: max_completion_tokens replaced max_tokens, so it wins.
  for (std::string_view from : {"max_completion_tokens", "max_tokens", "seed"}) {
    const json::value* value = present(request, from);
    if (!value) continue;
    if (!value->is_int64() && !value->is_uint64())
      return invalid("Invalid type for '" + std::string(from) + "': expected an integer.", std::string(from));
    const std::string_view to = from == "seed" ? "seed" : "num_predict";
    if (!options.contains(to)) options[to] = *value;
  }
  if (const json::value* stop = present(request, "stop")) {
    // Ollama takes only the list form.
    json::array list;
    const auto* items = stop->if_array();
    if (stop->is_string()) list.push_back(*stop);
    else if (items) list = *items;
    bool all_strings = stop->is_string() || items;
    for (const auto& item : list) all_strings = all_strings && item.is_string();
    if (!all_strings) return invalid("Invalid type for 'stop': expected a string or an array of strings.", "stop");
    options["stop"] = std::move(list);
  }
  return std::nullopt;
}

maybe_error translate_format(const json::value* format, json::object& body) {
  if (!format) return std::nullopt;
  const auto* object = format->if_object();
  const json::value* type = object ? object->if_contains("type") : nullptr;
  const std::string_view kind = type && type->is_string() ? std::string_view(type->get_string()) : "";
  if (kind == "text") return std::nullopt;
  if (kind == "json_object") {
    body["format"] = "json";
    return std::nullopt;
  }
  if (kind == "json_schema") {
    const json::value* spec = object->if_contains("json_schema");
    const json::value* schema = spec && spec->is_object() ? spec->get_object().if_contains("schema") : nullptr;
    if (!schema || !schema->is_object())
      return invalid("Invalid 'response_format.json_schema.schema': expected a JSON schema object.",
                     "response_format.json_schema.schema");
    body["format"] = *schema;
    return std::nullopt;
  }
  return invalid("Invalid 'response_format': expected type text, json_object or json_schema.", "response_format");
}

// Parameters Ollama cannot honour, refused rather than dropped: ignoring them would change
// what the client gets back without telling it.
maybe_error reject_unsupported(const json::object& request) {
  if (const json::value* n = present(request, "n")) {
    const bool one = (n->is_int64() && n->get_int64() == 1) || (n->is_uint64() && n->get_uint64() == 1);
    if (!one) return unsupported("n", "must be 1: Ollama returns one choice per request.");
  }
  if (const json::value* logprobs = present(request, "logprobs"); logprobs && !(logprobs->is_bool() && !logprobs->get_bool()))
    return unsupported("logprobs", "is not available from Ollama's chat API.");
  if (present(request, "top_logprobs")) return unsupported("top_logprobs", "is not available from Ollama's chat API.");
  if (const json::value* bias = present(request, "logit_bias"); bias && !(bias->is_object() && bias->get_object().empty()))
    return unsupported("logit_bias", "is not available from Ollama's chat API.");
  if (present(request, "audio")) return unsupported("audio", "output is not available from Ollama.");
  if (present(request, "functions")) return unsupported("functions", "is deprecated; send 'tools' instead.");
  return std::nullopt;
}

// ---- responses -----------------------------------------------------------------------------

// Ollama's tool calls carry the arguments as an object and (in most versions) no id; OpenAI
// clients need an id to answer the call and the arguments as JSON text.
json::object openai_tool_call(const json::value& call, std::size_t index, bool with_index) {
  json::object out;
  const auto* call_object = call.if_object();
  const json::value* function = call_object ? call_object->if_contains("function") : nullptr;
  const auto* function_object = function ? function->if_object() : nullptr;
  const json::value* name = function_object ? function_object->if_contains("name") : nullptr;
  const json::value* arguments = function_object ? function_object->if_contains("arguments") : nullptr;
  const json::value* id = call_object ? call_object->if_contains("id") : nullptr;
  if (with_index) out["index"] = index;
  if (id && id->is_string() && !id->get_string().empty()) out["id"] = *id;
  else out["id"] = "call_" + std::to_string(index);
  out["type"] = "function";
  json::object fn;
  fn["name"] = name && name->is_string() ? *name : json::value("");
  if (!arguments || arguments->is_null()) fn["arguments"] = "{}";
  else if (arguments->is_string()) fn["arguments"] = *arguments;
  else fn["arguments"] = json::serialize(*arguments);
  out["function"] = std::move(fn);
  return out;
}

// A complete tool call is the model's last word, so it outranks the reason generation stopped.
std::string_view finish_reason(const json::object& answer, bool has_tool_calls) {
  if (has_tool_calls) return "tool_calls";
  const json::value* reason = answer.if_contains("done_reason");
  if (reason && reason->is_string() && reason->get_string() == "length") return "length";
  return "stop";
}

// prompt_eval_count is left out when Ollama served the whole prompt from its cache: that is 0.
openai::usage read_usage(const json::object& answer) {
  openai::usage usage;
  usage.prompt_tokens = read_count(answer, "prompt_eval_count").value_or(0);
  usage.completion_tokens = read_count(answer, "eval_count").value_or(0);
  return usage;
}

json::object usage_object(const openai::usage& usage) {
  return json::object{{"prompt_tokens", usage.prompt_tokens},
                      {"completion_tokens", usage.completion_tokens},
                      {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

std::string_view string_member(const json::object* object, std::string_view name) {
  const json::value* value = object ? object->if_contains(name) : nullptr;
  return value && value->is_string() ? std::string_view(value->get_string()) : std::string_view();
}

const json::array* tool_call_list(const json::object* message) {
  const json::value* calls = message ? message->if_contains("tool_calls") : nullptr;
  const auto* list = calls ? calls->if_array() : nullptr;
  return list && !list->empty() ? list : nullptr;
}

std::string error_line_body(std::string_view message) {
  return openai::error_body("Ollama: " + std::string(message), "upstream_error", {});
}

class stream : public stream_translator {
 public:
  explicit stream(const translation_options& options) : wants_usage_(options.client_wants_usage) {
    const std::string model = json::serialize(json::string_view(options.model));
    head_ = "data: {\"id\":\"" + std::string(completion_id) + "\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":" +
            model + ",\"choices\":[";
  }

  void on_event(std::string_view, std::string_view data, std::string& out) override {
    if (done_ || failed_) return;  // nothing may follow the final chunk or an error
    unsigned char arena[4096];
    json::monotonic_resource resource(arena, sizeof(arena));
    boost::system::error_code ec;
    const json::value parsed = json::parse(data, ec, &resource);
    const json::object* line = ec ? nullptr : parsed.if_object();
    if (!line) return fail("malformed stream line from upstream", out);
    if (const json::value* error = line->if_contains("error")) {
      const std::string_view message = error->is_string() ? std::string_view(error->get_string()) : "stream error";
      return fail(message, out);
    }
    if (!started_) {
      started_ = true;
      chunk(R"({"role":"assistant","content":""})", "null", out);
    }
    const json::value* message_value = line->if_contains("message");
    const json::object* message = message_value ? message_value->if_object() : nullptr;
    if (const std::string_view content = string_member(message, "content"); !content.empty()) {
      chunk("{\"content\":" + json::serialize(json::string_view(content)) + "}", "null", out);
      ++output_chunks_;
    }
    if (const json::array* calls = tool_call_list(message)) {
      // Ollama sends each tool call whole, so one OpenAI chunk carries name and arguments.
      json::array list;
      for (const auto& call : *calls) list.push_back(openai_tool_call(call, tool_calls_++, true));
      chunk("{\"tool_calls\":" + json::serialize(list) + "}", "null", out);
      ++output_chunks_;
    }
    if (const json::value* done = line->if_contains("done"); done && done->is_bool() && done->get_bool()) {
      done_ = true;
      usage_ = read_usage(*line);
      chunk("{}", "\"" + std::string(finish_reason(*line, tool_calls_ > 0)) + "\"", out);
    }
  }

  void on_end(std::string& out) override {
    // Without done:true (or after an error) the stream is incomplete: the relay, seeing
    // complete() == false, owns the terminal error, so nothing is invented here.
    if (!done_ || failed_ || ended_) return;
    ended_ = true;
    if (wants_usage_ && usage_) {
      out += head_;
      out += "],\"usage\":";
      out += json::serialize(usage_object(*usage_));
      out += "}\n\n";
    }
    out += "data: [DONE]\n\n";
  }

  std::optional<openai::usage> usage() const override { return usage_; }
  bool complete() const override { return done_; }
  bool failed() const override { return failed_; }
  std::uint64_t output_chunks() const override { return output_chunks_; }

 private:
  void chunk(std::string_view delta, std::string_view finish, std::string& out) const {
    out += head_;
    out += "{\"index\":0,\"delta\":";
    out += delta;
    out += ",\"logprobs\":null,\"finish_reason\":";
    out += finish;
    out += "}]}\n\n";
  }

  void fail(std::string_view message, std::string& out) {
    failed_ = true;
    out += "data: ";
    out += error_line_body(message);
    out += "\n\n";
  }

  std::string head_;  // every chunk's bytes up to the choices array
  bool wants_usage_;
  bool started_ = false;
  bool done_ = false;
  bool failed_ = false;
  bool ended_ = false;
  std::size_t tool_calls_ = 0;
  std::uint64_t output_chunks_ = 0;
  std::optional<openai::usage> usage_;
};

}  // namespace

boost::system::result<upstream_call, request_error> translate_request(const json::object& request,
                                                                       const translation_options& options) {
  if (auto error = reject_unsupported(request)) return *error;
  json::object body;
  if (!options.model.empty()) body["model"] = options.model;
  else if (const json::value* model = present(request, "model")) body["model"] = *model;

  json::array messages;
  if (auto error = translate_messages(request.if_contains("messages"), messages)) return *error;
  body["messages"] = std::move(messages);

  // Ollama has no tool_choice. "none" is honoured by not offering the tools at all; "auto",
  // "required" and a named function cannot be enforced and are dropped.
  const json::value* choice = present(request, "tool_choice");
  const bool no_tools = choice && choice->is_string() && choice->get_string() == "none";
  if (const json::value* tools = present(request, "tools"); tools && !no_tools) {
    json::array list;
    if (auto error = translate_tools(*tools, list)) return *error;
    if (!list.empty()) body["tools"] = std::move(list);
  }
  if (auto error = translate_format(present(request, "response_format"), body)) return *error;

  json::object sampling;
  if (auto error = translate_options(request, sampling)) return *error;
  if (!sampling.empty()) body["options"] = std::move(sampling);
  body["stream"] = options.stream;  // explicit: Ollama streams when it is left out

  upstream_call call;
  call.path = "/api/chat";
  call.body = json::serialize(body);
  call.framing = stream_framing::ndjson;
  return call;
}

boost::system::result<translated_response, std::string> translate_response(std::string_view body,
                                                                           const translation_options& options) {
  using result = boost::system::result<translated_response, std::string>;
  const auto failure = [](std::string why) { return result(boost::system::in_place_error, std::move(why)); };
  boost::system::error_code ec;
  const json::value parsed = json::parse(body, ec);
  if (ec) return failure("Ollama response is not JSON: " + ec.message());
  const json::object* answer = parsed.if_object();
  if (!answer) return failure("Ollama response is not a JSON object");
  if (const json::value* error = answer->if_contains("error"))
    return failure("Ollama error in a success response: " +
                   (error->is_string() ? std::string(error->get_string()) : json::serialize(*error)));
  const json::value* message_value = answer->if_contains("message");
  const json::object* message = message_value ? message_value->if_object() : nullptr;
  if (!message) return failure("Ollama response has no 'message' object");

  json::object out_message;
  out_message["role"] = "assistant";
  const std::string_view content = string_member(message, "content");
  const json::array* calls = tool_call_list(message);
  // OpenAI's convention: content is null when the answer is only tool calls.
  out_message["content"] = content.empty() && calls ? json::value(nullptr) : json::value(content);
  if (calls) {
    json::array list;
    for (std::size_t i = 0; i < calls->size(); ++i) list.push_back(openai_tool_call((*calls)[i], i, false));
    out_message["tool_calls"] = std::move(list);
  }

  const openai::usage usage = read_usage(*answer);
  json::object choice;
  choice["index"] = 0;
  choice["message"] = std::move(out_message);
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason(*answer, calls != nullptr);
  json::object completion;
  completion["id"] = completion_id;
  completion["object"] = "chat.completion";
  completion["created"] = 0;
  completion["model"] = options.model;
  completion["choices"] = json::array{std::move(choice)};
  completion["usage"] = usage_object(usage);
  return translated_response{json::serialize(completion), usage};
}

translated_error translate_error(int status, std::string_view body) {
  std::string message;
  boost::system::error_code ec;
  const json::value parsed = json::parse(body, ec);
  const json::object* object = ec ? nullptr : parsed.if_object();
  const json::value* error = object ? object->if_contains("error") : nullptr;
  if (error && error->is_string()) {
    message = error->get_string();
  } else if (body.find_first_not_of(" \t\r\n") != std::string_view::npos) {
    message = body.substr(0, 256);  // not Ollama's shape (a proxy's page?): keep it short
  } else {
    message = "HTTP " + std::to_string(status);
  }
  message.insert(0, "Ollama: ");

  // The upstream's status is what Ollama meant; what the client gets is the matching OpenAI
  // error. Credentials and server faults are tollgate's side of the wire, hence 502.
  if (status == 404) return {404, openai::error_body(message, "invalid_request_error", "model_not_found", "model")};
  if (status == 429) return {429, openai::error_body(message, "rate_limit_error", "rate_limit_exceeded")};
  if (status == 503) return {503, openai::error_body(message, "upstream_error", "upstream_overloaded")};
  if (status >= 400 && status < 500 && status != 401 && status != 403)
    return {status, openai::error_body(message, "invalid_request_error", {})};
  const core::error_info info = core::describe(core::error_kind::upstream_status);
  return {info.http_status, openai::error_body(message, info.type, info.code)};
}

std::unique_ptr<stream_translator> make_stream_translator(const translation_options& options) {
  return std::make_unique<stream>(options);
}

}  // namespace tollgate::adapters::ollama
