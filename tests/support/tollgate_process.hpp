#pragma once

// Starts the real tollgate binary on loopback ports chosen by the kernel and waits until it
// says it is ready. The proxy's contract with this harness:
//   - configuration comes from the environment only;
//   - its first stdout line, once it accepts connections, is a JSON object
//       {"event":"started","listen":"127.0.0.1:PORT","metrics_listen":"127.0.0.1:PORT",...}
//   - every later stdout line is a JSON object; access-log records have "event":"request".

#include "tests/support/child_process.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::testing {

class tollgate_process {
 public:
  // Environment defaults, each removed by an override with an empty value:
  //   TOLLGATE_LISTEN=127.0.0.1:0  TOLLGATE_METRICS_LISTEN=127.0.0.1:0  TOLLGATE_WORKERS=2
  //   TOLLGATE_DB_PATH=<a fresh temporary directory>/tollgate.db, removed with the process
  //   object, so tests never share a ledger unless they pass the same path on purpose
  // Sanitizer option variables (ASAN_OPTIONS, ...) are passed through when set; nothing else
  // of the test's environment is.
  // Waits up to startup_timeout for the started line; throws std::runtime_error (with the
  // child's stderr) if the process exits first or the time runs out.
  tollgate_process(std::string binary, std::map<std::string, std::string> env_overrides,
                   std::vector<std::string> args = {},
                   std::chrono::milliseconds startup_timeout = std::chrono::seconds(10));

#ifdef TOLLGATE_BINARY
  // The integration test executable knows where the binary is.
  explicit tollgate_process(std::map<std::string, std::string> env_overrides = {})
      : tollgate_process(TOLLGATE_BINARY, std::move(env_overrides)) {}
#endif

  // SIGKILL if still running (via child_process); call stop() first for a graceful exit.
  ~tollgate_process();

  tollgate_process(const tollgate_process&) = delete;
  tollgate_process& operator=(const tollgate_process&) = delete;

  std::uint16_t port() const { return port_; }
  std::uint16_t metrics_port() const { return metrics_port_; }  // 0 if not reported
  const boost::json::object& started_event() const { return started_; }
  child_process& process() { return *process_; }
  const child_process& process() const { return *process_; }

  // SIGTERM, then wait for the exit code (nullopt on timeout; the destructor then SIGKILLs).
  std::optional<int> stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // The ledger file this process writes.
  const std::string& db_path() const { return db_path_; }

  // Every stdout line that is a JSON object with "event":"request", in order.
  std::vector<boost::json::object> log_records() const;
  // Waits until at least `count` access-log records have been written (they are written when
  // a request is accounted, which can be just after the client saw the response); returns
  // all records seen by then, which may be fewer on timeout.
  std::vector<boost::json::object> wait_for_log_records(
      std::size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

 private:
  std::string temp_dir_;  // the default ledger's directory, "" when the test chose a path
  std::unique_ptr<child_process> process_;
  boost::json::object started_;
  std::uint16_t port_ = 0;
  std::uint16_t metrics_port_ = 0;
  std::string db_path_;
};

// Parses one line as a JSON object; nullopt if it is not one.
std::optional<boost::json::object> parse_json_object(std::string_view line);

}  // namespace tollgate::testing
