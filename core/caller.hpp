#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tollgate::core {

// Virtual keys and caller identity (issue 4): who a request is billed to.
//
// tollgate never keeps a key's plaintext: a key is known by the SHA-256 of its secret, so
// TOLLGATE_KEYS may list pre-hashed keys and a memory dump or --print-config reveals nothing
// a caller could present.

struct virtual_key {
  std::string hash_hex;     // lower-case hex SHA-256 of the secret
  std::string fingerprint;  // "tgk_" + first 12 hex chars of the hash: safe to log; the subject name of scope key
  std::string masked;       // "tg-…c123", or "sha256:9f86…" for pre-hashed entries
  std::string name;         // optional label
  std::vector<std::string> departments;
  std::string user;
  std::string agent;
};

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// A key for `secret` with hash_hex, fingerprint and masked filled; attributes left empty.
virtual_key make_virtual_key(std::string_view secret);

// TOLLGATE_KEYS: entries separated by ';', each "secret[,attribute=value...]" where the secret
// may be "sha256:<64 hex>" and attributes are department=a|b, user=x, agent=y, name=z.
// Returns "" on success, else what is wrong; messages name entries by position and never
// contain a secret.
std::string parse_virtual_keys(std::string_view text, std::vector<virtual_key>& out);

// For --print-config: fingerprints, masked forms and attributes only.
std::string format_virtual_keys(const std::vector<virtual_key>& keys);

// Immutable after construction and shared const across worker threads.
class key_table {
 public:
  key_table() = default;
  // Keys repeating an earlier hash are ignored (parse_virtual_keys rejects them anyway).
  explicit key_table(std::vector<virtual_key> keys);

  // Hashes `secret`, then looks it up; nullptr when no key matches.
  const virtual_key* find_secret(std::string_view secret) const;
  const virtual_key* find_fingerprint(std::string_view fingerprint) const;

  bool empty() const noexcept { return keys_.empty(); }
  const std::vector<virtual_key>& keys() const noexcept { return keys_; }

 private:
  std::vector<virtual_key> keys_;
  // Indexes into keys_ (not pointers) so copying the table keeps them valid.
  std::map<std::string, std::size_t, std::less<>> by_hash_;
  std::map<std::string, std::size_t, std::less<>> by_fingerprint_;
};

struct caller_identity {
  std::string key_fingerprint;           // "" when no valid key was presented
  std::vector<std::string> departments;  // deduplicated, order kept
  std::string user;
  std::string agent;
};

enum class caller_error : std::uint8_t { missing_key, invalid_key, bad_header };
std::string_view caller_error_name(caller_error e) noexcept;

struct caller_rejection {
  caller_error error;
  std::string message;  // user-facing; names the header at fault
};

// Raw header values as received; empty when absent. Default member initializers let callers
// write {.api_key = v} warning-free.
struct caller_headers {
  std::string_view authorization = {};  // "Authorization", e.g. "Bearer xxx"
  std::string_view api_key = {};        // "x-api-key" (Anthropic SDKs send the key there)
  std::string_view departments = {};    // x-tollgate-department: comma-separated list
  std::string_view user = {};           // x-tollgate-user
  std::string_view agent = {};          // x-tollgate-agent
};

// Limits on the attribution headers, also applied to key attributes in TOLLGATE_KEYS.
inline constexpr std::size_t max_departments = 16;
inline constexpr std::size_t max_department_length = 128;
inline constexpr std::size_t max_user_length = 256;  // also agent

// 1..128 characters of [A-Za-z0-9._:@/-]: safe in a metric label, a log line and a URL path.
bool valid_department(std::string_view name) noexcept;

// The presented secret is the Bearer token of Authorization, else x-api-key. A secret matching
// a key sets key_fingerprint, and the key's departments/user/agent override the headers (a
// caller must not bill another department than its key says); headers only fill what the key
// leaves empty. An unknown secret is anonymous unless require_key (SDKs insist on sending
// some placeholder such as "sk-no-key"). With no keys configured and !require_key nothing is
// hashed.
std::variant<caller_identity, caller_rejection> identify_caller(const key_table& keys, const caller_headers& headers,
                                                                bool require_key);

}  // namespace tollgate::core
