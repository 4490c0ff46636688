#pragma once
// ipamd/allocator/check_load.h — what the datastore says is in use, for Check() (check.h).
// Reads only: WorkloadEndpoints (spec.ipNetworks) and Nodes (VXLAN, IPIP and WireGuard tunnel
// addresses, and which nodes exist). Kept apart from check.cc so Check() stays pure.

#include "absl/status/statusor.h"
#include "common/resources/client/client.h"
#include "ipamd/allocator/check.h"

namespace calico::ipamd {

// Every address a WorkloadEndpoint or a Node uses, with its user ("WorkloadEndpoint ns/name",
// "Node node1 (vxlan tunnel)"; several users of one address are joined with ", "), and the
// set of Node names. Errors: the datastore's (Unavailable, ...), annotated.
absl::StatusOr<InUse> LoadInUse(resources::Client& client);

}  // namespace calico::ipamd
