#pragma once
// ipamd/allocator/resource_environment.h — the allocator's view of the world (Environment),
// read from projectcalico.org/v3 resources in the datastore: IPPools, IPAMConfiguration
// "default", IPReservations, and Node labels (for pools' nodeSelector).
// Reads are cached for `cache_ttl` (per kind/node), so the allocation fast path does not pay
// a List of every pool per request; a pool change is seen within one TTL. A failed read is
// not cached: the next request tries again.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/datastore/datastore.h"
#include "common/resources/client/client.h"
#include "common/resources/resource.h"
#include "ipamd/allocator/allocator.h"

namespace calico::ipamd {

// The allocator's slice of one IPPool resource. InvalidArgument naming the pool if its cidr
// does not parse (validated resources never do that).
absl::StatusOr<Pool> PoolFromResource(const resources::Resource& pool);

// Each reads the datastore now (ipamd caches them through DatastoreEnvironment; calicoctl
// reads once per command). Pools sort IPv4 first, then by address.
absl::StatusOr<std::vector<Pool>> LoadPools(resources::Client& client);
// IPAMConfiguration "default", or upstream's defaults when it does not exist.
absl::StatusOr<IpamConfig> LoadConfig(resources::Client& client);
absl::StatusOr<std::vector<net::Prefix>> LoadReservations(resources::Client& client);
// A node that has not registered yet has no labels.
absl::StatusOr<std::map<std::string, std::string>> LoadNodeLabels(resources::Client& client,
                                                                  const std::string& node);

// `store` must outlive the returned functions. A zero `cache_ttl` reads on every call.
Environment DatastoreEnvironment(datastore::Datastore& store, absl::Duration cache_ttl);

}  // namespace calico::ipamd
