#pragma once
// felixd/service/felix.h — felixd minus its transports: the workload lifecycle (Setup, Teardown,
// Check) and the reconcile loop that keeps the kernel matching the datastore.
//
// Desired state: this node's WorkloadEndpoints and affine IPAM blocks, listed from the
// datastore (watched, and re-listed every resync interval), plus the endpoints of requests in
// flight. Actual state: read back from the kernel. The loop writes only the difference, so a
// route deleted by hand comes back, a restarted felixd adopts everything with zero writes, and
// nothing is flushed on exit.
// Threads: gRPC handlers call Setup/Teardown/Check concurrently; per-workload kernel work runs
// on the caller's thread (its own netlink sockets), shared state under one mutex; one loop
// thread and one watch thread. Not ready until the first full sync has been applied.

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/datastore/datastore.h"
#include "common/kernel/netlink.h"
#include "common/resources/client/client.h"
#include "felixd/dataplane/endpoint_manager.h"
#include "felixd/dataplane/plumber.h"
#include "felixd/dataplane/vxlan_manager.h"

namespace calico::felixd {

// RTPROT 80: distinct from `ip route add`'s default (boot, 3), so felixd never mistakes an
// operator's hand-made route for its own and removes it (upstream's default is boot).
inline constexpr uint8_t kDefaultRouteProtocol = 80;

struct FelixOptions {
  std::string node;
  uint8_t route_protocol = kDefaultRouteProtocol;
  int mtu = 0;  // 0: the MTU of the device holding the default route, else 1500
  absl::Duration resync_interval = absl::Seconds(10);  // kernel read back, drift repaired
  // The datastore re-listed without a watch event asking for it (a safety net; the watch is
  // what keeps felixd current).
  absl::Duration relist_interval = absl::Minutes(5);
  // Set when felixd programs policy: Setup waits (up to policy_setup_timeout) until the policy
  // for the endpoint it just wrote is in the kernel, so a pod whose ADD returned is reachable
  // (its interface is dropped until then). Returns false on timeout; Setup then succeeds anyway
  // with a warning, as upstream's policy_setup_timeout_seconds does.
  std::function<bool(datastore::Revision, absl::Duration)> wait_policy;
  absl::Duration policy_setup_timeout = absl::Seconds(2);
};

struct WorkloadRequest {
  std::string orchestrator;  // "k8s" when namespace and pod are set, else "cni"
  std::string ns;
  std::string pod;
  std::string container_id;
  std::string endpoint = "eth0";
  std::string netns;
  std::vector<net::Prefix> ips;
  int mtu = 0;
  std::map<std::string, std::string> labels;
  std::vector<std::string> profiles;
  std::string service_account;
};

struct SetupResult {
  std::string host_ifname;
  std::string container_mac;
  std::string endpoint_name;
  std::vector<net::Prefix> ips;
  int mtu = 0;
  bool existing = false;
};

struct TeardownResult {
  std::vector<std::string> removed;
  std::string skipped_reason;
};

struct WorkloadInfo {
  std::string endpoint_name;
  std::string host_ifname;
  std::vector<net::Prefix> ips;
  bool host_interface_present = false;
  bool routes_programmed = false;
};

struct VxlanStatus {
  std::string device;     // vxlan.calico, vxlan-v6.calico
  std::string tunnel_ip;  // empty while ipamd has not assigned one
  std::string mac;
  size_t vteps = 0;       // remote VTEPs programmed (neighbour + FDB)
  size_t routes = 0;      // routes to remote blocks/addresses
  int device_mtu = 0;
};

struct FelixStatus {
  bool ready = false;
  size_t workloads = 0;
  size_t routes = 0;
  absl::Time last_resync = absl::InfinitePast();
  int64_t resyncs = 0;
  int64_t repairs = 0;
  int mtu = 0;
  std::vector<std::string> problems;  // what this node cannot do, and why (e.g. no ipip module)
  std::optional<VxlanStatus> vxlan;   // set while an IPv4 pool uses VXLAN
  std::optional<VxlanStatus> vxlan6;  // set while an IPv6 pool uses VXLAN
};

// Names derived from a request: the same for Setup, Teardown and Check.
struct WorkloadNames {
  std::string orchestrator;
  std::string ns;
  std::string workload;       // pod name, or the container id outside Kubernetes
  std::string host_ifname;
  std::string endpoint_name;  // WorkloadEndpoint name
};
absl::StatusOr<WorkloadNames> NamesFor(std::string_view node, const WorkloadRequest& request);

class Felix {
 public:
  // `store` and `host` must outlive it. `host` is used under the mutex only; `open` hands out
  // per-call netlink sockets (the host's for an empty ref, a workload's for its netns).
  Felix(datastore::Datastore& store, kernel::Netlink& host, NetlinkOpener open,
        FelixOptions options);
  ~Felix();  // Stop()

  // First full sync (datastore → kernel), then the loop and watch threads. Unavailable when
  // the datastore cannot be read (the caller retries).
  absl::Status Start();
  void Stop();

  absl::StatusOr<SetupResult> Setup(const WorkloadRequest& request);
  absl::StatusOr<TeardownResult> Teardown(const WorkloadRequest& request);
  // FailedPrecondition listing every problem; NotFound when there is no such endpoint.
  absl::Status Check(const WorkloadRequest& request);
  std::vector<WorkloadInfo> List(const std::string& endpoint_name);
  FelixStatus Status();

  // Re-lists the datastore and programs the difference. With `read_kernel` (start-up and every
  // resync interval) the kernel is read back too and drift repaired; a datastore event only
  // needs the datastore side (the kernel is as felixd last left it).
  absl::Status SyncOnce(bool read_kernel = true);

  // The advertised routes with a version; blocks until the version exceeds `after` or
  // `timeout` passes (then returns the current state). nullopt once Stop() began.
  std::optional<std::pair<uint64_t, std::set<AdvertisedRoute>>> WaitAdvertised(
      uint64_t after, absl::Duration timeout);

  bool ready() const;
  const FelixOptions& options() const { return options_; }

 private:
  struct Pending {
    LocalEndpoint endpoint;
    datastore::Revision revision = 0;  // 0: write in progress
    bool removed = false;              // a teardown (tombstone) rather than a setup
  };
  // One WorkloadEndpoint event of this node, parsed: nullopt endpoint = gone (or moved away).
  struct EndpointUpdate {
    std::string name;
    datastore::Revision revision = 0;
    std::optional<LocalEndpoint> endpoint;
  };
  int DetectMtu();
  void Loop();
  void WatchLoop();
  void ApplyEndpointUpdates(const std::vector<EndpointUpdate>& updates);
  // The kernel read back against the desired state as it is (no datastore read); drift repaired.
  absl::Status KernelResync();
  // Whether another node's endpoint event changes this node's VXLAN routes (a borrowed address).
  bool RemoteEndpointMatters(const datastore::Event& e);
  void PublishAdvertisedLocked();
  absl::StatusOr<std::optional<resources::Resource>> GetEndpoint(const WorkloadNames& names);

  datastore::Datastore& store_;
  resources::Client client_;
  kernel::Netlink& host_;
  // IP-in-IP: tunl0 is wanted while an enabled IPv4 pool has ipipMode Always or CrossSubnet.
  void EnsureIpipTunnel(bool wanted);  // under mu_
  std::string ipip_problem_;
  // Writes this node's VTEP MACs (either family) into its Node (CAS); false when it failed.
  bool PublishVtepMacs(const resources::Resource& node, bool v4, bool v6);
  NetlinkOpener open_;
  Plumber plumber_;
  FelixOptions options_;

  mutable std::mutex mu_;
  std::condition_variable changed_;  // advertised routes, stop, dirty
  EndpointManager manager_;          // guarded by mu_
  std::array<VxlanManager, 2> vxlan_;  // IPv4, IPv6; guarded by mu_
  std::vector<VxlanPool> vxlan_pools_;
  bool vxlan_wanted_ = false;
  // From the last sync: every node's confirmed blocks, and the other nodes' endpoints holding an
  // address outside them (borrowed). A remote endpoint event re-lists only if it touches those.
  std::map<std::string, std::vector<net::Prefix>> blocks_by_node_;
  std::set<std::string> borrowing_endpoints_;  // datastore keys
  std::array<std::string, 2> vxlan_problem_;
  std::map<std::string, Pending> pending_;
  std::set<AdvertisedRoute> advertised_;
  uint64_t advertised_version_ = 0;
  bool ready_ = false;
  bool dirty_ = false;
  bool stopping_ = false;
  int mtu_ = 1500;       // for new workloads: the base minus the VXLAN overhead when VXLAN is on
  int base_mtu_ = 1500;
  absl::Time last_resync_ = absl::InfinitePast();
  absl::Time last_list_ = absl::InfinitePast();
  bool ipip_wanted_ = false;
  std::unique_ptr<datastore::Watch> watch_;
  std::thread loop_;
  std::thread watcher_;
};

}  // namespace calico::felixd
