#include "common/datastore/sqlite/sqlite_datastore.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"
#include "common/datastore/sqlite/connection.h"
#include "common/log/log.h"

namespace calico::datastore {
namespace {

using sqlite::Connection;
using sqlite::ConnectionOptions;
using sqlite::Query;

constexpr int64_t kSchemaVersion = 1;
constexpr int64_t kTypePut = 0;
constexpr int64_t kTypeDelete = 1;
// Rows a watch reads per poll; bounds memory when it resumes far behind.
constexpr int64_t kWatchBatch = 1000;
// Reads only wait for locks during WAL recovery; a watch must not block its caller for long.
constexpr absl::Duration kWatchBusyTimeout = absl::Milliseconds(100);

// `expires_at` is wall-clock ms: the database outlives the boot, CLOCK_MONOTONIC does not.
int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

std::string KeyForMessage(std::string_view key) { return std::string(key); }

// [lo, hi) covering every key that starts with `prefix`; hi is nullopt when unbounded
// (empty prefix, or a prefix of only 0xff bytes).
struct KeyRange {
  std::string lo;
  std::optional<std::string> hi;
};
KeyRange PrefixRange(std::string_view prefix) {
  KeyRange range{std::string(prefix), std::nullopt};
  std::string hi(prefix);
  while (!hi.empty()) {
    auto last = static_cast<unsigned char>(hi.back());
    if (last != 0xff) {
      hi.back() = static_cast<char>(last + 1);
      range.hi = std::move(hi);
      break;
    }
    hi.pop_back();
  }
  return range;
}

// Creates every missing directory of `path`'s parent with mode 0700: the database holds
// credentials-adjacent cluster state, so only root should list it.
absl::Status MakeParentDirs(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return absl::OkStatus();
  std::string dir = path.substr(0, slash);
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string partial = dir.substr(0, pos);
    struct stat st;
    if (stat(partial.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "embedded datastore ", path, ": ", partial, " exists and is not a directory"));
      }
      continue;
    }
    if (mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat("embedded datastore ", path,
                                                        ": creating directory ", partial, ": ",
                                                        std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

// Wakes this process's watches right after a commit instead of at their next poll.
class Notifier {
 public:
  uint64_t Generation() {
    std::lock_guard<std::mutex> lock(mu_);
    return generation_;
  }
  void NotifyAll() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++generation_;
    }
    cv_.notify_all();
  }
  void WaitFor(uint64_t seen, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return generation_ != seen; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
};

struct Meta {
  Revision revision = 0;
  Revision compacted = 0;
};

absl::StatusOr<Meta> ReadMeta(Connection& db) {
  ASSIGN_OR_RETURN(Query q, db.Prepare("SELECT revision, compacted FROM meta WHERE id = 1"));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return db.Error(SQLITE_CORRUPT, "reading meta (row missing)");
  return Meta{q.Int(0), q.Int(1)};
}

absl::Status AppendHistory(Connection& db, Revision rev, std::string_view key, int64_t type,
                           std::string_view value, int64_t now_ms) {
  ASSIGN_OR_RETURN(Query q, db.Prepare("INSERT INTO history(rev, key, type, value, written_at) "
                                       "VALUES (?1, ?2, ?3, ?4, ?5)"));
  return q.Bind(1, rev).Bind(2, key).Bind(3, type).Bind(4, value).Bind(5, now_ms).Run();
}

// Deletes every expired key, one revision and one delete event each. Runs inside a write
// transaction; returns the new store revision.
absl::StatusOr<Revision> SweepExpired(Connection& db, Revision rev, int64_t now_ms) {
  std::vector<std::string> expired;
  {
    ASSIGN_OR_RETURN(Query q, db.Prepare("SELECT key FROM kv WHERE expires_at > 0 AND "
                                         "expires_at <= ?1 ORDER BY key"));
    q.Bind(1, now_ms);
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      expired.push_back(q.Bytes(0));
    }
  }
  for (const std::string& key : expired) {
    ++rev;
    ASSIGN_OR_RETURN(Query del, db.Prepare("DELETE FROM kv WHERE key = ?1"));
    RETURN_IF_ERROR(del.Bind(1, key).Run());
    RETURN_IF_ERROR(AppendHistory(db, rev, key, kTypeDelete, "", now_ms));
    log::Debug("datastore_key_expired",
               {{"path", db.path()}, {"key", key}, {"revision", absl::StrCat(rev)}});
  }
  return rev;
}

absl::Status SetRevision(Connection& db, Revision rev) {
  ASSIGN_OR_RETURN(Query q, db.Prepare("UPDATE meta SET revision = ?1 WHERE id = 1"));
  return q.Bind(1, rev).Run();
}

absl::Status CompactTo(Connection& db, Revision rev) {
  ASSIGN_OR_RETURN(Query del, db.Prepare("DELETE FROM history WHERE rev <= ?1"));
  RETURN_IF_ERROR(del.Bind(1, rev).Run());
  ASSIGN_OR_RETURN(Query set, db.Prepare("UPDATE meta SET compacted = ?1 WHERE id = 1"));
  return set.Bind(1, rev).Run();
}

absl::Status CreateSchema(Connection& db) {
  RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  absl::Status status = [&]() -> absl::Status {
    int64_t version = 0;
    {
      ASSIGN_OR_RETURN(Query q, db.Prepare("PRAGMA user_version"));
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (row) version = q.Int(0);
    }
    if (version > kSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrFormat("embedded datastore %s: schema version %d is newer than this binary's %d",
                          db.path(), version, kSchemaVersion));
    }
    RETURN_IF_ERROR(
        db.Exec("CREATE TABLE IF NOT EXISTS meta("
                "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                "  revision INTEGER NOT NULL,"
                "  compacted INTEGER NOT NULL)"));
    RETURN_IF_ERROR(
        db.Exec("INSERT OR IGNORE INTO meta(id, revision, compacted) VALUES (1, 0, 0)"));
    RETURN_IF_ERROR(
        db.Exec("CREATE TABLE IF NOT EXISTS kv("
                "  key BLOB PRIMARY KEY,"
                "  value BLOB NOT NULL,"
                "  create_rev INTEGER NOT NULL,"
                "  mod_rev INTEGER NOT NULL,"
                "  expires_at INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID"));
    RETURN_IF_ERROR(
        db.Exec("CREATE INDEX IF NOT EXISTS kv_expiry ON kv(expires_at) WHERE expires_at > 0"));
    RETURN_IF_ERROR(
        db.Exec("CREATE TABLE IF NOT EXISTS history("
                "  rev INTEGER PRIMARY KEY,"
                "  key BLOB NOT NULL,"
                "  type INTEGER NOT NULL,"
                "  value BLOB NOT NULL,"
                "  written_at INTEGER NOT NULL)"));
    RETURN_IF_ERROR(db.Exec("PRAGMA user_version = 1"));
    return db.Exec("COMMIT");
  }();
  if (!status.ok()) db.RollbackQuietly();
  return status;
}

class SqliteWatch : public Watch {
 public:
  SqliteWatch(std::unique_ptr<Connection> db, std::shared_ptr<Notifier> notifier,
              std::string_view prefix, Revision after, absl::Duration poll_interval)
      : db_(std::move(db)),
        notifier_(std::move(notifier)),
        range_(PrefixRange(prefix)),
        scanned_(after),
        poll_interval_(poll_interval) {}

  absl::StatusOr<std::vector<Event>> Next(absl::Duration timeout) override {
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (cancelled_.load()) return absl::CancelledError("watch cancelled");
      if (!error_.ok()) return error_;
      // Read the generation before polling so a commit that lands during the poll still wakes
      // the wait below.
      uint64_t generation = notifier_->Generation();
      absl::StatusOr<std::vector<Event>> batch = Poll();
      if (!batch.ok()) {
        if (IsCompacted(batch.status())) {
          error_ = batch.status();  // sticky: the caller must re-list
          return error_;
        }
        // Transient (e.g. a lock during WAL recovery): the contract says watches heal by
        // themselves, so retry at the next poll. Logged once per failure streak, not per poll.
        if (!failing_) {
          log::Warn("datastore_watch_poll_failed",
                    {{"path", db_->path()}, {"error", ToStd(batch.status().message())}});
        }
        failing_ = true;
        data_version_ = -1;
      } else {
        if (failing_) log::Info("datastore_watch_poll_recovered", {{"path", db_->path()}});
        failing_ = false;
        if (!batch->empty()) return batch;
      }
      absl::Time now = absl::Now();
      if (now >= deadline) return std::vector<Event>();
      if (cancelled_.load()) return absl::CancelledError("watch cancelled");
      notifier_->WaitFor(generation, std::min(poll_interval_, deadline - now));
    }
  }

  void Cancel() override {
    cancelled_.store(true);
    notifier_->NotifyAll();
  }

 private:
  absl::StatusOr<std::vector<Event>> Poll() {
    int64_t now_ms = NowMs();
    bool expiry_due = next_expiry_ms_ > 0 && now_ms >= next_expiry_ms_;
    ASSIGN_OR_RETURN(int64_t version, DataVersion());
    if (version == data_version_ && !expiry_due) return std::vector<Event>();
    if (expiry_due) {
      // Busy means a writer is active, and writers sweep too: nothing is lost by skipping.
      absl::Status swept = Sweep(now_ms);
      if (!swept.ok() && swept.code() != absl::StatusCode::kUnavailable) return swept;
    }
    data_version_ = version;

    RETURN_IF_ERROR(db_->Exec("BEGIN"));
    absl::StatusOr<std::vector<Event>> events = ReadEvents();
    db_->RollbackQuietly();  // read-only: ends the snapshot
    return events;
  }

  absl::StatusOr<int64_t> DataVersion() {
    ASSIGN_OR_RETURN(Query q, db_->Prepare("PRAGMA data_version"));
    ASSIGN_OR_RETURN(bool row, q.Step());
    return row ? q.Int(0) : -1;
  }

  absl::Status Sweep(int64_t now_ms) {
    RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
    absl::Status status = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(Meta meta, ReadMeta(*db_));
      ASSIGN_OR_RETURN(Revision rev, SweepExpired(*db_, meta.revision, now_ms));
      if (rev != meta.revision) RETURN_IF_ERROR(SetRevision(*db_, rev));
      return db_->Exec("COMMIT");
    }();
    if (!status.ok()) db_->RollbackQuietly();
    if (status.ok()) notifier_->NotifyAll();
    return status;
  }

  // Inside one read transaction, so meta and history are the same snapshot.
  absl::StatusOr<std::vector<Event>> ReadEvents() {
    ASSIGN_OR_RETURN(Meta meta, ReadMeta(*db_));
    if (scanned_ < meta.compacted) return CompactedError(scanned_ + 1, meta.compacted);
    std::vector<Event> events;
    {
      ASSIGN_OR_RETURN(
          Query q,
          range_.hi ? db_->Prepare("SELECT rev, key, type, value FROM history WHERE rev > ?1 AND "
                                   "rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev LIMIT ?5")
                    : db_->Prepare("SELECT rev, key, type, value FROM history WHERE rev > ?1 AND "
                                   "rev <= ?2 AND key >= ?3 ORDER BY rev LIMIT ?5"));
      q.Bind(1, scanned_).Bind(2, meta.revision).Bind(3, range_.lo).Bind(5, kWatchBatch);
      if (range_.hi) q.Bind(4, *range_.hi);
      while (true) {
        ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        Event event;
        event.revision = q.Int(0);
        event.key = q.Bytes(1);
        event.type = q.Int(2) == kTypeDelete ? EventType::kDelete : EventType::kPut;
        if (event.type == EventType::kPut) event.value = q.Bytes(3);
        events.push_back(std::move(event));
      }
    }
    if (static_cast<int64_t>(events.size()) == kWatchBatch) {
      scanned_ = events.back().revision;
      data_version_ = -1;  // more to read: poll again without waiting for a change
    } else {
      scanned_ = meta.revision;
    }
    ASSIGN_OR_RETURN(Query q, db_->Prepare("SELECT min(expires_at) FROM kv WHERE expires_at > 0"));
    ASSIGN_OR_RETURN(bool row, q.Step());
    next_expiry_ms_ = (row && !q.IsNull(0)) ? q.Int(0) : 0;
    return events;
  }

  std::unique_ptr<Connection> db_;
  std::shared_ptr<Notifier> notifier_;
  KeyRange range_;
  Revision scanned_;  // every revision <= this has been delivered or did not match
  absl::Duration poll_interval_;
  int64_t data_version_ = -1;   // -1: poll unconditionally
  int64_t next_expiry_ms_ = 0;  // earliest expires_at seen, 0 if none
  absl::Status error_;          // sticky compaction error
  bool failing_ = false;        // the last poll failed transiently
  std::atomic<bool> cancelled_{false};
};

// Commit's argument rules, checked before touching the database: at least one op, and
// distinct non-empty keys (two ops on one key would make "the precondition" ambiguous; etcd
// refuses them too).

class SqliteDatastore : public Datastore {
 public:
  static absl::StatusOr<std::unique_ptr<Datastore>> Create(const Config& config,
                                                           const SqliteOptions& options) {
    if (options.retain_revisions < 0 || options.compaction_batch < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("embedded datastore ", config.sqlite_path,
                       ": retain_revisions must be >= 0 and compaction_batch >= 1"));
    }
    RETURN_IF_ERROR(MakeParentDirs(config.sqlite_path));
    ConnectionOptions connection_options{options.busy_timeout, options.fsync_each_commit};
    ASSIGN_OR_RETURN(std::unique_ptr<Connection> db,
                     Connection::Open(config.sqlite_path, connection_options));
    RETURN_IF_ERROR(CreateSchema(*db));
    return std::unique_ptr<Datastore>(
        new SqliteDatastore(config.sqlite_path, options, std::move(db)));
  }

  absl::StatusOr<Entry> Get(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Query q, db_->Prepare("SELECT value, create_rev, mod_rev FROM kv WHERE "
                                           "key = ?1 AND (expires_at = 0 OR expires_at > ?2)"));
    q.Bind(1, key).Bind(2, NowMs());
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("key ", KeyForMessage(key), " not found"));
    return Entry{std::string(key), q.Bytes(0), q.Int(1), q.Int(2)};
  }

  absl::StatusOr<ListResult> List(std::string_view prefix) override {
    std::lock_guard<std::mutex> lock(mu_);
    KeyRange range = PrefixRange(prefix);
    RETURN_IF_ERROR(db_->Exec("BEGIN"));
    absl::StatusOr<ListResult> result = [&]() -> absl::StatusOr<ListResult> {
      ListResult out;
      ASSIGN_OR_RETURN(Meta meta, ReadMeta(*db_));
      out.revision = meta.revision;
      ASSIGN_OR_RETURN(
          Query q,
          range.hi ? db_->Prepare("SELECT key, value, create_rev, mod_rev FROM kv WHERE key >= ?1 "
                                  "AND key < ?2 AND (expires_at = 0 OR expires_at > ?3) "
                                  "ORDER BY key")
                   : db_->Prepare("SELECT key, value, create_rev, mod_rev FROM kv WHERE key >= ?1 "
                                  "AND (expires_at = 0 OR expires_at > ?3) ORDER BY key"));
      q.Bind(1, range.lo).Bind(3, NowMs());
      if (range.hi) q.Bind(2, *range.hi);
      while (true) {
        ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        out.entries.push_back(Entry{q.Bytes(0), q.Bytes(1), q.Int(2), q.Int(3)});
      }
      return out;
    }();
    db_->RollbackQuietly();
    return result;
  }

  absl::StatusOr<Revision> Create(std::string_view key, std::string_view value,
                                  const CreateOptions& options) override {
    int64_t ttl_ms = 0;
    if (options.ttl > absl::ZeroDuration()) {
      ttl_ms = std::max<int64_t>(
          1, absl::ToInt64Milliseconds(absl::Ceil(options.ttl, absl::Milliseconds(1))));
    }
    return RunWrite([&](Connection& db, Revision& rev, int64_t now_ms) -> absl::Status {
      ASSIGN_OR_RETURN(std::optional<Revision> existing, ModRevision(db, key));
      if (existing) {
        return absl::AlreadyExistsError(absl::StrCat(
            "key ", KeyForMessage(key), " already exists (mod_revision ", *existing, ")"));
      }
      ++rev;
      ASSIGN_OR_RETURN(Query q, db.Prepare("INSERT INTO kv(key, value, create_rev, mod_rev, "
                                           "expires_at) VALUES (?1, ?2, ?3, ?3, ?4)"));
      RETURN_IF_ERROR(q.Bind(1, key)
                          .Bind(2, value)
                          .Bind(3, rev)
                          .Bind(4, ttl_ms > 0 ? now_ms + ttl_ms : 0)
                          .Run());
      return AppendHistory(db, rev, key, kTypePut, value, now_ms);
    });
  }

  absl::StatusOr<Revision> Update(std::string_view key, std::string_view value,
                                  Revision expected) override {
    return RunWrite([&](Connection& db, Revision& rev, int64_t now_ms) -> absl::Status {
      RETURN_IF_ERROR(CheckRevision(db, key, expected, "update"));
      ++rev;
      // expires_at is left alone: an update keeps the key's TTL (etcd's ignore_lease).
      ASSIGN_OR_RETURN(Query q,
                       db.Prepare("UPDATE kv SET value = ?2, mod_rev = ?3 WHERE key = ?1"));
      RETURN_IF_ERROR(q.Bind(1, key).Bind(2, value).Bind(3, rev).Run());
      return AppendHistory(db, rev, key, kTypePut, value, now_ms);
    });
  }

  absl::StatusOr<Revision> Delete(std::string_view key, Revision expected) override {
    return RunWrite([&](Connection& db, Revision& rev, int64_t now_ms) -> absl::Status {
      RETURN_IF_ERROR(CheckRevision(db, key, expected, "delete"));
      ++rev;
      ASSIGN_OR_RETURN(Query q, db.Prepare("DELETE FROM kv WHERE key = ?1"));
      RETURN_IF_ERROR(q.Bind(1, key).Run());
      return AppendHistory(db, rev, key, kTypeDelete, "", now_ms);
    });
  }

  // One transaction: every precondition is checked before the first change, so the Aborted
  // message names the first failing op in op order; then each op takes the next revision and
  // its own history row, exactly as if the ops had been separate writes with nothing between.
  absl::StatusOr<std::vector<Revision>> Commit(const std::vector<TxnOp>& ops) override {
    RETURN_IF_ERROR(ValidateTxnOps(ops));
    std::vector<Revision> revisions;
    absl::StatusOr<Revision> last = RunWrite([&](Connection& db, Revision& rev, int64_t now_ms) -> absl::Status {
      revisions.clear();  // a retried transaction starts over
      // Expired keys were swept by RunWrite, so `kv` holds exactly the live keys here.
      for (const TxnOp& op : ops) {
        ASSIGN_OR_RETURN(std::optional<Revision> actual, ModRevision(db, op.key));
        RETURN_IF_ERROR(CheckTxnPrecondition(op, actual));
      }
      for (const TxnOp& op : ops) {
        ++rev;
        revisions.push_back(rev);
        switch (op.kind) {
          case TxnOp::Kind::kCreate: {
            ASSIGN_OR_RETURN(Query q,
                             db.Prepare("INSERT INTO kv(key, value, create_rev, "
                                        "mod_rev, expires_at) VALUES (?1, ?2, ?3, ?3, 0)"));
            RETURN_IF_ERROR(q.Bind(1, op.key).Bind(2, op.value).Bind(3, rev).Run());
            RETURN_IF_ERROR(AppendHistory(db, rev, op.key, kTypePut, op.value, now_ms));
            break;
          }
          case TxnOp::Kind::kUpdate: {
            // As Update: expires_at is kept (etcd's ignore_lease).
            ASSIGN_OR_RETURN(Query q,
                             db.Prepare("UPDATE kv SET value = ?2, mod_rev = ?3 WHERE key = ?1"));
            RETURN_IF_ERROR(q.Bind(1, op.key).Bind(2, op.value).Bind(3, rev).Run());
            RETURN_IF_ERROR(AppendHistory(db, rev, op.key, kTypePut, op.value, now_ms));
            break;
          }
          case TxnOp::Kind::kDelete: {
            ASSIGN_OR_RETURN(Query q, db.Prepare("DELETE FROM kv WHERE key = ?1"));
            RETURN_IF_ERROR(q.Bind(1, op.key).Run());
            RETURN_IF_ERROR(AppendHistory(db, rev, op.key, kTypeDelete, "", now_ms));
            break;
          }
        }
      }
      return absl::OkStatus();
    });
    if (!last.ok()) return last.status();
    return revisions;
  }

  absl::StatusOr<std::unique_ptr<Watch>> WatchPrefix(std::string_view prefix,
                                                     Revision after) override {
    if (after < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("watch ", std::string(prefix), ": revision ", after, " is negative"));
    }
    ConnectionOptions connection_options{kWatchBusyTimeout, options_.fsync_each_commit};
    ASSIGN_OR_RETURN(std::unique_ptr<Connection> db, Connection::Open(path_, connection_options));
    ASSIGN_OR_RETURN(Meta meta, ReadMeta(*db));
    // Fail now rather than at the first Next(): the caller is still in its list/watch setup.
    if (after < meta.compacted) return CompactedError(after + 1, meta.compacted);
    return std::unique_ptr<Watch>(
        new SqliteWatch(std::move(db), notifier_, prefix, after, options_.watch_poll_interval));
  }

  absl::Status Compact(Revision revision) override {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
    absl::Status status = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(Meta meta, ReadMeta(*db_));
      if (revision > meta.revision) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "embedded datastore %s: cannot compact to revision %d, the current revision is %d",
            path_, revision, meta.revision));
      }
      if (revision > meta.compacted) RETURN_IF_ERROR(CompactTo(*db_, revision));
      return db_->Exec("COMMIT");
    }();
    if (!status.ok()) db_->RollbackQuietly();
    return status;
  }

  absl::StatusOr<Revision> CurrentRevision() override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Meta meta, ReadMeta(*db_));
    return meta.revision;
  }

  std::string Describe() const override { return absl::StrCat("embedded (", path_, ")"); }

 private:
  using WriteOp = std::function<absl::Status(Connection& db, Revision& rev, int64_t now_ms)>;

  SqliteDatastore(std::string path, const SqliteOptions& options, std::unique_ptr<Connection> db)
      : path_(std::move(path)),
        options_(options),
        db_(std::move(db)),
        notifier_(std::make_shared<Notifier>()) {}

  static absl::StatusOr<std::optional<Revision>> ModRevision(Connection& db, std::string_view key) {
    ASSIGN_OR_RETURN(Query q, db.Prepare("SELECT mod_rev FROM kv WHERE key = ?1"));
    q.Bind(1, key);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return std::optional<Revision>();
    return std::optional<Revision>(q.Int(0));
  }

  static absl::Status CheckRevision(Connection& db, std::string_view key, Revision expected,
                                    std::string_view op) {
    ASSIGN_OR_RETURN(std::optional<Revision> actual, ModRevision(db, key));
    if (!actual) {
      return absl::NotFoundError(
          absl::StrCat(ToAbsl(op), " ", KeyForMessage(key), ": key not found"));
    }
    if (expected != kAnyRevision && *actual != expected) {
      return absl::AbortedError(absl::StrFormat("%s %s: expected mod_revision %d, found %d",
                                                ToAbsl(op), std::string(key), expected, *actual));
    }
    return absl::OkStatus();
  }

  // Commit's precondition for one op, given the key's current mod_revision (nullopt: absent).
  static absl::Status CheckTxnPrecondition(const TxnOp& op, std::optional<Revision> actual) {
    if (op.kind == TxnOp::Kind::kCreate) {
      if (actual) return absl::AbortedError(absl::StrCat("key ", op.key, ": exists"));
      return absl::OkStatus();
    }
    if (!actual) return absl::AbortedError(absl::StrCat("key ", op.key, ": absent"));
    if (op.expected != kAnyRevision && *actual != op.expected) {
      return absl::AbortedError(
          absl::StrCat("key ", op.key, ": expected revision ", op.expected, ", found ", *actual));
    }
    return absl::OkStatus();
  }

  // One BEGIN IMMEDIATE transaction: sweep expired keys, apply `op` (which bumps `rev` once per
  // change it makes), maybe auto-compact, store the revision, commit. Any error rolls it all
  // back, so a failed CAS changes nothing, not even the revision.
  absl::StatusOr<Revision> RunWrite(const WriteOp& op) {
    std::lock_guard<std::mutex> lock(mu_);
    Revision rev = 0;
    RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
    absl::Status status = [&]() -> absl::Status {
      int64_t now_ms = NowMs();
      ASSIGN_OR_RETURN(Meta meta, ReadMeta(*db_));
      ASSIGN_OR_RETURN(rev, SweepExpired(*db_, meta.revision, now_ms));
      RETURN_IF_ERROR(op(*db_, rev, now_ms));
      RETURN_IF_ERROR(MaybeAutoCompact(meta, rev, now_ms));
      RETURN_IF_ERROR(SetRevision(*db_, rev));
      return db_->Exec("COMMIT");
    }();
    if (!status.ok()) {
      db_->RollbackQuietly();
      return status;
    }
    notifier_->NotifyAll();
    return rev;
  }

  // Keeps the last retain_revisions revisions and everything younger than retain_duration.
  // Runs only when a write crosses a multiple of compaction_batch/4 (revisions are claimed by
  // writers of every process, so "crossing" rather than "equal to" a multiple) and a full batch
  // is beyond retention: the cost is amortised over many writes.
  absl::Status MaybeAutoCompact(const Meta& before, Revision rev, int64_t now_ms) {
    int64_t step = std::max<int64_t>(1, options_.compaction_batch / 4);
    if (before.revision / step == rev / step) return absl::OkStatus();
    Revision floor = rev - options_.retain_revisions;
    if (floor - before.compacted < options_.compaction_batch) return absl::OkStatus();
    int64_t cutoff_ms = now_ms - absl::ToInt64Milliseconds(options_.retain_duration);
    ASSIGN_OR_RETURN(Query q, db_->Prepare("SELECT max(rev) FROM history WHERE rev > ?1 AND "
                                           "rev <= ?2 AND written_at <= ?3"));
    q.Bind(1, before.compacted).Bind(2, floor).Bind(3, cutoff_ms);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row || q.IsNull(0)) return absl::OkStatus();
    Revision target = q.Int(0);
    RETURN_IF_ERROR(CompactTo(*db_, target));
    log::Debug(
        "datastore_auto_compacted",
        {{"path", path_}, {"compacted", absl::StrCat(target)}, {"revision", absl::StrCat(rev)}});
    return absl::OkStatus();
  }

  const std::string path_;
  const SqliteOptions options_;
  std::mutex mu_;
  std::unique_ptr<Connection> db_;  // guarded by mu_
  std::shared_ptr<Notifier> notifier_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Datastore>> OpenSqlite(const Config& config) {
  SqliteOptions options;
  options.fsync_each_commit = config.sqlite_fsync_each_commit;
  return OpenSqlite(config, options);
}

absl::StatusOr<std::unique_ptr<Datastore>> OpenSqlite(const Config& config,
                                                      const SqliteOptions& options) {
  return SqliteDatastore::Create(config, options);
}

}  // namespace calico::datastore
