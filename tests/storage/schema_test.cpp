#include "storage/schema.hpp"
#include "storage_fixture.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <fstream>

using namespace tollgate::storage;
using tollgate::storage::testing::scalar;
using tollgate::storage::testing::temp_dir;

TEST_CASE("schema: migrates an empty file to the current version") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  auto opened = open_database(path);
  REQUIRE_MESSAGE(opened, opened.error);
  CHECK(read_user_version(opened.db.get()) == schema_version);
  opened.db.reset();
  CHECK(scalar(path, "PRAGMA user_version") == schema_version);
  CHECK(scalar(path, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN "
                     "('requests','throttle_audit','budgets','quotas')") == 4);
  CHECK(scalar(path, "SELECT count(*) FROM sqlite_master WHERE type='index' AND name IN "
                     "('requests_time','requests_provider_time')") == 2);
}

TEST_CASE("schema: WAL, synchronous=NORMAL and busy_timeout are set") {
  temp_dir dir;
  auto opened = open_database(dir.file("ledger.db"), open_options{.busy_timeout_ms = 1234});
  REQUIRE_MESSAGE(opened, opened.error);
  sqlite3* db = opened.db.get();
  auto text = [&](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string value;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return value;
  };
  CHECK(text("PRAGMA journal_mode") == "wal");
  CHECK(text("PRAGMA synchronous") == "1");  // NORMAL
  CHECK(text("PRAGMA busy_timeout") == "1234");
}

TEST_CASE("schema: re-opening is idempotent and keeps data") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  {
    auto opened = open_database(path);
    REQUIRE_MESSAGE(opened, opened.error);
    REQUIRE(sqlite3_exec(opened.db.get(),
                         "INSERT INTO budgets VALUES ('provider','openai','month',NULL,5000000)",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  for (int i = 0; i < 3; ++i) {
    auto opened = open_database(path);
    REQUIRE_MESSAGE(opened, opened.error);
    CHECK(read_user_version(opened.db.get()) == schema_version);
  }
  CHECK(scalar(path, "SELECT limit_micro_usd FROM budgets WHERE name='openai'") == 5000000);
}

TEST_CASE("schema: a newer schema version is refused with a clear error") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  {
    auto opened = open_database(path);
    REQUIRE_MESSAGE(opened, opened.error);
    REQUIRE(sqlite3_exec(opened.db.get(), "PRAGMA user_version=99", nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  auto opened = open_database(path);
  CHECK_FALSE(opened);
  CHECK(opened.error.find("schema version 99") != std::string::npos);
  CHECK(opened.error.find("newer") != std::string::npos);
  CHECK(opened.error.find(path) != std::string::npos);
  CHECK(scalar(path, "PRAGMA user_version") == 99);  // untouched
}

TEST_CASE("schema: a corrupt file is an error value, not a crash") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>((i * 7919) & 0xff));
  }
  auto opened = open_database(path);
  CHECK_FALSE(opened);
  CHECK(opened.code == SQLITE_NOTADB);
  CHECK(opened.error.find(path) != std::string::npos);
  CHECK(opened.error.find("not a database") != std::string::npos);
}

TEST_CASE("schema: an unopenable path is an error value") {
  temp_dir dir;
  auto opened = open_database(dir.file("missing-dir/ledger.db"));
  CHECK_FALSE(opened);
  CHECK(opened.code == SQLITE_CANTOPEN);
  CHECK_FALSE(opened.error.empty());
}

TEST_CASE("schema: read-only open of an unmigrated file is refused") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  auto opened = open_database(path, open_options{.read_only = true});
  CHECK_FALSE(opened);
  CHECK(opened.error.find("read-only") != std::string::npos);
}
