#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tollgate::core {

struct host_port {
  std::string host;
  std::uint16_t port = 0;

  std::string to_string() const;  // brackets IPv6 literals: "[::1]:8080"
};

// An upstream base URL such as "https://api.openai.com/v1": requests for "/v1/x" go to
// base_path + "/x", the same convention the OpenAI SDKs use for base_url.
struct upstream_url {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string base_path;  // no trailing slash; may be empty

  std::string to_string() const;
};

// "" when `text` is a usable upstream base URL (stored in `out`), else what is wrong with it.
std::string parse_upstream_url(std::string_view text, upstream_url& out);

}  // namespace tollgate::core
