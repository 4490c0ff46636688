#include "birdd/rib/rib.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "birdd/wire/as_path.h"

namespace calico::birdd::rib {
namespace {

using V6Key = std::pair<std::array<uint8_t, 16>, int>;

constexpr size_t kPrefetchAhead = 8;

V6Key ToV6Key(const net::Prefix& p) { return {p.addr.bytes, p.len}; }

// Flattens what identifies a path for hashing (equality is Path::operator==).
size_t HashPath(const Path& p) {
  std::vector<uint32_t> v;
  const wire::PathAttributes& a = p.attrs;
  v.push_back(a.origin ? static_cast<uint32_t>(*a.origin) + 1 : 0);
  if (a.as_path) {
    v.push_back(static_cast<uint32_t>(a.as_path->size()) + 1);
    for (const wire::AsSegment& s : *a.as_path) {
      v.push_back(static_cast<uint32_t>(s.type));
      v.push_back(static_cast<uint32_t>(s.asns.size()));
      v.insert(v.end(), s.asns.begin(), s.asns.end());
    }
  }
  v.push_back(a.med.value_or(0));
  v.push_back(a.med ? 1 : 0);
  v.push_back(a.local_pref.value_or(0));
  v.push_back(a.local_pref ? 1 : 0);
  v.push_back(a.atomic_aggregate);
  v.push_back(static_cast<uint32_t>(a.communities.size()));
  v.insert(v.end(), a.communities.begin(), a.communities.end());
  v.push_back(a.originator_id.value_or(0));
  v.insert(v.end(), a.cluster_list.begin(), a.cluster_list.end());
  for (const wire::LargeCommunity& c : a.large_communities) {
    v.push_back(c.global_admin);
    v.push_back(c.local_data1);
    v.push_back(c.local_data2);
  }
  for (const wire::RawAttribute& r : a.unknown) {
    v.push_back(r.type);
    v.push_back(static_cast<uint32_t>(r.value.size()));
  }
  return absl::HashOf(v, p.next_hop.address.bytes, p.next_hop.address.family,
                      p.next_hop.link_local.has_value(),
                      a.next_hop ? a.next_hop->bytes : std::array<uint8_t, 16>{});
}

}  // namespace

PeerId Rib::AddPeer(const Peer& peer) {
  peers_.push_back(peer);
  return static_cast<PeerId>(peers_.size() - 1);
}

PathId Rib::Intern(Path path) {
  size_t hash = HashPath(path);
  auto& bucket = path_index_[hash];
  for (PathId id : bucket) {
    if (paths_[id].path == path) return id;
  }
  PathId id;
  if (!free_paths_.empty()) {
    id = free_paths_.back();
    free_paths_.pop_back();
  } else {
    id = static_cast<PathId>(paths_.size());
    paths_.emplace_back();
  }
  paths_[id].path = std::move(path);
  paths_[id].hash = hash;
  paths_[id].refs = 0;
  bucket.push_back(id);
  return id;
}

void Rib::Unref(PathId id) {
  StoredPath& sp = paths_[id];
  if (--sp.refs > 0) return;
  auto it = path_index_.find(sp.hash);
  if (it != path_index_.end()) {
    auto& bucket = it->second;
    bucket.erase(std::remove(bucket.begin(), bucket.end(), id), bucket.end());
    if (bucket.empty()) path_index_.erase(it);
  }
  sp.path = Path();
  free_paths_.push_back(id);
}

PathView Rib::View(const Candidate& c) const {
  const Peer& peer = peers_[c.peer];
  const wire::PathAttributes& a = paths_[c.path].path.attrs;
  PathView v;
  v.local = peer.local;
  v.local_pref = a.local_pref.value_or(100);
  v.as_path_length = a.as_path ? static_cast<uint32_t>(wire::AsPathLength(*a.as_path)) : 0;
  // A path without ORIGIN (only our own, before export fills it) ranks as INCOMPLETE.
  v.origin = a.origin ? static_cast<Origin>(static_cast<uint8_t>(*a.origin)) : Origin::kIncomplete;
  v.has_med = a.med.has_value();
  v.med = a.med.value_or(0);
  v.neighbor_as = peer.ebgp ? peer.asn : 0;
  if (a.as_path) {
    for (const wire::AsSegment& s : *a.as_path) {
      if (s.type == wire::AsSegmentType::kAsSequence && !s.asns.empty()) {
        v.neighbor_as = s.asns.front();
        break;
      }
    }
  }
  v.from_ebgp = peer.ebgp;
  v.router_id = a.originator_id.value_or(peer.router_id);
  v.cluster_list_length = static_cast<uint32_t>(a.cluster_list.size());
  v.peer_address = peer.address;
  return v;
}

namespace {

// What a prefix's selection is, compactly: the best and a digest of its ECMP set.
struct SelectionDigest {
  bool any = false;
  PeerId peer = 0;
  PathId path = 0;
  size_t multipath = 0;
  bool operator==(const SelectionDigest&) const = default;
};

}  // namespace

bool Rib::Put(Candidates& cs, PeerId peer, PathId path) {
  // The common cases of a full feed first: a new prefix, or the only route replaced.
  if (cs.empty()) {
    Ref(path);
    cs.push_back(Candidate{path, peer, false});
    return true;
  }
  if (cs.size() == 1 && cs[0].peer == peer) {
    cs[0].stale = false;
    if (cs[0].path == path) return false;
    Ref(path);
    Unref(cs[0].path);
    cs[0].path = path;
    return true;
  }
  auto digest = [&]() {
    SelectionDigest d;
    if (cs.empty()) return d;
    d.any = true;
    d.peer = cs[0].peer;
    d.path = cs[0].path;
    if (cs.size() > 1) {
      PathView best = View(cs[0]);
      for (size_t i = 1; i < cs.size() && MultipathEqual(best, View(cs[i]), options_); ++i) {
        d.multipath = absl::HashOf(d.multipath, cs[i].peer, cs[i].path);
      }
    }
    return d;
  };
  SelectionDigest before = digest();
  Ref(path);
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].peer == peer) {
      Unref(cs[i].path);
      cs.erase(cs.begin() + static_cast<ptrdiff_t>(i));
      break;
    }
  }
  Candidate c;
  c.peer = peer;
  c.path = path;
  size_t at = cs.size();
  if (!cs.empty()) {
    PathView mine = View(c);
    for (size_t i = 0; i < cs.size(); ++i) {
      if (Compare(mine, View(cs[i]), options_).order < 0) {
        at = i;
        break;
      }
    }
  }
  cs.insert(cs.begin() + static_cast<ptrdiff_t>(at), c);
  return !(digest() == before);
}

bool Rib::Remove(Candidates& cs, PeerId peer, bool only_stale) {
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].peer != peer) continue;
    if (only_stale && !cs[i].stale) return false;
    bool best = i == 0;
    bool in_multipath = false;
    if (!best && cs.size() > 1) {
      PathView top = View(cs[0]);
      for (size_t j = 1; j <= i && MultipathEqual(top, View(cs[j]), options_); ++j) {
        if (j == i) in_multipath = true;
      }
    }
    Unref(cs[i].path);
    cs.erase(cs.begin() + static_cast<ptrdiff_t>(i));
    return best || in_multipath;
  }
  return false;
}

uint64_t Rib::V4Key(const net::Prefix& p) {
  const auto& b = p.addr.bytes;
  uint32_t addr = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  return (uint64_t{addr} << 8) | static_cast<uint64_t>(p.len);
}

net::Prefix Rib::FromV4Key(uint64_t key) {
  net::Prefix p;
  p.addr.family = 4;
  uint32_t addr = static_cast<uint32_t>(key >> 8);
  p.addr.bytes[0] = static_cast<uint8_t>(addr >> 24);
  p.addr.bytes[1] = static_cast<uint8_t>(addr >> 16);
  p.addr.bytes[2] = static_cast<uint8_t>(addr >> 8);
  p.addr.bytes[3] = static_cast<uint8_t>(addr);
  p.len = static_cast<int>(key & 0xff);
  return p;
}

size_t Rib::Announce(PeerId peer, std::span<const net::Prefix> prefixes, PathId path,
                     std::vector<net::Prefix>* changed) {
  size_t n = 0;
  for (size_t i = 0; i < prefixes.size(); ++i) {
    // A big table misses the cache on every prefix: ask for the slots a few prefixes ahead.
    if (i + kPrefetchAhead < prefixes.size() && prefixes[i + kPrefetchAhead].addr.family == 4) {
      v4_.prefetch(V4Key(prefixes[i + kPrefetchAhead]));
    }
    const net::Prefix& p = prefixes[i];
    Candidates& cs = p.addr.family == 4 ? v4_[V4Key(p)] : v6_[ToV6Key(p)];
    if (Put(cs, peer, path)) {
      ++n;
      if (changed != nullptr) changed->push_back(p);
    }
  }
  if (paths_[path].refs == 0) {  // interned but used by nothing
    ++paths_[path].refs;
    Unref(path);
  }
  return n;
}

size_t Rib::Withdraw(PeerId peer, std::span<const net::Prefix> prefixes,
                     std::vector<net::Prefix>* changed) {
  size_t n = 0;
  for (const net::Prefix& p : prefixes) {
    bool moved = false;
    if (p.addr.family == 4) {
      auto it = v4_.find(V4Key(p));
      if (it == v4_.end()) continue;
      moved = Remove(it->second, peer, false);
      if (it->second.empty()) v4_.erase(it);
    } else {
      auto it = v6_.find(ToV6Key(p));
      if (it == v6_.end()) continue;
      moved = Remove(it->second, peer, false);
      if (it->second.empty()) v6_.erase(it);
    }
    if (moved) {
      ++n;
      if (changed != nullptr) changed->push_back(p);
    }
  }
  return n;
}

template <typename Fn>
size_t Rib::ForPeer(PeerId, Fn fn, std::vector<net::Prefix>* changed, int family) {
  size_t n = 0;
  for (auto it = v4_.begin(); family != 6 && it != v4_.end();) {
    if (fn(it->second)) {
      ++n;
      if (changed != nullptr) changed->push_back(FromV4Key(it->first));
    }
    if (it->second.empty()) {
      v4_.erase(it++);
    } else {
      ++it;
    }
  }
  for (auto it = v6_.begin(); family != 4 && it != v6_.end();) {
    if (fn(it->second)) {
      ++n;
      if (changed != nullptr) {
        net::Prefix p;
        p.addr.family = 6;
        p.addr.bytes = it->first.first;
        p.len = it->first.second;
        changed->push_back(p);
      }
    }
    if (it->second.empty()) {
      v6_.erase(it++);
    } else {
      ++it;
    }
  }
  return n;
}

size_t Rib::WithdrawAll(PeerId peer, std::vector<net::Prefix>* changed) {
  return ForPeer(peer, [&](Candidates& cs) { return Remove(cs, peer, false); }, changed);
}

void Rib::MarkStale(PeerId peer) {
  auto mark = [&](Candidates& cs) {
    for (Candidate& c : cs) {
      if (c.peer == peer) c.stale = true;
    }
  };
  for (auto& [k, cs] : v4_) mark(cs);
  for (auto& [k, cs] : v6_) mark(cs);
}

size_t Rib::SweepStale(PeerId peer, std::vector<net::Prefix>* changed, int family) {
  return ForPeer(peer, [&](Candidates& cs) { return Remove(cs, peer, true); }, changed, family);
}

Selected Rib::Select(const Candidates& cs) const {
  Selected s;
  s.peer = cs[0].peer;
  s.path = cs[0].path;
  if (cs.size() > 1) {
    PathView best = View(cs[0]);
    for (size_t i = 1; i < cs.size() && MultipathEqual(best, View(cs[i]), options_); ++i) {
      s.multipath.push_back({cs[i].peer, cs[i].path});
    }
  }
  return s;
}

std::optional<Selected> Rib::Lookup(const net::Prefix& prefix) const {
  if (prefix.addr.family == 4) {
    auto it = v4_.find(V4Key(prefix));
    if (it == v4_.end() || it->second.empty()) return std::nullopt;
    return Select(it->second);
  }
  auto it = v6_.find(ToV6Key(prefix));
  if (it == v6_.end() || it->second.empty()) return std::nullopt;
  return Select(it->second);
}

}  // namespace calico::birdd::rib
