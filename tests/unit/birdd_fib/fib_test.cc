#include "birdd/kernel/fib.h"

#include <catch2/catch.hpp>
#include <set>

#include "common/kernel/fake_netlink.h"

namespace calico::birdd::kernel_fib {
namespace {

net::Prefix P(std::string_view s) { return *net::ParsePrefix(s); }
net::IpAddress Ip(std::string_view s) { return *net::ParseIp(s); }

// A host with two uplinks: eth1 10.200.0.1/30 and eth2 10.201.0.1/30 (with their connected
// routes, which FakeNetlink needs to accept a gateway).
struct Host {
  kernel::FakeNetlink nl;
  Host() {
    for (auto [name, addr, net] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"eth1", "10.200.0.1/30", "10.200.0.0/30"}, {"eth2", "10.201.0.1/30", "10.201.0.0/30"}}) {
      kernel::Link l;
      l.name = name;
      l.up = true;
      int index = nl.AddLinkByHand(l).index;
      REQUIRE(nl.ReplaceAddress({.prefix = P(addr), .ifindex = index, .nodad = false}).ok());
      kernel::Route connected = kernel::Route::Local(net, name);
      connected.hop.ifindex = index;
      connected.protocol = kernel::kProtoKernel;
      nl.PutRouteByHand(connected);
    }
  }
  std::vector<kernel::Route> Bird() {
    std::vector<kernel::Route> out;
    for (const kernel::Route& r : nl.Routes()) {
      if (r.protocol == kernel::kProtoBird) out.push_back(r);
    }
    return out;
  }
};

TEST_CASE("fib: next hops get their device from the connected prefixes, ECMP as multipath") {
  Host h;
  Fib fib(h.nl);
  REQUIRE(fib.RefreshInterfaces().ok());
  fib.Set(P("10.65.0.0/26"), {Ip("10.200.0.2")});
  fib.Set(P("10.65.1.0/26"), {Ip("10.200.0.2"), Ip("10.201.0.2")});
  REQUIRE(fib.Apply().ok());
  std::vector<kernel::Route> routes = h.Bird();
  REQUIRE(routes.size() == 2);
  CHECK(routes[0].hop.ifname == "eth1");
  CHECK(routes[0].hop.gateway == Ip("10.200.0.2"));
  REQUIRE(routes[1].multipath.size() == 2);
  CHECK(routes[1].multipath[1].ifname == "eth2");

  // A resync right after finds nothing to do: no churn from the resolved devices.
  h.nl.ResetCalls();
  REQUIRE(fib.Resync().ok());
  CHECK(h.nl.Writes() == 0);

  fib.Set(P("10.65.0.0/26"), {});
  REQUIRE(fib.Apply().ok());
  CHECK(h.Bird().size() == 1);
}

TEST_CASE("fib: an unreachable next hop is left out until the interfaces say otherwise") {
  Host h;
  Fib fib(h.nl);
  REQUIRE(fib.RefreshInterfaces().ok());
  fib.Set(P("10.66.0.0/26"), {Ip("10.202.0.2")});
  REQUIRE(fib.Apply().ok());
  CHECK(h.Bird().empty());
  CHECK(fib.unresolved() == 1);
  kernel::Link l;
  l.name = "eth3";
  l.up = true;
  int index = h.nl.AddLinkByHand(l).index;
  REQUIRE(h.nl.ReplaceAddress({.prefix = P("10.202.0.1/30"), .ifindex = index, .nodad = false}).ok());
  kernel::Route connected = kernel::Route::Local("10.202.0.0/30", "eth3");
  connected.hop.ifindex = index;
  connected.protocol = kernel::kProtoKernel;
  h.nl.PutRouteByHand(connected);
  REQUIRE(fib.RefreshInterfaces().ok());
  REQUIRE(fib.Apply().ok());
  REQUIRE(h.Bird().size() == 1);
  CHECK(h.Bird()[0].hop.ifname == "eth3");
}

TEST_CASE("fib: felix's routes and the operator's are never touched") {
  Host h;
  kernel::Route felix = kernel::Route::Blackhole("10.65.0.0/26");
  felix.protocol = 80;
  h.nl.PutRouteByHand(felix);
  Fib fib(h.nl);
  REQUIRE(fib.RefreshInterfaces().ok());
  REQUIRE(fib.Resync().ok());
  bool kept = false;
  for (const kernel::Route& r : h.nl.Routes()) kept |= r.protocol == 80;
  CHECK(kept);
}


TEST_CASE("fib: IP-in-IP routes go via tunl0 onlink, and wait while tunl0 does not exist") {
  Host h;
  Fib fib(h.nl);
  REQUIRE(fib.RefreshInterfaces().ok());
  fib.Set(P("10.66.0.0/26"), {Ip("10.200.0.2")}, "tunl0");
  REQUIRE(fib.Apply().ok());
  CHECK(h.Bird().empty());  // no tunl0 yet (no ipip module): withheld, and said so
  CHECK(fib.missing_devices() == std::set<std::string>{"tunl0"});
  CHECK(fib.unresolved() == 1);

  kernel::Link tunl;
  tunl.name = "tunl0";
  tunl.up = true;
  int index = h.nl.AddLinkByHand(tunl).index;
  REQUIRE(fib.RefreshInterfaces().ok());
  REQUIRE(fib.Apply().ok());
  CHECK(fib.missing_devices().empty());
  std::vector<kernel::Route> routes = h.Bird();
  REQUIRE(routes.size() == 1);
  CHECK(routes[0].hop.ifname == "tunl0");
  CHECK(routes[0].hop.ifindex == index);
  CHECK(routes[0].hop.onlink);
  CHECK(routes[0].hop.gateway == Ip("10.200.0.2"));
  // Read back, the onlink route is ours as written: no rewrite.
  h.nl.ResetCalls();
  REQUIRE(fib.Resync().ok());
  CHECK(h.nl.Writes() == 0);

  // The same prefix without the tunnel (pool switched to native) moves back to eth1.
  fib.Set(P("10.66.0.0/26"), {Ip("10.200.0.2")});
  REQUIRE(fib.Apply().ok());
  routes = h.Bird();
  REQUIRE(routes.size() == 1);
  CHECK(routes[0].hop.ifname == "eth1");
  CHECK_FALSE(routes[0].hop.onlink);
}

}  // namespace
}  // namespace calico::birdd::kernel_fib
