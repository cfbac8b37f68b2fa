#include "core/caller.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <string>
#include <vector>

namespace {

using namespace tollgate::core;

std::vector<virtual_key> parse_keys(std::string_view text) {
  std::vector<virtual_key> keys;
  auto err = parse_virtual_keys(text, keys);
  REQUIRE_MESSAGE(err.empty(), err);
  return keys;
}

// Two keys: one pinned to departments and a user, one without attributes.
constexpr std::string_view eng_secret = "tg-eng-key-000001";
constexpr std::string_view bare_secret = "tg-bare-key-00002";

key_table sample_keys() {
  return key_table(parse_keys("tg-eng-key-000001,department=eng|ml,user=svc-eng;tg-bare-key-00002,name=bare"));
}

caller_identity identified(const std::variant<caller_identity, caller_rejection>& result) {
  if (const auto* rejection = std::get_if<caller_rejection>(&result)) FAIL(rejection->message);
  return std::get<caller_identity>(result);
}

caller_rejection rejected(const std::variant<caller_identity, caller_rejection>& result) {
  REQUIRE(std::holds_alternative<caller_rejection>(result));
  return std::get<caller_rejection>(result);
}

}  // namespace

TEST_CASE("caller: sha256_hex matches the FIPS 180-2 vectors") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("caller: make_virtual_key fills hash, fingerprint and a masked form") {
  auto key = make_virtual_key("tg-abcdefgh-c123");
  CHECK(key.hash_hex == sha256_hex("tg-abcdefgh-c123"));
  CHECK(key.fingerprint == "tgk_" + key.hash_hex.substr(0, 12));
  CHECK(key.masked == "tg-…c123");
  CHECK(make_virtual_key("tg-short").masked == "…");  // 7 of 8 characters would be shown otherwise
}

TEST_CASE("caller: TOLLGATE_KEYS entries, attributes and pre-hashed keys") {
  const std::string hash = sha256_hex("plaintext-kept-elsewhere");
  std::string upper = hash;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto keys = parse_keys(" tg-eng-key-000001 , department = eng|ml|eng , user=svc-eng, agent=ci-bot, name=CI key ;"
                         "sha256:" + upper + ",department=finance;;");
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].hash_hex == sha256_hex(eng_secret));
  CHECK(keys[0].departments == std::vector<std::string>{"eng", "ml"});
  CHECK(keys[0].user == "svc-eng");
  CHECK(keys[0].agent == "ci-bot");
  CHECK(keys[0].name == "CI key");
  CHECK(keys[1].hash_hex == hash);  // normalised to lower case
  CHECK(keys[1].fingerprint == "tgk_" + hash.substr(0, 12));
  CHECK(keys[1].masked == "sha256:" + hash.substr(0, 4) + "…");
  CHECK(keys[1].departments == std::vector<std::string>{"finance"});

  std::vector<virtual_key> none{make_virtual_key("placeholder")};
  CHECK(parse_virtual_keys("", none).empty());
  CHECK(none.empty());

  // A pre-hashed key is found by its plaintext.
  key_table table(keys);
  const auto* found = table.find_secret("plaintext-kept-elsewhere");
  REQUIRE(found != nullptr);
  CHECK(found->departments == std::vector<std::string>{"finance"});
}

TEST_CASE("caller: TOLLGATE_KEYS errors say what is wrong without echoing the secret") {
  const std::string eng_hash = sha256_hex(eng_secret);
  struct row {
    std::string text;
    const char* message_part;
  };
  const row rows[] = {
      {",user=x", "entry 1: the key is empty"},
      {"tg-ok-key-0001;short", "entry 2: the key is shorter than 8 characters"},
      {"sha256:abc", "64 hex digits"},
      {"sha256:" + std::string(64, 'g'), "64 hex digits"},
      {"tg-eng-key-000001,color=red", "unknown attribute \"color\""},
      {"tg-eng-key-000001;tg-eng-key-000001", "entry 2: the same key as entry 1"},
      {"tg-eng-key-000001;sha256:" + eng_hash, "entry 2: the same key as entry 1"},
      {"tg-eng-key-000001,user", "expected attribute=value"},
      {"tg-eng-key-000001,user=a,user=b", "user is given twice"},
      {"tg-eng-key-000001,user=", "user is empty"},
      {"tg-eng-key-000001,department=a b", "department 1 must be"},
      {"tg-eng-key-000001,department=|", "department is empty"},
      {"tg-eng-key-000001,agent=" + std::string(257, 'a'), "agent is longer than 256"},
      {"tg eng key 000001", "without spaces"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    std::vector<virtual_key> keys;
    auto err = parse_virtual_keys(r.text, keys);
    CHECK(err.find(r.message_part) != std::string::npos);
    CHECK(err.find("eng-key-000001") == std::string::npos);
    CHECK(err.find("ok-key-0001") == std::string::npos);
  }
}

TEST_CASE("caller: format_virtual_keys shows fingerprints and attributes, never secrets") {
  auto keys = parse_keys("tg-eng-key-000001,department=eng|ml,user=svc-eng,name=ci;tg-bare-key-00002");
  auto text = format_virtual_keys(keys);
  CHECK(text == keys[0].fingerprint + "=tg-…0001 name=ci department=eng|ml user=svc-eng; " + keys[1].fingerprint +
                    "=tg-…0002");
  CHECK(text.find("eng-key") == std::string::npos);
  CHECK(text.find("bare-key") == std::string::npos);
}

TEST_CASE("caller: key_table lookups") {
  auto table = sample_keys();
  CHECK_FALSE(table.empty());
  REQUIRE(table.keys().size() == 2);
  const auto* eng = table.find_secret(eng_secret);
  REQUIRE(eng != nullptr);
  CHECK(eng->user == "svc-eng");
  CHECK(table.find_fingerprint(eng->fingerprint) == eng);
  CHECK(table.find_secret("tg-eng-key-000002") == nullptr);
  CHECK(table.find_fingerprint("tgk_000000000000") == nullptr);
  auto copy = table;  // indexes, not pointers: a copy looks up into its own keys
  CHECK(copy.find_secret(bare_secret) == &copy.keys()[1]);
  CHECK(key_table().empty());
  CHECK(key_table().find_secret(eng_secret) == nullptr);
}

TEST_CASE("caller: identity from headers alone when no keys are configured") {
  auto id = identified(identify_caller({}, {.authorization = "Bearer sk-anything",
                                            .departments = " eng, ml,eng,, ",
                                            .user = " alice ",
                                            .agent = "bot/1.0"},
                                       false));
  CHECK(id.key_fingerprint.empty());
  CHECK(id.departments == std::vector<std::string>{"eng", "ml"});
  CHECK(id.user == "alice");
  CHECK(id.agent == "bot/1.0");
}

TEST_CASE("caller: a key's attributes win over headers; headers fill the rest") {
  auto table = sample_keys();
  const std::string eng_fp = table.find_secret(eng_secret)->fingerprint;
  const std::string bare_fp = table.find_secret(bare_secret)->fingerprint;
  const std::string eng_bearer = "Bearer " + std::string(eng_secret);
  const std::string eng_lower = "bearer   " + std::string(eng_secret) + " ";
  struct row {
    const char* label;
    caller_headers headers;
    bool require_key;
    std::string fingerprint;
    std::vector<std::string> departments;
    const char* user;
    const char* agent;
  };
  const row rows[] = {
      {"key pins departments and user", {eng_bearer, "", "finance", "bob", "agent-1"}, true, eng_fp, {"eng", "ml"},
       "svc-eng", "agent-1"},
      {"scheme is case-insensitive", {eng_lower, "", "", "", ""}, true, eng_fp, {"eng", "ml"}, "svc-eng", ""},
      {"x-api-key (Anthropic SDKs)", {"", bare_secret, "finance", "bob", "a"}, true, bare_fp, {"finance"}, "bob", "a"},
      {"non-Bearer Authorization falls back to x-api-key", {"Basic dXNlcjpwdw==", eng_secret, "", "", ""}, true, eng_fp,
       {"eng", "ml"}, "svc-eng", ""},
      {"placeholder key is anonymous", {"Bearer sk-no-key", "", "finance", "bob", ""}, false, "", {"finance"}, "bob", ""},
      {"no key at all is anonymous", {"", "", "", "", ""}, false, "", {}, "", ""},
  };
  for (const auto& r : rows) {
    CAPTURE(r.label);
    auto id = identified(identify_caller(table, r.headers, r.require_key));
    CHECK(id.key_fingerprint == r.fingerprint);
    CHECK(id.departments == r.departments);
    CHECK(id.user == std::string(r.user));
    CHECK(id.agent == std::string(r.agent));
  }
}

TEST_CASE("caller: require_key refuses missing and unknown keys, naming the header") {
  auto table = sample_keys();
  auto missing = rejected(identify_caller(table, {.departments = "eng"}, true));
  CHECK(missing.error == caller_error::missing_key);
  CHECK(missing.message.find("Authorization") != std::string::npos);
  CHECK(missing.message.find("x-api-key") != std::string::npos);

  auto empty_bearer = rejected(identify_caller(table, {.authorization = "Bearer   "}, true));
  CHECK(empty_bearer.error == caller_error::missing_key);

  auto wrong_bearer = rejected(identify_caller(table, {.authorization = "Bearer tg-eng-key-000009"}, true));
  CHECK(wrong_bearer.error == caller_error::invalid_key);
  CHECK(wrong_bearer.message.find("The API key provided is not a valid tollgate virtual key") != std::string::npos);
  CHECK(wrong_bearer.message.find("Authorization") != std::string::npos);
  CHECK(wrong_bearer.message.find("000009") == std::string::npos);

  auto wrong_api_key = rejected(identify_caller(table, {.api_key = "sk-ant-placeholder"}, true));
  CHECK(wrong_api_key.error == caller_error::invalid_key);
  CHECK(wrong_api_key.message.find("x-api-key") != std::string::npos);

  // No keys configured (the loader refuses that with require_key, but the rule still holds).
  CHECK(rejected(identify_caller({}, {.authorization = "Bearer whatever-123"}, true)).error == caller_error::invalid_key);
  CHECK(caller_error_name(caller_error::invalid_key) == "invalid_key");
}

TEST_CASE("caller: malformed attribution headers are rejected") {
  std::string sixteen;
  for (int i = 0; i < 16; ++i) sixteen += "d" + std::to_string(i) + ",";
  const std::string seventeen = sixteen + "d16";
  struct row {
    caller_headers headers;
    const char* header;
    const char* message_part;
  };
  const std::string long_department(129, 'a');
  const std::string long_user(257, 'u');
  const row rows[] = {
      {{.departments = seventeen}, "x-tollgate-department", "at most 16"},
      {{.departments = "eng,data science"}, "x-tollgate-department", "department 2 must be"},
      {{.departments = long_department}, "x-tollgate-department", "1 to 128"},
      {{.departments = "eng;ml"}, "x-tollgate-department", "department 1"},
      {{.user = long_user}, "x-tollgate-user", "longer than 256"},
      {{.user = "bob\x01"}, "x-tollgate-user", "printable ASCII"},
      {{.agent = "caf\xc3\xa9"}, "x-tollgate-agent", "printable ASCII"},
  };
  auto table = sample_keys();
  const std::string eng_bearer = "Bearer " + std::string(eng_secret);
  for (const auto& r : rows) {
    CAPTURE(r.message_part);
    for (bool with_key : {false, true}) {
      auto headers = r.headers;
      if (with_key) headers.authorization = eng_bearer;  // validated even when the key overrides them
      auto rejection = rejected(identify_caller(with_key ? table : key_table{}, headers, false));
      CHECK(rejection.error == caller_error::bad_header);
      CHECK(rejection.message.starts_with(std::string(r.header) + ": "));
      CHECK(rejection.message.find(r.message_part) != std::string::npos);
    }
  }
  // The limits themselves are allowed; duplicates count once.
  CHECK(identified(identify_caller({}, {.departments = sixteen + "d0,d1"}, false)).departments.size() == 16);
  CHECK(identified(identify_caller({}, {.departments = "a.b_c:d@e/f-g"}, false)).departments.size() == 1);
  CHECK(identified(identify_caller({}, {.user = std::string(256, 'u')}, false)).user.size() == 256);
  CHECK(valid_department("ops@corp/sre-1"));
  CHECK_FALSE(valid_department(""));
}

TEST_CASE("caller: departments of a key built outside TOLLGATE_KEYS are deduplicated too") {
  auto key = make_virtual_key("tg-admin-made-key-1");  // as the admin API builds them
  key.departments = {"eng", "ml", "eng"};
  key_table table(std::vector<virtual_key>{key});
  auto id = identified(identify_caller(table, {.api_key = "tg-admin-made-key-1"}, true));
  CHECK(id.departments == std::vector<std::string>{"eng", "ml"});
}
