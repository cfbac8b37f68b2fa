#pragma once

// The fake upstream's wire formats, kept apart from its socket code: parsing the scripted
// request and producing OpenAI-shaped bytes are pure functions, so they stay readable and the
// server file stays about I/O.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tollgate::testing::fake_wire {

enum class endpoint { chat, completions, embeddings };
enum class fail_mode { none, reset, truncate, stall };

// What one request asked for: the OpenAI fields that shape the response plus the "fake" script.
struct script {
  endpoint kind = endpoint::chat;
  std::string model;
  bool stream = false;
  bool include_usage = false;
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
// empty string on success.
std::string parse_script(std::string_view body, endpoint kind, script& out);

// Non-streaming 200 body (chat.completion, text_completion or embedding list).
std::string response_body(const script& s);

struct stream_plan {
  std::vector<std::string> payloads;  // JSON payloads in order, the last one is "[DONE]"
  std::size_t first_content = 0;      // index of the first content event in payloads
};
stream_plan stream_payloads(const script& s);

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
