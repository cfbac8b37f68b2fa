// The command line and the environment: --help, --print-config, invalid values. These run the
// binary directly (no fake, no ports) and read its exit code and output.

#include "tests/integration/helpers.hpp"
#include "tests/support/child_process.hpp"

#include <doctest/doctest.h>

#include <algorithm>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;
using testing::child_process;
using testing::child_process_options;

struct run_result {
  std::optional<int> code;
  std::vector<std::string> out;
  std::vector<std::string> err;
  std::string err_text;
};

run_result run_tollgate(std::vector<std::string> args, env_map env = {}) {
  child_process_options options;
  options.args = std::move(args);
  options.env = std::move(env);
  options.inherit_env = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
  child_process child(TOLLGATE_BINARY, std::move(options));
  run_result r;
  r.code = child.wait_exit(5s);
  r.out = child.stdout_lines();
  r.err = child.stderr_lines();
  r.err_text = child.stderr_text();
  return r;
}

bool contains(const std::vector<std::string>& lines, std::string_view text) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(text) != std::string::npos; });
}

// Every variable the brief promises, so a variable dropped from the table fails here too.
const std::vector<std::string> documented_variables = {
    "TOLLGATE_LISTEN",
    "TOLLGATE_METRICS_LISTEN",
    "TOLLGATE_WORKERS",
    "TOLLGATE_UPSTREAM_URL",
    "TOLLGATE_UPSTREAM_TIMEOUT_MS",
    "TOLLGATE_STREAM_IDLE_TIMEOUT_MS",
    "TOLLGATE_UPSTREAM_CONNECT_TIMEOUT_MS",
    "TOLLGATE_MAX_BODY_BYTES",
    "TOLLGATE_DRAIN_TIMEOUT_S",
    "TOLLGATE_CLIENT_IDLE_TIMEOUT_MS",
};

TEST_CASE("cli: --print-config prints NAME=value lines and masks the API key") {
  const std::string key = "sk-abcdefghijklmnopqrstu1234";  // 28 chars
  REQUIRE(key.size() == 28);
  const auto r = run_tollgate({"--print-config"}, {{"OPENAI_API_KEY", key},
                                                   {"TOLLGATE_WORKERS", "3"},
                                                   {"TOLLGATE_UPSTREAM_TIMEOUT_MS", "1234"}});
  REQUIRE(r.code.has_value());
  CHECK(*r.code == 0);
  INFO("stderr: " << r.err_text);
  CHECK(contains(r.out, "TOLLGATE_WORKERS=3"));
  CHECK(contains(r.out, "TOLLGATE_UPSTREAM_TIMEOUT_MS=1234"));
  CHECK(std::find(r.out.begin(), r.out.end(), "OPENAI_API_KEY=sk-\xE2\x80\xA6" "1234 (28 chars)") != r.out.end());
  for (const auto& name : documented_variables) {
    INFO(name);
    CHECK(std::any_of(r.out.begin(), r.out.end(), [&](const std::string& l) { return l.starts_with(name + "="); }));
  }
  for (const auto& line : r.out) {
    INFO(line);
    CHECK(line.find('=') != std::string::npos);
    CHECK(line.find(key) == std::string::npos);
  }
  CHECK_FALSE(contains(r.err, key));
}

TEST_CASE("cli: --help lists every TOLLGATE_ variable with its default") {
  const auto help = run_tollgate({"--help"});
  REQUIRE(help.code.has_value());
  CHECK(*help.code == 0);
  const auto config = run_tollgate({"--print-config"});
  REQUIRE(config.code == std::optional<int>(0));

  std::vector<std::string> names = documented_variables;
  for (const auto& line : config.out) {
    if (line.starts_with("TOLLGATE_")) names.push_back(line.substr(0, line.find('=')));
  }
  for (const auto& name : names) {
    INFO(name);
    // The line that introduces the variable (descriptions may mention others).
    const auto it = std::find_if(help.out.begin(), help.out.end(), [&](const std::string& l) {
      const std::size_t first = l.find_first_not_of(" \t");
      return first != std::string::npos && l.compare(first, name.size() + 1, name + " ") == 0;
    });
    REQUIRE(it != help.out.end());
    CHECK(it->find("default") != std::string::npos);
  }
}

TEST_CASE("cli: an invalid value exits with code 2 and names the variable") {
  struct row {
    std::string variable;
    std::string value;
  };
  const row rows[] = {
      {"TOLLGATE_WORKERS", "abc"},
      {"TOLLGATE_MAX_BODY_BYTES", "100"},  // below the 1024 minimum
      {"TOLLGATE_UPSTREAM_URL", "ftp://example.com/v1"},
      {"TOLLGATE_UPSTREAM_TIMEOUT_MS", "-5"},
      {"TOLLGATE_STREAM_IDLE_TIMEOUT_MS", "soon"},
      {"TOLLGATE_LISTEN", "no-port-here"},
  };
  for (const auto& r : rows) {
    INFO(r.variable);
    INFO(r.value);
    // Both the normal start and --print-config validate before doing anything.
    for (const auto& args : {std::vector<std::string>{}, std::vector<std::string>{"--print-config"}}) {
      CAPTURE(args.size());
      const auto result = run_tollgate(args, {{r.variable, r.value},
                                              {"TOLLGATE_LISTEN", r.variable == "TOLLGATE_LISTEN"
                                                                      ? r.value
                                                                      : "127.0.0.1:0"},
                                              {"TOLLGATE_METRICS_LISTEN", "127.0.0.1:0"}});
      REQUIRE(result.code.has_value());
      CHECK(*result.code == 2);
      INFO("stderr: " << result.err_text);
      CHECK(result.err_text.find(r.variable) != std::string::npos);
      CHECK(result.out.empty());
    }
  }
}

TEST_CASE("cli: an unknown argument exits with code 2") {
  const auto r = run_tollgate({"--frobnicate"});
  REQUIRE(r.code.has_value());
  CHECK(*r.code == 2);
  CHECK(r.err_text.find("--frobnicate") != std::string::npos);
  CHECK(r.out.empty());
}

}  // namespace
}  // namespace tollgate::itest
