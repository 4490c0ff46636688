#include "felixd/dataplane/vxlan_manager.h"

#include <catch2/catch.hpp>

#include <algorithm>

#include "common/kernel/fake_netlink.h"

namespace calico::felixd {
namespace {

using kernel::NetlinkOp;

net::Prefix P(std::string_view text) { return *net::ParseCidrOrIp(text); }
net::IpAddress Ip(std::string_view text) { return *net::ParseIp(text); }
kernel::MacAddress Mac(std::string_view text) { return *kernel::ParseMac(text); }

VxlanNode NodeAt(std::string_view address, std::string_view tunnel, std::string_view mac = "") {
  VxlanNode n;
  n.address = P(address);
  if (!tunnel.empty()) n.tunnel_ip = Ip(tunnel);
  if (!mac.empty()) n.mac = Mac(mac);
  return n;
}

// Three nodes on 10.99.0.0/24 (node3 on 10.99.1.0/24 when `split`), one block each.
VxlanInputs Cluster(EncapMode mode, bool split = false) {
  VxlanInputs in;
  in.node = "node1";
  in.pools = {{.cidr = P("10.244.0.0/16"), .vxlan = mode}};
  in.nodes["node1"] = NodeAt("10.99.0.1/24", "10.244.1.0");
  in.nodes["node2"] = NodeAt("10.99.0.2/24", "10.244.2.0", "66:00:00:00:00:02");
  in.nodes["node3"] = NodeAt(split ? "10.99.1.3/24" : "10.99.0.3/24", "10.244.3.0", "66:00:00:00:00:03");
  in.blocks = {{P("10.244.1.0/26"), "node1"}, {P("10.244.2.0/26"), "node2"}, {P("10.244.3.0/26"), "node3"}};
  return in;
}

std::vector<std::string> Texts(const std::vector<kernel::Route>& routes) {
  std::vector<std::string> out;
  for (const kernel::Route& r : routes) {
    std::string t = net::FormatCidr(r.dst) + " via " + net::FormatIp(*r.hop.gateway);
    if (!r.hop.ifname.empty()) t += " dev " + r.hop.ifname;
    if (r.hop.onlink) t += " onlink";
    out.push_back(t);
  }
  return out;
}

TEST_CASE("no pool with VXLAN: nothing wanted, no routes") {
  VxlanInputs in = Cluster(EncapMode::kNever);
  VxlanPlan plan = PlanVxlan(in);
  CHECK_FALSE(plan.wanted);
  CHECK_FALSE(plan.local);
  CHECK(plan.routes.empty());
  // A disabled VXLAN pool and an IPv6 one do not count either.
  in.pools = {{.cidr = P("10.244.0.0/16"), .vxlan = EncapMode::kAlways, .disabled = true},
              {.cidr = P("fd00::/48"), .vxlan = EncapMode::kAlways}};
  CHECK_FALSE(PlanVxlan(in).wanted);
}

TEST_CASE("VXLAN Always: a VTEP per remote node and a route per remote block through the tunnel") {
  VxlanPlan plan = PlanVxlan(Cluster(EncapMode::kAlways));
  REQUIRE(plan.wanted);
  REQUIRE(plan.local);
  CHECK(plan.local->node_ip == Ip("10.99.0.1"));
  CHECK(plan.local->tunnel_ip == Ip("10.244.1.0"));
  CHECK(plan.local->mac == VtepMacFor("node1"));  // no MAC in the Node yet: felixd's own
  REQUIRE(plan.remotes.size() == 2);
  CHECK(plan.remotes[0] == Vtep{"node2", Ip("10.99.0.2"), Ip("10.244.2.0"), Mac("66:00:00:00:00:02")});
  CHECK(plan.remotes[1].node == "node3");
  CHECK(Texts(plan.routes) == std::vector<std::string>{
                                  "10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink",
                                  "10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink"});
  CHECK(plan.waiting.empty());
}

TEST_CASE("VXLAN CrossSubnet: plain routes on the subnet, the tunnel across it") {
  VxlanPlan plan = PlanVxlan(Cluster(EncapMode::kCrossSubnet, /*split=*/true));
  CHECK(Texts(plan.routes) == std::vector<std::string>{
                                  "10.244.2.0/26 via 10.99.0.2",
                                  "10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink"});
}

TEST_CASE("a remote node without a tunnel address or MAC waits, and gets no route") {
  VxlanInputs in = Cluster(EncapMode::kAlways);
  in.nodes["node2"].tunnel_ip.reset();
  in.nodes["node3"].mac.reset();
  VxlanPlan plan = PlanVxlan(in);
  CHECK(plan.remotes.empty());
  CHECK(plan.routes.empty());
  REQUIRE(plan.waiting.size() == 2);
  CHECK(plan.waiting[0] == "Node node2 has no ipv4VXLANTunnelAddr yet (its ipamd assigns one)");
  CHECK(plan.waiting[1] == "Node node3 has no vxlanTunnelMACAddr yet (its felixd writes one)");
  // This node without its own tunnel address: no device and no route at all.
  in = Cluster(EncapMode::kAlways);
  in.nodes["node1"].tunnel_ip.reset();
  plan = PlanVxlan(in);
  CHECK(plan.wanted);
  CHECK_FALSE(plan.local);
  CHECK(plan.routes.empty());
}

TEST_CASE("borrowed addresses get a /32 to the node using them, other pools' blocks are not routed") {
  VxlanInputs in = Cluster(EncapMode::kAlways);
  in.pools.push_back({.cidr = P("10.50.0.0/16"), .vxlan = EncapMode::kNever});
  in.blocks.emplace_back(P("10.50.0.0/26"), "node2");  // BGP's business
  in.borrowed.emplace_back(P("10.244.1.7/32"), "node3");  // our block, node3's pod
  in.borrowed.emplace_back(P("10.244.2.9/32"), "node1");  // ours: the local /32 route covers it
  VxlanPlan plan = PlanVxlan(in);
  CHECK(Texts(plan.routes) == std::vector<std::string>{
                                  "10.244.1.7/32 via 10.244.3.0 dev vxlan.calico onlink",
                                  "10.244.2.0/26 via 10.244.2.0 dev vxlan.calico onlink",
                                  "10.244.3.0/26 via 10.244.3.0 dev vxlan.calico onlink"});
  CHECK(InVxlanPool(in.pools, P("10.244.1.0/26")));
  CHECK_FALSE(InVxlanPool(in.pools, P("10.50.0.0/26")));
}

// A host with eth0 (MTU 1500) holding 10.99.0.1/24.
struct Host {
  kernel::FakeNetlink nl;
  int eth0 = 0;
  Host() {
    kernel::Link l;
    l.name = "eth0";
    l.mtu = 1500;
    l.up = true;
    eth0 = nl.AddLinkByHand(l).index;
    REQUIRE(nl.ReplaceAddress({.prefix = P("10.99.0.1/24"), .ifindex = eth0}).ok());
  }
  int Writes() const { return nl.Writes(); }
};

TEST_CASE("the manager creates vxlan.calico with its address, neighbours and FDB, then writes nothing") {
  Host h;
  VxlanManager m(h.nl);
  m.Set(PlanVxlan(Cluster(EncapMode::kAlways)));
  REQUIRE(m.Apply().ok());
  absl::StatusOr<kernel::Link> dev = h.nl.GetLink(kVxlanDevice);
  REQUIRE(dev.ok());
  CHECK(dev->up);
  CHECK(dev->mtu == 1450);
  CHECK(m.device_mtu() == 1450);
  CHECK(dev->mac == VtepMacFor("node1"));
  REQUIRE(dev->vxlan);
  CHECK(dev->vxlan->vni == 4096);
  CHECK(dev->vxlan->port == 4789);
  CHECK(dev->vxlan->local == Ip("10.99.0.1"));
  CHECK(dev->vxlan->parent_index == h.eth0);
  CHECK_FALSE(dev->vxlan->learning);
  std::vector<kernel::Address> addrs = *h.nl.ListAddresses(dev->index);
  REQUIRE(addrs.size() == 1);
  CHECK(addrs[0].prefix == P("10.244.1.0/32"));
  std::vector<kernel::Neighbor> neigh = *h.nl.ListNeighbors(dev->index);
  REQUIRE(neigh.size() == 2);
  CHECK(neigh[0].ip == Ip("10.244.2.0"));
  CHECK(neigh[0].mac == Mac("66:00:00:00:00:02"));
  CHECK(neigh[0].permanent);
  std::vector<kernel::FdbEntry> fdb = *h.nl.ListFdb(dev->index);
  REQUIRE(fdb.size() == 2);
  CHECK(fdb[0].mac == Mac("66:00:00:00:00:02"));
  CHECK(fdb[0].dst == Ip("10.99.0.2"));

  const int writes = h.Writes();
  REQUIRE(m.Apply().ok());
  CHECK(h.Writes() == writes);
  // A restarted felixd (a new manager) adopts it all without a write.
  VxlanManager again(h.nl);
  again.Set(PlanVxlan(Cluster(EncapMode::kAlways)));
  REQUIRE(again.Apply().ok());
  CHECK(h.Writes() == writes);
}

TEST_CASE("drift on vxlan.calico is repaired and strays removed") {
  Host h;
  VxlanManager m(h.nl);
  m.Set(PlanVxlan(Cluster(EncapMode::kAlways)));
  REQUIRE(m.Apply().ok());
  const int dev = h.nl.GetLink(kVxlanDevice)->index;
  // By hand: one neighbour gone, a stray permanent one, an FDB entry moved, a stray address.
  REQUIRE(h.nl.DeleteNeighbor({.ifindex = dev, .ifname = {}, .ip = Ip("10.244.2.0")}).ok());
  REQUIRE(h.nl.ReplaceNeighbor({.ifindex = dev, .ifname = {}, .ip = Ip("10.244.9.0"),
                                .mac = Mac("66:00:00:00:00:09")}).ok());
  REQUIRE(h.nl.ReplaceFdb({.ifindex = dev, .ifname = {}, .mac = Mac("66:00:00:00:00:03"),
                           .dst = Ip("10.99.0.33")}).ok());
  REQUIRE(h.nl.ReplaceAddress({.prefix = P("10.244.77.1/32"), .ifindex = dev}).ok());
  REQUIRE(m.Apply().ok());
  std::vector<kernel::Neighbor> neigh = *h.nl.ListNeighbors(dev);
  std::sort(neigh.begin(), neigh.end(), [](const auto& a, const auto& b) { return a.ip < b.ip; });
  REQUIRE(neigh.size() == 2);
  CHECK(neigh[0].ip == Ip("10.244.2.0"));
  CHECK(neigh[1].ip == Ip("10.244.3.0"));
  std::vector<kernel::FdbEntry> fdb = *h.nl.ListFdb(dev);
  std::sort(fdb.begin(), fdb.end(), [](const auto& a, const auto& b) { return a.mac < b.mac; });
  REQUIRE(fdb.size() == 2);
  CHECK(fdb[1].dst == Ip("10.99.0.3"));
  std::vector<kernel::Address> addrs = *h.nl.ListAddresses(dev);
  REQUIRE(addrs.size() == 1);
  CHECK(addrs[0].prefix == P("10.244.1.0/32"));
  // Down by hand (which flushes its neighbours): up again, neighbours back.
  REQUIRE(h.nl.SetLinkUp(kVxlanDevice, false).ok());
  REQUIRE(m.Apply().ok());
  CHECK(h.nl.GetLink(kVxlanDevice)->up);
  CHECK(h.nl.ListNeighbors(dev)->size() == 2);
}

TEST_CASE("a vxlan.calico with the wrong VNI is recreated, a removed node's VTEP goes") {
  Host h;
  REQUIRE(h.nl.CreateVxlan({.name = kVxlanDevice, .vni = 1, .port = 4789, .local = Ip("10.99.0.1"),
                            .parent = "eth0", .mtu = 1450, .mac = std::nullopt, .learning = false}).ok());
  VxlanManager m(h.nl);
  VxlanInputs in = Cluster(EncapMode::kAlways);
  m.Set(PlanVxlan(in));
  REQUIRE(m.Apply().ok());
  CHECK(h.nl.GetLink(kVxlanDevice)->vxlan->vni == 4096);
  in.nodes.erase("node3");
  m.Set(PlanVxlan(in));
  REQUIRE(m.Apply().ok());
  const int dev = h.nl.GetLink(kVxlanDevice)->index;
  CHECK(h.nl.ListNeighbors(dev)->size() == 1);
  CHECK(h.nl.ListFdb(dev)->size() == 1);
}

TEST_CASE("no VXLAN pool left: the device goes, an incomplete VTEP keeps it") {
  Host h;
  VxlanManager m(h.nl);
  VxlanInputs in = Cluster(EncapMode::kAlways);
  m.Set(PlanVxlan(in));
  REQUIRE(m.Apply().ok());
  // This node's tunnel address briefly missing (being re-assigned): tunnels stay.
  in.nodes["node1"].tunnel_ip.reset();
  m.Set(PlanVxlan(in));
  REQUIRE(m.Apply().ok());
  CHECK(h.nl.GetLink(kVxlanDevice).ok());
  m.Set(PlanVxlan(Cluster(EncapMode::kNever)));
  REQUIRE(m.Apply().ok());
  CHECK(absl::IsNotFound(h.nl.GetLink(kVxlanDevice).status()));
  CHECK(m.device_mtu() == 0);
}

TEST_CASE("this node's address on no device is a clear error, and nothing is created") {
  Host h;
  VxlanInputs in = Cluster(EncapMode::kAlways);
  in.nodes["node1"].address = P("10.99.0.200/24");
  VxlanManager m(h.nl);
  m.Set(PlanVxlan(in));
  absl::Status s = m.Apply();
  CHECK(absl::IsFailedPrecondition(s));
  CHECK(std::string(s.message()).find("no device holds this node's address 10.99.0.200") != std::string::npos);
  CHECK(absl::IsNotFound(h.nl.GetLink(kVxlanDevice).status()));
}

TEST_CASE("a failing FDB write is reported and retried by the next apply") {
  Host h;
  VxlanManager m(h.nl);
  m.Set(PlanVxlan(Cluster(EncapMode::kAlways)));
  h.nl.FailNext(NetlinkOp::kFdbAdd, ENOBUFS);
  CHECK_FALSE(m.Apply().ok());
  REQUIRE(m.Apply().ok());
  CHECK(h.nl.ListFdb(h.nl.GetLink(kVxlanDevice)->index)->size() == 2);
}

}  // namespace
}  // namespace calico::felixd

namespace calico::felixd {
namespace {

TEST_CASE("IPv6: vxlan-v6.calico, /128 tunnel address, NDP neighbours, routes with metric 1024") {
  VxlanInputs in;
  in.family = 6;
  in.node = "node1";
  in.pools = {{.cidr = P("10.244.0.0/16"), .vxlan = EncapMode::kAlways},  // the other family
              {.cidr = P("fd44::/48"), .vxlan = EncapMode::kCrossSubnet}};
  in.nodes["node1"] = NodeAt("fd99::1/64", "fd44::1");
  in.nodes["node2"] = NodeAt("fd99::2/64", "fd44::41", "66:00:00:00:06:02");
  in.nodes["node3"] = NodeAt("fd99:1::3/64", "fd44::81", "66:00:00:00:06:03");
  in.blocks = {{P("fd44::/122"), "node1"}, {P("fd44::40/122"), "node2"}, {P("fd44::80/122"), "node3"},
               {P("10.244.2.0/26"), "node2"}};
  VxlanPlan plan = PlanVxlan(in);
  REQUIRE(plan.local);
  CHECK(plan.local->mac == VtepMacFor("node1", 6));
  CHECK(plan.local->mac != VtepMacFor("node1", 4));
  CHECK(Texts(plan.routes) == std::vector<std::string>{"fd44::40/122 via fd99::2",
                                                       "fd44::80/122 via fd44::81 dev vxlan-v6.calico onlink"});
  for (const kernel::Route& r : plan.routes) CHECK(r.priority == kernel::kIpv6DefaultMetric);

  kernel::FakeNetlink nl;
  kernel::Link eth0;
  eth0.name = "eth0";
  eth0.mtu = 1500;
  eth0.up = true;
  int index = nl.AddLinkByHand(eth0).index;
  REQUIRE(nl.ReplaceAddress({.prefix = P("fd99::1/64"), .ifindex = index, .nodad = true}).ok());
  VxlanManager m(nl, 6);
  m.Set(plan);
  REQUIRE(m.Apply().ok());
  absl::StatusOr<kernel::Link> dev = nl.GetLink(kVxlanDeviceV6);
  REQUIRE(dev.ok());
  CHECK(dev->mtu == 1430);
  CHECK(dev->vxlan->local == Ip("fd99::1"));
  std::vector<kernel::Address> addrs = *nl.ListAddresses(dev->index);
  REQUIRE(addrs.size() == 1);
  CHECK(addrs[0].prefix == P("fd44::1/128"));
  std::vector<kernel::Neighbor> neigh = *nl.ListNeighbors(dev->index);
  REQUIRE(neigh.size() == 2);
  std::vector<kernel::FdbEntry> fdb = *nl.ListFdb(dev->index);
  REQUIRE(fdb.size() == 2);
  const int writes = nl.Writes();
  REQUIRE(m.Apply().ok());
  CHECK(nl.Writes() == writes);
  CHECK(absl::IsNotFound(nl.GetLink(kVxlanDevice).status()));  // the IPv4 device is another manager's
}

}  // namespace
}  // namespace calico::felixd
