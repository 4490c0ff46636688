// PolicyManager against a real (SQLite) datastore and the stateful FakeNftables: events become
// minimal transactions, the table always equals a fresh full build, drift and failed
// transactions are repaired, a restart adopts the table without writing.
#include "felixd/service/policy_manager.h"

#include <catch2/catch.hpp>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/datastore/sqlite/sqlite_datastore.h"
#include "common/resources/client/client.h"
#include "common/resources/resource.h"
#include "felixd/nft/delta.h"
#include "common/kernel/fake_netlink.h"
#include "felixd/nft/fake_nftables.h"
#include "tests/support/datastore/conformance.h"

namespace calico::felixd {
namespace {

struct Env {
  datastore::testing::TempDir dir;
  std::unique_ptr<datastore::Datastore> store;
  nft::FakeNftables nft;
  kernel::FakeNetlink links;
  nft::Dispatch dispatch = nft::Dispatch::kByInterface;
  std::unique_ptr<PolicyManager> manager;

  Env() {
    datastore::Config config;
    config.sqlite_path = dir.path() + "/calico.db";
    store = std::move(*datastore::OpenSqlite(config));
  }
  PolicyManagerOptions Options() {
    PolicyManagerOptions o;
    o.node = "node1";
    o.refresh_interval = absl::Hours(1);  // tests call Refresh themselves
    o.incremental_limit = 4;
    o.layout.dispatch = dispatch;
    return o;
  }
  void Start() {
    manager = std::make_unique<PolicyManager>(*store, nft, Options(), &links);
    REQUIRE(manager->FullSync().ok());
  }
  void AddLink(const std::string& name) {
    kernel::Link l;
    l.name = name;
    l.kind = kernel::LinkKind::kVeth;
    links.AddLinkByHand(l);
  }
  uint32_t GroupOf(const std::string& name) { return links.GetLink(name)->group; }
  // Writes YAML documents through the validating client; returns the last revision.
  datastore::Revision Put(const std::string& yaml) {
    absl::StatusOr<std::vector<resources::ParsedDocument>> docs = resources::ParseDocuments(yaml);
    REQUIRE(docs.ok());
    resources::Client client(*store);
    datastore::Revision rev = 0;
    for (const resources::ParsedDocument& d : *docs) {
      INFO(d.object.dump());
      REQUIRE(d.resource.ok());
      absl::StatusOr<resources::Resource> r = client.Apply(*d.resource);
      INFO(r.status().ToString());
      REQUIRE(r.ok());
      rev = std::stoll(r->object["metadata"]["resourceVersion"].get<std::string>());
    }
    return rev;
  }
  datastore::Revision Delete(const resources::KindInfo* kind, const std::string& ns,
                             const std::string& name) {
    REQUIRE(kind != nullptr);
    resources::Client client(*store);
    REQUIRE(client.Delete(*kind, ns, name).ok());
    return *store->CurrentRevision();
  }
  // Polls until the manager has programmed `revision`.
  void Drain(datastore::Revision revision) {
    for (int i = 0; i < 100 && !manager->WaitProgrammed(revision, absl::ZeroDuration()); ++i) {
      REQUIRE(manager->Poll(absl::Milliseconds(50)).ok());
    }
    REQUIRE(manager->WaitProgrammed(revision, absl::ZeroDuration()));
  }
  // What a manager built from scratch over the same datastore would program (on a host with
  // no links, or this env's).
  nft::TableState FreshState(bool same_links = false) {
    nft::FakeNftables fresh;
    kernel::FakeNetlink fresh_links;
    PolicyManager other(*store, fresh, Options(), same_links ? &links : &fresh_links);
    REQUIRE(other.FullSync().ok());
    return **fresh.Read();
  }
  nft::TableState State() { return **nft.Read(); }
};

std::string Wep(const std::string& node, const std::string& pod, const std::string& ns,
                const std::string& ip, const std::string& iface, const std::string& labels) {
  return absl::StrCat(R"(
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: )", node, "-k8s-", pod, "-eth0, namespace: ", ns, ", labels: {", labels, R"(}}
spec:
  orchestrator: k8s
  node: )", node, R"(
  pod: )", pod, R"(
  endpoint: eth0
  ipNetworks: [)", ip, R"(/32]
  profiles: [kns.)", ns, R"(]
  interfaceName: )", iface, "\n");
}

policy::Packet Tcp(const char* src, const char* dst, int port) {
  policy::Packet p;
  p.src = *net::ParseIp(src);
  p.dst = *net::ParseIp(dst);
  p.protocol = policy::kProtoTcp;
  p.src_port = 40000;
  p.dst_port = port;
  return p;
}

constexpr char kDenyIngress[] = R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
)";

TEST_CASE("policy manager: endpoints and policies become the table a full build makes",
          "[unit][felixd][policy_manager]") {
  Env env;
  env.Start();
  REQUIRE(env.nft.HasTable());
  CHECK(env.manager->Status().ready);
  CHECK(env.nft.ElementsOf("from-wep")->empty());

  datastore::Revision rev = env.Put(Wep("node1", "web", "prod", "10.65.0.2", "cali0000000web", "app: web") +
                                    "---\n" + Wep("node2", "cli", "prod", "10.65.1.2", "cali0000000cli", "app: cli"));
  env.Drain(rev);
  // Only this node's endpoint is dispatched; both are known to Explain.
  CHECK(env.nft.ElementsOf("from-wep")->count("cali0000000web") == 1);
  CHECK(env.nft.ElementsOf("from-wep")->count("cali0000000cli") == 0);
  CHECK(env.State() == env.FreshState());
  CHECK(env.manager->Explain(Tcp("10.65.1.2", "10.65.0.2", 80)).allowed);

  int before = env.nft.applies();
  rev = env.Put(kDenyIngress);
  env.Drain(rev);
  CHECK(env.nft.applies() == before + 1);  // one transaction for the policy
  policy::Verdict v = env.manager->Explain(Tcp("10.65.1.2", "10.65.0.2", 80));
  CHECK_FALSE(v.allowed);
  REQUIRE(v.Deciding() != nullptr);
  CHECK(v.Deciding()->reason == policy::Reason::kEndOfTier);
  CHECK(env.State() == env.FreshState());

  // A label change moves the endpoint out of the policy: elements only, one transaction.
  before = env.nft.applies();
  rev = env.Put(Wep("node1", "web", "prod", "10.65.0.2", "cali0000000web", "app: other"));
  env.Drain(rev);
  CHECK(env.nft.applies() == before + 1);
  CHECK(env.manager->Explain(Tcp("10.65.1.2", "10.65.0.2", 80)).allowed);
  CHECK(env.State() == env.FreshState());

  // Its address changes, its labels and so its policy lists do not: the anti-spoofing element
  // still follows (the endpoint's own event re-renders it).
  env.Drain(env.Put(Wep("node1", "web", "prod", "10.65.0.9", "cali0000000web", "app: other")));
  CHECK(env.nft.ElementsOf(nft::kWepSrc4)->count("cali0000000web . 10.65.0.9") == 1);
  CHECK(env.nft.ElementsOf(nft::kWepSrc4)->count("cali0000000web . 10.65.0.2") == 0);
  CHECK(env.State() == env.FreshState());

  // Deleting the policy and the endpoints leaves the empty table's state.
  rev = env.Put(Wep("node1", "web", "prod", "10.65.0.2", "cali0000000web", "app: web"));
  env.Drain(rev);
  env.Drain(env.Delete(resources::FindKind("networking.k8s.io/v1", "NetworkPolicy"), "prod", "deny-web"));
  CHECK(env.manager->Explain(Tcp("10.65.1.2", "10.65.0.2", 80)).allowed);
  env.Drain(env.Delete(resources::FindKind("WorkloadEndpoint"), "prod", "node1-k8s-web-eth0"));
  CHECK(env.nft.ElementsOf("from-wep")->empty());
  CHECK(env.State() == env.FreshState());
  PolicyStatus s = env.manager->Status();
  CHECK(s.endpoints == 1);
  CHECK(s.local_endpoints == 0);
  CHECK(s.failures == 0);
}

TEST_CASE("policy manager: a burst larger than the incremental limit is one transaction",
          "[unit][felixd][policy_manager]") {
  Env env;
  env.Start();
  std::string yaml;
  for (int i = 0; i < 10; ++i) {
    yaml += Wep("node1", absl::StrCat("p", i), "prod", absl::StrCat("10.65.0.", 10 + i),
                absl::StrCat("cali00000000p", i), "app: web") + "---\n";
  }
  yaml += kDenyIngress;
  // Write everything before the manager looks, so it arrives as one batch.
  datastore::Revision rev = env.Put(yaml);
  int before = env.nft.applies();
  env.Drain(rev);
  CHECK(env.nft.applies() <= before + 2);  // the watch may split it; never one per object
  CHECK(env.nft.ElementsOf("from-wep")->size() == 10);
  CHECK(env.State() == env.FreshState());
}

TEST_CASE("policy manager: a small mixed batch (policies and endpoints) goes object by object",
          "[unit][felixd][policy_manager]") {
  Env env;
  env.Start();
  env.Drain(env.Put(Wep("node1", "web", "prod", "10.65.0.2", "cali0000000web", "app: web") + "---\n" +
                    kDenyIngress));
  // One write transaction would be ideal; the watch may still split it, which is fine too.
  datastore::Revision rev = env.Put(std::string(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-cli, namespace: prod}
spec:
  selector: app == 'web'
  order: 10
  ingress: [{action: Allow, protocol: TCP, source: {selector: app == 'cli'}, destination: {ports: [80]}}]
---
)") + Wep("node1", "cli", "prod", "10.65.0.3", "cali0000000cli", "app: cli"));
  env.Drain(rev);
  CHECK(env.State() == env.FreshState());
  CHECK(env.manager->Explain(Tcp("10.65.0.3", "10.65.0.2", 80)).allowed);
  CHECK_FALSE(env.manager->Explain(Tcp("10.65.0.3", "10.65.0.2", 81)).allowed);
  env.Drain(env.Delete(resources::FindKind("networking.k8s.io/v1", "NetworkPolicy"), "prod", "deny-web"));
  CHECK(env.State() == env.FreshState());
  CHECK(env.manager->Explain(Tcp("10.65.0.3", "10.65.0.2", 80)).allowed);
  CHECK(env.manager->Status().failures == 0);
}

TEST_CASE("policy manager: drift is repaired by the refresh, a restart adopts with no writes",
          "[unit][felixd][policy_manager]") {
  Env env;
  env.Start();
  env.Drain(env.Put(Wep("node1", "web", "prod", "10.65.0.2", "cali0000000web", "app: web") +
                    "---\n" + kDenyIngress));
  nft::TableState good = env.State();

  env.nft.DeleteElementByHand("from-wep", "cali0000000web");
  env.nft.FlushChainByHand("forward");
  REQUIRE(env.State() != good);
  REQUIRE(env.manager->Refresh().ok());
  CHECK(env.State() == good);
  CHECK(env.manager->Status().repairs == 1);
  REQUIRE(env.manager->Refresh().ok());
  CHECK(env.manager->Status().repairs == 1);  // nothing to repair the second time

  env.nft.DeleteTableByHand();
  REQUIRE(env.manager->Refresh().ok());
  CHECK(env.State() == good);

  // A new manager (felixd restarted) reads, diffs, writes nothing.
  int applies = env.nft.applies();
  env.manager.reset();
  env.Start();
  CHECK(env.nft.applies() == applies);
  CHECK(env.State() == good);
}

TEST_CASE("policy manager: a failed transaction is retried from the kernel's real state",
          "[unit][felixd][policy_manager]") {
  Env env;
  env.Start();
  env.nft.FailNextApply(ENOMEM);
  datastore::Revision rev = env.Put(Wep("node1", "web", "prod", "10.65.0.2", "cali0000000web", "app: web"));
  absl::Status polled;
  for (int i = 0; i < 20 && polled.ok(); ++i) polled = env.manager->Poll(absl::Milliseconds(50));
  CHECK_FALSE(polled.ok());
  PolicyStatus s = env.manager->Status();
  CHECK(s.failures == 1);
  REQUIRE_FALSE(s.problems.empty());
  CHECK(s.problems.back().find("apply") != std::string::npos);
  CHECK_FALSE(env.manager->WaitProgrammed(rev, absl::ZeroDuration()));
  // The next poll reads the kernel back and applies what is missing.
  REQUIRE(env.manager->Poll(absl::Milliseconds(10)).ok());
  CHECK(env.nft.ElementsOf("from-wep")->count("cali0000000web") == 1);
  CHECK(env.State() == env.FreshState());
  CHECK(env.manager->Status().repairs == 1);
}

TEST_CASE("policy manager: NAT outgoing follows the IP pools", "[unit][felixd][policy_manager]") {
  Env env;
  env.Start();
  CHECK(env.nft.ElementsOf("nat-pools4")->empty());
  env.Drain(env.Put(R"(
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: nat}
spec: {cidr: 10.65.0.0/16, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: plain}
spec: {cidr: 10.66.0.0/16}
)"));
  CHECK(env.nft.ElementsOf("nat-pools4")->size() == 1);
  CHECK(env.nft.ElementsOf("nat-pools4")->count("10.65.0.0/16") == 1);
  CHECK(env.nft.ElementsOf("all-pools4")->size() == 2);
  CHECK(env.State() == env.FreshState());
  env.Drain(env.Delete(resources::FindKind("IPPool"), "", "nat"));
  CHECK(env.nft.ElementsOf("nat-pools4")->empty());
  CHECK(env.nft.ElementsOf("all-pools4")->size() == 1);
  CHECK(env.State() == env.FreshState());
}

TEST_CASE("policy manager: link-group dispatch — the veth carries its policy combination's group",
          "[unit][felixd][policy_manager]") {
  Env env;
  env.dispatch = nft::Dispatch::kByLinkGroup;
  env.AddLink("cali0000000web");
  env.AddLink("cali0000000cli");
  env.AddLink("cali00000000db");
  env.AddLink("calistray00000");
  REQUIRE(env.links.SetLinkGroup("calistray00000", 0x12345).ok());  // a leftover: reset to 0
  env.Start();
  CHECK(env.GroupOf("calistray00000") == 0);
  env.Drain(env.Put(Wep("node1", "web", "prod", "10.65.0.2", "cali0000000web", "app: web") + "---\n" +
                    Wep("node1", "cli", "prod", "10.65.0.3", "cali0000000cli", "app: cli") + "---\n" +
                    Wep("node1", "db", "prod", "10.65.0.4", "cali00000000db", "app: db")));
  const uint32_t same = env.GroupOf("cali0000000web");
  CHECK(same >= nft::kMinLinkGroup);
  CHECK(env.GroupOf("cali0000000cli") == same);  // same policies (none, profile kns.prod)
  CHECK(env.nft.ElementsOf("from-grp")->count(std::to_string(same)) == 1);
  CHECK_FALSE(env.nft.ElementsOf("from-wep").has_value());  // no per-interface verdicts

  // A policy selecting web moves it to a new combination; cli stays. One transaction.
  int before = env.nft.applies();
  env.Drain(env.Put(kDenyIngress));
  CHECK(env.nft.applies() == before + 1);
  const uint32_t web = env.GroupOf("cali0000000web");
  CHECK(web != same);
  CHECK(env.GroupOf("cali0000000cli") == same);
  CHECK(env.nft.ElementsOf("to-grp")->count(std::to_string(web)) == 1);
  CHECK(env.State() == env.FreshState());

  // cli relabelled into web's combination (db keeps the old one in use): link group only, no
  // nftables transaction.
  before = env.nft.applies();
  env.Drain(env.Put(Wep("node1", "cli", "prod", "10.65.0.3", "cali0000000cli", "app: web")));
  CHECK(env.GroupOf("cali0000000cli") == web);
  CHECK(env.nft.applies() == before);

  // A veth re-made for the same endpoint starts in group 0: the endpoint's next event fixes it,
  // and so does the refresh.
  REQUIRE(env.links.SetLinkGroup("cali0000000cli", 0).ok());
  REQUIRE(env.manager->Refresh().ok());
  CHECK(env.GroupOf("cali0000000cli") == web);
  CHECK(env.manager->Status().repairs == 1);
  // A restart reads the groups and writes none.
  env.manager.reset();
  int applies = env.nft.applies();
  env.Start();
  CHECK(env.nft.applies() == applies);
  CHECK(env.manager->Status().link_group_writes == 0);
  CHECK(env.GroupOf("cali0000000web") == web);

  // A policy over every endpoint of web's group (web and cli): the group keeps its number and
  // points at the new chains; no interface is rewritten, both switch in one transaction.
  const std::string old_chain = env.nft.ElementsOf("from-grp")->at(std::to_string(web));
  before = env.nft.applies();
  env.Drain(env.Put(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web-egress, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
)"));
  CHECK(env.nft.applies() == before + 1);
  CHECK(env.manager->Status().link_group_writes == 0);
  CHECK(env.GroupOf("cali0000000web") == web);
  CHECK(env.GroupOf("cali0000000cli") == web);
  CHECK(env.nft.ElementsOf("from-grp")->at(std::to_string(web)) != old_chain);
  CHECK(env.nft.ElementsOf("from-grp")->size() == 2);  // web's group and db's
  CHECK_FALSE(env.manager->Explain(Tcp("10.65.0.3", "10.65.0.4", 80)).allowed);
  // A restart keeps the number the interfaces carry (a fresh build would hash another): no
  // write, no transaction.
  env.manager.reset();
  applies = env.nft.applies();
  env.Start();
  CHECK(env.nft.applies() == applies);
  CHECK(env.manager->Status().link_group_writes == 0);
}

}  // namespace
}  // namespace calico::felixd

namespace calico::felixd {
namespace {

constexpr char kHostEndpoint[] = R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth0, labels: {role: host}}
spec: {node: node1, interfaceName: eth0, expectedIPs: [192.168.1.10]}
)";
constexpr char kHostPolicy[] = R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: host-web}
spec:
  selector: role == 'host'
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80]}
)";

TEST_CASE("policy manager: host endpoints — events equal a full build, restart writes nothing, failsafe configured",
          "[unit][felixd][policy_manager][hostendpoint]") {
  Env env;
  env.Start();
  env.Drain(env.Put(Wep("node1", "web", "prod", "10.65.0.2", "cali0000000web", "app: web")));
  // One host endpoint event: its elements and chains, equal to a fresh build.
  env.Drain(env.Put(kHostEndpoint));
  CHECK(env.State() == env.FreshState());
  CHECK(env.State().sets.at(nft::kHepInMap).elements.contains("eth0"));
  CHECK(env.manager->Status().host_endpoints == 1);
  CHECK(env.manager->Status().endpoints == 1);  // workloads only
  env.Drain(env.Put(kHostPolicy));
  CHECK(env.State() == env.FreshState());
  CHECK(env.manager->Explain(Tcp("203.0.113.9", "192.168.1.10", 80)).allowed);
  CHECK_FALSE(env.manager->Explain(Tcp("203.0.113.9", "192.168.1.10", 8080)).allowed);
  CHECK(env.manager->Explain(Tcp("203.0.113.9", "192.168.1.10", 22)).allowed);  // failsafe
  // applyOnForward flipped on: forward chains appear, the same endpoints selected.
  env.Drain(env.Put(std::string(kHostPolicy).insert(std::string(kHostPolicy).find("  ingress:"), "  applyOnForward: true\n")));
  CHECK(env.State().sets.at(nft::kHepFwdInMap).elements.contains("eth0"));
  CHECK(env.State() == env.FreshState());

  // An interface-less host endpoint, a second "*" one and doNotTrack are said to be unsupported,
  // not silently ignored; a preDNAT policy is programmed (one upstream's validation would refuse
  // never reaches the model: common/resources refuses it on write).
  env.Drain(env.Put(R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-all}
spec: {node: node1, interfaceName: "*", expectedIPs: [192.168.1.11]}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-all2}
spec: {node: node1, interfaceName: "*"}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-byip}
spec: {node: node1, expectedIPs: [192.168.1.12]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: pre}
spec: {selector: role == 'host', preDNAT: true, applyOnForward: true, ingress: [{action: Deny, source: {nets: [198.51.100.0/24]}}]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: untracked}
spec: {selector: role == 'host', doNotTrack: true, applyOnForward: true, ingress: [{action: Deny, source: {nets: [192.0.2.0/24]}}]}
)"));
  std::string problems;
  for (const std::string& p : env.manager->Status().problems) problems += p + "\n";
  CHECK(problems.find("HostEndpoint \"node1-all\"") == std::string::npos);  // in force
  CHECK(problems.find("HostEndpoint \"node1-all2\": another all-interfaces") != std::string::npos);
  CHECK(problems.find("HostEndpoint \"node1-byip\": no interfaceName") != std::string::npos);
  CHECK(env.State().chains.at(nft::kHepAnyIn).rule_tags.size() == 1);  // node1-all's chains
  CHECK(problems.find("policy \"pre\"") == std::string::npos);
  CHECK(problems.find("policy \"untracked\"") == std::string::npos);
  // doNotTrack: eth0 enters its untracked chain at raw priority; the "*" endpoint never does.
  CHECK(env.State().sets.at(nft::kHepUntrackedInMap).elements.size() == 1);
  CHECK(env.State().sets.at(nft::kHepUntrackedInMap).elements.contains("eth0"));
  policy::Verdict untracked = env.manager->Explain(Tcp("192.0.2.5", "192.168.1.10", 80));
  CHECK_FALSE(untracked.allowed);
  CHECK(untracked.Describe().find("doNotTrack tier default policy untracked rule 0") != std::string::npos);
  // Only "pre" is programmed: eth0 enters a preDNAT chain of one policy.
  CHECK(env.State().sets.at(nft::kHepPreDnatMap).elements.size() == 1);
  CHECK(env.State().sets.at(nft::kHepPreDnatMap).elements.contains("eth0"));
  CHECK(env.manager->Explain(Tcp("198.51.100.7", "192.168.1.10", 22)).allowed);  // failsafe first
  // Port 80 is allowed by normal policy; the preDNAT Deny for that source runs first.
  CHECK(env.manager->Explain(Tcp("203.0.113.9", "192.168.1.10", 80)).allowed);
  policy::Verdict pre_deny = env.manager->Explain(Tcp("198.51.100.7", "192.168.1.10", 80));
  CHECK_FALSE(pre_deny.allowed);
  CHECK(pre_deny.Describe().find("preDNAT tier default policy pre rule 0") != std::string::npos);
  CHECK(env.State() == env.FreshState());

  // Restart adopts with zero writes.
  int applies = env.nft.applies();
  nft::TableState good = env.State();
  env.manager.reset();
  env.Start();
  CHECK(env.nft.applies() == applies);
  CHECK(env.State() == good);

  // Deleted: its chains and elements go.
  env.Drain(env.Delete(resources::FindKind("projectcalico.org/v3", "HostEndpoint"), "", "node1-eth0"));
  CHECK(env.State() == env.FreshState());
  CHECK(env.State().sets.at(nft::kHepInMap).elements.empty());

  // Calico nodes' addresses: VXLAN / IP-in-IP through host endpoints (elements only).
  int before_nodes = env.nft.applies();
  env.Drain(env.Put(R"(
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node2}
spec: {bgp: {ipv4Address: 10.0.0.2/24, ipv6Address: "fd00::2/64"}}
)"));
  CHECK(env.nft.applies() == before_nodes + 1);
  CHECK(env.State().sets.at(nft::kHepNodes4).elements == nft::Elements{{"10.0.0.2", ""}});
  CHECK(env.State().sets.at(nft::kHepNodes6).elements == nft::Elements{{"fd00::2", ""}});
  CHECK(env.State() == env.FreshState());
  env.Drain(env.Delete(resources::FindKind("projectcalico.org/v3", "Node"), "", "node2"));
  CHECK(env.State().sets.at(nft::kHepNodes4).elements.empty());
  CHECK(env.State() == env.FreshState());

  {  // failsafe ports from the options
    PolicyManagerOptions o = env.Options();
    o.failsafe = policy::Failsafe{*policy::ParseFailsafePorts("tcp:2222"), {}};
    nft::FakeNftables other;
    kernel::FakeNetlink other_links;
    PolicyManager m(*env.store, other, o, &other_links);
    REQUIRE(m.FullSync().ok());
    CHECK((*other.Read())->chains.at(nft::kFailsafeInChain).rule_tags.size() == 1);
    CHECK((*other.Read())->chains.at(nft::kFailsafeOutChain).rule_tags.empty());
  }
}

TEST_CASE("policy manager: a host endpoint without interfaceName is found by its expectedIPs, "
          "and follows them on refresh",
          "[unit][felixd][policy_manager][hostendpoint]") {
  Env env;
  kernel::Link eth1;
  eth1.name = "eth1";
  eth1 = env.links.AddLinkByHand(eth1);
  kernel::Link eth2;
  eth2.name = "eth2";
  eth2 = env.links.AddLinkByHand(eth2);
  kernel::Link cali;  // a workload's address never names a host endpoint's interface
  cali.name = "cali0000000web";
  cali = env.links.AddLinkByHand(cali);
  REQUIRE(env.links.ReplaceAddress({net::Prefix{*net::ParseIp("192.168.1.12"), 32}, cali.index}).ok());
  env.Start();
  env.Drain(env.Put(R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-byip, labels: {role: host}}
spec: {node: node1, expectedIPs: [192.168.1.11, 192.168.1.12]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: host-web}
spec: {selector: role == 'host', ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]}
)"));
  auto problems = [&] {
    std::string out;
    for (const std::string& p : env.manager->Status().problems) out += p + "\n";
    return out;
  };
  // Neither address on a host interface yet: not policed, and said so.
  CHECK(problems().find("HostEndpoint \"node1-byip\": no interfaceName, and no interface") != std::string::npos);
  CHECK(env.State().sets.at(nft::kHepInMap).elements.empty());
  CHECK(env.manager->Explain(Tcp("203.0.113.9", "192.168.1.12", 8080)).allowed);
  CHECK(env.manager->Status().host_endpoints == 0);

  // The second expectedIP appears on eth2: the next refresh polices eth2, as a named endpoint.
  REQUIRE(env.links.ReplaceAddress({net::Prefix{*net::ParseIp("192.168.1.12"), 24}, eth2.index}).ok());
  REQUIRE(env.manager->Refresh().ok());
  CHECK(env.State().sets.at(nft::kHepInMap).elements.contains("eth2"));
  CHECK(env.State().sets.at(nft::kHepInMap).elements.size() == 1);
  CHECK(env.manager->Status().host_endpoints == 1);
  CHECK(env.manager->Explain(Tcp("203.0.113.9", "192.168.1.12", 80)).allowed);
  CHECK_FALSE(env.manager->Explain(Tcp("203.0.113.9", "192.168.1.12", 8080)).allowed);
  CHECK(env.State() == env.FreshState(/*same_links=*/true));

  // The first one, on eth1, wins (list order); an event of the endpoint resolves at once.
  REQUIRE(env.links.ReplaceAddress({net::Prefix{*net::ParseIp("192.168.1.11"), 24}, eth1.index}).ok());
  env.Drain(env.Put(R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-byip, labels: {role: host, tier: edge}}
spec: {node: node1, expectedIPs: [192.168.1.11, 192.168.1.12]}
)"));
  CHECK(env.State().sets.at(nft::kHepInMap).elements.contains("eth1"));
  CHECK(env.State().sets.at(nft::kHepInMap).elements.size() == 1);
  CHECK(env.State() == env.FreshState(true));

  // A restart finds it too, and writes nothing.
  int applies = env.nft.applies();
  env.manager.reset();
  env.Start();
  CHECK(env.nft.applies() == applies);

  // A refresh that cannot list the host's addresses keeps eth1 policed, and says why.
  applies = env.nft.applies();
  env.links.FailNext(kernel::NetlinkOp::kAddrList, ENOBUFS);
  REQUIRE(env.manager->Refresh().ok());
  CHECK(env.State().sets.at(nft::kHepInMap).elements.contains("eth1"));
  CHECK(env.nft.applies() == applies);
  CHECK(problems().find("host addresses") != std::string::npos);

  // Both addresses gone: the refresh takes its elements out again.
  REQUIRE(env.links.DeleteAddress({net::Prefix{*net::ParseIp("192.168.1.11"), 24}, eth1.index}).ok());
  REQUIRE(env.links.DeleteAddress({net::Prefix{*net::ParseIp("192.168.1.12"), 24}, eth2.index}).ok());
  REQUIRE(env.manager->Refresh().ok());
  CHECK(env.State().sets.at(nft::kHepInMap).elements.empty());
  CHECK(env.State() == env.FreshState(true));
}

}  // namespace
}  // namespace calico::felixd
