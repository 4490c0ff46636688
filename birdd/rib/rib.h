#pragma once
// birdd/rib/rib.h — routes per prefix from every peer, and the best of them (Adj-RIB-In and
// Loc-RIB in one table, as BIRD keeps them): each prefix holds its candidate paths ordered by the
// decision process, so the best is always the first and a change reports exactly the prefixes
// whose best (or ECMP set) moved. Paths are interned: the attributes and next hop that many
// prefixes share (one UPDATE's worth) are stored once and counted. Pure and single-threaded;
// `peers/` feeds it, `kernel/` and the exporters read the changes.
//
// Memory: an IPv4 prefix costs one open-addressing slot (8-byte key, one inline candidate) —
// tens of bytes — plus its share of an interned path.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "birdd/rib/decision.h"
#include "birdd/wire/message.h"
#include "common/net/ip.h"

namespace calico::birdd::rib {

using PeerId = uint16_t;
using PathId = uint32_t;

struct Peer {
  net::IpAddress address;
  uint32_t router_id = 0;
  uint32_t asn = 0;
  bool ebgp = false;
  bool local = false;  // this speaker's own routes (felixd's blocks)
};

// What routes share: the attributes and the next hop.
struct Path {
  wire::PathAttributes attrs;
  wire::NextHop next_hop;
  bool operator==(const Path&) const = default;
};

struct Selected {
  PeerId peer = 0;
  PathId path = 0;
  // Further paths equal to the best through the IGP-cost step (ECMP), best first.
  std::vector<std::pair<PeerId, PathId>> multipath;
};

class Rib {
 public:
  explicit Rib(DecisionOptions options = {}) : options_(options) {}

  PeerId AddPeer(const Peer& peer);
  const Peer& peer(PeerId id) const { return peers_[id]; }
  // The BGP identifier is known only once the session's OPEN arrived.
  void SetPeerRouterId(PeerId id, uint32_t router_id) { peers_[id].router_id = router_id; }

  // The id of an equal path if one is stored, else a new one. A path lives while routes use it.
  PathId Intern(Path path);
  const Path& path(PathId id) const { return paths_[id].path; }

  // Announces (or replaces) `peer`'s route for each prefix with `path`; withdraws. Each returns
  // how many prefixes' selection changed and appends them to `changed` when given.
  size_t Announce(PeerId peer, std::span<const net::Prefix> prefixes, PathId path,
                  std::vector<net::Prefix>* changed = nullptr);
  size_t Withdraw(PeerId peer, std::span<const net::Prefix> prefixes,
                  std::vector<net::Prefix>* changed = nullptr);
  // Everything `peer` announced goes (session down without graceful restart).
  size_t WithdrawAll(PeerId peer, std::vector<net::Prefix>* changed = nullptr);

  // Graceful restart (RFC 4724): keep a restarting peer's routes but mark them stale; a route
  // it announces again is fresh; after End-of-RIB (or the restart timer) the stale rest goes.
  void MarkStale(PeerId peer);
  // `family` 4 or 6 sweeps only that address family (RFC 4724 works per AFI); 0 both.
  size_t SweepStale(PeerId peer, std::vector<net::Prefix>* changed = nullptr, int family = 0);

  std::optional<Selected> Lookup(const net::Prefix& prefix) const;
  size_t prefixes() const { return v4_.size() + v6_.size(); }
  size_t live_paths() const { return paths_.size() - free_paths_.size(); }
  // Calls fn(prefix, selected) for every prefix with a route.
  template <typename Fn>
  void ForEach(Fn fn) const;

 private:
  struct Candidate {
    PathId path = 0;
    PeerId peer = 0;
    bool stale = false;
  };
  using Candidates = absl::InlinedVector<Candidate, 1>;
  struct StoredPath {
    Path path;
    size_t hash = 0;
    uint32_t refs = 0;
  };

  PathView View(const Candidate& c) const;
  // Inserts or replaces `peer`'s candidate, keeping decision order; true if the selection changed.
  bool Put(Candidates& cs, PeerId peer, PathId path);
  bool Remove(Candidates& cs, PeerId peer, bool only_stale);
  Selected Select(const Candidates& cs) const;
  void Ref(PathId id) { ++paths_[id].refs; }
  void Unref(PathId id);
  static uint64_t V4Key(const net::Prefix& p);
  static net::Prefix FromV4Key(uint64_t key);
  template <typename Fn>
  size_t ForPeer(PeerId peer, Fn fn, std::vector<net::Prefix>* changed, int family = 0);

  DecisionOptions options_;
  std::vector<Peer> peers_;
  std::vector<StoredPath> paths_;
  std::vector<PathId> free_paths_;
  absl::flat_hash_map<size_t, absl::InlinedVector<PathId, 1>> path_index_;  // hash → ids
  absl::flat_hash_map<uint64_t, Candidates> v4_;
  absl::flat_hash_map<std::pair<std::array<uint8_t, 16>, int>, Candidates> v6_;
};

template <typename Fn>
void Rib::ForEach(Fn fn) const {
  for (const auto& [key, cs] : v4_) {
    if (!cs.empty()) fn(FromV4Key(key), Select(cs));
  }
  for (const auto& [key, cs] : v6_) {
    if (cs.empty()) continue;
    net::Prefix p;
    p.addr.family = 6;
    p.addr.bytes = key.first;
    p.len = key.second;
    fn(p, Select(cs));
  }
}

}  // namespace calico::birdd::rib
