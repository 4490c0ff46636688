#pragma once
// common/datastore/sqlite: the embedded backend — one SQLite file per node, shared by every
// process of the node (felixd, birdd, ipamd, calicoctl), reproducing etcd's revision semantics.
// Never touches: the network, other files than the database (+ its -wal/-shm).
//
// Design (see sqlite_datastore.cc for the SQL):
//  - WAL mode, busy_timeout; every write is one BEGIN IMMEDIATE transaction that bumps the
//    store revision by one per change and writes both `kv` (current state) and `history` (one
//    row per revision). Writers are serialised by SQLite's write lock, so revisions are committed
//    in order and a reader never sees a gap. Lock waits beyond busy_timeout → Unavailable.
//  - Watches poll their own connection's `PRAGMA data_version` every watch_poll_interval (a few
//    ms; writes through the same Datastore object also wake them at once) and deliver `history`
//    rows with rev > last scanned, under the prefix, in order — exactly once.
//  - TTL: `kv.expires_at` (wall-clock ms; the file outlives a reboot, a monotonic clock does
//    not). An expired key is hidden from Get/List at once. It is removed, with a delete event at
//    a new revision, by whichever comes first: the next write transaction of any process (it
//    sweeps before its own change) or any open watch, which sweeps when the earliest expiry has
//    passed. With neither writers nor watchers the row stays, invisible, until one appears.
//  - Retention: writers auto-compact history in batches, keeping at least retain_revisions
//    revisions AND everything younger than retain_duration (defaults: 10,000 and 5 minutes), so
//    the file stops growing while a watcher that lags by a few minutes can still resume.
//    Compact(rev) compacts explicitly; compacting an already compacted revision is a no-op,
//    a future one InvalidArgument.
//  - Thread safety: one connection per Datastore behind a mutex; one per Watch.

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/datastore/config.h"
#include "common/datastore/datastore.h"

namespace calico::datastore {

struct SqliteOptions {
  // How long a write (or a schema setup) waits for another process's write lock.
  absl::Duration busy_timeout = absl::Seconds(5);
  // How often an idle watch checks the file for other processes' commits.
  absl::Duration watch_poll_interval = absl::Milliseconds(10);
  // History retention: auto-compaction keeps at least this many revisions...
  int64_t retain_revisions = 10000;
  // ...and every revision younger than this (so a briefly stalled watcher can resume).
  absl::Duration retain_duration = absl::Minutes(5);
  // Auto-compaction runs once this many revisions beyond retention piled up (amortises it).
  int64_t compaction_batch = 1000;
  // synchronous=FULL (fsync per commit) vs NORMAL (a power loss may drop the last commits).
  bool fsync_each_commit = true;
};

// Opens (creating if needed, parent directory 0700) config.sqlite_path.
absl::StatusOr<std::unique_ptr<Datastore>> OpenSqlite(const Config& config);
absl::StatusOr<std::unique_ptr<Datastore>> OpenSqlite(const Config& config,
                                                      const SqliteOptions& options);

}  // namespace calico::datastore
