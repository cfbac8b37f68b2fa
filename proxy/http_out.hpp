#pragma once

#include <cstddef>
#include <string>
#include <string_view>

// Response heads and chunk framing written by hand: the proxy relays bodies it does not own,
// and a few appends are cheaper and clearer than driving Beast's serializer piecewise.
namespace tollgate::proxy::http_out {

// "HTTP/1.1 <status> <reason>\r\n" plus the headers tollgate always sets.
void begin_head(std::string& out, int status, bool keep_alive, std::string_view request_id);
void add_header(std::string& out, std::string_view name, std::string_view value);
void end_head_with_length(std::string& out, std::size_t content_length);
void end_head_chunked(std::string& out);

// Hex chunk-size line for `size` bytes, e.g. "1a\r\n"; returns the used prefix of `buffer`.
std::string_view chunk_header(char (&buffer)[24], std::size_t size) noexcept;
inline constexpr std::string_view chunk_trailer = "\r\n";
inline constexpr std::string_view last_chunk = "0\r\n\r\n";

// A complete JSON error response in OpenAI's shape.
std::string error_response(int status, std::string_view message, std::string_view type, std::string_view code,
                           bool keep_alive, std::string_view request_id, std::string_view param = {});

}  // namespace tollgate::proxy::http_out
