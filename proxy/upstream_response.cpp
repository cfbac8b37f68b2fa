#include "proxy/upstream_response.hpp"

#include <algorithm>

namespace tollgate::proxy {
namespace {

// A rare huge body piece should not pin its memory for the life of the pooled connection.
constexpr std::size_t max_kept_body_bytes = 64 * 1024;

bool has_no_body(int status) noexcept { return status < 200 || status == 204 || status == 304; }

}  // namespace

void upstream_response::reset(header_arena& arena, std::size_t max_header_bytes) {
  arena_ = &arena;
  max_header_bytes_ = max_header_bytes;
  general_.reset();
  head_.reset(0);
  status_ = 0;
  got_some_ = header_done_ = done_ = keep_alive_ = false;
  framing_ = core::body_framing::none;
  length_ = remaining_ = 0;
  chunks_ = {};
  if (body_.capacity() > max_kept_body_bytes) body_ = std::string();
  body_.clear();
}

std::optional<std::uint64_t> upstream_response::content_length() const noexcept {
  if (framing_ == core::body_framing::length) return length_;
  if (framing_ == core::body_framing::none) return 0;
  return std::nullopt;
}

std::size_t upstream_response::put(net::const_buffer bytes, error_code& ec) {
  ec = {};
  const std::string_view input(static_cast<const char*>(bytes.data()), bytes.size());
  if (!input.empty()) got_some_ = true;
  if (!header_done_) return put_head(input, ec);
  switch (framing_) {
    case core::body_framing::length: {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, input.size()));
      body_.append(input.data(), n);
      remaining_ -= n;
      done_ = remaining_ == 0;
      return n;
    }
    case core::body_framing::chunked: {
      const auto step = chunks_.decode(input, body_);
      if (step.what == core::chunked_decoder::status::invalid) ec = http::error::bad_chunk;
      done_ = step.what == core::chunked_decoder::status::done;
      return step.consumed;
    }
    case core::body_framing::until_close:
      body_.append(input);
      return input.size();
    case core::body_framing::none:
      break;
  }
  return 0;
}

void upstream_response::put_eof(error_code& ec) {
  ec = {};
  if (header_done_ && framing_ == core::body_framing::until_close) done_ = true;
  if (!done_) ec = http::error::partial_message;
}

std::size_t upstream_response::put_head(std::string_view bytes, error_code& ec) {
  if (general_) return put_head_generally(bytes, ec);
  core::response_head head;
  switch (core::read_response_head(bytes, head)) {
    case core::head_status::incomplete:
      ec = bytes.size() >= max_header_bytes_ ? http::error::header_limit : http::error::need_more;
      return 0;
    case core::head_status::unusual:
      break;
    case core::head_status::complete:
      if (head.head_bytes > max_header_bytes_) break;  // Beast's parser reports the limit
      head_.adopt(bytes.substr(0, head.head_bytes), head.headers);
      status_ = head.status;
      keep_alive_ = head.keep_alive;
      begin_body(head.framing, head.content_length);
      return head.head_bytes;
  }
  general_.emplace(std::piecewise_construct, std::make_tuple(), std::make_tuple(arena_allocator<char>(*arena_)));
  general_->header_limit(static_cast<std::uint32_t>(max_header_bytes_));
  return put_head_generally(bytes, ec);
}

std::size_t upstream_response::put_head_generally(std::string_view bytes, error_code& ec) {
  // Not eager: Beast stops right after the head, and the body is delimited here.
  const std::size_t used = general_->put(net::buffer(bytes.data(), bytes.size()), ec);
  if (ec || !general_->is_header_done()) return used;
  const auto& message = general_->get();
  head_.reset(header_block::text_bytes_of(message));
  head_.add_parsed(message);
  status_ = message.result_int();
  keep_alive_ = general_->keep_alive();
  if (has_no_body(status_)) begin_body(core::body_framing::none, 0);
  else if (general_->chunked()) begin_body(core::body_framing::chunked, 0);
  else if (auto length = general_->content_length()) begin_body(core::body_framing::length, *length);
  else begin_body(core::body_framing::until_close, 0);
  general_.reset();
  return used;
}

void upstream_response::begin_body(core::body_framing framing, std::uint64_t length) {
  header_done_ = true;
  framing_ = framing;
  length_ = remaining_ = length;
  done_ = framing == core::body_framing::none || (framing == core::body_framing::length && length == 0);
  if (framing == core::body_framing::until_close) keep_alive_ = false;
}

}  // namespace tollgate::proxy
