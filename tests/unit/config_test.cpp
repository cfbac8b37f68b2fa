#include "core/config.hpp"
#include "tests/unit/env_map.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>

namespace {

using tollgate::core::load_config;
using tollgate::testing::env_of;

}  // namespace

TEST_CASE("config: defaults describe a loopback sidecar in front of OpenAI") {
  auto cfg = load_config(env_of({}), 4);
  REQUIRE(cfg.has_value());
  CHECK(cfg->listen.host == "127.0.0.1");
  CHECK(cfg->listen.port == 8080);
  CHECK(cfg->metrics_listen.to_string() == "0.0.0.0:9464");
  CHECK(cfg->workers == 4);  // 0 = one per core
  CHECK(cfg->upstream.tls);
  CHECK(cfg->upstream.host == "api.openai.com");
  CHECK(cfg->upstream.port == 443);
  CHECK(cfg->upstream.base_path == "/v1");
  CHECK(cfg->upstream_api_key_env == "OPENAI_API_KEY");
  CHECK(cfg->upstream_api_key.empty());
  CHECK(cfg->max_body_bytes == 4u * 1024 * 1024);
  CHECK(cfg->drain_timeout.count() == 20);
  CHECK(cfg->access_log);
}

TEST_CASE("config: every documented default parses (the table is self-consistent)") {
  std::map<std::string, std::string> all;
  for (const auto& s : tollgate::core::settings()) all[std::string(s.name)] = std::string(s.default_value);
  CHECK(load_config(env_of(all), 1).has_value());
  CHECK(tollgate::core::settings().size() >= 14);
}

TEST_CASE("config: values are parsed") {
  auto cfg = load_config(env_of({{"TOLLGATE_LISTEN", "[::1]:9000"},
                                 {"TOLLGATE_WORKERS", "3"},
                                 {"TOLLGATE_UPSTREAM_URL", "http://127.0.0.1:8000/v1/"},
                                 {"TOLLGATE_UPSTREAM_API_KEY_ENV", "VLLM_KEY"},
                                 {"VLLM_KEY", "secret-key-123456"},
                                 {"TOLLGATE_STREAM_IDLE_TIMEOUT_MS", "250"},
                                 {"TOLLGATE_ACCESS_LOG", "false"}}),
                         8);
  REQUIRE(cfg.has_value());
  CHECK(cfg->listen.host == "::1");
  CHECK(cfg->listen.port == 9000);
  CHECK(cfg->listen.to_string() == "[::1]:9000");
  CHECK(cfg->workers == 3);
  CHECK_FALSE(cfg->upstream.tls);
  CHECK(cfg->upstream.host == "127.0.0.1");
  CHECK(cfg->upstream.port == 8000);
  CHECK(cfg->upstream.base_path == "/v1");  // trailing slash dropped
  CHECK(cfg->upstream.to_string() == "http://127.0.0.1:8000/v1");
  CHECK(cfg->upstream_api_key == "secret-key-123456");
  CHECK(cfg->stream_idle_timeout.count() == 250);
  CHECK_FALSE(cfg->access_log);
}

TEST_CASE("config: IPv6 upstream literal loses its URL brackets") {
  auto cfg = load_config(env_of({{"TOLLGATE_UPSTREAM_URL", "https://[::1]:8443"}}), 1);
  REQUIRE(cfg.has_value());
  CHECK(cfg->upstream.host == "::1");
  CHECK(cfg->upstream.base_path.empty());
  CHECK(cfg->upstream.to_string() == "https://[::1]:8443");
}

TEST_CASE("config: an invalid value names the variable") {
  struct row {
    const char* name;
    const char* value;
    const char* message_part;
  };
  const row rows[] = {
      {"TOLLGATE_LISTEN", "8080", "host:port"},
      {"TOLLGATE_LISTEN", ":8080", "missing host"},
      {"TOLLGATE_LISTEN", "localhost:99999", "between 0 and 65535"},
      {"TOLLGATE_LISTEN", "[::1:80", "[ipv6]:port"},
      {"TOLLGATE_WORKERS", "many", "whole number"},
      {"TOLLGATE_WORKERS", "-1", "whole number"},
      {"TOLLGATE_WORKERS", "1000", "between 0 and 256"},
      {"TOLLGATE_UPSTREAM_URL", "api.openai.com", "absolute URL"},
      {"TOLLGATE_UPSTREAM_URL", "ftp://x/v1", "http or https"},
      {"TOLLGATE_UPSTREAM_URL", "https://user:pw@x/v1", "credentials"},
      {"TOLLGATE_UPSTREAM_URL", "https://x/v1?a=b", "query"},
      {"TOLLGATE_UPSTREAM_TIMEOUT_MS", "0", "between 1"},
      {"TOLLGATE_UPSTREAM_TIMEOUT_MS", "10s", "whole number"},
      {"TOLLGATE_MAX_BODY_BYTES", "", "whole number"},
      {"TOLLGATE_MAX_BODY_BYTES", "12", "between 1024"},
      {"TOLLGATE_ACCESS_LOG", "maybe", "true or false"},
      {"TOLLGATE_UPSTREAM_API_KEY_ENV", "", "must name"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    CAPTURE(r.value);
    auto cfg = load_config(env_of({{r.name, r.value}}), 1);
    REQUIRE_FALSE(cfg.has_value());
    CHECK(cfg.error().variable == r.name);
    CHECK(cfg.error().message.find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("config: describe masks the API key and shows effective values") {
  auto cfg = load_config(env_of({{"OPENAI_API_KEY", "sk-proj-abcdefghijklmnop1234"}}), 2);
  REQUIRE(cfg.has_value());
  std::string all;
  for (const auto& line : tollgate::core::describe(*cfg)) all += line + "\n";
  CHECK(all.find("abcdefghijklmnop") == std::string::npos);
  CHECK(all.find("OPENAI_API_KEY=sk-…1234 (28 chars)") != std::string::npos);
  CHECK(all.find("TOLLGATE_WORKERS=2\n") != std::string::npos);
  CHECK(all.find("TOLLGATE_UPSTREAM_URL=https://api.openai.com/v1\n") != std::string::npos);
  CHECK(tollgate::core::mask_secret("") == "(unset)");
  CHECK(tollgate::core::mask_secret("short") == "… (5 chars)");
}

TEST_CASE("config: unknown TOLLGATE_ variables are reported, others ignored") {
  std::vector<std::string> names = {"PATH", "TOLLGATE_WORKERS", "TOLLGATE_WORKER", "TOLLGATE_LISTNE", "HOME"};
  auto unknown = tollgate::core::unknown_variables(names);
  REQUIRE(unknown.size() == 2);
  CHECK(unknown[0] == "TOLLGATE_WORKER");
  CHECK(unknown[1] == "TOLLGATE_LISTNE");
}
