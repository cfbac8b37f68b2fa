#pragma once

// A fake LLM provider for integration tests and the benchmark: one server that speaks every
// provider format tollgate talks to.
//
// It speaks HTTP/1.1 (optionally over TLS) with keep-alive and answers
//   POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings  (OpenAI wire format)
//   POST /v1/messages                                                     (Anthropic Messages)
//   POST /v1beta/models/<model>:generateContent                           (Gemini)
//   POST /v1beta/models/<model>:streamGenerateContent?alt=sse
//   POST /api/chat                                                        (Ollama, NDJSON streams)
//   GET  /_stats                                                          (stats as JSON)
// and 404 with an OpenAI-shaped error body for anything else. Each format's errors come in that
// provider's own shape.
//
// Responses are deterministic (fixed ids, `created`, word contents; `model` echoed) so a test
// can compare the bytes of a direct response with the bytes relayed by the proxy. Behaviour is
// scripted per request by an optional object member "fake" in the JSON body, or, because
// tollgate's translating adapters drop unknown fields, by a last user message whose text is
// "fake:" followed by the same JSON object (the body member wins where both set an option):
//
//   events               N content events / words                         (default 5)
//   prompt_tokens        P, reported in usage                            (default 10)
//   delay_ms             pause before each streamed event                 (default 0)
//   first_byte_delay_ms  pause before the response header                 (default 0)
//   status               non-200: OpenAI-shaped error "fake upstream error <status>";
//                        429 also carries Retry-After: 7
//   fail_mode            "reset" (RST), "truncate" (FIN without the last chunk),
//                        "stall" (send nothing more until the peer closes or 60 s pass)
//   fail_after           K: apply fail_mode after K content events (default 0).
//                        Non-streaming responses: after the header and the first K body bytes.
//   fail_before_header   bool: apply fail_mode before anything of the response is written
//   crlf                 bool: "\r\n" line endings inside SSE events
//   comments             bool: a ": keep-alive" comment block before every event
//   split                bool: each event goes out as two HTTP chunks, split mid-JSON, 5 ms apart
//
// See tests/support/README.md for the exact wire formats.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tollgate::testing {

struct fake_upstream_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: pick a free port, see fake_upstream::port()
  int threads = 1;
  // TLS when both are set (PEM files, e.g. tests/data/server.pem + server.key).
  std::string tls_cert_file{};
  std::string tls_key_file{};
  // Keep a copy of every request for requests(). The benchmark turns this off so the hot path
  // takes no mutex.
  bool record_requests = true;
};

struct fake_upstream_stats {
  std::uint64_t connections = 0;        // accepted TCP connections
  std::uint64_t requests = 0;           // complete requests read (GET /_stats not counted)
  std::uint64_t streams_started = 0;    // streaming response header sent
  std::uint64_t streams_completed = 0;  // [DONE] and the terminating chunk written
  std::uint64_t streams_aborted = 0;    // a write failed or the peer closed mid-stream
  std::uint64_t faults_injected = 0;    // fail_mode applied (reset / truncate / stall)
};

struct recorded_request {
  std::string method{};
  std::string target{};
  std::map<std::string, std::string> headers{};  // lower-case; repeated fields joined by ", "
  std::string body{};
};

class fake_upstream {
 public:
  // Binds and starts serving on its own thread(s) before returning; throws on bind/TLS errors.
  explicit fake_upstream(fake_upstream_options options = {});
  // Stops and joins; open connections are dropped.
  ~fake_upstream();

  fake_upstream(const fake_upstream&) = delete;
  fake_upstream& operator=(const fake_upstream&) = delete;

  std::uint16_t port() const;
  bool tls() const;
  fake_upstream_stats stats() const;
  // Every request received (except GET /_stats), in the order they were read.
  std::vector<recorded_request> requests() const;
  // Polls until pred(stats()) holds or the timeout passes; returns whether it held.
  bool wait_until(std::function<bool(const fake_upstream_stats&)> pred,
                  std::chrono::milliseconds timeout) const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace tollgate::testing
