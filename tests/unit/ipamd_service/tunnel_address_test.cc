#include "ipamd/service/tunnel_address.h"

#include <catch2/catch.hpp>

#include "ipamd/allocator/check.h"
#include "ipamd/allocator/resource_environment.h"
#include "tests/unit/ipamd_service/service_fixture.h"

namespace calico::ipamd::testing {
namespace {

using service::EnsureVxlanTunnelAddress;
using service::TunnelResult;

struct Harness {
  Harness() {
    store = OpenSqlite(dir.path());
    allocator = std::make_unique<Allocator>(*store, DatastoreEnvironment(*store, absl::ZeroDuration()));
  }
  void Pool(const std::string& name, const std::string& cidr, const std::string& vxlan,
            const std::string& selector = "all()") {
    resources::Client client(*store);
    Ok(client.Apply(MakeResource({{"apiVersion", "projectcalico.org/v3"},
                                  {"kind", "IPPool"},
                                  {"metadata", {{"name", name}}},
                                  {"spec", {{"cidr", cidr},
                                            {"blockSize", cidr.find(':') == std::string::npos ? 26 : 122},
                                            {"vxlanMode", vxlan},
                                            {"nodeSelector", selector}}}})));
  }
  std::string NodeField(const std::string& node) {
    resources::Client client(*store);
    resources::Resource r = Ok(client.Get(*resources::FindKind("Node"), "", node));
    return r.object["spec"].value("ipv4VXLANTunnelAddr", "");
  }
  TunnelResult Pass(const std::string& node = "node1") {
    return Ok(EnsureVxlanTunnelAddress(*allocator, *store, node));
  }
  std::vector<net::IpAddress> Held(const std::string& node = "node1") {
    absl::StatusOr<std::vector<net::IpAddress>> held =
        allocator->GetHandle(service::VxlanTunnelHandle(node));
    return held.ok() ? *held : std::vector<net::IpAddress>{};
  }

  TempDir dir;
  std::unique_ptr<datastore::Datastore> store;
  std::unique_ptr<Allocator> allocator;
};

TEST_CASE("no VXLAN pool: no tunnel address, also without a Node", "[unit][tunnel]") {
  Harness h;
  h.Pool("plain", "10.80.0.0/16", "Never");
  CHECK(h.Pass().address.empty());
  CreateNode(*h.store, "node1");
  TunnelResult r = h.Pass();
  CHECK(r.address.empty());
  CHECK_FALSE(r.changed);
  CHECK(h.NodeField("node1").empty());
}

TEST_CASE("a VXLAN pool without a Node resource is a clear error", "[unit][tunnel]") {
  Harness h;
  h.Pool("vx", "10.80.0.0/16", "Always");
  absl::StatusOr<TunnelResult> r = EnsureVxlanTunnelAddress(*h.allocator, *h.store, "node1");
  REQUIRE(absl::IsNotFound(r.status()));
  CHECK(std::string(r.status().message()).find("no Node resource named node1") != std::string::npos);
  CHECK(h.Held().empty());
}

TEST_CASE("a VXLAN pool: one address from it on the handle and the Node, kept on later passes",
          "[unit][tunnel]") {
  Harness h;
  h.Pool("plain", "10.70.0.0/16", "Never");
  h.Pool("vx", "10.80.0.0/16", "CrossSubnet");
  CreateNode(*h.store, "node1");
  TunnelResult r = h.Pass();
  CHECK(r.changed);
  REQUIRE(!r.address.empty());
  CHECK(net::Contains(*net::ParsePrefix("10.80.0.0/16"), *net::ParseIp(r.address)));
  CHECK(h.NodeField("node1") == r.address);
  REQUIRE(h.Held().size() == 1);
  CHECK(net::FormatIp(h.Held()[0]) == r.address);
  TunnelResult again = h.Pass();
  CHECK_FALSE(again.changed);
  CHECK(again.address == r.address);
  CHECK(h.Held().size() == 1);
}

TEST_CASE("a Node naming an address its handle does not hold gets a held one, nothing leaks",
          "[unit][tunnel]") {
  Harness h;
  h.Pool("vx", "10.80.0.0/16", "Always");
  CreateNode(*h.store, "node1");
  const std::string first = h.Pass().address;
  // A restored backup: the Node names some other address.
  resources::Client client(*h.store);
  resources::Resource node = Ok(client.Get(*resources::FindKind("Node"), "", "node1"));
  node.object["spec"]["ipv4VXLANTunnelAddr"] = "10.80.200.1";
  Ok(client.Replace(node));
  TunnelResult r = h.Pass();
  CHECK(r.changed);
  CHECK(r.address != "10.80.200.1");
  CHECK(h.NodeField("node1") == r.address);
  CHECK(h.Held().size() == 1);
  // Every allocated address is the tunnel's: the stale one was released.
  std::vector<Block> blocks = Ok(h.allocator->ListBlocks());
  int allocated = 0;
  for (const Block& b : blocks) allocated += b.NumAddresses() - b.NumFree();
  CHECK(allocated == 1);
  (void)first;
}

TEST_CASE("the pool leaving VXLAN clears the Node's field and releases the address", "[unit][tunnel]") {
  Harness h;
  h.Pool("vx", "10.80.0.0/16", "Always");
  CreateNode(*h.store, "node1");
  REQUIRE(!h.Pass().address.empty());
  h.Pool("vx", "10.80.0.0/16", "Never");
  TunnelResult r = h.Pass();
  CHECK(r.changed);
  CHECK(r.address.empty());
  CHECK(h.NodeField("node1").empty());
  CHECK(h.Held().empty());
}

TEST_CASE("a VXLAN pool whose nodeSelector leaves the node out gives it no address", "[unit][tunnel]") {
  Harness h;
  h.Pool("vx", "10.80.0.0/16", "Always", "zone == 'b'");
  CreateNode(*h.store, "node1");
  CHECK(h.Pass().address.empty());
  CHECK(h.Held().empty());
}

}  // namespace
}  // namespace calico::ipamd::testing

namespace calico::ipamd::testing {
namespace {

TEST_CASE("an IPv6 VXLAN pool: its own handle and ipv6VXLANTunnelAddr, next to the IPv4 one",
          "[unit][tunnel]") {
  Harness h;
  h.Pool("vx4", "10.80.0.0/16", "Always");
  h.Pool("vx6", "fd00:80::/48", "Always");
  CreateNode(*h.store, "node1");
  TunnelResult v4 = Ok(service::EnsureVxlanTunnelAddress(*h.allocator, *h.store, "node1", 4));
  TunnelResult v6 = Ok(service::EnsureVxlanTunnelAddress(*h.allocator, *h.store, "node1", 6));
  CHECK(net::Contains(*net::ParsePrefix("fd00:80::/48"), *net::ParseIp(v6.address)));
  resources::Client client(*h.store);
  resources::Json spec = Ok(client.Get(*resources::FindKind("Node"), "", "node1")).object["spec"];
  CHECK(spec.value("ipv4VXLANTunnelAddr", "") == v4.address);
  CHECK(spec.value("ipv6VXLANTunnelAddr", "") == v6.address);
  CHECK(h.Held("node1").size() == 1);
  CHECK(Ok(h.allocator->GetHandle("vxlan-v6-tunnel-addr-node1")).size() == 1);
  // Only the IPv6 pool leaves VXLAN: only its address goes.
  h.Pool("vx6", "fd00:80::/48", "Never");
  CHECK(Ok(service::EnsureVxlanTunnelAddress(*h.allocator, *h.store, "node1", 6)).address.empty());
  spec = Ok(client.Get(*resources::FindKind("Node"), "", "node1")).object["spec"];
  CHECK_FALSE(spec.contains("ipv6VXLANTunnelAddr"));
  CHECK(spec.value("ipv4VXLANTunnelAddr", "") == v4.address);
}

}  // namespace
}  // namespace calico::ipamd::testing

namespace calico::ipamd::testing {
namespace {

TEST_CASE("a running ipamd gives its node a tunnel address as soon as a pool turns to VXLAN",
          "[unit][tunnel]") {
  InProcessIpamd ipamd;
  ipamd.options.tunnel_interval = absl::Hours(1);  // only the watch can be in time
  resources::Client client(*ipamd.store);
  auto pool = [&](const std::string& mode) {
    Ok(client.Apply(MakeResource({{"apiVersion", "projectcalico.org/v3"},
                                  {"kind", "IPPool"},
                                  {"metadata", {{"name", "p"}}},
                                  {"spec", {{"cidr", "10.80.0.0/16"}, {"vxlanMode", mode}}}})));
  };
  pool("Never");
  CreateNode(*ipamd.store, "node1");
  ipamd.Start();
  auto field = [&] {
    return Ok(client.Get(*resources::FindKind("Node"), "", "node1")).object["spec"].value("ipv4VXLANTunnelAddr", "");
  };
  CHECK(field().empty());
  pool("Always");
  std::string got;
  for (int i = 0; i < 150 && got.empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    got = field();
  }
  CHECK_FALSE(got.empty());
  pool("Never");
  for (int i = 0; i < 150 && !got.empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    got = field();
  }
  CHECK(got.empty());
}

}  // namespace
}  // namespace calico::ipamd::testing
