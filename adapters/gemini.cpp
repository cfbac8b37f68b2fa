// OpenAI chat request -> Gemini generateContent request. Schemas are converted in
// gemini_schema.cpp; the answer side (responses, streams, errors) lives in gemini_response.cpp.
#include "adapters/gemini.hpp"

#include "adapters/gemini_schema.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace tollgate::adapters::gemini {
namespace json = boost::json;
namespace {

using request_error = openai::request_error;
using maybe_error = std::optional<request_error>;

request_error invalid(std::string message, std::string param) {
  return request_error{std::move(message), std::move(param)};
}

std::string indexed(std::string_view base, std::size_t index) {
  return std::string(base) + "[" + std::to_string(index) + "]";
}

// OpenAI treats an explicit null like an absent member.
const json::value* member(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  return value && !value->is_null() ? value : nullptr;
}

bool is_integer(const json::value& value) { return value.is_int64() || value.is_uint64(); }

// Gemini 3 models reject a replayed functionCall part without the thought signature their
// answer carried; OpenAI's tool_calls have nowhere to keep it. Google documents this value for
// history the model did not produce: it skips the check (older models ignore the field).
constexpr std::string_view skip_signature = "skip_thought_signature_validator";

// ---- messages -> contents --------------------------------------------------------------------------

struct tool_call_name {
  std::string id;
  std::string name;
};

class contents_builder {
 public:
  maybe_error add(const json::object& message, std::size_t index);

  json::array& contents() { return contents_; }
  json::array& system_parts() { return system_parts_; }

 private:
  maybe_error add_system(const json::object& message, const std::string& param);
  maybe_error add_user(const json::object& message, const std::string& param);
  maybe_error add_assistant(const json::object& message, const std::string& param);
  maybe_error add_tool_result(const json::object& message, const std::string& param, bool legacy_function);
  maybe_error add_function_call(const json::value& function, const std::string& id, const std::string& param,
                                json::array& parts);
  void append(std::string_view role, json::array parts);

  json::array contents_;
  json::array system_parts_;
  std::vector<tool_call_name> tool_calls_;  // every call seen so far: tool messages name theirs by id
};

// Text a message contributes: a string, or text parts (and refusal parts for the assistant).
maybe_error text_parts(const json::value* content, const std::string& param, bool allow_refusal, json::array& parts) {
  if (!content) return std::nullopt;
  if (content->is_string()) {
    if (!content->get_string().empty()) parts.push_back(json::object{{"text", content->get_string()}});
    return std::nullopt;
  }
  if (!content->is_array()) return invalid("Invalid type for '" + param + "': expected a string or an array.", param);
  const auto& list = content->get_array();
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::string part_param = indexed(param, i);
    const auto* part = list[i].if_object();
    const json::value* type = part ? member(*part, "type") : nullptr;
    std::string_view kind = type && type->is_string() ? std::string_view(type->get_string()) : std::string_view();
    const char* field = kind == "text" ? "text" : (allow_refusal && kind == "refusal") ? "refusal" : nullptr;
    const json::value* text = field ? member(*part, field) : nullptr;
    if (!text || !text->is_string())
      return invalid("Invalid content part '" + part_param + "': only text parts are supported here.", part_param);
    if (!text->get_string().empty()) parts.push_back(json::object{{"text", text->get_string()}});
  }
  return std::nullopt;
}

// "data:image/png;base64,AAAA" -> inlineData. Only base64 data URLs carry bytes Gemini accepts.
maybe_error data_url_part(std::string_view url, const std::string& param, json::array& parts) {
  std::size_t comma = url.find(',');
  std::string_view header = url.substr(5, comma == std::string_view::npos ? 0 : comma - 5);
  constexpr std::string_view base64 = ";base64";
  if (comma == std::string_view::npos || !header.ends_with(base64) || header.size() == base64.size())
    return invalid("Invalid '" + param + "': data URLs must look like data:<mime type>;base64,<data>.", param);
  std::string_view mime = header.substr(0, header.find(';'));
  parts.push_back(json::object{{"inlineData", json::object{{"mimeType", mime}, {"data", url.substr(comma + 1)}}}});
  return std::nullopt;
}

// Gemini needs a MIME type for a URL it fetches; the extension is all there is to go on.
std::string_view guess_image_type(std::string_view url) {
  url = url.substr(0, url.find_first_of("?#"));
  std::size_t dot = url.rfind('.');
  std::string extension(dot == std::string_view::npos || url.find('/', dot) != std::string_view::npos
                            ? std::string_view()
                            : url.substr(dot + 1));
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
  if (extension == "png") return "image/png";
  if (extension == "gif") return "image/gif";
  if (extension == "webp") return "image/webp";
  if (extension == "heic") return "image/heic";
  if (extension == "heif") return "image/heif";
  return "image/jpeg";
}

maybe_error image_part(const json::object& part, const std::string& param, json::array& parts) {
  const json::value* image = member(part, "image_url");
  const json::value* url = image && image->is_object() ? member(image->get_object(), "url") : image;
  if (!url || !url->is_string()) return invalid("Missing required parameter: '" + param + ".image_url.url'.", param);
  std::string_view text = url->get_string();
  if (text.starts_with("data:")) return data_url_part(text, param + ".image_url.url", parts);
  if (text.starts_with("https://") || text.starts_with("http://")) {
    parts.push_back(json::object{{"fileData", json::object{{"mimeType", guess_image_type(text)}, {"fileUri", text}}}});
    return std::nullopt;
  }
  return invalid("Invalid '" + param + ".image_url.url': expected an http(s) URL or a base64 data URL.", param);
}

maybe_error user_part(const json::object& part, const std::string& param, json::array& parts) {
  const json::value* type = member(part, "type");
  std::string_view kind = type && type->is_string() ? std::string_view(type->get_string()) : std::string_view();
  if (kind == "text") {
    const json::value* text = member(part, "text");
    if (!text || !text->is_string()) return invalid("Missing required parameter: '" + param + ".text'.", param);
    if (!text->get_string().empty()) parts.push_back(json::object{{"text", text->get_string()}});
    return std::nullopt;
  }
  if (kind == "image_url") return image_part(part, param, parts);
  if (kind == "input_audio") {  // audio input is fine; only audio output is not
    const json::value* audio = member(part, "input_audio");
    const auto* fields = audio ? audio->if_object() : nullptr;
    const json::value* data = fields ? member(*fields, "data") : nullptr;
    const json::value* format = fields ? member(*fields, "format") : nullptr;
    if (!data || !data->is_string() || !format || !format->is_string())
      return invalid("Invalid '" + param + ".input_audio': expected data and format strings.", param);
    std::string mime = "audio/" + std::string(format->get_string());
    parts.push_back(json::object{{"inlineData", json::object{{"mimeType", mime}, {"data", data->get_string()}}}});
    return std::nullopt;
  }
  if (kind == "file") {
    const json::value* file = member(part, "file");
    const auto* fields = file ? file->if_object() : nullptr;
    const json::value* data = fields ? member(*fields, "file_data") : nullptr;
    if (!data || !data->is_string() || !data->get_string().starts_with("data:"))
      return invalid("Invalid '" + param +
                         ".file': only inline file_data (a base64 data URL) is supported; "
                         "uploaded file ids are not.",
                     param);
    return data_url_part(data->get_string(), param + ".file.file_data", parts);
  }
  return invalid("Invalid content part '" + param + "': unsupported type '" + std::string(kind) + "'.", param);
}

maybe_error contents_builder::add(const json::object& message, std::size_t index) {
  std::string param = indexed("messages", index);
  const json::value* role = member(message, "role");
  std::string_view name = role && role->is_string() ? std::string_view(role->get_string()) : std::string_view();
  if (name == "system" || name == "developer") return add_system(message, param);
  if (name == "user") return add_user(message, param);
  if (name == "assistant") return add_assistant(message, param);
  if (name == "tool") return add_tool_result(message, param, false);
  if (name == "function") return add_tool_result(message, param, true);
  return invalid("Invalid '" + param + ".role': unsupported role '" + std::string(name) + "'.", param + ".role");
}

// Gemini has one systemInstruction, so system messages anywhere in the conversation join it.
maybe_error contents_builder::add_system(const json::object& message, const std::string& param) {
  return text_parts(member(message, "content"), param + ".content", false, system_parts_);
}

maybe_error contents_builder::add_user(const json::object& message, const std::string& param) {
  json::array parts;
  const json::value* content = member(message, "content");
  std::string content_param = param + ".content";
  if (content && content->is_array()) {
    const auto& list = content->get_array();
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto* part = list[i].if_object();
      std::string part_param = indexed(content_param, i);
      if (!part) return invalid("Invalid content part '" + part_param + "': expected an object.", part_param);
      if (auto error = user_part(*part, part_param, parts)) return error;
    }
  } else if (auto error = text_parts(content, content_param, false, parts)) {
    return error;
  }
  append("user", std::move(parts));
  return std::nullopt;
}

maybe_error contents_builder::add_function_call(const json::value& function, const std::string& id,
                                                const std::string& param, json::array& parts) {
  const auto* fields = function.if_object();
  const json::value* name = fields ? member(*fields, "name") : nullptr;
  if (!name || !name->is_string() || name->get_string().empty())
    return invalid("Missing required parameter: '" + param + ".name'.", param + ".name");
  const json::value* arguments = member(*fields, "arguments");
  json::value args = json::object();
  if (arguments && arguments->is_string() && !arguments->get_string().empty()) {
    boost::system::error_code ec;
    args = json::parse(arguments->get_string(), ec);
    if (ec || !args.is_object())
      return invalid("Invalid '" + param + ".arguments': expected a JSON object encoded as a string.",
                     param + ".arguments");
  } else if (arguments && !arguments->is_string()) {
    return invalid("Invalid type for '" + param + ".arguments': expected a string.", param + ".arguments");
  }
  json::object part{{"functionCall", json::object{{"name", name->get_string()}, {"args", std::move(args)}}}};
  // Only the first call of a turn carries a signature, as in Gemini's own answers.
  if (std::none_of(parts.begin(), parts.end(),
                   [](const json::value& p) { return p.get_object().contains("functionCall"); }))
    part["thoughtSignature"] = skip_signature;
  parts.push_back(std::move(part));
  tool_calls_.push_back({id, std::string(name->get_string())});
  return std::nullopt;
}

maybe_error contents_builder::add_assistant(const json::object& message, const std::string& param) {
  json::array parts;
  if (auto error = text_parts(member(message, "content"), param + ".content", true, parts)) return error;
  if (const json::value* calls = member(message, "tool_calls")) {
    if (!calls->is_array())
      return invalid("Invalid type for '" + param + ".tool_calls': expected an array.", param + ".tool_calls");
    const auto& list = calls->get_array();
    for (std::size_t i = 0; i < list.size(); ++i) {
      std::string call_param = indexed(param + ".tool_calls", i);
      const auto* call = list[i].if_object();
      const json::value* id = call ? member(*call, "id") : nullptr;
      const json::value* function = call ? member(*call, "function") : nullptr;
      if (!id || !id->is_string() || !function)
        return invalid("Invalid '" + call_param + "': expected an object with an id and a function.", call_param);
      if (auto error = add_function_call(*function, std::string(id->get_string()), call_param + ".function", parts))
        return error;
    }
  }
  if (const json::value* legacy = member(message, "function_call")) {  // deprecated functions API
    const auto* fields = legacy->if_object();
    const json::value* name = fields ? member(*fields, "name") : nullptr;
    std::string id = name && name->is_string() ? std::string(name->get_string()) : std::string();
    if (auto error = add_function_call(*legacy, id, param + ".function_call", parts)) return error;
  }
  append("model", std::move(parts));
  return std::nullopt;
}

// Gemini wants function results from the user side, named after the call they answer.
maybe_error contents_builder::add_tool_result(const json::object& message, const std::string& param,
                                              bool legacy_function) {
  std::string key = legacy_function ? "name" : "tool_call_id";
  const json::value* id = member(message, key);
  if (!id || !id->is_string())
    return invalid("Missing required parameter: '" + param + "." + key + "'.", param + "." + key);
  auto call = std::find_if(tool_calls_.rbegin(), tool_calls_.rend(),
                           [&](const tool_call_name& c) { return c.id == id->get_string(); });
  if (call == tool_calls_.rend())
    return invalid("Invalid '" + param + "." + key + "': it matches no tool call of an earlier assistant message.",
                   param + "." + key);
  json::array texts;
  if (auto error = text_parts(member(message, "content"), param + ".content", false, texts)) return error;
  std::string text;
  for (const auto& part : texts) text += part.at("text").get_string();
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  json::value response = !ec && parsed.is_object() ? std::move(parsed) : json::value(json::object{{"content", text}});
  append("user", json::array{json::object{
                     {"functionResponse", json::object{{"name", call->name}, {"response", std::move(response)}}}}});
  return std::nullopt;
}

// Gemini expects turns to alternate, so neighbours with the same role become one content.
void contents_builder::append(std::string_view role, json::array parts) {
  if (parts.empty()) return;
  if (!contents_.empty()) {
    auto& last = contents_.back().get_object();
    if (last.at("role").get_string() == role) {
      auto& last_parts = last.at("parts").get_array();
      for (auto& part : parts) last_parts.push_back(std::move(part));
      return;
    }
  }
  contents_.push_back(json::object{{"role", role}, {"parts", std::move(parts)}});
}

// ---- generation parameters -------------------------------------------------------------------------

maybe_error copy_number(const json::object& request, std::string_view from, std::string_view to, bool integer,
                        json::object& config) {
  const json::value* value = member(request, from);
  if (!value) return std::nullopt;
  if (integer ? !is_integer(*value) : !value->is_number())
    return invalid("Invalid type for '" + std::string(from) + "': expected " + (integer ? "an integer." : "a number."),
                   std::string(from));
  config[to] = *value;
  return std::nullopt;
}

maybe_error refuse_unsupported(const json::object& request) {
  if (const json::value* logprobs = member(request, "logprobs");
      logprobs && !(logprobs->is_bool() && !logprobs->get_bool()))
    return invalid("Unsupported parameter: 'logprobs' is not supported by Gemini models through tollgate.", "logprobs");
  if (member(request, "top_logprobs"))
    return invalid("Unsupported parameter: 'top_logprobs' is not supported by Gemini models through tollgate.",
                   "top_logprobs");
  if (member(request, "audio"))
    return invalid("Unsupported parameter: 'audio' output is not supported by Gemini models through tollgate.",
                   "audio");
  if (const json::value* modalities = member(request, "modalities"); modalities && modalities->is_array()) {
    for (const auto& m : modalities->get_array())
      if (m.is_string() && m.get_string() != "text")
        return invalid("Unsupported parameter: 'modalities' may only contain \"text\" for Gemini models.",
                       "modalities");
  }
  const json::value* n = member(request, "n");
  if (n && !((n->is_int64() && n->get_int64() == 1) || (n->is_uint64() && n->get_uint64() == 1)))
    return invalid("Unsupported value: 'n' must be 1 for Gemini models through tollgate.", "n");
  return std::nullopt;
}

maybe_error response_format(const json::object& request, json::object& config) {
  const json::value* format = member(request, "response_format");
  if (!format) return std::nullopt;
  const auto* fields = format->if_object();
  const json::value* type = fields ? member(*fields, "type") : nullptr;
  std::string_view kind = type && type->is_string() ? std::string_view(type->get_string()) : std::string_view();
  if (kind == "text") return std::nullopt;
  if (kind == "json_object") {
    config["responseMimeType"] = "application/json";
    return std::nullopt;
  }
  if (kind == "json_schema") {
    config["responseMimeType"] = "application/json";
    const json::value* spec = member(*fields, "json_schema");
    const json::value* schema = spec && spec->is_object() ? member(spec->get_object(), "schema") : nullptr;
    if (schema) config["responseSchema"] = gemini_schema(*schema);
    return std::nullopt;
  }
  return invalid("Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
                 "response_format.type");
}

maybe_error generation_config(const json::object& request, json::object& config) {
  if (auto error = refuse_unsupported(request)) return error;
  // max_completion_tokens replaced max_tokens; the newer name wins when both are sent.
  const char* max_name = member(request, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (auto error = copy_number(request, max_name, "maxOutputTokens", true, config)) return error;
  if (auto error = copy_number(request, "temperature", "temperature", false, config)) return error;
  if (auto error = copy_number(request, "top_p", "topP", false, config)) return error;
  if (auto error = copy_number(request, "n", "candidateCount", true, config)) return error;
  if (auto error = copy_number(request, "seed", "seed", true, config)) return error;
  if (auto error = copy_number(request, "presence_penalty", "presencePenalty", false, config)) return error;
  if (auto error = copy_number(request, "frequency_penalty", "frequencyPenalty", false, config)) return error;
  if (const json::value* stop = member(request, "stop")) {
    json::array sequences;
    if (stop->is_string())
      sequences.push_back(*stop);
    else if (stop->is_array())
      sequences = stop->get_array();
    bool strings = std::all_of(sequences.begin(), sequences.end(), [](const json::value& s) { return s.is_string(); });
    if ((!stop->is_string() && !stop->is_array()) || !strings)
      return invalid("Invalid type for 'stop': expected a string or an array of strings.", "stop");
    if (!sequences.empty()) config["stopSequences"] = std::move(sequences);
  }
  return response_format(request, config);
}

// ---- tools -------------------------------------------------------------------------------------------

maybe_error function_declarations(const json::array& tools, json::array& declarations) {
  for (std::size_t i = 0; i < tools.size(); ++i) {
    std::string param = indexed("tools", i);
    const auto* tool = tools[i].if_object();
    const json::value* type = tool ? member(*tool, "type") : nullptr;
    const json::value* function = tool ? member(*tool, "function") : nullptr;
    if (!type || !type->is_string() || type->get_string() != "function" || !function || !function->is_object())
      return invalid("Invalid '" + param + "': only tools of type 'function' are supported for Gemini models.", param);
    const auto& fields = function->get_object();
    const json::value* name = member(fields, "name");
    if (!name || !name->is_string() || name->get_string().empty())
      return invalid("Missing required parameter: '" + param + ".function.name'.", param + ".function.name");
    json::object declaration{{"name", name->get_string()}};
    if (const json::value* description = member(fields, "description"); description && description->is_string())
      declaration["description"] = *description;
    if (const json::value* parameters = member(fields, "parameters")) {
      json::object schema = gemini_schema(*parameters);
      // Gemini refuses an OBJECT without properties: a function without parameters omits them.
      const auto* properties = schema.if_contains("properties");
      if (properties && !properties->get_object().empty()) declaration["parameters"] = std::move(schema);
    }
    declarations.push_back(std::move(declaration));
  }
  return std::nullopt;
}

maybe_error tool_config(const json::value& choice, json::object& config) {
  json::object calling;
  if (choice.is_string() && choice.get_string() == "auto") {
    calling["mode"] = "AUTO";
  } else if (choice.is_string() && choice.get_string() == "none") {
    calling["mode"] = "NONE";
  } else if (choice.is_string() && choice.get_string() == "required") {
    calling["mode"] = "ANY";
  } else {
    const auto* fields = choice.if_object();
    const json::value* function = fields ? member(*fields, "function") : nullptr;
    const json::value* name = function && function->is_object() ? member(function->get_object(), "name") : nullptr;
    if (!name || !name->is_string())
      return invalid("Invalid 'tool_choice': expected 'auto', 'none', 'required' or a named function.", "tool_choice");
    calling["mode"] = "ANY";
    calling["allowedFunctionNames"] = json::array{*name};
  }
  config["functionCallingConfig"] = std::move(calling);
  return std::nullopt;
}

maybe_error tools(const json::object& request, json::object& body) {
  const json::value* list = member(request, "tools");
  if (!list) return std::nullopt;
  if (!list->is_array()) return invalid("Invalid type for 'tools': expected an array.", "tools");
  json::array declarations;
  if (auto error = function_declarations(list->get_array(), declarations)) return error;
  if (declarations.empty()) return std::nullopt;
  body["tools"] = json::array{json::object{{"functionDeclarations", std::move(declarations)}}};
  if (const json::value* choice = member(request, "tool_choice")) {
    json::object config;
    if (auto error = tool_config(*choice, config)) return error;
    body["toolConfig"] = std::move(config);
  }
  return std::nullopt;
}

// Model names are path segments; anything beyond the unreserved set is percent-encoded.
std::string model_path(std::string_view model, bool stream) {
  std::string path = "/models/";
  if (model.starts_with("models/")) {
    model.remove_prefix(7);
  } else if (model.starts_with("tunedModels/")) {
    path = "/tunedModels/";
    model.remove_prefix(12);
  }
  constexpr std::string_view hex = "0123456789ABCDEF";
  for (unsigned char c : model) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '.' || c == '_' || c == '~';
    if (unreserved) {
      path.push_back(static_cast<char>(c));
    } else {
      path.push_back('%');
      path.push_back(hex[c >> 4]);
      path.push_back(hex[c & 15]);
    }
  }
  path += stream ? ":streamGenerateContent?alt=sse" : ":generateContent";
  return path;
}

}  // namespace

boost::system::result<upstream_call, openai::request_error> translate_request(const json::object& openai_request,
                                                                              const translation_options& options) {
  if (options.model.empty()) return invalid("No Gemini model is configured for this route.", "model");
  const json::value* messages = member(openai_request, "messages");
  if (!messages || !messages->is_array()) return invalid("Missing required parameter: 'messages'.", "messages");

  contents_builder builder;
  const auto& list = messages->get_array();
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto* message = list[i].if_object();
    if (!message)
      return invalid("Invalid '" + indexed("messages", i) + "': expected an object.", indexed("messages", i));
    if (auto error = builder.add(*message, i)) return *error;
  }
  if (builder.contents().empty())
    return invalid("Invalid 'messages': Gemini needs at least one user or assistant message with content.", "messages");

  json::object body;
  body["contents"] = std::move(builder.contents());
  if (!builder.system_parts().empty())
    body["systemInstruction"] = json::object{{"parts", std::move(builder.system_parts())}};
  if (auto error = tools(openai_request, body)) return *error;
  json::object config;
  if (auto error = generation_config(openai_request, config)) return *error;
  if (!config.empty()) body["generationConfig"] = std::move(config);

  upstream_call call;
  call.path = model_path(options.model, options.stream);
  call.body = json::serialize(body);
  call.framing = stream_framing::sse;
  return call;
}

}  // namespace tollgate::adapters::gemini
