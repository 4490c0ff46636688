#include "felixd/service/felix.h"

#include <algorithm>
#include <array>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "common/resources/resource.h"
#include "felixd/dataplane/naming.h"
#include "ipamd/allocator/block.h"
#include "nlohmann/json.hpp"

namespace calico::felixd {
namespace {

const resources::KindInfo& WepKind() {
  static const resources::KindInfo* kind = resources::FindKind("WorkloadEndpoint");
  return *kind;
}
const resources::KindInfo& PoolKind() {
  static const resources::KindInfo* kind = resources::FindKind("IPPool");
  return *kind;
}
const resources::KindInfo& NodeKind() {
  static const resources::KindInfo* kind = resources::FindKind("Node");
  return *kind;
}
std::string AllAffinitiesPrefix() { return std::string(ipamd::kIpamPrefix) + "host/"; }

std::string JoinIps(const std::vector<net::Prefix>& ips) {
  return absl::StrJoin(ips, ",", [](std::string* out, const net::Prefix& p) {
    out->append(net::FormatCidr(p));
  });
}

// A WorkloadEndpoint of this node as the endpoint manager needs it; nullopt for other nodes'.
std::optional<LocalEndpoint> LocalEndpointOf(const resources::Resource& wep,
                                             std::string_view node) {
  const resources::Json& spec = wep.object["spec"];
  if (spec.value("node", "") != node) return std::nullopt;
  LocalEndpoint e;
  e.name = wep.Name();
  e.host_ifname = spec.value("interfaceName", "");
  if (spec.contains("ipNetworks")) {
    for (const auto& cidr : spec["ipNetworks"]) {
      if (auto p = net::ParseCidrOrIp(cidr.get<std::string>())) e.ips.push_back(*p);
    }
  }
  if (e.host_ifname.empty()) return std::nullopt;
  return e;
}

resources::Json WepObject(std::string_view node, const WorkloadNames& names,
                          const WorkloadRequest& request, const SetupResult& result) {
  resources::Json labels = resources::Json::object();
  for (const auto& [k, v] : request.labels) labels[k] = v;
  labels["projectcalico.org/namespace"] = names.ns;
  labels["projectcalico.org/orchestrator"] = names.orchestrator;
  if (!request.service_account.empty()) {
    labels["projectcalico.org/serviceaccount"] = request.service_account;
  }
  resources::Json ips = resources::Json::array();
  for (const net::Prefix& p : request.ips) ips.push_back(net::FormatCidr(p));
  resources::Json profiles = resources::Json::array();
  if (!request.profiles.empty()) {
    for (const std::string& p : request.profiles) profiles.push_back(p);
  } else if (names.orchestrator == "k8s") {
    profiles.push_back(absl::StrCat("kns.", names.ns));
    if (!request.service_account.empty()) {
      profiles.push_back(absl::StrCat("ksa.", names.ns, ".", request.service_account));
    }
  }
  resources::Json spec = {
      {"orchestrator", names.orchestrator},
      {"node", std::string(node)},
      {"containerID", request.container_id},
      {"endpoint", request.endpoint},
      {"serviceAccountName", request.service_account},
      {"ipNetworks", ips},
      {"profiles", profiles},
      {"interfaceName", result.host_ifname},
      {"mac", result.container_mac},
  };
  if (names.orchestrator == "k8s") {
    spec["pod"] = request.pod;
  } else {
    spec["workload"] = names.workload;
  }
  return {{"apiVersion", "projectcalico.org/v3"},
          {"kind", "WorkloadEndpoint"},
          {"metadata", {{"name", names.endpoint_name}, {"namespace", names.ns}, {"labels", labels}}},
          {"spec", spec}};
}

}  // namespace

absl::StatusOr<WorkloadNames> NamesFor(std::string_view node, const WorkloadRequest& request) {
  WorkloadNames n;
  if (request.endpoint.empty() || request.endpoint.size() > 15) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interface name \"", request.endpoint, "\" must be 1-15 characters"));
  }
  if (!request.ns.empty() && !request.pod.empty()) {
    n.orchestrator = request.orchestrator.empty() ? "k8s" : request.orchestrator;
    n.ns = request.ns;
    n.workload = request.pod;
    n.host_ifname = HostVethName(request.ns, request.pod);
  } else {
    if (request.container_id.empty()) {
      return absl::InvalidArgumentError("neither namespace/pod nor a container id given");
    }
    n.orchestrator = request.orchestrator.empty() ? "cni" : request.orchestrator;
    n.ns = request.ns.empty() ? "default" : request.ns;
    n.workload = request.container_id;
    n.host_ifname = HostVethNameForContainer(request.container_id);
  }
  n.endpoint_name = WorkloadEndpointName(node, n.orchestrator, n.workload, request.endpoint);
  return n;
}

Felix::Felix(datastore::Datastore& store, kernel::Netlink& host, NetlinkOpener open,
             FelixOptions options)
    : store_(store),
      client_(store),
      host_(host),
      open_(open),
      plumber_(std::move(open)),
      options_(std::move(options)),
      manager_(host, options_.route_protocol),
      vxlan_{VxlanManager(host, 4), VxlanManager(host, 6)} {}

Felix::~Felix() { Stop(); }

int Felix::DetectMtu() {
  if (options_.mtu > 0) return options_.mtu;
  absl::StatusOr<std::vector<kernel::Route>> routes =
      host_.ListRoutes({.table = kernel::kMainTable, .family = 4});
  absl::StatusOr<std::vector<kernel::Link>> links = host_.ListLinks();
  if (routes.ok() && links.ok()) {
    for (const kernel::Route& r : *routes) {
      if (r.dst.len != 0 || r.hop.ifindex == 0) continue;
      for (const kernel::Link& l : *links) {
        if (l.index == r.hop.ifindex) return l.mtu;
      }
    }
  }
  return 1500;
}

absl::Status Felix::Start() {
  base_mtu_ = mtu_ = DetectMtu();
  RETURN_IF_ERROR(SyncOnce());
  log::Info("ready", {{"node", options_.node},
                      {"workloads", std::to_string(manager_.endpoints().size())},
                      {"mtu", std::to_string(mtu_)},
                      {"route_protocol", std::to_string(options_.route_protocol)}});
  loop_ = std::thread([this] { Loop(); });
  watcher_ = std::thread([this] { WatchLoop(); });
  return absl::OkStatus();
}

void Felix::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    if (watch_ != nullptr) watch_->Cancel();
  }
  changed_.notify_all();
  if (loop_.joinable()) loop_.join();
  if (watcher_.joinable()) watcher_.join();
}

bool Felix::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

absl::Status Felix::SyncOnce(bool read_kernel) {
  ASSIGN_OR_RETURN(datastore::ListResult weps, store_.List(resources::KeyPrefix(WepKind())));
  // Every node's affinities: this node's blocks get blackholes, other nodes' VXLAN blocks routes.
  ASSIGN_OR_RETURN(datastore::ListResult affinities, store_.List(AllAffinitiesPrefix()));
  absl::StatusOr<std::vector<resources::Resource>> pools = client_.List(PoolKind());
  if (!pools.ok()) return Annotate(pools.status(), "listing IPPools");
  absl::StatusOr<std::vector<resources::Resource>> nodes = client_.List(NodeKind());
  if (!nodes.ok()) return Annotate(nodes.status(), "listing Nodes");

  // One VXLAN per family (vxlan.calico, vxlan-v6.calico), fed from the same lists.
  std::array<VxlanInputs, 2> vin;
  vin[0].family = 4;
  vin[1].family = 6;
  // IP-in-IP pools need tunl0 (the kernel's ipip module). Checked with every kernel read.
  bool ipip = false;
  std::vector<VxlanPool> all_pools;
  for (const resources::Resource& pool : *pools) {
    const resources::Json& spec = pool.object["spec"];
    std::optional<net::Prefix> cidr = net::ParsePrefix(spec.value("cidr", ""));
    if (!cidr) continue;
    const bool disabled = spec.value("disabled", false);
    if (!disabled && cidr->addr.family == 4 && spec.value("ipipMode", "Never") != "Never") ipip = true;
    all_pools.push_back({.cidr = *cidr,
                         .vxlan = ParseEncapMode(spec.value("vxlanMode", "Never")).value_or(EncapMode::kNever),
                         .disabled = disabled});
  }
  std::array<bool, 2> wanted{};
  for (int i = 0; i < 2; ++i) {
    vin[i].node = options_.node;
    vin[i].pools = all_pools;
    wanted[i] = std::any_of(all_pools.begin(), all_pools.end(), [&](const VxlanPool& p) {
      return !p.disabled && p.vxlan != EncapMode::kNever && p.cidr.addr.family == vin[i].family;
    });
  }
  const bool vxlan_wanted = wanted[0] || wanted[1];
  for (const resources::Resource& node : *nodes) {
    const resources::Json& spec = node.object["spec"];
    const resources::Json bgp = spec.contains("bgp") && spec["bgp"].is_object() ? spec["bgp"] : resources::Json::object();
    for (int i = 0; i < 2; ++i) {
      const bool v6 = vin[i].family == 6;
      VxlanNode n;
      n.address = net::ParseCidrOrIp(bgp.value(v6 ? "ipv6Address" : "ipv4Address", ""));
      n.tunnel_ip = net::ParseIp(spec.value(v6 ? "ipv6VXLANTunnelAddr" : "ipv4VXLANTunnelAddr", ""));
      n.mac = kernel::ParseMac(spec.value(v6 ? "vxlanTunnelMACAddrV6" : "vxlanTunnelMACAddr", ""));
      vin[i].nodes.emplace(node.Name(), std::move(n));
    }
    if (node.Name() == options_.node) {
      // This node's VTEP MACs are felixd's to publish (as upstream Felix does).
      const bool need4 = wanted[0] && !vin[0].nodes[node.Name()].mac;
      const bool need6 = wanted[1] && !vin[1].nodes[node.Name()].mac;
      if (need4 || need6) {
        if (PublishVtepMacs(node, need4, need6)) {
          if (need4) vin[0].nodes[node.Name()].mac = VtepMacFor(options_.node, 4);
          if (need6) vin[1].nodes[node.Name()].mac = VtepMacFor(options_.node, 6);
        }
      }
    }
  }
  std::vector<net::Prefix> blocks;
  std::map<std::string, std::vector<net::Prefix>> blocks_by_node;
  std::set<std::string> borrowing;  // keys of other nodes' endpoints with a borrowed address
  const std::string host_prefix = AllAffinitiesPrefix();
  for (const datastore::Entry& entry : affinities.entries) {
    std::optional<net::Prefix> cidr = ipamd::CidrFromKey(entry.key);
    absl::StatusOr<ipamd::BlockAffinity> affinity = ipamd::DecodeAffinity(entry.value);
    if (!cidr || !affinity.ok() || affinity->state != ipamd::AffinityState::kConfirmed) continue;
    std::string_view rest = std::string_view(entry.key).substr(host_prefix.size());
    std::string node(rest.substr(0, rest.find('/')));
    if (node == options_.node) blocks.push_back(*cidr);
    blocks_by_node[node].push_back(*cidr);
    vin[cidr->addr.family == 6].blocks.emplace_back(*cidr, node);
  }
  std::map<std::string, LocalEndpoint> endpoints;
  for (const datastore::Entry& entry : weps.entries) {
    absl::StatusOr<resources::Resource> wep = resources::FromStored(entry.value, entry.mod_revision);
    if (!wep.ok()) {
      log::Warn("bad_workload_endpoint", {{"key", entry.key}, {"error", ToStd(wep.status().message())}});
      continue;
    }
    if (auto e = LocalEndpointOf(*wep, options_.node)) {
      endpoints[e->name] = std::move(*e);
      continue;
    }
    // Another node's workload address outside that node's blocks (borrowed): VXLAN routes it.
    if (!vxlan_wanted) continue;
    const size_t borrowed_before = vin[0].borrowed.size() + vin[1].borrowed.size();
    const resources::Json& spec = wep->object["spec"];
    const std::string node = spec.value("node", "");
    if (node.empty() || !spec.contains("ipNetworks")) continue;
    const std::vector<net::Prefix>& theirs = blocks_by_node[node];
    for (const auto& cidr : spec["ipNetworks"]) {
      std::optional<net::Prefix> ip = net::ParseCidrOrIp(cidr.get<std::string>());
      if (!ip || ip->len != ip->addr.Bits()) continue;
      if (std::none_of(theirs.begin(), theirs.end(),
                       [&](const net::Prefix& b) { return net::Contains(b, *ip); })) {
        vin[ip->addr.family == 6].borrowed.emplace_back(*ip, node);
      }
    }
    if (vin[0].borrowed.size() + vin[1].borrowed.size() > borrowed_before) borrowing.insert(entry.key);
  }
  std::array<VxlanPlan, 2> plans = {PlanVxlan(vin[0]), PlanVxlan(vin[1])};

  std::lock_guard<std::mutex> lock(mu_);
  // Requests in flight (or whose write this list predates) override the list.
  for (auto it = pending_.begin(); it != pending_.end();) {
    const Pending& p = it->second;
    if (p.revision != 0 && p.revision <= weps.revision) {
      it = pending_.erase(it);
      continue;
    }
    if (p.removed) {
      endpoints.erase(it->first);
    } else {
      endpoints[it->first] = p.endpoint;
    }
    ++it;
  }
  std::vector<LocalEndpoint> list;
  for (auto& [name, e] : endpoints) list.push_back(std::move(e));
  manager_.ReplaceEndpoints(std::move(list));
  manager_.SetAffineBlocks(std::move(blocks));
  std::vector<kernel::Route> remote = plans[0].routes;
  remote.insert(remote.end(), plans[1].routes.begin(), plans[1].routes.end());
  manager_.SetRemoteRoutes(std::move(remote));
  vxlan_pools_ = std::move(all_pools);
  vxlan_wanted_ = vxlan_wanted;
  blocks_by_node_ = std::move(blocks_by_node);
  borrowing_endpoints_ = std::move(borrowing);
  // New pods fit the largest encapsulation in use.
  if (options_.mtu <= 0) {
    mtu_ = base_mtu_ - (wanted[1] ? kVxlanOverheadV6 : wanted[0] ? kVxlanOverhead : 0);
  }
  // The devices first, so the routes through them can be written.
  for (int i = 0; i < 2; ++i) {
    const bool plan_changed = !(plans[i] == vxlan_[i].plan());
    vxlan_[i].Set(std::move(plans[i]));
    if (read_kernel || plan_changed || !vxlan_problem_[i].empty()) {
      absl::Status v = vxlan_[i].Apply();
      std::string problem = v.ok() ? "" : absl::StrCat("VXLAN (", vxlan_[i].device(), "): ", ToStd(v.message()));
      if (problem != vxlan_problem_[i] && !problem.empty()) log::Error("vxlan_failed", {{"problem", problem}});
      vxlan_problem_[i] = problem;
    }
  }
  absl::Status status;
  ipip_wanted_ = ipip;
  last_list_ = absl::Now();
  if (read_kernel) {
    EnsureIpipTunnel(ipip);
    status = manager_.Resync();
    last_resync_ = absl::Now();
  } else {
    status = manager_.Apply();
  }
  if (!ready_) ready_ = true;
  PublishAdvertisedLocked();
  if (!status.ok()) log::Warn("resync_incomplete", {{"error", ToStd(status.message())}});
  return absl::OkStatus();
}

bool Felix::PublishVtepMacs(const resources::Resource& node, bool v4, bool v6) {
  resources::Resource updated = node;
  if (v4) updated.object["spec"]["vxlanTunnelMACAddr"] = kernel::FormatMac(VtepMacFor(options_.node, 4));
  if (v6) updated.object["spec"]["vxlanTunnelMACAddrV6"] = kernel::FormatMac(VtepMacFor(options_.node, 6));
  // resourceVersion makes it a compare-and-swap: ipamd writes the tunnel addresses concurrently.
  absl::StatusOr<resources::Resource> written = client_.Replace(updated);
  if (!written.ok()) {
    log::Warn("vtep_mac_not_published", {{"node", options_.node}, {"error", ToStd(written.status().message())}});
    return false;  // retried by the next sync (a Node event marks one dirty)
  }
  log::Info("vtep_mac_published", {{"node", options_.node},
                                   {"mac", v4 ? kernel::FormatMac(VtepMacFor(options_.node, 4)) : ""},
                                   {"mac_v6", v6 ? kernel::FormatMac(VtepMacFor(options_.node, 6)) : ""}});
  return true;
}

void Felix::PublishAdvertisedLocked() {
  std::set<AdvertisedRoute> now = manager_.Advertised();
  // VXLAN pools are routed by felixd on every node, not over BGP (as upstream's BIRD config).
  std::erase_if(now, [&](const AdvertisedRoute& r) { return InVxlanPool(vxlan_pools_, r.cidr); });
  if (now == advertised_) return;
  advertised_ = std::move(now);
  ++advertised_version_;
  changed_.notify_all();
}

std::optional<std::pair<uint64_t, std::set<AdvertisedRoute>>> Felix::WaitAdvertised(
    uint64_t after, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                    [&] { return advertised_version_ > after || stopping_; });
  if (stopping_) return std::nullopt;
  return std::make_pair(advertised_version_, advertised_);
}

void Felix::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    absl::Duration until_due = last_resync_ + options_.resync_interval - absl::Now();
    changed_.wait_for(lock, absl::ToChronoNanoseconds(std::max(until_due, absl::ZeroDuration())),
                      [&] { return dirty_ || stopping_; });
    if (stopping_) break;
    // The kernel read-back runs every interval even while datastore events keep coming.
    const bool due = absl::Now() >= last_resync_ + options_.resync_interval;
    const bool was_dirty = dirty_;
    if (!due && !was_dirty) continue;
    // The datastore is re-listed only when the watch says something changed (or restarted), and
    // every relist interval as a safety net: listing every endpoint of the cluster every resync
    // interval on every node would load the datastore with the cluster's size times its nodes.
    const bool relist = was_dirty || absl::Now() >= last_list_ + options_.relist_interval;
    lock.unlock();
    // Coalesce a burst of datastore events (a node's pods starting) into one sync.
    if (was_dirty && !due) absl::SleepFor(absl::Milliseconds(50));
    {
      std::lock_guard<std::mutex> l(mu_);
      dirty_ = false;
    }
    absl::Status s = relist ? SyncOnce(/*read_kernel=*/due) : KernelResync();
    if (!s.ok()) log::Warn("sync_failed", {{"error", ToStd(s.message())}});
    lock.lock();
  }
}

absl::Status Felix::KernelResync() {
  std::lock_guard<std::mutex> lock(mu_);
  EnsureIpipTunnel(ipip_wanted_);
  for (int i = 0; i < 2; ++i) {
    absl::Status v = vxlan_[i].Apply();
    std::string problem = v.ok() ? "" : absl::StrCat("VXLAN (", vxlan_[i].device(), "): ", ToStd(v.message()));
    if (problem != vxlan_problem_[i] && !problem.empty()) log::Error("vxlan_failed", {{"problem", problem}});
    vxlan_problem_[i] = problem;
  }
  absl::Status status = manager_.Resync();
  last_resync_ = absl::Now();
  PublishAdvertisedLocked();
  if (!status.ok()) log::Warn("resync_incomplete", {{"error", ToStd(status.message())}});
  return absl::OkStatus();
}
// This node's endpoint events are applied as they come (parsed here, outside the lock); an
// affinity event or a (re)started watch marks the state dirty and the loop re-lists. Per-event
// cost stays constant however many endpoints the node has.
void Felix::WatchLoop() {
  const std::string wep_prefix = resources::KeyPrefix(WepKind());
  const std::string affinity_prefix = AllAffinitiesPrefix();
  const std::string name_prefix = absl::StrCat(absl::StrReplaceAll(options_.node, {{"-", "--"}}), "-");
  // One watch over the common root would carry every other node's IPAM traffic too; the
  // endpoint prefix plus a cheap name test keeps the noise low.
  // Affinities, pools and Nodes only mark the state dirty (the loop re-lists): they change rarely
  // and VXLAN routes depend on all of them.
  std::vector<std::string> prefixes = {wep_prefix, affinity_prefix, resources::KeyPrefix(PoolKind()),
                                       resources::KeyPrefix(NodeKind())};
  std::vector<std::unique_ptr<datastore::Watch>> watches(prefixes.size());
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    bool relist = false;
    std::vector<EndpointUpdate> updates;
    for (size_t i = 0; i < prefixes.size(); ++i) {
      if (watches[i] == nullptr) {
        absl::StatusOr<datastore::Revision> rev = store_.CurrentRevision();
        if (!rev.ok()) break;
        absl::StatusOr<std::unique_ptr<datastore::Watch>> w = store_.WatchPrefix(prefixes[i], *rev);
        if (!w.ok()) break;
        watches[i] = std::move(*w);
        relist = true;  // anything between the last list and now
      }
      absl::StatusOr<std::vector<datastore::Event>> events =
          watches[i]->Next(absl::Milliseconds(100));
      if (!events.ok()) {
        watches[i].reset();
        relist = true;
        continue;
      }
      for (const datastore::Event& e : *events) {
        if (i >= 1) {
          relist = true;
          continue;
        }
        std::string_view name = e.key;
        name = name.substr(name.rfind('/') + 1);
        if (name.substr(0, name_prefix.size()) != name_prefix) {
          // Another node's workload: only VXLAN mode cares, and only when it has (or had) an
          // address borrowed outside its node's blocks, which needs a route of its own here.
          // Anything else would make every felixd re-list on every pod event of the cluster.
          if (RemoteEndpointMatters(e)) relist = true;
          continue;
        }
        EndpointUpdate u{.name = std::string(name), .revision = e.revision, .endpoint = std::nullopt};
        if (e.type == datastore::EventType::kPut) {
          absl::StatusOr<resources::Resource> wep = resources::FromStored(e.value, e.revision);
          if (!wep.ok()) {
            relist = true;
            continue;
          }
          u.endpoint = LocalEndpointOf(*wep, options_.node);
        }
        updates.push_back(std::move(u));
      }
    }
    if (!updates.empty()) ApplyEndpointUpdates(updates);
    if (relist) {
      std::lock_guard<std::mutex> lock(mu_);
      dirty_ = true;
      changed_.notify_all();
    }
  }
}

bool Felix::RemoteEndpointMatters(const datastore::Event& e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!vxlan_wanted_) return false;
    if (borrowing_endpoints_.count(e.key)) return true;  // changed or gone
  }
  if (e.type != datastore::EventType::kPut) return false;
  absl::StatusOr<resources::Resource> wep = resources::FromStored(e.value, e.revision);
  if (!wep.ok()) return true;  // let the re-list report it
  const resources::Json& spec = wep->object["spec"];
  const std::string node = spec.value("node", "");
  if (!spec.contains("ipNetworks") || node.empty()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto theirs = blocks_by_node_.find(node);
  for (const auto& cidr : spec["ipNetworks"]) {
    std::optional<net::Prefix> ip = net::ParseCidrOrIp(cidr.get<std::string>());
    if (!ip) continue;
    if (theirs == blocks_by_node_.end() ||
        std::none_of(theirs->second.begin(), theirs->second.end(),
                     [&](const net::Prefix& b) { return net::Contains(b, *ip); })) {
      return true;  // borrowed (or its node's block is not known here yet)
    }
  }
  return false;
}

void Felix::ApplyEndpointUpdates(const std::vector<EndpointUpdate>& updates) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const EndpointUpdate& u : updates) {
    auto p = pending_.find(u.name);
    if (p != pending_.end()) {
      // A request in flight, or a local change newer than this event, decides.
      if (p->second.revision == 0 || p->second.revision > u.revision) continue;
      pending_.erase(p);
    }
    if (u.endpoint) {
      const LocalEndpoint* now = manager_.Find(u.name);
      if (now == nullptr || !(*now == *u.endpoint)) manager_.SetEndpoint(*u.endpoint);
    } else if (manager_.Find(u.name) != nullptr) {
      manager_.RemoveEndpoint(u.name);
    }
  }
  absl::Status s = manager_.Apply();
  if (!s.ok()) log::Warn("apply_incomplete", {{"error", ToStd(s.message())}});
  PublishAdvertisedLocked();
}

absl::StatusOr<std::optional<resources::Resource>> Felix::GetEndpoint(const WorkloadNames& names) {
  absl::StatusOr<resources::Resource> wep = client_.Get(WepKind(), names.ns, names.endpoint_name);
  if (absl::IsNotFound(wep.status())) return std::nullopt;
  if (!wep.ok()) return wep.status();
  return std::optional<resources::Resource>(std::move(*wep));
}

absl::StatusOr<SetupResult> Felix::Setup(const WorkloadRequest& request) {
  if (!ready()) return absl::UnavailableError("felixd is not ready yet (first sync not done)");
  ASSIGN_OR_RETURN(WorkloadNames names, NamesFor(options_.node, request));
  if (request.netns.empty()) return absl::InvalidArgumentError("no network namespace given");
  if (request.ips.empty()) return absl::InvalidArgumentError("no IP addresses given");
  for (const net::Prefix& ip : request.ips) {
    if (ip.len != ip.addr.Bits()) {
      return absl::InvalidArgumentError(
          absl::StrCat("address ", net::FormatCidr(ip), " must be a /32 or /128"));
    }
  }
  SetupResult result;
  result.host_ifname = names.host_ifname;
  result.endpoint_name = names.endpoint_name;
  result.ips = request.ips;
  result.mtu = request.mtu > 0 ? request.mtu : mtu_;
  PlumbSpec spec{.host_ifname = names.host_ifname,
                 .netns = request.netns,
                 .ifname = request.endpoint,
                 .ips = request.ips,
                 .mtu = result.mtu};

  absl::Time t0 = absl::Now();
  // The same container again (a runtime retrying ADD): if it is intact, answer as before.
  ASSIGN_OR_RETURN(std::optional<resources::Resource> existing, GetEndpoint(names));
  absl::Time t_get = absl::Now();
  if (existing && existing->object["spec"].value("containerID", "") == request.container_id) {
    std::optional<LocalEndpoint> e = LocalEndpointOf(*existing, options_.node);
    absl::StatusOr<std::vector<std::string>> problems = plumber_.Check(spec);
    if (e && e->ips == request.ips && problems.ok() && problems->empty()) {
      result.existing = true;
      result.container_mac = existing->object["spec"].value("mac", "");
      return result;
    }
  }

  ASSIGN_OR_RETURN(PlumbResult plumbed, plumber_.Plumb(spec));
  absl::Time t_plumb = absl::Now();
  result.container_mac = plumbed.container_mac;
  LocalEndpoint endpoint{.name = names.endpoint_name, .host_ifname = names.host_ifname,
                         .ips = request.ips};
  auto rollback = [&] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      manager_.RemoveEndpoint(endpoint.name);
      pending_.erase(endpoint.name);
      (void)manager_.Apply();
      PublishAdvertisedLocked();
    }
    (void)plumber_.Unplumb(names.host_ifname);
  };
  absl::Status routed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[endpoint.name] = Pending{.endpoint = endpoint};
    manager_.SetEndpoint(endpoint);
    routed = manager_.Apply();
    // Another endpoint's route failing (its device just went, say) is not this request's
    // failure: it stays pending and is retried; only this workload's own routes decide.
    if (!routed.ok() && manager_.EndpointInSync(endpoint.name)) {
      log::Warn("other_routes_pending", {{"endpoint", endpoint.name}, {"error", ToStd(routed.message())}});
      routed = absl::OkStatus();
    }
  }
  if (!routed.ok()) {
    rollback();
    return Annotate(routed, "programming the workload's host routes");
  }

  absl::Time t_route = absl::Now();
  absl::StatusOr<resources::Resource> wep =
      resources::FromObject(WepObject(options_.node, names, request, result), names.ns);
  absl::StatusOr<resources::Resource> written =
      wep.ok() ? client_.Apply(*wep) : absl::StatusOr<resources::Resource>(wep.status());
  if (!written.ok()) {
    rollback();
    return Annotate(written.status(), absl::StrCat("writing WorkloadEndpoint ", names.endpoint_name));
  }
  absl::StatusOr<std::optional<int64_t>> rev = resources::ResourceVersionOf(*written);
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[endpoint.name].revision = rev.ok() && *rev ? **rev : 1;
    PublishAdvertisedLocked();
  }
  absl::Time t_record = absl::Now();
  if (options_.wait_policy && rev.ok() && *rev &&
      options_.policy_setup_timeout > absl::ZeroDuration() &&
      !options_.wait_policy(**rev, options_.policy_setup_timeout)) {
    log::Warn("policy_not_programmed_in_time",
              {{"endpoint", names.endpoint_name},
               {"timeout", absl::FormatDuration(options_.policy_setup_timeout)}});
  }
  absl::Time t_end = absl::Now();
  auto ms = [](absl::Duration d) { return absl::StrCat(absl::ToDoubleMilliseconds(d)); };
  log::Info("workload_set_up", {{"endpoint", names.endpoint_name},
                                {"interface", names.host_ifname},
                                {"ips", JoinIps(request.ips)},
                                {"lookup_ms", ms(t_get - t0)},
                                {"kernel_ms", ms(t_plumb - t_get)},
                                {"route_ms", ms(t_route - t_plumb)},
                                {"record_ms", ms(t_record - t_route)},
                                {"policy_ms", ms(t_end - t_record)}});
  return result;
}

absl::StatusOr<TeardownResult> Felix::Teardown(const WorkloadRequest& request) {
  ASSIGN_OR_RETURN(WorkloadNames names, NamesFor(options_.node, request));
  TeardownResult result;
  absl::StatusOr<std::optional<resources::Resource>> existing = GetEndpoint(names);
  if (existing.ok() && existing->has_value() && !request.container_id.empty()) {
    std::string owner = (**existing).object["spec"].value("containerID", "");
    if (!owner.empty() && owner != request.container_id) {
      // kubelet may DEL an old sandbox after the pod's new one is up: keep the new one.
      result.skipped_reason = absl::StrCat("endpoint ", names.endpoint_name, " belongs to container ",
                                           owner, ", not ", request.container_id);
      return result;
    }
  }
  // The kernel side first: it needs no datastore, so a DEL during an outage still frees it.
  ASSIGN_OR_RETURN(bool unplumbed, plumber_.Unplumb(names.host_ifname));
  if (unplumbed) result.removed.push_back(absl::StrCat("veth ", names.host_ifname));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (manager_.Find(names.endpoint_name) != nullptr) {
      result.removed.push_back(absl::StrCat("routes of ", names.endpoint_name));
    }
    manager_.RemoveEndpoint(names.endpoint_name);
    Pending tombstone;
    tombstone.endpoint.name = names.endpoint_name;
    tombstone.removed = true;
    pending_[names.endpoint_name] = tombstone;
    (void)manager_.Apply();
    PublishAdvertisedLocked();
  }
  if (!existing.ok()) {
    return Annotate(existing.status(), absl::StrCat("reading WorkloadEndpoint ", names.endpoint_name));
  }
  datastore::Revision rev = 1;
  if (existing->has_value()) {
    absl::StatusOr<resources::Resource> deleted =
        client_.Delete(WepKind(), names.ns, names.endpoint_name);
    if (!deleted.ok() && !absl::IsNotFound(deleted.status())) {
      return Annotate(deleted.status(), absl::StrCat("deleting WorkloadEndpoint ", names.endpoint_name));
    }
    result.removed.push_back(absl::StrCat("WorkloadEndpoint ", names.endpoint_name));
    absl::StatusOr<datastore::Revision> now = store_.CurrentRevision();
    if (now.ok()) rev = *now;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[names.endpoint_name].revision = rev;
  }
  log::Info("workload_torn_down", {{"endpoint", names.endpoint_name},
                                   {"removed", absl::StrJoin(result.removed, ", ")}});
  return result;
}

absl::Status Felix::Check(const WorkloadRequest& request) {
  ASSIGN_OR_RETURN(WorkloadNames names, NamesFor(options_.node, request));
  ASSIGN_OR_RETURN(std::optional<resources::Resource> existing, GetEndpoint(names));
  if (!existing) {
    return absl::NotFoundError(absl::StrCat("no WorkloadEndpoint ", names.ns, "/", names.endpoint_name));
  }
  std::optional<LocalEndpoint> endpoint = LocalEndpointOf(*existing, options_.node);
  if (!endpoint) {
    return absl::FailedPreconditionError(
        absl::StrCat("WorkloadEndpoint ", names.endpoint_name, " is not on node ", options_.node));
  }
  std::vector<std::string> problems;
  if (!request.ips.empty() && request.ips != endpoint->ips) {
    problems.push_back(absl::StrCat("the runtime expects ", JoinIps(request.ips),
                                    " but the endpoint has ", JoinIps(endpoint->ips)));
  }
  PlumbSpec spec{.host_ifname = endpoint->host_ifname,
                 .netns = request.netns,
                 .ifname = request.endpoint,
                 .ips = endpoint->ips};
  ASSIGN_OR_RETURN(std::vector<std::string> kernel_problems, plumber_.Check(spec));
  problems.insert(problems.end(), kernel_problems.begin(), kernel_problems.end());
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(std::vector<kernel::Route> routes,
                     host_.ListRoutes({.table = kernel::kMainTable,
                                       .protocol = options_.route_protocol}));
    for (const net::Prefix& ip : endpoint->ips) {
      bool found = std::any_of(routes.begin(), routes.end(), [&](const kernel::Route& r) {
        return r.dst == ip && r.hop.ifname == endpoint->host_ifname;
      });
      if (!found) {
        problems.push_back(absl::StrCat("host route ", net::FormatCidr(ip), " dev ",
                                        endpoint->host_ifname, " is missing"));
      }
    }
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "workload ", names.endpoint_name, " is not intact: ", absl::StrJoin(problems, "; ")));
}

std::vector<WorkloadInfo> Felix::List(const std::string& endpoint_name) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<std::vector<kernel::Route>> routes =
      host_.ListRoutes({.table = kernel::kMainTable, .protocol = options_.route_protocol});
  std::vector<WorkloadInfo> out;
  for (const auto& [name, e] : manager_.endpoints()) {
    if (!endpoint_name.empty() && name != endpoint_name) continue;
    WorkloadInfo info{.endpoint_name = name, .host_ifname = e.host_ifname, .ips = e.ips};
    info.host_interface_present = host_.GetLink(e.host_ifname).ok();
    info.routes_programmed = routes.ok() && std::all_of(e.ips.begin(), e.ips.end(), [&](const net::Prefix& ip) {
      return std::any_of(routes->begin(), routes->end(), [&](const kernel::Route& r) {
        return r.dst == ip && r.hop.ifname == e.host_ifname;
      });
    });
    out.push_back(std::move(info));
  }
  return out;
}

void Felix::EnsureIpipTunnel(bool wanted) {
  std::string problem;
  if (wanted) {
    absl::StatusOr<kernel::Link> tunl = host_.GetLink("tunl0");
    absl::Status s = tunl.status();
    if (absl::IsNotFound(s)) s = host_.CreateIpipTunnel("tunl0");
    if (s.ok() && !(tunl.ok() && tunl->up)) s = host_.SetLinkUp("tunl0", true);
    if (!s.ok()) problem = absl::StrCat("IP-in-IP pools need tunl0: ", ToStd(s.message()));
  }
  if (problem != ipip_problem_ && !problem.empty()) log::Error("ipip_unavailable", {{"problem", problem}});
  ipip_problem_ = problem;
}

FelixStatus Felix::Status() {
  std::lock_guard<std::mutex> lock(mu_);
  EndpointManagerStats stats = manager_.stats();
  std::vector<std::string> problems;
  if (!ipip_problem_.empty()) problems.push_back(ipip_problem_);
  std::array<std::optional<VxlanStatus>, 2> vxlan;
  for (int i = 0; i < 2; ++i) {
    if (!vxlan_problem_[i].empty()) problems.push_back(vxlan_problem_[i]);
    const VxlanPlan& plan = vxlan_[i].plan();
    for (const std::string& w : plan.waiting) {
      problems.push_back(absl::StrCat("VXLAN (IPv", plan.family, ") waits: ", w));
    }
    if (!plan.wanted) continue;
    vxlan[i] = VxlanStatus{.device = vxlan_[i].device(),
                           .tunnel_ip = plan.local ? net::FormatIp(plan.local->tunnel_ip) : "",
                           .mac = plan.local ? kernel::FormatMac(plan.local->mac) : "",
                           .vteps = plan.remotes.size(),
                           .routes = plan.routes.size(),
                           .device_mtu = vxlan_[i].device_mtu()};
  }
  return {.ready = ready_,
          .workloads = manager_.endpoints().size(),
          .routes = stats.routes,
          .last_resync = last_resync_,
          .resyncs = stats.resyncs,
          .repairs = stats.sysctl_repairs,
          .mtu = mtu_,
          .problems = problems,
          .vxlan = std::move(vxlan[0]),
          .vxlan6 = std::move(vxlan[1])};
}

}  // namespace calico::felixd
