#include "common/datastore/etcd/etcd_datastore.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/datastore/etcd/connection.h"
#include "common/datastore/etcd/keys.h"
#include "common/datastore/etcd/watch.h"
#include "common/log/log.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace calico::datastore {
namespace etcd {
namespace {

using etcdserverpb::Compare;

Entry ToEntry(const mvccpb::KeyValue& kv) {
  Entry entry;
  entry.key = kv.key();
  entry.value = kv.value();
  entry.create_revision = kv.create_revision();
  entry.mod_revision = kv.mod_revision();
  return entry;
}

std::string Quoted(std::string_view key) { return absl::StrCat("\"", ToAbsl(key), "\""); }

// The Txn guard of Update and Delete: the key exists and, unless kAnyRevision, was last
// written at `expected`. "Exists" is checked separately because etcd compares an absent
// key's mod_revision as 0, which must not let expected == 0 write to a missing key.
void AddRevisionGuard(etcdserverpb::TxnRequest* txn, std::string_view key, Revision expected) {
  Compare* exists = txn->add_compare();
  exists->set_key(key.data(), key.size());
  exists->set_target(Compare::CREATE);
  exists->set_result(Compare::GREATER);
  exists->set_create_revision(0);
  if (expected == kAnyRevision) return;
  Compare* revision = txn->add_compare();
  revision->set_key(key.data(), key.size());
  revision->set_target(Compare::MOD);
  revision->set_result(Compare::EQUAL);
  revision->set_mod_revision(expected);
}

// Failure branch: read the key back so a failed guard can say which half failed.
void AddReadOnFailure(etcdserverpb::TxnRequest* txn, std::string_view key) {
  etcdserverpb::RangeRequest* range = txn->add_failure()->mutable_request_range();
  range->set_key(key.data(), key.size());
  range->set_keys_only(true);
}

absl::Status GuardFailure(const etcdserverpb::TxnResponse& response, std::string_view key,
                          Revision expected) {
  if (response.responses_size() == 0 || response.responses(0).response_range().kvs_size() == 0) {
    return absl::NotFoundError(absl::StrCat("key ", Quoted(key), " not found"));
  }
  return absl::AbortedError(absl::StrCat(
      "key ", Quoted(key), ": mod_revision is ",
      response.responses(0).response_range().kvs(0).mod_revision(), ", expected ", expected));
}

// Commit's argument rules (the SQLite backend applies the same): at least one op, distinct
// non-empty keys. etcd itself rejects a Txn that writes one key twice, but only after a round
// trip and with a less useful message.

// After a failed Commit Txn: the failure branch read every key back (one RangeResponse per op,
// in op order, all from the same revision as the failed compares), so the first op whose
// precondition does not hold there is the one to name.
absl::Status CommitFailure(const std::vector<TxnOp>& ops,
                           const etcdserverpb::TxnResponse& response) {
  for (size_t i = 0; i < ops.size(); ++i) {
    const TxnOp& op = ops[i];
    const bool have = static_cast<int>(i) < response.responses_size();
    const etcdserverpb::RangeResponse* range =
        have ? &response.responses(static_cast<int>(i)).response_range() : nullptr;
    const bool exists = range != nullptr && range->kvs_size() > 0;
    if (op.kind == TxnOp::Kind::kCreate) {
      if (exists) return absl::AbortedError(absl::StrCat("key ", Quoted(op.key), ": exists"));
      continue;
    }
    if (!exists) return absl::AbortedError(absl::StrCat("key ", Quoted(op.key), ": absent"));
    Revision found = range->kvs(0).mod_revision();
    if (op.expected != kAnyRevision && found != op.expected) {
      return absl::AbortedError(absl::StrCat("key ", Quoted(op.key), ": expected revision ",
                                             op.expected, ", found ", found));
    }
  }
  // Unreachable while etcd evaluates compares and the failure branch on one revision.
  return absl::AbortedError("commit: a precondition failed (etcd did not say which)");
}

class EtcdDatastore : public Datastore {
 public:
  explicit EtcdDatastore(std::shared_ptr<Connection> connection)
      : connection_(std::move(connection)) {}

  absl::StatusOr<Entry> Get(std::string_view key) override {
    etcdserverpb::RangeRequest request;
    request.set_key(key.data(), key.size());
    etcdserverpb::RangeResponse response;
    RETURN_IF_ERROR(connection_->Call("Range", [&](Endpoint& ep, grpc::ClientContext* ctx) {
      return ep.kv->Range(ctx, request, &response);
    }));
    if (response.kvs_size() == 0) {
      return absl::NotFoundError(absl::StrCat("key ", Quoted(key), " not found"));
    }
    return ToEntry(response.kvs(0));
  }

  absl::StatusOr<ListResult> List(std::string_view prefix) override {
    etcdserverpb::RangeRequest request;
    request.set_key(WatchKey(prefix));
    request.set_range_end(PrefixEnd(prefix));
    // etcd returns a range in key order without an explicit sort (its index is a B-tree),
    // and a sort request would make it copy and re-sort the result.
    etcdserverpb::RangeResponse response;
    RETURN_IF_ERROR(connection_->Call("Range", [&](Endpoint& ep, grpc::ClientContext* ctx) {
      return ep.kv->Range(ctx, request, &response);
    }));
    ListResult result;
    result.revision = response.header().revision();
    result.entries.reserve(response.kvs_size());
    for (const mvccpb::KeyValue& kv : response.kvs()) result.entries.push_back(ToEntry(kv));
    return result;
  }

  absl::StatusOr<Revision> Create(std::string_view key, std::string_view value,
                                  const CreateOptions& options) override {
    if (key.empty()) return absl::InvalidArgumentError("etcd: empty key");
    int64_t lease = 0;
    if (options.ttl > absl::ZeroDuration()) {
      ASSIGN_OR_RETURN(lease, GrantLease(options.ttl));
    }
    etcdserverpb::TxnRequest txn;
    Compare* absent = txn.add_compare();
    absent->set_key(key.data(), key.size());
    absent->set_target(Compare::CREATE);
    absent->set_result(Compare::EQUAL);
    absent->set_create_revision(0);
    etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(key.data(), key.size());
    put->set_value(value.data(), value.size());
    put->set_lease(lease);
    etcdserverpb::TxnResponse response;
    absl::Status status = connection_->Call(
        "Txn",
        [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Txn(ctx, txn, &response); },
        Connection::Repeat::kOnlyUnsent);
    if (status.ok() && !response.succeeded()) {
      status = absl::AlreadyExistsError(absl::StrCat("key ", Quoted(key), " already exists"));
    }
    if (!status.ok()) {
      // An unused lease would expire by itself; revoking it just keeps etcd tidy.
      if (lease != 0) RevokeLease(lease);
      return status;
    }
    return response.header().revision();
  }

  absl::StatusOr<Revision> Update(std::string_view key, std::string_view value,
                                  Revision expected) override {
    etcdserverpb::TxnRequest txn;
    AddRevisionGuard(&txn, key, expected);
    etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(key.data(), key.size());
    put->set_value(value.data(), value.size());
    // Keeps the key's lease, and so the expiry Create gave it.
    put->set_ignore_lease(true);
    AddReadOnFailure(&txn, key);
    etcdserverpb::TxnResponse response;
    RETURN_IF_ERROR(connection_->Call(
        "Txn",
        [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Txn(ctx, txn, &response); },
        Connection::Repeat::kOnlyUnsent));
    if (!response.succeeded()) return GuardFailure(response, key, expected);
    return response.header().revision();
  }

  absl::StatusOr<Revision> Delete(std::string_view key, Revision expected) override {
    etcdserverpb::TxnRequest txn;
    AddRevisionGuard(&txn, key, expected);
    etcdserverpb::DeleteRangeRequest* del = txn.add_success()->mutable_request_delete_range();
    del->set_key(key.data(), key.size());
    AddReadOnFailure(&txn, key);
    etcdserverpb::TxnResponse response;
    RETURN_IF_ERROR(connection_->Call(
        "Txn",
        [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Txn(ctx, txn, &response); },
        Connection::Repeat::kOnlyUnsent));
    if (!response.succeeded()) return GuardFailure(response, key, expected);
    return response.header().revision();
  }

  // One Txn: a guard per key, the writes in op order on success (etcd applies them at one
  // revision, and watchers get them in that order), and on failure a read of every key so the
  // error can name which precondition failed. Sent through Call like Update/Delete, so it
  // gets the same fail-over and the same (lack of) blind retry of an ambiguous write.
  absl::StatusOr<std::vector<Revision>> Commit(const std::vector<TxnOp>& ops) override {
    RETURN_IF_ERROR(ValidateTxnOps(ops));
    etcdserverpb::TxnRequest txn;
    for (const TxnOp& op : ops) {
      if (op.kind == TxnOp::Kind::kCreate) {
        Compare* absent = txn.add_compare();
        absent->set_key(op.key);
        absent->set_target(Compare::CREATE);
        absent->set_result(Compare::EQUAL);
        absent->set_create_revision(0);
      } else {
        AddRevisionGuard(&txn, op.key, op.expected);
      }
      if (op.kind == TxnOp::Kind::kDelete) {
        txn.add_success()->mutable_request_delete_range()->set_key(op.key);
      } else {
        etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
        put->set_key(op.key);
        put->set_value(op.value);
        // As Update: an existing key keeps its lease (and expiry). A created key has none.
        put->set_ignore_lease(op.kind == TxnOp::Kind::kUpdate);
      }
      AddReadOnFailure(&txn, op.key);
    }
    etcdserverpb::TxnResponse response;
    RETURN_IF_ERROR(connection_->Call(
        "Txn",
        [&](Endpoint& ep, grpc::ClientContext* ctx) { return ep.kv->Txn(ctx, txn, &response); },
        Connection::Repeat::kOnlyUnsent));
    if (!response.succeeded()) return CommitFailure(ops, response);
    // One Txn is one etcd revision, shared by all of its changes.
    return std::vector<Revision>(ops.size(), response.header().revision());
  }

  absl::StatusOr<std::unique_ptr<Watch>> WatchPrefix(std::string_view prefix,
                                                     Revision after) override {
    if (after < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("watch on ", Quoted(prefix), ": negative revision ", after));
    }
    return std::unique_ptr<Watch>(new EtcdWatch(connection_, std::string(prefix), after));
  }

  absl::Status Compact(Revision revision) override {
    // etcd's Compact(r) keeps revision r readable and watchable ("drop history before r");
    // this contract drops r too, so ask etcd for r + 1. When r is the current revision,
    // r + 1 is in etcd's future and only r can be compacted: a watch from exactly r then
    // still works, the one place etcd keeps one revision more than the contract promises.
    absl::Status status = CompactTo(revision + 1);
    if (IsFutureRevision(status)) status = CompactTo(revision);
    if (IsFutureRevision(status)) {
      return absl::InvalidArgumentError(
          absl::StrCat("compact to revision ", revision, ": beyond the current revision"));
    }
    // etcd answers OutOfRange for "already compacted"; in this contract OutOfRange means a
    // watch fell behind (IsCompacted), and compacting again is a no-op as in SQLite.
    if (absl::IsOutOfRange(status)) return absl::OkStatus();
    return status;
  }

  absl::StatusOr<Revision> CurrentRevision() override {
    // Any linearizable Range reports the store revision in its header; count_only over one
    // key makes it cheap.
    etcdserverpb::RangeRequest request;
    request.set_key(std::string(1, '\0'));
    request.set_count_only(true);
    etcdserverpb::RangeResponse response;
    RETURN_IF_ERROR(connection_->Call("Range", [&](Endpoint& ep, grpc::ClientContext* ctx) {
      return ep.kv->Range(ctx, request, &response);
    }));
    return response.header().revision();
  }

  std::string Describe() const override {
    return absl::StrCat("etcdv3 (", connection_->urls(), ")");
  }

 private:
  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl) {
    etcdserverpb::LeaseGrantRequest request;
    // etcd leases have whole-second TTLs; round up so a key never expires early.
    request.set_ttl(static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(ttl))));
    etcdserverpb::LeaseGrantResponse response;
    RETURN_IF_ERROR(connection_->Call("LeaseGrant", [&](Endpoint& ep, grpc::ClientContext* ctx) {
      return ep.lease->LeaseGrant(ctx, request, &response);
    }));
    if (!response.error().empty()) {
      return absl::InternalError(absl::StrCat("etcd LeaseGrant: ", response.error()));
    }
    return response.id();
  }

  absl::Status CompactTo(Revision etcd_revision) {
    etcdserverpb::CompactionRequest request;
    request.set_revision(etcd_revision);
    // Wait until the history is really gone, so a watch started afterwards sees it gone.
    request.set_physical(true);
    etcdserverpb::CompactionResponse response;
    return connection_->Call("Compact", [&](Endpoint& ep, grpc::ClientContext* ctx) {
      return ep.kv->Compact(ctx, request, &response);
    });
  }

  static bool IsFutureRevision(const absl::Status& status) {
    return absl::IsOutOfRange(status) &&
           status.message().find("future revision") != absl::string_view::npos;
  }

  void RevokeLease(int64_t lease) {
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(lease);
    etcdserverpb::LeaseRevokeResponse response;
    absl::Status status =
        connection_->Call("LeaseRevoke", [&](Endpoint& ep, grpc::ClientContext* ctx) {
          return ep.lease->LeaseRevoke(ctx, request, &response);
        });
    if (!status.ok()) {
      log::Debug("etcd_lease_revoke_failed",
                 {{"lease", absl::StrCat(lease)}, {"error", ToStd(status.message())}});
    }
  }

  const std::shared_ptr<Connection> connection_;
};

}  // namespace
}  // namespace etcd

absl::StatusOr<std::unique_ptr<Datastore>> OpenEtcd(const Config& config) {
  ASSIGN_OR_RETURN(std::shared_ptr<etcd::Connection> connection, etcd::Connection::Create(config));
  return std::unique_ptr<Datastore>(new etcd::EtcdDatastore(std::move(connection)));
}

}  // namespace calico::datastore
