#include "birdd/service/birdd.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <future>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "calico/dataplane/v1/dataplane.grpc.pb.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "common/resources/resource.h"

namespace calico::birdd {
namespace {

namespace pb = ::calico::bgp::v1;

std::string DottedQuad(uint32_t v) {
  return absl::StrCat(v >> 24, ".", (v >> 16) & 0xff, ".", (v >> 8) & 0xff, ".", v & 0xff);
}

int64_t UnixMs(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }

// Datastore kinds birdd reads.
const resources::KindInfo& Kind(std::string_view name) { return *resources::FindKind(name); }

absl::StatusOr<std::vector<resources::Resource>> ListKind(datastore::Datastore& store, std::string_view kind) {
  ASSIGN_OR_RETURN(datastore::ListResult list, store.List(resources::KeyPrefix(Kind(kind))));
  std::vector<resources::Resource> out;
  for (const datastore::Entry& e : list.entries) {
    absl::StatusOr<resources::Resource> r = resources::FromStored(e.value, e.mod_revision);
    if (!r.ok()) {
      log::Warn("bad_resource", {{"key", e.key}, {"error", ToStd(r.status().message())}});
      continue;
    }
    out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace

Birdd::Birdd(datastore::Datastore& store, kernel::Netlink& netlink, BirddOptions options)
    : store_(store), netlink_(netlink), options_(std::move(options)) {}

Birdd::~Birdd() { Stop(); }

template <typename Fn>
auto Birdd::OnLoop(Fn fn) -> decltype(fn()) {
  using T = decltype(fn());
  auto done = std::make_shared<std::promise<T>>();
  std::future<T> result = done->get_future();
  loop_->Post([fn, done] { done->set_value(fn()); });
  return result.get();
}

absl::Status Birdd::Start() {
  ASSIGN_OR_RETURN(loop_, peers::EventLoop::Create());
  fib_ = std::make_unique<kernel_fib::Fib>(netlink_);
  if (options_.program_kernel) {
    RETURN_IF_ERROR(fib_->RefreshInterfaces());
    kernel::RouteFilter filter;
    filter.protocol = kernel::kProtoBird;
    ASSIGN_OR_RETURN(std::vector<kernel::Route> left, netlink_.ListRoutes(filter));
    restarting_ = !left.empty();
    if (restarting_) {
      log::Info("graceful_restart", {{"kept_routes", std::to_string(left.size())},
                                     {"wait", absl::FormatDuration(options_.restart_wait)}});
    }
  }
  started_ = absl::Now();
  if (options_.program_kernel) {
    kernel_fib::FibWriter::Options wo;
    wo.on_applied = [this](const kernel_fib::FibProgress& p) {
      std::string error = p.last.ok() ? std::string() : std::string(p.last.message());
      if (error != fib_error_ && !error.empty()) log::Warn("fib_apply_failed", {{"error", error}});
      fib_error_ = error;
    };
    fib_writer_ = std::make_unique<kernel_fib::FibWriter>(*fib_, wo);
  }
  loop_thread_ = std::thread([this] { loop_->Run(); });
  loop_->Post([this] {
    loop_->AddTimer(absl::Seconds(1), [this] { Tick(); });
  });
  datastore_thread_ = std::thread([this] { WatchDatastore(); });
  if (!options_.felixd_socket.empty()) {
    felixd_thread_ = std::thread([this] { WatchFelixd(); });
  } else {
    loop_->Post([this] { origin_synced_ = true; });
  }
  return absl::OkStatus();
}

void Birdd::Stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(felixd_mu_);
    if (felixd_context_ != nullptr) static_cast<grpc::ClientContext*>(felixd_context_)->TryCancel();
  }
  if (felixd_thread_.joinable()) felixd_thread_.join();
  if (datastore_thread_.joinable()) datastore_thread_.join();
  if (loop_thread_.joinable()) {
    // Sessions close without a NOTIFICATION: a stop is a restart (upgrade, rollout), so peers
    // keep our routes under graceful restart; the kernel keeps what is installed for the next
    // run to adopt.
    std::promise<void> closed;
    loop_->Post([this, &closed] {
      speaker_.reset();
      listener_.reset();
      closed.set_value();
    });
    closed.get_future().wait_for(std::chrono::seconds(2));
    loop_->Stop();
    loop_thread_.join();
  }
  fib_writer_.reset();  // after the loop: nothing feeds it any more
}

// ---- datastore ----------------------------------------------------------------------------

absl::Status Birdd::ReadDatastore() {
  config::Inputs in;
  ASSIGN_OR_RETURN(in.nodes, ListKind(store_, "Node"));
  ASSIGN_OR_RETURN(in.bgp_configurations, ListKind(store_, "BGPConfiguration"));
  ASSIGN_OR_RETURN(in.bgp_peers, ListKind(store_, "BGPPeer"));
  ASSIGN_OR_RETURN(in.bgp_filters, ListKind(store_, "BGPFilter"));
  ASSIGN_OR_RETURN(std::vector<resources::Resource> pools, ListKind(store_, "IPPool"));
  std::vector<PoolInfo> infos;
  for (const resources::Resource& pool : pools) {
    const resources::Json& spec = pool.object["spec"];
    std::optional<net::Prefix> cidr = net::ParsePrefix(spec.value("cidr", ""));
    if (!cidr) continue;
    PoolInfo info;
    info.cidr = *cidr;
    info.exported = !spec.value("disabled", false) && !spec.value("disableBGPExport", false);
    info.ipip_mode = spec.value("ipipMode", "Never");
    infos.push_back(info);
  }
  absl::StatusOr<config::Plan> plan =
      config::MakePlan(in, options_.node, config::FileSecrets(options_.secrets_dir));
  if (!plan.ok()) return plan.status();
  loop_->Post([this, p = std::move(*plan), e = std::move(infos)]() mutable {
    ApplyPlan(std::move(p), std::move(e));
  });
  return absl::OkStatus();
}

void Birdd::WatchDatastore() {
  const std::vector<std::string> prefixes = {
      resources::KeyPrefix(Kind("Node")), resources::KeyPrefix(Kind("BGPConfiguration")),
      resources::KeyPrefix(Kind("BGPPeer")), resources::KeyPrefix(Kind("IPPool")),
      resources::KeyPrefix(Kind("BGPFilter"))};
  std::vector<std::unique_ptr<datastore::Watch>> watches(prefixes.size());
  bool dirty = true;
  std::string last_error;
  while (!stopping_) {
    for (size_t i = 0; i < prefixes.size() && !stopping_; ++i) {
      if (watches[i] == nullptr) {
        absl::StatusOr<datastore::Revision> rev = store_.CurrentRevision();
        if (!rev.ok()) break;
        absl::StatusOr<std::unique_ptr<datastore::Watch>> w = store_.WatchPrefix(prefixes[i], *rev);
        if (!w.ok()) break;
        watches[i] = std::move(*w);
        dirty = true;  // whatever changed before the watch began
      }
      absl::StatusOr<std::vector<datastore::Event>> events = watches[i]->Next(absl::Milliseconds(50));
      if (!events.ok()) {
        watches[i].reset();
        dirty = true;
        continue;
      }
      if (!events->empty()) dirty = true;
    }
    if (!dirty) continue;
    absl::Status read = ReadDatastore();
    if (read.ok()) {
      dirty = false;
      last_error.clear();
      continue;
    }
    std::string error(read.message());
    if (error != last_error) log::Warn("datastore_read_failed", {{"error", error}});
    last_error = error;
    for (int i = 0; i < 10 && !stopping_; ++i) absl::SleepFor(absl::Milliseconds(100));
  }
}

// ---- felixd -------------------------------------------------------------------------------

void Birdd::WatchFelixd() {
  namespace dp = ::calico::dataplane::v1;
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(absl::StrCat("unix:", options_.felixd_socket), grpc::InsecureChannelCredentials());
  std::unique_ptr<dp::Dataplane::Stub> stub = dp::Dataplane::NewStub(channel);
  const absl::Time begun = absl::Now();
  bool warned = false;
  while (!stopping_) {
    grpc::ClientContext context;
    {
      std::lock_guard<std::mutex> lock(felixd_mu_);
      if (stopping_) break;
      felixd_context_ = &context;
    }
    std::unique_ptr<grpc::ClientReader<dp::AdvertisedRoutes>> reader = stub->WatchAdvertisedRoutes(&context, {});
    dp::AdvertisedRoutes message;
    while (reader->Read(&message)) {
      std::vector<net::Prefix> added;
      std::vector<net::Prefix> removed;
      for (const dp::AdvertisedRoutes::Route& r : message.added()) {
        if (std::optional<net::Prefix> p = net::ParsePrefix(r.cidr())) added.push_back(*p);
      }
      for (const std::string& r : message.removed()) {
        if (std::optional<net::Prefix> p = net::ParsePrefix(r)) removed.push_back(*p);
      }
      loop_->Post([this, snapshot = message.snapshot(), a = std::move(added), r = std::move(removed)]() mutable {
        ApplyAdvertised(snapshot, std::move(a), std::move(r));
      });
      warned = false;
    }
    grpc::Status status = reader->Finish();
    {
      std::lock_guard<std::mutex> lock(felixd_mu_);
      felixd_context_ = nullptr;
    }
    if (stopping_) break;
    // felixd restarting or not up yet: keep advertising what it last said (its routes are still
    // in the kernel) and reconnect.
    if (!warned) {
      log::Warn("felixd_unreachable", {{"socket", options_.felixd_socket}, {"error", status.error_message()}});
      warned = true;
    }
    if (absl::Now() - begun > options_.origin_wait) {
      loop_->Post([this] {
        if (!origin_synced_) {
          log::Warn("origin_wait_expired", {{"wait", absl::FormatDuration(options_.origin_wait)}});
          origin_synced_ = true;
          StartSessions();
        }
      });
    }
    for (int i = 0; i < 5 && !stopping_; ++i) absl::SleepFor(absl::Milliseconds(100));
  }
}

// ---- loop thread --------------------------------------------------------------------------

speaker::NeighborConfig Birdd::NeighborFor(const config::Peer& p) const {
  speaker::NeighborConfig n;
  n.session.name = p.name;
  n.session.peer_address = p.address;
  n.session.peer_port = p.port;
  n.session.local_address = p.source_address;
  n.session.peer_as = p.as;
  n.session.password = p.password;
  n.session.graceful_restart = true;
  n.session.restart_time = p.restart_time;
  n.session.restarting = restarting_;
  n.session.ttl_security = p.ttl_security;
  n.session.fsm = options_.timers;
  n.session.fsm.passive = p.passive;
  n.rr_client = p.rr_client;
  n.keep_original_next_hop = p.keep_original_next_hop;
  if (!p.import_rules[0].empty() || !p.import_rules[1].empty()) {
    n.import_filter = [rules = p.import_rules](const net::Prefix& prefix) {
      return config::FilterAccepts(rules[prefix.addr.family == 4 ? 0 : 1], prefix, true);
    };
  }
  if (!p.export_rules[0].empty() || !p.export_rules[1].empty()) {
    n.export_filter = [rules = p.export_rules](const net::Prefix& prefix, bool from_peer) {
      return config::FilterAccepts(rules[prefix.addr.family == 4 ? 0 : 1], prefix, from_peer);
    };
  }
  return n;
}

void Birdd::RemovePeer(const net::IpAddress& address) {
  if (listener_ != nullptr) listener_->RemovePeer(address);
  if (speaker_ != nullptr) speaker_->RemoveNeighbor(address);
  peers_.erase(address);
}

void Birdd::ApplyPlan(config::Plan plan, std::vector<PoolInfo> pools) {
  for (const std::string& problem : plan.problems) {
    if (!plan_ || std::find(plan_->problems.begin(), plan_->problems.end(), problem) == plan_->problems.end()) {
      log::Warn("config_problem", {{"problem", problem}});
    }
  }
  const bool pools_changed = pools != pools_ || !plan_ || plan.communities != plan_->communities;
  const bool tunnels_changed = pools_changed || plan.ipv4_subnet != plan_->ipv4_subnet;
  pools_ = std::move(pools);
  const bool rebuild = !plan_ || plan.as != plan_->as || plan.router_id != plan_->router_id ||
                       plan.cluster_id != plan_->cluster_id || plan.enabled != plan_->enabled;
  const bool relisten = rebuild || plan.listen_port != plan_->listen_port;
  if (relisten) {
    // Sessions are registered with the listener: they go first (StartSessions re-adds them).
    for (auto it = peers_.begin(); it != peers_.end();) RemovePeer((it++)->first);
    listener_.reset();
  }
  if (rebuild && speaker_ != nullptr) {
    // A new identity: every session restarts. What the old speaker installed goes.
    speaker_->rib().ForEach([&](const net::Prefix& p, const rib::Selected&) { OnKernel(p, {}); });
    originated_.clear();
    speaker_.reset();
  }
  plan_ = std::move(plan);
  if (!plan_->enabled) {
    for (auto it = peers_.begin(); it != peers_.end();) RemovePeer((it++)->first);
    ready_ = true;  // nothing to do on a node without a BGP address, and that is fine
    return;
  }
  if (speaker_ == nullptr) {
    speaker::SpeakerConfig sc;
    sc.local_as = plan_->as;
    sc.router_id = plan_->router_id;
    sc.cluster_id = plan_->cluster_id;
    speaker_ = std::make_unique<speaker::Speaker>(
        *loop_, sc, [this](const net::Prefix& p, const std::vector<net::IpAddress>& hops) { OnKernel(p, hops); });
    log::Info("speaker", {{"as", std::to_string(sc.local_as)}, {"router_id", DottedQuad(sc.router_id)},
                          {"cluster_id", sc.cluster_id ? DottedQuad(*sc.cluster_id) : std::string("-")}});
  }
  if (listener_ == nullptr) {
    absl::StatusOr<std::unique_ptr<peers::Listener>> l =
        peers::Listener::Create(*loop_, *net::ParseIp("::"), plan_->listen_port);
    if (!l.ok()) l = peers::Listener::Create(*loop_, *net::ParseIp("0.0.0.0"), plan_->listen_port);
    if (l.ok()) {
      listener_ = std::move(*l);
    } else {
      log::Error("listen_failed", {{"port", std::to_string(plan_->listen_port)},
                                   {"error", ToStd(l.status().message())}});
    }
  }
  if (pools_changed || rebuild) Reoriginate();
  if (tunnels_changed && !rebuild) ReprogramKernel();
  StartSessions();  // no-op until felixd's first snapshot is in
  ready_ = sessions_started_;
}

// Brings the speaker's neighbors in line with the plan. Before felixd's first snapshot no
// session starts: a peer must never see our End-of-RIB without our routes.
void Birdd::StartSessions() {
  if (!origin_synced_ || !plan_ || speaker_ == nullptr) return;
  sessions_started_ = true;
  std::map<net::IpAddress, config::Peer> wanted;
  for (const config::Peer& p : plan_->peers) wanted.emplace(p.address, p);
  std::vector<net::IpAddress> gone;
  for (const auto& [address, peer] : peers_) {
    auto w = wanted.find(address);
    if (w == wanted.end() || !(w->second == peer)) gone.push_back(address);
  }
  for (const net::IpAddress& a : gone) {
    log::Info("peer_removed", {{"peer", peers_[a].name}});
    RemovePeer(a);
  }
  for (const auto& [address, peer] : wanted) {
    if (peers_.count(address) > 0) continue;
    absl::Status added = speaker_->AddNeighbor(NeighborFor(peer), listener_.get());
    if (!added.ok()) {
      log::Warn("peer_failed", {{"peer", peer.name}, {"error", ToStd(added.message())}});
      continue;
    }
    log::Info("peer_added", {{"peer", peer.name}, {"address", net::FormatIp(address)},
                             {"as", std::to_string(peer.as)}, {"passive", peer.passive ? "true" : "false"},
                             {"type", std::string(config::PeerTypeName(peer.type))}});
    peers_.emplace(address, peer);
  }
  ready_ = true;
}

void Birdd::ApplyAdvertised(bool snapshot, std::vector<net::Prefix> added, std::vector<net::Prefix> removed) {
  if (snapshot) advertised_.clear();
  for (const net::Prefix& p : removed) advertised_.erase(p);
  for (const net::Prefix& p : added) advertised_.insert(p);
  Reoriginate();
  if (snapshot && !origin_synced_) {
    origin_synced_ = true;
    StartSessions();
  }
}

// Originates felixd's routes that lie inside an exportable pool; withdraws the rest.
void Birdd::Reoriginate() {
  if (speaker_ == nullptr) return;
  std::set<net::Prefix> want;
  for (const net::Prefix& p : advertised_) {
    for (const PoolInfo& pool : pools_) {
      if (pool.exported && net::Contains(pool.cidr, p)) {
        want.insert(p);
        break;
      }
    }
  }
  // Make before break: what replaces a route (a block's /26 for its pods' /32s once the block
  // is confirmed) goes out before the withdrawal, so peers never lack a route in between.
  std::vector<net::Prefix> gone;
  for (const auto& [p, _] : originated_) {
    if (want.count(p) == 0) gone.push_back(p);
  }
  for (const net::Prefix& p : want) {
    // Communities of every prefixAdvertisements entry containing the route.
    std::pair<std::vector<uint32_t>, std::vector<wire::LargeCommunity>> c;
    for (const config::PrefixCommunities& pc : plan_->communities) {
      if (!net::Contains(pc.cidr, p)) continue;
      c.first.insert(c.first.end(), pc.standard.begin(), pc.standard.end());
      for (const auto& l : pc.large) c.second.push_back({l[0], l[1], l[2]});
    }
    auto it = originated_.find(p);
    if (it != originated_.end() && it->second == c) continue;
    originated_[p] = c;
    speaker_->Originate(p, c.first, c.second);
  }
  for (const net::Prefix& p : gone) {
    speaker_->Withdraw(p);
    originated_.erase(p);
  }
}

std::string TunnelFor(const std::vector<PoolInfo>& pools, const std::optional<net::Prefix>& node_subnet,
                      const net::Prefix& prefix, const std::vector<net::IpAddress>& next_hops) {
  if (prefix.addr.family != 4 || next_hops.empty()) return "";
  for (const PoolInfo& pool : pools) {
    if (!net::Contains(pool.cidr, prefix)) continue;
    if (pool.ipip_mode == "Always") return "tunl0";
    // CrossSubnet: encapsulate only towards nodes on another subnet (upstream's rule).
    if (pool.ipip_mode == "CrossSubnet" && !(node_subnet && net::Contains(*node_subnet, next_hops[0]))) return "tunl0";
    return "";
  }
  return "";
}

void Birdd::ReprogramKernel() {
  if (speaker_ == nullptr) return;
  const rib::Rib& rib = speaker_->rib();
  rib.ForEach([&](const net::Prefix& prefix, const rib::Selected& sel) {
    if (rib.peer(sel.peer).local) return;
    std::vector<net::IpAddress> hops = {rib.path(sel.path).next_hop.address};
    for (const auto& [peer, path] : sel.multipath) hops.push_back(rib.path(path).next_hop.address);
    OnKernel(prefix, hops);
  });
}

void Birdd::SetTunnelMissing(bool missing) {
  std::string problem;
  if (missing) {
    problem =
        "routes of an IP-in-IP pool (ipipMode Always or CrossSubnet) need tunl0, which does not exist: "
        "this kernel has no ipip module (modprobe ipip; felixd creates tunl0); those routes are not installed";
  }
  if (problem != tunnel_problem_ && !problem.empty()) log::Error("ipip_unavailable", {{"problem", problem}});
  tunnel_problem_ = problem;
}

void Birdd::OnKernel(const net::Prefix& prefix, const std::vector<net::IpAddress>& next_hops) {
  if (!options_.program_kernel) return;
  fib_writer_->Set(prefix, next_hops, TunnelFor(pools_, plan_ ? plan_->ipv4_subnet : std::nullopt, prefix, next_hops));
}

void Birdd::Tick() {
  loop_->AddTimer(absl::Seconds(1), [this] { Tick(); });
  if (!options_.program_kernel) return;
  const absl::Time now = absl::Now();
  if (restarting_) {
    // Re-synced when every configured peer is back and has sent End-of-RIB.
    bool synced = sessions_started_ && speaker_ != nullptr;
    if (synced) {
      for (const speaker::NeighborStatus& n : speaker_->Status()) {
        if (!n.end_of_rib) synced = false;
      }
    }
    if (!synced && now - started_ < options_.restart_wait) return;
    log::Info("graceful_restart_done", {{"after", absl::FormatDuration(now - started_)},
                                        {"all_peers_synced", synced ? "true" : "false"}});
    restarting_ = false;
    last_resync_ = absl::InfinitePast();
  }
  // Whether routes wait for a missing tunnel device, as of the writer's last Apply.
  fib_writer_->Post([this](kernel_fib::Fib& fib) {
    bool missing = fib.missing_devices().count("tunl0") > 0;
    loop_->Post([this, missing] { SetTunnelMissing(missing); });
  });
  if (now - last_resync_ < options_.resync_interval) return;
  last_resync_ = now;
  // Interfaces first (next hops may resolve differently), then the kernel read back: strays of
  // an earlier run and hand edits are repaired here.
  fib_writer_->Post([](kernel_fib::Fib& fib) {
    absl::Status s = fib.RefreshInterfaces();
    if (s.ok()) s = fib.Resync();
    if (!s.ok()) log::Warn("fib_resync_failed", {{"error", ToStd(s.message())}});
  });
}

// ---- status -------------------------------------------------------------------------------

std::vector<PeerStatus> Birdd::Peers() {
  if (stopping_) return {};
  return OnLoop([this] {
    std::vector<PeerStatus> out;
    if (speaker_ == nullptr) return out;
    for (const speaker::NeighborStatus& n : speaker_->Status()) {
      auto p = peers_.find(n.address);
      if (p == peers_.end()) continue;
      out.push_back({p->second, n});
    }
    return out;
  });
}

std::vector<std::string> Birdd::DownPeers() {
  std::vector<std::string> out;
  for (const PeerStatus& p : Peers()) {
    if (p.session.state == fsm::State::kEstablished) continue;
    out.push_back(absl::StrCat("peer ", net::FormatIp(p.peer.address), " (", p.peer.origin, "): ",
                               std::string(fsm::StateName(p.session.state)), p.session.info.empty() ? "" : ", ",
                               p.session.info));
  }
  return out;
}

pb::GetStatusResponse Birdd::Status() {
  pb::GetStatusResponse out;
  out.set_node(options_.node);
  out.set_ready(ready_);
  out.set_started_unix_ms(UnixMs(started_));
  if (stopping_) return out;
  std::vector<PeerStatus> peers = Peers();
  OnLoop([this, &out] {
    if (plan_) {
      out.set_as_number(plan_->as);
      out.set_router_id(DottedQuad(plan_->router_id));
      if (plan_->cluster_id) out.set_cluster_id(DottedQuad(*plan_->cluster_id));
      out.set_listen_port(plan_->listen_port);
      for (const std::string& p : plan_->problems) out.add_problems(p);
      if (!tunnel_problem_.empty()) out.add_problems(tunnel_problem_);
    }
    for (const auto& [p, communities] : originated_) out.add_advertised(net::FormatCidr(p));
    out.set_graceful_restart_pending(restarting_);
    return 0;
  });
  for (const PeerStatus& p : peers) {
    pb::Peer* o = out.add_peers();
    o->set_name(p.peer.name);
    o->set_address(net::FormatIp(p.peer.address));
    o->set_port(p.peer.port);
    o->set_type(std::string(config::PeerTypeName(p.peer.type)));
    o->set_state(std::string(fsm::StateName(p.session.state)));
    o->set_since_unix_ms(UnixMs(p.session.since));
    o->set_info(p.session.state == fsm::State::kEstablished ? "Established" : p.session.info);
    o->set_peer_as(p.peer.as);
    o->set_passive(p.peer.passive);
    o->set_route_reflector_client(p.peer.rr_client);
    o->set_prefixes_received(p.session.received);
    o->set_prefixes_advertised(p.session.advertised);
    o->set_updates_received(p.session.updates_received);
    o->set_updates_sent(p.session.updates_sent);
    o->set_flaps(p.session.flaps);
    o->set_origin(p.peer.origin);
  }
  return out;
}

pb::ListRoutesResponse Birdd::Routes(int family) {
  if (stopping_) return {};
  return OnLoop([this, family] {
    pb::ListRoutesResponse out;
    if (speaker_ == nullptr) return out;
    const rib::Rib& rib = speaker_->rib();
    rib.ForEach([&](const net::Prefix& prefix, const rib::Selected& sel) {
      if (family != 0 && prefix.addr.family != family) return;
      pb::Route* r = out.add_routes();
      r->set_prefix(net::FormatCidr(prefix));
      const rib::Peer& from = rib.peer(sel.peer);
      const rib::Path& path = rib.path(sel.path);
      if (from.local) {
        r->set_from_peer("local");
      } else {
        auto p = peers_.find(from.address);
        r->set_from_peer(p != peers_.end() ? p->second.name : net::FormatIp(from.address));
        r->add_next_hops(net::FormatIp(path.next_hop.address));
        for (const auto& [peer, other] : sel.multipath) r->add_next_hops(net::FormatIp(rib.path(other).next_hop.address));
      }
      if (path.attrs.as_path) {
        for (const wire::AsSegment& s : *path.attrs.as_path) {
          for (uint32_t as : s.asns) r->add_as_path(as);
        }
      }
      r->set_local_pref(path.attrs.local_pref.value_or(100));
      for (uint32_t c : path.attrs.communities) r->add_communities(absl::StrCat(c >> 16, ":", c & 0xffff));
      for (const wire::LargeCommunity& c : path.attrs.large_communities) {
        r->add_communities(absl::StrCat(c.global_admin, ":", c.local_data1, ":", c.local_data2));
      }
    });
    return out;
  });
}

}  // namespace calico::birdd
