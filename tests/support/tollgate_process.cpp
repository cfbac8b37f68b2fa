#include "tests/support/tollgate_process.hpp"

#include <filesystem>
#include <stdlib.h>

#include <boost/json.hpp>

#include <csignal>
#include <stdexcept>

namespace tollgate::testing {
namespace {

using namespace std::chrono_literals;

bool is_event(std::string_view line, std::string_view event) {
  // Cheap filter before parsing: most lines are not the one we look for.
  if (line.find(event) == std::string_view::npos) return false;
  auto obj = parse_json_object(line);
  if (!obj) return false;
  const auto* e = obj->if_contains("event");
  return e != nullptr && e->is_string() && e->get_string() == event;
}

// "127.0.0.1:43817" or "[::1]:43817" -> 43817; 0 when absent or malformed.
std::uint16_t port_of(const boost::json::object& started, std::string_view key) {
  const auto* v = started.if_contains(key);
  if (v == nullptr || !v->is_string()) return 0;
  const std::string_view s = v->get_string();
  const std::size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return 0;
  unsigned long port = 0;
  for (char c : s.substr(colon + 1)) {
    if (c < '0' || c > '9') return 0;
    port = port * 10 + static_cast<unsigned long>(c - '0');
    if (port > 65535) return 0;
  }
  return static_cast<std::uint16_t>(port);
}

}  // namespace

std::optional<boost::json::object> parse_json_object(std::string_view line) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(line, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

tollgate_process::tollgate_process(std::string binary,
                                   std::map<std::string, std::string> env_overrides,
                                   std::vector<std::string> args,
                                   std::chrono::milliseconds startup_timeout) {
  child_process_options options;
  options.args = std::move(args);
  options.env = {{"TOLLGATE_LISTEN", "127.0.0.1:0"},
                 {"TOLLGATE_METRICS_LISTEN", "127.0.0.1:0"},
                 {"TOLLGATE_WORKERS", "2"}};
  for (auto& [name, value] : env_overrides) {
    if (value.empty()) {
      options.env.erase(name);
    } else {
      options.env[name] = std::move(value);
    }
  }
  if (!options.env.contains("TOLLGATE_DB_PATH")) {
    char pattern[] = "/tmp/tollgate-test-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed for the test ledger");
    temp_dir_ = pattern;
    options.env["TOLLGATE_DB_PATH"] = temp_dir_ + "/tollgate.db";
  }
  db_path_ = options.env["TOLLGATE_DB_PATH"];
  options.inherit_env = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"};
  process_ = std::make_unique<child_process>(binary, std::move(options));

  // Returns early when stdout ends (the process died) instead of sitting out the timeout.
  const auto line = process_->wait_for_line(
      [](std::string_view l) { return is_event(l, "started"); }, startup_timeout);
  if (!line) {
    std::string what;
    if (auto code = process_->wait_exit(500ms)) {
      what = "tollgate exited with code " + std::to_string(*code) + " before it was ready";
    } else {
      what = "tollgate did not print its started line within " +
             std::to_string(startup_timeout.count()) + " ms";
    }
    std::string out;
    for (const auto& l : process_->stdout_lines()) out += l + "\n";
    throw std::runtime_error(what + " (" + binary + ")\n--- stdout:\n" + out +
                             "--- stderr:\n" + process_->stderr_text());
  }
  started_ = *parse_json_object(*line);
  port_ = port_of(started_, "listen");
  metrics_port_ = port_of(started_, "metrics_listen");
  if (port_ == 0) {
    throw std::runtime_error("tollgate's started line has no usable \"listen\": " + *line);
  }
}

tollgate_process::~tollgate_process() {
  process_.reset();  // SIGKILL and reap first: the process may still hold the files
  if (!temp_dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(temp_dir_, ignored);
  }
}

std::optional<int> tollgate_process::stop(std::chrono::milliseconds timeout) {
  process_->signal(SIGTERM);
  return process_->wait_exit(timeout);
}

std::vector<boost::json::object> tollgate_process::log_records() const {
  std::vector<boost::json::object> records;
  for (const auto& line : process_->stdout_lines()) {
    if (!is_event(line, "request")) continue;
    records.push_back(*parse_json_object(line));
  }
  return records;
}

std::vector<boost::json::object> tollgate_process::wait_for_log_records(
    std::size_t count, std::chrono::milliseconds timeout) const {
  process_->wait_for_lines(
      [count](const std::vector<std::string>& lines) {
        std::size_t n = 0;
        for (const auto& l : lines) n += is_event(l, "request") ? 1 : 0;
        return n >= count;
      },
      timeout);
  return log_records();
}

}  // namespace tollgate::testing
