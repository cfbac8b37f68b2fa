#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <system_error>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

void put_fake(json::object& body, const json::object& fake) {
  if (!fake.empty()) body["fake"] = fake;
}

int loopback_listener(std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "bind/listen");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

// ---- request bodies ------------------------------------------------------------------------

std::string chat_body_from(const chat_options& o) {
  json::object body;
  body["model"] = o.model;
  json::array messages;
  messages.push_back(json::object{{"role", "user"}, {"content", o.content}});
  body["messages"] = std::move(messages);
  if (o.stream) body["stream"] = true;
  if (o.include_usage) body["stream_options"] = json::object{{"include_usage", *o.include_usage}};
  put_fake(body, o.fake);
  return json::serialize(body);
}

std::string chat_body(json::object fake, bool stream) {
  chat_options o;
  o.fake = std::move(fake);
  o.stream = stream;
  return chat_body_from(o);
}

std::string stream_body(json::object fake) { return chat_body(std::move(fake), true); }

std::string completion_body(json::object fake, bool stream, std::string model) {
  json::object body{{"model", model}, {"prompt", "Say hello"}};
  if (stream) body["stream"] = true;
  put_fake(body, fake);
  return json::serialize(body);
}

std::string embedding_body(json::object fake, std::string model) {
  json::object body{{"model", model}, {"input", "some text"}};
  put_fake(body, fake);
  return json::serialize(body);
}

// ---- environment and fixtures ----------------------------------------------------------------

std::string upstream_url(const fake_upstream& fake) {
  if (fake.tls()) return "https://localhost:" + std::to_string(fake.port()) + "/v1";
  return "http://127.0.0.1:" + std::to_string(fake.port()) + "/v1";
}

env_map proxy_env(const fake_upstream& fake, env_map extra) {
  extra.emplace("TOLLGATE_UPSTREAM_URL", upstream_url(fake));
  return extra;
}

proxied_fake::proxied_fake(env_map extra, fake_upstream_options options)
    : fake(std::move(options)), proxy(proxy_env(fake, std::move(extra))) {}

proxied_fake::~proxied_fake() { expect_clean_exit(proxy); }

void expect_clean_exit(tollgate_process& proxy) {
  const auto code = proxy.stop(std::chrono::seconds(5));  // returns the code if it already exited
  const std::string err = proxy.process().stderr_text();
  CHECK_MESSAGE(code == std::optional<int>(0), "tollgate did not exit 0 on SIGTERM; stderr:\n" << err);
  for (const char* marker : {"AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:"}) {
    CHECK_MESSAGE(err.find(marker) == std::string::npos, "sanitizer report from tollgate:\n" << err);
  }
}

std::uint16_t closed_port() {
  std::uint16_t port = 0;
  const int fd = loopback_listener(port);
  ::close(fd);
  return port;
}

// ---- responses -------------------------------------------------------------------------------

std::optional<json::object> error_object(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& top = v.get_object();
  if (top.size() != 1 || !top.contains("error") || !top.at("error").is_object()) return std::nullopt;
  const auto& e = top.at("error").get_object();
  const auto string_member = [&](std::string_view k) { return e.contains(k) && e.at(k).is_string(); };
  const auto string_or_null = [&](std::string_view k) {
    return e.contains(k) && (e.at(k).is_string() || e.at(k).is_null());
  };
  if (!string_member("message") || !string_member("type") || !string_or_null("param") ||
      !string_or_null("code")) {
    return std::nullopt;
  }
  return e;
}

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return {};
  return std::string(v->get_string());
}

namespace {
std::string escaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}
}  // namespace

std::string same_bytes(const std::string& got, const std::string& expected) {
  if (got == expected) return {};
  std::size_t i = 0;
  while (i < got.size() && i < expected.size() && got[i] == expected[i]) ++i;
  const std::size_t from = i > 40 ? i - 40 : 0;
  return "bodies differ at byte " + std::to_string(i) + " (got " + std::to_string(got.size()) +
         " bytes, expected " + std::to_string(expected.size()) + ")\n  got:      ..." +
         escaped(std::string_view(got).substr(from, 120)) + "\n  expected: ..." +
         escaped(std::string_view(expected).substr(from, 120));
}

std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    std::string_view line(body.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("data:")) {
      line.remove_prefix(5);
      if (line.starts_with(' ')) line.remove_prefix(1);
      out.emplace_back(line);
    }
    pos = end + 1;
  }
  return out;
}

// ---- access log ------------------------------------------------------------------------------

std::optional<json::object> wait_for_record(const tollgate_process& proxy, const std::string& request_id,
                                            std::chrono::milliseconds timeout) {
  std::optional<json::object> found;
  const auto find = [&] {
    for (auto& r : proxy.log_records()) {
      if (str(r, "request_id") == request_id) {
        found = std::move(r);
        return true;
      }
    }
    return false;
  };
  eventually(find, timeout);
  return found;
}

std::optional<std::int64_t> int_field(const json::object& record, std::string_view key) {
  const auto* v = record.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  return std::nullopt;
}

// ---- metrics ---------------------------------------------------------------------------------

std::vector<metric_sample> parse_prometheus(const std::string& text) {
  std::vector<metric_sample> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line.front() == '#') continue;
    metric_sample s;
    std::size_t i = line.find_first_of("{ ");
    if (i == std::string::npos) continue;
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const std::size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') break;
        std::string name = line.substr(i, eq - i);
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) ++j;
          value += line[j];
        }
        s.labels.emplace(std::move(name), std::move(value));
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      i = line.find(' ', i);
      if (i == std::string::npos) continue;
    }
    const std::string number = line.substr(i + 1, line.find(' ', i + 1) - (i + 1));
    if (number == "+Inf") {
      s.value = std::numeric_limits<double>::infinity();
    } else {
      char* parse_end = nullptr;
      s.value = std::strtod(number.c_str(), &parse_end);
      if (parse_end == number.c_str()) continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<double> metric_value(const std::vector<metric_sample>& samples, const std::string& name,
                                   const std::map<std::string, std::string>& labels) {
  std::optional<double> sum;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) {
        match = false;
        break;
      }
    }
    if (match) sum = sum.value_or(0) + s.value;
  }
  return sum;
}

std::vector<metric_sample> scrape(const tollgate_process& proxy) {
  const auto r = testing::http_request(proxy.metrics_port(), "GET", "/metrics", {}, {}, 5s);
  if (r.status != 200) throw std::runtime_error("GET /metrics answered " + std::to_string(r.status));
  return parse_prometheus(r.body);
}

// ---- raw upstream ----------------------------------------------------------------------------

raw_upstream::raw_upstream(std::string canned_response, bool close_after_response)
    : canned_(std::move(canned_response)), close_after_response_(close_after_response) {
  listen_fd_ = loopback_listener(port_);
  thread_ = std::thread([this] { run(); });
}

raw_upstream::~raw_upstream() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

namespace {

// Length of the first complete request in `text` (header + Content-Length body), or 0.
std::size_t complete_request(const std::string& text) {
  const std::size_t head_end = text.find("\r\n\r\n");
  if (head_end == std::string::npos) return 0;
  std::size_t length = 0;
  std::string head = text.substr(0, head_end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (const std::size_t at = head.find("\r\ncontent-length:"); at != std::string::npos) {
    length = std::strtoul(head.c_str() + at + 17, nullptr, 10);
  }
  const std::size_t total = head_end + 4 + length;
  return text.size() >= total ? total : 0;
}

}  // namespace

void raw_upstream::run() {
  std::vector<int> peers;
  std::vector<std::string> received;
  while (!stop_) {
    std::vector<pollfd> fds;
    fds.push_back({listen_fd_, POLLIN, 0});
    for (int fd : peers) fds.push_back({fd, static_cast<short>(POLLIN | POLLRDHUP), 0});
    if (::poll(fds.data(), fds.size(), 10) <= 0) continue;
    if ((fds[0].revents & POLLIN) != 0) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        peers.push_back(fd);
        received.emplace_back();
      }
    }
    for (std::size_t i = 1; i < fds.size(); ++i) {
      const int fd = fds[i].fd;
      if (fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        auto& text = received[i - 1];
        text.append(buf, static_cast<std::size_t>(n));
        while (const std::size_t used = complete_request(text)) {
          text.erase(0, used);
          ++requests_;
          if (!canned_.empty()) {
            std::size_t sent = 0;
            while (sent < canned_.size()) {
              const ssize_t w = ::send(fd, canned_.data() + sent, canned_.size() - sent, MSG_NOSIGNAL);
              if (w <= 0) break;
              sent += static_cast<std::size_t>(w);
            }
            if (close_after_response_) ::shutdown(fd, SHUT_WR);
          }
        }
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      {
        std::lock_guard lock(mutex_);
        if (!closed_) closed_at_ = std::chrono::steady_clock::now();
      }
      closed_ = true;
      ::close(fd);
      peers[i - 1] = -1;
    }
  }
  for (int fd : peers) {
    if (fd >= 0) ::close(fd);
  }
}

bool raw_upstream::wait_request(std::chrono::milliseconds timeout) const {
  return eventually([this] { return requests_.load() > 0; }, timeout);
}

std::optional<std::chrono::steady_clock::time_point> raw_upstream::wait_closed(
    std::chrono::milliseconds timeout) const {
  if (!eventually([this] { return closed_.load(); }, timeout)) return std::nullopt;
  std::lock_guard lock(mutex_);
  return closed_at_;
}

}  // namespace tollgate::itest
