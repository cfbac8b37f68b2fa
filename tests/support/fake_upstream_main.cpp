// Standalone fake provider for the benchmark (and for poking at by hand):
//   fake_upstream [--host H] [--port P] [--threads N] [--tls CERT KEY]
// Prints "listening HOST:PORT" once ready and serves until SIGTERM or SIGINT.

#include "tests/support/fake_upstream.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: fake_upstream [--host H] [--port P] [--threads N] [--tls CERT KEY]\n");
  std::exit(2);
}

int to_int(const char* s, int lo, int hi) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) usage();
  return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  tollgate::testing::fake_upstream_options options;
  options.record_requests = false;  // keeps the hot path free of the recording mutex
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--host" && has_value) {
      options.host = argv[++i];
    } else if (arg == "--port" && has_value) {
      options.port = static_cast<std::uint16_t>(to_int(argv[++i], 0, 65535));
    } else if (arg == "--threads" && has_value) {
      options.threads = to_int(argv[++i], 1, 256);
    } else if (arg == "--tls" && i + 2 < argc) {
      options.tls_cert_file = argv[++i];
      options.tls_key_file = argv[++i];
    } else {
      usage();
    }
  }

  // Block the signals before any thread starts so they all inherit the mask and sigwait()
  // below is the only place that receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    tollgate::testing::fake_upstream upstream(options);
    std::printf("listening %s:%u\n", options.host.c_str(), static_cast<unsigned>(upstream.port()));
    std::fflush(stdout);
    int received = 0;
    sigwait(&signals, &received);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake_upstream: %s\n", e.what());
    return 1;
  }
  return 0;
}
