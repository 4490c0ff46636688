#include "felixd/service/node_registration.h"

#include <catch2/catch.hpp>

#include "common/datastore/sqlite/sqlite_datastore.h"
#include "common/kernel/fake_netlink.h"
#include "common/resources/client/client.h"
#include "tests/support/datastore/conformance.h"

namespace calico::felixd {
namespace {

net::Prefix P(std::string_view text) { return *net::ParsePrefix(text); }

// A host with eth0 10.0.0.5/24 (default route), eth1 192.168.9.2/24, a cali veth and a vxlan
// device with addresses of their own.
struct Host {
  datastore::testing::TempDir dir;
  std::unique_ptr<datastore::Datastore> store;
  kernel::FakeNetlink nl;
  Host() {
    datastore::Config config;
    config.sqlite_path = dir.path() + "/calico.db";
    store = std::move(*datastore::OpenSqlite(config));
    int cali = Add("cali0123456789a");
    int eth0 = Add("eth0");
    int eth1 = Add("eth1");
    REQUIRE(nl.ReplaceAddress({.prefix = P("10.244.0.1/32"), .ifindex = cali}).ok());
    REQUIRE(nl.ReplaceAddress({.prefix = P("10.0.0.5/24"), .ifindex = eth0}).ok());
    REQUIRE(nl.ReplaceAddress({.prefix = P("192.168.9.2/24"), .ifindex = eth1}).ok());
    REQUIRE(nl.ReplaceAddress({.prefix = P("fd00:9::2/64"), .ifindex = eth1}).ok());
    kernel::Route def = kernel::Route::Via("0.0.0.0/0", "10.0.0.1", "eth0");
    REQUIRE(nl.ReplaceRoute(def).ok());
  }
  int Add(const std::string& name) {
    kernel::Link l;
    l.name = name;
    l.up = true;
    return nl.AddLinkByHand(l).index;
  }
  resources::Json Spec(const std::string& node = "node1") {
    resources::Client client(*store);
    absl::StatusOr<resources::Resource> r = client.Get(*resources::FindKind("Node"), "", node);
    REQUIRE(r.ok());
    return r->object["spec"];
  }
};

TEST_CASE("autodetect: the default route's device, or first-found, interface=, cidr=") {
  Host h;
  CHECK(*DetectNodeAddress(h.nl, 4, "default-route") == P("10.0.0.5/24"));
  CHECK(*DetectNodeAddress(h.nl, 4, "first-found") == P("10.0.0.5/24"));  // cali* skipped
  CHECK(*DetectNodeAddress(h.nl, 4, "interface=eth1") == P("192.168.9.2/24"));
  CHECK(*DetectNodeAddress(h.nl, 4, "cidr=192.168.0.0/16") == P("192.168.9.2/24"));
  CHECK(*DetectNodeAddress(h.nl, 6, "first-found") == P("fd00:9::2/64"));
  absl::StatusOr<net::Prefix> none = DetectNodeAddress(h.nl, 4, "interface=wlan.*");
  CHECK(absl::IsNotFound(none.status()));
  CHECK(std::string(none.status().message()) == "no global IPv4 address on devices matching wlan.*");
  CHECK(absl::IsInvalidArgument(DetectNodeAddress(h.nl, 4, "can-reach=8.8.8.8").status()));
  CHECK(absl::IsInvalidArgument(DetectNodeAddress(h.nl, 4, "interface=(").status()));
  CHECK(*DetectNodeAddress(h.nl, 6, "default-route") == P("fd00:9::2/64"));  // no v6 default: first-found
}

TEST_CASE("a missing Node is created with the detected address, then left alone") {
  Host h;
  absl::StatusOr<RegistrationResult> r = RegisterNode(*h.store, h.nl, {.node = "node1"});
  REQUIRE(r.ok());
  CHECK(r->created);
  CHECK(r->ipv4 == "10.0.0.5/24");
  CHECK(h.Spec()["bgp"]["ipv4Address"] == "10.0.0.5/24");
  CHECK_FALSE(h.Spec()["bgp"].contains("ipv6Address"));  // --ip6 none by default
  r = RegisterNode(*h.store, h.nl, {.node = "node1"});
  REQUIRE(r.ok());
  CHECK_FALSE(r->created);
  CHECK_FALSE(r->updated);
}

TEST_CASE("an operator's address is kept by autodetect and replaced by an explicit --ip") {
  Host h;
  resources::Client client(*h.store);
  REQUIRE(client.Create(*resources::FromObject({{"apiVersion", "projectcalico.org/v3"},
                                                {"kind", "Node"},
                                                {"metadata", {{"name", "node1"}, {"labels", {{"zone", "a"}}}}},
                                                {"spec", {{"bgp", {{"ipv4Address", "192.168.9.2/24"},
                                                                   {"asNumber", 64600}}},
                                                          {"vxlanTunnelMACAddr", "66:00:00:00:00:01"}}}}))
              .ok());
  absl::StatusOr<RegistrationResult> r = RegisterNode(*h.store, h.nl, {.node = "node1", .ip6 = "autodetect"});
  REQUIRE(r.ok());
  CHECK(r->updated);  // v6 filled in
  resources::Json spec = h.Spec();
  CHECK(spec["bgp"]["ipv4Address"] == "192.168.9.2/24");
  CHECK(spec["bgp"]["ipv6Address"] == "fd00:9::2/64");
  CHECK(spec["bgp"]["asNumber"] == 64600);
  CHECK(spec["vxlanTunnelMACAddr"] == "66:00:00:00:00:01");
  REQUIRE(RegisterNode(*h.store, h.nl, {.node = "node1", .ip = "10.0.0.5/24"}).ok());
  CHECK(h.Spec()["bgp"]["ipv4Address"] == "10.0.0.5/24");
}

TEST_CASE("no address to detect is a clear error and nothing is written") {
  Host h;
  absl::StatusOr<RegistrationResult> r =
      RegisterNode(*h.store, h.nl, {.node = "node1", .method = "interface=bond.*"});
  REQUIRE(absl::IsNotFound(r.status()));
  CHECK(std::string(r.status().message()) == "no global IPv4 address on devices matching bond.*");
  resources::Client client(*h.store);
  CHECK(absl::IsNotFound(client.Get(*resources::FindKind("Node"), "", "node1").status()));
  // --ip none: a Node without addresses (a node that only runs workloads on BGP-less pools).
  REQUIRE(RegisterNode(*h.store, h.nl, {.node = "node1", .ip = "none"}).ok());
  CHECK_FALSE(h.Spec().contains("bgp"));
}

}  // namespace
}  // namespace calico::felixd
