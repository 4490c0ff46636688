#include "birdd/kernel/fib.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace calico::birdd::kernel_fib {
namespace {

// Routes per ReplaceRoutes/DeleteRoutes call: bounds the memory of one Apply, whatever the
// number of dirty prefixes.
constexpr size_t kChunk = 4096;

}  // namespace

size_t Fib::Hasher::operator()(const net::Prefix& p) const {
  return absl::HashOf(p.addr.family, p.addr.bytes, p.len);
}
size_t Fib::Hasher::operator()(const net::IpAddress& a) const {
  return absl::HashOf(a.family, a.bytes);
}

Fib::Fib(kernel::Netlink& netlink, uint8_t protocol, uint32_t table)
    : netlink_(netlink), protocol_(protocol), table_(table) {}

absl::Status Fib::RefreshInterfaces() {
  ASSIGN_OR_RETURN(addresses_, netlink_.ListAddresses(0));
  ASSIGN_OR_RETURN(std::vector<kernel::Link> links, netlink_.ListLinks());
  names_.clear();
  for (const kernel::Link& l : links) names_[l.index] = l.name;
  missing_devices_.clear();
  resolved_.clear();
  for (auto& [dst, entry] : entries_) MarkDirty(dst, entry);
  return absl::OkStatus();
}

std::optional<Fib::Hop> Fib::Resolve(const net::IpAddress& gateway) {
  // Every route of a session shares a handful of next hops: resolve each once.
  auto cached = resolved_.find(gateway);
  if (cached != resolved_.end()) return cached->second;
  // The most specific connected prefix containing the gateway names the device.
  const kernel::Address* best = nullptr;
  for (const kernel::Address& a : addresses_) {
    if (a.prefix.addr.family != gateway.family) continue;
    net::Prefix connected = net::Masked(a.prefix);
    if (!net::Contains(connected, gateway)) continue;
    if (best == nullptr || a.prefix.len > best->prefix.len) best = &a;
  }
  std::optional<Hop> hop;
  if (best != nullptr) hop = Hop{gateway, best->ifindex};
  resolved_.emplace(gateway, hop);
  return hop;
}

void Fib::MarkDirty(const net::Prefix& dst, Entry& entry) {
  if (entry.dirty) return;
  entry.dirty = true;
  dirty_.push_back(dst);
}

void Fib::SetNextHops(const net::Prefix& dst, std::span<const net::IpAddress> next_hops, std::string_view tunnel) {
  auto it = entries_.find(dst);
  if (it == entries_.end()) {
    if (next_hops.empty()) return;
    it = entries_.try_emplace(dst).first;
  }
  Entry& e = it->second;
  e.wanted.assign(next_hops.begin(), next_hops.end());
  e.tunnel = 0;
  if (!tunnel.empty()) {
    auto t = std::find(tunnels_.begin(), tunnels_.end(), tunnel);
    if (t == tunnels_.end()) t = tunnels_.insert(tunnels_.end(), std::string(tunnel));
    e.tunnel = static_cast<uint8_t>(t - tunnels_.begin() + 1);
  }
  MarkDirty(dst, e);
}

kernel::RouteKey Fib::KeyOf(const net::Prefix& dst) const {
  kernel::RouteKey key;
  key.table = table_;
  key.dst = dst;
  key.priority = dst.addr.family == 6 ? kernel::kIpv6DefaultMetric : 0;
  return key;
}

int Fib::TunnelIndex(uint8_t tunnel) const {
  for (const auto& [index, name] : names_) {
    if (name == tunnels_[tunnel - 1]) return index;
  }
  return 0;
}

kernel::Route Fib::ToRoute(const net::Prefix& dst, const Hops& hops, bool onlink) const {
  kernel::Route route;
  route.dst = dst;
  route.table = table_;
  route.protocol = protocol_;
  route.priority = KeyOf(dst).priority;
  auto to_hop = [&](const Hop& h) {
    kernel::NextHop hop;
    hop.ifindex = h.ifindex;
    auto name = names_.find(h.ifindex);
    if (name != names_.end()) hop.ifname = name->second;
    hop.gateway = h.gateway;
    hop.onlink = onlink;  // through a tunnel: the peer is not on a connected subnet
    return hop;
  };
  if (hops.size() == 1) {
    route.hop = to_hop(hops[0]);
  } else {
    for (const Hop& h : hops) route.multipath.push_back(to_hop(h));
  }
  return route;
}

absl::Status Fib::Apply() {
  absl::Status first_error;
  int failures = 0;
  auto record = [&](const absl::Status& s) {
    if (s.ok()) return;
    if (failures++ == 0) first_error = s;
  };
  std::vector<net::Prefix> work;
  work.swap(dirty_);
  // Entries are found once: erasing never moves the others, and nothing is inserted here.
  using Slot = std::pair<const net::Prefix, Entry>;
  std::vector<kernel::Route> replace;
  std::vector<std::pair<Slot*, Hops>> replace_for;
  std::vector<kernel::RouteKey> remove;
  std::vector<net::Prefix> remove_for;
  // Writes what was gathered; successes update what we believe the kernel has, failures stay
  // dirty.
  auto flush = [&] {
    if (!replace.empty()) {
      std::vector<absl::Status> results = netlink_.ReplaceRoutes(replace);
      for (size_t i = 0; i < results.size(); ++i) {
        Slot& slot = *replace_for[i].first;
        if (results[i].ok()) {
          if (!slot.second.installed) ++installed_;
          slot.second.installed = true;
          slot.second.foreign = false;
          slot.second.in_kernel = std::move(replace_for[i].second);
        } else {
          record(results[i]);
          MarkDirty(slot.first, slot.second);
        }
      }
    }
    if (!remove.empty()) {
      std::vector<absl::Status> results = netlink_.DeleteRoutes(remove, protocol_);
      for (size_t i = 0; i < results.size(); ++i) {
        auto it = entries_.find(remove_for[i]);
        if (results[i].ok()) {
          if (it->second.installed) --installed_;
          it->second.installed = false;
          it->second.in_kernel.clear();
          if (it->second.wanted.empty() && !it->second.dirty) entries_.erase(it);
        } else {
          record(results[i]);
          MarkDirty(it->first, it->second);
        }
      }
    }
    replace.clear();
    replace_for.clear();
    remove.clear();
    remove_for.clear();
  };
  for (const net::Prefix& dst : work) {
    auto it = entries_.find(dst);
    if (it == entries_.end()) continue;
    Entry& e = it->second;
    e.dirty = false;
    Hops want;
    unresolved_ -= e.unresolved;
    e.unresolved = 0;
    const int tunnel_index = e.tunnel != 0 ? TunnelIndex(e.tunnel) : 0;
    if (e.tunnel != 0 && tunnel_index == 0) missing_devices_.insert(tunnels_[e.tunnel - 1]);
    for (const net::IpAddress& gw : e.wanted) {
      if (e.tunnel != 0) {
        if (tunnel_index != 0) {
          want.push_back(Hop{gw, tunnel_index});
        } else {
          ++e.unresolved;
        }
      } else if (std::optional<Hop> hop = Resolve(gw)) {
        want.push_back(*hop);
      } else {
        ++e.unresolved;
      }
    }
    unresolved_ += e.unresolved;
    if (!want.empty()) {
      if (e.installed && !e.foreign && e.in_kernel == want) continue;
      replace.push_back(ToRoute(dst, want, e.tunnel != 0));
      replace_for.emplace_back(&*it, std::move(want));
    } else if (e.installed) {
      remove.push_back(KeyOf(dst));
      remove_for.push_back(dst);
    } else if (e.wanted.empty()) {
      entries_.erase(it);
      continue;
    }
    if (replace.size() + remove.size() >= kChunk) flush();
  }
  flush();
  if (!strays_.empty()) {
    std::vector<kernel::RouteKey> strays;
    strays.swap(strays_);
    std::vector<absl::Status> results = netlink_.DeleteRoutes(strays, protocol_);
    for (size_t i = 0; i < results.size(); ++i) {
      record(results[i]);
      if (!results[i].ok()) strays_.push_back(strays[i]);
    }
  }
  if (failures == 0) return absl::OkStatus();
  std::string context = absl::StrCat("FIB table ", table_, " proto ", protocol_);
  if (failures > 1) absl::StrAppend(&context, " (", failures - 1, " more failures pending)");
  return Annotate(first_error, context);
}

absl::Status Fib::Resync() {
  absl::StatusOr<std::vector<kernel::Route>> actual =
      netlink_.ListRoutes(kernel::RouteFilter{.table = table_, .protocol = protocol_});
  if (!actual.ok()) {
    return Annotate(actual.status(), absl::StrCat("resyncing FIB table ", table_, " proto ", protocol_));
  }
  // Forget what we believed; the kernel's answer is the truth.
  for (auto& [dst, e] : entries_) {
    e.installed = false;
    e.foreign = false;
    e.in_kernel.clear();
    MarkDirty(dst, e);
  }
  installed_ = 0;
  strays_.clear();
  for (const kernel::Route& r : *actual) {
    if (r.Key() != KeyOf(r.dst)) {  // another metric: not a key we write
      strays_.push_back(r.Key());
      continue;
    }
    Entry& e = entries_[r.dst];
    Hops hops;
    bool ours = r.type == kernel::RouteType::kUnicast && r.scope == kernel::RouteScope::kUniverse;
    auto take = [&](const kernel::NextHop& h) {
      if (!h.gateway || h.onlink != (e.tunnel != 0) || h.weight != 1) ours = false;
      hops.push_back(Hop{h.gateway.value_or(net::IpAddress{}), h.ifindex});
    };
    if (r.multipath.empty()) {
      take(r.hop);
    } else {
      for (const kernel::NextHop& h : r.multipath) take(h);
    }
    e.installed = true;
    e.foreign = !ours;
    e.in_kernel = std::move(hops);
    ++installed_;
    MarkDirty(r.dst, e);
  }
  return Apply();
}

}  // namespace calico::birdd::kernel_fib
