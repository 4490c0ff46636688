#pragma once
// ipamd/service/environment.h — the allocator's view of the world (allocator::Environment),
// read from projectcalico.org/v3 resources in the datastore: IPPools, IPAMConfiguration
// "default", IPReservations, and Node labels (for pools' nodeSelector).
// Reads are cached for `cache_ttl` (per kind/node), so the allocation fast path does not pay
// a List of every pool per request; a pool change is seen within one TTL. A failed read is
// not cached: the next request tries again.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/datastore/datastore.h"
#include "common/resources/resource.h"
#include "ipamd/allocator/allocator.h"

namespace calico::ipamd::service {

// The allocator's slice of one IPPool resource. InvalidArgument naming the pool if its cidr
// does not parse (validated resources never do that).
absl::StatusOr<Pool> PoolFromResource(const resources::Resource& pool);

// `store` must outlive the returned functions.
Environment DatastoreEnvironment(datastore::Datastore& store, absl::Duration cache_ttl);

}  // namespace calico::ipamd::service
