#include "common/kernel/route_table.h"

#include <cerrno>

#include <catch2/catch.hpp>

#include "common/kernel/fake_netlink.h"

namespace calico::kernel {
namespace {

// felixd's choice of protocol is its own; any number other than the test's "other" one will do.
constexpr uint8_t kProtoFelix = 80;

// A kernel with up veths, as felixd finds them after CNI ADD.
void AddUpVeth(FakeNetlink& kernel, const std::string& name) {
  VethSpec spec;
  spec.name = name;
  spec.peer_name = "eth0";
  spec.peer_netns.path = "/var/run/netns/" + name;
  REQUIRE(kernel.CreateVeth(spec).ok());
  REQUIRE(kernel.SetLinkUp(name, true).ok());
}

std::vector<std::string> Dsts(const std::vector<Route>& routes) {
  std::vector<std::string> out;
  for (const Route& r : routes) out.push_back(net::FormatCidr(r.dst));
  return out;
}

std::vector<std::string> Dsts(FakeNetlink& kernel) { return Dsts(kernel.Routes()); }

TEST_CASE("RouteTable keeps a failed route pending and retries it", "[unit][routes]") {
  FakeNetlink kernel;
  AddUpVeth(kernel, "cali1234");
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("cali1234", {Route::Local("10.65.0.3/32", "cali1234")});
  kernel.FailNext(NetlinkOp::kRouteReplace, ENOBUFS);
  absl::Status failed = table.Apply();
  REQUIRE(failed.code() == absl::StatusCode::kUnavailable);
  CHECK(failed.message().find("10.65.0.3/32") != absl::string_view::npos);
  REQUIRE(kernel.Routes().empty());
  REQUIRE_FALSE(table.InSync());
  REQUIRE(table.Apply().ok());  // the failed key stayed pending
  REQUIRE(table.InSync());
  REQUIRE(kernel.Routes().size() == 1);
  const Route route = kernel.Routes()[0];  // Routes() returns a copy
  CHECK(net::FormatCidr(route.dst) == "10.65.0.3/32");
  CHECK(route.hop.ifname == "cali1234");
  CHECK(route.protocol == kProtoFelix);
  CHECK(route.scope == RouteScope::kLink);
}

TEST_CASE("RouteTable: a route whose device is not there yet succeeds once it is",
          "[unit][routes]") {
  FakeNetlink kernel;
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("cali1", {Route::Local("10.65.0.3/32", "cali1")});
  CHECK(table.Apply().code() == absl::StatusCode::kNotFound);
  AddUpVeth(kernel, "cali1");
  REQUIRE(table.Apply().ok());
  CHECK(Dsts(kernel) == std::vector<std::string>{"10.65.0.3/32"});
}

TEST_CASE("RouteTable applies only the delta", "[unit][routes]") {
  FakeNetlink kernel;
  AddUpVeth(kernel, "cali1");
  AddUpVeth(kernel, "cali2");
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("cali1", {Route::Local("10.65.0.1/32", "cali1")});
  table.SetDesired("cali2", {Route::Local("10.65.0.2/32", "cali2")});
  kernel.ResetCalls();
  REQUIRE(table.Apply().ok());
  CHECK(kernel.Calls(NetlinkOp::kRouteReplace) == 2);

  kernel.ResetCalls();
  REQUIRE(table.Apply().ok());  // nothing changed: no writes
  table.SetDesired("cali1", {Route::Local("10.65.0.1/32", "cali1")});  // same again
  REQUIRE(table.Apply().ok());
  CHECK(kernel.Writes() == 0);

  // One endpoint gains an address, the other goes: one replace, one delete.
  table.SetDesired("cali1",
                   {Route::Local("10.65.0.1/32", "cali1"), Route::Local("10.65.0.9/32", "cali1")});
  table.Remove("cali2");
  REQUIRE(table.Apply().ok());
  CHECK(kernel.Calls(NetlinkOp::kRouteReplace) == 1);
  CHECK(kernel.Calls(NetlinkOp::kRouteDelete) == 1);
  CHECK(Dsts(kernel) == std::vector<std::string>{"10.65.0.1/32", "10.65.0.9/32"});
}

TEST_CASE("RouteTable resync repairs drift and removes strays of its own protocol only",
          "[unit][routes]") {
  FakeNetlink kernel;
  AddUpVeth(kernel, "cali1");
  AddUpVeth(kernel, "cali2");
  AddUpVeth(kernel, "eth0");
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("cali1", {Route::Local("10.65.0.1/32", "cali1")});
  table.SetDesired("cali2", {Route::Local("10.65.0.2/32", "cali2")});
  REQUIRE(table.Apply().ok());

  // By hand: one route deleted, one pointed at another device, a stray of ours (left by an
  // earlier run), and another daemon's route.
  kernel.DeleteRouteByHand(Route::Local("10.65.0.1/32", "cali1").Key());
  Route moved = kernel.Routes()[0];
  moved.hop.ifname = "eth0";
  moved.hop.ifindex = kernel.GetLink("eth0")->index;
  kernel.PutRouteByHand(moved);
  Route stray = Route::Blackhole("10.65.1.0/26");
  stray.protocol = kProtoFelix;
  kernel.PutRouteByHand(stray);
  Route other = Route::Blackhole("10.66.0.0/26");
  other.protocol = kProtoBird;
  kernel.PutRouteByHand(other);

  kernel.ResetCalls();
  REQUIRE(table.Resync().ok());
  CHECK(kernel.Calls(NetlinkOp::kRouteList) == 1);
  CHECK(kernel.Calls(NetlinkOp::kRouteReplace) == 2);
  CHECK(kernel.Calls(NetlinkOp::kRouteDelete) == 1);
  CHECK(Dsts(kernel) == std::vector<std::string>{"10.65.0.1/32", "10.65.0.2/32", "10.66.0.0/26"});
  for (const Route& r : kernel.Routes()) {
    if (r.protocol == kProtoFelix) CHECK(r.hop.ifname == "cali" + std::to_string(r.dst.addr.bytes[3]));
  }
  CHECK(table.InSync());

  kernel.ResetCalls();
  REQUIRE(table.Resync().ok());  // nothing drifted since: read only
  CHECK(kernel.Writes() == 0);
}

TEST_CASE("RouteTable: a fresh table adopts the routes it still wants without rewriting them",
          "[unit][routes]") {
  FakeNetlink kernel;
  AddUpVeth(kernel, "cali1");
  {
    RouteTable before_restart(kernel, kProtoFelix, kMainTable);
    before_restart.SetDesired("cali1", {Route::Local("10.65.0.1/32", "cali1"),
                                        Route::Local("fd00::1/128", "cali1")});
    REQUIRE(before_restart.Apply().ok());
  }
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("cali1",
                   {Route::Local("10.65.0.1/32", "cali1"), Route::Local("fd00::1/128", "cali1")});
  kernel.ResetCalls();
  REQUIRE(table.Resync().ok());
  CHECK(kernel.Writes() == 0);
  CHECK(table.InSync());
}

TEST_CASE("RouteTable: blackhole and IPv6 routes round-trip through resync", "[unit][routes]") {
  FakeNetlink kernel;
  AddUpVeth(kernel, "cali1");
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("block:10.65.0.0/26", {Route::Blackhole("10.65.0.0/26")});
  table.SetDesired("block:fd00:1::/122", {Route::Blackhole("fd00:1::/122")});
  table.SetDesired("cali1", {Route::Local("fd00:1::5/128", "cali1")});
  REQUIRE(table.Apply().ok());
  REQUIRE(kernel.Routes().size() == 3);
  for (const Route& r : kernel.Routes()) {
    if (r.dst.addr.family == 6) CHECK(r.priority == kIpv6DefaultMetric);
  }
  CHECK(kernel.Routes()[0].type == RouteType::kBlackhole);

  // The block's blackhole turned into a unicast route by hand: put back.
  Route changed = Route::Local("10.65.0.0/26", "cali1");
  changed.protocol = kProtoFelix;
  kernel.PutRouteByHand(changed);
  kernel.ResetCalls();
  REQUIRE(table.Resync().ok());
  CHECK(kernel.Calls(NetlinkOp::kRouteReplace) == 1);
  CHECK(kernel.Routes()[0].type == RouteType::kBlackhole);

  table.Remove("block:fd00:1::/122");
  REQUIRE(table.Apply().ok());
  CHECK(Dsts(kernel) == std::vector<std::string>{"10.65.0.0/26", "fd00:1::5/128"});
}

TEST_CASE("RouteTable: a failed delete stays pending", "[unit][routes]") {
  FakeNetlink kernel;
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("b", {Route::Blackhole("10.65.0.0/26")});
  REQUIRE(table.Apply().ok());
  table.Remove("b");
  kernel.FailNext(NetlinkOp::kRouteDelete, EAGAIN);
  CHECK(table.Apply().code() == absl::StatusCode::kUnavailable);
  CHECK(kernel.Routes().size() == 1);
  CHECK(table.PendingCount() == 1);
  REQUIRE(table.Apply().ok());
  CHECK(kernel.Routes().empty());
}

TEST_CASE("RouteTable: two owners of one key — smallest name wins, the other takes over",
          "[unit][routes]") {
  FakeNetlink kernel;
  AddUpVeth(kernel, "cali1");
  AddUpVeth(kernel, "cali2");
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("cali2", {Route::Local("10.65.0.7/32", "cali2")});
  table.SetDesired("cali1", {Route::Local("10.65.0.7/32", "cali1")});
  REQUIRE(table.Apply().ok());
  REQUIRE(kernel.Routes().size() == 1);
  CHECK(kernel.Routes()[0].hop.ifname == "cali1");
  table.Remove("cali1");
  REQUIRE(table.Apply().ok());
  REQUIRE(kernel.Routes().size() == 1);
  CHECK(kernel.Routes()[0].hop.ifname == "cali2");
}

TEST_CASE("RouteTable: several failures report the first and count the rest", "[unit][routes]") {
  FakeNetlink kernel;
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("a", {Route::Local("10.65.0.1/32", "cali1"), Route::Local("10.65.0.2/32", "cali2")});
  absl::Status s = table.Apply();
  CHECK(s.code() == absl::StatusCode::kNotFound);
  CHECK(s.message().find("1 more failures pending") != absl::string_view::npos);
  CHECK(table.PendingCount() == 2);
}

TEST_CASE("RouteTable: a failed read-back changes nothing", "[unit][routes]") {
  FakeNetlink kernel;
  RouteTable table(kernel, kProtoFelix, kMainTable);
  table.SetDesired("b", {Route::Blackhole("10.65.0.0/26")});
  kernel.FailNext(NetlinkOp::kRouteList, ENOBUFS);
  CHECK(table.Resync().code() == absl::StatusCode::kUnavailable);
  CHECK(kernel.Writes() == 0);
  REQUIRE(table.Resync().ok());
  CHECK(kernel.Routes().size() == 1);
}

}  // namespace
}  // namespace calico::kernel
