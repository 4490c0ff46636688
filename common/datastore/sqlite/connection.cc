#include "common/datastore/sqlite/connection.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace calico::datastore::sqlite {

Query::~Query() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Query& Query::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Query& Query::Bind(int index, std::string_view bytes) {
  // A null data pointer would bind SQL NULL, not an empty value.
  if (bytes.empty()) {
    sqlite3_bind_zeroblob(stmt_, index, 0);
  } else {
    sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
  }
  return *this;
}

Query& Query::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

absl::StatusOr<bool> Query::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return connection_->Error(rc, sqlite3_sql(stmt_));
}

absl::Status Query::Run() {
  while (true) {
    ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return absl::OkStatus();
  }
}

std::string Query::Bytes(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return std::string();
  return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

int Connection::OnBusy(void* self, int count) {
  auto* c = static_cast<Connection*>(self);
  if (count == 0) c->busy_slept_us_ = 0;
  if (c->busy_slept_us_ >= c->busy_timeout_us_) return 0;  // give up: SQLITE_BUSY
  int64_t sleep_us = std::min<int64_t>(1000, int64_t{50} << std::min(count, 5));
  std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
  c->busy_slept_us_ += sleep_us;
  return 1;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path,
                                                             const ConnectionOptions& options) {
  sqlite3* db = nullptr;
  // NOMUTEX: every owner serialises its own use; SQLite's mutex would only add cost.
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  auto connection = std::unique_ptr<Connection>(new Connection(path, db));
  if (rc != SQLITE_OK) return connection->Error(rc, "opening the database");
  // SQLite's own busy_timeout sleeps 1, 2, 5, 10 ... 100 ms between tries; with ipamd and
  // felixd writing the same file, one collision then cost a pod ADD tens of milliseconds. Our
  // handler retries after 50 us, doubling to at most 1 ms.
  connection->busy_timeout_us_ = absl::ToInt64Microseconds(options.busy_timeout);
  sqlite3_busy_handler(db, &Connection::OnBusy, connection.get());

  // Switching to WAL takes an exclusive lock and may report BUSY without consulting the busy
  // handler when another process is doing the same on a fresh file, so retry it ourselves.
  absl::Time deadline = absl::Now() + options.busy_timeout;
  while (true) {
    absl::Status status = connection->Exec("PRAGMA journal_mode=WAL");
    if (status.ok()) break;
    if (status.code() != absl::StatusCode::kUnavailable || absl::Now() > deadline) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  RETURN_IF_ERROR(connection->Exec(options.fsync_each_commit ? "PRAGMA synchronous=FULL"
                                                             : "PRAGMA synchronous=NORMAL"));
  return connection;
}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

absl::StatusOr<Query> Connection::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return Query(*this, it->second);
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, absl::StrCat("preparing ", sql));
  statements_.emplace(sql, stmt);
  return Query(*this, stmt);
}

absl::Status Connection::Exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, sql);
  return absl::OkStatus();
}

void Connection::RollbackQuietly() {
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

absl::Status Connection::Error(int rc, std::string_view doing) const {
  std::string message = absl::StrCat("embedded datastore ", path_, ": ",
                                     absl::string_view(doing.data(), doing.size()), ": ",
                                     db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(
          absl::StrCat(message, " (another writer held the lock beyond busy_timeout)"));
    case SQLITE_IOERR:
    case SQLITE_FULL:
      return absl::UnavailableError(message);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return absl::DataLossError(absl::StrCat(message, " (the file is not a healthy database)"));
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::PermissionDeniedError(message);
    case SQLITE_CANTOPEN:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace calico::datastore::sqlite
