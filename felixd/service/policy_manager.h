#pragma once
// felixd/service/policy_manager.h — network policy from the datastore to nftables table
// `inet calico`: list + watch of the policy-relevant kinds → policy::Model → SelectionIndex →
// policy_compiler::Compiler → nft::Nftables (one transaction per change), and Explain over the
// same model that is programmed.
//
// Owns: table `inet calico` (nothing else in nftables).
// Desired state: every WorkloadEndpoint and HostEndpoint of the cluster (remote ones for
// selector sets, local ones also for dispatch), NetworkPolicy, GlobalNetworkPolicy, Kubernetes NetworkPolicy, Tier,
// Profile, NetworkSet, GlobalNetworkSet, IPPool (NAT outgoing) and Node (addresses whose
// VXLAN / IP-in-IP passes host endpoints).
// Changes:
//  - an endpoint or network set event: the index is updated for that entity only and the
//    compiler emits the few elements (and at most a new group chain) it touches;
//  - a policy, profile, tier or pool event: the index is rebuilt and diffed, the compiler
//    refills only the changed policies' chains;
//  - a large burst (more than `incremental_limit` events): the table is rebuilt in memory and
//    diffed against the previous desired table — still one transaction;
//  - every `refresh_interval` the kernel table is read back and any drift (a flushed chain, a
//    deleted element, a foreign rule, a deleted table) repaired.
// Start adopts what is in the kernel: read, diff, apply only the difference (a restart with
// nothing changed writes nothing, so there is no window of open or closed traffic).
// A failed Apply is retried by the next refresh (the desired table already holds the change).
// Threads: one worker (watch + apply + refresh); Explain and Status from any thread.

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/datastore/datastore.h"
#include "common/kernel/netlink.h"
#include "felixd/nft/layout.h"
#include "felixd/nft/nftables.h"
#include "felixd/policy/explain.h"
#include "felixd/policy/index.h"
#include "felixd/policy/model.h"
#include "felixd/policy_compiler/compiler.h"

namespace calico::felixd {

struct PolicyManagerOptions {
  std::string node;  // dispatch and anti-spoofing only for this node's endpoints
  nft::LayoutOptions layout;
  absl::Duration refresh_interval = absl::Seconds(10);
  // Event batches larger than this rebuild the table in memory instead of updating it
  // entity by entity; either way the kernel gets one transaction.
  size_t incremental_limit = 32;
  // Host endpoints' failsafe ports (upstream FailsafeInbound/OutboundHostPorts).
  policy::Failsafe failsafe = policy::DefaultFailsafe();
};

struct PolicyStatus {
  bool ready = false;           // the first full sync has been programmed
  size_t endpoints = 0;         // workload endpoints known (all nodes)
  size_t local_endpoints = 0;   // this node's, dispatched by the table
  size_t host_endpoints = 0;    // this node's host endpoints programmed (named interface)
  size_t policies = 0;
  size_t chains = 0;            // in the desired table
  size_t sets = 0;
  int64_t transactions = 0;     // successful Apply calls
  int64_t failures = 0;         // failed Apply calls (retried by the next refresh)
  int64_t repairs = 0;          // refreshes that found the kernel table (or a link group) differing
  int64_t link_group_writes = 0;  // RTM_SETLINK group writes (kByLinkGroup dispatch)
  datastore::Revision revision = 0;  // the datastore revision the kernel now reflects
  absl::Time last_refresh = absl::InfinitePast();
  std::vector<std::string> problems;  // objects that could not be converted, the last failure
};

class PolicyManager {
 public:
  // `store`, `nft` and `links` must outlive it; both kernel handles are used from the worker
  // thread only (after Start). `links` (the host's netlink) sets the link group of each local
  // workload interface under Dispatch::kByLinkGroup; it may be null under the other layouts.
  PolicyManager(datastore::Datastore& store, nft::Nftables& nft, PolicyManagerOptions options,
                kernel::Netlink* links = nullptr);
  ~PolicyManager();  // Stop()
  PolicyManager(const PolicyManager&) = delete;
  PolicyManager& operator=(const PolicyManager&) = delete;

  // Lists the datastore, adopts the kernel table and programs the difference, then starts the
  // worker. Unavailable when the datastore cannot be read; the kernel's error otherwise.
  absl::Status Start();
  void Stop();

  // The verdict for a packet from the model the table was compiled from.
  policy::Verdict Explain(const policy::Packet& packet) const;
  PolicyStatus Status() const;
  // Waits until the kernel reflects datastore revision `revision` (or later); false on timeout.
  bool WaitProgrammed(datastore::Revision revision, absl::Duration timeout) const;

  // The worker's steps, public for tests that drive the manager without its thread.
  // Re-lists everything and diffs against the kernel.
  absl::Status FullSync();
  // Waits up to `timeout` for datastore events and programs them; refreshes when due.
  absl::Status Poll(absl::Duration timeout);
  // Reads the kernel table back and repairs any difference.
  absl::Status Refresh();
  // The whole table as it should be: the policy table plus NAT outgoing (dumps, benchmarks).
  nft::DesiredTable Desired() const;

 private:
  struct Batch;
  void Worker();
  absl::Status ApplyBatch(const std::vector<datastore::Event>& events);
  absl::Status Program(const nft::Delta& delta);  // under mu_
  nft::DesiredTable DesiredLocked() const;
  // kByLinkGroup: gives interfaces the group the compiler assigned, after the nftables
  // transaction that created the group's elements: the interfaces of the endpoints `forced`
  // (written even when we believe they are right: their veth may be new), the interfaces
  // `changed` unless last written with that group, or every cali* link with `all`.
  void SyncLinkGroups(const std::set<std::string>& forced, const std::set<std::string>& changed_ifnames,
                      bool all);  // under mu_
  bool by_link_group() const { return options_.layout.dispatch == nft::Dispatch::kByLinkGroup; }
  void NoteProblemLocked(const std::string& what, const absl::Status& status);
  // Host endpoints of this node without interfaceName are found by their expectedIPs, as
  // upstream: the first listed address a host interface (not cali*, not lo) carries names the
  // interface, looked up on every event of the endpoint and on every refresh (addresses move).
  // The model holds the endpoint with that interface (or none: not policed, and said so).
  // Address → interface of the host, listed on first use in one pass (nullopt: not yet).
  using HostAddresses = std::optional<absl::StatusOr<std::map<std::string, std::string>>>;
  // Keeps by_address_ for the host endpoint `id` (this node's, no interfaceName) and resolves it.
  void TrackByAddressLocked(const std::string& id, HostAddresses& addresses);
  // Puts the endpoint with the interface its addresses name; false when that changed nothing,
  // or when the host's addresses could not be listed (the interface it had stays).
  bool ResolveByAddressLocked(const std::string& id, HostAddresses& addresses);
  absl::StatusOr<std::map<std::string, std::string>> HostAddressesLocked();
  // Refresh: re-resolves them all and programs the endpoints whose interface changed.
  void RefreshByAddressLocked();
  // What felixd does not program and says so: this node's host endpoints with interfaceName
  // "*" or none, and preDNAT / doNotTrack policies. Empty when the object is fine or gone.
  std::string UnsupportedLocked(const resources::KindInfo& kind, const std::string& ns,
                                const std::string& name) const;

  datastore::Datastore& store_;
  nft::Nftables& nft_;
  PolicyManagerOptions options_;
  kernel::Netlink* links_;
  std::map<std::string, uint32_t> applied_groups_;  // interface → group last written or read
  std::set<std::string> by_address_;  // ids of this node's host endpoints without interfaceName

  mutable std::mutex mu_;
  mutable std::condition_variable programmed_;
  policy::Model model_;
  policy::SelectionIndex index_;
  policy_compiler::Compiler compiler_;
  std::map<std::string, std::pair<std::string, bool>> pools_;  // IPPool → (cidr, natOutgoing)
  std::map<std::string, std::pair<std::string, std::string>> nodes_;  // Node → (v4, v6) addresses
  nft::NatOutgoing nat_;
  bool suspect_ = false;  // an Apply failed: the kernel may differ from what we last wrote
  PolicyStatus status_;
  bool stopping_ = false;
  std::unique_ptr<datastore::Watch> watch_;  // worker thread only
  std::thread worker_;
};

}  // namespace calico::felixd
