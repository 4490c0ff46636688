#pragma once
// common/datastore: the one key-value contract every daemon and calicoctl use.
// Owns: nothing in the kernel. Backends: etcd v3 (etcd/), embedded SQLite (sqlite/).
// Invariants:
//  - Every successful write bumps a store-wide revision by one; an entry's mod_revision is
//    the revision of its last write (etcd's semantics, reproduced by the SQLite backend).
//  - Writes are compare-and-swap on mod_revision; a mismatch is absl::Aborted and nothing changes.
//    A write failing Unavailable may or may not have been applied (its reply was lost): re-read
//    before retrying. Backends never repeat a sent write on their own, so Aborted stays exact.
//  - A watch delivers every change under its prefix with revision > `after`, in revision order,
//    exactly once; if those revisions were compacted it fails with OutOfRange (see IsCompacted)
//    and the caller re-lists.
//  - Implementations are thread-safe; a Watch is used by one thread at a time.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace calico::datastore {

using Revision = int64_t;

// For Update/Delete: matches any existing revision (an unconditional write of an existing key).
inline constexpr Revision kAnyRevision = -1;

struct Entry {
  std::string key;
  std::string value;
  Revision create_revision = 0;
  Revision mod_revision = 0;
  bool operator==(const Entry&) const = default;
};

struct ListResult {
  std::vector<Entry> entries;  // sorted by key
  Revision revision = 0;       // the store revision the list reflects: watch from here
};

enum class EventType { kPut, kDelete };

struct Event {
  EventType type = EventType::kPut;
  std::string key;
  std::string value;        // empty for kDelete
  Revision revision = 0;    // the revision of this change (mod_revision of the put)
  bool operator==(const Event&) const = default;
};

class Watch {
 public:
  virtual ~Watch() = default;
  // Waits up to `timeout` for events; returns an empty batch on timeout. A backend reconnects
  // by itself after transient failures (e.g. an etcd restart) and resumes after the last
  // delivered revision, so callers never see a gap. Errors: OutOfRange when the next revision
  // was compacted; Cancelled after Cancel().
  virtual absl::StatusOr<std::vector<Event>> Next(absl::Duration timeout) = 0;
  // Makes a blocked or later Next() return Cancelled. Safe from any thread.
  virtual void Cancel() = 0;
};

struct CreateOptions {
  // When > 0 the key expires (and a delete event is emitted) this long after Create; Update
  // keeps the expiry (etcd: a lease, and puts with ignore_lease). The SQLite backend emulates it.
  absl::Duration ttl = absl::ZeroDuration();
};

// One operation of an atomic multi-key Commit.
struct TxnOp {
  enum class Kind { kCreate, kUpdate, kDelete };
  Kind kind = Kind::kUpdate;
  std::string key;
  std::string value;                   // kCreate, kUpdate
  Revision expected = kAnyRevision;    // kUpdate, kDelete: as Update/Delete
  static TxnOp Create(std::string key, std::string value) {
    return {Kind::kCreate, std::move(key), std::move(value), kAnyRevision};
  }
  static TxnOp Update(std::string key, std::string value, Revision expected) {
    return {Kind::kUpdate, std::move(key), std::move(value), expected};
  }
  static TxnOp Delete(std::string key, Revision expected) {
    return {Kind::kDelete, std::move(key), "", expected};
  }
};

class Datastore {
 public:
  virtual ~Datastore() = default;

  // NotFound if the key does not exist.
  virtual absl::StatusOr<Entry> Get(std::string_view key) = 0;
  // All keys starting with `prefix`, sorted by key, with the revision they reflect.
  virtual absl::StatusOr<ListResult> List(std::string_view prefix) = 0;
  // AlreadyExists if the key exists. Returns the new revision.
  virtual absl::StatusOr<Revision> Create(std::string_view key, std::string_view value,
                                          const CreateOptions& options = {}) = 0;
  // NotFound if absent; Aborted if its mod_revision is not `expected` (unless kAnyRevision).
  virtual absl::StatusOr<Revision> Update(std::string_view key, std::string_view value,
                                          Revision expected) = 0;
  // NotFound if absent; Aborted if its mod_revision is not `expected` (unless kAnyRevision).
  // Returns the revision of the deletion.
  virtual absl::StatusOr<Revision> Delete(std::string_view key, Revision expected) = 0;
  // All of `ops` or none, atomically (one etcd Txn; one SQLite transaction): every op's
  // precondition (kCreate: absent; kUpdate/kDelete: present with mod_revision == expected unless
  // kAnyRevision) must hold, else Aborted naming the first key that failed and why, and nothing
  // changes. Keys must be distinct. Returns each op's revision, in op order (its new
  // mod_revision; a delete's deletion revision): etcd gives them one shared revision, SQLite
  // consecutive ones. Watchers see the changes in op order.
  virtual absl::StatusOr<std::vector<Revision>> Commit(const std::vector<TxnOp>& ops) = 0;
  // Changes under `prefix` with revision > `after` (use ListResult::revision).
  virtual absl::StatusOr<std::unique_ptr<Watch>> WatchPrefix(std::string_view prefix,
                                                             Revision after) = 0;
  // Drops history up to and including `revision`; watches from before it then fail.
  virtual absl::Status Compact(Revision revision) = 0;
  // The current store revision.
  virtual absl::StatusOr<Revision> CurrentRevision() = 0;
  // "etcdv3 (https://10.0.0.1:2379,...)" or "embedded (/var/lib/calico/calico.db)", for messages.
  virtual std::string Describe() const = 0;
};

// The error a watch or backend returns for a compacted revision; callers re-list.
absl::Status CompactedError(Revision requested, Revision compacted);
bool IsCompacted(const absl::Status& status);

// The argument rules of Commit, shared by every backend: at least one op, no empty key, no key
// twice (InvalidArgument otherwise).
absl::Status ValidateTxnOps(const std::vector<TxnOp>& ops);

}  // namespace calico::datastore
