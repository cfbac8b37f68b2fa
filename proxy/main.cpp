#include "core/config.hpp"
#include "proxy/server.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace {

constexpr std::string_view version = "0.1.0";

void print_help() {
  std::printf(
      "tollgate %.*s: a sidecar proxy for LLM API traffic.\n\n"
      "Usage: tollgate [--help | --print-config | --version]\n\n"
      "Configured only through environment variables:\n\n",
      static_cast<int>(version.size()), version.data());
  for (const auto& s : tollgate::core::settings()) {
    std::printf("  %.*s (default: %.*s)\n      %.*s\n", static_cast<int>(s.name.size()), s.name.data(),
                static_cast<int>(s.default_value.size()), s.default_value.data(), static_cast<int>(s.help.size()),
                s.help.data());
  }
  std::printf("  OPENAI_API_KEY (or the variable named by TOLLGATE_UPSTREAM_API_KEY_ENV)\n"
              "      The upstream API key. Never logged; masked by --print-config.\n");
}

std::vector<std::string> environment_names() {
  std::vector<std::string> names;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view text(*entry);
    names.emplace_back(text.substr(0, text.find('=')));
  }
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  bool print_config = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_help();
      return 0;
    }
    if (arg == "--version") {
      std::printf("tollgate %.*s\n", static_cast<int>(version.size()), version.data());
      return 0;
    }
    if (arg == "--print-config") {
      print_config = true;
      continue;
    }
    std::fprintf(stderr, "tollgate: unknown argument \"%s\" (try --help)\n", argv[i]);
    return 2;
  }

  auto env = [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  };
  auto config = tollgate::core::load_config(env, std::thread::hardware_concurrency());
  if (!config) {
    std::fprintf(stderr, "tollgate: invalid %s: %s\n", config.error().variable.c_str(), config.error().message.c_str());
    return 2;
  }
  for (const auto& name : tollgate::core::unknown_variables(environment_names()))
    std::fprintf(stderr, "tollgate: warning: ignoring unknown variable %s (a typo?)\n", name.c_str());
  if (print_config) {
    for (const auto& line : tollgate::core::describe(*config)) std::printf("%s\n", line.c_str());
    return 0;
  }

  // A client that hangs up must surface as an error code on the write, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return tollgate::proxy::run_server(*config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tollgate: %s\n", e.what());
    return 1;
  }
}
