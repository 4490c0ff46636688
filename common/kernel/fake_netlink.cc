#include "common/kernel/fake_netlink.h"

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/base/errno_status.h"
#include "common/base/status_macros.h"

namespace calico::kernel {
namespace {

// IFNAMSIZ is 16 including the NUL; '/' and whitespace are rejected by dev_valid_name().
bool ValidIfName(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(),
                      [](char c) { return c == '/' || c == ':' || c == ' ' || c == '\t'; });
}

bool HasDevice(const NextHop& hop) { return hop.ifindex != 0 || !hop.ifname.empty(); }

bool UsesLink(const Route& route, int index) {
  if (route.hop.ifindex == index) return true;
  return std::any_of(route.multipath.begin(), route.multipath.end(),
                     [index](const NextHop& h) { return h.ifindex == index; });
}

bool IsIpv6LinkLocal(const net::IpAddress& ip) {
  return ip.family == 6 && ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80;
}

// The kernel keeps no scope for IPv6 routes (it reports universe for all); like LibnlNetlink we
// store the scope iproute2 gives the IPv4 equivalent.
RouteScope Ipv6Scope(const Route& route) {
  return route.type == RouteType::kUnicast && route.multipath.empty() && !route.hop.gateway
             ? RouteScope::kLink
             : RouteScope::kUniverse;
}

// What identifies an address: IPv4 allows the same IP with several prefix lengths, IPv6 one
// address per IP (a replace with another length keeps the first one's).
bool SameAddress(const Address& a, const Address& b) {
  if (a.ifindex != b.ifindex || a.prefix.addr != b.prefix.addr) return false;
  return a.prefix.addr.family == 6 || a.prefix.len == b.prefix.len;
}

}  // namespace

FakeNetlink::FakeNetlink() {
  Link lo;
  lo.name = "lo";
  lo.index = 1;
  lo.kind = LinkKind::kLoopback;
  lo.mtu = 65536;
  lo.up = true;
  links_[1] = lo;
  sysctls_["net/ipv4/ip_forward"] = "0";
  sysctls_["net/ipv4/conf/all/forwarding"] = "0";
  sysctls_["net/ipv6/conf/all/forwarding"] = "0";
  CreateLinkSysctls("lo");
}

// ---- Test controls ----

void FakeNetlink::FailNext(NetlinkOp op, int error) { failures_[op].push_back(error); }

int FakeNetlink::Calls(NetlinkOp op) const {
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

int FakeNetlink::Writes() const {
  int total = 0;
  for (NetlinkOp op : {NetlinkOp::kLinkCreate, NetlinkOp::kLinkDelete, NetlinkOp::kLinkSet,
                       NetlinkOp::kAddrReplace, NetlinkOp::kAddrDelete, NetlinkOp::kRouteReplace,
                       NetlinkOp::kRouteDelete, NetlinkOp::kSysctlWrite, NetlinkOp::kNeighReplace,
                       NetlinkOp::kNeighDelete, NetlinkOp::kFdbAdd, NetlinkOp::kFdbDelete}) {
    total += Calls(op);
  }
  return total;
}

std::optional<int> FakeNetlink::Begin(NetlinkOp op) {
  ++calls_[op];
  auto it = failures_.find(op);
  if (it == failures_.end() || it->second.empty()) return std::nullopt;
  int error = it->second.front();
  it->second.pop_front();
  return error;
}

std::vector<Route> FakeNetlink::Routes() const {
  std::vector<Route> out;
  for (const auto& [key, route] : routes_) out.push_back(route);
  return out;
}

std::vector<Link> FakeNetlink::Links() const {
  std::vector<Link> out;
  for (const auto& [index, link] : links_) out.push_back(link);
  return out;
}

std::vector<Address> FakeNetlink::Addresses() const { return addresses_; }

std::optional<std::string> FakeNetlink::Sysctl(std::string_view path) const {
  auto it = sysctls_.find(path);
  if (it == sysctls_.end()) return std::nullopt;
  return it->second;
}

Link FakeNetlink::AddLinkByHand(Link link) {
  if (link.index == 0) link.index = NextIndex();
  CreateLinkSysctls(link.name);
  links_[link.index] = link;
  return link;
}

void FakeNetlink::PutRouteByHand(Route route) {
  RouteKey key = route.Key();
  route.priority = key.priority;
  routes_[key] = std::move(route);
}

void FakeNetlink::DeleteRouteByHand(const RouteKey& key) { routes_.erase(key); }

void FakeNetlink::SetSysctlByHand(std::string_view path, std::string_view value) {
  sysctls_[std::string(path)] = std::string(value);
}

// ---- Helpers ----

Link* FakeNetlink::FindLink(std::string_view name) {
  for (auto& [index, link] : links_) {
    if (link.name == name) return &link;
  }
  return nullptr;
}

Link* FakeNetlink::FindLink(int index) {
  auto it = links_.find(index);
  return it == links_.end() ? nullptr : &it->second;
}

int FakeNetlink::NextIndex() const { return links_.empty() ? 1 : links_.rbegin()->first + 1; }

void FakeNetlink::CreateLinkSysctls(const std::string& name) {
  // Kernel defaults for a new device (proxy_delay is in jiffies: 80 = 0.8 s at HZ=100).
  const std::string v4 = "net/ipv4/conf/" + name + "/";
  const std::string v6 = "net/ipv6/conf/" + name + "/";
  sysctls_[v4 + "forwarding"] = "0";
  sysctls_[v4 + "proxy_arp"] = "0";
  sysctls_[v4 + "route_localnet"] = "0";
  sysctls_["net/ipv4/neigh/" + name + "/proxy_delay"] = "80";
  sysctls_[v6 + "forwarding"] = "0";
  sysctls_[v6 + "accept_ra"] = "1";
  sysctls_[v6 + "accept_dad"] = "1";
  sysctls_[v6 + "proxy_ndp"] = "0";
}

void FakeNetlink::RemoveLink(int index) {
  auto it = links_.find(index);
  if (it == links_.end()) return;
  const std::string name = it->second.name;
  links_.erase(it);
  // The kernel drops whatever depended on the device.
  std::erase_if(routes_, [index](const auto& entry) { return UsesLink(entry.second, index); });
  std::erase_if(addresses_, [index](const Address& a) { return a.ifindex == index; });
  std::erase_if(neighbors_, [index](const Neighbor& n) { return n.ifindex == index; });
  std::erase_if(fdb_, [index](const FdbEntry& f) { return f.ifindex == index; });
  // Another vxlan's underlay going away leaves it without one (the kernel keeps the index; we
  // never delete a parent under a vxlan, so this is not modelled further).
  for (const std::string& prefix : {"net/ipv4/conf/" + name + "/", "net/ipv6/conf/" + name + "/",
                                   "net/ipv4/neigh/" + name + "/"}) {
    std::erase_if(sysctls_, [&prefix](const auto& entry) { return entry.first.starts_with(prefix); });
  }
}

int FakeNetlink::ResolveHop(const Route& route, NextHop& hop) {
  Link* link = hop.ifindex != 0 ? FindLink(hop.ifindex) : FindLink(hop.ifname);
  if (link == nullptr) return ENODEV;
  hop.ifindex = link->index;
  hop.ifname = link->name;
  if (hop.gateway && hop.gateway->family != route.dst.addr.family) return EINVAL;
  // A next hop on a device that is down: "Nexthop device is not up", in both families.
  if (!link->up) return ENETDOWN;
  if (hop.gateway && !hop.onlink && !GatewayReachable(route, hop)) return ENETUNREACH;
  return 0;
}

bool FakeNetlink::GatewayReachable(const Route& route, const NextHop& hop) const {
  const net::IpAddress& gw = *hop.gateway;
  if (IsIpv6LinkLocal(gw)) return true;
  for (const Address& a : addresses_) {
    if (a.ifindex == hop.ifindex && net::Contains(a.prefix, gw)) return true;
  }
  for (const auto& [key, r] : routes_) {
    if (key.table == route.table && r.type == RouteType::kUnicast && r.scope == RouteScope::kLink &&
        r.hop.ifindex == hop.ifindex && !r.hop.gateway && net::Contains(r.dst, gw)) {
      return true;
    }
  }
  return false;
}

// ---- Links ----

absl::StatusOr<std::vector<Link>> FakeNetlink::ListLinks() {
  if (auto e = Begin(NetlinkOp::kLinkList)) return ErrnoError(*e, "RTM_GETLINK dump");
  return Links();
}

absl::StatusOr<Link> FakeNetlink::GetLink(std::string_view name) {
  const std::string context = absl::StrCat("RTM_GETLINK ", ToAbsl(name));
  if (auto e = Begin(NetlinkOp::kLinkGet)) return ErrnoError(*e, context);
  Link* link = FindLink(name);
  if (link == nullptr) return ErrnoError(ENODEV, context);
  return *link;
}

absl::Status FakeNetlink::CreateIpipTunnel(std::string_view name) {
  const std::string context = absl::StrCat("RTM_NEWLINK ipip ", std::string(name));
  if (auto e = Begin(NetlinkOp::kLinkCreate)) return ErrnoError(*e, context);
  if (!ValidIfName(std::string(name))) return ErrnoError(EINVAL, context);
  if (!ipip_available_) {
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": the kernel has no ipip module (it does not know link kind \"ipip\"); "
                 "IP-in-IP needs it: modprobe ipip, or use VXLAN or native routing"));
  }
  if (FindLink(std::string(name)) != nullptr) return ErrnoError(EEXIST, context);
  Link l;
  l.name = std::string(name);
  l.index = NextIndex();
  l.kind = LinkKind::kIpip;
  l.mtu = 1480;
  AddLinkByHand(l);
  return absl::OkStatus();
}

absl::Status FakeNetlink::CreateVeth(const VethSpec& spec) {
  const std::string context = absl::StrCat("RTM_NEWLINK veth ", spec.name, " peer ", spec.peer_name);
  if (auto e = Begin(NetlinkOp::kLinkCreate)) return ErrnoError(*e, context);
  if (!ValidIfName(spec.name) || !ValidIfName(spec.peer_name)) return ErrnoError(EINVAL, context);
  if (spec.mtu != 0 && (spec.mtu < 68 || spec.mtu > 65535)) return ErrnoError(EINVAL, context);
  const bool peer_here = spec.peer_netns.IsSelf();
  if (FindLink(spec.name) != nullptr) return ErrnoError(EEXIST, context);
  if (peer_here && (FindLink(spec.peer_name) != nullptr || spec.peer_name == spec.name)) {
    return ErrnoError(EEXIST, context);
  }
  // RTM_NEWLINK with the index of an existing device names that device: NLM_F_EXCL says EEXIST.
  if (spec.index != 0 && FindLink(spec.index) != nullptr) return ErrnoError(EEXIST, context);
  // veth honours the peer's index only when the first device's is given too.
  const int peer_index = spec.index != 0 ? spec.peer_index : 0;
  if (peer_here && peer_index != 0 &&
      (FindLink(peer_index) != nullptr || peer_index == spec.index)) {
    return ErrnoError(EBUSY, context);
  }

  // Locally administered stand-in MACs, distinct per device (the kernel picks random ones).
  auto default_mac = [](int index) {
    return MacAddress{0x02, 0, 0, 0, static_cast<uint8_t>(index >> 8), static_cast<uint8_t>(index)};
  };
  Link host;
  host.name = spec.name;
  host.index = spec.index != 0 ? spec.index : NextIndex();
  host.kind = LinkKind::kVeth;
  host.mtu = spec.mtu != 0 ? spec.mtu : 1500;
  host.peer_name = spec.peer_name;
  host.peer_netns = spec.peer_netns;
  host.mac = spec.mac ? *spec.mac : default_mac(host.index);
  AddLinkByHand(host);
  if (peer_here) {
    Link peer = host;
    peer.name = spec.peer_name;
    peer.index = peer_index != 0 ? peer_index : NextIndex();
    peer.mac = spec.peer_mac ? *spec.peer_mac : default_mac(peer.index);
    peer.peer_name = spec.name;
    AddLinkByHand(peer);
  }
  return absl::OkStatus();
}

absl::Status FakeNetlink::CreateVxlan(const VxlanSpec& spec) {
  const std::string context = absl::StrCat("RTM_NEWLINK vxlan ", spec.name);
  if (auto e = Begin(NetlinkOp::kLinkCreate)) return ErrnoError(*e, context);
  if (!ValidIfName(spec.name)) return ErrnoError(EINVAL, context);
  if (spec.vni >= (1u << 24)) return ErrnoError(ERANGE, context);
  if (spec.mtu != 0 && (spec.mtu < 68 || spec.mtu > 65535)) return ErrnoError(EINVAL, context);
  if (spec.mac && (*spec.mac)[0] & 1) return ErrnoError(EADDRNOTAVAIL, context);
  if (FindLink(spec.name) != nullptr) return ErrnoError(EEXIST, context);
  const Link* parent = nullptr;
  if (!spec.parent.empty() && (parent = FindLink(spec.parent)) == nullptr) {
    return ErrnoError(ENODEV, context);
  }
  // One device per (VNI, port, local address): "A VXLAN device with the specified VNI already
  // exists".
  for (const auto& [index, l] : links_) {
    if (l.vxlan && l.vxlan->vni == spec.vni && l.vxlan->port == spec.port &&
        l.vxlan->local == spec.local) {
      return ErrnoError(EEXIST, context);
    }
  }
  Link l;
  l.name = spec.name;
  l.index = NextIndex();
  l.kind = LinkKind::kVxlan;
  // Without an explicit MTU: 1500, or the parent's less the outer headers (50 / 70 for IPv6).
  const int headroom = spec.local && spec.local->family == 6 ? 70 : 50;
  l.mtu = spec.mtu != 0 ? spec.mtu : parent != nullptr ? parent->mtu - headroom : 1500;
  l.mac = spec.mac ? *spec.mac
                   : MacAddress{0x02, 0, 0, 0, static_cast<uint8_t>(l.index >> 8),
                                static_cast<uint8_t>(l.index)};
  l.vxlan = VxlanInfo{.vni = spec.vni,
                      .port = spec.port,
                      .local = spec.local,
                      .parent_index = parent != nullptr ? parent->index : 0,
                      .learning = spec.learning};
  AddLinkByHand(l);
  return absl::OkStatus();
}

absl::Status FakeNetlink::DeleteLink(std::string_view name) {
  const std::string context = absl::StrCat("RTM_DELLINK ", ToAbsl(name));
  if (auto e = Begin(NetlinkOp::kLinkDelete)) return ErrnoError(*e, context);
  Link* link = FindLink(name);
  if (link == nullptr) return absl::OkStatus();  // already gone: our API's success
  // Deleting either end of a veth deletes the pair.
  if (link->kind == LinkKind::kVeth && link->peer_netns.IsSelf() && !link->peer_name.empty()) {
    if (Link* peer = FindLink(link->peer_name)) RemoveLink(peer->index);
    link = FindLink(name);
  }
  RemoveLink(link->index);
  return absl::OkStatus();
}

absl::Status FakeNetlink::SetLinkUp(std::string_view name, bool up) {
  const std::string context = absl::StrCat("RTM_SETLINK ", ToAbsl(name), up ? " up" : " down");
  if (auto e = Begin(NetlinkOp::kLinkSet)) return ErrnoError(*e, context);
  Link* link = FindLink(name);
  if (link == nullptr) return ErrnoError(ENODEV, context);
  link->up = up;
  if (!up) {
    // Both families flush the routes through a device that goes down.
    const int index = link->index;
    std::erase_if(routes_, [index](const auto& entry) { return UsesLink(entry.second, index); });
    // Neighbours go too, permanent ones included (neigh_ifdown); FDB entries stay.
    std::erase_if(neighbors_, [index](const Neighbor& n) { return n.ifindex == index; });
  }
  return absl::OkStatus();
}

absl::Status FakeNetlink::SetLinkMtu(std::string_view name, int mtu) {
  const std::string context = absl::StrCat("RTM_SETLINK ", ToAbsl(name), " mtu ", mtu);
  if (auto e = Begin(NetlinkOp::kLinkSet)) return ErrnoError(*e, context);
  Link* link = FindLink(name);
  if (link == nullptr) return ErrnoError(ENODEV, context);
  if (mtu < 68 || mtu > 65535) return ErrnoError(EINVAL, context);
  link->mtu = mtu;
  return absl::OkStatus();
}

absl::Status FakeNetlink::SetLinkGroup(std::string_view name, uint32_t group) {
  const std::string context = absl::StrCat("RTM_SETLINK ", ToAbsl(name), " group ", group);
  if (auto e = Begin(NetlinkOp::kLinkSet)) return ErrnoError(*e, context);
  Link* link = FindLink(name);
  if (link == nullptr) return ErrnoError(ENODEV, context);
  link->group = group;
  return absl::OkStatus();
}

absl::Status FakeNetlink::SetLinkMac(std::string_view name, const MacAddress& mac) {
  const std::string context = absl::StrCat("RTM_SETLINK ", ToAbsl(name), " address ", FormatMac(mac));
  if (auto e = Begin(NetlinkOp::kLinkSet)) return ErrnoError(*e, context);
  Link* link = FindLink(name);
  if (link == nullptr) return ErrnoError(ENODEV, context);
  if (mac[0] & 1) return ErrnoError(EADDRNOTAVAIL, context);  // multicast bit: not a unicast MAC
  link->mac = mac;
  return absl::OkStatus();
}

// ---- Addresses ----

absl::StatusOr<std::vector<Address>> FakeNetlink::ListAddresses(int ifindex) {
  if (auto e = Begin(NetlinkOp::kAddrList)) return ErrnoError(*e, "RTM_GETADDR dump");
  std::vector<Address> out;
  for (const Address& a : addresses_) {
    if (ifindex == 0 || a.ifindex == ifindex) out.push_back(a);
  }
  return out;
}

absl::Status FakeNetlink::ReplaceAddress(const Address& address) {
  const std::string context =
      absl::StrCat("RTM_NEWADDR ", net::FormatCidr(address.prefix), " dev #", address.ifindex);
  if (auto e = Begin(NetlinkOp::kAddrReplace)) return ErrnoError(*e, context);
  if (FindLink(address.ifindex) == nullptr) return ErrnoError(ENODEV, context);
  if (address.prefix.len < 0 || address.prefix.len > address.prefix.addr.Bits()) {
    return ErrnoError(EINVAL, context);
  }
  for (Address& a : addresses_) {
    if (SameAddress(a, address)) {
      a.nodad = address.nodad;  // IPv6 keeps the prefix length it has
      return absl::OkStatus();
    }
  }
  addresses_.push_back(address);
  return absl::OkStatus();
}

absl::Status FakeNetlink::DeleteAddress(const Address& address) {
  const std::string context =
      absl::StrCat("RTM_DELADDR ", net::FormatCidr(address.prefix), " dev #", address.ifindex);
  if (auto e = Begin(NetlinkOp::kAddrDelete)) return ErrnoError(*e, context);
  // Both families delete only the address with this prefix length (another one is "absent").
  std::erase_if(addresses_, [&address](const Address& a) {
    return a.ifindex == address.ifindex && a.prefix == address.prefix;
  });
  return absl::OkStatus();
}

// ---- Neighbours ----

Link* FakeNetlink::FindDevice(int ifindex, std::string_view ifname) {
  return ifindex != 0 ? FindLink(ifindex) : FindLink(ifname);
}

namespace {

bool IsZeroOrMulticast(const MacAddress& mac) {
  return (mac[0] & 1) || mac == MacAddress{};
}

}  // namespace

absl::StatusOr<std::vector<Neighbor>> FakeNetlink::ListNeighbors(int ifindex) {
  if (auto e = Begin(NetlinkOp::kNeighList)) return ErrnoError(*e, "RTM_GETNEIGH dump");
  std::vector<Neighbor> out;
  for (const Neighbor& n : neighbors_) {
    if (ifindex == 0 || n.ifindex == ifindex) out.push_back(n);
  }
  return out;
}

absl::Status FakeNetlink::ReplaceNeighbor(const Neighbor& neighbor) {
  const std::string context = absl::StrCat("RTM_NEWNEIGH ", neighbor.ToString());
  if (auto e = Begin(NetlinkOp::kNeighReplace)) return ErrnoError(*e, context);
  Link* link = FindDevice(neighbor.ifindex, neighbor.ifname);
  if (link == nullptr) return ErrnoError(ENODEV, context);
  Neighbor stored = neighbor;
  stored.ifindex = link->index;
  stored.ifname = link->name;
  for (Neighbor& n : neighbors_) {
    if (n.ifindex == stored.ifindex && n.ip == stored.ip) {
      n = stored;
      return absl::OkStatus();
    }
  }
  neighbors_.push_back(stored);
  return absl::OkStatus();
}

absl::Status FakeNetlink::DeleteNeighbor(const Neighbor& neighbor) {
  const std::string context = absl::StrCat("RTM_DELNEIGH ", neighbor.ToString());
  if (auto e = Begin(NetlinkOp::kNeighDelete)) return ErrnoError(*e, context);
  Link* link = FindDevice(neighbor.ifindex, neighbor.ifname);
  if (link == nullptr) return absl::OkStatus();  // its device is gone, and it with it
  const int index = link->index;
  std::erase_if(neighbors_,
                [&](const Neighbor& n) { return n.ifindex == index && n.ip == neighbor.ip; });
  return absl::OkStatus();
}

// ---- FDB ----

absl::StatusOr<std::vector<FdbEntry>> FakeNetlink::ListFdb(int ifindex) {
  if (auto e = Begin(NetlinkOp::kFdbList)) return ErrnoError(*e, "RTM_GETNEIGH bridge dump");
  std::vector<FdbEntry> out;
  for (const FdbEntry& f : fdb_) {
    if (ifindex == 0 || f.ifindex == ifindex) out.push_back(f);
  }
  return out;
}

absl::Status FakeNetlink::AppendFdb(const FdbEntry& entry) {
  const std::string context = absl::StrCat("RTM_NEWNEIGH bridge append ", entry.ToString());
  if (auto e = Begin(NetlinkOp::kFdbAdd)) return ErrnoError(*e, context);
  if (int err = AddFdb(entry, /*replace=*/false); err != 0) return ErrnoError(err, context);
  return absl::OkStatus();
}

absl::Status FakeNetlink::ReplaceFdb(const FdbEntry& entry) {
  const std::string context = absl::StrCat("RTM_NEWNEIGH bridge replace ", entry.ToString());
  if (auto e = Begin(NetlinkOp::kFdbAdd)) return ErrnoError(*e, context);
  if (int err = AddFdb(entry, /*replace=*/true); err != 0) return ErrnoError(err, context);
  return absl::OkStatus();
}

int FakeNetlink::AddFdb(const FdbEntry& entry, bool replace) {
  if (!entry.dst) return EINVAL;  // refused before asking, as LibnlNetlink does
  Link* link = FindDevice(entry.ifindex, entry.ifname);
  if (link == nullptr) return ENODEV;
  FdbEntry stored = entry;
  stored.ifindex = link->index;
  stored.ifname = link->name;
  auto same_mac = [&](const FdbEntry& f) { return f.ifindex == stored.ifindex && f.mac == stored.mac; };
  if (!link->vxlan) {
    // Without an FDB of its own a device adds the MAC to its address list; the dst is ignored.
    stored.dst.reset();
    if (std::none_of(fdb_.begin(), fdb_.end(), same_mac)) fdb_.push_back(stored);
    return 0;
  }
  const int device_family = link->vxlan->local ? link->vxlan->local->family : 4;
  if (stored.dst->family != device_family) return EAFNOSUPPORT;
  auto existing = std::find_if(fdb_.begin(), fdb_.end(), same_mac);
  if (existing == fdb_.end()) {
    fdb_.push_back(stored);
    return 0;
  }
  if (replace) {
    if (IsZeroOrMulticast(stored.mac)) return EOPNOTSUPP;
    existing->dst = stored.dst;  // a unicast MAC has exactly one dst
    return 0;
  }
  // Append adds a dst only to the all-zero and multicast MACs; a unicast MAC keeps its own.
  if (IsZeroOrMulticast(stored.mac) &&
      std::none_of(fdb_.begin(), fdb_.end(),
                   [&](const FdbEntry& f) { return same_mac(f) && f.dst == stored.dst; })) {
    fdb_.push_back(stored);
  }
  return 0;
}

absl::Status FakeNetlink::DeleteFdb(const FdbEntry& entry) {
  const std::string context = absl::StrCat("RTM_DELNEIGH bridge ", entry.ToString());
  if (auto e = Begin(NetlinkOp::kFdbDelete)) return ErrnoError(*e, context);
  Link* link = FindDevice(entry.ifindex, entry.ifname);
  if (link == nullptr) return absl::OkStatus();
  const int index = link->index;
  // With a dst only that dst goes (a dst the entry lacks: nothing, and no error); without, all.
  std::erase_if(fdb_, [&](const FdbEntry& f) {
    return f.ifindex == index && f.mac == entry.mac && (!entry.dst || !link->vxlan || f.dst == entry.dst);
  });
  return absl::OkStatus();
}

// ---- Routes ----

absl::StatusOr<std::vector<Route>> FakeNetlink::ListRoutes(const RouteFilter& filter) {
  if (auto e = Begin(NetlinkOp::kRouteList)) {
    return ErrnoError(*e, absl::StrCat("RTM_GETROUTE dump table ", filter.table));
  }
  std::vector<Route> out;
  for (const auto& [key, route] : routes_) {
    // Table 0 means all tables but the kernel's local one.
    if (filter.table != 0 ? route.table != filter.table : route.table == kLocalTable) continue;
    if (filter.protocol != kProtoUnspec && route.protocol != filter.protocol) continue;
    if (filter.family != 0 && route.dst.addr.family != filter.family) continue;
    out.push_back(route);
  }
  return out;
}

absl::Status FakeNetlink::ReplaceRoute(const Route& route) {
  const std::string context = absl::StrCat("RTM_NEWROUTE ", route.ToString());
  if (auto e = Begin(NetlinkOp::kRouteReplace)) return ErrnoError(*e, context);
  // "Invalid prefix for given prefix length".
  if (route.dst.len < 0 || route.dst.len > route.dst.addr.Bits() ||
      net::Masked(route.dst) != route.dst) {
    return ErrnoError(EINVAL, context);
  }
  Route stored = route;
  RouteKey key = route.Key();
  stored.priority = key.priority;
  if (route.type != RouteType::kUnicast) {
    if (HasDevice(route.hop) || route.hop.gateway || !route.multipath.empty()) {
      return ErrnoError(EINVAL, context);
    }
  } else if (!route.multipath.empty()) {
    if (HasDevice(route.hop) || route.hop.gateway) return ErrnoError(EINVAL, context);
    for (const NextHop& hop : route.multipath) {
      // rtnh_hops holds weight - 1 in a byte.
      if (!HasDevice(hop) || hop.weight < 1 || hop.weight > 256) return ErrnoError(EINVAL, context);
    }
    for (NextHop& hop : stored.multipath) {
      if (int err = ResolveHop(stored, hop); err != 0) return ErrnoError(err, context);
      // "Device only routes can not be added for IPv6 using the multipath API".
      if (route.dst.addr.family == 6 && !hop.gateway) return ErrnoError(EINVAL, context);
    }
  } else {
    // A gateway without a device: the kernel takes the device whose address or link route
    // covers the gateway (and ENETUNREACH when none does).
    if (!HasDevice(route.hop)) {
      if (!route.hop.gateway) return ErrnoError(EINVAL, context);
      for (const auto& [index, link] : links_) {
        NextHop probe = route.hop;
        probe.ifindex = index;
        if (link.up && GatewayReachable(route, probe)) {
          stored.hop.ifindex = index;
          break;
        }
      }
      if (!HasDevice(stored.hop)) return ErrnoError(ENETUNREACH, context);
    }
    if (int err = ResolveHop(stored, stored.hop); err != 0) return ErrnoError(err, context);
  }
  if (stored.dst.addr.family == 6) stored.scope = Ipv6Scope(stored);
  routes_[key] = std::move(stored);
  return absl::OkStatus();
}

absl::Status FakeNetlink::DeleteRoute(const RouteKey& key, uint8_t protocol) {
  const std::string context = absl::StrCat("RTM_DELROUTE ", key.ToString());
  if (auto e = Begin(NetlinkOp::kRouteDelete)) return ErrnoError(*e, context);
  if (key.dst.len < 0 || key.dst.len > key.dst.addr.Bits() || net::Masked(key.dst) != key.dst) {
    return ErrnoError(EINVAL, context);
  }
  auto matches = [protocol](const Route& r) {
    return protocol == kProtoUnspec || r.protocol == protocol;
  };
  // The kernel says ESRCH for both "absent" and "protocol differs"; our API calls both done.
  if (key.dst.addr.family == 4 && key.priority == 0) {
    // IPv4 reads metric 0 in RTM_DELROUTE as "any": the lowest metric of the protocol goes.
    for (auto it = routes_.lower_bound(key);
         it != routes_.end() && it->first.table == key.table && it->first.dst == key.dst; ++it) {
      if (matches(it->second)) {
        routes_.erase(it);
        break;
      }
    }
    return absl::OkStatus();
  }
  RouteKey stored = key;
  if (key.dst.addr.family == 6 && key.priority == 0) stored.priority = kIpv6DefaultMetric;
  auto it = routes_.find(stored);
  if (it != routes_.end() && matches(it->second)) routes_.erase(it);
  return absl::OkStatus();
}

// ---- Sysctls ----

absl::StatusOr<std::string> FakeNetlink::ReadSysctl(std::string_view path) {
  const std::string context = absl::StrCat("read /proc/sys/", ToAbsl(path));
  if (auto e = Begin(NetlinkOp::kSysctlRead)) return ErrnoError(*e, context);
  auto it = sysctls_.find(path);
  if (it == sysctls_.end()) return ErrnoError(ENOENT, context);
  return it->second;
}

absl::Status FakeNetlink::WriteSysctl(std::string_view path, std::string_view value) {
  const std::string context = absl::StrCat("write /proc/sys/", ToAbsl(path), " = ", ToAbsl(value));
  if (auto e = Begin(NetlinkOp::kSysctlWrite)) return ErrnoError(*e, context);
  auto it = sysctls_.find(path);
  // /proc/sys files cannot be created: a per-device one exists only while its device does.
  if (it == sysctls_.end()) return ErrnoError(ENOENT, context);
  it->second = std::string(value);
  return absl::OkStatus();
}

}  // namespace calico::kernel
