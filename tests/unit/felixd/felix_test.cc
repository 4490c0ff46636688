#include "felixd/service/felix.h"

#include <catch2/catch.hpp>
#include <atomic>
#include <cerrno>
#include <functional>

#include "common/datastore/sqlite/sqlite_datastore.h"
#include "common/resources/resource.h"
#include "fake_kernel.h"
#include "felixd/dataplane/naming.h"
#include "ipamd/allocator/block.h"
#include "tests/support/datastore/conformance.h"

namespace calico::felixd {
namespace {

using kernel::NetlinkOp;

net::Prefix P(std::string_view text) { return *net::ParsePrefix(text); }

struct Node {
  datastore::testing::TempDir dir;
  std::unique_ptr<datastore::Datastore> store;
  testing::FakeKernel kernel;
  testing::NamespaceHandle host{kernel, kernel.host};
  std::unique_ptr<Felix> felix;

  Node() {
    datastore::Config config;
    config.sqlite_path = dir.path() + "/calico.db";
    store = std::move(*datastore::OpenSqlite(config));
    kernel::Link eth0;
    eth0.name = "eth0";
    eth0.mtu = 9000;
    eth0.up = true;
    int index = kernel.host.AddLinkByHand(eth0).index;
    kernel::Route def = kernel::Route::Via("0.0.0.0/0", "192.168.1.1", "eth0", true);
    def.hop.ifindex = index;
    kernel.host.PutRouteByHand(def);
    StartFelix();
  }
  std::function<bool(datastore::Revision, absl::Duration)> wait_policy;
  void StartFelix() {
    felix.reset();
    FelixOptions o;
    o.wait_policy = wait_policy;
    o.node = "node1";
    o.resync_interval = absl::Hours(1);  // tests drive SyncOnce themselves
    felix = std::make_unique<Felix>(*store, host, kernel.Opener(), o);
    REQUIRE(felix->Start().ok());
  }
  std::vector<kernel::Route> FelixRoutes() {
    std::vector<kernel::Route> out;
    for (const kernel::Route& r : kernel.host.Routes()) {
      if (r.protocol == kDefaultRouteProtocol) out.push_back(r);
    }
    return out;
  }
};

WorkloadRequest Pod(std::string name, std::string ip, std::string container = "c1") {
  WorkloadRequest r;
  r.ns = "default";
  r.pod = name;
  r.container_id = std::move(container);
  r.netns = "/run/netns/" + name;
  r.ips = {P(ip)};
  r.labels = {{"app", "web"}};
  return r;
}

absl::StatusOr<resources::Resource> GetWep(Node& n, std::string_view name) {
  resources::Client client(*n.store);
  return client.Get(*resources::FindKind("WorkloadEndpoint"), "default", name);
}

TEST_CASE("setup wires the pod, routes it with felixd's protocol and records its endpoint") {
  Node n;
  n.kernel.AddNetns("/run/netns/web1");
  absl::StatusOr<SetupResult> r = n.felix->Setup(Pod("web1", "10.65.0.3/32"));
  REQUIRE(r.ok());
  CHECK(r->host_ifname == HostVethName("default", "web1"));
  CHECK(r->endpoint_name == "node1-k8s-web1-eth0");
  CHECK(r->mtu == 9000);  // detected from the default route's device
  CHECK_FALSE(r->existing);

  std::vector<kernel::Route> routes = n.FelixRoutes();
  REQUIRE(routes.size() == 1);
  CHECK(routes[0].dst == P("10.65.0.3/32"));
  CHECK(routes[0].hop.ifname == r->host_ifname);

  absl::StatusOr<resources::Resource> wep = GetWep(n, "node1-k8s-web1-eth0");
  REQUIRE(wep.ok());
  const resources::Json& spec = wep->object["spec"];
  CHECK(spec["node"] == "node1");
  CHECK(spec["pod"] == "web1");
  CHECK(spec["containerID"] == "c1");
  CHECK(spec["interfaceName"] == r->host_ifname);
  CHECK(spec["ipNetworks"][0] == "10.65.0.3/32");
  CHECK(spec["profiles"][0] == "kns.default");
  CHECK(spec["mac"] == r->container_mac);
  CHECK(wep->object["metadata"]["labels"]["app"] == "web");
  CHECK(wep->object["metadata"]["labels"]["projectcalico.org/namespace"] == "default");
  CHECK(n.felix->Check(Pod("web1", "10.65.0.3/32")).ok());
}

TEST_CASE("setup waits for the endpoint's policy (the revision it wrote) and succeeds on a timeout") {
  Node n;
  std::vector<datastore::Revision> asked;
  bool programmed = true;
  n.wait_policy = [&](datastore::Revision rev, absl::Duration timeout) {
    asked.push_back(rev);
    CHECK(timeout == absl::Seconds(2));
    return programmed;
  };
  n.StartFelix();
  n.kernel.AddNetns("/run/netns/web1");
  n.kernel.AddNetns("/run/netns/web2");
  REQUIRE(n.felix->Setup(Pod("web1", "10.65.0.3/32")).ok());
  absl::StatusOr<resources::Resource> wep = GetWep(n, "node1-k8s-web1-eth0");
  REQUIRE(wep.ok());
  REQUIRE(asked.size() == 1);
  CHECK(asked[0] == std::stoll(wep->object["metadata"]["resourceVersion"].get<std::string>()));
  programmed = false;  // policy never arrives: the pod is still set up (a warning is logged)
  CHECK(n.felix->Setup(Pod("web2", "10.65.0.4/32", "c2")).ok());
  CHECK(asked.size() == 2);
}

TEST_CASE("setup again for the same container returns the same result without kernel writes") {
  Node n;
  n.kernel.AddNetns("/run/netns/web1");
  SetupResult first = *n.felix->Setup(Pod("web1", "10.65.0.3/32"));
  n.kernel.host.ResetCalls();
  SetupResult again = *n.felix->Setup(Pod("web1", "10.65.0.3/32"));
  CHECK(again.existing);
  CHECK(again.container_mac == first.container_mac);
  CHECK(n.kernel.host.Writes() == 0);
}

TEST_CASE("teardown removes veth, route and endpoint, and a second teardown finds nothing") {
  Node n;
  n.kernel.AddNetns("/run/netns/web1");
  SetupResult r = *n.felix->Setup(Pod("web1", "10.65.0.3/32"));
  TeardownResult t = *n.felix->Teardown(Pod("web1", "10.65.0.3/32"));
  CHECK(t.removed.size() == 3);
  CHECK_FALSE(n.kernel.host.GetLink(r.host_ifname).ok());
  CHECK(n.FelixRoutes().empty());
  CHECK(absl::IsNotFound(GetWep(n, "node1-k8s-web1-eth0").status()));
  TeardownResult again = *n.felix->Teardown(Pod("web1", "10.65.0.3/32"));
  CHECK(again.removed.empty());
  // A later full sync does not bring anything back.
  REQUIRE(n.felix->SyncOnce().ok());
  CHECK(n.FelixRoutes().empty());
}

TEST_CASE("teardown of an old sandbox keeps the pod's new one") {
  Node n;
  n.kernel.AddNetns("/run/netns/web1");
  SetupResult r = *n.felix->Setup(Pod("web1", "10.65.0.3/32", "new-sandbox"));
  TeardownResult t = *n.felix->Teardown(Pod("web1", "10.65.0.3/32", "old-sandbox"));
  CHECK(t.removed.empty());
  CHECK(t.skipped_reason.find("new-sandbox") != std::string::npos);
  CHECK(n.kernel.host.GetLink(r.host_ifname).ok());
  CHECK(n.FelixRoutes().size() == 1);
}

TEST_CASE("a failed host route rolls the workload back: no veth, no route, no endpoint") {
  Node n;
  n.kernel.AddNetns("/run/netns/web1");
  n.kernel.host.FailNext(NetlinkOp::kRouteReplace, ENOBUFS);
  absl::StatusOr<SetupResult> r = n.felix->Setup(Pod("web1", "10.65.0.3/32"));
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("host routes") != std::string::npos);
  CHECK_FALSE(n.kernel.host.GetLink(HostVethName("default", "web1")).ok());
  CHECK(n.FelixRoutes().empty());
  CHECK(absl::IsNotFound(GetWep(n, "node1-k8s-web1-eth0").status()));
}

TEST_CASE("bad requests are refused before anything is created") {
  Node n;
  n.kernel.AddNetns("/run/netns/web1");
  WorkloadRequest no_netns = Pod("web1", "10.65.0.3/32");
  no_netns.netns.clear();
  CHECK(absl::IsInvalidArgument(n.felix->Setup(no_netns).status()));
  WorkloadRequest long_name = Pod("web1", "10.65.0.3/32");
  long_name.endpoint = "a-very-long-ifname";
  CHECK(absl::IsInvalidArgument(n.felix->Setup(long_name).status()));
  WorkloadRequest wide = Pod("web1", "10.65.0.0/24");
  CHECK(absl::IsInvalidArgument(n.felix->Setup(wide).status()));
  CHECK(n.kernel.host.Links().size() == 2);  // lo, eth0
}

TEST_CASE("drift is repaired: a deleted route and a changed sysctl come back on resync") {
  Node n;
  n.kernel.AddNetns("/run/netns/web1");
  SetupResult r = *n.felix->Setup(Pod("web1", "10.65.0.3/32"));
  n.kernel.host.DeleteRouteByHand(n.FelixRoutes()[0].Key());
  std::string proxy_arp = "net/ipv4/conf/" + r.host_ifname + "/proxy_arp";
  n.kernel.host.SetSysctlByHand(proxy_arp, "0");
  REQUIRE(n.felix->SyncOnce().ok());
  CHECK(n.FelixRoutes().size() == 1);
  CHECK(n.kernel.host.Sysctl(proxy_arp) == "1");
  CHECK(n.felix->Status().repairs == 1);
}

TEST_CASE("a restarted felixd adopts existing workloads without a single kernel write") {
  Node n;
  n.kernel.AddNetns("/run/netns/web1");
  n.kernel.AddNetns("/run/netns/web2");
  REQUIRE(n.felix->Setup(Pod("web1", "10.65.0.3/32")).ok());
  REQUIRE(n.felix->Setup(Pod("web2", "10.65.0.4/32")).ok());
  n.kernel.host.ResetCalls();
  n.StartFelix();
  CHECK(n.kernel.host.Writes() == 0);
  CHECK(n.felix->Status().workloads == 2);
  CHECK(n.FelixRoutes().size() == 2);
}

TEST_CASE("a stray route of felixd's protocol is removed, another protocol's is left alone") {
  Node n;
  kernel::Route stray = kernel::Route::Blackhole("10.99.0.0/26");
  stray.protocol = kDefaultRouteProtocol;
  n.kernel.host.PutRouteByHand(stray);
  kernel::Route operators = kernel::Route::Blackhole("10.98.0.0/26");
  operators.protocol = kernel::kProtoBoot;
  n.kernel.host.PutRouteByHand(operators);
  REQUIRE(n.felix->SyncOnce().ok());
  CHECK(n.FelixRoutes().empty());
  bool kept = false;
  for (const kernel::Route& r : n.kernel.host.Routes()) kept |= r.dst == P("10.98.0.0/26");
  CHECK(kept);
}

TEST_CASE("confirmed affine blocks get a blackhole and are advertised, borrowed addresses as /32") {
  Node n;
  ipamd::BlockAffinity confirmed;
  confirmed.state = ipamd::AffinityState::kConfirmed;
  REQUIRE(n.store->Create(ipamd::AffinityKey("node1", P("10.65.0.0/26")),
                          ipamd::EncodeAffinity(confirmed)).ok());
  REQUIRE(n.store->Create(ipamd::AffinityKey("node2", P("10.65.0.64/26")),
                          ipamd::EncodeAffinity(confirmed)).ok());
  REQUIRE(n.felix->SyncOnce().ok());
  std::vector<kernel::Route> routes = n.FelixRoutes();
  REQUIRE(routes.size() == 1);
  CHECK(routes[0].type == kernel::RouteType::kBlackhole);
  CHECK(routes[0].dst == P("10.65.0.0/26"));

  n.kernel.AddNetns("/run/netns/web1");
  n.kernel.AddNetns("/run/netns/web2");
  REQUIRE(n.felix->Setup(Pod("web1", "10.65.0.3/32")).ok());
  REQUIRE(n.felix->Setup(Pod("web2", "10.65.0.70/32")).ok());  // borrowed from node2's block
  auto [version, advertised] = *n.felix->WaitAdvertised(0, absl::ZeroDuration());
  CHECK(version > 0);
  std::vector<std::string> texts;
  for (const AdvertisedRoute& a : advertised) {
    texts.push_back(net::FormatCidr(a.cidr) + (a.block ? " block" : " borrowed"));
  }
  CHECK(texts == std::vector<std::string>{"10.65.0.0/26 block", "10.65.0.70/32 borrowed"});
}

TEST_CASE("check fails with a clear message when the pod's address or the host route is gone") {
  Node n;
  kernel::FakeNetlink& pod = n.kernel.AddNetns("/run/netns/web1");
  SetupResult r = *n.felix->Setup(Pod("web1", "10.65.0.3/32"));
  n.kernel.host.DeleteRouteByHand(n.FelixRoutes()[0].Key());
  kernel::Link eth0 = *pod.GetLink("eth0");
  REQUIRE(pod.DeleteAddress({.prefix = P("10.65.0.3/32"), .ifindex = eth0.index, .nodad = false}).ok());
  absl::Status s = n.felix->Check(Pod("web1", "10.65.0.3/32"));
  REQUIRE(absl::IsFailedPrecondition(s));
  std::string msg(s.message());
  CHECK(msg.find("address 10.65.0.3/32 is missing on eth0") != std::string::npos);
  CHECK(msg.find("host route 10.65.0.3/32 dev " + r.host_ifname + " is missing") != std::string::npos);
  CHECK(absl::IsNotFound(n.felix->Check(Pod("other", "10.65.0.9/32"))));
}

}  // namespace
}  // namespace calico::felixd

namespace calico::felixd {
namespace {

bool Eventually(const std::function<bool()>& condition) {
  for (int i = 0; i < 100; ++i) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

TEST_CASE("endpoint changes written by others reach the kernel through the watch, one by one") {
  Node n;
  kernel::Link cali;
  cali.name = "caliother00001";
  cali.up = true;
  n.kernel.host.AddLinkByHand(cali);
  resources::Client client(*n.store);
  auto wep = [](const std::string& node, const std::string& name) {
    resources::Json j;
    j["apiVersion"] = "projectcalico.org/v3";
    j["kind"] = "WorkloadEndpoint";
    j["metadata"]["name"] = name;
    j["metadata"]["namespace"] = "default";
    j["spec"]["node"] = node;
    j["spec"]["orchestrator"] = "k8s";
    j["spec"]["pod"] = "other";
    j["spec"]["endpoint"] = "eth0";
    j["spec"]["interfaceName"] = "caliother00001";
    j["spec"]["ipNetworks"] = resources::Json::array({"10.65.0.9/32"});
    return *resources::FromObject(j, "default");
  };
  REQUIRE(client.Create(wep("node1", "node1-k8s-other-eth0")).ok());
  REQUIRE(client.Create(wep("node2", "node2-k8s-other-eth0")).ok());  // not ours
  CHECK(Eventually([&] { return n.FelixRoutes().size() == 1; }));
  REQUIRE(client.Delete(*resources::FindKind("WorkloadEndpoint"), "default", "node1-k8s-other-eth0").ok());
  CHECK(Eventually([&] { return n.FelixRoutes().empty(); }));
  CHECK(n.felix->Status().workloads == 0);
}


TEST_CASE("an IP-in-IP pool brings tunl0 up, or says the ipip module is missing") {
  Node n;
  resources::Client client(*n.store);
  resources::Json pool;
  pool["apiVersion"] = "projectcalico.org/v3";
  pool["kind"] = "IPPool";
  pool["metadata"]["name"] = "ipip";
  pool["spec"]["cidr"] = "10.70.0.0/16";
  pool["spec"]["ipipMode"] = "Always";
  REQUIRE(client.Create(*resources::FromObject(pool)).ok());
  // No ipip module (as on this machine): no tunl0, and the reason in the status.
  REQUIRE(n.felix->SyncOnce().ok());
  std::vector<std::string> problems = n.felix->Status().problems;
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("IP-in-IP pools need tunl0") != std::string::npos);
  CHECK(problems[0].find("no ipip module") != std::string::npos);
  CHECK(absl::IsNotFound(n.kernel.host.GetLink("tunl0").status()));
  // With the module: tunl0 exists and is up, and the problem is gone.
  n.kernel.host.set_ipip_available(true);
  REQUIRE(n.felix->SyncOnce().ok());
  CHECK(n.felix->Status().problems.empty());
  absl::StatusOr<kernel::Link> tunl = n.kernel.host.GetLink("tunl0");
  REQUIRE(tunl.ok());
  CHECK(tunl->kind == kernel::LinkKind::kIpip);
  CHECK(tunl->up);
}


TEST_CASE("a setup succeeds while another endpoint's route keeps failing") {
  Node n;
  n.kernel.AddNetns("/run/netns/web1");
  n.kernel.AddNetns("/run/netns/web2");
  absl::StatusOr<SetupResult> a = n.felix->Setup(Pod("web1", "10.65.0.3/32"));
  REQUIRE(a.ok());
  // web1's host veth vanishes behind felixd's back; its route is due again and now fails
  // (ENODEV) on every Apply until the endpoint goes.
  REQUIRE(n.kernel.host.DeleteLink(a->host_ifname).ok());
  (void)n.felix->SyncOnce();
  absl::StatusOr<SetupResult> b = n.felix->Setup(Pod("web2", "10.65.0.4/32", "c2"));
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  bool routed = false;
  for (const kernel::Route& r : n.FelixRoutes()) routed |= r.dst == P("10.65.0.4/32") && r.hop.ifname == b->host_ifname;
  CHECK(routed);
}

}  // namespace
}  // namespace calico::felixd

namespace calico::felixd {
namespace {

void ApplyYamlLike(datastore::Datastore& store, resources::Json object) {
  resources::Client client(store);
  absl::StatusOr<resources::Resource> r = resources::FromObject(object);
  REQUIRE(r.ok());
  REQUIRE(client.Apply(*r).ok());
}

TEST_CASE("a VXLAN pool: felixd publishes its VTEP MAC, builds vxlan.calico, routes remote blocks through it") {
  Node n;
  REQUIRE(n.kernel.host.ReplaceAddress({.prefix = P("10.99.0.1/24"),
                                        .ifindex = n.kernel.host.GetLink("eth0")->index}).ok());
  ApplyYamlLike(*n.store, {{"apiVersion", "projectcalico.org/v3"}, {"kind", "IPPool"},
                           {"metadata", {{"name", "vx"}}},
                           {"spec", {{"cidr", "10.65.0.0/16"}, {"vxlanMode", "Always"}}}});
  ApplyYamlLike(*n.store, {{"apiVersion", "projectcalico.org/v3"}, {"kind", "Node"},
                           {"metadata", {{"name", "node1"}}},
                           {"spec", {{"bgp", {{"ipv4Address", "10.99.0.1/24"}}},
                                     {"ipv4VXLANTunnelAddr", "10.65.0.0"}}}});
  ApplyYamlLike(*n.store, {{"apiVersion", "projectcalico.org/v3"}, {"kind", "Node"},
                           {"metadata", {{"name", "node2"}}},
                           {"spec", {{"bgp", {{"ipv4Address", "10.99.0.2/24"}}},
                                     {"ipv4VXLANTunnelAddr", "10.65.0.64"},
                                     {"vxlanTunnelMACAddr", "66:00:00:00:00:02"}}}});
  ipamd::BlockAffinity confirmed;
  confirmed.state = ipamd::AffinityState::kConfirmed;
  REQUIRE(n.store->Create(ipamd::AffinityKey("node1", P("10.65.0.0/26")), ipamd::EncodeAffinity(confirmed)).ok());
  REQUIRE(n.store->Create(ipamd::AffinityKey("node2", P("10.65.0.64/26")), ipamd::EncodeAffinity(confirmed)).ok());
  REQUIRE(n.felix->SyncOnce().ok());

  // The MAC went into this node's Node (and nowhere else).
  resources::Client client(*n.store);
  absl::StatusOr<resources::Resource> node1 = client.Get(*resources::FindKind("Node"), "", "node1");
  REQUIRE(node1.ok());
  CHECK(node1->object["spec"].value("vxlanTunnelMACAddr", "") == kernel::FormatMac(VtepMacFor("node1")));
  absl::StatusOr<kernel::Link> dev = n.kernel.host.GetLink(kVxlanDevice);
  REQUIRE(dev.ok());
  CHECK(dev->mtu == 8950);
  bool routed = false;
  for (const kernel::Route& r : n.FelixRoutes()) {
    if (r.dst == P("10.65.0.64/26")) {
      routed = r.hop.ifname == kVxlanDevice && r.hop.onlink && r.hop.gateway == net::ParseIp("10.65.0.64");
    }
  }
  CHECK(routed);
  FelixStatus status = n.felix->Status();
  CHECK(status.problems.empty());
  REQUIRE(status.vxlan);
  CHECK(status.vxlan->vteps == 1);
  CHECK(status.vxlan->tunnel_ip == "10.65.0.0");
  CHECK(status.mtu == 8950);  // new pods fit the encapsulation
  // VXLAN blocks are not advertised over BGP.
  auto [version, advertised] = *n.felix->WaitAdvertised(0, absl::ZeroDuration());
  CHECK(advertised.empty());
  // Another node's pod with an address borrowed from this node's block: the watch brings its
  // /32 through node2's VTEP (no SyncOnce here), and its deletion takes it away again.
  resources::Json wep = {{"apiVersion", "projectcalico.org/v3"}, {"kind", "WorkloadEndpoint"},
                         {"metadata", {{"name", "node2-k8s-b-eth0"}, {"namespace", "default"}}},
                         {"spec", {{"node", "node2"}, {"orchestrator", "k8s"}, {"pod", "b"},
                                   {"endpoint", "eth0"}, {"interfaceName", "cali0000000000b"},
                                   {"ipNetworks", {"10.65.0.10/32"}}}}};
  ApplyYamlLike(*n.store, wep);
  auto has_borrowed = [&] {
    for (const kernel::Route& r : n.FelixRoutes()) {
      if (r.dst == P("10.65.0.10/32")) return r.hop.ifname == kVxlanDevice;
    }
    return false;
  };
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    seen = has_borrowed();
  }
  CHECK(seen);
  REQUIRE(client.Delete(*resources::FindKind("WorkloadEndpoint"), "default", "node2-k8s-b-eth0").ok());
  for (int i = 0; i < 100 && seen; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    seen = has_borrowed();
  }
  CHECK_FALSE(seen);
  // Pool back to Never: the device and its routes go.
  ApplyYamlLike(*n.store, {{"apiVersion", "projectcalico.org/v3"}, {"kind", "IPPool"},
                           {"metadata", {{"name", "vx"}}},
                           {"spec", {{"cidr", "10.65.0.0/16"}, {"vxlanMode", "Never"}}}});
  REQUIRE(n.felix->SyncOnce().ok());
  CHECK(absl::IsNotFound(n.kernel.host.GetLink(kVxlanDevice).status()));
  for (const kernel::Route& r : n.FelixRoutes()) CHECK(r.dst != P("10.65.0.64/26"));
  CHECK(n.felix->Status().mtu == 9000);
  CHECK_FALSE(n.felix->Status().vxlan);
}

}  // namespace
}  // namespace calico::felixd

namespace calico::felixd {
namespace {

// Counts List calls on its way to a real store.
class ListCounter : public datastore::Datastore {
 public:
  explicit ListCounter(datastore::Datastore& inner) : inner_(inner) {}
  std::atomic<int> lists{0};
  absl::StatusOr<datastore::Entry> Get(std::string_view key) override { return inner_.Get(key); }
  absl::StatusOr<datastore::ListResult> List(std::string_view prefix) override {
    ++lists;
    return inner_.List(prefix);
  }
  absl::StatusOr<datastore::Revision> Create(std::string_view key, std::string_view value,
                                             const datastore::CreateOptions& options) override {
    return inner_.Create(key, value, options);
  }
  absl::StatusOr<datastore::Revision> Update(std::string_view key, std::string_view value,
                                             datastore::Revision expected) override {
    return inner_.Update(key, value, expected);
  }
  absl::StatusOr<datastore::Revision> Delete(std::string_view key, datastore::Revision expected) override {
    return inner_.Delete(key, expected);
  }
  absl::StatusOr<std::vector<datastore::Revision>> Commit(const std::vector<datastore::TxnOp>& ops) override {
    return inner_.Commit(ops);
  }
  absl::StatusOr<std::unique_ptr<datastore::Watch>> WatchPrefix(std::string_view prefix,
                                                                datastore::Revision after) override {
    return inner_.WatchPrefix(prefix, after);
  }
  absl::Status Compact(datastore::Revision revision) override { return inner_.Compact(revision); }
  absl::StatusOr<datastore::Revision> CurrentRevision() override { return inner_.CurrentRevision(); }
  std::string Describe() const override { return inner_.Describe(); }

 private:
  datastore::Datastore& inner_;
};

TEST_CASE("the periodic resync repairs the kernel without re-listing the datastore, a watch event re-lists") {
  Node n;
  n.felix.reset();
  ListCounter counting(*n.store);
  FelixOptions o;
  o.node = "node1";
  o.resync_interval = absl::Milliseconds(50);
  o.relist_interval = absl::Hours(1);
  Felix felix(counting, n.host, n.kernel.Opener(), o);
  REQUIRE(felix.Start().ok());
  n.kernel.AddNetns("/run/netns/web1");
  REQUIRE(felix.Setup(Pod("web1", "10.65.0.3/32")).ok());
  absl::SleepFor(absl::Milliseconds(200));  // the setup's own events settle
  const int lists = counting.lists;
  // A route deleted by hand comes back within a few resync intervals, with no datastore list.
  const kernel::Route route = n.FelixRoutes().at(0);
  n.kernel.host.DeleteRouteByHand(route.Key());
  bool back = false;
  for (int i = 0; i < 50 && !back; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    back = !n.FelixRoutes().empty();
  }
  CHECK(back);
  CHECK(counting.lists == lists);
  // An affinity written by ipamd is a watch event: that re-lists (and programs the blackhole).
  ipamd::BlockAffinity confirmed;
  confirmed.state = ipamd::AffinityState::kConfirmed;
  REQUIRE(n.store->Create(ipamd::AffinityKey("node1", P("10.65.0.0/26")), ipamd::EncodeAffinity(confirmed)).ok());
  bool blackhole = false;
  for (int i = 0; i < 50 && !blackhole; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    for (const kernel::Route& r : n.FelixRoutes()) blackhole |= r.type == kernel::RouteType::kBlackhole;
  }
  CHECK(blackhole);
  CHECK(counting.lists > lists);
  felix.Stop();
}

}  // namespace
}  // namespace calico::felixd
