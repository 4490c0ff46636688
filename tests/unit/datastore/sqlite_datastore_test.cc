#include "common/datastore/sqlite/sqlite_datastore.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "tests/support/datastore/conformance.h"

namespace calico::datastore {
namespace {

using testing::TempDir;

// A fresh database file in its own temp dir; every Connect() opens another Datastore on it.
class SqliteHarness : public testing::Harness {
 public:
  explicit SqliteHarness(SqliteOptions options = {}) : options_(options) {
    config_.type = BackendType::kEmbedded;
    config_.sqlite_path = dir_.path() + "/calico.db";
  }
  std::unique_ptr<Datastore> Connect() override {
    absl::StatusOr<std::unique_ptr<Datastore>> store = OpenSqlite(config_, options_);
    if (!store.ok()) FAIL("OpenSqlite: " << store.status());
    return std::move(store).value();
  }
  std::map<std::string, std::string> ClientEnvironment() const override {
    return {{"DATASTORE_TYPE", "embedded"}, {"CALICO_DATASTORE_PATH", config_.sqlite_path}};
  }
  const std::string& path() const { return config_.sqlite_path; }

 private:
  TempDir dir_;
  Config config_;
  SqliteOptions options_;
};

}  // namespace

CALICO_DATASTORE_CONFORMANCE_TESTS("sqlite conformance", "[unit][datastore][sqlite]",
                                   std::make_unique<SqliteHarness>())

namespace {

std::string Msg(const absl::Status& s) { return ToStd(s.message()); }

template <typename T>
T Ok(absl::StatusOr<T> result) {
  if (!result.ok()) FAIL(result.status());
  return std::move(result).value();
}

std::vector<Event> Drain(Watch& watch, size_t count, absl::Duration budget = absl::Seconds(4)) {
  std::vector<Event> events;
  absl::Time deadline = absl::Now() + budget;
  while (events.size() < count && absl::Now() < deadline) {
    std::vector<Event> batch = Ok(watch.Next(deadline - absl::Now()));
    events.insert(events.end(), batch.begin(), batch.end());
  }
  return events;
}

int64_t CountRows(const std::string& path, const char* table) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string sql = absl::StrCat("SELECT count(*) FROM ", table);
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  int64_t count = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return count;
}

TEST_CASE("sqlite: two Datastore objects on one file see each other", "[unit][datastore][sqlite]") {
  SqliteHarness harness;
  std::unique_ptr<Datastore> one = harness.Connect();
  std::unique_ptr<Datastore> two = harness.Connect();
  Revision start = Ok(one->CurrentRevision());
  // Separate objects share no in-process wake-up: these watches rely on polling the file,
  // exactly as a watch in another process does.
  std::unique_ptr<Watch> watch_one = Ok(one->WatchPrefix("/x/", start));
  std::unique_ptr<Watch> watch_two = Ok(two->WatchPrefix("/x/", start));
  Revision a = Ok(one->Create("/x/a", "1"));
  Revision b = Ok(two->Create("/x/b", "2"));
  REQUIRE(Ok(two->Get("/x/a")).mod_revision == a);
  REQUIRE(Ok(one->Get("/x/b")).mod_revision == b);
  REQUIRE(Ok(one->CurrentRevision()) == b);
  for (Watch* watch : {watch_one.get(), watch_two.get()}) {
    std::vector<Event> events = Drain(*watch, 2);
    REQUIRE(events == std::vector<Event>{{EventType::kPut, "/x/a", "1", a},
                                         {EventType::kPut, "/x/b", "2", b}});
  }
}

TEST_CASE("sqlite: data and revision survive reopening", "[unit][datastore][sqlite]") {
  SqliteHarness harness;
  Revision rev;
  {
    std::unique_ptr<Datastore> store = harness.Connect();
    Ok(store->Create("/k", "v"));
    rev = Ok(store->Update("/k", "w", kAnyRevision));
  }
  std::unique_ptr<Datastore> store = harness.Connect();
  REQUIRE(Ok(store->CurrentRevision()) == rev);
  REQUIRE(Ok(store->Get("/k")).value == "w");
  REQUIRE(Ok(store->Create("/k2", "v")) == rev + 1);
}

TEST_CASE("sqlite: auto-compaction keeps the configured history", "[unit][datastore][sqlite]") {
  SqliteOptions options;
  options.retain_revisions = 10;
  options.retain_duration = absl::ZeroDuration();
  options.compaction_batch = 8;
  options.fsync_each_commit = false;
  SqliteHarness harness(options);
  std::unique_ptr<Datastore> store = harness.Connect();
  Ok(store->Create("/c", "0"));
  for (int i = 1; i < 200; ++i) Ok(store->Update("/c", std::to_string(i), kAnyRevision));
  Revision current = Ok(store->CurrentRevision());
  REQUIRE(current == 200);

  // History is bounded: retention plus at most one batch (and the check step).
  int64_t rows = CountRows(harness.path(), "history");
  REQUIRE(rows >= 10);
  REQUIRE(rows <= 10 + 8 + 2);

  absl::StatusOr<std::unique_ptr<Watch>> old = store->WatchPrefix("/", 0);
  REQUIRE(IsCompacted(old.status()));
  INFO(old.status().ToString());
  REQUIRE(Msg(old.status()).find("revision 1 was requested") != std::string::npos);
  REQUIRE(Msg(old.status()).find("re-list") != std::string::npos);

  // The last retain_revisions revisions can still be watched.
  std::unique_ptr<Watch> recent = Ok(store->WatchPrefix("/", current - 10));
  std::vector<Event> events = Drain(*recent, 10);
  REQUIRE(events.size() == 10);
  REQUIRE(events.front().revision == current - 9);
  REQUIRE(events.back() == Event{EventType::kPut, "/c", "199", current});
}

TEST_CASE("sqlite: auto-compaction keeps recent revisions however many",
          "[unit][datastore][sqlite]") {
  SqliteOptions options;
  options.retain_revisions = 0;
  options.retain_duration = absl::Hours(1);
  options.compaction_batch = 4;
  options.fsync_each_commit = false;
  SqliteHarness harness(options);
  std::unique_ptr<Datastore> store = harness.Connect();
  for (int i = 0; i < 50; ++i) Ok(store->Create(absl::StrCat("/k/", i), "v"));
  REQUIRE(CountRows(harness.path(), "history") == 50);
  std::unique_ptr<Watch> watch = Ok(store->WatchPrefix("/k/", 0));
  REQUIRE(Drain(*watch, 50).size() == 50);
}

TEST_CASE("sqlite: explicit Compact validates and is idempotent", "[unit][datastore][sqlite]") {
  SqliteHarness harness;
  std::unique_ptr<Datastore> store = harness.Connect();
  for (int i = 0; i < 5; ++i) Ok(store->Create(absl::StrCat("/k/", i), "v"));
  absl::Status future = store->Compact(6);
  REQUIRE(future.code() == absl::StatusCode::kInvalidArgument);
  REQUIRE_FALSE(IsCompacted(future));
  REQUIRE(store->Compact(3).ok());
  REQUIRE(store->Compact(3).ok());
  REQUIRE(store->Compact(2).ok());  // already compacted further: nothing to do
  REQUIRE(CountRows(harness.path(), "history") == 2);
}

TEST_CASE("sqlite: a watch that lags behind a compaction fails and stays failed",
          "[unit][datastore][sqlite]") {
  SqliteHarness harness;
  std::unique_ptr<Datastore> store = harness.Connect();
  Revision first = Ok(store->Create("/l/a", "1"));
  std::unique_ptr<Watch> watch = Ok(store->WatchPrefix("/l/", first));
  Ok(store->Create("/l/b", "2"));
  Revision third = Ok(store->Create("/l/c", "3"));
  // The watch has not read revision first+1 yet when it is compacted away.
  REQUIRE(store->Compact(third).ok());
  absl::StatusOr<std::vector<Event>> next = watch->Next(absl::Seconds(1));
  INFO(next.status().ToString());
  REQUIRE(IsCompacted(next.status()));
  REQUIRE(Msg(next.status()).find(absl::StrCat("revision ", first + 1, " was requested")) !=
          std::string::npos);
  REQUIRE(IsCompacted(watch->Next(absl::Milliseconds(10)).status()));
}

TEST_CASE("sqlite: a watch reads a long backlog in order", "[unit][datastore][sqlite]") {
  SqliteOptions options;
  options.fsync_each_commit = false;
  SqliteHarness harness(options);
  std::unique_ptr<Datastore> store = harness.Connect();
  // More than one poll batch (1000 rows).
  constexpr int kCount = 1500;
  Ok(store->Create("/b", "0"));
  for (int i = 1; i < kCount; ++i) Ok(store->Update("/b", std::to_string(i), kAnyRevision));
  std::unique_ptr<Watch> watch = Ok(store->WatchPrefix("/b", 0));
  std::vector<Event> events = Drain(*watch, kCount);
  REQUIRE(events.size() == kCount);
  for (int i = 0; i < kCount; ++i) {
    REQUIRE(events[i].revision == i + 1);
    REQUIRE(events[i].value == std::to_string(i));
  }
  REQUIRE(Ok(watch->Next(absl::Milliseconds(50))).empty());
}

TEST_CASE("sqlite: an expired key is hidden at once and deleted by the next writer",
          "[unit][datastore][sqlite]") {
  SqliteHarness harness;
  std::unique_ptr<Datastore> store = harness.Connect();
  Revision created = Ok(store->Create("/t/k", "v", {absl::Milliseconds(100)}));
  REQUIRE(Ok(store->Get("/t/k")).value == "v");
  // No watch exists, so nothing sweeps until a write.
  absl::Time expiry = absl::Now() + absl::Milliseconds(150);
  while (absl::Now() < expiry) {
    ::usleep(10000);
  }
  REQUIRE(store->Get("/t/k").status().code() == absl::StatusCode::kNotFound);
  REQUIRE(Ok(store->List("/t/")).entries.empty());
  REQUIRE(store->Update("/t/k", "x", kAnyRevision).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(Ok(store->CurrentRevision()) == created);  // the failed update rolled its sweep back

  Revision other = Ok(store->Create("/t/other", "w"));
  REQUIRE(other == created + 2);  // the sweep's delete, then this create
  std::unique_ptr<Watch> watch = Ok(store->WatchPrefix("/t/", created));
  REQUIRE(Drain(*watch, 2) == std::vector<Event>{{EventType::kDelete, "/t/k", "", created + 1},
                                                 {EventType::kPut, "/t/other", "w", other}});
}

TEST_CASE("sqlite: a writer blocked beyond busy_timeout gets Unavailable",
          "[unit][datastore][sqlite]") {
  SqliteOptions options;
  options.busy_timeout = absl::Milliseconds(100);
  SqliteHarness harness(options);
  std::unique_ptr<Datastore> store = harness.Connect();
  Ok(store->Create("/k", "v"));

  sqlite3* blocker = nullptr;
  REQUIRE(sqlite3_open(harness.path().c_str(), &blocker) == SQLITE_OK);
  REQUIRE(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  absl::StatusOr<Revision> blocked = store->Update("/k", "w", kAnyRevision);
  // Reads do not wait for writers in WAL mode.
  absl::StatusOr<Entry> read = store->Get("/k");
  sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(blocker);

  REQUIRE(blocked.status().code() == absl::StatusCode::kUnavailable);
  REQUIRE(Msg(blocked.status()).find(harness.path()) != std::string::npos);
  REQUIRE(read.ok());
  REQUIRE(Ok(store->Update("/k", "w", kAnyRevision)) == 2);
}

TEST_CASE("sqlite: bad paths give errors naming the path", "[unit][datastore][sqlite]") {
  TempDir dir;
  Config config;

  SECTION("a corrupt file") {
    config.sqlite_path = dir.path() + "/calico.db";
    std::ofstream(config.sqlite_path) << std::string(8192, 'x');
    absl::StatusOr<std::unique_ptr<Datastore>> store = OpenSqlite(config);
    INFO(store.status().ToString());
    REQUIRE(store.status().code() == absl::StatusCode::kDataLoss);
    REQUIRE(Msg(store.status()).find(config.sqlite_path) != std::string::npos);
  }
  SECTION("a parent that is a file") {
    std::ofstream(dir.path() + "/file") << "x";
    config.sqlite_path = dir.path() + "/file/sub/calico.db";
    absl::StatusOr<std::unique_ptr<Datastore>> store = OpenSqlite(config);
    INFO(store.status().ToString());
    REQUIRE_FALSE(store.ok());
    REQUIRE(Msg(store.status()).find(config.sqlite_path) != std::string::npos);
    REQUIRE(Msg(store.status()).find("not a directory") != std::string::npos);
  }
  SECTION("a directory where the file should be") {
    config.sqlite_path = dir.path() + "/isdir";
    REQUIRE(mkdir(config.sqlite_path.c_str(), 0700) == 0);
    absl::StatusOr<std::unique_ptr<Datastore>> store = OpenSqlite(config);
    INFO(store.status().ToString());
    REQUIRE_FALSE(store.ok());
    REQUIRE(Msg(store.status()).find(config.sqlite_path) != std::string::npos);
  }
}

TEST_CASE("sqlite: missing parent directories are created 0700", "[unit][datastore][sqlite]") {
  TempDir dir;
  Config config;
  config.sqlite_path = dir.path() + "/var/lib/calico/calico.db";
  std::unique_ptr<Datastore> store = Ok(OpenSqlite(config));
  REQUIRE(store->Describe() == "embedded (" + config.sqlite_path + ")");
  struct stat st;
  REQUIRE(stat((dir.path() + "/var/lib/calico").c_str(), &st) == 0);
  REQUIRE((st.st_mode & 0777) == 0700);
  REQUIRE(stat((dir.path() + "/var").c_str(), &st) == 0);
  REQUIRE((st.st_mode & 0777) == 0700);
}

}  // namespace
}  // namespace calico::datastore
