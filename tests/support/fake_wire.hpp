#pragma once

// The fake upstream's wire formats, kept apart from its socket code: parsing the scripted
// request and producing the response bytes are pure functions, so they stay readable and the
// server file stays about I/O. OpenAI's formats live in fake_wire.cpp, Anthropic's, Gemini's
// and Ollama's in fake_wire_providers.cpp.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tollgate::testing::fake_wire {

enum class endpoint {
  chat,         // OpenAI POST /v1/chat/completions
  completions,  // OpenAI POST /v1/completions
  embeddings,   // OpenAI POST /v1/embeddings
  anthropic,    // Anthropic POST /v1/messages
  gemini,       // Gemini POST /v1beta/models/<model>:generateContent / :streamGenerateContent
  ollama,       // Ollama POST /api/chat
};
enum class fail_mode { none, reset, truncate, stall };

// What one request asked for: the fields that shape the response plus the script (the "fake"
// body member, or a last user message "fake:{...}").
struct script {
  endpoint kind = endpoint::chat;
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::string tool_name{};  // Anthropic/Gemini/Ollama: the first tool's name when the request has tools
  int events = 5;
  int prompt_tokens = 10;
  int delay_ms = 0;
  int first_byte_delay_ms = 0;
  int status = 200;
  fail_mode fail = fail_mode::none;
  int fail_after = 0;
  bool fail_before_header = false;
  bool crlf = false;
  bool comments = false;
  bool split = false;

  // Nothing scripted that needs event-by-event writes: the whole response can go out in one
  // write from a cache (the benchmark's path).
  bool plain() const {
    return delay_ms == 0 && first_byte_delay_ms == 0 && status == 200 &&
           fail == fail_mode::none && !comments && !split;
  }
};

// Parses a request body into `out`. Returns an error message for a 400 response, or an
// empty string on success. Gemini names the model in the URL: pass it as model_from_path
// (percent-decoded), and stream = true for :streamGenerateContent.
std::string parse_script(std::string_view body, endpoint kind, script& out,
                         std::string_view model_from_path = {}, bool path_stream = false);

// Non-streaming 200 body (chat.completion, text_completion, embedding list, Anthropic message,
// Gemini GenerateContentResponse or Ollama chat response).
std::string response_body(const script& s);

// OpenAI streams only: the JSON payloads of the events.
struct stream_plan {
  std::vector<std::string> payloads;  // JSON payloads in order, the last one is "[DONE]"
  std::size_t first_content = 0;      // index of the first content event in payloads
};
stream_plan stream_payloads(const script& s);

// Any format: each event as framed bytes (SSE with `event:` lines for Anthropic, `data:` only
// for OpenAI and Gemini, one JSON line for Ollama), honouring `crlf`.
struct framed_stream {
  std::string content_type;          // text/event-stream or application/x-ndjson
  std::vector<std::string> events;   // bytes of each event in order
  std::size_t first_content = 0;     // index of the first content event
  std::size_t content_events = 0;    // how many follow it (fail_after counts these)
};
framed_stream stream_events(const script& s);

// An error answer in the request format's own shape, with its extra headers (Retry-After).
struct error_reply {
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};
// `fake.status`: "fake upstream error <status>".
error_reply status_error(endpoint kind, int status);
// Any other error (400 for a malformed request, ...), message as given.
error_reply error_for(endpoint kind, int status, std::string_view message);

// "w0 w1 w2" (trailing_space false) or "w0 w1 w2 " (true, the streamed pieces joined).
std::string words(int n, bool trailing_space);

// `data: <payload>` plus the blank line, with "\n" or "\r\n" line endings.
std::string sse_event(std::string_view payload, bool crlf);
std::string sse_comment(bool crlf);

// One HTTP/1.1 chunk (hex size, CRLF, data, CRLF). Empty data is not allowed here: the
// zero-length chunk terminates the body and is written explicitly as last_chunk.
std::string chunk(std::string_view data);
inline constexpr std::string_view last_chunk = "0\r\n\r\n";

// {"error":{"message":...,"type":...,"code":...}}; an empty code is written as null.
std::string error_body(std::string_view message, std::string_view type, std::string_view code = {});

// Status line and headers, ending with the blank line. content_length < 0 means chunked.
std::string response_head(int status, std::string_view content_type, long long content_length,
                          bool keep_alive,
                          const std::vector<std::pair<std::string, std::string>>& extra = {});

std::string json_quote(std::string_view s);

}  // namespace tollgate::testing::fake_wire
