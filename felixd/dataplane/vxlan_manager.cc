#include "felixd/dataplane/vxlan_manager.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "openssl/sha.h"

namespace calico::felixd {
namespace {

bool IsLinkLocal6(const net::IpAddress& ip) {
  return ip.family == 6 && ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80;
}

const VxlanPool* PoolOf(const std::vector<VxlanPool>& pools, const net::Prefix& cidr) {
  for (const VxlanPool& p : pools) {
    if (!p.disabled && p.vxlan != EncapMode::kNever && p.cidr.addr.family == cidr.addr.family &&
        net::Contains(p.cidr, cidr)) {
      return &p;
    }
  }
  return nullptr;
}

void KeepFirst(absl::Status& first, absl::Status s) {
  if (first.ok() && !s.ok()) first = std::move(s);
}

}  // namespace

std::optional<EncapMode> ParseEncapMode(std::string_view text) {
  if (text.empty() || text == "Never") return EncapMode::kNever;
  if (text == "Always") return EncapMode::kAlways;
  if (text == "CrossSubnet") return EncapMode::kCrossSubnet;
  return std::nullopt;
}

kernel::MacAddress VtepMacFor(std::string_view node, int family) {
  std::string seed(node);
  if (family == 6) seed += "/v6";  // a node's two VTEPs never share a MAC
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(seed.data()), seed.size(), digest);
  return {0x66, digest[0], digest[1], digest[2], digest[3], digest[4]};
}

bool InVxlanPool(const std::vector<VxlanPool>& pools, const net::Prefix& cidr) {
  return PoolOf(pools, cidr) != nullptr;
}

VxlanPlan PlanVxlan(const VxlanInputs& in) {
  VxlanPlan plan;
  const int family = in.family;
  plan.family = family;
  plan.wanted = std::any_of(in.pools.begin(), in.pools.end(), [&](const VxlanPool& p) {
    return !p.disabled && p.vxlan != EncapMode::kNever && p.cidr.addr.family == family;
  });
  if (!plan.wanted) return plan;
  const bool v6 = family == 6;

  auto vtep_of = [&](const std::string& name, const VxlanNode& n) -> std::optional<Vtep> {
    if (!n.address || n.address->addr.family != family) {
      plan.waiting.push_back(absl::StrCat("Node ", name, " has no spec.bgp.ipv", family, "Address"));
      return std::nullopt;
    }
    if (!n.tunnel_ip) {
      plan.waiting.push_back(absl::StrCat("Node ", name, " has no ", v6 ? "ipv6" : "ipv4",
                                          "VXLANTunnelAddr yet (its ipamd assigns one)"));
      return std::nullopt;
    }
    if (!n.mac && name != in.node) {
      plan.waiting.push_back(absl::StrCat("Node ", name, " has no vxlanTunnelMACAddr", v6 ? "V6" : "",
                                          " yet (its felixd writes one)"));
      return std::nullopt;
    }
    return Vtep{.node = name,
                .node_ip = n.address->addr,
                .tunnel_ip = *n.tunnel_ip,
                .mac = n.mac ? *n.mac : VtepMacFor(name, family)};
  };

  std::optional<net::Prefix> local_subnet;
  if (auto it = in.nodes.find(in.node); it != in.nodes.end()) {
    plan.local = vtep_of(it->first, it->second);
    if (it->second.address) local_subnet = net::Masked(*it->second.address);
  } else {
    plan.waiting.push_back(absl::StrCat("no Node resource named ", in.node));
  }
  std::map<std::string, Vtep> remotes;
  std::map<std::string, net::IpAddress> underlay;  // remote nodes' addresses, VTEP or not
  for (const auto& [name, n] : in.nodes) {
    if (name == in.node) continue;
    if (n.address && n.address->addr.family == family) underlay.emplace(name, n.address->addr);
    // Only nodes that hold VXLAN blocks matter; others may legitimately lack a VTEP.
    bool has_block = std::any_of(in.blocks.begin(), in.blocks.end(), [&](const auto& b) {
      return b.second == name && PoolOf(in.pools, b.first) != nullptr;
    });
    if (!has_block) {
      if (n.tunnel_ip && n.mac && n.address && n.address->addr.family == family) {
        remotes.emplace(name, Vtep{name, n.address->addr, *n.tunnel_ip, *n.mac});
      }
      continue;
    }
    if (std::optional<Vtep> v = vtep_of(name, n)) remotes.emplace(name, *v);
  }
  for (const auto& [name, v] : remotes) plan.remotes.push_back(v);

  if (!plan.local) return plan;  // no device, so no route through it either
  auto route_to = [&](const net::Prefix& dst, const std::string& node) {
    if (node == in.node || node.empty() || dst.addr.family != family) return;
    const VxlanPool* pool = PoolOf(in.pools, dst);
    if (pool == nullptr) return;
    auto u = underlay.find(node);
    if (pool->vxlan == EncapMode::kCrossSubnet && local_subnet && u != underlay.end() &&
        net::Contains(*local_subnet, u->second)) {
      // Same subnet: plain routing to the node, no encapsulation.
      kernel::Route r;
      r.dst = dst;
      r.hop.gateway = u->second;
      if (v6) r.priority = kernel::kIpv6DefaultMetric;
      plan.routes.push_back(r);
      return;
    }
    auto v = remotes.find(node);
    if (v == remotes.end()) return;  // its VTEP is not known yet (see waiting)
    kernel::Route r;
    r.dst = dst;
    r.hop.gateway = v->second.tunnel_ip;
    r.hop.ifname = VxlanDevice(family);
    r.hop.onlink = true;
    if (v6) r.priority = kernel::kIpv6DefaultMetric;
    plan.routes.push_back(r);
  };
  for (const auto& [cidr, node] : in.blocks) route_to(cidr, node);
  for (const auto& [ip, node] : in.borrowed) route_to(ip, node);
  std::sort(plan.routes.begin(), plan.routes.end(),
            [](const kernel::Route& a, const kernel::Route& b) { return a.dst < b.dst; });
  plan.routes.erase(std::unique(plan.routes.begin(), plan.routes.end(),
                                [](const kernel::Route& a, const kernel::Route& b) {
                                  return a.dst == b.dst;
                                }),
                    plan.routes.end());
  return plan;
}

absl::Status VxlanManager::EnsureDevice(const Vtep& local, int& ifindex) {
  // The parent is the device holding this node's address (it may change: re-read each time).
  ASSIGN_OR_RETURN(std::vector<kernel::Address> addresses, host_.ListAddresses(0));
  int parent_index = 0;
  for (const kernel::Address& a : addresses) {
    if (a.prefix.addr == local.node_ip) parent_index = a.ifindex;
  }
  if (parent_index == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no device holds this node's address ", net::FormatIp(local.node_ip),
        " (Node spec.bgp.ipv", family_, "Address): ", device_, " needs it as the outer source"));
  }
  ASSIGN_OR_RETURN(std::vector<kernel::Link> links, host_.ListLinks());
  const kernel::Link* parent = nullptr;
  const kernel::Link* device = nullptr;
  for (const kernel::Link& l : links) {
    if (l.index == parent_index) parent = &l;
    if (l.name == device_) device = &l;
  }
  if (parent == nullptr) return absl::UnavailableError("the underlay device vanished; retrying");
  const int mtu = parent->mtu - VxlanOverhead(family_);
  const kernel::VxlanInfo want{.vni = kVxlanVni,
                               .port = kVxlanPort,
                               .local = local.node_ip,
                               .parent_index = parent_index,
                               .learning = false};
  if (device != nullptr && !(device->kind == kernel::LinkKind::kVxlan && device->vxlan &&
                             *device->vxlan == want)) {
    log::Warn("vxlan_device_recreated", {{"device", device_},
                                         {"reason", "VNI, port, local address, parent or learning differ"}});
    ++stats_.device_writes;
    RETURN_IF_ERROR(host_.DeleteLink(device_));
    device = nullptr;
  }
  if (device == nullptr) {
    ++stats_.device_writes;
    RETURN_IF_ERROR(host_.CreateVxlan({.name = device_,
                                       .vni = kVxlanVni,
                                       .port = kVxlanPort,
                                       .local = local.node_ip,
                                       .parent = parent->name,
                                       .mtu = mtu,
                                       .mac = local.mac,
                                       .learning = false}));
    log::Info("vxlan_device_created", {{"device", device_},
                                       {"local", net::FormatIp(local.node_ip)},
                                       {"parent", parent->name},
                                       {"mtu", std::to_string(mtu)},
                                       {"mac", kernel::FormatMac(local.mac)}});
    ASSIGN_OR_RETURN(kernel::Link created, host_.GetLink(device_));
    ifindex = created.index;
    ++stats_.device_writes;
    RETURN_IF_ERROR(host_.SetLinkUp(device_, true));
  } else {
    ifindex = device->index;
    if (device->mtu != mtu) {
      ++stats_.device_writes;
      RETURN_IF_ERROR(host_.SetLinkMtu(device_, mtu));
    }
    if (device->mac != local.mac) {
      ++stats_.device_writes;
      RETURN_IF_ERROR(host_.SetLinkMac(device_, local.mac));
    }
    if (!device->up) {
      ++stats_.device_writes;
      RETURN_IF_ERROR(host_.SetLinkUp(device_, true));
    }
  }
  device_mtu_ = mtu;
  // The tunnel address, alone (an IPv6 device keeps the link-local address the kernel gives it).
  const net::Prefix tunnel{local.tunnel_ip, local.tunnel_ip.Bits()};
  bool have = false;
  for (const kernel::Address& a : addresses) {
    if (a.ifindex != ifindex) continue;
    if (a.prefix == tunnel) {
      have = true;
    } else if (a.prefix.addr.family == family_ && !IsLinkLocal6(a.prefix.addr)) {
      ++stats_.device_writes;
      RETURN_IF_ERROR(host_.DeleteAddress(a));
    }
  }
  if (!have) {
    ++stats_.device_writes;
    RETURN_IF_ERROR(host_.ReplaceAddress({.prefix = tunnel, .ifindex = ifindex, .nodad = family_ == 6}));
  }
  return absl::OkStatus();
}

absl::Status VxlanManager::Apply() {
  if (!plan_.local) {
    device_mtu_ = 0;
    absl::StatusOr<kernel::Link> existing = host_.GetLink(device_);
    if (absl::IsNotFound(existing.status())) return absl::OkStatus();
    RETURN_IF_ERROR(existing.status());
    // Kept while VXLAN is wanted but this node's VTEP is incomplete (a transient datastore
    // state must not cut established tunnels); removed once no pool uses VXLAN.
    if (plan_.wanted) return absl::OkStatus();
    ++stats_.device_writes;
    log::Info("vxlan_device_removed",
              {{"device", device_}, {"reason", absl::StrCat("no IPv", family_, " pool uses VXLAN")}});
    return host_.DeleteLink(device_);
  }
  int ifindex = 0;
  RETURN_IF_ERROR(EnsureDevice(*plan_.local, ifindex));

  absl::Status first;
  // Neighbours: one permanent entry per remote VTEP; other permanent ones of the family are strays.
  std::map<net::IpAddress, kernel::MacAddress> want_neigh;
  std::map<kernel::MacAddress, net::IpAddress> want_fdb;
  for (const Vtep& v : plan_.remotes) {
    want_neigh[v.tunnel_ip] = v.mac;
    want_fdb[v.mac] = v.node_ip;
  }
  absl::StatusOr<std::vector<kernel::Neighbor>> neighbors = host_.ListNeighbors(ifindex);
  if (!neighbors.ok()) return neighbors.status();
  std::set<net::IpAddress> neigh_ok;
  for (const kernel::Neighbor& n : *neighbors) {
    // The kernel's own NOARP multicast entries (not permanent) are left alone.
    if (n.ip.family != family_ || IsLinkLocal6(n.ip)) continue;
    auto it = want_neigh.find(n.ip);
    if (it != want_neigh.end() && it->second == n.mac && n.permanent) {
      neigh_ok.insert(n.ip);
    } else if (it == want_neigh.end() && n.permanent) {
      ++stats_.neighbor_writes;
      KeepFirst(first, host_.DeleteNeighbor({.ifindex = ifindex, .ifname = {}, .ip = n.ip}));
    }
  }
  for (const auto& [ip, mac] : want_neigh) {
    if (neigh_ok.count(ip)) continue;
    ++stats_.neighbor_writes;
    KeepFirst(first, host_.ReplaceNeighbor({.ifindex = ifindex, .ifname = {}, .ip = ip, .mac = mac}));
  }
  // FDB: one entry per remote VTEP MAC; replace (not append) moves a MAC to a node's new address.
  absl::StatusOr<std::vector<kernel::FdbEntry>> fdb = host_.ListFdb(ifindex);
  if (!fdb.ok()) return fdb.status();
  std::set<kernel::MacAddress> fdb_ok;
  for (const kernel::FdbEntry& e : *fdb) {
    auto it = want_fdb.find(e.mac);
    if (it != want_fdb.end() && e.dst == it->second) {
      fdb_ok.insert(e.mac);
    } else if (it == want_fdb.end()) {
      ++stats_.fdb_writes;
      KeepFirst(first, host_.DeleteFdb({.ifindex = ifindex, .ifname = {}, .mac = e.mac, .dst = e.dst}));
    }
  }
  for (const auto& [mac, dst] : want_fdb) {
    if (fdb_ok.count(mac)) continue;
    ++stats_.fdb_writes;
    KeepFirst(first, host_.ReplaceFdb({.ifindex = ifindex, .ifname = {}, .mac = mac, .dst = dst}));
  }
  return first;
}

}  // namespace calico::felixd
