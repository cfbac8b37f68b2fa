#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

namespace tollgate::adapters::gemini {

// JSON Schema (what OpenAI tools and response_format carry) -> Gemini's Schema, an OpenAPI 3.0
// subset. Gemini rejects a whole request on any member it does not know ("additionalProperties",
// "$schema", "strict" ...), which OpenAI clients send all the time. Best effort: keep what Gemini
// understands, turn the two common nullable idioms (["T","null"] and anyOf [T, null]) into
// "nullable", read oneOf as anyOf, keep only string enums and the formats Gemini accepts, drop
// required names without a property, and drop the rest ($ref/$defs cannot be resolved here).
boost::json::object gemini_schema(const boost::json::value& schema);

}  // namespace tollgate::adapters::gemini
