// The two OpenAI readers on every request's path, the client's body and the upstream's usage
// object: one SAX pass each, no DOM. They run json::parse's own parser with its options, so
// a body that json::parse rejects is rejected here with the same error code, and where keys
// repeat, the last one counts, as in a DOM.
#include "adapters/openai.hpp"
#include "core/swar.hpp"

#include "adapters/json_fields.hpp"

#include <boost/json.hpp>
// basic_parser's member definitions, for this file's handlers; no other file may include it.
#include <boost/json/basic_parser_impl.hpp>

#include <algorithm>
#include <array>
#include <cstring>

namespace tollgate::adapters::openai {
namespace json = boost::json;
namespace {

using boost::system::error_code;

// json::parse's defaults, which both readers must parse with.
constexpr json::parse_options dom_options{};

// What a handler needs besides its own callbacks: json::parse's size limits, so that the same
// inputs hit them, and the events neither reader looks at.
struct sax_defaults {
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  bool on_document_begin(error_code&) noexcept { return true; }
  bool on_document_end(error_code&) noexcept { return true; }
  bool on_number_part(json::string_view, error_code&) noexcept { return true; }
  bool on_comment_part(json::string_view, error_code&) noexcept { return true; }
  bool on_comment(json::string_view, error_code&) noexcept { return true; }
};

// The whole text through `parser`, as json::parse takes it: one value, then only whitespace.
template <class Handler>
error_code read_document(json::basic_parser<Handler>& parser, std::string_view text) {
  error_code ec;
  const std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && used < text.size()) ec = json::error::extra_data;
  return ec;
}

// A key whole. The parser hands a key over in one piece unless it has escapes; then the pieces
// are joined here. A key longer than the room keeps only its first bytes: no name looked for is
// that long, so it still compares unequal to all of them.
class key_text {
 public:
  void add(json::string_view piece) noexcept {
    const std::size_t n = std::min(piece.size(), room_.size() - size_);
    if (n != 0) std::memcpy(room_.data() + size_, piece.data(), n);
    size_ += n;
    pieced_ = true;
  }
  // The key, given its last piece; valid until the next key's first piece.
  std::string_view finish(json::string_view last) noexcept {
    if (!pieced_) return last;
    add(last);
    const std::string_view whole(room_.data(), size_);
    size_ = 0;
    pieced_ = false;
    return whole;
  }

 private:
  std::array<char, 64> room_;
  std::size_t size_ = 0;
  bool pieced_ = false;
};

request_error invalid(std::string message, std::string param = {}) {
  return request_error{std::move(message), std::move(param)};
}

request_error missing(std::string_view name) {
  return invalid("Missing required parameter: '" + std::string(name) + "'.", std::string(name));
}

std::string_view prompt_member(endpoint kind) noexcept {
  switch (kind) {
    case endpoint::chat_completions: return "messages";
    case endpoint::completions: return "prompt";
    case endpoint::embeddings: return "input";
  }
  return {};
}

std::uint64_t tokens_for_bytes(std::uint64_t bytes) { return (bytes + 3) / 4; }

// Text a prompt contributes: strings anywhere under the given value (message contents,
// content parts, prompt strings or arrays, embedding inputs), object keys aside. The DOM
// version, for the bodies the reader cannot count alone.
std::uint64_t text_bytes(const json::value& value) {
  switch (value.kind()) {
    case json::kind::string:
      return value.get_string().size();
    case json::kind::array: {
      std::uint64_t total = 0;
      for (const auto& item : value.get_array()) total += text_bytes(item);
      return total;
    }
    case json::kind::object: {
      std::uint64_t total = 0;
      for (const auto& member : value.get_object()) total += text_bytes(member.value());
      return total;
    }
    default:
      return 0;
  }
}

// A member's last value, as far as the checks need it.
struct member_value {
  bool present = false;
  json::kind kind = json::kind::null;
  bool boolean = false;  // when kind is bool_

  bool given() const noexcept { return present && kind != json::kind::null; }
};

// Everything parse_front_request decides on, gathered while the body streams through the parser.
// Depth counts the containers open: the body's members are values at depth 1, a chat request's
// messages at depth 2, their members at depth 3.
class front_request_reader : public sax_defaults {
 public:
  explicit front_request_reader(endpoint kind) noexcept : kind_(kind), prompt_name_(prompt_member(kind)) {}

  bool on_object_begin(error_code&) noexcept {
    value(json::kind::object);
    ++depth_;
    if (target_ == target::prompt) key_bits_[depth_] = 0;
    return true;
  }
  bool on_object_end(std::size_t, error_code&) noexcept {
    if (depth_ == 3 && target_ == target::prompt && kind_ == endpoint::chat_completions && !role_is_string_)
      note_invalid_message(messages_ - 1);
    --depth_;
    return true;
  }
  bool on_array_begin(error_code&) noexcept {
    value(json::kind::array);
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, error_code&) noexcept {
    --depth_;
    return true;
  }
  bool on_key_part(json::string_view piece, std::size_t, error_code&) noexcept {
    key_.add(piece);
    return true;
  }
  bool on_key(json::string_view last, std::size_t, error_code&) noexcept {
    key(key_.finish(last));
    return true;
  }
  bool on_string_part(json::string_view piece, std::size_t, error_code&) {
    if (depth_ == 1 && target_ == target::model) model_text_.append(piece.data(), piece.size());
    return true;
  }
  bool on_string(json::string_view last, std::size_t size, error_code&) {
    value(json::kind::string);
    if (depth_ == 1 && target_ == target::model) model_text_.append(last.data(), last.size());
    if (target_ == target::prompt) text_bytes_ += size;
    return true;
  }
  bool on_int64(std::int64_t, json::string_view, error_code&) noexcept { return value(json::kind::int64); }
  bool on_uint64(std::uint64_t, json::string_view, error_code&) noexcept { return value(json::kind::uint64); }
  bool on_double(double, json::string_view, error_code&) noexcept { return value(json::kind::double_); }
  bool on_bool(bool b, error_code&) noexcept { return value(json::kind::bool_, b); }
  bool on_null(error_code&) noexcept { return value(json::kind::null); }

  // After a successful parse.
  bool body_is_object() const noexcept { return body_is_object_; }
  const member_value& model() const noexcept { return model_; }
  std::string& model_text() noexcept { return model_text_; }
  const member_value& prompt() const noexcept { return prompt_; }
  std::size_t message_count() const noexcept { return messages_; }
  std::optional<std::size_t> first_invalid_message() const noexcept { return first_invalid_message_; }
  // nullopt when an object below the prompt may repeat a key: only the DOM knows which of the
  // repeated values is kept.
  std::optional<std::uint64_t> prompt_text_bytes() const noexcept {
    if (prompt_may_repeat_keys_) return std::nullopt;
    return text_bytes_;
  }
  const member_value& stream() const noexcept { return stream_; }
  const member_value& stream_options() const noexcept { return stream_options_; }
  const member_value& include_usage() const noexcept { return include_usage_; }

 private:
  // The body's member whose value is being read.
  enum class target : std::uint8_t { other, model, prompt, stream, stream_options };

  // A value starts in the container at depth_ (0: it is the body). True: the parser goes on.
  bool value(json::kind kind, bool boolean = false) noexcept {
    const member_value seen{true, kind, boolean};
    switch (depth_) {
      case 0:
        body_is_object_ = kind == json::kind::object;
        break;
      case 1:
        if (target_ == target::model) model_ = seen;
        if (target_ == target::prompt) prompt_ = seen;
        if (target_ == target::stream) stream_ = seen;
        if (target_ == target::stream_options) stream_options_ = seen;
        break;
      case 2:
        if (target_ == target::prompt && kind_ == endpoint::chat_completions) {
          if (kind != json::kind::object) note_invalid_message(messages_);
          ++messages_;
          role_is_string_ = false;
          key_is_role_ = false;
        }
        if (target_ == target::stream_options && key_is_include_usage_) include_usage_ = seen;
        break;
      case 3:
        if (target_ == target::prompt && key_is_role_) role_is_string_ = kind == json::kind::string;
        break;
      default:
        break;
    }
    return true;
  }

  void key(std::string_view name) noexcept {
    if (depth_ == 1) {
      start_member(name);
      return;
    }
    if (depth_ == 2 && target_ == target::stream_options) key_is_include_usage_ = name == "include_usage";
    if (target_ != target::prompt) return;
    if (depth_ == 3) key_is_role_ = name == "role";
    // One bit per key, Bloom-style: a bit seen twice in one object may be a repeated key,
    // which the DOM then settles.
    const std::uint64_t bit = key_bit(name);
    if (key_bits_[depth_] & bit) prompt_may_repeat_keys_ = true;
    key_bits_[depth_] |= bit;
  }

  // A member of the body starts: it replaces what an earlier one of the same name said.
  void start_member(std::string_view name) noexcept {
    target_ = target::other;
    if (name == "model") {
      target_ = target::model;
      model_text_.clear();
    } else if (name == prompt_name_) {
      target_ = target::prompt;
      text_bytes_ = 0;
      messages_ = 0;
      first_invalid_message_.reset();
      prompt_may_repeat_keys_ = false;
    } else if (name == "stream") {
      target_ = target::stream;
    } else if (name == "stream_options") {
      target_ = target::stream_options;
      include_usage_ = {};
      key_is_include_usage_ = false;
    }
  }

  void note_invalid_message(std::size_t index) noexcept {
    if (!first_invalid_message_) first_invalid_message_ = index;
  }

  // From the length and three bytes, which is cheaper than hashing the key and enough to give
  // the keys of OpenAI's message, content-part and tool-call objects distinct bits.
  static std::uint64_t key_bit(std::string_view name) noexcept {
    std::uint64_t sketch = name.size();
    if (!name.empty()) {
      auto byte = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(name[i])}; };
      sketch |= byte(0) << 8 | byte(name.size() / 2) << 16 | byte(name.size() - 1) << 24;
    }
    return std::uint64_t{1} << ((sketch * 0x9e3779b97f4a7c15) >> 58);
  }

  endpoint kind_;
  std::string_view prompt_name_;
  std::size_t depth_ = 0;
  target target_ = target::other;
  key_text key_;
  bool body_is_object_ = false;

  member_value model_;
  std::string model_text_;

  member_value prompt_;
  std::uint64_t text_bytes_ = 0;
  bool prompt_may_repeat_keys_ = false;
  std::array<std::uint64_t, dom_options.max_depth + 1> key_bits_{};  // per open object below the prompt
  std::size_t messages_ = 0;
  std::optional<std::size_t> first_invalid_message_;
  bool key_is_role_ = false;
  bool role_is_string_ = false;

  member_value stream_;
  member_value stream_options_;
  member_value include_usage_;
  bool key_is_include_usage_ = false;
};

// For what one pass cannot settle: repeated keys below the prompt, and rewriting an existing
// stream_options member.
json::value parse_dom(std::string_view body, json::monotonic_resource& resource) {
  boost::system::error_code ec;
  return json::parse(body, ec, &resource);  // the reader has accepted the body already
}

// Every stream is metered, so the upstream is asked for its usage chunk.
std::string with_usage_requested(std::string_view body, const member_value& stream_options) {
  if (!stream_options.present) {
    // The member goes last, before the closing brace; every other byte stays as the client
    // sent it. The body has a model member, so a comma separates the new one.
    constexpr std::string_view member = R"(,"stream_options":{"include_usage":true})";
    const std::size_t close = body.find_last_not_of(" \t\n\r");
    std::string rewritten;
    rewritten.reserve(body.size() + member.size());
    rewritten.append(body.substr(0, close)).append(member).append(body.substr(close));
    return rewritten;
  }
  unsigned char arena[8192];
  json::monotonic_resource resource(arena, sizeof(arena));
  json::value parsed = parse_dom(body, resource);
  json::object& object = parsed.get_object();
  if (!stream_options.given() || stream_options.kind != json::kind::object) object["stream_options"] = json::object();
  object["stream_options"].get_object()["include_usage"] = true;
  return json::serialize(parsed);
}

// What parse_usage needs: the top-level token counts and the one nested cached count.
class usage_reader : public sax_defaults {
 public:
  bool on_object_begin(error_code&) noexcept {
    value(std::nullopt, true);
    ++depth_;
    return true;
  }
  bool on_object_end(std::size_t, error_code&) noexcept {
    --depth_;
    return true;
  }
  bool on_array_begin(error_code&) noexcept {
    value(std::nullopt);
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, error_code&) noexcept {
    --depth_;
    return true;
  }
  bool on_key_part(json::string_view piece, std::size_t, error_code&) noexcept {
    key_.add(piece);
    return true;
  }
  bool on_key(json::string_view last, std::size_t, error_code&) noexcept {
    key(key_.finish(last));
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, error_code&) noexcept { return true; }
  bool on_string(json::string_view, std::size_t, error_code&) noexcept { return value(std::nullopt); }
  bool on_int64(std::int64_t i, json::string_view, error_code&) noexcept { return value(count_of(json::value(i))); }
  bool on_uint64(std::uint64_t u, json::string_view, error_code&) noexcept { return value(count_of(json::value(u))); }
  bool on_double(double d, json::string_view, error_code&) noexcept { return value(count_of(json::value(d))); }
  bool on_bool(bool, error_code&) noexcept { return value(std::nullopt); }
  bool on_null(error_code&) noexcept { return value(std::nullopt); }

  std::optional<usage> result() const noexcept {
    if (!is_object_ || (!prompt_ && !completion_)) return std::nullopt;
    return usage{prompt_.value_or(0), completion_.value_or(0), details_is_object_ ? cached_.value_or(0) : 0};
  }

 private:
  enum class member : std::uint8_t { other, prompt, completion, details };

  // A value starts in the container at depth_ (0: it is the usage object); `count` when it is
  // one. True: the parser goes on.
  bool value(std::optional<std::uint64_t> count, bool is_object = false) noexcept {
    if (depth_ == 0) is_object_ = is_object;
    if (depth_ == 1 && member_ == member::prompt) prompt_ = count;
    if (depth_ == 1 && member_ == member::completion) completion_ = count;
    if (depth_ == 1 && member_ == member::details) details_is_object_ = is_object;
    if (depth_ == 2 && member_ == member::details && key_is_cached_) cached_ = count;
    return true;
  }

  void key(std::string_view name) noexcept {
    if (depth_ == 2 && member_ == member::details) key_is_cached_ = name == "cached_tokens";
    if (depth_ != 1) return;
    member_ = member::other;
    if (name == "prompt_tokens") member_ = member::prompt;
    if (name == "completion_tokens") member_ = member::completion;
    if (name == "prompt_tokens_details") {
      member_ = member::details;
      cached_.reset();  // an earlier details member no longer counts
      key_is_cached_ = false;
    }
  }

  std::size_t depth_ = 0;
  key_text key_;
  bool is_object_ = false;
  member member_ = member::other;
  std::optional<std::uint64_t> prompt_, completion_, cached_;
  bool details_is_object_ = false;
  bool key_is_cached_ = false;
};

}  // namespace

boost::system::result<front_request, request_error> parse_front_request(endpoint kind, std::string_view body) {
  json::basic_parser<front_request_reader> parser(dom_options, kind);
  if (error_code ec = read_document(parser, body))
    return invalid("We could not parse the JSON body of your request: " + ec.message() + ".");
  front_request_reader& read = parser.handler();
  if (!read.body_is_object()) return invalid("The request body must be a JSON object.");

  front_request request;
  request.kind = kind;
  if (!read.model().given()) return missing("model");
  if (read.model().kind != json::kind::string || read.model_text().empty())
    return invalid("Invalid 'model': expected a non-empty string.", "model");
  request.model = std::move(read.model_text());

  const std::string_view prompt_name = prompt_member(kind);
  if (!read.prompt().given()) return missing(prompt_name);
  if (kind == endpoint::chat_completions) {
    if (read.prompt().kind != json::kind::array)
      return invalid("Invalid type for 'messages': expected an array.", "messages");
    if (read.message_count() == 0)
      return invalid("Invalid 'messages': empty array. Expected at least one message.", "messages");
    if (auto i = read.first_invalid_message()) {
      return invalid("Invalid 'messages[" + std::to_string(*i) + "]': each message must be an object with a "
                     "string 'role'.", "messages[" + std::to_string(*i) + "]");
    }
  }
  std::optional<std::uint64_t> text = read.prompt_text_bytes();
  if (!text) {
    unsigned char arena[8192];
    json::monotonic_resource resource(arena, sizeof(arena));
    text = text_bytes(parse_dom(body, resource).get_object().at(prompt_name));
  }
  request.prompt_tokens_estimate = tokens_for_bytes(*text);
  if (kind == endpoint::embeddings) return request;  // embeddings never stream

  if (read.stream().given()) {
    if (read.stream().kind != json::kind::bool_) return invalid("Invalid type for 'stream': expected a boolean.", "stream");
    request.stream = read.stream().boolean;
  }
  if (!request.stream) return request;

  const member_value& options = read.stream_options();
  if (options.given() && options.kind != json::kind::object)
    return invalid("Invalid type for 'stream_options': expected an object.", "stream_options");
  if (options.given() && read.include_usage().given()) {
    if (read.include_usage().kind != json::kind::bool_)
      return invalid("Invalid type for 'stream_options.include_usage': expected a boolean.",
                     "stream_options.include_usage");
    request.client_wants_usage = read.include_usage().boolean;
  }
  if (request.client_wants_usage) return request;

  request.rewritten_body = with_usage_requested(body, options);
  return request;
}

namespace {

// The usage objects providers send are flat objects of whole numbers, with an object or two of
// them nested: read here directly, that shape costs a fraction of a general parse. Any other
// (strings, arrays, escapes, fractions, signs, deeper nesting, text after the object) is not
// judged here but left to usage_reader, so the counts are always those a JSON parser reads.
// The cursor is passed along by value, so it stays in a register; nullptr: not the plain shape.
class plain_usage_reader {
 public:
  // True when the text had the plain shape; result() is then the answer.
  bool read(std::string_view text) noexcept {
    end_ = text.data() + text.size();
    const char* p = object(text.data(), 1, {});
    return p != nullptr && skip_blanks(p) == end_;
  }

  std::optional<usage> result() const noexcept {
    if (!prompt_ && !completion_) return std::nullopt;
    return usage{prompt_.value_or(0), completion_.value_or(0), details_is_object_ ? cached_.value_or(0) : 0};
  }

 private:
  const char* skip_blanks(const char* p) const noexcept {
    while (p != end_ && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
    return p;
  }
  const char* take(const char* p, char c) const noexcept {
    p = skip_blanks(p);
    return p != end_ && *p == c ? p + 1 : nullptr;
  }
  // A key of printable ASCII without escapes, the quotes around it taken. Sixteen bytes a
  // step where there are as many: keys are most of such an object's bytes.
  const char* key(const char* p, std::string_view& out) const noexcept {
    if ((p = take(p, '"')) == nullptr) return nullptr;
    const char* begin = p;
    while (end_ - p >= static_cast<std::ptrdiff_t>(core::swar::block16::size)) {
      const core::swar::block16 block(p);
      const unsigned quotes = block.equal_to('"');
      const unsigned not_plain = (~block.in_range(0x20, 0x7e) & 0xFFFFu) | block.equal_to('\\');
      const unsigned before_quote = quotes != 0 ? (quotes & (0u - quotes)) - 1 : 0xFFFFu;
      if ((not_plain & before_quote) != 0) return nullptr;
      if (quotes != 0) {
        p += std::countr_zero(quotes);
        out = std::string_view(begin, static_cast<std::size_t>(p - begin));
        return p + 1;
      }
      p += core::swar::block16::size;
    }
    for (; p != end_ && *p != '"'; ++p)
      if (static_cast<unsigned char>(*p - 0x20) > 0x5e || *p == '\\') return nullptr;
    if (p == end_) return nullptr;
    out = std::string_view(begin, static_cast<std::size_t>(p - begin));
    return p + 1;
  }
  // A whole number of at most 19 digits (any such fits in 64 bits), or null, true or false,
  // which are no count.
  const char* scalar(const char* p, std::optional<std::uint64_t>& count) const noexcept {
    if (p == end_) return nullptr;
    if (*p >= '0' && *p <= '9') {
      const char* begin = p;
      std::uint64_t n = 0;
      for (; p != end_ && *p >= '0' && *p <= '9'; ++p) n = n * 10 + static_cast<std::uint64_t>(*p - '0');
      if (p - begin > 19 || (p - begin > 1 && *begin == '0')) return nullptr;
      if (p != end_ && (*p == '.' || *p == 'e' || *p == 'E')) return nullptr;
      count = n;
      return p;
    }
    count.reset();
    for (std::string_view word : {"null", "true", "false"})
      if (static_cast<std::size_t>(end_ - p) >= word.size() && std::string_view(p, word.size()) == word) return p + word.size();
    return nullptr;
  }
  // An object at `depth` (1: the usage object itself, 2: one inside it, the member `parent`).
  const char* object(const char* p, int depth, std::string_view parent) noexcept {
    if ((p = take(p, '{')) == nullptr) return nullptr;
    p = skip_blanks(p);
    if (p != end_ && *p == '}') return p + 1;
    for (;;) {
      std::string_view name;
      if ((p = key(p, name)) == nullptr || (p = take(p, ':')) == nullptr) return nullptr;
      p = skip_blanks(p);
      std::optional<std::uint64_t> count;
      const bool nested = p != end_ && *p == '{';
      if (nested && depth == 2) return nullptr;
      if (!nested && (p = scalar(p, count)) == nullptr) return nullptr;
      if (depth == 1) {
        if (name == "prompt_tokens") prompt_ = count;
        if (name == "completion_tokens") completion_ = count;
        if (name == "prompt_tokens_details") {
          cached_.reset();  // an earlier details member no longer counts
          details_is_object_ = nested;
        }
      } else if (parent == "prompt_tokens_details" && name == "cached_tokens") {
        cached_ = count;
      }
      if (nested && (p = object(p, 2, name)) == nullptr) return nullptr;
      p = skip_blanks(p);
      if (p != end_ && *p == ',') {
        ++p;
        continue;
      }
      return p != end_ && *p == '}' ? p + 1 : nullptr;
    }
  }

  const char* end_ = nullptr;
  std::optional<std::uint64_t> prompt_, completion_, cached_;
  bool details_is_object_ = false;
};

}  // namespace

std::optional<usage> parse_usage(std::string_view usage_json) noexcept {
  if (plain_usage_reader plain; plain.read(usage_json)) return plain.result();
  json::basic_parser<usage_reader> parser(dom_options);
  if (read_document(parser, usage_json)) return std::nullopt;
  return parser.handler().result();
}

}  // namespace tollgate::adapters::openai
