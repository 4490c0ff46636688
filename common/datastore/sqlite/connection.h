#pragma once
// A thin RAII layer over one sqlite3 connection: cached prepared statements, typed binds, and
// SQLite result codes mapped to absl codes with the database path in every message.
// Not thread-safe: each owner (a SqliteDatastore behind its mutex, or one Watch) has its own.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace calico::datastore::sqlite {

class Connection;

// One execution of a cached statement. Resets the statement (and drops its bindings) when it
// goes out of scope, so an early return never leaves a statement holding a read snapshot.
class Query {
 public:
  Query(Connection& connection, sqlite3_stmt* stmt) : connection_(&connection), stmt_(stmt) {}
  Query(Query&& other) noexcept
      : connection_(other.connection_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  Query& operator=(Query&&) = delete;
  ~Query();

  // Indexes are 1-based, as in SQL's ?1.
  Query& Bind(int index, int64_t value);
  Query& Bind(int index, std::string_view bytes);  // as a BLOB; empty is a zero-length BLOB
  Query& BindNull(int index);

  // True while a row is available.
  absl::StatusOr<bool> Step();
  // Steps to completion (for statements that return no rows).
  absl::Status Run();

  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string Bytes(int column) const;

 private:
  Connection* connection_;
  sqlite3_stmt* stmt_;
};

struct ConnectionOptions {
  absl::Duration busy_timeout = absl::Seconds(5);
  bool fsync_each_commit = true;
};

class Connection {
 public:
  // Opens (creating if missing) `path` in WAL mode.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path,
                                                          const ConnectionOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Prepares once per connection (SQLITE_PREPARE_PERSISTENT) and reuses it afterwards. `sql`
  // must be a string literal: its address is the cache key.
  absl::StatusOr<Query> Prepare(const char* sql);
  // For statements without results or parameters (BEGIN, COMMIT, DDL).
  absl::Status Exec(const char* sql);
  // Rolls back an open transaction, if any; used on error paths, so it never fails.
  void RollbackQuietly();

  // Maps a SQLite result code to a Status naming the database and what was being done.
  absl::Status Error(int rc, std::string_view doing) const;
  const std::string& path() const { return path_; }

 private:
  Connection(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

  std::string path_;
  sqlite3* db_;
  // Busy handling (another process holds the write lock): how long to keep trying, and how long
  // this wait has slept so far.
  int64_t busy_timeout_us_ = 0;
  int64_t busy_slept_us_ = 0;
  static int OnBusy(void* self, int count);
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

}  // namespace calico::datastore::sqlite
