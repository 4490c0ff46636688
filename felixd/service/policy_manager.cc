#include "felixd/service/policy_manager.h"

#include <malloc.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "common/resources/resource.h"
#include "felixd/nft/delta.h"

namespace calico::felixd {
namespace {
// After a whole-index rebuild the old index and tables (hundreds of thousands of small blocks)
// have just been freed; glibc merges them on the next large allocation, ~30 ms at 10k
// endpoints, which would land on the next single change. Merging (and returning) them now puts
// that cost on the rebuild, which takes far longer anyway.
void ReleaseFreedMemory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

// The index reports an endpoint whose policy lists are unchanged as unchanged; its own event may
// still change what the compiler renders for it (its interface, its addresses' anti-spoofing
// elements), so the events' endpoints are always re-rendered (unchanged output costs no writes).
policy::SelectionDelta WithEndpoints(policy::SelectionDelta d, const std::set<std::string>& ids) {
  std::set<std::string> listed(d.endpoints_changed.begin(), d.endpoints_changed.end());
  for (const std::string& id : ids) {
    if (!listed.contains(id)) d.endpoints_changed.push_back(id);
  }
  return d;
}

// Every kind lives under this root; one watch sees them all.
constexpr char kResourceRoot[] = "/calico/resources/v3/";

struct KindRoute {
  const resources::KindInfo* kind;
  std::string prefix;
};

const std::vector<KindRoute>& PolicyKinds() {
  static const std::vector<KindRoute> kinds = [] {
    std::vector<KindRoute> out;
    auto add = [&](const resources::KindInfo* k) {
      if (k != nullptr) out.push_back({k, resources::KeyPrefix(*k)});
    };
    add(resources::FindKind("projectcalico.org/v3", "WorkloadEndpoint"));
    add(resources::FindKind("projectcalico.org/v3", "NetworkPolicy"));
    add(resources::FindKind("projectcalico.org/v3", "GlobalNetworkPolicy"));
    add(resources::FindKind("networking.k8s.io/v1", "NetworkPolicy"));
    add(resources::FindKind("projectcalico.org/v3", "Tier"));
    add(resources::FindKind("projectcalico.org/v3", "Profile"));
    add(resources::FindKind("projectcalico.org/v3", "NetworkSet"));
    add(resources::FindKind("projectcalico.org/v3", "GlobalNetworkSet"));
    add(resources::FindKind("projectcalico.org/v3", "IPPool"));
    add(resources::FindKind("projectcalico.org/v3", "HostEndpoint"));
    add(resources::FindKind("projectcalico.org/v3", "Node"));
    return out;
  }();
  return kinds;
}

// The kind and (namespace, name) of a key, or nullptr for a kind policy does not use.
const resources::KindInfo* RouteKey(std::string_view key, std::string* ns, std::string* name) {
  for (const KindRoute& r : PolicyKinds()) {
    if (key.substr(0, r.prefix.size()) != r.prefix) continue;
    std::string_view rest = key.substr(r.prefix.size());
    if (r.kind->namespaced) {
      size_t slash = rest.find('/');
      if (slash == std::string_view::npos) return nullptr;
      *ns = std::string(rest.substr(0, slash));
      *name = std::string(rest.substr(slash + 1));
    } else {
      ns->clear();
      *name = std::string(rest);
    }
    return r.kind;
  }
  return nullptr;
}

std::string PolicyIdOf(const resources::KindInfo& kind, const std::string& ns, const std::string& name) {
  if (kind.api_version == "networking.k8s.io/v1") return absl::StrCat(ns, "/knp.default.", name);
  return ns.empty() ? name : absl::StrCat(ns, "/", name);
}

bool IsKind(const resources::KindInfo& kind, std::string_view name) {
  return kind.api_version == "projectcalico.org/v3" && kind.kind == name;
}

// IPPools as NAT outgoing sees them: every pool is "inside"; natOutgoing pools masquerade.
using Pools = std::map<std::string, std::pair<std::string, bool>>;  // name → (cidr, natOutgoing)
using Nodes = std::map<std::string, std::pair<std::string, std::string>>;  // name → (v4, v6)

nft::NatOutgoing NatFrom(const Pools& pools) {
  nft::NatOutgoing nat;
  for (const auto& [name, pool] : pools) {
    const auto& [cidr, masquerade] = pool;
    const bool v6 = cidr.find(':') != std::string::npos;
    (v6 ? nat.all_pools6 : nat.all_pools4).push_back(cidr);
    if (masquerade) (v6 ? nat.nat_pools6 : nat.nat_pools4).push_back(cidr);
  }
  return nat;
}

// A Node's addresses as host endpoints see them (spec.bgp.ipv4Address / ipv6Address without
// the prefix length): VXLAN and IP-in-IP from/to them pass host endpoints.
std::pair<std::string, std::string> NodeAddresses(const resources::Resource& r) {
  std::pair<std::string, std::string> out;
  const auto& spec = r.object["spec"];
  if (!spec.is_object() || !spec.contains("bgp") || !spec["bgp"].is_object()) return out;
  auto addr = [&](const char* key) {
    std::string a = spec["bgp"].value(key, "");
    return a.substr(0, a.find('/'));
  };
  return {addr("ipv4Address"), addr("ipv6Address")};
}

// The node-address sets alone (elements only; the skeleton has the sets and the rules).
nft::DesiredTable NodesTable(const std::map<std::string, std::pair<std::string, std::string>>& nodes) {
  nft::DesiredTable t;
  t.sets[nft::kHepNodes4] = {nft::SetSpec{nft::kHepNodes4, nft::KeyType::kIpv4}, {}};
  t.sets[nft::kHepNodes6] = {nft::SetSpec{nft::kHepNodes6, nft::KeyType::kIpv6}, {}};
  for (const auto& [_, a] : nodes) {
    if (!a.first.empty()) t.sets[nft::kHepNodes4].elements[a.first] = "";
    if (!a.second.empty()) t.sets[nft::kHepNodes6].elements[a.second] = "";
  }
  // A malformed address must not fail the whole table: keep what canonicalises.
  for (auto& [name, set] : t.sets) {
    std::erase_if(set.elements, [&](const auto& e) {
      nft::DesiredTable one;
      one.sets[name] = {set.spec, {{e.first, ""}}};
      return !nft::Canonicalize(one).ok();
    });
  }
  nft::Canonicalize(t).IgnoreError();
  return t;
}

// The NAT objects alone, so their changes diff without touching the policy table.
nft::DesiredTable NatTable(const nft::NatOutgoing& nat) {
  nft::DesiredTable t;
  nft::AddNatOutgoing(t, nat);
  return t;
}

}  // namespace

struct PolicyManager::Batch {
  std::set<std::string> endpoints;     // Endpoint::Id()
  std::set<std::string> network_sets;  // NetworkSet::Id()
  std::set<std::string> policies;      // Policy::Id()
  std::vector<std::string> profiles;
  bool tiers = false;
  bool pools = false;
  bool nodes = false;  // Node addresses (VXLAN / IP-in-IP through host endpoints)
};

PolicyManager::PolicyManager(datastore::Datastore& store, nft::Nftables& nft,
                             PolicyManagerOptions options, kernel::Netlink* links)
    : store_(store),
      nft_(nft),
      options_(std::move(options)),
      links_(links),
      compiler_(policy_compiler::Options{options_.layout, options_.node, "calico-packet: "}) {}

PolicyManager::~PolicyManager() { Stop(); }

absl::Status PolicyManager::Start() {
  RETURN_IF_ERROR(FullSync());
  worker_ = std::thread([this] { Worker(); });
  return absl::OkStatus();
}

void PolicyManager::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  programmed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

absl::Status PolicyManager::FullSync() {
  if (by_link_group() && links_ == nullptr) {
    return absl::FailedPreconditionError("link-group dispatch needs the host's netlink");
  }
  ASSIGN_OR_RETURN(datastore::ListResult list, store_.List(kResourceRoot));
  policy::Model model;
  model.SetFailsafe(options_.failsafe);
  Pools pools;
  Nodes nodes;
  std::vector<std::string> problems;
  for (const datastore::Entry& entry : list.entries) {
    std::string ns, name;
    const resources::KindInfo* kind = RouteKey(entry.key, &ns, &name);
    if (kind == nullptr) continue;
    absl::StatusOr<resources::Resource> r = resources::FromStored(entry.value, entry.mod_revision);
    absl::Status s = r.ok() ? model.Apply(*r) : r.status();
    if (s.ok() && IsKind(*kind, "Node")) nodes[name] = NodeAddresses(*r);
    if (s.ok() && IsKind(*kind, "IPPool")) {
      pools[name] = {r->object["spec"].value("cidr", ""), r->object["spec"].value("natOutgoing", false)};
    }
    if (!s.ok()) problems.push_back(absl::StrCat(entry.key, ": ", ToStd(s.message())));
  }
  for (const std::string& p : problems) log::Warn("policy_object_skipped", {{"problem", p}});

  std::lock_guard<std::mutex> lock(mu_);
  model_ = std::move(model);
  nodes_ = std::move(nodes);
  by_address_.clear();
  {
    HostAddresses addresses;
    std::vector<std::string> hosts;
    for (const auto& [id, e] : model_.endpoints()) {
      if (e.host) hosts.push_back(id);
    }
    for (const std::string& id : hosts) TrackByAddressLocked(id, addresses);
  }
  for (const datastore::Entry& entry : list.entries) {
    std::string ns, name;
    const resources::KindInfo* kind = RouteKey(entry.key, &ns, &name);
    if (kind == nullptr) continue;
    if (std::string u = UnsupportedLocked(*kind, ns, name); !u.empty()) {
      log::Warn("policy_object_not_programmed", {{"problem", u}});
      problems.push_back(std::move(u));
    }
  }
  pools_ = std::move(pools);
  nat_ = NatFrom(pools_);
  index_ = policy::SelectionIndex::Build(model_);
  // The groups the interfaces carry now (a restart, a table someone flushed): kept where they
  // still fit, so adopting the table rewrites no interface and opens no window.
  std::map<std::string, uint32_t> carried;
  if (by_link_group()) {
    absl::StatusOr<std::vector<kernel::Link>> links = links_->ListLinks();
    if (!links.ok()) return links.status();
    for (const kernel::Link& link : *links) {
      if (link.name.rfind(nft::kWorkloadPrefix, 0) == 0) carried[link.name] = link.group;
    }
  }
  compiler_.Build(model_, index_, &carried);
  status_.problems = problems;
  absl::StatusOr<std::optional<nft::TableState>> actual = nft_.Read();
  if (!actual.ok()) return actual.status();
  nft::Delta delta = nft::ComputeDelta(DesiredLocked(), *actual);
  if (!delta.empty()) {
    log::Info("policy_table_sync", {{"objects", std::to_string(delta.size())},
                                    {"table", actual->has_value() ? "adopted" : "created"}});
  }
  RETURN_IF_ERROR(Program(delta));
  ReleaseFreedMemory();
  applied_groups_.clear();
  SyncLinkGroups({}, {}, /*all=*/true);
  status_.revision = list.revision;
  status_.last_refresh = absl::Now();
  status_.ready = true;
  // Watch from the list's revision: nothing between the list and the watch is missed.
  absl::StatusOr<std::unique_ptr<datastore::Watch>> watch = store_.WatchPrefix(kResourceRoot, list.revision);
  if (!watch.ok()) return watch.status();
  watch_ = std::move(*watch);
  programmed_.notify_all();
  return absl::OkStatus();
}

nft::DesiredTable PolicyManager::Desired() const {
  std::lock_guard<std::mutex> lock(mu_);
  return DesiredLocked();
}

nft::DesiredTable PolicyManager::DesiredLocked() const {
  nft::DesiredTable table = compiler_.desired();
  nft::AddNatOutgoing(table, nat_);
  for (auto& [name, set] : NodesTable(nodes_).sets) table.sets[name] = std::move(set);
  return table;
}

absl::Status PolicyManager::Program(const nft::Delta& delta) {
  if (delta.empty()) return absl::OkStatus();
  const absl::Time start = absl::Now();
  absl::Status s = nft_.Apply(delta);
  if (log::Enabled(log::Level::kDebug)) {
    // What a transaction touched, for "why did that take so long" (a few names, not thousands).
    auto some = [](const std::vector<std::string>& names) {
      std::string out = absl::StrJoin(names.begin(), names.begin() + std::min<size_t>(names.size(), 8), ",");
      if (names.size() > 8) absl::StrAppend(&out, ",+", names.size() - 8);
      return out;
    };
    std::set<std::string> set_names;
    for (const auto* list : {&delta.add_elements, &delta.delete_elements}) {
      for (const nft::ElementChange& e : *list) set_names.insert(e.set);
    }
    std::vector<std::string> chains;
    for (const nft::Chain& c : delta.put_chains) chains.push_back(c.name);
    log::Debug("policy_transaction",
               {{"objects", std::to_string(delta.size())},
                {"apply_ms", absl::StrFormat("%.2f", absl::ToDoubleMilliseconds(absl::Now() - start))},
                {"chains", some(chains)},
                {"element_sets", some({set_names.begin(), set_names.end()})},
                {"new_sets", std::to_string(delta.add_sets.size())},
                {"deleted_chains", std::to_string(delta.delete_chains.size())}});
  }
  if (s.ok()) {
    ++status_.transactions;
  } else {
    ++status_.failures;
    suspect_ = true;
    NoteProblemLocked("apply", s);
  }
  return s;
}

std::string PolicyManager::UnsupportedLocked(const resources::KindInfo& kind, const std::string& ns,
                                             const std::string& name) const {
  if (IsKind(kind, "HostEndpoint")) {
    auto it = model_.endpoints().find(std::string(policy::Endpoint::kHostEndpointIdPrefix) + name);
    if (it == model_.endpoints().end() || it->second.node != options_.node) return "";
    if (it->second.interface == "*") {
      // One all-interfaces endpoint per node is in force: the first by name (the compiler's).
      for (const auto& [id, e] : model_.endpoints()) {
        if (id >= it->first) break;
        if (e.host && e.node == options_.node && e.interface == "*") {
          return absl::StrCat("HostEndpoint \"", name, "\": another all-interfaces (\"*\") host "
                              "endpoint of this node, \"", e.name, "\", is in force; this one is "
                              "not programmed");
        }
      }
      return "";
    }
    if (policy::ProgrammedHostEndpoint(it->second)) return "";
    return absl::StrCat("HostEndpoint \"", name, "\": no interfaceName, and no interface of this "
                        "node carries one of its expectedIPs (",
                        links_ == nullptr ? "felixd has no netlink to look" : "looked again every refresh",
                        "); its expectedIPs still fill selectors, its traffic is not policed");
  }
  if (IsKind(kind, "GlobalNetworkPolicy") || IsKind(kind, "NetworkPolicy")) {
    auto it = model_.policies().find(PolicyIdOf(kind, ns, name));
    if (it == model_.policies().end() || !(it->second.pre_dnat || it->second.do_not_track)) return "";
    const policy::Policy& p = it->second;
    if (p.do_not_track) {
      if (p.ProgrammedDoNotTrack()) return "";
      return absl::StrCat("policy \"", p.Id(), "\": a doNotTrack policy must be a "
                          "GlobalNetworkPolicy with applyOnForward: true (and not preDNAT); it is "
                          "not programmed");
    }
    if (p.ProgrammedPreDnat()) return "";
    // Upstream's validation refuses these; felixd programs nothing of the policy.
    return absl::StrCat("policy \"", p.Id(), "\": a preDNAT policy must be a GlobalNetworkPolicy "
                        "with applyOnForward: true and no egress (types Ingress only); it is not "
                        "programmed");
  }
  return "";
}

void PolicyManager::NoteProblemLocked(const std::string& what, const absl::Status& status) {
  std::string line = absl::StrCat(what, ": ", ToStd(status.message()));
  log::Warn("policy_problem", {{"problem", line}});
  status_.problems.push_back(std::move(line));
  // Bounded: a persistent failure must not grow the list forever.
  if (status_.problems.size() > 20) status_.problems.erase(status_.problems.begin());
}

absl::Status PolicyManager::Poll(absl::Duration timeout) {
  if (watch_ == nullptr) return FullSync();
  absl::Duration until_refresh;
  {
    std::lock_guard<std::mutex> lock(mu_);
    until_refresh = status_.last_refresh + options_.refresh_interval - absl::Now();
    if (suspect_) until_refresh = absl::ZeroDuration();
  }
  if (until_refresh <= absl::ZeroDuration()) return Refresh();
  absl::StatusOr<std::vector<datastore::Event>> events = watch_->Next(std::min(timeout, until_refresh));
  if (!events.ok()) {
    // Compacted or cancelled: start over from a fresh list (diffed, so only changes are written).
    log::Warn("policy_watch_restart", {{"error", ToStd(events.status().message())}});
    watch_.reset();
    return events.status();
  }
  if (events->empty()) return absl::OkStatus();
  return ApplyBatch(*events);
}

absl::Status PolicyManager::ApplyBatch(const std::vector<datastore::Event>& events) {
  Batch batch;
  std::lock_guard<std::mutex> lock(mu_);
  Nodes next_nodes = nodes_;
  for (const datastore::Event& e : events) {
    std::string ns, name;
    const resources::KindInfo* kind = RouteKey(e.key, &ns, &name);
    if (kind == nullptr) continue;
    if (e.type == datastore::EventType::kPut) {
      absl::StatusOr<resources::Resource> r = resources::FromStored(e.value, e.revision);
      absl::Status s = r.ok() ? model_.Apply(*r) : r.status();
      if (!s.ok()) {
        // The previous version (if any) stays in force; the datastore's validation makes this rare.
        NoteProblemLocked(e.key, s);
        continue;
      }
      if (IsKind(*kind, "IPPool")) {
        pools_[name] = {r->object["spec"].value("cidr", ""), r->object["spec"].value("natOutgoing", false)};
      }
      if (IsKind(*kind, "Node")) next_nodes[name] = NodeAddresses(*r);
      if (IsKind(*kind, "HostEndpoint")) {
        HostAddresses addresses;
        TrackByAddressLocked(std::string(policy::Endpoint::kHostEndpointIdPrefix) + name, addresses);
      }
      if (std::string u = UnsupportedLocked(*kind, ns, name); !u.empty()) {
        NoteProblemLocked("not programmed", absl::InvalidArgumentError(u));
      }
    } else {
      model_.Remove(*kind, ns, name);
      if (IsKind(*kind, "HostEndpoint")) by_address_.erase(std::string(policy::Endpoint::kHostEndpointIdPrefix) + name);
      if (IsKind(*kind, "IPPool")) pools_.erase(name);
      if (IsKind(*kind, "Node")) next_nodes.erase(name);
    }
    if (IsKind(*kind, "WorkloadEndpoint")) {
      batch.endpoints.insert(absl::StrCat(ns, "/", name));
    } else if (IsKind(*kind, "HostEndpoint")) {
      batch.endpoints.insert(std::string(policy::Endpoint::kHostEndpointIdPrefix) + name);
    } else if (IsKind(*kind, "NetworkSet") || IsKind(*kind, "GlobalNetworkSet")) {
      batch.network_sets.insert(ns.empty() ? name : absl::StrCat(ns, "/", name));
    } else if (IsKind(*kind, "IPPool")) {
      batch.pools = true;
    } else if (IsKind(*kind, "Node")) {
      batch.nodes = true;
    } else if (IsKind(*kind, "Profile")) {
      batch.profiles.push_back(name);
    } else if (IsKind(*kind, "Tier")) {
      batch.tiers = true;
    } else {
      batch.policies.insert(PolicyIdOf(*kind, ns, name));
    }
  }
  const datastore::Revision revision = events.back().revision;

  absl::Status result = absl::OkStatus();
  auto program = [&](const nft::Delta& delta) {
    absl::Status s = Program(delta);
    if (!s.ok() && result.ok()) result = s;
  };
  bool all_links = false;
  if (batch.nodes) {
    nft::TableState before = nft::ExpectedState(NodesTable(nodes_));
    nodes_ = std::move(next_nodes);
    program(nft::ComputeDelta(NodesTable(nodes_), before));
  }
  if (batch.pools) {
    nft::DesiredTable before = NatTable(nat_);
    nat_ = NatFrom(pools_);
    program(nft::ComputeDelta(NatTable(nat_), nft::ExpectedState(before)));
  }
  const size_t objects = batch.endpoints.size() + batch.network_sets.size() + batch.policies.size() +
                         batch.profiles.size();
  struct {
    absl::Duration index, compile, apply;
  } timing;
  // Profiles (namespace labels) and tiers reorder or relabel much at once: diff whole indexes.
  const bool structural = !batch.profiles.empty() || batch.tiers;
  if (objects > options_.incremental_limit) {
    // One transaction for the whole burst: rebuild in memory, diff against the last table.
    nft::TableState before = nft::ExpectedState(compiler_.desired());
    index_ = policy::SelectionIndex::Build(model_);
    const std::map<std::string, uint32_t> carried = compiler_.link_groups();
    compiler_.Build(model_, index_, &carried);
    program(nft::ComputeDelta(compiler_.desired(), before));
    ReleaseFreedMemory();
    all_links = true;
  } else if (structural) {
    policy::SelectionIndex after = policy::SelectionIndex::Build(model_);
    policy::SelectionDelta delta = WithEndpoints(policy::Diff(index_, after), batch.endpoints);
    index_ = std::move(after);
    policy_compiler::Changed changed{{batch.policies.begin(), batch.policies.end()}, batch.profiles};
    program(compiler_.Update(model_, index_, delta, changed));
    ReleaseFreedMemory();
  } else {
    // Object by object: a policy is its own chains plus the endpoints it (de)selects, an
    // endpoint or network set a handful of elements. Deltas are applied in order (merging them
    // could reorder an add and a delete of the same element). Policies first: an endpoint's
    // group chain may jump to a policy chain this batch creates.
    // Where a batch's time goes (debug log policy_batch): selection, compilation, nftables.
    auto timed = [&](auto select, std::optional<policy_compiler::Changed> changed) {
      absl::Time t0 = absl::Now();
      policy::SelectionDelta d = select();
      absl::Time t1 = absl::Now();
      nft::Delta delta = changed ? compiler_.Update(model_, index_, d, *changed) : compiler_.Update(model_, index_, d);
      absl::Time t2 = absl::Now();
      program(delta);
      timing.index += t1 - t0;
      timing.compile += t2 - t1;
      timing.apply += absl::Now() - t2;
    };
    for (const std::string& id : batch.policies) {
      timed([&] { return index_.UpdatePolicy(model_, id); }, policy_compiler::Changed{{id}, {}});
    }
    for (const std::string& id : batch.endpoints) {
      timed([&] { return WithEndpoints(index_.UpdateEndpoint(model_, id), {id}); }, std::nullopt);
    }
    for (const std::string& id : batch.network_sets) {
      timed([&] { return index_.UpdateNetworkSet(model_, id); }, std::nullopt);
    }
  }
  const absl::Time links_start = absl::Now();
  const int64_t link_writes = status_.link_group_writes;
  // Links to write: every event's endpoint (a re-created veth starts in group 0) and every
  // interface whose group the compiler changed.
  const std::set<std::string> regrouped = compiler_.TakeLinkGroupChanges();
  if (result.ok()) SyncLinkGroups(batch.endpoints, regrouped, all_links);
  if (log::Enabled(log::Level::kDebug)) {
    auto ms = [](absl::Duration d) { return absl::StrFormat("%.2f", absl::ToDoubleMilliseconds(d)); };
    log::Debug("policy_batch", {{"events", std::to_string(events.size())},
                                {"index_ms", ms(timing.index)},
                                {"compile_ms", ms(timing.compile)},
                                {"nft_ms", ms(timing.apply)},
                                {"links_ms", ms(absl::Now() - links_start)},
                                {"link_writes", std::to_string(status_.link_group_writes - link_writes)}});
  }
  if (result.ok()) {
    status_.revision = std::max(status_.revision, revision);
    programmed_.notify_all();
  }
  return result;
}

absl::Status PolicyManager::Refresh() {
  std::lock_guard<std::mutex> lock(mu_);
  status_.last_refresh = absl::Now();
  suspect_ = false;
  RefreshByAddressLocked();
  absl::StatusOr<std::optional<nft::TableState>> actual = nft_.Read();
  if (!actual.ok()) {
    NoteProblemLocked("read", actual.status());
    return actual.status();
  }
  nft::Delta delta = nft::ComputeDelta(DesiredLocked(), *actual);
  absl::Status s = absl::OkStatus();
  if (!delta.empty()) {
    ++status_.repairs;  // drift, or the retry of a failed transaction
    log::Warn("policy_table_repaired", {{"objects", std::to_string(delta.size())}});
    s = Program(delta);
  }
  if (s.ok()) {
    const int64_t writes = status_.link_group_writes;
    applied_groups_.clear();  // read every link back
    SyncLinkGroups({}, {}, /*all=*/true);
    if (status_.link_group_writes != writes && delta.empty()) ++status_.repairs;
    programmed_.notify_all();
  }
  return s;
}

void PolicyManager::Worker() {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    absl::Status s = Poll(absl::Milliseconds(200));
    if (!s.ok()) {
      log::Warn("policy_sync_failed", {{"error", ToStd(s.message())}});
      absl::SleepFor(absl::Milliseconds(500));  // a datastore or kernel outage: do not spin
    }
  }
}

absl::StatusOr<std::map<std::string, std::string>> PolicyManager::HostAddressesLocked() {
  if (links_ == nullptr) return absl::FailedPreconditionError("no netlink");
  ASSIGN_OR_RETURN(std::vector<kernel::Link> links, links_->ListLinks());
  ASSIGN_OR_RETURN(std::vector<kernel::Address> addresses, links_->ListAddresses(0));
  std::map<int, std::string> names;
  for (const kernel::Link& link : links) {
    if (link.name != "lo" && link.name.rfind(nft::kWorkloadPrefix, 0) != 0) names[link.index] = link.name;
  }
  std::map<std::string, std::string> out;
  for (const kernel::Address& a : addresses) {
    auto it = names.find(a.ifindex);
    if (it != names.end()) out.emplace(net::FormatIp(a.prefix.addr), it->second);
  }
  return out;
}

void PolicyManager::TrackByAddressLocked(const std::string& id, HostAddresses& addresses) {
  auto it = model_.endpoints().find(id);
  if (it == model_.endpoints().end() || !it->second.host || it->second.node != options_.node ||
      !it->second.interface.empty()) {
    by_address_.erase(id);
    return;
  }
  by_address_.insert(id);
  ResolveByAddressLocked(id, addresses);
}

bool PolicyManager::ResolveByAddressLocked(const std::string& id, HostAddresses& addresses) {
  auto it = model_.endpoints().find(id);
  if (it == model_.endpoints().end()) return false;
  if (!addresses) {
    addresses = HostAddressesLocked();
    if (!addresses->ok() && links_ != nullptr) NoteProblemLocked("host addresses", addresses->status());
  }
  // Not knowing the host's addresses is no news about them: a listing that failed must not
  // take a policed interface out of policy until the next refresh.
  if (!addresses->ok()) return false;
  const std::map<std::string, std::string>& by_ip = **addresses;
  std::string ifname;
  for (const net::Prefix& ip : it->second.ips) {
    auto a = by_ip.find(net::FormatIp(ip.addr));
    if (a != by_ip.end()) {
      ifname = a->second;
      break;
    }
  }
  if (ifname == it->second.interface) return false;
  log::Info("host_endpoint_interface", {{"endpoint", it->second.name},
                                        {"interface", ifname.empty() ? "none" : ifname},
                                        {"by", "expectedIPs"}});
  policy::Endpoint e = it->second;
  e.interface = ifname;
  model_.Put(std::move(e));
  return true;
}

void PolicyManager::RefreshByAddressLocked() {
  if (by_address_.empty()) return;
  HostAddresses addresses;
  for (const std::string& id : by_address_) {
    if (!ResolveByAddressLocked(id, addresses)) continue;
    // As an event of the endpoint: its selection, then its chains and elements.
    policy::SelectionDelta d = WithEndpoints(index_.UpdateEndpoint(model_, id), {id});
    absl::Status s = Program(compiler_.Update(model_, index_, d));
    if (!s.ok()) suspect_ = true;  // the next refresh repairs from the kernel's state
  }
}

void PolicyManager::SyncLinkGroups(const std::set<std::string>& forced,
                                   const std::set<std::string>& changed_ifnames, bool all) {
  if (!by_link_group() || links_ == nullptr) return;
  const std::map<std::string, uint32_t>& want = compiler_.link_groups();
  auto write = [&](const std::string& ifname, uint32_t group) {
    absl::Status s = links_->SetLinkGroup(ifname, group);
    if (s.ok()) {
      ++status_.link_group_writes;
      applied_groups_[ifname] = group;
    } else if (!absl::IsNotFound(s)) {  // a veth that is gone (or not made yet) needs nothing
      NoteProblemLocked(absl::StrCat("link group of ", ifname), s);
    }
  };
  if (all) {
    // Every cali* link: its group as compiled, or 0 (unknown interface: dispatch misses, drop).
    absl::StatusOr<std::vector<kernel::Link>> links = links_->ListLinks();
    if (!links.ok()) {
      NoteProblemLocked("list links", links.status());
      return;
    }
    for (const kernel::Link& link : *links) {
      if (link.name.rfind(nft::kWorkloadPrefix, 0) != 0) continue;
      auto it = want.find(link.name);
      uint32_t group = it == want.end() ? 0 : it->second;
      applied_groups_[link.name] = link.group;
      if (link.group != group) write(link.name, group);
    }
    return;
  }
  for (const std::string& id : forced) {
    auto e = model_.endpoints().find(id);
    if (e == model_.endpoints().end() || e->second.interface.empty()) continue;
    auto it = want.find(e->second.interface);
    if (it == want.end()) continue;  // not local, or gone: nothing to point anywhere
    write(it->first, it->second);
  }
  for (const std::string& ifname : changed_ifnames) {
    auto it = want.find(ifname);
    if (it == want.end()) continue;
    auto applied = applied_groups_.find(ifname);
    if (applied != applied_groups_.end() && applied->second == it->second) continue;
    write(ifname, it->second);
  }
}

policy::Verdict PolicyManager::Explain(const policy::Packet& packet) const {
  std::lock_guard<std::mutex> lock(mu_);
  return policy::Explain(model_, packet);
}

PolicyStatus PolicyManager::Status() const {
  std::lock_guard<std::mutex> lock(mu_);
  PolicyStatus s = status_;
  s.endpoints = 0;
  s.local_endpoints = 0;
  s.host_endpoints = 0;
  for (const auto& [id, e] : model_.endpoints()) {
    if (e.host) {
      if (e.node == options_.node && policy::ProgrammedHostEndpoint(e)) ++s.host_endpoints;
      continue;
    }
    ++s.endpoints;
    if (e.node == options_.node) ++s.local_endpoints;
  }
  s.policies = model_.policies().size();
  s.chains = compiler_.desired().chains.size();
  s.sets = compiler_.desired().sets.size();
  return s;
}

bool PolicyManager::WaitProgrammed(datastore::Revision revision, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return programmed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
    return stopping_ || (status_.ready && status_.revision >= revision);
  }) && !stopping_;
}

}  // namespace calico::felixd
