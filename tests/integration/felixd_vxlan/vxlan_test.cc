// felixd's VxlanManager on the real kernel. Every mutation happens in TestNetns namespaces.

#include <catch2/catch.hpp>

#include "common/kernel/libnl_netlink.h"
#include "common/kernel/route_table.h"
#include "felixd/dataplane/vxlan_manager.h"
#include "tests/support/netns/test_netns.h"

namespace calico::felixd {
namespace {

using ::calico::testing::TestNetns;

template <typename T>
T Require(absl::StatusOr<T> result, std::string_view what) {
  if (!result.ok()) FAIL(what << ": " << result.status().ToString());
  return std::move(result).value();
}

net::Prefix P(std::string_view text) { return *net::ParseCidrOrIp(text); }

// Node "a" and "b": underlay 192.168.77.1-2/24 and fd77::1-2/64 on a veth; VXLAN pools
// 10.66.0.0/16 and fd66::/48, one block each.
VxlanInputs Inputs(int family, const std::string& self) {
  VxlanInputs in;
  in.family = family;
  in.node = self;
  in.pools = {{.cidr = P("10.66.0.0/16"), .vxlan = EncapMode::kAlways},
              {.cidr = P("fd66::/48"), .vxlan = EncapMode::kAlways}};
  auto node = [&](const std::string& name, int i) {
    VxlanNode n;
    if (family == 4) {
      n.address = P("192.168.77." + std::to_string(i) + "/24");
      n.tunnel_ip = net::ParseIp("10.66." + std::to_string(i) + ".0");
    } else {
      n.address = P("fd77::" + std::to_string(i) + "/64");
      n.tunnel_ip = net::ParseIp("fd66:0:0:" + std::to_string(i) + "::");
    }
    n.mac = VtepMacFor(name, family);
    in.nodes[name] = n;
    in.blocks.emplace_back(family == 4 ? P("10.66." + std::to_string(i) + ".0/26")
                                       : P("fd66:0:0:" + std::to_string(i) + "::/122"),
                           name);
  };
  node("a", 1);
  node("b", 2);
  return in;
}

struct Node {
  std::string name;
  TestNetns ns;
  std::unique_ptr<kernel::LibnlNetlink> nl;
  std::unique_ptr<kernel::RouteTable> routes;
  std::unique_ptr<VxlanManager> v4, v6;

  // A felixd (re)starting: new managers over a new socket, the plans applied, routes programmed.
  void Start() {
    nl = Require(kernel::LibnlNetlink::Open(kernel::NetnsRef{-1, ns.path()}), "open");
    routes = std::make_unique<kernel::RouteTable>(*nl, 80, kernel::kMainTable);
    v4 = std::make_unique<VxlanManager>(*nl, 4);
    v6 = std::make_unique<VxlanManager>(*nl, 6);
    Apply();
  }
  void Apply() {
    VxlanPlan p4 = PlanVxlan(Inputs(4, name)), p6 = PlanVxlan(Inputs(6, name));
    std::vector<kernel::Route> all = p4.routes;
    all.insert(all.end(), p6.routes.begin(), p6.routes.end());
    v4->Set(p4);
    v6->Set(p6);
    absl::Status s4 = v4->Apply(), s6 = v6->Apply();
    INFO(s4.ToString() << " / " << s6.ToString());
    REQUIRE(s4.ok());
    REQUIRE(s6.ok());
    routes->SetDesired("~remote", all);
    absl::Status r = routes->Resync();
    INFO(r.ToString());
    REQUIRE(r.ok());
  }
  int64_t Writes() const {
    return v4->stats().device_writes + v4->stats().neighbor_writes + v4->stats().fdb_writes +
           v6->stats().device_writes + v6->stats().neighbor_writes + v6->stats().fdb_writes;
  }
};

TEST_CASE("VxlanManager on the kernel: both families carry pings, a restart adopts with zero writes, drift is repaired",
          "[integration][felixd_vxlan]") {
  REQUIRE(::calico::testing::IsRoot());  // integration tests run as root
  Node a{"a", Require(TestNetns::Create("vxa"), "netns"), {}, {}, {}, {}};
  Node b{"b", Require(TestNetns::Create("vxb"), "netns"), {}, {}, {}, {}};
  auto run = [](const TestNetns& ns, const std::string& cmd) {
    ::calico::testing::ExecResult r = ns.Exec(cmd);
    INFO(cmd << ": " << r.output);
    REQUIRE(r.status == 0);
  };
  run(a.ns, "ip link add eth0 type veth peer name eth0 netns " + b.ns.name());
  for (auto [node, i] : {std::pair{&a, 1}, std::pair{&b, 2}}) {
    const std::string n = std::to_string(i);
    run(node->ns, "sysctl -qw net.ipv6.conf.eth0.accept_dad=0 && ip link set lo up && "
                  "ip addr add 192.168.77." + n + "/24 dev eth0 && ip addr add fd77::" + n +
                  "/64 dev eth0 nodad && ip link set eth0 up");
  }
  a.Start();
  b.Start();
  // Through the tunnels, from one tunnel address to the other's.
  run(a.ns, "ping -c 2 -i 0.2 -W 2 -I 10.66.1.0 10.66.2.0");
  run(a.ns, "ping -6 -c 2 -i 0.2 -W 2 -I fd66:0:0:1:: fd66:0:0:2::");
  ::calico::testing::ExecResult link = a.ns.Exec("ip -d link show vxlan.calico; ip -d link show vxlan-v6.calico");
  INFO(link.output);
  CHECK(link.output.find("vxlan id 4096 local 192.168.77.1 dev eth0") != std::string::npos);
  CHECK(link.output.find("vxlan id 4096 local fd77::1 dev eth0") != std::string::npos);
  CHECK(link.output.find("mtu 1450") != std::string::npos);
  CHECK(link.output.find("mtu 1430") != std::string::npos);

  // A restarted felixd reads everything back and writes nothing.
  a.Start();
  CHECK(a.Writes() == 0);
  // Drift: a neighbour and an FDB entry deleted by hand come back, and the tunnel works again.
  run(a.ns, "ip neigh del 10.66.2.0 dev vxlan.calico && bridge fdb del " +
                kernel::FormatMac(VtepMacFor("b", 6)) + " dev vxlan-v6.calico dst fd77::2");
  a.Apply();
  CHECK(a.v4->stats().neighbor_writes == 1);
  CHECK(a.v6->stats().fdb_writes == 1);
  run(a.ns, "ping -c 1 -W 2 -I 10.66.1.0 10.66.2.0");
  run(a.ns, "ping -6 -c 1 -W 2 -I fd66:0:0:1:: fd66:0:0:2::");
  // Down by hand flushes the neighbours; the next apply brings both back.
  run(a.ns, "ip link set vxlan.calico down");
  a.Apply();
  run(a.ns, "ping -c 1 -W 2 -I 10.66.1.0 10.66.2.0");
}

}  // namespace
}  // namespace calico::felixd
