#include "proxy/http_out.hpp"

#include "adapters/openai.hpp"

#include <boost/beast/http/status.hpp>

#include <charconv>

namespace tollgate::proxy::http_out {

void begin_head(std::string& out, int status, bool keep_alive, std::string_view request_id) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += boost::beast::http::obsolete_reason(boost::beast::http::int_to_status(static_cast<unsigned>(status)));
  out += "\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  if (!request_id.empty()) add_header(out, "x-tollgate-request-id", request_id);
}

void add_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

void end_head_with_length(std::string& out, std::size_t content_length) {
  out += "Content-Length: ";
  out += std::to_string(content_length);
  out += "\r\n\r\n";
}

void end_head_chunked(std::string& out) { out += "Transfer-Encoding: chunked\r\n\r\n"; }

std::string_view chunk_header(char (&buffer)[24], std::size_t size) noexcept {
  auto [end, ec] = std::to_chars(buffer, buffer + 20, size, 16);
  end[0] = '\r';
  end[1] = '\n';
  return {buffer, static_cast<std::size_t>(end + 2 - buffer)};
}

std::string error_response(int status, std::string_view message, std::string_view type, std::string_view code,
                           bool keep_alive, std::string_view request_id, std::string_view param) {
  std::string body = adapters::openai::error_body(message, type, code, param);
  std::string out;
  out.reserve(body.size() + 192);
  begin_head(out, status, keep_alive, request_id);
  add_header(out, "Content-Type", "application/json");
  end_head_with_length(out, body.size());
  out += body;
  return out;
}

}  // namespace tollgate::proxy::http_out
