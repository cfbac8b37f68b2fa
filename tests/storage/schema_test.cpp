#include "storage/schema.hpp"
#include "storage_fixture.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <string>

using namespace tollgate::storage;
using tollgate::storage::testing::prepare_file;
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
                     "('requests','throttle_audit','budgets','quotas','virtual_keys',"
                     "'quota_models')") == 6);
  CHECK(scalar(path, "SELECT count(*) FROM sqlite_master WHERE type='index' AND name='throttle_audit_time'") == 1);
  // Every ledger insert maintains each index on requests, so any index there is a cost per
  // row; time windows use the ids instead (requests_id_floor).
  CHECK(scalar(path, "SELECT count(*) FROM sqlite_master WHERE type='index' AND tbl_name='requests'") == 0);
}

TEST_CASE("schema: a version 1 file migrates to version 2 keeping its rows") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  // Exactly what a version 1 tollgate left behind: step 1 only.
  prepare_file(path, "INSERT INTO requests (time_ms, request_id, provider, model, http_status,"
                     " cost_micro_usd) VALUES (1, 'r1', 'openai', 'gpt-4o', 200, 77);"
                     "INSERT INTO throttle_audit (time_ms, provider, from_state, to_state,"
                     " spent_micro_usd, budget_micro_usd, projected_micro_usd)"
                     " VALUES (2, 'openai', 'normal', 'throttled', 1, 2, 3);"
                     "INSERT INTO budgets VALUES ('provider','openai','month',NULL,5000000);"
                     "INSERT INTO quotas VALUES ('user','alice','day',100,NULL);", 1);
  REQUIRE(scalar(path, "PRAGMA user_version") == 1);
  REQUIRE(scalar(path, "SELECT count(*) FROM sqlite_master WHERE name='virtual_keys'") == 0);

  auto opened = open_database(path, open_options{.target_version = 2});
  REQUIRE_MESSAGE(opened, opened.error);
  CHECK(read_user_version(opened.db.get()) == 2);
  opened.db.reset();
  CHECK(scalar(path, "SELECT cost_micro_usd FROM requests WHERE request_id='r1'") == 77);
  CHECK(scalar(path, "SELECT projected_micro_usd FROM throttle_audit") == 3);
  CHECK(scalar(path, "SELECT limit_micro_usd FROM budgets WHERE name='openai'") == 5000000);
  CHECK(scalar(path, "SELECT limit_tokens FROM quotas WHERE name='alice'") == 100);
  CHECK(scalar(path, "SELECT count(*) FROM virtual_keys") == 0);
  CHECK(scalar(path, "SELECT count(*) FROM quota_models") == 0);
}

TEST_CASE("schema: a version 2 file migrates to version 3 keeping its rows, minus one index") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  prepare_file(path, "INSERT INTO requests (time_ms, request_id, provider, model, http_status,"
                     " cost_micro_usd) VALUES (1, 'r1', 'openai', 'gpt-4o', 200, 77),"
                     " (2, 'r2', 'anthropic', 'claude-sonnet-4', 529, 0);"
                     "INSERT INTO virtual_keys VALUES"
                     " ('fp1','hash1','tg_...1','ci','search','alice','bot',5);", 2);
  REQUIRE(scalar(path, "PRAGMA user_version") == 2);
  REQUIRE(scalar(path, "SELECT count(*) FROM sqlite_master WHERE name='requests_provider_time'") == 1);

  auto opened = open_database(path, open_options{.target_version = 3});
  REQUIRE_MESSAGE(opened, opened.error);
  CHECK(read_user_version(opened.db.get()) == 3);
  opened.db.reset();
  CHECK(scalar(path, "SELECT count(*) FROM sqlite_master WHERE name='requests_provider_time'") == 0);
  CHECK(scalar(path, "SELECT count(*) FROM sqlite_master WHERE name='requests_time'") == 1);
  CHECK(scalar(path, "SELECT count(*) FROM requests") == 2);
  CHECK(scalar(path, "SELECT cost_micro_usd FROM requests WHERE request_id='r1'") == 77);
  CHECK(scalar(path, "SELECT http_status FROM requests WHERE provider='anthropic'") == 529);
  CHECK(scalar(path, "SELECT created_ms FROM virtual_keys WHERE fingerprint='fp1'") == 5);
}

TEST_CASE("schema: a version 3 file migrates to version 4: ids bound their times, order and rows kept") {
  temp_dir dir;
  const auto path = dir.file("ledger.db");
  // Rows as a version 3 tollgate wrote them: ids 1, 2, 3, ... in the order written, while
  // time_ms (a request's start) goes back and forth, as long streams finish after short ones.
  const std::int64_t times[] = {1'700'000'000'500, 1'700'000'000'100, 1'700'000'000'900, 1'700'000'000'900,
                                1'700'000'000'900, 1'700'000'000'000, 1'700'000'001'000, 5, -3,
                                std::int64_t{1} << 50, 1'700'000'002'000};
  std::string sql;
  int i = 0;
  for (const std::int64_t t : times)
    sql += "INSERT INTO requests (time_ms, request_id, provider, model, http_status, cost_micro_usd) VALUES (" +
           std::to_string(t) + ", 'r" + std::to_string(i++) + "', 'openai', 'gpt-4o', 200, 7);";
  // What an operator may have added: the migration rebuilds the table, and must keep them all.
  sql += "CREATE INDEX requests_by_key ON requests(key_fingerprint);"
         "CREATE VIEW expensive AS SELECT request_id FROM requests WHERE cost_micro_usd > 5;"
         "CREATE TABLE big_spenders (request_id TEXT);"
         "CREATE TRIGGER note_big AFTER INSERT ON requests WHEN NEW.cost_micro_usd > 1000000"
         " BEGIN INSERT INTO big_spenders VALUES (NEW.request_id); END;";
  prepare_file(path, sql.c_str(), 3);
  auto opened = open_database(path);
  REQUIRE_MESSAGE(opened, opened.error);
  CHECK(read_user_version(opened.db.get()) == 4);
  opened.db.reset();
  CHECK(scalar(path, "SELECT count(*) FROM sqlite_master WHERE name='requests_time'") == 0);
  CHECK(scalar(path, "SELECT count(*) FROM sqlite_master WHERE name='requests_by_key' AND tbl_name='requests'") == 1);
  CHECK(scalar(path, "SELECT count(*) FROM requests") == static_cast<std::int64_t>(std::size(times)));
  CHECK(scalar(path, "SELECT count(*) FROM expensive") == static_cast<std::int64_t>(std::size(times)));
  std::int64_t previous_id = std::numeric_limits<std::int64_t>::min();
  for (std::size_t i = 0; i < std::size(times); ++i) {
    CAPTURE(i);
    const std::string where = " FROM requests WHERE request_id = 'r" + std::to_string(i) + "'";
    CHECK(scalar(path, ("SELECT time_ms" + where).c_str()) == times[i]);
    const std::int64_t id = scalar(path, ("SELECT id" + where).c_str());
    CHECK(id >= requests_id_floor(times[i]));  // the bound every time window relies on
    CHECK(id > previous_id);                    // the order rows were written in
    previous_id = id;
  }
  // The trigger still fires on the new table.
  {
    auto again = open_database(path);
    REQUIRE_MESSAGE(again, again.error);
    REQUIRE(sqlite3_exec(again.db.get(),
                         "INSERT INTO requests (time_ms, request_id, provider, model, http_status, cost_micro_usd)"
                         " VALUES (1700000005000, 'big', 'openai', 'gpt-4o', 200, 2000000)",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  CHECK(scalar(path, "SELECT count(*) FROM big_spenders WHERE request_id = 'big'") == 1);
  // The smallest such numbering: the first row sits on its floor, the second right after it.
  CHECK(scalar(path, "SELECT id FROM requests WHERE request_id = 'r0'") == requests_id_floor(times[0]));
  CHECK(scalar(path, "SELECT id FROM requests WHERE request_id = 'r1'") == requests_id_floor(times[0]) + 1);
}

TEST_CASE("schema: requests_id_floor clamps times so ids stay exact in JSON") {
  CHECK(requests_id_floor(0) == 0);
  CHECK(requests_id_floor(-5) == 0);
  CHECK(requests_id_floor(1) == 1024);
  CHECK(requests_id_floor(1'700'000'000'000) == 1'700'000'000'000 * 1024);
  CHECK(requests_id_floor(std::numeric_limits<std::int64_t>::max()) < (std::int64_t{1} << 53));
  CHECK(requests_id_floor(requests_id_max_time_ms) == requests_id_floor(requests_id_max_time_ms + 1));
  // Monotonic, which is all the bound needs: a later time never has a lower floor.
  for (const std::int64_t t : std::initializer_list<std::int64_t>{-1, 0, 1, 1'700'000'000'000, requests_id_max_time_ms - 1})
    CHECK(requests_id_floor(t) <= requests_id_floor(t + 1));
}

TEST_CASE("schema: paging and time windows need no index and no sort") {
  temp_dir dir;
  auto opened = open_database(dir.file("ledger.db"));
  REQUIRE_MESSAGE(opened, opened.error);
  auto plan = [&](const char* sql) {
    std::string steps;
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(opened.db.get(), (std::string("EXPLAIN QUERY PLAN ") + sql).c_str(),
                               -1, &stmt, nullptr) == SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW)
      steps += std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3))) + "; ";
    sqlite3_finalize(stmt);
    return steps;
  };
  // The same shapes as storage/ledger_queries.cpp, storage/spend.cpp and policy_store.cpp run.
  const auto rows = plan("SELECT * FROM requests ORDER BY id DESC LIMIT 10 OFFSET 20");
  CHECK_MESSAGE(rows.find("TEMP B-TREE") == std::string::npos, rows);
  const auto audit = plan("SELECT * FROM throttle_audit ORDER BY time_ms DESC, id DESC LIMIT 10");
  CHECK_MESSAGE(audit.find("throttle_audit_time") != std::string::npos, audit);
  CHECK_MESSAGE(audit.find("TEMP B-TREE") == std::string::npos, audit);
  const auto window = plan("SELECT provider, count(*) FROM requests WHERE id >= 1024 AND time_ms >= 1 AND time_ms < 2"
                           " GROUP BY provider, model, http_status");
  CHECK_MESSAGE(window.find("SEARCH requests USING INTEGER PRIMARY KEY (rowid>?)") != std::string::npos, window);
  const auto spend = plan("SELECT provider, sum(cost_micro_usd) FROM requests WHERE id >= 1024 AND time_ms >= 1"
                          " AND time_ms < 2 GROUP BY provider, key_fingerprint, departments, user_name");
  CHECK_MESSAGE(spend.find("SEARCH requests USING INTEGER PRIMARY KEY (rowid>?)") != std::string::npos, spend);
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
  prepare_file(path, "INSERT INTO budgets VALUES ('provider','openai','month',NULL,5000000)");
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
  prepare_file(path, "PRAGMA user_version=99");
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
