#include "tests/support/kernel/netlink_conformance.h"

#include <algorithm>
#include <functional>
#include <map>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace calico::kernel::testing {

std::string Describe(const Route& r) {
  auto hop = [](const NextHop& h) {
    std::string out = absl::StrCat("{#", h.ifindex, " ", h.ifname);
    if (h.gateway) absl::StrAppend(&out, " via ", net::FormatIp(*h.gateway));
    if (h.onlink) absl::StrAppend(&out, " onlink");
    absl::StrAppend(&out, " w", h.weight, "}");
    return out;
  };
  std::string out = absl::StrCat(net::FormatCidr(r.dst), " type ", static_cast<int>(r.type),
                                 " table ", r.table, " proto ", r.protocol, " scope ",
                                 static_cast<int>(r.scope), " metric ", r.priority, " hop ",
                                 hop(r.hop));
  for (const NextHop& h : r.multipath) absl::StrAppend(&out, " nexthop ", hop(h));
  return out;
}

std::string Describe(const Link& l) {
  std::string vxlan;
  if (l.vxlan) {
    vxlan = absl::StrCat(" vni ", l.vxlan->vni, " port ", l.vxlan->port, " local ",
                         l.vxlan->local ? net::FormatIp(*l.vxlan->local) : "none", " parent #",
                         l.vxlan->parent_index, l.vxlan->learning ? " learning" : " nolearning");
  }
  return absl::StrCat("{", l.name, " #", l.index, " ", ToAbsl(LinkKindName(l.kind)), " mtu ", l.mtu,
                      " mac ", l.mac ? FormatMac(*l.mac) : "none", l.up ? " up" : " down",
                      " peer ", l.peer_name, vxlan, "}");
}

std::string Describe(const Address& a) {
  return absl::StrCat("{", net::FormatCidr(a.prefix), " #", a.ifindex, a.nodad ? " nodad" : "",
                      "}");
}

std::string Describe(const Neighbor& n) {
  return absl::StrCat("{", n.ToString(), " #", n.ifindex, n.permanent ? " permanent" : "", "}");
}

std::string Describe(const FdbEntry& f) { return absl::StrCat("{", f.ToString(), " #", f.ifindex, "}"); }

namespace {

// ---- Status helpers ----

template <typename T>
T ValueOrFail(absl::StatusOr<T> result, std::string_view what) {
  if (!result.ok()) FAIL(what << ": " << result.status().ToString());
  return std::move(result).value();
}
#define OK_OR_FAIL(expr) ValueOrFail((expr), #expr)

void RequireOk(const absl::Status& status, std::string_view what) {
  if (!status.ok()) FAIL(what << ": " << status.ToString());
}
#define REQUIRE_OK(expr) RequireOk((expr), #expr)

// `status` failed with `code` and names the errno (ErrnoError's "(ENODEV)").
void RequireError(const absl::Status& status, absl::StatusCode code, std::string_view errno_name,
                  std::string_view what) {
  INFO(what << " -> " << status.ToString());
  REQUIRE(status.code() == code);
  REQUIRE(ToStd(status.message()).find(absl::StrCat("(", ToAbsl(errno_name), ")")) !=
          std::string::npos);
}
#define REQUIRE_ERRNO(expr, code, errno_name) \
  RequireError((expr), absl::StatusCode::code, errno_name, #expr)

// ---- Value helpers ----

MacAddress Mac(std::string_view text) {
  std::optional<MacAddress> mac = ParseMac(text);
  REQUIRE(mac.has_value());
  return *mac;
}

net::Prefix Cidr(std::string_view text) {
  std::optional<net::Prefix> prefix = net::ParseCidrOrIp(text);
  REQUIRE(prefix.has_value());
  return *prefix;
}

RouteKey Key(std::string_view dst, uint32_t priority = 0, uint32_t table = kMainTable) {
  return RouteKey{.table = table, .dst = Cidr(dst), .priority = priority};
}

Route Blackhole(std::string_view dst, uint8_t protocol = kProtoBoot, uint32_t table = kMainTable,
                uint32_t priority = 0) {
  Route route = Route::Blackhole(dst);
  route.protocol = protocol;
  route.table = table;
  route.priority = priority;
  return route;
}

NextHop Hop(std::string_view ifname, std::string_view gateway = "", int weight = 1,
            bool onlink = false) {
  NextHop hop;
  hop.ifname = std::string(ifname);
  if (!gateway.empty()) {
    hop.gateway = net::ParseIp(gateway);
    REQUIRE(hop.gateway.has_value());
  }
  hop.weight = weight;
  hop.onlink = onlink;
  return hop;
}

Route MultipathRoute(std::string_view dst, std::vector<NextHop> hops,
                RouteScope scope = RouteScope::kUniverse) {
  Route route;
  route.dst = Cidr(dst);
  route.scope = scope;
  route.multipath = std::move(hops);
  return route;
}

Link GetLink(Netlink& netlink, std::string_view name) {
  return ValueOrFail(netlink.GetLink(name), absl::StrCat("GetLink ", ToAbsl(name)));
}

int IndexOf(Netlink& netlink, std::string_view name) { return GetLink(netlink, name).index; }

// How an implementation stores `route` sent with devices named: both ifindex and ifname, the
// metric normalised.
Route Stored(Netlink& netlink, Route route) {
  route.priority = route.Key().priority;
  auto fill = [&netlink](NextHop& hop) {
    if (!hop.ifname.empty()) hop.ifindex = IndexOf(netlink, hop.ifname);
  };
  if (route.type == RouteType::kUnicast) {
    if (route.multipath.empty()) fill(route.hop);
    for (NextHop& hop : route.multipath) fill(hop);
  }
  return route;
}

std::vector<Route> Sorted(std::vector<Route> routes) {
  std::sort(routes.begin(), routes.end(), [](const Route& a, const Route& b) {
    return std::make_tuple(a.Key(), a.protocol) < std::make_tuple(b.Key(), b.protocol);
  });
  return routes;
}

// Routes the kernel adds by itself (proto kernel: ::1, prefix routes) are not compared unless
// the filter asks for them.
std::vector<Route> Listed(Netlink& netlink, const RouteFilter& filter) {
  std::vector<Route> routes = ValueOrFail(
      netlink.ListRoutes(filter), absl::StrCat("ListRoutes table ", filter.table, " proto ",
                                               filter.protocol, " family ", filter.family));
  if (filter.protocol != kProtoKernel) {
    std::erase_if(routes, [](const Route& r) { return r.protocol == kProtoKernel; });
  }
  return Sorted(std::move(routes));
}

std::vector<Route> Listed(Netlink& netlink) {
  return Listed(netlink, RouteFilter{.table = kMainTable, .protocol = kProtoBoot});
}

bool IsIpv6LinkLocal(const net::Prefix& p) {
  return p.addr.family == 6 && p.addr.bytes[0] == 0xfe && (p.addr.bytes[1] & 0xc0) == 0x80;
}

// The addresses we put on `ifindex` (0: all devices), without those the kernel adds by itself
// (fe80:: on links with a carrier, 127.0.0.1 and ::1 on lo).
std::vector<Address> Addresses(Netlink& netlink, int ifindex) {
  std::vector<Address> out;
  for (const Address& a : ValueOrFail(netlink.ListAddresses(ifindex), "ListAddresses")) {
    if (!IsIpv6LinkLocal(a.prefix) && a.ifindex != 1) out.push_back(a);
  }
  std::sort(out.begin(), out.end(), [](const Address& a, const Address& b) {
    return std::make_tuple(a.ifindex, a.prefix) < std::make_tuple(b.ifindex, b.prefix);
  });
  return out;
}

std::vector<std::string> LinkNames(Netlink& netlink) {
  std::vector<std::string> names;
  for (const Link& link : ValueOrFail(netlink.ListLinks(), "ListLinks")) names.push_back(link.name);
  std::sort(names.begin(), names.end());
  return names;
}

// A veth `name` here, its peer "<name>p" in the harness's peer namespace; returns its index.
VethSpec Veth(Harness& harness, std::string_view name) {
  VethSpec spec;
  spec.name = std::string(name);
  spec.peer_name = absl::StrCat(ToAbsl(name), "p");
  spec.peer_netns = harness.PeerNetns();
  return spec;
}

int AddVeth(Harness& harness, std::string_view name, bool up) {
  Netlink& netlink = harness.netlink();
  REQUIRE_OK(netlink.CreateVeth(Veth(harness, name)));
  if (up) REQUIRE_OK(netlink.SetLinkUp(name, true));
  return IndexOf(netlink, name);
}

}  // namespace

namespace cases {

void VethWithPeerElsewhere(Harness& harness) {
  Netlink& netlink = harness.netlink();
  Link lo = GetLink(netlink, "lo");
  CHECK(lo.kind == LinkKind::kLoopback);
  CHECK(lo.index == 1);
  CHECK(lo.mtu == 65536);
  CHECK_FALSE(lo.mac.has_value());

  VethSpec spec = Veth(harness, "ct-host");
  spec.peer_name = "eth0";
  spec.mtu = 1440;
  spec.mac = Mac("ee:ee:ee:ee:ee:ee");
  spec.peer_mac = Mac("02:11:22:33:44:55");
  spec.index = 40;
  spec.peer_index = 41;
  REQUIRE_OK(netlink.CreateVeth(spec));

  Link host = GetLink(netlink, "ct-host");
  CHECK(host.index == 40);
  CHECK(host.kind == LinkKind::kVeth);
  CHECK(host.mtu == 1440);
  CHECK(host.mac == spec.mac);
  CHECK_FALSE(host.up);
  // The peer lives in the other namespace only.
  CHECK(LinkNames(netlink) == std::vector<std::string>{"ct-host", "lo"});
  CHECK(netlink.GetLink("eth0").status().code() == absl::StatusCode::kNotFound);
  for (const Link& link : OK_OR_FAIL(netlink.ListLinks())) {
    if (link.name == "ct-host") CHECK(link == host);  // the dump and the get agree
  }

  if (!harness.InspectsPeer()) return;
  std::unique_ptr<Netlink> peer_ns = harness.OpenPeer();
  REQUIRE(peer_ns != nullptr);
  Link peer = GetLink(*peer_ns, "eth0");
  CHECK(peer.index == 41);
  CHECK(peer.kind == LinkKind::kVeth);
  CHECK(peer.mtu == 1440);
  CHECK(peer.mac == spec.peer_mac);
  CHECK_FALSE(peer.up);
  CHECK(LinkNames(*peer_ns) == std::vector<std::string>{"eth0", "lo"});
}

void VethErrors(Harness& harness) {
  Netlink& netlink = harness.netlink();
  REQUIRE_OK(netlink.CreateVeth(Veth(harness, "ct1")));
  REQUIRE_ERRNO(netlink.CreateVeth(Veth(harness, "ct1")), kAlreadyExists, "EEXIST");

  // IFNAMSIZ - 1 = 15 bytes is the longest name.
  VethSpec longest = Veth(harness, "ct0123456789abc");
  longest.peer_name = "ct0123456789abd";
  REQUIRE_OK(netlink.CreateVeth(longest));
  REQUIRE_ERRNO(netlink.CreateVeth(Veth(harness, "ct0123456789abcd")), kInvalidArgument, "EINVAL");
  VethSpec long_peer = Veth(harness, "ct2");
  long_peer.peer_name = "ct0123456789abcde";
  REQUIRE_ERRNO(netlink.CreateVeth(long_peer), kInvalidArgument, "EINVAL");
  VethSpec empty = Veth(harness, "");
  REQUIRE_ERRNO(netlink.CreateVeth(empty), kInvalidArgument, "EINVAL");

  // RTM_NEWLINK with the index of an existing device names that device: NLM_F_EXCL says EEXIST.
  VethSpec taken = Veth(harness, "ct3");
  taken.index = IndexOf(netlink, "ct1");
  REQUIRE_ERRNO(netlink.CreateVeth(taken), kAlreadyExists, "EEXIST");

  if (harness.InspectsPeer()) {
    // The peer's name is taken over there: nothing is left half-made here.
    VethSpec clash = Veth(harness, "ct4");
    clash.peer_name = "ct1p";
    REQUIRE_ERRNO(netlink.CreateVeth(clash), kAlreadyExists, "EEXIST");
  }
  CHECK(LinkNames(netlink) == std::vector<std::string>{"ct0123456789abc", "ct1", "lo"});
}

void VethPairInOneNamespace(Harness& harness) {
  Netlink& netlink = harness.netlink();
  VethSpec spec;
  spec.name = "ct-a";
  spec.peer_name = "ct-b";
  spec.peer_mac = Mac("02:00:00:00:0b:0b");
  REQUIRE_OK(netlink.CreateVeth(spec));
  CHECK(GetLink(netlink, "ct-a").kind == LinkKind::kVeth);
  Link b = GetLink(netlink, "ct-b");
  CHECK(b.kind == LinkKind::kVeth);
  CHECK(b.mac == spec.peer_mac);
  CHECK(LinkNames(netlink) == std::vector<std::string>{"ct-a", "ct-b", "lo"});
  // A peer index that is taken: the device registration says EBUSY.
  VethSpec taken;
  taken.name = "ct-c";
  taken.peer_name = "ct-d";
  taken.index = 60;
  taken.peer_index = b.index;
  REQUIRE_ERRNO(netlink.CreateVeth(taken), kUnavailable, "EBUSY");
  CHECK(LinkNames(netlink) == std::vector<std::string>{"ct-a", "ct-b", "lo"});
  // veth honours the peer's index only when the first device's is given too.
  VethSpec peer_index_only;
  peer_index_only.name = "ct-e";
  peer_index_only.peer_name = "ct-f";
  peer_index_only.peer_index = 70;
  REQUIRE_OK(netlink.CreateVeth(peer_index_only));
  CHECK(GetLink(netlink, "ct-f").index != 70);
  REQUIRE_OK(netlink.DeleteLink("ct-e"));

  // Deleting either end deletes the pair.
  REQUIRE_OK(netlink.DeleteLink("ct-b"));
  CHECK(LinkNames(netlink) == std::vector<std::string>{"lo"});
  REQUIRE_OK(netlink.DeleteLink("ct-b"));  // already gone = success
  REQUIRE_OK(netlink.DeleteLink("ct-a"));
}

void LinkSettings(Harness& harness) {
  Netlink& netlink = harness.netlink();
  AddVeth(harness, "ct1", /*up=*/false);
  REQUIRE_OK(netlink.SetLinkUp("ct1", true));
  REQUIRE_OK(netlink.SetLinkMtu("ct1", 9000));
  REQUIRE_OK(netlink.SetLinkMac("ct1", Mac("ee:ee:ee:ee:ee:ee")));
  CHECK(GetLink(netlink, "ct1").group == 0);  // every link's default
  REQUIRE_OK(netlink.SetLinkGroup("ct1", 0x9abcdef0));
  Link link = GetLink(netlink, "ct1");
  CHECK(link.up);
  CHECK(link.mtu == 9000);
  CHECK(link.mac == Mac("ee:ee:ee:ee:ee:ee"));
  CHECK(link.group == 0x9abcdef0);
  REQUIRE_OK(netlink.SetLinkUp("ct1", true));  // idempotent
  REQUIRE_OK(netlink.SetLinkUp("ct1", false));
  CHECK_FALSE(GetLink(netlink, "ct1").up);

  REQUIRE_ERRNO(netlink.SetLinkMtu("ct1", 20), kInvalidArgument, "EINVAL");
  REQUIRE_ERRNO(netlink.SetLinkMtu("ct1", 70000), kInvalidArgument, "EINVAL");
  REQUIRE_ERRNO(netlink.SetLinkMac("ct1", Mac("01:00:5e:00:00:01")), kInternal, "EADDRNOTAVAIL");
  CHECK(GetLink(netlink, "ct1").mtu == 9000);

  REQUIRE_ERRNO(netlink.SetLinkUp("nope", true), kNotFound, "ENODEV");
  REQUIRE_ERRNO(netlink.SetLinkMtu("nope", 1400), kNotFound, "ENODEV");
  REQUIRE_ERRNO(netlink.SetLinkMac("nope", Mac("ee:ee:ee:ee:ee:ee")), kNotFound, "ENODEV");
  REQUIRE_ERRNO(netlink.SetLinkGroup("nope", 7), kNotFound, "ENODEV");
  REQUIRE_ERRNO(netlink.GetLink("nope").status(), kNotFound, "ENODEV");
  REQUIRE_ERRNO(netlink.GetLink("a-name-far-too-long").status(), kNotFound, "ENODEV");
  REQUIRE_OK(netlink.DeleteLink("nope"));
}

void AddressReplaceAndDelete(Harness& harness) {
  Netlink& netlink = harness.netlink();
  const int index = AddVeth(harness, "ct1", /*up=*/false);
  Address v4{.prefix = Cidr("10.65.0.3/32"), .ifindex = index, .nodad = false};
  Address v6{.prefix = Cidr("fd00::3/128"), .ifindex = index, .nodad = true};
  for (int i = 0; i < 2; ++i) {
    REQUIRE_OK(netlink.ReplaceAddress(v4));
    REQUIRE_OK(netlink.ReplaceAddress(v6));
  }
  CHECK(Addresses(netlink, index) == std::vector<Address>{v4, v6});
  CHECK(Addresses(netlink, 0) == std::vector<Address>{v4, v6});
  CHECK(Addresses(netlink, 999).empty());

  REQUIRE_ERRNO(netlink.ReplaceAddress({.prefix = v4.prefix, .ifindex = 999, .nodad = false}),
                kNotFound, "ENODEV");
  REQUIRE_ERRNO(netlink.ReplaceAddress({.prefix = v6.prefix, .ifindex = 999, .nodad = true}),
                kNotFound, "ENODEV");

  REQUIRE_OK(netlink.DeleteAddress(v4));
  CHECK(Addresses(netlink, index) == std::vector<Address>{v6});
  REQUIRE_OK(netlink.DeleteAddress(v4));  // already gone = success
  REQUIRE_OK(netlink.DeleteAddress(v6));
  REQUIRE_OK(netlink.DeleteAddress(v6));
  REQUIRE_OK(netlink.DeleteAddress({.prefix = v6.prefix, .ifindex = 999, .nodad = true}));
  CHECK(Addresses(netlink, 0).empty());
}

void AddressIdentity(Harness& harness) {
  Netlink& netlink = harness.netlink();
  const int index = AddVeth(harness, "ct1", /*up=*/false);
  // IPv4: an address is (address, prefix length); the same IP twice is two addresses.
  Address wide{.prefix = Cidr("10.65.1.1/24"), .ifindex = index, .nodad = false};
  Address narrow{.prefix = Cidr("10.65.1.1/32"), .ifindex = index, .nodad = false};
  REQUIRE_OK(netlink.ReplaceAddress(wide));
  REQUIRE_OK(netlink.ReplaceAddress(narrow));
  CHECK(Addresses(netlink, index) == std::vector<Address>{wide, narrow});
  REQUIRE_OK(netlink.DeleteAddress(narrow));
  CHECK(Addresses(netlink, index) == std::vector<Address>{wide});
  REQUIRE_OK(netlink.DeleteAddress(wide));

  // IPv6: one address per IP; a replace with another prefix length keeps the first one's, and
  // a delete must name that length (another one is "absent": success, nothing deleted).
  Address v6{.prefix = Cidr("fd00:1::1/64"), .ifindex = index, .nodad = true};
  Address v6_host{.prefix = Cidr("fd00:1::1/128"), .ifindex = index, .nodad = true};
  REQUIRE_OK(netlink.ReplaceAddress(v6));
  REQUIRE_OK(netlink.ReplaceAddress(v6_host));
  CHECK(Addresses(netlink, index) == std::vector<Address>{v6});
  REQUIRE_OK(netlink.DeleteAddress(v6_host));
  CHECK(Addresses(netlink, index) == std::vector<Address>{v6});
  REQUIRE_OK(netlink.DeleteAddress(v6));
  CHECK(Addresses(netlink, index).empty());
}

void RouteViaDevice(Harness& harness) {
  Netlink& netlink = harness.netlink();
  const int index = AddVeth(harness, "ct1", /*up=*/true);
  Route v4 = Route::Local("10.65.0.3/32", "ct1");
  Route v6 = Route::Local("fd00::3/128", "ct1");
  for (int i = 0; i < 2; ++i) {
    REQUIRE_OK(netlink.ReplaceRoute(v4));
    REQUIRE_OK(netlink.ReplaceRoute(v6));
  }
  // Named by index only: the read-back names it.
  Route by_index = Route::Local("10.65.0.4/32", "");
  by_index.hop.ifindex = index;
  REQUIRE_OK(netlink.ReplaceRoute(by_index));
  by_index.hop.ifname = "ct1";
  // IPv6 keeps no route scope: a device route reads back as link scope whatever was sent.
  Route v6_universe = Route::Local("fd00::4/128", "ct1");
  v6_universe.scope = RouteScope::kUniverse;
  REQUIRE_OK(netlink.ReplaceRoute(v6_universe));
  v6_universe.scope = RouteScope::kLink;
  CHECK(Listed(netlink) == Sorted({Stored(netlink, v4), Stored(netlink, by_index),
                                   Stored(netlink, v6), Stored(netlink, v6_universe)}));
  std::vector<Route> listed = Listed(netlink);
  REQUIRE(listed.size() == 4);
  CHECK(listed[0].hop.ifindex == index);
  CHECK(listed[0].hop.ifname == "ct1");

  // Another table, protocol and metric.
  Route other = Route::Local("10.65.0.5/32", "ct1");
  other.table = 100;
  other.protocol = kProtoStatic;
  other.priority = 50;
  REQUIRE_OK(netlink.ReplaceRoute(other));
  CHECK(Listed(netlink, {.table = 100}) == std::vector<Route>{Stored(netlink, other)});
}

void RouteViaGateway(Harness& harness) {
  Netlink& netlink = harness.netlink();
  AddVeth(harness, "ct1", /*up=*/true);
  Route fallback = Route::Via("0.0.0.0/0", "169.254.1.1", "ct1", /*onlink=*/true);
  REQUIRE_OK(netlink.ReplaceRoute(fallback));
  // Not on-link and nothing covers the gateway.
  REQUIRE_ERRNO(netlink.ReplaceRoute(Route::Via("10.0.0.0/8", "169.254.1.1", "ct1")), kInternal,
                "ENETUNREACH");
  // Covered by a link-scope route: no onlink needed.
  Route gateway = Route::Local("169.254.1.1/32", "ct1");
  Route covered = Route::Via("10.0.0.0/8", "169.254.1.1", "ct1");
  REQUIRE_OK(netlink.ReplaceRoute(gateway));
  REQUIRE_OK(netlink.ReplaceRoute(covered));
  // IPv6 link-local gateways are on-link by definition.
  Route v6 = Route::Via("::/0", "fe80::1", "ct1");
  REQUIRE_OK(netlink.ReplaceRoute(v6));
  Route v6_onlink = Route::Via("fd00:10::/64", "fd00:ff::1", "ct1", /*onlink=*/true);
  REQUIRE_OK(netlink.ReplaceRoute(v6_onlink));
  // No device at all (felixd's CrossSubnet routes): the kernel takes the one covering the
  // gateway, and reads the route back with it.
  Route gateway_only;
  gateway_only.dst = *net::ParsePrefix("10.1.0.0/16");
  gateway_only.hop.gateway = net::ParseIp("169.254.1.1");
  REQUIRE_OK(netlink.ReplaceRoute(gateway_only));
  CHECK(Listed(netlink) == Sorted({Stored(netlink, fallback), Stored(netlink, gateway),
                                   Stored(netlink, covered), Stored(netlink, v6),
                                   Stored(netlink, v6_onlink),
                                   Stored(netlink, Route::Via("10.1.0.0/16", "169.254.1.1", "ct1"))}));
}

void RejectRoutes(Harness& harness) {
  Netlink& netlink = harness.netlink();
  AddVeth(harness, "ct1", /*up=*/true);
  std::vector<Route> routes = {Blackhole("10.65.0.0/26"), Blackhole("fd00:1::/122")};
  Route unreachable4 = Blackhole("10.66.0.0/26");
  unreachable4.type = RouteType::kUnreachable;
  Route prohibit4 = Blackhole("10.67.0.0/26");
  prohibit4.type = RouteType::kProhibit;
  Route unreachable6 = Blackhole("fd00:2::/64");
  unreachable6.type = RouteType::kUnreachable;
  Route prohibit6 = Blackhole("fd00:3::/64");
  prohibit6.type = RouteType::kProhibit;
  routes.insert(routes.end(), {unreachable4, prohibit4, unreachable6, prohibit6});
  std::vector<Route> stored;
  for (const Route& route : routes) {
    REQUIRE_OK(netlink.ReplaceRoute(route));
    stored.push_back(Stored(netlink, route));
  }
  CHECK(Listed(netlink) == Sorted(stored));

  // Host bits set: "Invalid prefix for given prefix length" (IPv4; IPv6 would mask them
  // silently and store another key than the caller's, so our API refuses both).
  REQUIRE_ERRNO(netlink.ReplaceRoute(Blackhole("10.65.0.1/26")), kInvalidArgument, "EINVAL");
  REQUIRE_ERRNO(netlink.ReplaceRoute(Blackhole("fd00:1::1/122")), kInvalidArgument, "EINVAL");
  REQUIRE_ERRNO(netlink.DeleteRoute(Key("10.65.0.1/26"), kProtoBoot), kInvalidArgument, "EINVAL");
  REQUIRE_ERRNO(netlink.DeleteRoute(Key("fd00:1::1/122"), kProtoBoot), kInvalidArgument, "EINVAL");
  // A gateway of the other family.
  REQUIRE_ERRNO(netlink.ReplaceRoute(Route::Via("10.0.0.0/8", "fe80::1", "ct1", true)),
                kInvalidArgument, "EINVAL");
  // Blackholes have no device; unicast routes need one.
  Route with_device = Blackhole("10.68.0.0/26");
  with_device.hop.ifname = "ct1";
  REQUIRE_ERRNO(netlink.ReplaceRoute(with_device), kInvalidArgument, "EINVAL");
  Route no_device;
  no_device.dst = Cidr("10.69.0.0/16");
  REQUIRE_ERRNO(netlink.ReplaceRoute(no_device), kInvalidArgument, "EINVAL");
  no_device.hop.gateway = net::ParseIp("169.254.1.1");
  REQUIRE_ERRNO(netlink.ReplaceRoute(no_device), kInternal, "ENETUNREACH");
  CHECK(Listed(netlink) == Sorted(stored));
}

void Multipath(Harness& harness) {
  Netlink& netlink = harness.netlink();
  AddVeth(harness, "ct1", /*up=*/true);
  AddVeth(harness, "ct2", /*up=*/true);
  Route devices = MultipathRoute("10.70.0.0/24", {Hop("ct1", "", 1), Hop("ct2", "", 3)},
                            RouteScope::kLink);
  Route gateways = MultipathRoute("10.71.0.0/24", {Hop("ct1", "169.254.1.1", 2, /*onlink=*/true),
                                              Hop("ct2", "169.254.1.2", 1, /*onlink=*/true)});
  Route v6 = MultipathRoute("fd00:70::/64", {Hop("ct1", "fe80::1", 1), Hop("ct2", "fe80::2", 5)});
  for (int i = 0; i < 2; ++i) {
    REQUIRE_OK(netlink.ReplaceRoute(devices));
    REQUIRE_OK(netlink.ReplaceRoute(gateways));
    REQUIRE_OK(netlink.ReplaceRoute(v6));
  }
  CHECK(Listed(netlink) == Sorted({Stored(netlink, devices), Stored(netlink, gateways),
                                   Stored(netlink, v6)}));

  // Replacing with other hops replaces them all.
  Route fewer = MultipathRoute("10.70.0.0/24", {Hop("ct2", "", 1), Hop("ct1", "", 2)},
                          RouteScope::kLink);
  REQUIRE_OK(netlink.ReplaceRoute(fewer));
  CHECK(Listed(netlink) == Sorted({Stored(netlink, fewer), Stored(netlink, gateways),
                                   Stored(netlink, v6)}));

  // IPv6 multipath needs gateways ("Device only routes can not be added for IPv6 using the
  // multipath API"); weights are 1..256.
  REQUIRE_ERRNO(netlink.ReplaceRoute(MultipathRoute("fd00:71::/64", {Hop("ct1"), Hop("ct2")})),
                kInvalidArgument, "EINVAL");
  REQUIRE_ERRNO(netlink.ReplaceRoute(MultipathRoute("10.72.0.0/24", {Hop("ct1", "", 0), Hop("ct2")},
                                               RouteScope::kLink)),
                kInvalidArgument, "EINVAL");
  CHECK(Listed(netlink).size() == 3);
}

void ReplaceTakesOverAnotherProtocol(Harness& harness) {
  Netlink& netlink = harness.netlink();
  AddVeth(harness, "ct1", /*up=*/true);
  for (std::string_view dst : {"10.66.0.0/26", "fd00:66::/64"}) {
    REQUIRE_OK(netlink.ReplaceRoute(Blackhole(dst, kProtoBird)));
    Route ours = Route::Local(dst, "ct1");  // proto boot, same key
    REQUIRE_OK(netlink.ReplaceRoute(ours));
    CHECK(Listed(netlink, {.table = kMainTable, .family = ours.dst.addr.family}) ==
          std::vector<Route>{Stored(netlink, ours)});
  }
}

void DeleteHonoursProtocol(Harness& harness) {
  Netlink& netlink = harness.netlink();
  std::vector<Route> bird = {Blackhole("10.66.0.0/26", kProtoBird),
                             Blackhole("fd00:66::/64", kProtoBird)};
  for (const Route& route : bird) REQUIRE_OK(netlink.ReplaceRoute(route));
  const RouteFilter all{.table = kMainTable};
  for (const Route& route : bird) REQUIRE_OK(netlink.DeleteRoute(route.Key(), kProtoBoot));
  CHECK(Listed(netlink, all) == Sorted({Stored(netlink, bird[0]), Stored(netlink, bird[1])}));
  for (const Route& route : bird) REQUIRE_OK(netlink.DeleteRoute(route.Key(), kProtoBird));
  CHECK(Listed(netlink, all).empty());

  // Absent (also in a table that does not exist): success.
  for (const Route& route : bird) {
    REQUIRE_OK(netlink.DeleteRoute(route.Key(), kProtoBird));
    REQUIRE_OK(netlink.DeleteRoute(route.Key(), kProtoUnspec));
  }
  REQUIRE_OK(netlink.DeleteRoute(Key("10.66.0.0/26", 0, 1234), kProtoUnspec));
  REQUIRE_OK(netlink.DeleteRoute(Key("fd00:66::/64", 0, 1234), kProtoUnspec));

  // kProtoUnspec deletes whatever protocol holds the key.
  Route other = Blackhole("10.67.0.0/26", kProtoStatic);
  REQUIRE_OK(netlink.ReplaceRoute(other));
  REQUIRE_OK(netlink.DeleteRoute(other.Key(), kProtoUnspec));
  CHECK(Listed(netlink, all).empty());
}

void MissingDevice(Harness& harness) {
  Netlink& netlink = harness.netlink();
  REQUIRE_ERRNO(netlink.ReplaceRoute(Route::Local("10.65.0.3/32", "nope")), kNotFound, "ENODEV");
  REQUIRE_ERRNO(netlink.ReplaceRoute(Route::Local("fd00::3/128", "nope")), kNotFound, "ENODEV");
  REQUIRE_ERRNO(netlink.ReplaceRoute(Route::Via("0.0.0.0/0", "169.254.1.1", "nope", true)),
                kNotFound, "ENODEV");
  Route by_index = Route::Local("10.65.0.3/32", "");
  by_index.hop.ifindex = 999;
  REQUIRE_ERRNO(netlink.ReplaceRoute(by_index), kNotFound, "ENODEV");
  AddVeth(harness, "ct1", /*up=*/true);
  REQUIRE_ERRNO(netlink.ReplaceRoute(MultipathRoute("10.70.0.0/24", {Hop("ct1"), Hop("nope")},
                                               RouteScope::kLink)),
                kNotFound, "ENODEV");
  CHECK(Listed(netlink, {.table = 0}).empty());
}

void DownDevice(Harness& harness) {
  Netlink& netlink = harness.netlink();
  AddVeth(harness, "ct1", /*up=*/false);
  // "Nexthop device is not up", for both families.
  Route v4 = Route::Local("10.65.0.3/32", "ct1");
  Route v6 = Route::Local("fd00::3/128", "ct1");
  Route onlink = Route::Via("0.0.0.0/0", "169.254.1.1", "ct1", /*onlink=*/true);
  REQUIRE_ERRNO(netlink.ReplaceRoute(v4), kInternal, "ENETDOWN");
  REQUIRE_ERRNO(netlink.ReplaceRoute(v6), kInternal, "ENETDOWN");
  REQUIRE_ERRNO(netlink.ReplaceRoute(onlink), kInternal, "ENETDOWN");
  CHECK(Listed(netlink, {.table = 0}).empty());

  REQUIRE_OK(netlink.SetLinkUp("ct1", true));
  for (const Route& route : {v4, v6, onlink}) REQUIRE_OK(netlink.ReplaceRoute(route));
  CHECK(Listed(netlink).size() == 3);
  // Going down flushes the routes through the device, in both families.
  REQUIRE_OK(netlink.SetLinkUp("ct1", false));
  CHECK(Listed(netlink) == std::vector<Route>{});
}

void Ipv6Metric(Harness& harness) {
  Netlink& netlink = harness.netlink();
  Route plain = Blackhole("fd00:1::/122");
  Route metric100 = Blackhole("fd00:1::/122", kProtoBoot, kMainTable, 100);
  REQUIRE_OK(netlink.ReplaceRoute(plain));
  REQUIRE_OK(netlink.ReplaceRoute(metric100));
  std::vector<Route> listed = Listed(netlink);
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].priority == 100);
  CHECK(listed[1].priority == kIpv6DefaultMetric);
  CHECK(listed[1].Key() == plain.Key());
  CHECK(listed[1] == Stored(netlink, plain));

  // A key written with metric 0 means 1024, in a delete too; the metric-100 route stays.
  REQUIRE_OK(netlink.DeleteRoute(Key("fd00:1::/122", 0), kProtoBoot));
  CHECK(Listed(netlink) == std::vector<Route>{Stored(netlink, metric100)});
  REQUIRE_OK(netlink.DeleteRoute(metric100.Key(), kProtoBoot));
  CHECK(Listed(netlink).empty());

  // IPv4 keeps metric 0 as 0, and metrics make distinct routes there too.
  Route v4 = Blackhole("10.65.0.0/26");
  Route v4_100 = Blackhole("10.65.0.0/26", kProtoBoot, kMainTable, 100);
  REQUIRE_OK(netlink.ReplaceRoute(v4));
  REQUIRE_OK(netlink.ReplaceRoute(v4_100));
  CHECK(Listed(netlink) == std::vector<Route>{Stored(netlink, v4), Stored(netlink, v4_100)});
}

void Ipv4DeleteWithoutMetric(Harness& harness) {
  Netlink& netlink = harness.netlink();
  // The kernel reads IPv4 metric 0 in RTM_DELROUTE as "any": the lowest-metric route of the
  // protocol at (table, dst) goes. A driver deleting key metric 0 must know this.
  Route bird50 = Blackhole("10.65.0.0/26", kProtoBird, kMainTable, 50);
  Route boot100 = Blackhole("10.65.0.0/26", kProtoBoot, kMainTable, 100);
  REQUIRE_OK(netlink.ReplaceRoute(bird50));
  REQUIRE_OK(netlink.ReplaceRoute(boot100));
  const RouteFilter all{.table = kMainTable};
  REQUIRE_OK(netlink.DeleteRoute(Key("10.65.0.0/26", 0), kProtoBoot));
  CHECK(Listed(netlink, all) == std::vector<Route>{Stored(netlink, bird50)});
  Route plain = Blackhole("10.65.0.0/26", kProtoBird);
  REQUIRE_OK(netlink.ReplaceRoute(plain));
  REQUIRE_OK(netlink.DeleteRoute(Key("10.65.0.0/26", 0), kProtoBird));  // metric 0 first
  CHECK(Listed(netlink, all) == std::vector<Route>{Stored(netlink, bird50)});
  REQUIRE_OK(netlink.DeleteRoute(Key("10.65.0.0/26", 0), kProtoUnspec));
  CHECK(Listed(netlink, all).empty());
}

void ListRoutesFilters(Harness& harness) {
  Netlink& netlink = harness.netlink();
  std::vector<Route> routes = {
      Blackhole("10.80.0.0/24", kProtoBoot),         Blackhole("10.81.0.0/24", kProtoBird),
      Blackhole("fd00:80::/64", kProtoBoot),         Blackhole("10.82.0.0/24", kProtoBoot, 100),
      Blackhole("fd00:82::/64", kProtoStatic, 100),  Blackhole("10.83.0.0/24", kProtoBird, 1000),
      Blackhole("fd00:83::/64", kProtoBird, 1000),
  };
  std::vector<Route> stored;
  for (const Route& route : routes) {
    REQUIRE_OK(netlink.ReplaceRoute(route));
    stored.push_back(Stored(netlink, route));
  }
  const std::vector<RouteFilter> filters = {
      {.table = kMainTable},
      {.table = kMainTable, .protocol = kProtoBoot},
      {.table = kMainTable, .protocol = kProtoBoot, .family = 4},
      {.table = kMainTable, .family = 6},
      {.table = 100},
      {.table = 100, .protocol = kProtoStatic},
      {.table = 1000},
      {.table = 1000, .family = 6},
      {.table = 0},
      {.table = 0, .protocol = kProtoBird},
      {.table = 0, .family = 6},
      {.table = 200},
      {.table = kMainTable, .protocol = kProtoStatic},
  };
  for (const RouteFilter& filter : filters) {
    std::vector<Route> expected;
    for (const Route& route : stored) {
      if ((filter.table == 0 || route.table == filter.table) &&
          (filter.protocol == kProtoUnspec || route.protocol == filter.protocol) &&
          (filter.family == 0 || route.dst.addr.family == filter.family)) {
        expected.push_back(route);
      }
    }
    INFO("filter table " << filter.table << " proto " << int{filter.protocol} << " family "
                         << filter.family);
    CHECK(Listed(netlink, filter) == Sorted(expected));
  }
}

void DeleteLinkRemovesItsState(Harness& harness) {
  Netlink& netlink = harness.netlink();
  const int index = AddVeth(harness, "ct1", /*up=*/true);
  AddVeth(harness, "ct2", /*up=*/true);
  REQUIRE_OK(netlink.ReplaceAddress({.prefix = Cidr("10.65.0.1/32"), .ifindex = index}));
  REQUIRE_OK(
      netlink.ReplaceAddress({.prefix = Cidr("fd00::1/128"), .ifindex = index, .nodad = true}));
  Route survivor = Route::Local("10.65.0.9/32", "ct2");
  for (const Route& route :
       {Route::Local("10.65.0.3/32", "ct1"), Route::Local("fd00::3/128", "ct1"),
        Route::Via("0.0.0.0/0", "169.254.1.1", "ct1", true),
        MultipathRoute("10.70.0.0/24", {Hop("ct1"), Hop("ct2")}, RouteScope::kLink), survivor}) {
    REQUIRE_OK(netlink.ReplaceRoute(route));
  }
  REQUIRE(Listed(netlink).size() == 5);
  REQUIRE_OK(netlink.WriteSysctl("net/ipv4/conf/ct1/proxy_arp", "1"));

  REQUIRE_OK(netlink.DeleteLink("ct1"));
  CHECK(Listed(netlink) == std::vector<Route>{Stored(netlink, survivor)});
  CHECK(Addresses(netlink, index).empty());
  REQUIRE_ERRNO(netlink.ReadSysctl("net/ipv4/conf/ct1/proxy_arp").status(), kNotFound, "ENOENT");
  CHECK(LinkNames(netlink) == std::vector<std::string>{"ct2", "lo"});
  if (harness.InspectsPeer()) {
    std::unique_ptr<Netlink> peer_ns = harness.OpenPeer();
    REQUIRE(peer_ns != nullptr);
    CHECK(LinkNames(*peer_ns) == std::vector<std::string>{"ct2p", "lo"});
  }
}

void Sysctls(Harness& harness) {
  Netlink& netlink = harness.netlink();
  AddVeth(harness, "ct1", /*up=*/false);
  for (const auto& [path, value] : std::vector<std::pair<std::string, std::string>>{
           {"net/ipv4/conf/ct1/proxy_arp", "1"},
           {"net/ipv4/neigh/ct1/proxy_delay", "0"},
           {"net/ipv4/conf/ct1/forwarding", "1"},
           {"net/ipv4/conf/ct1/route_localnet", "1"},
           {"net/ipv6/conf/ct1/accept_ra", "0"},
           {"net/ipv6/conf/ct1/accept_dad", "0"},
           {"net/ipv6/conf/ct1/proxy_ndp", "1"},
           {"net/ipv6/conf/ct1/forwarding", "1"},
       }) {
    INFO(path);
    std::string before = OK_OR_FAIL(netlink.ReadSysctl(path));
    CHECK_FALSE(before.empty());
    REQUIRE_OK(netlink.WriteSysctl(path, value));
    CHECK(OK_OR_FAIL(netlink.ReadSysctl(path)) == value);
  }
  CHECK_FALSE(OK_OR_FAIL(netlink.ReadSysctl("net/ipv4/ip_forward")).empty());
  REQUIRE_ERRNO(netlink.ReadSysctl("net/ipv4/conf/nope/proxy_arp").status(), kNotFound, "ENOENT");
  REQUIRE_ERRNO(netlink.WriteSysctl("net/ipv4/conf/nope/proxy_arp", "1"), kNotFound, "ENOENT");
}

void BatchedRoutes(Harness& harness) {
  Netlink& netlink = harness.netlink();
  AddVeth(harness, "ct1", /*up=*/true);
  Route bird = Blackhole("10.66.0.0/26", kProtoBird);
  REQUIRE_OK(netlink.ReplaceRoute(bird));
  const std::vector<Route> batch = {
      Route::Local("10.65.0.3/32", "ct1"),
      Blackhole("10.65.0.1/26"),                       // host bits: refused before asking
      Route::Via("10.0.0.0/8", "169.254.1.1", "ct1"),  // gateway not covered: the kernel says no
      Route::Local("10.65.0.4/32", "nope"),
      Route::Via("0.0.0.0/0", "169.254.1.1", "ct1", /*onlink=*/true),
      MultipathRoute("10.71.0.0/24", {Hop("ct1", "169.254.1.1", 2, /*onlink=*/true),
                                      Hop("ct1", "169.254.1.2", 1, /*onlink=*/true)}),
      Route::Local("fd00::3/128", "ct1"),
      Blackhole("10.66.0.0/26"),  // takes the key over from proto bird, as ReplaceRoute does
  };
  std::vector<absl::Status> results = netlink.ReplaceRoutes(batch);
  REQUIRE(results.size() == batch.size());
  REQUIRE_OK(results[0]);
  REQUIRE_ERRNO(results[1], kInvalidArgument, "EINVAL");
  REQUIRE_ERRNO(results[2], kInternal, "ENETUNREACH");
  REQUIRE_ERRNO(results[3], kNotFound, "ENODEV");
  for (size_t i : {4, 5, 6, 7}) REQUIRE_OK(results[i]);
  std::vector<Route> stored;
  for (size_t i : {0, 4, 5, 6, 7}) stored.push_back(Stored(netlink, batch[i]));
  CHECK(Listed(netlink) == Sorted(stored));
  CHECK(netlink.ReplaceRoutes({}).empty());

  // Deletes: absent keys and another protocol's routes count as done, as in DeleteRoute.
  Route other = Blackhole("10.67.0.0/26", kProtoStatic);
  REQUIRE_OK(netlink.ReplaceRoute(other));
  const std::vector<RouteKey> keys = {batch[0].Key(), Key("10.65.0.1/26"), Key("10.99.0.0/16"),
                                      other.Key(), batch[6].Key(), batch[5].Key()};
  results = netlink.DeleteRoutes(keys, kProtoBoot);
  REQUIRE(results.size() == keys.size());
  REQUIRE_OK(results[0]);
  REQUIRE_ERRNO(results[1], kInvalidArgument, "EINVAL");
  for (size_t i : {2, 3, 4, 5}) REQUIRE_OK(results[i]);
  CHECK(Listed(netlink) == Sorted({Stored(netlink, batch[4]), Stored(netlink, batch[7])}));
  CHECK(Listed(netlink, {.table = kMainTable, .protocol = kProtoStatic}) ==
        std::vector<Route>{Stored(netlink, other)});
}

void BatchedRoutesAtScale(Harness& harness) {
  Netlink& netlink = harness.netlink();
  AddVeth(harness, "ct1", /*up=*/true);
  const int ifindex = IndexOf(netlink, "ct1");
  // 3000 host routes span several sendmsg buffers; two fail, in different ones.
  std::vector<Route> routes;
  for (int i = 0; i < 3000; ++i) {
    Route r = Route::Local(absl::StrCat("10.80.", i / 250, ".", i % 250 + 1, "/32"), "");
    r.hop.ifindex = ifindex;  // by index, as a BGP FIB sends them
    routes.push_back(r);
  }
  routes[700] = Route::Via("10.90.0.0/16", "169.254.9.9", "ct1");
  routes[2500] = Route::Local("10.91.0.1/32", "nope");
  std::vector<absl::Status> results = netlink.ReplaceRoutes(routes);
  REQUIRE(results.size() == routes.size());
  for (size_t i = 0; i < routes.size(); ++i) {
    if (i == 700) {
      REQUIRE_ERRNO(results[i], kInternal, "ENETUNREACH");
    } else if (i == 2500) {
      REQUIRE_ERRNO(results[i], kNotFound, "ENODEV");
    } else if (!results[i].ok()) {
      FAIL("route " << i << ": " << results[i].ToString());
    }
  }
  CHECK(Listed(netlink).size() == 2998);

  // A batch where every route fails: each failure is answered, none is lost.
  std::vector<Route> unreachable;
  for (int i = 0; i < 1500; ++i) {
    unreachable.push_back(Route::Via(absl::StrCat("10.", 100 + i / 250, ".", i % 250, ".0/24"),
                                     "169.254.9.9", "ct1"));
  }
  results = netlink.ReplaceRoutes(unreachable);
  for (const absl::Status& s : results) REQUIRE_ERRNO(s, kInternal, "ENETUNREACH");

  std::vector<RouteKey> keys;
  for (const Route& r : routes) keys.push_back(r.Key());
  results = netlink.DeleteRoutes(keys, kProtoBoot);
  for (const absl::Status& s : results) REQUIRE_OK(s);
  CHECK(Listed(netlink).empty());
}

// A kernel with the ipip module makes the device; one without it (this machine's) refuses with
// FailedPrecondition naming the module — never a bare errno an operator has to decode.
void IpipTunnel(Harness& harness) {
  Netlink& nl = harness.netlink();
  absl::Status s = nl.CreateIpipTunnel("cct-ipip0");
  if (s.ok()) {
    absl::StatusOr<Link> link = nl.GetLink("cct-ipip0");
    REQUIRE(link.ok());
    CHECK(link->kind == LinkKind::kIpip);
    CHECK(absl::IsAlreadyExists(nl.CreateIpipTunnel("cct-ipip0")));
  } else {
    INFO(s.ToString());
    CHECK(absl::IsFailedPrecondition(s));
    CHECK(std::string(s.message()).find("no ipip module") != std::string::npos);
    CHECK(absl::IsNotFound(nl.GetLink("cct-ipip0").status()));
  }
  CHECK(absl::IsInvalidArgument(nl.CreateIpipTunnel("a-name-longer-than-15")));
}

namespace {

net::IpAddress Ip(std::string_view text) {
  std::optional<net::IpAddress> ip = net::ParseIp(text);
  REQUIRE(ip.has_value());
  return *ip;
}

// Felix's vxlan.calico.
VxlanSpec CalicoVxlan() {
  VxlanSpec spec;
  spec.name = "vxlan.calico";
  spec.vni = 4096;
  spec.mtu = 1410;
  spec.mac = Mac("66:aa:bb:cc:dd:01");
  return spec;
}

// The permanent entries of `ifindex`: those we put there, not the NOARP multicast ones the
// kernel adds on an up device. Sorted by IP.
std::vector<Neighbor> PermanentNeighbors(Netlink& netlink, int ifindex) {
  std::vector<Neighbor> out;
  for (const Neighbor& n : ValueOrFail(netlink.ListNeighbors(ifindex), "ListNeighbors")) {
    if (n.permanent) out.push_back(n);
  }
  std::sort(out.begin(), out.end(), [](const Neighbor& a, const Neighbor& b) { return a.ip < b.ip; });
  return out;
}

std::vector<FdbEntry> FdbOf(Netlink& netlink, int ifindex) {
  std::vector<FdbEntry> out = ValueOrFail(netlink.ListFdb(ifindex), "ListFdb");
  std::sort(out.begin(), out.end(), [](const FdbEntry& a, const FdbEntry& b) {
    return std::tie(a.ifindex, a.mac, a.dst) < std::tie(b.ifindex, b.mac, b.dst);
  });
  return out;
}

}  // namespace

void VxlanDevice(Harness& harness) {
  Netlink& netlink = harness.netlink();
  const VxlanSpec spec = CalicoVxlan();
  REQUIRE_OK(netlink.CreateVxlan(spec));
  Link link = GetLink(netlink, "vxlan.calico");
  CHECK(link.kind == LinkKind::kVxlan);
  CHECK(link.mtu == 1410);
  CHECK(link.mac == spec.mac);
  CHECK_FALSE(link.up);
  REQUIRE(link.vxlan.has_value());
  CHECK(*link.vxlan == VxlanInfo{.vni = 4096, .port = 4789, .local = std::nullopt,
                                 .parent_index = 0, .learning = false});
  // ListLinks reads back the same.
  std::vector<Link> links = ValueOrFail(netlink.ListLinks(), "ListLinks");
  auto listed = std::find_if(links.begin(), links.end(),
                             [](const Link& l) { return l.name == "vxlan.calico"; });
  REQUIRE(listed != links.end());
  CHECK(listed->vxlan == link.vxlan);
  CHECK_FALSE(GetLink(netlink, "lo").vxlan.has_value());
  // Without remote or group the kernel makes no default (all-zero) FDB entry.
  CHECK(FdbOf(netlink, link.index).empty());

  REQUIRE_ERRNO(netlink.CreateVxlan(spec), kAlreadyExists, "EEXIST");
  // One device per VNI and port, whatever its name.
  VxlanSpec same_vni = spec;
  same_vni.name = "vx-other";
  REQUIRE_ERRNO(netlink.CreateVxlan(same_vni), kAlreadyExists, "EEXIST");
  VxlanSpec bad = spec;
  bad.name = "a-name-longer-than-15";
  REQUIRE_ERRNO(netlink.CreateVxlan(bad), kInvalidArgument, "EINVAL");
  bad = spec;
  bad.name = "vx-bad";
  bad.vni = 1u << 24;
  REQUIRE_ERRNO(netlink.CreateVxlan(bad), kInternal, "ERANGE");
  bad.vni = 7;
  bad.parent = "nope";
  REQUIRE_ERRNO(netlink.CreateVxlan(bad), kNotFound, "ENODEV");
  CHECK(LinkNames(netlink) == std::vector<std::string>{"lo", "vxlan.calico"});

  // On an underlay device, with a local address and learning: the MTU defaults to the
  // parent's less the outer headers (50 for IPv4).
  const int parent = AddVeth(harness, "ct1", /*up=*/true);
  VxlanSpec underlay;
  underlay.name = "vx2";
  underlay.vni = 4097;
  underlay.port = 8472;
  underlay.local = Ip("10.0.0.1");
  underlay.parent = "ct1";
  underlay.learning = true;
  REQUIRE_OK(netlink.CreateVxlan(underlay));
  Link vx2 = GetLink(netlink, "vx2");
  CHECK(vx2.mtu == 1450);
  REQUIRE(vx2.vxlan.has_value());
  CHECK(*vx2.vxlan == VxlanInfo{.vni = 4097, .port = 8472, .local = Ip("10.0.0.1"),
                                .parent_index = parent, .learning = true});

  REQUIRE_OK(netlink.DeleteLink("vxlan.calico"));
  REQUIRE_OK(netlink.DeleteLink("vx2"));
  // Its VNI is free again.
  REQUIRE_OK(netlink.CreateVxlan(same_vni));
}

void Neighbors(Harness& harness) {
  Netlink& netlink = harness.netlink();
  REQUIRE_OK(netlink.CreateVxlan(CalicoVxlan()));
  const int index = IndexOf(netlink, "vxlan.calico");
  // A device that is still down takes entries.
  Neighbor v4{.ifname = "vxlan.calico", .ip = Ip("10.65.1.0"), .mac = Mac("66:00:00:00:00:01")};
  Neighbor v6{.ifindex = index, .ifname = "", .ip = Ip("fd00:65::1"), .mac = Mac("66:00:00:00:00:02")};
  REQUIRE_OK(netlink.ReplaceNeighbor(v4));
  REQUIRE_OK(netlink.ReplaceNeighbor(v6));
  REQUIRE_OK(netlink.ReplaceNeighbor(v4));  // idempotent
  Neighbor v4_stored = v4;
  v4_stored.ifindex = index;
  Neighbor v6_stored = v6;
  v6_stored.ifname = "vxlan.calico";
  CHECK(PermanentNeighbors(netlink, index) == std::vector<Neighbor>{v4_stored, v6_stored});
  CHECK(PermanentNeighbors(netlink, 0) == std::vector<Neighbor>{v4_stored, v6_stored});

  // Up: still there (the kernel adds NOARP multicast entries of its own, not permanent).
  REQUIRE_OK(netlink.SetLinkUp("vxlan.calico", true));
  // A new MAC for the IP replaces the old one.
  v4.mac = v4_stored.mac = Mac("66:00:00:00:00:03");
  REQUIRE_OK(netlink.ReplaceNeighbor(v4));
  CHECK(PermanentNeighbors(netlink, index) == std::vector<Neighbor>{v4_stored, v6_stored});

  // Delete matches (device, IP), not the MAC.
  Neighbor other_mac = v4;
  other_mac.mac = Mac("66:00:00:00:00:09");
  REQUIRE_OK(netlink.DeleteNeighbor(other_mac));
  CHECK(PermanentNeighbors(netlink, index) == std::vector<Neighbor>{v6_stored});
  REQUIRE_OK(netlink.DeleteNeighbor(v4));  // already gone = success

  // Down flushes every neighbour of the device, permanent ones too.
  REQUIRE_OK(netlink.ReplaceNeighbor(v4));
  REQUIRE_OK(netlink.SetLinkUp("vxlan.calico", false));
  CHECK(ValueOrFail(netlink.ListNeighbors(index), "ListNeighbors").empty());

  // Missing devices.
  Neighbor missing = v4;
  missing.ifname = "nope";
  REQUIRE_ERRNO(netlink.ReplaceNeighbor(missing), kNotFound, "ENODEV");
  missing.ifname.clear();
  missing.ifindex = 999;
  REQUIRE_ERRNO(netlink.ReplaceNeighbor(missing), kNotFound, "ENODEV");
  REQUIRE_OK(netlink.DeleteNeighbor(missing));
  CHECK(ValueOrFail(netlink.ListNeighbors(999), "ListNeighbors 999").empty());

  // Deleting the device takes its entries.
  REQUIRE_OK(netlink.ReplaceNeighbor(v4));
  REQUIRE_OK(netlink.DeleteLink("vxlan.calico"));
  CHECK(PermanentNeighbors(netlink, 0).empty());
}

void Fdb(Harness& harness) {
  Netlink& netlink = harness.netlink();
  REQUIRE_OK(netlink.CreateVxlan(CalicoVxlan()));
  const int index = IndexOf(netlink, "vxlan.calico");
  FdbEntry entry{.ifname = "vxlan.calico", .mac = Mac("66:00:00:00:00:01"), .dst = Ip("192.168.0.2")};
  FdbEntry stored = entry;
  stored.ifindex = index;
  REQUIRE_OK(netlink.AppendFdb(entry));
  CHECK(FdbOf(netlink, index) == std::vector<FdbEntry>{stored});
  REQUIRE_OK(netlink.AppendFdb(entry));  // the same entry: no duplicate
  CHECK(FdbOf(netlink, index) == std::vector<FdbEntry>{stored});
  CHECK(FdbOf(netlink, 0) == std::vector<FdbEntry>{stored});

  // A unicast MAC keeps its dst on append (no error), and moves only with replace.
  FdbEntry moved = entry;
  moved.dst = Ip("192.168.0.3");
  REQUIRE_OK(netlink.AppendFdb(moved));
  CHECK(FdbOf(netlink, index) == std::vector<FdbEntry>{stored});
  REQUIRE_OK(netlink.ReplaceFdb(moved));
  stored.dst = moved.dst;
  CHECK(FdbOf(netlink, index) == std::vector<FdbEntry>{stored});
  REQUIRE_OK(netlink.ReplaceFdb(moved));  // idempotent

  // Entries survive the device going up and down.
  REQUIRE_OK(netlink.SetLinkUp("vxlan.calico", true));
  REQUIRE_OK(netlink.SetLinkUp("vxlan.calico", false));
  CHECK(FdbOf(netlink, index) == std::vector<FdbEntry>{stored});

  // Delete names (mac, dst): a dst the entry lacks deletes nothing and is no error.
  REQUIRE_OK(netlink.DeleteFdb(entry));
  CHECK(FdbOf(netlink, index) == std::vector<FdbEntry>{stored});
  REQUIRE_OK(netlink.DeleteFdb(moved));
  CHECK(FdbOf(netlink, index).empty());
  REQUIRE_OK(netlink.DeleteFdb(moved));  // already gone = success

  // The all-zero MAC (flooding) takes several dsts; it cannot be replaced.
  FdbEntry flood1{.ifindex = index, .ifname = "", .mac = MacAddress{}, .dst = Ip("192.168.0.9")};
  FdbEntry flood2{.ifindex = index, .ifname = "", .mac = MacAddress{}, .dst = Ip("192.168.0.10")};
  REQUIRE_OK(netlink.AppendFdb(flood1));
  REQUIRE_OK(netlink.AppendFdb(flood2));
  REQUIRE_OK(netlink.AppendFdb(flood2));
  flood1.ifname = flood2.ifname = "vxlan.calico";
  CHECK(FdbOf(netlink, index) == std::vector<FdbEntry>{flood1, flood2});
  REQUIRE_ERRNO(netlink.ReplaceFdb(flood1), kInternal, "EOPNOTSUPP");
  REQUIRE_OK(netlink.DeleteFdb(flood1));
  CHECK(FdbOf(netlink, index) == std::vector<FdbEntry>{flood2});

  // Errors.
  FdbEntry v6 = entry;
  v6.dst = Ip("fd00::9");
  REQUIRE_ERRNO(netlink.AppendFdb(v6), kInternal, "EAFNOSUPPORT");
  FdbEntry no_dst = entry;
  no_dst.dst.reset();
  REQUIRE_ERRNO(netlink.AppendFdb(no_dst), kInvalidArgument, "EINVAL");
  FdbEntry missing = entry;
  missing.ifname = "nope";
  REQUIRE_ERRNO(netlink.AppendFdb(missing), kNotFound, "ENODEV");
  REQUIRE_ERRNO(netlink.ReplaceFdb(missing), kNotFound, "ENODEV");
  REQUIRE_OK(netlink.DeleteFdb(missing));
  missing.ifname.clear();
  missing.ifindex = 999;
  REQUIRE_ERRNO(netlink.AppendFdb(missing), kNotFound, "ENODEV");
  REQUIRE_OK(netlink.DeleteFdb(missing));
  CHECK(ValueOrFail(netlink.ListFdb(999), "ListFdb 999").empty());

  // Deleting the device takes its entries.
  REQUIRE_OK(netlink.DeleteLink("vxlan.calico"));
  CHECK(ValueOrFail(netlink.ListFdb(index), "ListFdb").empty());
}

}  // namespace cases
}  // namespace calico::kernel::testing
