#include "core/caller.hpp"
#include "core/text.hpp"

#include <openssl/evp.h>

#include <algorithm>

namespace tollgate::core {
namespace {

constexpr std::string_view prehashed_prefix = "sha256:";
constexpr std::size_t min_secret_length = 8;
constexpr std::size_t max_name_length = 128;
constexpr std::size_t fingerprint_hex_chars = 12;

using text::trim;

// Keeps empty items: in TOLLGATE_KEYS an empty first token is an error, not "no token".
std::vector<std::string_view> split_keep_empty(std::string_view text, char separator) {
  return text::split(text, separator, text::empty_items::keep);
}

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

bool department_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == ':' || c == '@' || c == '/' || c == '-';
}

// The departments of one list (header or key attribute), empty items ignored, duplicates
// dropped. Returns what is wrong without echoing the value: header values are caller input
// and end up in a response body.
std::string parse_departments(std::string_view text, char separator, std::vector<std::string>& out) {
  // Most requests send no department header: answer them before split() allocates its list.
  if (trim(text).empty()) {
    out.clear();
    return {};
  }
  std::vector<std::string> result;
  std::size_t position = 0;
  for (auto item : split_keep_empty(text, separator)) {
    if (item.empty()) continue;
    ++position;
    if (!valid_department(item))
      return "department " + std::to_string(position) + " must be 1 to " + std::to_string(max_department_length) +
             " characters of letters, digits and . _ : @ / -";
    if (std::find(result.begin(), result.end(), item) == result.end()) result.emplace_back(item);
    if (result.size() > max_departments)
      return "at most " + std::to_string(max_departments) + " departments are allowed";
  }
  out = std::move(result);
  return {};
}

std::string check_label(std::string_view value, std::size_t max_length) {
  if (value.size() > max_length) return "is longer than " + std::to_string(max_length) + " characters";
  if (!printable_ascii(value)) return "must be printable ASCII";
  return {};
}

// Fetched once: with EVP_sha256() every digest would do an implicit fetch, which takes a lock
// in OpenSSL's method store on each request.
const EVP_MD* sha256_method() {
  static EVP_MD* const fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return fetched != nullptr ? fetched : EVP_sha256();
}

std::string to_hex(const unsigned char* data, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex(size * 2, '0');
  for (std::size_t i = 0; i < size; ++i) {
    hex[2 * i] = digits[data[i] >> 4];
    hex[2 * i + 1] = digits[data[i] & 0x0f];
  }
  return hex;
}

std::string fingerprint_of(std::string_view hash_hex) {
  return "tgk_" + std::string(hash_hex.substr(0, fingerprint_hex_chars));
}

std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view scheme = "bearer ";
  auto value = trim(authorization);
  if (value.size() < scheme.size()) return {};
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    char c = value[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != scheme[i]) return {};
  }
  return trim(value.substr(scheme.size()));
}

caller_rejection bad_header(std::string_view header, const std::string& reason) {
  return {caller_error::bad_header, std::string(header) + ": " + reason};
}

// Applies one key attribute; returns what is wrong with it.
std::string apply_attribute(virtual_key& key, std::string_view attribute, std::string_view value,
                            std::vector<std::string_view>& seen) {
  if (std::find(seen.begin(), seen.end(), attribute) != seen.end())
    return std::string(attribute) + " is given twice";
  if (value.empty()) return std::string(attribute) + " is empty";
  if (attribute == "department") {
    if (auto err = parse_departments(value, '|', key.departments); !err.empty()) return err;
    if (key.departments.empty()) return "department is empty";
  } else if (attribute == "user" || attribute == "agent") {
    if (auto err = check_label(value, max_user_length); !err.empty()) return std::string(attribute) + " " + err;
    (attribute == "user" ? key.user : key.agent) = std::string(value);
  } else if (attribute == "name") {
    if (auto err = check_label(value, max_name_length); !err.empty()) return "name " + err;
    key.name = std::string(value);
  } else {
    return "unknown attribute \"" + std::string(attribute) + "\" (expected department, user, agent or name)";
  }
  seen.push_back(attribute);
  return {};
}

// The key token of one entry: a secret or a pre-hashed "sha256:<hex>".
std::string key_from_token(std::string_view token, virtual_key& key) {
  if (token.empty()) return "the key is empty";
  if (token.starts_with(prehashed_prefix)) {
    auto hex = token.substr(prehashed_prefix.size());
    if (hex.size() != 64 || !is_hex(hex)) return "sha256: must be followed by 64 hex digits";
    key.hash_hex = std::string(hex);
    std::transform(key.hash_hex.begin(), key.hash_hex.end(), key.hash_hex.begin(),
                   [](char c) { return c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c; });
    key.fingerprint = fingerprint_of(key.hash_hex);
    key.masked = std::string(prehashed_prefix) + key.hash_hex.substr(0, 4) + "…";
    return {};
  }
  if (token.size() < min_secret_length)
    return "the key is shorter than " + std::to_string(min_secret_length) + " characters";
  // It travels in a header; a space or control character could never be presented.
  if (!std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c <= 0x7e; }))
    return "the key must be printable ASCII without spaces";
  key = make_virtual_key(token);
  if (key.hash_hex.size() != 64) return "the key could not be hashed";
  return {};
}

}  // namespace

bool valid_department(std::string_view name) noexcept {
  return !name.empty() && name.size() <= max_department_length && std::all_of(name.begin(), name.end(), department_char);
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // Only fails when OpenSSL cannot allocate; "" then matches no key, so a lookup fails closed.
  if (EVP_Digest(data.data(), data.size(), digest, &size, sha256_method(), nullptr) != 1) return {};
  return to_hex(digest, size);
}

virtual_key make_virtual_key(std::string_view secret) {
  virtual_key key;
  key.hash_hex = sha256_hex(secret);
  key.fingerprint = fingerprint_of(key.hash_hex);
  // Same policy as mask_secret: below 12 characters, 7 visible ones would be most of the key.
  key.masked = secret.size() >= 12
                   ? std::string(secret.substr(0, 3)) + "…" + std::string(secret.substr(secret.size() - 4))
                   : std::string("…");
  return key;
}

std::string parse_virtual_keys(std::string_view text, std::vector<virtual_key>& out) {
  std::vector<virtual_key> keys;
  std::size_t index = 0;
  for (auto entry : split_keep_empty(text, ';')) {
    if (entry.empty()) continue;
    ++index;
    auto fail = [&](const std::string& reason) { return "entry " + std::to_string(index) + ": " + reason; };
    auto tokens = split_keep_empty(entry, ',');
    virtual_key key;
    if (auto err = key_from_token(tokens.front(), key); !err.empty()) return fail(err);
    std::vector<std::string_view> seen;
    for (std::size_t i = 1; i < tokens.size(); ++i) {
      if (tokens[i].empty()) continue;
      auto equals = tokens[i].find('=');
      if (equals == std::string_view::npos)
        return fail("expected attribute=value, got \"" + std::string(tokens[i]) + "\"");
      auto attribute = trim(tokens[i].substr(0, equals));
      auto value = trim(tokens[i].substr(equals + 1));
      if (auto err = apply_attribute(key, attribute, value, seen); !err.empty()) return fail(err);
    }
    for (std::size_t j = 0; j < keys.size(); ++j) {
      if (keys[j].hash_hex == key.hash_hex) return fail("the same key as entry " + std::to_string(j + 1));
      if (keys[j].fingerprint == key.fingerprint)
        return fail("has the same fingerprint as entry " + std::to_string(j + 1) + "; use another key");
    }
    keys.push_back(std::move(key));
  }
  out = std::move(keys);
  return {};
}

std::string format_virtual_keys(const std::vector<virtual_key>& keys) {
  std::string text;
  for (const auto& key : keys) {
    if (!text.empty()) text += "; ";
    text += key.fingerprint + "=" + key.masked;
    if (!key.name.empty()) text += " name=" + key.name;
    if (!key.departments.empty()) {
      text += " department=";
      for (std::size_t i = 0; i < key.departments.size(); ++i) text += (i ? "|" : "") + key.departments[i];
    }
    if (!key.user.empty()) text += " user=" + key.user;
    if (!key.agent.empty()) text += " agent=" + key.agent;
  }
  return text;
}

key_table::key_table(std::vector<virtual_key> keys) {
  for (auto& key : keys) {
    if (by_hash_.contains(key.hash_hex)) continue;
    by_hash_.emplace(key.hash_hex, keys_.size());
    by_fingerprint_.emplace(key.fingerprint, keys_.size());
    keys_.push_back(std::move(key));
  }
}

const virtual_key* key_table::find_secret(std::string_view secret) const {
  if (keys_.empty()) return nullptr;
  auto it = by_hash_.find(sha256_hex(secret));
  return it == by_hash_.end() ? nullptr : &keys_[it->second];
}

const virtual_key* key_table::find_fingerprint(std::string_view fingerprint) const {
  auto it = by_fingerprint_.find(fingerprint);
  return it == by_fingerprint_.end() ? nullptr : &keys_[it->second];
}

std::string_view caller_error_name(caller_error e) noexcept {
  switch (e) {
    case caller_error::missing_key: return "missing_key";
    case caller_error::invalid_key: return "invalid_key";
    case caller_error::bad_header: return "bad_header";
  }
  return "unknown";
}

std::variant<caller_identity, caller_rejection> identify_caller(const key_table& keys, const caller_headers& headers,
                                                                bool require_key) {
  caller_identity identity;
  const virtual_key* key = nullptr;
  if (!keys.empty() || require_key) {
    std::string_view header = "Authorization";
    auto secret = bearer_token(headers.authorization);
    if (secret.empty()) {
      header = "x-api-key";
      secret = trim(headers.api_key);
    }
    if (!secret.empty()) key = keys.find_secret(secret);
    if (key == nullptr && require_key) {
      if (secret.empty())
        return caller_rejection{caller_error::missing_key,
                                "A tollgate virtual key is required: send it as \"Authorization: Bearer <key>\" or "
                                "in the x-api-key header"};
      return caller_rejection{caller_error::invalid_key, "The API key provided is not a valid tollgate virtual key "
                                                         "(sent in the " + std::string(header) + " header)"};
    }
  }

  // The headers are validated even when the key overrides them, so a malformed header is
  // reported the same way whichever key sent it.
  std::vector<std::string> departments;
  if (auto err = parse_departments(headers.departments, ',', departments); !err.empty())
    return bad_header("x-tollgate-department", err);
  auto user = trim(headers.user);
  if (auto err = check_label(user, max_user_length); !err.empty()) return bad_header("x-tollgate-user", err);
  auto agent = trim(headers.agent);
  if (auto err = check_label(agent, max_user_length); !err.empty()) return bad_header("x-tollgate-agent", err);

  if (key != nullptr) {
    identity.key_fingerprint = key->fingerprint;
    // Keys made through the admin API are not parsed by parse_departments, so dedupe here too.
    for (const auto& department : key->departments)
      if (std::find(identity.departments.begin(), identity.departments.end(), department) == identity.departments.end())
        identity.departments.push_back(department);
    identity.user = key->user;
    identity.agent = key->agent;
  }
  if (identity.departments.empty()) identity.departments = std::move(departments);
  if (identity.user.empty()) identity.user = std::string(user);
  if (identity.agent.empty()) identity.agent = std::string(agent);
  return identity;
}

}  // namespace tollgate::core
