#include "birdd/speaker/speaker.h"

#include <algorithm>

#include "birdd/wire/pack.h"
#include "common/log/log.h"

namespace calico::birdd::speaker {
namespace {

bool PathContainsAs(const wire::AsPath& path, uint32_t as) {
  for (const wire::AsSegment& s : path) {
    if (std::find(s.asns.begin(), s.asns.end(), as) != s.asns.end()) return true;
  }
  return false;
}

}  // namespace

Speaker::Speaker(peers::EventLoop& loop, SpeakerConfig config, KernelSink kernel)
    : loop_(loop), config_(config), kernel_(std::move(kernel)) {
  rib::Peer local;
  local.local = true;
  local.asn = config_.local_as;
  local.router_id = config_.router_id;
  local_peer_ = rib_.AddPeer(local);
}

Speaker::~Speaker() {
  for (auto& [address, n] : neighbors_) CancelStaleTimer(*n);
}

void Speaker::ArmStaleTimer(Neighbor& n) {
  CancelStaleTimer(n);
  // RFC 4724 4.2: the Restart Time the peer advertised (its last OPEN) bounds how long they
  // are kept.
  const std::optional<wire::Open>& open = n.session->peer_open();
  absl::Duration wait = open && open->capabilities.graceful_restart
                            ? absl::Seconds(open->capabilities.graceful_restart->restart_time)
                            : n.config.session.restart_time;
  rib::PeerId peer = n.peer;
  n.stale_timer = loop_.AddTimer(wait, [this, peer] {
    Neighbor* n = ByPeer(peer);
    if (n == nullptr) return;
    n->stale_timer = 0;
    std::vector<net::Prefix> swept;
    rib_.SweepStale(peer, &swept);
    Changed(swept);
  });
}

void Speaker::CancelStaleTimer(Neighbor& n) {
  if (n.stale_timer != 0) loop_.CancelTimer(n.stale_timer);
  n.stale_timer = 0;
}

absl::Status Speaker::AddNeighbor(NeighborConfig neighbor, peers::Listener* listener) {
  neighbor.session.local_as = config_.local_as;
  neighbor.session.router_id = config_.router_id;
  auto n = std::make_unique<Neighbor>();
  n->config = neighbor;
  rib::Peer peer;
  peer.address = neighbor.session.peer_address;
  peer.asn = neighbor.session.peer_as;
  peer.ebgp = neighbor.session.peer_as != config_.local_as;
  n->peer = rib_.AddPeer(peer);
  Neighbor* raw = n.get();
  peers::SessionCallbacks cb;
  cb.established = [this, raw] { OnEstablished(*raw); };
  cb.update = [this, raw](const wire::Update& u) { OnUpdate(*raw, u); };
  cb.down = [this, raw](bool graceful) { OnDown(*raw, graceful); };
  cb.route_refresh = [this, raw](wire::AfiSafi family) { RouteRefresh(*raw, family); };
  n->session = std::make_unique<peers::PeerSession>(loop_, neighbor.session, cb);
  if (listener != nullptr) {
    if (absl::Status s = listener->AddPeer(n->session.get()); !s.ok()) return s;
  }
  n->session->Start();
  if (by_peer_.size() <= n->peer) by_peer_.resize(n->peer + 1, nullptr);
  by_peer_[n->peer] = n.get();
  neighbors_[neighbor.session.peer_address] = std::move(n);
  return absl::OkStatus();
}

void Speaker::RemoveNeighbor(const net::IpAddress& address) {
  auto it = neighbors_.find(address);
  if (it == neighbors_.end()) return;
  it->second->session->Stop();
  CancelStaleTimer(*it->second);
  std::vector<net::Prefix> changed;
  rib_.WithdrawAll(it->second->peer, &changed);
  by_peer_[it->second->peer] = nullptr;
  neighbors_.erase(it);
  Changed(changed);
}

void Speaker::Originate(const net::Prefix& prefix, std::vector<uint32_t> communities,
                        std::vector<wire::LargeCommunity> large_communities) {
  std::vector<net::Prefix> changed;
  rib::Path p;
  p.attrs.origin = wire::Origin::kIgp;
  p.attrs.as_path = wire::AsPath{};
  p.attrs.communities = std::move(communities);
  p.attrs.large_communities = std::move(large_communities);
  rib_.Announce(local_peer_, std::vector<net::Prefix>{prefix}, rib_.Intern(p), &changed);
  Changed(changed);
}

void Speaker::Withdraw(const net::Prefix& prefix) {
  std::vector<net::Prefix> changed;
  rib_.Withdraw(local_peer_, std::vector<net::Prefix>{prefix}, &changed);
  Changed(changed);
}

Speaker::Neighbor* Speaker::ByPeer(rib::PeerId peer) const {
  return peer < by_peer_.size() ? by_peer_[peer] : nullptr;
}

bool Speaker::Looped(const Neighbor& from, const wire::PathAttributes& attrs) const {
  bool ebgp = from.config.session.peer_as != config_.local_as;
  if (ebgp && attrs.as_path && PathContainsAs(*attrs.as_path, config_.local_as)) return true;
  if (attrs.originator_id && *attrs.originator_id == config_.router_id) return true;
  if (config_.cluster_id &&
      std::find(attrs.cluster_list.begin(), attrs.cluster_list.end(), *config_.cluster_id) !=
          attrs.cluster_list.end()) {
    return true;
  }
  return false;
}

void Speaker::OnUpdate(Neighbor& n, const wire::Update& u) {
  ++n.updates_received;
  std::vector<net::Prefix> changed;
  std::vector<net::Prefix> gone = u.withdrawn;
  if (u.mp_unreach) gone.insert(gone.end(), u.mp_unreach->withdrawn.begin(), u.mp_unreach->withdrawn.end());
  if (!gone.empty()) rib_.Withdraw(n.peer, gone, &changed);
  auto announce = [&](const std::vector<net::Prefix>& all, const wire::NextHop& next_hop) {
    const std::vector<net::Prefix>* kept = &all;
    std::vector<net::Prefix> accepted;
    if (n.config.import_filter) {
      std::vector<net::Prefix> rejected;
      for (const net::Prefix& p : all) (n.config.import_filter(p) ? accepted : rejected).push_back(p);
      if (!rejected.empty()) rib_.Withdraw(n.peer, rejected, &changed);
      kept = &accepted;
    }
    const std::vector<net::Prefix>& prefixes = *kept;
    if (prefixes.empty()) return;
    if (Looped(n, u.attrs)) {
      rib_.Withdraw(n.peer, prefixes, &changed);
      return;
    }
    rib::Path path;
    path.attrs = u.attrs;
    path.next_hop = next_hop;
    rib_.Announce(n.peer, prefixes, rib_.Intern(std::move(path)), &changed);
    n.received += prefixes.size();
  };
  if (!u.nlri.empty() && u.attrs.next_hop) {
    wire::NextHop nh;
    nh.address = *u.attrs.next_hop;
    announce(u.nlri, nh);
  }
  if (u.mp_reach) announce(u.mp_reach->nlri, u.mp_reach->next_hop);
  if (std::optional<wire::AfiSafi> eor = wire::EndOfRib(u)) {
    // Graceful restart: what the peer did not announce again in this family goes (RFC 4724).
    const int family = eor->afi == wire::Afi::kIpv6 ? 6 : 4;
    n.eor_families |= family == 4 ? 1 : 2;
    rib_.SweepStale(n.peer, &changed, family);
    if ((n.eor_families & Negotiated(n)) == Negotiated(n)) {
      n.end_of_rib = true;
      CancelStaleTimer(n);
    }
  }
  Changed(changed);
}

uint8_t Speaker::Negotiated(const Neighbor& n) const {
  const std::optional<wire::Open>& open = n.session->peer_open();
  if (!open || open->capabilities.multiprotocol.empty()) return 1;
  uint8_t families = 0;
  for (const wire::AfiSafi& f : open->capabilities.multiprotocol) {
    if (f == wire::kIpv4Unicast) families |= 1;
    if (f == wire::kIpv6Unicast) families |= 2;
  }
  return families;
}

void Speaker::OnEstablished(Neighbor& n) {
  if (!n.up) {
    n.received = 0;
    n.eor_families = 0;
  }
  std::vector<net::Prefix> swept;
  if (!n.up && n.stale_timer != 0) {
    // Back from a restart. A family whose forwarding state the peer did not keep (no F bit,
    // or not listed) loses its stale routes now; the rest wait for End-of-RIB, as long again
    // at most (RFC 4724 4.2).
    const std::optional<wire::Open>& open = n.session->peer_open();
    for (int family : {4, 6}) {
      bool kept = false;
      if (open && open->capabilities.graceful_restart) {
        for (const wire::GracefulRestart::Family& f : open->capabilities.graceful_restart->families) {
          bool same = f.afi_safi == (family == 4 ? wire::kIpv4Unicast : wire::kIpv6Unicast);
          if (same && (f.flags & wire::GracefulRestart::kForwardingState)) kept = true;
        }
      }
      if (!kept) rib_.SweepStale(n.peer, &swept, family);
    }
    ArmStaleTimer(n);
  }
  n.up = true;
  if (n.session->peer_open()) rib_.SetPeerRouterId(n.peer, n.session->peer_open()->bgp_id);
  std::vector<net::Prefix> all;
  rib_.ForEach([&](const net::Prefix& p, const rib::Selected&) { all.push_back(p); });
  Export(n, all);
  std::vector<uint8_t> eor;
  const uint8_t families = Negotiated(n);
  if (families & 1) (void)wire::EncodeEndOfRib(wire::kIpv4Unicast, eor);
  if (families & 2) (void)wire::EncodeEndOfRib(wire::kIpv6Unicast, eor);
  Send(n, eor);
  Changed(swept);
}

// RFC 2918: the peer asks for our routes of one family again. A family the OPENs did not
// negotiate is ignored.
void Speaker::RouteRefresh(Neighbor& n, wire::AfiSafi family) {
  const uint8_t bit = family == wire::kIpv4Unicast ? 1 : family == wire::kIpv6Unicast ? 2 : 0;
  if ((Negotiated(n) & bit) == 0) {
    log::Warn("route_refresh_ignored", {{"peer", n.config.session.name}, {"reason", "family not negotiated"}});
    return;
  }
  const int want = bit == 1 ? 4 : 6;
  std::erase_if(n.advertised, [&](const net::Prefix& p) { return p.addr.family == want; });
  std::vector<net::Prefix> all;
  rib_.ForEach([&](const net::Prefix& p, const rib::Selected&) {
    if (p.addr.family == want) all.push_back(p);
  });
  Export(n, all);
  std::vector<uint8_t> eor;
  (void)wire::EncodeEndOfRib(family, eor);
  Send(n, eor);
}

void Speaker::Send(Neighbor& n, const std::vector<uint8_t>& bytes) {
  // Count messages by their headers (16-byte marker, then the 2-byte length).
  for (size_t at = 0; at + 19 <= bytes.size();) {
    size_t len = (size_t{bytes[at + 16]} << 8) | bytes[at + 17];
    if (len < 19) break;
    ++n.updates_sent;
    at += len;
  }
  n.session->Send(bytes);
}

void Speaker::OnDown(Neighbor& n, bool graceful) {
  if (n.up) ++n.flaps;
  n.up = false;
  n.end_of_rib = false;
  std::vector<net::Prefix> changed;
  n.advertised.clear();
  if (graceful) {
    // Keep forwarding on the peer's routes while it restarts; sweep after its restart time
    // unless it comes back and sends End-of-RIB first.
    rib_.MarkStale(n.peer);
    ArmStaleTimer(n);
    return;
  }
  CancelStaleTimer(n);
  rib_.WithdrawAll(n.peer, &changed);
  Changed(changed);
}

void Speaker::Changed(const std::vector<net::Prefix>& prefixes) {
  if (prefixes.empty()) return;
  for (const net::Prefix& p : prefixes) {
    std::vector<net::IpAddress> hops;
    std::optional<rib::Selected> sel = rib_.Lookup(p);
    if (sel && !rib_.peer(sel->peer).local) {
      hops.push_back(rib_.path(sel->path).next_hop.address);
      for (const auto& [peer, path] : sel->multipath) hops.push_back(rib_.path(path).next_hop.address);
    }
    if (kernel_) kernel_(p, hops);
  }
  for (auto& [addr, n] : neighbors_) {
    if (n->session->state() == fsm::State::kEstablished) Export(*n, prefixes);
  }
}

std::optional<std::pair<wire::PathAttributes, wire::NextHop>> Speaker::Outbound(
    const Neighbor& n, const net::Prefix& prefix, const rib::Selected& sel) const {
  if (sel.peer == n.peer) return std::nullopt;  // never back to where it came from
  if (n.config.export_filter && !n.config.export_filter(prefix, !rib_.peer(sel.peer).local)) return std::nullopt;
  // Only the session's own family (IPv4 routes over IPv4 sessions, IPv6 over IPv6).
  if (prefix.addr.family != n.config.session.peer_address.family) return std::nullopt;
  const rib::Peer& from = rib_.peer(sel.peer);
  const bool to_ebgp = n.config.session.peer_as != config_.local_as;
  const Neighbor* source = ByPeer(sel.peer);
  bool reflected = false;
  if (!from.local && !from.ebgp && !to_ebgp) {
    if (!config_.cluster_id || source == nullptr) return std::nullopt;  // iBGP split horizon
    if (!source->config.rr_client && !n.config.rr_client) return std::nullopt;
    reflected = true;
  }
  wire::PathAttributes attrs = rib_.path(sel.path).attrs;
  wire::NextHop next_hop = rib_.path(sel.path).next_hop;
  if (!attrs.origin) attrs.origin = wire::Origin::kIgp;
  if (!attrs.as_path) attrs.as_path = wire::AsPath{};
  if (to_ebgp) {
    wire::AsPath& path = *attrs.as_path;
    if (path.empty() || path.front().type != wire::AsSegmentType::kAsSequence) {
      wire::AsSegment seg;
      seg.type = wire::AsSegmentType::kAsSequence;
      path.insert(path.begin(), seg);
    }
    path.front().asns.insert(path.front().asns.begin(), config_.local_as);
    attrs.local_pref.reset();
    attrs.originator_id.reset();
    attrs.cluster_list.clear();
    if (from.ebgp) attrs.med.reset();  // another AS's MED means nothing to a third
  } else {
    if (!attrs.local_pref) attrs.local_pref = 100;
    if (reflected) {
      if (!attrs.originator_id) attrs.originator_id = from.router_id;
      attrs.cluster_list.insert(attrs.cluster_list.begin(), *config_.cluster_id);
    }
  }
  bool keep = reflected || (n.config.keep_original_next_hop && !from.local);
  if (!keep) {
    if (!n.session->local_endpoint()) return std::nullopt;
    next_hop.address = *n.session->local_endpoint();
    next_hop.link_local.reset();
  }
  attrs.next_hop.reset();
  return std::make_pair(attrs, next_hop);
}

void Speaker::Export(Neighbor& n, const std::vector<net::Prefix>& prefixes) {
  struct Group {
    wire::PathAttributes attrs;
    wire::NextHop next_hop;
    std::vector<net::Prefix> prefixes;
  };
  std::vector<Group> groups;
  std::vector<net::Prefix> withdrawals;
  for (const net::Prefix& p : prefixes) {
    std::optional<rib::Selected> sel = rib_.Lookup(p);
    std::optional<std::pair<wire::PathAttributes, wire::NextHop>> out;
    if (sel) out = Outbound(n, p, *sel);
    if (!out) {
      if (n.advertised.erase(p) > 0) withdrawals.push_back(p);
      continue;
    }
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& gr) {
      return gr.next_hop == out->second && gr.attrs == out->first;
    });
    if (g == groups.end()) {
      groups.push_back({out->first, out->second, {}});
      g = groups.end() - 1;
    }
    g->prefixes.push_back(p);
    n.advertised.insert(p);
  }
  std::vector<uint8_t> bytes;
  if (!withdrawals.empty()) (void)wire::EncodeWithdrawals(withdrawals, bytes);
  for (const Group& g : groups) {
    absl::StatusOr<size_t> sent =
        wire::EncodeAnnouncements(g.attrs, g.next_hop, g.prefixes, n.session->context(), bytes);
    if (!sent.ok()) {
      log::Error("export_encode_failed", {{"peer", n.config.session.name},
                                          {"error", std::string(sent.status().message())}});
    }
  }
  if (!bytes.empty()) Send(n, bytes);
}

std::vector<NeighborStatus> Speaker::Status() const {
  std::vector<NeighborStatus> out;
  for (const auto& [addr, n] : neighbors_) {
    NeighborStatus s;
    s.name = n->config.session.name;
    s.address = addr;
    s.state = n->session->state();
    s.since = n->session->since();
    s.info = n->session->last_error();
    s.received = n->received;
    s.advertised = n->advertised.size();
    s.updates_received = n->updates_received;
    s.updates_sent = n->updates_sent;
    s.flaps = n->flaps;
    s.end_of_rib = n->end_of_rib;
    out.push_back(s);
  }
  return out;
}

}  // namespace calico::birdd::speaker
