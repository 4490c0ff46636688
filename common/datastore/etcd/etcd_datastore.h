#pragma once
// common/datastore/etcd: the Datastore contract over etcd's v3 gRPC API.
// Owns: its gRPC channels and watch threads; never touches the kernel or other backends.
// Invariants:
//  - Every write is one Txn that compares create/mod revision, so a retried or racing write
//    can never clobber a newer one: it fails with Aborted/AlreadyExists/NotFound instead.
//  - Revisions are etcd's own (header.revision, mod_revision), untranslated.
//  - Transport failures fail over across the configured endpoints and surface as
//    Unavailable("etcd unreachable at <endpoints>: ..."); etcd's answers keep their code.
//  - Opening never contacts etcd: a daemon may start before its datastore is reachable.

#include <memory>

#include "absl/status/statusor.h"
#include "common/datastore/config.h"
#include "common/datastore/datastore.h"

namespace calico::datastore {

// InvalidArgument for a malformed endpoint URL or an unreadable TLS file (naming it).
absl::StatusOr<std::unique_ptr<Datastore>> OpenEtcd(const Config& config);

}  // namespace calico::datastore
