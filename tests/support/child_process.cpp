#include "tests/support/child_process.hpp"

#include <atomic>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace tollgate::testing {
namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

[[noreturn]] void throw_errno(const std::string& what, int err = errno) {
  throw std::system_error(err, std::generic_category(), what);
}

std::string find_in_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const std::size_t colon = dirs.find(':');
    std::string candidate(dirs.substr(0, colon));
    candidate = (candidate.empty() ? "." : candidate) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return program;  // execve reports ENOENT
}

void close_from(int first, int last) {
  if (first > last) return;
  // close_range is one syscall; the loop is the fallback for kernels without it.
  if (::close_range(static_cast<unsigned>(first), static_cast<unsigned>(last), 0) == 0) return;
  for (int fd = first; fd <= last && fd < 65536; ++fd) ::close(fd);
}

struct stream_state {
  std::vector<std::string> lines;
  std::string partial;
  bool eof = false;
};

}  // namespace

struct child_process::impl {
  pid_t pid = -1;
  std::mutex reap_mutex;  // serialises signal() and reaping, so we never signal a reused pid
  std::optional<int> exit_code;

  mutable std::mutex mutex;
  mutable std::condition_variable cv;
  stream_state out, err;
  std::atomic<bool> stop_readers{false};
  int out_fd = -1;
  int err_fd = -1;
  std::thread out_reader, err_reader;

  stream_state& state(bool stderr_stream) { return stderr_stream ? err : out; }
  const stream_state& state(bool stderr_stream) const { return stderr_stream ? err : out; }

  void read_loop(int fd, stream_state& s) {
    char buf[8192];
    for (;;) {
      // poll with a timeout, not a blocking read(): a grandchild that inherited the pipe could
      // keep it open forever, and the destructor must still be able to stop this thread.
      if (stop_readers.load()) break;
      pollfd p{fd, POLLIN, 0};
      const int r = ::poll(&p, 1, 50);
      if (r == 0 || (r < 0 && errno == EINTR)) continue;
      if (r < 0) break;
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) break;
      std::lock_guard lock(mutex);
      s.partial.append(buf, static_cast<std::size_t>(n));
      std::size_t start = 0;
      for (std::size_t nl; (nl = s.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
        s.lines.emplace_back(s.partial, start, nl - start);
      }
      s.partial.erase(0, start);
      cv.notify_all();
    }
    std::lock_guard lock(mutex);
    if (!s.partial.empty()) s.lines.push_back(std::move(s.partial));
    s.partial.clear();
    s.eof = true;
    cv.notify_all();
  }

  // Reaps the child if it has exited; with block, waits for it. Caller holds reap_mutex.
  bool reap(bool block) {
    if (exit_code) return true;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r != pid) return false;
    exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }

  bool wait_eof(clock_type::time_point deadline) {
    std::unique_lock lock(mutex);
    return cv.wait_until(lock, deadline, [&] { return out.eof && err.eof; });
  }
};

child_process::child_process(std::string program, child_process_options options)
    : impl_(std::make_unique<impl>()) {
  // Everything the child needs is built before fork(): after it, only async-signal-safe calls.
  const std::string path = find_in_path(program);
  std::vector<std::string> argv_storage;
  argv_storage.push_back(program);
  for (auto& a : options.args) argv_storage.push_back(a);
  std::map<std::string, std::string> env = options.env;
  for (const auto& name : options.inherit_env) {
    if (const char* v = std::getenv(name.c_str()); v != nullptr) env.emplace(name, v);
  }
  std::vector<std::string> env_storage;
  for (const auto& [k, v] : env) env_storage.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& s : argv_storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);

  // O_CLOEXEC everywhere: a child spawned concurrently by another thread must not inherit our
  // pipe ends, or we would never see EOF.
  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) throw_errno("open /dev/null");
  const pid_t parent = ::getpid();
  const char* workdir = options.working_directory.empty() ? nullptr : options.working_directory.c_str();
  const bool kill_with_parent = options.kill_with_parent;

  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    if (kill_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    }
    // Signal mask and ignored signals survive exec: a test runner that blocks SIGTERM or
    // ignores SIGPIPE must not hand that to the binary under test.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);

    ::dup2(devnull, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    // Close every other inherited descriptor (test sockets above all: a child holding a copy
    // of a test's client socket would hide that socket's close from the server), except the
    // close-on-exec pipe that reports exec failure.
    const int keep = exec_pipe[1];
    close_from(3, keep - 1);
    close_from(keep + 1, INT_MAX);
    if (workdir != nullptr && ::chdir(workdir) != 0) {
      const int e = errno;
      [[maybe_unused]] auto w = ::write(keep, &e, sizeof e);
      ::_exit(127);
    }
    ::execve(path.c_str(), argv.data(), envp.data());
    const int e = errno;
    [[maybe_unused]] auto w = ::write(keep, &e, sizeof e);
    ::_exit(127);
  }

  ::close(devnull);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  impl_->pid = pid;
  impl_->out_fd = out_pipe[0];
  impl_->err_fd = err_pipe[0];

  // EOF on the exec pipe means exec succeeded (close-on-exec); an int means it failed.
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    {
      std::lock_guard lock(impl_->reap_mutex);
      impl_->reap(true);
    }
    ::close(impl_->out_fd);
    ::close(impl_->err_fd);
    throw_errno("cannot start " + path, child_errno);
  }

  impl_->out_reader = std::thread([this] { impl_->read_loop(impl_->out_fd, impl_->out); });
  impl_->err_reader = std::thread([this] { impl_->read_loop(impl_->err_fd, impl_->err); });
}

child_process::~child_process() {
  {
    std::lock_guard lock(impl_->reap_mutex);
    if (!impl_->reap(false)) {
      ::kill(impl_->pid, SIGKILL);
      impl_->reap(true);
    }
  }
  // Give the readers a moment to drain what the child wrote last, then stop them regardless.
  impl_->wait_eof(clock_type::now() + 1s);
  impl_->stop_readers = true;
  if (impl_->out_reader.joinable()) impl_->out_reader.join();
  if (impl_->err_reader.joinable()) impl_->err_reader.join();
  ::close(impl_->out_fd);
  ::close(impl_->err_fd);
}

pid_t child_process::pid() const { return impl_->pid; }

std::optional<std::string> child_process::wait_for_line(std::function<bool(std::string_view)> pred,
                                                        std::chrono::milliseconds timeout,
                                                        bool stderr_stream) const {
  const auto deadline = clock_type::now() + timeout;
  std::unique_lock lock(impl_->mutex);
  const stream_state& s = impl_->state(stderr_stream);
  std::size_t next = 0;
  for (;;) {
    for (; next < s.lines.size(); ++next) {
      if (pred(s.lines[next])) return s.lines[next];
    }
    if (s.eof) return std::nullopt;
    if (impl_->cv.wait_until(lock, deadline) == std::cv_status::timeout) {
      for (; next < s.lines.size(); ++next) {
        if (pred(s.lines[next])) return s.lines[next];
      }
      return std::nullopt;
    }
  }
}

bool child_process::wait_for_lines(std::function<bool(const std::vector<std::string>&)> pred,
                                   std::chrono::milliseconds timeout, bool stderr_stream) const {
  const auto deadline = clock_type::now() + timeout;
  std::unique_lock lock(impl_->mutex);
  const stream_state& s = impl_->state(stderr_stream);
  for (;;) {
    if (pred(s.lines)) return true;
    if (s.eof) return false;
    if (impl_->cv.wait_until(lock, deadline) == std::cv_status::timeout) return pred(s.lines);
  }
}

std::vector<std::string> child_process::stdout_lines() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->out.lines;
}

std::vector<std::string> child_process::stderr_lines() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->err.lines;
}

std::string child_process::stderr_text() const {
  std::lock_guard lock(impl_->mutex);
  std::string text;
  for (const auto& line : impl_->err.lines) text += line + "\n";
  if (!impl_->err.partial.empty()) text += impl_->err.partial;
  return text;
}

bool child_process::signal(int sig) {
  std::lock_guard lock(impl_->reap_mutex);
  if (impl_->reap(false)) return false;
  return ::kill(impl_->pid, sig) == 0;
}

std::optional<int> child_process::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  auto pause = 1ms;
  for (;;) {
    {
      std::lock_guard lock(impl_->reap_mutex);
      if (impl_->reap(false)) break;
    }
    if (clock_type::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::milliseconds>(pause * 2, 10ms);
  }
  // Bounded separately too: a grandchild holding the pipes open must not eat the whole timeout.
  impl_->wait_eof(std::min(deadline, clock_type::now() + 2s));
  std::lock_guard lock(impl_->reap_mutex);
  return impl_->exit_code;
}

bool child_process::running() {
  std::lock_guard lock(impl_->reap_mutex);
  return !impl_->reap(false);
}

}  // namespace tollgate::testing
