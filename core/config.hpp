#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

struct config {
  host_port listen;
  host_port metrics_listen;
  unsigned workers = 1;
  upstream_url upstream;
  std::string upstream_api_key_env;
  std::string upstream_api_key;  // secret: never logged, masked by describe()
  std::chrono::milliseconds upstream_connect_timeout{};
  std::chrono::milliseconds upstream_timeout{};
  std::chrono::milliseconds stream_idle_timeout{};
  std::chrono::milliseconds client_idle_timeout{};
  std::chrono::seconds drain_timeout{};
  std::size_t max_body_bytes = 0;
  std::size_t max_sse_event_bytes = 0;
  std::size_t upstream_pool_size = 0;
  bool access_log = true;
};

struct config_error {
  std::string variable;
  std::string message;
};

// The environment as seen by the loader; injected so tests never touch the real one.
using env_lookup = std::function<std::optional<std::string>(std::string_view name)>;

// Every TOLLGATE_* variable is described once, here: the loader, --help and
// --print-config all walk this table.
struct setting {
  std::string_view name;
  std::string_view default_value;
  std::string_view help;
};

std::span<const setting> settings();

// cpu_count resolves TOLLGATE_WORKERS=0 ("one per core").
boost::system::result<config, config_error> load_config(const env_lookup& env, unsigned cpu_count);

// "NAME=value" lines of the effective configuration, secrets masked.
std::vector<std::string> describe(const config& cfg);

// TOLLGATE_* names present in the environment that no setting knows: almost always typos.
std::vector<std::string> unknown_variables(std::span<const std::string> environment_names);

// "sk-…abcd (51 chars)": enough to tell keys apart in a support ticket, useless to an attacker.
std::string mask_secret(std::string_view secret);

}  // namespace tollgate::core
