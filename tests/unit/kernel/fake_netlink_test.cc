#include "common/kernel/fake_netlink.h"

#include <cerrno>

#include <catch2/catch.hpp>

namespace calico::kernel {
namespace {

VethSpec Veth(std::string name, std::string peer = "eth0") {
  VethSpec spec;
  spec.name = std::move(name);
  spec.peer_name = std::move(peer);
  spec.peer_netns.path = "/var/run/netns/pod1";
  return spec;
}

int IndexOf(FakeNetlink& kernel, std::string_view name) {
  absl::StatusOr<Link> link = kernel.GetLink(name);
  REQUIRE(link.ok());
  return link->index;
}

TEST_CASE("FakeNetlink: veth with its peer in another netns, names and indexes", "[unit][fake]") {
  FakeNetlink kernel;
  VethSpec spec = Veth("cali1234");
  spec.index = 40;
  spec.mtu = 1440;
  REQUIRE(kernel.CreateVeth(spec).ok());
  absl::StatusOr<Link> link = kernel.GetLink("cali1234");
  REQUIRE(link.ok());
  CHECK(link->index == 40);
  CHECK(link->kind == LinkKind::kVeth);
  CHECK(link->mtu == 1440);
  CHECK_FALSE(link->up);
  CHECK(link->peer_name == "eth0");
  CHECK(link->peer_netns.path == "/var/run/netns/pod1");
  CHECK(kernel.Links().size() == 2);  // lo + host side; the peer lives in the pod

  CHECK(kernel.CreateVeth(Veth("cali1234")).code() == absl::StatusCode::kAlreadyExists);
  CHECK(kernel.CreateVeth(Veth("cali0123456789abc")).code() ==
        absl::StatusCode::kInvalidArgument);  // 17 bytes > IFNAMSIZ - 1
  VethSpec taken = Veth("cali9");
  taken.index = 40;
  CHECK(kernel.CreateVeth(taken).code() == absl::StatusCode::kAlreadyExists);  // index names it
  CHECK(kernel.GetLink("nope").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("FakeNetlink: a veth pair in one namespace is deleted together", "[unit][fake]") {
  FakeNetlink kernel;
  VethSpec spec = Veth("a1", "b1");
  spec.peer_netns = {};
  REQUIRE(kernel.CreateVeth(spec).ok());
  REQUIRE(kernel.Links().size() == 3);
  REQUIRE(kernel.DeleteLink("b1").ok());
  CHECK(kernel.Links().size() == 1);
  CHECK(kernel.DeleteLink("b1").ok());  // already gone = success
}

TEST_CASE("FakeNetlink: link settings and per-device sysctls", "[unit][fake]") {
  FakeNetlink kernel;
  REQUIRE(kernel.CreateVeth(Veth("cali1")).ok());
  REQUIRE(kernel.SetLinkUp("cali1", true).ok());
  REQUIRE(kernel.SetLinkMtu("cali1", 9000).ok());
  REQUIRE(kernel.SetLinkMac("cali1", *ParseMac("ee:ee:ee:ee:ee:ee")).ok());
  Link link = *kernel.GetLink("cali1");
  CHECK(link.up);
  CHECK(link.mtu == 9000);
  CHECK(FormatMac(*link.mac) == "ee:ee:ee:ee:ee:ee");
  CHECK(kernel.SetLinkMtu("cali1", 20).code() == absl::StatusCode::kInvalidArgument);
  CHECK(kernel.SetLinkUp("nope", true).code() == absl::StatusCode::kNotFound);

  CHECK(*kernel.ReadSysctl("net/ipv4/conf/cali1/proxy_arp") == "0");
  REQUIRE(kernel.WriteSysctl("net/ipv4/conf/cali1/proxy_arp", "1").ok());
  REQUIRE(kernel.WriteSysctl("net/ipv4/neigh/cali1/proxy_delay", "0").ok());
  CHECK(*kernel.Sysctl("net/ipv4/conf/cali1/proxy_arp") == "1");
  CHECK(kernel.WriteSysctl("net/ipv4/conf/nope/proxy_arp", "1").code() ==
        absl::StatusCode::kNotFound);
  REQUIRE(kernel.DeleteLink("cali1").ok());
  CHECK_FALSE(kernel.Sysctl("net/ipv4/conf/cali1/proxy_arp").has_value());
}

TEST_CASE("FakeNetlink: addresses are replaced in place", "[unit][fake]") {
  FakeNetlink kernel;
  REQUIRE(kernel.CreateVeth(Veth("cali1")).ok());
  const int index = IndexOf(kernel, "cali1");
  Address a{.prefix = *net::ParsePrefix("fd00::3/128"), .ifindex = index, .nodad = true};
  REQUIRE(kernel.ReplaceAddress(a).ok());
  REQUIRE(kernel.ReplaceAddress(a).ok());
  CHECK(kernel.ListAddresses(index)->size() == 1);
  CHECK(kernel.ReplaceAddress({.prefix = a.prefix, .ifindex = 999, .nodad = false}).code() ==
        absl::StatusCode::kNotFound);
  REQUIRE(kernel.DeleteAddress(a).ok());
  REQUIRE(kernel.DeleteAddress(a).ok());  // already gone = success
  CHECK(kernel.ListAddresses(0)->empty());
}

TEST_CASE("FakeNetlink: route replace is idempotent, delete of a missing route succeeds",
          "[unit][fake][routes]") {
  FakeNetlink kernel;
  REQUIRE(kernel.CreateVeth(Veth("cali1")).ok());
  REQUIRE(kernel.SetLinkUp("cali1", true).ok());
  Route route = Route::Local("10.65.0.3/32", "cali1");
  REQUIRE(kernel.ReplaceRoute(route).ok());
  REQUIRE(kernel.ReplaceRoute(route).ok());
  REQUIRE(kernel.Routes().size() == 1);
  CHECK(kernel.Routes()[0].hop.ifindex == IndexOf(kernel, "cali1"));  // read-back fills both
  CHECK(kernel.Routes()[0].hop.ifname == "cali1");
  REQUIRE(kernel.DeleteRoute(route.Key(), kProtoUnspec).ok());
  CHECK(kernel.Routes().empty());
  CHECK(kernel.DeleteRoute(route.Key(), kProtoUnspec).ok());
}

TEST_CASE("FakeNetlink: a route via a missing or down device fails like the kernel",
          "[unit][fake][routes]") {
  FakeNetlink kernel;
  CHECK(kernel.ReplaceRoute(Route::Local("10.65.0.3/32", "cali1")).code() ==
        absl::StatusCode::kNotFound);  // ENODEV
  REQUIRE(kernel.CreateVeth(Veth("cali1")).ok());
  absl::Status down = kernel.ReplaceRoute(Route::Local("10.65.0.3/32", "cali1"));
  CHECK(down.message().find("ENETDOWN") != absl::string_view::npos);
  // IPv6 too refuses a route via a down device.
  absl::Status down6 = kernel.ReplaceRoute(Route::Local("fd00::3/128", "cali1"));
  CHECK(down6.message().find("ENETDOWN") != absl::string_view::npos);

  REQUIRE(kernel.SetLinkUp("cali1", true).ok());
  REQUIRE(kernel.ReplaceRoute(Route::Local("10.65.0.3/32", "cali1")).ok());
  REQUIRE(kernel.ReplaceRoute(Route::Local("fd00::3/128", "cali1")).ok());
  // Going down flushes the routes of both families.
  REQUIRE(kernel.SetLinkUp("cali1", false).ok());
  CHECK(kernel.Routes().empty());
  // Deleting the device removes every route through it.
  REQUIRE(kernel.SetLinkUp("cali1", true).ok());
  REQUIRE(kernel.ReplaceRoute(Route::Local("10.65.0.3/32", "cali1")).ok());
  REQUIRE(kernel.DeleteLink("cali1").ok());
  CHECK(kernel.Routes().empty());
}

TEST_CASE("FakeNetlink: gateways must be on-link or covered", "[unit][fake][routes]") {
  FakeNetlink kernel;
  REQUIRE(kernel.CreateVeth(Veth("cali1")).ok());
  REQUIRE(kernel.SetLinkUp("cali1", true).ok());
  absl::Status unreachable = kernel.ReplaceRoute(Route::Via("0.0.0.0/0", "169.254.1.1", "cali1"));
  CHECK(unreachable.message().find("ENETUNREACH") != absl::string_view::npos);
  CHECK(kernel.ReplaceRoute(Route::Via("0.0.0.0/0", "169.254.1.1", "cali1", /*onlink=*/true)).ok());
  // Covered by a link-scope route: no onlink needed.
  REQUIRE(kernel.ReplaceRoute(Route::Local("169.254.1.1/32", "cali1")).ok());
  CHECK(kernel.ReplaceRoute(Route::Via("10.0.0.0/8", "169.254.1.1", "cali1")).ok());
  // IPv6 link-local gateways are always on-link.
  CHECK(kernel.ReplaceRoute(Route::Via("::/0", "fe80::ecee:eeff:feee:eeee", "cali1")).ok());
  // Host bits set, or a gateway of the wrong family.
  CHECK(kernel.ReplaceRoute(Route::Blackhole("10.65.0.1/26")).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(kernel.ReplaceRoute(Route::Via("10.0.0.0/8", "fe80::1", "cali1", true)).code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("FakeNetlink: IPv6 metric 0 is stored as 1024", "[unit][fake][routes]") {
  FakeNetlink kernel;
  REQUIRE(kernel.ReplaceRoute(Route::Blackhole("fd00:1::/122")).ok());
  REQUIRE(kernel.Routes().size() == 1);
  CHECK(kernel.Routes()[0].priority == kIpv6DefaultMetric);
  CHECK(kernel.Routes()[0].Key() == Route::Blackhole("fd00:1::/122").Key());
}

TEST_CASE("FakeNetlink: delete leaves another protocol's route alone", "[unit][fake][routes]") {
  FakeNetlink kernel;
  Route bird = Route::Blackhole("10.66.0.0/26");
  bird.protocol = kProtoBird;
  REQUIRE(kernel.ReplaceRoute(bird).ok());
  REQUIRE(kernel.DeleteRoute(bird.Key(), kProtoBoot).ok());
  CHECK(kernel.Routes().size() == 1);
  REQUIRE(kernel.DeleteRoute(bird.Key(), kProtoBird).ok());
  CHECK(kernel.Routes().empty());
}

TEST_CASE("FakeNetlink: injected failures fire once, in order, without side effects",
          "[unit][fake]") {
  FakeNetlink kernel;
  kernel.FailNext(NetlinkOp::kRouteReplace, ENOBUFS);
  kernel.FailNext(NetlinkOp::kRouteReplace, EPERM);
  Route route = Route::Blackhole("10.65.0.0/26");
  absl::Status first = kernel.ReplaceRoute(route);
  CHECK(first.code() == absl::StatusCode::kUnavailable);
  CHECK(first.message().find("RTM_NEWROUTE blackhole 10.65.0.0/26") != absl::string_view::npos);
  CHECK(kernel.ReplaceRoute(route).code() == absl::StatusCode::kPermissionDenied);
  CHECK(kernel.Routes().empty());
  CHECK(kernel.ReplaceRoute(route).ok());
  CHECK(kernel.Calls(NetlinkOp::kRouteReplace) == 3);
  CHECK(kernel.Writes() == 3);
  kernel.FailNext(NetlinkOp::kRouteList, EAGAIN);
  CHECK(kernel.ListRoutes({}).status().code() == absl::StatusCode::kUnavailable);
  CHECK(kernel.ListRoutes({})->size() == 1);
}

TEST_CASE("FakeNetlink: neighbour and FDB failures are injected, counted and named",
          "[unit][fake]") {
  FakeNetlink kernel;
  VxlanSpec spec;
  spec.name = "vxlan.calico";
  spec.vni = 4096;
  REQUIRE(kernel.CreateVxlan(spec).ok());
  Neighbor n{.ifindex = 0, .ifname = "vxlan.calico", .ip = *net::ParseIp("10.65.1.0"),
             .mac = *ParseMac("66:00:00:00:00:01")};
  FdbEntry f{.ifindex = 0, .ifname = "vxlan.calico", .mac = n.mac,
             .dst = *net::ParseIp("192.168.0.2")};
  kernel.ResetCalls();
  kernel.FailNext(NetlinkOp::kNeighReplace, ENOBUFS);
  kernel.FailNext(NetlinkOp::kFdbAdd, EPERM);
  absl::Status neigh = kernel.ReplaceNeighbor(n);
  CHECK(neigh.code() == absl::StatusCode::kUnavailable);
  CHECK(neigh.message().find("RTM_NEWNEIGH 10.65.1.0 lladdr 66:00:00:00:00:01 dev vxlan.calico") !=
        absl::string_view::npos);
  absl::Status fdb = kernel.AppendFdb(f);
  CHECK(fdb.code() == absl::StatusCode::kPermissionDenied);
  CHECK(fdb.message().find(
            "RTM_NEWNEIGH bridge append 66:00:00:00:00:01 dev vxlan.calico dst 192.168.0.2") !=
        absl::string_view::npos);
  CHECK(kernel.Neighbors().empty());
  CHECK(kernel.Fdb().empty());
  REQUIRE(kernel.ReplaceNeighbor(n).ok());
  REQUIRE(kernel.AppendFdb(f).ok());
  CHECK(kernel.Neighbors().size() == 1);
  CHECK(kernel.Fdb().size() == 1);
  CHECK(kernel.Writes() == 4);
  kernel.FailNext(NetlinkOp::kNeighList, EAGAIN);
  kernel.FailNext(NetlinkOp::kFdbList, EAGAIN);
  CHECK(kernel.ListNeighbors(0).status().code() == absl::StatusCode::kUnavailable);
  CHECK(kernel.ListFdb(0).status().code() == absl::StatusCode::kUnavailable);
  CHECK(kernel.ListNeighbors(0)->size() == 1);
  CHECK(kernel.Calls(NetlinkOp::kNeighList) == 2);
}

}  // namespace
}  // namespace calico::kernel
