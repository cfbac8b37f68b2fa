#pragma once

// Runs a binary under test as a child process with an explicit environment, capturing its
// stdout and stderr line by line (reader threads drain the pipes, so a chatty child never
// blocks on a full pipe). Every wait is bounded; the destructor SIGKILLs and reaps the child if
// it is still running. Only this child is ever signalled: never its process group, never by
// name.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace tollgate::testing {

struct child_process_options {
  // Every member has a default member initializer: GCC 12 -Wextra then accepts designated
  // initializers that name only some of them, e.g. {.args = {"-c", "true"}}.
  std::vector<std::string> args{};            // argv[1..]
  std::map<std::string, std::string> env{};   // the child's environment, nothing else ...
  std::vector<std::string> inherit_env{};     // ... plus these of ours (when set and not in env),
                                              // e.g. {"PATH", "HOME", "LANG"}
  std::string working_directory{};            // empty: ours
  // PR_SET_PDEATHSIG: the child gets SIGKILL if the thread that spawned it exits, so a crashed
  // or killed test run leaves no proxy behind. Linux ties this to the spawning *thread*: spawn
  // from a thread that outlives the child (the main thread in doctest), or turn it off.
  bool kill_with_parent = true;
};

class child_process {
 public:
  // Starts `program` (a path; without a '/', looked up in our PATH). Throws std::system_error
  // if it cannot be started (including exec failing in the child).
  child_process(std::string program, child_process_options options);
  ~child_process();

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const;

  // The first line (without its '\n') matching pred, among the lines already seen or arriving
  // before the timeout. nullopt on timeout or when the stream ended without a match. pred runs
  // under an internal lock: it must not call back into this object.
  std::optional<std::string> wait_for_line(std::function<bool(std::string_view)> pred,
                                           std::chrono::milliseconds timeout,
                                           bool stderr_stream = false) const;
  // Waits until pred(all lines so far) holds; false on timeout or end of stream without it.
  bool wait_for_lines(std::function<bool(const std::vector<std::string>&)> pred,
                      std::chrono::milliseconds timeout, bool stderr_stream = false) const;

  std::vector<std::string> stdout_lines() const;
  std::vector<std::string> stderr_lines() const;
  std::string stderr_text() const;  // stderr lines joined with '\n', for failure messages

  // Sends a signal to the child unless it has already been reaped; false if not sent.
  bool signal(int sig);
  // Exit code, or 128 + signal number if it was killed by a signal; nullopt on timeout.
  // After the child exits, also waits (within the same timeout) for its output to be drained,
  // so stdout_lines() is complete.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // Non-blocking: has the child exited (and been reaped)?
  bool running();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tollgate::testing
