// Real clients: the official OpenAI and Anthropic Node SDKs (tests/sdk/run.mjs) against
// tollgate, whose `openai` and `anthropic` providers are both the fake upstream. What the SDKs
// accept is the compatibility that matters, beyond what our own parsers check.
//
// Needs node (>= 20) and npm. Skipped in a plain integration_tests run (doctest::skip); the
// `sdk` ctest entry runs it with --no-skip, and there a missing node or npm is a failure.
// tests/sdk/node_modules is installed with `npm ci` from the committed package-lock.json when
// it is missing or stale (the npm registry must be reachable then).

#include "tests/integration/helpers.hpp"
#include "tests/support/child_process.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <system_error>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

fs::path sdk_dir() { return fs::path(TOLLGATE_TEST_DATA_DIR).parent_path() / "sdk"; }

std::string joined_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// Runs a tool to completion (bounded); nullopt if it cannot be started at all.
struct tool_result {
  std::optional<int> exit_code;
  std::string output;
};
std::optional<tool_result> run_tool(const std::string& program, std::vector<std::string> args, env_map env,
                                    std::chrono::milliseconds timeout) {
  std::unique_ptr<testing::child_process> child;
  try {
    child = std::make_unique<testing::child_process>(
        program, testing::child_process_options{
                     .args = std::move(args),
                     .env = std::move(env),
                     // npm needs HOME for its cache; the proxy variables in case the registry
                     // is only reachable through one.
                     .inherit_env = {"PATH", "HOME", "LANG", "TMPDIR", "npm_config_cache", "NPM_CONFIG_CACHE",
                                     "npm_config_registry", "NPM_CONFIG_REGISTRY", "HTTP_PROXY", "HTTPS_PROXY",
                                     "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"},
                     .working_directory = sdk_dir().string(),
                 });
  } catch (const std::system_error&) {
    return std::nullopt;
  }
  tool_result r;
  r.exit_code = child->wait_exit(timeout);
  r.output = "stdout:\n" + joined_lines(child->stdout_lines()) + "stderr:\n" + joined_lines(child->stderr_lines());
  return r;
}

TEST_CASE("sdk: the OpenAI and Anthropic Node SDKs work through tollgate" * doctest::skip()) {
  REQUIRE_MESSAGE(fs::exists(sdk_dir() / "package-lock.json"), "missing " << (sdk_dir() / "package-lock.json"));

  const auto node = run_tool("node", {"--version"}, {}, 10s);
  REQUIRE_MESSAGE(node.has_value(),
                  "\n\n*** node is not installed: the SDK test needs Node.js >= 20 and npm "
                  "(scripts/install-deps) ***\n");
  INFO("node --version: " << node->output);
  // npm ci when node_modules is missing or older than the lock file (npm keeps its own copy of
  // the lock in node_modules/.package-lock.json).
  const fs::path installed = sdk_dir() / "node_modules" / ".package-lock.json";
  std::error_code ec;
  if (!fs::exists(installed, ec) ||
      fs::last_write_time(installed, ec) < fs::last_write_time(sdk_dir() / "package-lock.json", ec)) {
    const auto npm = run_tool("npm", {"ci", "--prefer-offline", "--no-audit", "--no-fund"}, {}, 300s);
    REQUIRE_MESSAGE(npm.has_value(), "\n\n*** npm is not installed: the SDK test needs npm (scripts/install-deps) ***\n");
    REQUIRE_MESSAGE(npm->exit_code == std::optional<int>(0), "npm ci in " << sdk_dir() << " failed\n" << npm->output);
  }

  fake_upstream fake;
  const std::string base = "http://127.0.0.1:" + std::to_string(fake.port()) + "/v1";
  tollgate_process proxy({{"TOLLGATE_PROVIDERS", "oa,ant"},
                          {"TOLLGATE_PROVIDER_OA_TYPE", "openai"},
                          {"TOLLGATE_PROVIDER_OA_BASE_URL", base},
                          {"TOLLGATE_PROVIDER_OA_MODELS", "gpt-test"},
                          {"TOLLGATE_PROVIDER_ANT_TYPE", "anthropic"},
                          {"TOLLGATE_PROVIDER_ANT_BASE_URL", base},
                          {"TOLLGATE_PROVIDER_ANT_MODELS", "claude-test"},
                          {"OPENAI_API_KEY", "sk-proxy-openai"},
                          {"ANTHROPIC_API_KEY", "sk-proxy-anthropic"}});

  const auto run = run_tool("node", {"run.mjs"},
                            {{"TOLLGATE_URL", "http://127.0.0.1:" + std::to_string(proxy.port())},
                             {"TOLLGATE_OPENAI_MODEL", "gpt-test"},
                             {"TOLLGATE_ANTHROPIC_MODEL", "claude-test"}},
                            60s);
  REQUIRE(run.has_value());
  CHECK_MESSAGE(run->exit_code == std::optional<int>(0), "node run.mjs failed:\n" << run->output);
  CHECK_MESSAGE(run->output.find(" passed, 0 failed") != std::string::npos, run->output);

  // The SDKs' own keys never reached the provider: tollgate's did.
  for (const auto& r : fake.requests()) {
    INFO(r.target);
    if (r.target == "/v1/messages") CHECK(header(r, "x-api-key") == "sk-proxy-anthropic");
    else CHECK(header(r, "authorization") == "Bearer sk-proxy-openai");
  }
  CHECK(fake.stats().requests >= 10);
  expect_clean_exit(proxy);
}

}  // namespace
}  // namespace tollgate::itest
