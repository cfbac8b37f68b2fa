#pragma once

#include "proxy/header_block.hpp"

#include <string>
#include <string_view>

namespace tollgate::proxy {

// A client's request as the data plane sees it: method, target, header lines and body. One per
// connection, reused from request to request.
class client_request {
 public:
  // Starts the next request, with room for `head_bytes` of kept head text (see header_block).
  void reset(std::size_t head_bytes) {
    // A body far larger than usual is not kept for the life of the connection.
    if (body_.capacity() > max_kept_body_bytes) body_ = std::string();
    body_.clear();
    head_.reset(head_bytes);
    method_ = http::verb::unknown;
    method_string_ = target_ = {};
    http11_ = true;
  }
  header_block& head() noexcept { return head_; }
  const header_block& head() const noexcept { return head_; }
  // Views into head().keep()'s copies.
  void set_line(std::string_view method, std::string_view target, bool http11) {
    method_ = http::string_to_verb(method);
    method_string_ = method;
    target_ = target;
    http11_ = http11;
  }

  http::verb method() const noexcept { return method_; }
  std::string_view method_string() const noexcept { return method_string_; }
  std::string_view target() const noexcept { return target_; }
  bool http11() const noexcept { return http11_; }
  std::span<const header_field> fields() const noexcept { return head_.fields(); }

  std::string& body() noexcept { return body_; }
  const std::string& body() const noexcept { return body_; }

 private:
  static constexpr std::size_t max_kept_body_bytes = 64 * 1024;

  header_block head_;
  http::verb method_ = http::verb::unknown;
  std::string_view method_string_;
  std::string_view target_;
  bool http11_ = true;
  std::string body_;
};

}  // namespace tollgate::proxy
