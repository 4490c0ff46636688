#pragma once
// felixd/dataplane/endpoint_manager.h — the host side of this node's workloads, reconciled:
// one on-link route per workload address via its host veth, one blackhole per local affine
// block (traffic to an unassigned address of our block dies here instead of leaving by the
// default route), and each host veth's sysctls. Desired state comes from the calculation
// (datastore + SetupWorkload); actual state is read back from the kernel on every resync, and
// only drift is written.
// Owns: routes of its protocol in the main table; the sysctls of known `cali*` interfaces.
// Never: creates or deletes links (the Plumber does), or touches another protocol's routes.
// Not thread-safe: the caller serialises (felixd holds one mutex around it).

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/kernel/netlink.h"
#include "common/kernel/route_table.h"
#include "common/net/ip.h"

namespace calico::felixd {

struct LocalEndpoint {
  std::string name;              // the WorkloadEndpoint name
  std::string host_ifname;       // "cali..."
  std::vector<net::Prefix> ips;  // /32 and /128
  bool operator==(const LocalEndpoint&) const = default;
};

struct AdvertisedRoute {
  net::Prefix cidr;
  bool block = false;  // a local affine block; else a borrowed address
  auto operator<=>(const AdvertisedRoute&) const = default;
};

struct EndpointManagerStats {
  int64_t resyncs = 0;
  int64_t sysctl_repairs = 0;
  size_t routes = 0;  // desired routes
};

class EndpointManager {
 public:
  EndpointManager(kernel::Netlink& host, uint8_t route_protocol);

  void SetEndpoint(LocalEndpoint endpoint);
  void RemoveEndpoint(const std::string& name);
  // Replaces the whole set (a full re-list from the datastore): endpoints not in it go.
  void ReplaceEndpoints(std::vector<LocalEndpoint> endpoints);
  void SetAffineBlocks(std::vector<net::Prefix> blocks);
  // Routes to other nodes' blocks that felixd itself programs (VXLAN mode): same table and
  // protocol as the workload routes, so one reconciler owns them all.
  void SetRemoteRoutes(std::vector<kernel::Route> routes);

  // Programs the route delta. A route whose device does not exist yet stays pending.
  absl::Status Apply();
  // Reads routes of our protocol and each endpoint's sysctls back, repairs any drift.
  absl::Status Resync();

  const std::map<std::string, LocalEndpoint>& endpoints() const { return endpoints_; }
  const LocalEndpoint* Find(const std::string& name) const;
  // Local affine blocks and the addresses of local endpoints outside every one of them.
  std::set<AdvertisedRoute> Advertised() const;
  bool InSync() const { return routes_.InSync(); }
  // This endpoint's routes are programmed (whatever else is still pending).
  bool EndpointInSync(const std::string& name) const { return routes_.OwnerInSync(name); }
  EndpointManagerStats stats() const;
  uint8_t route_protocol() const { return routes_.protocol(); }

 private:
  void SetRoutesFor(const LocalEndpoint& endpoint);

  kernel::Netlink& host_;
  kernel::RouteTable routes_;
  std::map<std::string, LocalEndpoint> endpoints_;
  std::vector<net::Prefix> blocks_;
  size_t remote_routes_ = 0;
  int64_t resyncs_ = 0;
  int64_t sysctl_repairs_ = 0;
};

}  // namespace calico::felixd
