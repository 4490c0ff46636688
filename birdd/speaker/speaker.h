#pragma once
// birdd/speaker/speaker.h — the BGP speaker: neighbors' sessions feed one RIB; every change of a
// prefix's selection goes to the kernel sink and, filtered per neighbor by the iBGP / route
// reflection rules, out to every established neighbor. Local routes (felixd's blocks) are
// originated here. Runs on one EventLoop thread.
//
// Export rules (RFC 4271 9.2, RFC 4456 8): a route never goes back to the neighbor it came
// from; iBGP-learned routes go to eBGP neighbors, and to iBGP neighbors only when this speaker
// reflects (from a client: to everyone; from a non-client: to clients), with ORIGINATOR_ID and
// CLUSTER_LIST set. Received routes carrying our AS (eBGP), our router id as ORIGINATOR_ID or
// our cluster id in CLUSTER_LIST are ignored (loops). Next hop: ourselves, unless the neighbor
// keeps the original next hop.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "birdd/peers/event_loop.h"
#include "birdd/peers/listener.h"
#include "birdd/peers/session.h"
#include "birdd/rib/rib.h"

namespace calico::birdd::speaker {

struct SpeakerConfig {
  uint32_t local_as = 64512;
  uint32_t router_id = 0;
  std::optional<uint32_t> cluster_id;  // set: this speaker is a route reflector
};

struct NeighborConfig {
  peers::PeerConfig session;  // local_as/router_id are filled from SpeakerConfig
  bool rr_client = false;
  bool keep_original_next_hop = false;
  // Route policy (BGPFilter); false rejects. Import: routes from this neighbor (a rejected one
  // counts as withdrawn); export: routes to it (`from_peer`: learned, not this node's own).
  std::function<bool(const net::Prefix&)> import_filter;
  std::function<bool(const net::Prefix&, bool from_peer)> export_filter;
};

// What the kernel should do for a prefix: install via these next hops (ECMP), or remove.
using KernelSink = std::function<void(const net::Prefix&, const std::vector<net::IpAddress>& next_hops)>;

struct NeighborStatus {
  std::string name;
  net::IpAddress address;
  fsm::State state = fsm::State::kIdle;
  absl::Time since;
  std::string info;  // last error
  size_t received = 0;
  size_t advertised = 0;
  uint64_t updates_received = 0;
  uint64_t updates_sent = 0;
  uint64_t flaps = 0;          // times the session left Established
  bool end_of_rib = false;     // the peer's End-of-RIB arrived in this session (initial sync done)
};

class Speaker {
 public:
  Speaker(peers::EventLoop& loop, SpeakerConfig config, KernelSink kernel);
  ~Speaker();

  // Neighbors; the listener (optional) receives their incoming connections.
  absl::Status AddNeighbor(NeighborConfig neighbor, peers::Listener* listener);
  void RemoveNeighbor(const net::IpAddress& address);

  // This node's own routes (with communities from BGPConfiguration prefixAdvertisements).
  void Originate(const net::Prefix& prefix, std::vector<uint32_t> communities = {},
                 std::vector<wire::LargeCommunity> large_communities = {});
  void Withdraw(const net::Prefix& prefix);

  std::vector<NeighborStatus> Status() const;
  const rib::Rib& rib() const { return rib_; }

 private:
  struct Neighbor {
    NeighborConfig config;
    std::unique_ptr<peers::PeerSession> session;
    rib::PeerId peer = 0;
    std::set<net::Prefix> advertised;  // Adj-RIB-Out: what this neighbor has from us
    size_t received = 0;
    uint64_t updates_received = 0;
    uint64_t updates_sent = 0;
    uint64_t flaps = 0;
    bool end_of_rib = false;
    bool up = false;
    // Bounds how long a restarting peer's stale routes live: its Restart Time while it is away,
    // then again while we wait for its End-of-RIB (RFC 4724 4.2).
    peers::EventLoop::TimerId stale_timer = 0;
    uint8_t eor_families = 0;  // bit 0: IPv4 End-of-RIB seen this session, bit 1: IPv6
  };
  // Address families both OPENs listed (bit 0 IPv4, bit 1 IPv6; RFC 4760: none listed is IPv4).
  uint8_t Negotiated(const Neighbor& n) const;
  void RouteRefresh(Neighbor& n, wire::AfiSafi family);
  void ArmStaleTimer(Neighbor& n);
  void CancelStaleTimer(Neighbor& n);
  void Send(Neighbor& n, const std::vector<uint8_t>& bytes);

  void OnUpdate(Neighbor& n, const wire::Update& update);
  void OnEstablished(Neighbor& n);
  void OnDown(Neighbor& n, bool graceful);
  void Changed(const std::vector<net::Prefix>& prefixes);
  // Sends `n` what it should now have for `prefixes` (announcements and withdrawals).
  void Export(Neighbor& n, const std::vector<net::Prefix>& prefixes);
  // The attributes `n` gets for the selected path, or nullopt if it must not get it.
  std::optional<std::pair<wire::PathAttributes, wire::NextHop>> Outbound(
      const Neighbor& n, const net::Prefix& prefix, const rib::Selected& selected) const;
  bool Looped(const Neighbor& from, const wire::PathAttributes& attrs) const;
  Neighbor* ByPeer(rib::PeerId peer) const;

  peers::EventLoop& loop_;
  SpeakerConfig config_;
  KernelSink kernel_;
  rib::Rib rib_;
  rib::PeerId local_peer_;
  std::map<net::IpAddress, std::unique_ptr<Neighbor>> neighbors_;
  std::vector<Neighbor*> by_peer_;  // index: rib::PeerId (null for the local peer and removed ones)
};

}  // namespace calico::birdd::speaker
