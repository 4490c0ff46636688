#pragma once
// ipamd/service/default_pools.h — the pools a fresh cluster starts with, as calico/node creates
// them upstream: when no IPv4 pool exists, `default-ipv4-ippool` from CALICO_IPV4POOL_*; when
// no IPv6 pool exists and CALICO_IPV6POOL_CIDR is set, `default-ipv6-ippool`.
// NO_DEFAULT_POOLS=true skips both. Creation is a datastore Create (CAS on "key absent"), so of
// two ipamds starting at once exactly one writes each pool and the other sees AlreadyExists.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/datastore/datastore.h"
#include "common/resources/resource.h"

namespace calico::ipamd::service {

inline constexpr char kDefaultIpv4PoolName[] = "default-ipv4-ippool";
inline constexpr char kDefaultIpv6PoolName[] = "default-ipv6-ippool";

struct DefaultPoolSpec {
  std::string name;
  std::string cidr;
  int block_size = 0;
  std::string ipip_mode = "Never";   // Always | CrossSubnet | Never
  std::string vxlan_mode = "Never";  // Always | CrossSubnet | Never
  bool nat_outgoing = false;
  std::string node_selector = "all()";
};

struct DefaultPools {
  bool skip = false;                  // NO_DEFAULT_POOLS=true
  std::optional<DefaultPoolSpec> v4;  // always set unless skip
  std::optional<DefaultPoolSpec> v6;  // set when CALICO_IPV6POOL_CIDR is
};

// Reads the CALICO_IPV4POOL_* / CALICO_IPV6POOL_* / NO_DEFAULT_POOLS variables through `getenv`
// (nullptr: unset). InvalidArgument naming the variable and value for anything malformed.
absl::StatusOr<DefaultPools> DefaultPoolsFromEnvironment(
    const std::function<const char*(const char*)>& getenv);

// The IPPool resource for a spec (validated: a bad CIDR or mode combination fails here).
absl::StatusOr<resources::Resource> PoolResource(const DefaultPoolSpec& spec);

// Creates the missing default pools. Returns the names it created (empty when pools existed,
// or another ipamd won the race). Errors: InvalidArgument (bad spec), Unavailable (datastore).
absl::StatusOr<std::vector<std::string>> EnsureDefaultPools(datastore::Datastore& store,
                                                            const DefaultPools& pools);

}  // namespace calico::ipamd::service
