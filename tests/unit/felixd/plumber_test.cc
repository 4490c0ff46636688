#include "felixd/dataplane/plumber.h"

#include <catch2/catch.hpp>
#include <cerrno>

#include "fake_kernel.h"

namespace calico::felixd {
namespace {

using kernel::NetlinkOp;

net::Prefix P(std::string_view text) { return *net::ParsePrefix(text); }

PlumbSpec Spec(std::vector<net::Prefix> ips = {P("10.65.0.3/32")}) {
  PlumbSpec s;
  s.host_ifname = "calitest0001";
  s.netns = "/run/netns/pod1";
  s.ifname = "eth0";
  s.ips = std::move(ips);
  s.mtu = 1440;
  return s;
}

TEST_CASE("plumb wires both ends: host veth, workload addresses and routes via 169.254.1.1") {
  testing::FakeKernel k;
  kernel::FakeNetlink& pod = k.AddNetns("/run/netns/pod1");
  Plumber plumber(k.Opener());
  absl::StatusOr<PlumbResult> r = plumber.Plumb(Spec({P("10.65.0.3/32"), P("fd00::3/128")}));
  REQUIRE(r.ok());

  kernel::Link host = *k.host.GetLink("calitest0001");
  CHECK(host.up);
  CHECK(host.mtu == 1440);
  CHECK(kernel::FormatMac(*host.mac) == "ee:ee:ee:ee:ee:ee");
  CHECK(r->host_ifindex == host.index);
  CHECK(k.host.Sysctl("net/ipv4/conf/calitest0001/proxy_arp") == "1");
  CHECK(k.host.Sysctl("net/ipv4/neigh/calitest0001/proxy_delay") == "0");
  CHECK(k.host.Sysctl("net/ipv6/conf/calitest0001/accept_dad") == "0");
  CHECK(k.host.Sysctl("net/ipv6/conf/calitest0001/proxy_ndp") == "1");

  kernel::Link eth0 = *pod.GetLink("eth0");
  CHECK(eth0.up);
  CHECK(r->container_mac == kernel::FormatMac(*eth0.mac));
  std::vector<kernel::Address> addrs = *pod.ListAddresses(eth0.index);
  REQUIRE(addrs.size() == 2);
  std::vector<std::string> routes;
  for (const kernel::Route& route : pod.Routes()) routes.push_back(route.ToString());
  CHECK(std::count_if(routes.begin(), routes.end(), [](const std::string& s) {
          return s.find("169.254.1.1/32") == 0;
        }) == 1);
  CHECK(std::count_if(routes.begin(), routes.end(), [](const std::string& s) {
          return s.find("0.0.0.0/0 via 169.254.1.1") == 0;
        }) == 1);
  CHECK(std::count_if(routes.begin(), routes.end(), [](const std::string& s) {
          return s.find("::/0 via fe80::ecee:eeff:feee:eeee") == 0;
        }) == 1);
  CHECK(plumber.Check(Spec({P("10.65.0.3/32"), P("fd00::3/128")}))->empty());
}

TEST_CASE("a failure on the workload side removes the veth it created") {
  testing::FakeKernel k;
  kernel::FakeNetlink& pod = k.AddNetns("/run/netns/pod1");
  pod.FailNext(NetlinkOp::kRouteReplace, ENETUNREACH);
  Plumber plumber(k.Opener());
  absl::StatusOr<PlumbResult> r = plumber.Plumb(Spec());
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("workload side") != std::string::npos);
  CHECK_FALSE(k.host.GetLink("calitest0001").ok());
  CHECK_FALSE(pod.GetLink("eth0").ok());
}

TEST_CASE("a missing netns is an error naming it, and nothing is created") {
  testing::FakeKernel k;
  Plumber plumber(k.Opener());
  absl::StatusOr<PlumbResult> r = plumber.Plumb(Spec());
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("/run/netns/pod1") != std::string::npos);
  CHECK(k.host.Links().size() == 1);  // lo only
}

TEST_CASE("an interface that already exists in the netns is refused and nothing leaks") {
  testing::FakeKernel k;
  kernel::FakeNetlink& pod = k.AddNetns("/run/netns/pod1");
  kernel::Link eth0;
  eth0.name = "eth0";
  pod.AddLinkByHand(eth0);
  Plumber plumber(k.Opener());
  absl::StatusOr<PlumbResult> r = plumber.Plumb(Spec());
  REQUIRE_FALSE(r.ok());
  CHECK(absl::IsAlreadyExists(r.status()));
  CHECK_FALSE(k.host.GetLink("calitest0001").ok());
}

TEST_CASE("a stale host veth of the same name is replaced") {
  testing::FakeKernel k;
  k.AddNetns("/run/netns/old");
  k.AddNetns("/run/netns/pod1");
  Plumber plumber(k.Opener());
  PlumbSpec old = Spec();
  old.netns = "/run/netns/old";
  REQUIRE(plumber.Plumb(old).ok());
  REQUIRE(plumber.Plumb(Spec()).ok());
  CHECK(k.host.GetLink("calitest0001")->peer_netns.path == "/run/netns/pod1");
  CHECK_FALSE(k.Netns("/run/netns/old")->GetLink("eth0").ok());
}

TEST_CASE("check names each thing that is missing") {
  testing::FakeKernel k;
  kernel::FakeNetlink& pod = k.AddNetns("/run/netns/pod1");
  Plumber plumber(k.Opener());
  REQUIRE(plumber.Plumb(Spec()).ok());
  kernel::Link eth0 = *pod.GetLink("eth0");
  REQUIRE(pod.DeleteAddress({.prefix = P("10.65.0.3/32"), .ifindex = eth0.index, .nodad = false}).ok());
  k.host.SetSysctlByHand("net/ipv4/conf/calitest0001/proxy_arp", "0");
  std::vector<std::string> problems = *plumber.Check(Spec());
  REQUIRE(problems.size() == 2);
  CHECK(problems[0] == "sysctl net/ipv4/conf/calitest0001/proxy_arp is 0, want 1");
  CHECK(problems[1] == "address 10.65.0.3/32 is missing on eth0");
}

TEST_CASE("unplumb removes both ends and is idempotent") {
  testing::FakeKernel k;
  kernel::FakeNetlink& pod = k.AddNetns("/run/netns/pod1");
  Plumber plumber(k.Opener());
  REQUIRE(plumber.Plumb(Spec()).ok());
  CHECK(*plumber.Unplumb("calitest0001"));
  CHECK_FALSE(k.host.GetLink("calitest0001").ok());
  CHECK_FALSE(pod.GetLink("eth0").ok());
  CHECK_FALSE(*plumber.Unplumb("calitest0001"));
}

}  // namespace
}  // namespace calico::felixd
