#include "adapters/gemini_schema.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>

namespace tollgate::adapters::gemini {
namespace json = boost::json;
namespace {

bool is_allowed_format(std::string_view format) {
  constexpr std::array<std::string_view, 6> formats = {"enum", "date-time", "float", "double", "int32", "int64"};
  return std::find(formats.begin(), formats.end(), format) != formats.end();
}

bool is_copied_keyword(std::string_view key) {
  constexpr std::array<std::string_view, 13> keys = {
      "description", "nullable", "minItems",      "maxItems",      "minimum",          "maximum", "minLength",
      "maxLength",   "pattern",  "minProperties", "maxProperties", "propertyOrdering", "required"};
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

bool is_null_schema(const json::value& schema) {
  const auto* object = schema.if_object();
  const json::value* type = object ? object->if_contains("type") : nullptr;
  return type && type->is_string() && type->get_string() == "null";
}

void convert_any_of(const json::array& options, json::object& out) {
  json::array kept;
  bool nullable = false;
  for (const auto& option : options) {
    if (is_null_schema(option))
      nullable = true;
    else
      kept.push_back(gemini_schema(option));
  }
  if (nullable) out["nullable"] = true;
  if (kept.size() == 1) {  // Optional[X]: X itself, marked nullable
    for (auto& m : kept[0].get_object()) out[m.key()] = std::move(m.value());
  } else if (!kept.empty()) {
    out["anyOf"] = std::move(kept);
  }
}

}  // namespace

json::object gemini_schema(const json::value& schema) {
  json::object out;
  const json::object* in = schema.if_object();
  if (!in) return out;
  for (const auto& m : *in) {
    std::string_view key = m.key();
    const json::value& value = m.value();
    if (key == "type") {
      if (value.is_string()) {
        out["type"] = value;
      } else if (value.is_array()) {  // ["string","null"]
        for (const auto& t : value.get_array()) {
          if (!t.is_string()) continue;
          if (t.get_string() == "null")
            out["nullable"] = true;
          else if (!out.contains("type"))
            out["type"] = t;
        }
      }
    } else if (key == "properties" && value.is_object()) {
      json::object properties;
      for (const auto& p : value.get_object()) properties[p.key()] = gemini_schema(p.value());
      out["properties"] = std::move(properties);
    } else if (key == "items" && value.is_object()) {
      out["items"] = gemini_schema(value);
    } else if ((key == "anyOf" || key == "oneOf") && value.is_array()) {
      convert_any_of(value.get_array(), out);
    } else if (key == "enum" && value.is_array()) {
      const auto& values = value.get_array();
      if (std::all_of(values.begin(), values.end(), [](const json::value& v) { return v.is_string(); }))
        out["enum"] = value;
    } else if (key == "format" && value.is_string()) {
      if (is_allowed_format(value.get_string())) out["format"] = value;
    } else if (is_copied_keyword(key)) {
      out[key] = value;
    }
  }
  // A required name without a property is another whole-request rejection.
  if (auto* required = out.if_contains("required"); required && required->is_array()) {
    const auto* properties = out.if_contains("properties");
    json::array kept;
    for (const auto& name : required->get_array())
      if (name.is_string() && properties && properties->get_object().contains(name.get_string())) kept.push_back(name);
    if (kept.empty())
      out.erase("required");
    else
      *required = std::move(kept);
  }
  return out;
}

}  // namespace tollgate::adapters::gemini
