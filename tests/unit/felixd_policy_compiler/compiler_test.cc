// The compiler against its oracle: for every probe of every scenario, the verdict of the compiled
// nftables program (run by a test-only interpreter of the nft::Rule values) equals
// policy::Explain's. Scenarios are the explain tests' (scenarios.inc) plus a few that stress the
// translation (disjunctions, negations, IPv6); incremental updates must land on the table a full
// rebuild computes, through FakeNftables.

#include <chrono>

#include "felixd/nft/fake_nftables.h"
#include "felixd/policy_compiler/compiler.h"
#include "tests/unit/felixd_policy/world.h"
#include "tests/unit/felixd_policy_compiler/interpreter.h"

namespace calico::felixd::policy_compiler::testing {
namespace {

using policy::Packet;
using policy::SelectionIndex;
using policy::testing::World;

struct Scenario {
  const char* name;
  std::vector<const char*> steps;
};

const std::vector<Scenario> kExplainScenarios = {
#include "tests/unit/felixd_policy_compiler/scenarios.inc"
};

const std::vector<Scenario> kExtraScenarios = {
    {"notICMP with a code, notProtocol, ICMP without protocol",
     {R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: icmp-mix}
spec:
  selector: app == 'web'
  types: [Ingress, Egress]
  ingress:
  - action: Deny
    notICMP: {type: 8, code: 0}
    notProtocol: UDP
  - action: Allow
    protocol: ICMP
    icmp: {type: 8}
  egress:
  - action: Allow
    icmp: {type: 3, code: 4}
    protocol: ICMP
  - action: Deny
    protocol: ICMP
  - action: Allow
    notProtocol: TCP
)"}},
    {"several port ranges, notPorts with a named port, source ports",
     {R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: ports, namespace: prod}
spec:
  selector: all()
  types: [Ingress, Egress]
  ingress:
  - action: Deny
    protocol: TCP
    destination: {ports: [80, "9000:9100", 443, "9050:9200"]}
  - action: Allow
    protocol: TCP
    destination: {notPorts: [http, 5432]}
  - action: Allow
    protocol: UDP
    source: {ports: [40000]}
    destination: {ports: [dns]}
  egress:
  - action: Pass
    protocol: TCP
    destination: {ports: [http, "1:100"]}
  - action: Allow
    protocol: UDP
)"}},
    {"IPv6 and overlapping nets, notNets, ipVersion, Log",
     {R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: six}
spec:
  order: 5
  selector: all()
  types: [Ingress, Egress]
  ingress:
  - action: Log
  - action: Deny
    source: {nets: [2001:db8::/64]}
  - action: Deny
    source: {nets: [192.168.5.0/24, 192.168.5.7/32, 192.168.0.0/16]}
    destination: {notNets: [10.0.1.3/32]}
  - action: Allow
    ipVersion: 6
    source: {notNets: [fd00::/64]}
  - action: Allow
    source: {notNets: [10.0.2.0/24], notSelector: app == 'db'}
  egress:
  - action: Allow
    destination: {selector: app == 'six'}
  - action: Deny
    ipVersion: 4
    destination: {notSelector: has(app)}
  - action: Allow
    ipVersion: 6
)"}},
};

// The explain tests' cluster, plus a service account, a dual-stack pod and room for sets.
World Cluster() {
  World w;
  w.Namespace("prod", {{"team", "a"}, {"env", "prod"}});
  w.Namespace("dev", {{"team", "b"}, {"env", "dev"}});
  w.ServiceAccount("prod", "frontend", {{"tier", "front"}});
  w.Pod("prod", "web", "10.0.1.1", {{"app", "web"}}, "frontend", {{"http", "TCP", 8080}, {"dns", "UDP", 53}});
  w.Pod("prod", "db", "10.0.1.2", {{"app", "db"}}, "database");
  w.Pod("prod", "cache", "10.0.1.3", {{"app", "cache"}});
  w.Pod("dev", "client", "10.0.2.1", {{"app", "client"}});
  w.Pod("dev", "devweb", "10.0.2.2", {{"app", "web"}}, "", {{"http", "TCP", 8081}});
  policy::Endpoint six;
  six.ns = "dev";
  six.name = "node1-k8s-six-eth0";
  six.node = "node1";
  six.interface = "calisix";
  six.ips = {*net::ParseCidrOrIp("10.0.2.3"), *net::ParseCidrOrIp("fd00::3")};
  six.labels = {{"app", "six"}, {"projectcalico.org/namespace", "dev"}, {"projectcalico.org/orchestrator", "k8s"}};
  six.profiles = {"kns.dev"};
  six.ports = {{"http", policy::kProtoTcp, 8080}};
  w.model.Put(six);
  return w;
}

std::vector<Packet> Probes() {
  const std::vector<std::string> v4 = {"10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.2.1", "10.0.2.2", "10.0.2.3",
                                       "192.168.5.5", "192.168.4.4", "203.0.113.9", "198.51.100.9"};
  const std::vector<std::string> v6 = {"fd00::3", "2001:db8::9", "fd00::99"};
  std::vector<Packet> out;
  auto pairs = [&](const std::vector<std::string>& addrs, bool six) {
    for (const std::string& s : addrs) {
      for (const std::string& d : addrs) {
        if (s == d) continue;
        for (int port : {80, 443, 8080, 8081, 3868, 9000, 9100, 9101, 5432, 53, 50}) {
          out.push_back(World::Make(s, d, policy::kProtoTcp, port));
        }
        Packet sport = World::Make(s, d, policy::kProtoTcp, 80);
        sport.src_port = 53;
        out.push_back(sport);
        for (int port : {53, 8080, 5353}) out.push_back(World::Make(s, d, policy::kProtoUdp, port));
        out.push_back(World::Make(s, d, policy::kProtoSctp, 3868));
        for (auto [type, code] : std::vector<std::pair<int, int>>{{8, 0}, {8, 1}, {0, 0}, {3, 4}, {3, 1}}) {
          Packet p = World::PingPacket(s, d, type, code);
          if (six) {
            p.protocol = policy::kProtoIcmpV6;
            if (type == 8) p.icmp_type = 128;
          }
          out.push_back(p);
        }
      }
    }
  };
  pairs(v4, false);
  pairs(v6, true);
  return out;
}

Probe ToProbe(const policy::Model& model, const Packet& p) {
  Probe probe;
  probe.packet = p;
  if (const policy::Endpoint* e = model.EndpointByIp(p.src)) probe.iif = e->interface;
  if (const policy::Endpoint* e = model.EndpointByIp(p.dst)) probe.oif = e->interface;
  return probe;
}

// Every probe: compiled verdict == Explain's. Returns the number of probes.
int CheckOracle(const policy::Model& model, const nft::DesiredTable& table,
                const std::map<std::string, uint32_t>* link_groups = nullptr) {
  static const std::vector<Packet> probes = Probes();
  Interpreter interp(table, link_groups);
  int mismatches = 0;
  for (const Packet& p : probes) {
    policy::Verdict want = policy::Explain(model, p);
    bool got = interp.Forward(ToProbe(model, p));
    if (got != want.allowed && ++mismatches <= 5) {
      FAIL_CHECK(p.ToString() << ": compiled " << (got ? "allow" : "deny") << ", Explain "
                              << want.Describe());
    }
  }
  CHECK(mismatches == 0);
  return int(probes.size());
}

// The table loads into a kernel-like fake (every reference resolves) and reads back as expected.
void CheckLoads(const nft::DesiredTable& table) {
  nft::DesiredTable canonical = table;
  REQUIRE(nft::Canonicalize(canonical).ok());
  CHECK(canonical == table);  // the compiler writes canonical element keys
  nft::FakeNftables kernel;
  absl::Status s = kernel.Apply(nft::ComputeDelta(table, std::nullopt));
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(*kernel.Read() == nft::ExpectedState(table));
}

void RunScenario(const Scenario& sc, int& probes) {
  World w = Cluster();
  INFO("scenario: " << sc.name);
  for (size_t i = 0; i < sc.steps.size(); ++i) {
    INFO("step " << i);
    w.Apply(sc.steps[i]);
    SelectionIndex index = SelectionIndex::Build(w.model);
    for (nft::Dispatch dispatch :
         {nft::Dispatch::kByInterface, nft::Dispatch::kByGroup, nft::Dispatch::kByLinkGroup}) {
      INFO("dispatch " << int(dispatch));
      Options options;
      options.layout.dispatch = dispatch;
      Compiler compiler(options);
      const nft::DesiredTable& table = compiler.Build(w.model, index);
      CheckLoads(table);
      probes += CheckOracle(w.model, table, &compiler.link_groups());
    }
  }
}

TEST_CASE("oracle: compiled verdicts equal Explain on the explain tests' scenarios", "[unit][policy_compiler][oracle]") {
  int probes = 0;
  {
    World w = Cluster();
    Compiler compiler;
    probes += CheckOracle(w.model, compiler.Build(w.model, SelectionIndex::Build(w.model)));
  }
  for (const Scenario& sc : kExplainScenarios) RunScenario(sc, probes);
  WARN("scenarios " << kExplainScenarios.size() << ", probes " << probes);
  CHECK(kExplainScenarios.size() >= 20);
}

TEST_CASE("oracle: disjunctions, negations, IPv6 and Log", "[unit][policy_compiler][oracle]") {
  int probes = 0;
  for (const Scenario& sc : kExtraScenarios) RunScenario(sc, probes);
  CHECK(probes > 0);
}

TEST_CASE("rule translation: one nft rule per alternative, actions as marks", "[unit][policy_compiler]") {
  policy::Rule allow;
  allow.protocol = policy::kProtoTcp;
  allow.destination.ports.ranges = {{80, 80}};
  CompiledRules c = CompileRules({allow});
  REQUIRE(c.rules.size() == 1);
  CHECK(c.rules[0].ToString() == "meta l4proto 6 th dport 80 meta mark set meta mark | 0x00010000 return");
  CHECK(c.static_sets.empty());

  policy::Rule two;  // nets of both families: one rule each
  two.action = policy::Action::kDeny;
  two.source.nets = {*net::ParseCidrOrIp("10.0.0.0/8"), *net::ParseCidrOrIp("fd00::/64")};
  c = CompileRules({two});
  REQUIRE(c.rules.size() == 2);
  CHECK(c.static_sets.size() == 2);

  policy::Rule never;
  never.protocol = policy::kProtoIcmp;
  never.destination.ports.ranges = {{80, 80}};
  CHECK(CompileRules({never}).rules.empty());
  policy::Rule http;
  http.unsupported = "http";
  CHECK(CompileRules({http}).rules.empty());
}

// A felixd-like driver: the model changes, the index follows incrementally where it can, the
// compiler's delta goes to the (fake) kernel.
struct Driver {
  explicit Driver(nft::Dispatch dispatch = nft::Dispatch::kByInterface) {
    options.layout.dispatch = dispatch;
    compiler = Compiler(options);
  }
  Options options;
  World w = Cluster();
  SelectionIndex index;
  Compiler compiler;
  nft::FakeNftables kernel;
  size_t last_delta = 0;

  void Start() {
    index = SelectionIndex::Build(w.model);
    REQUIRE(kernel.Apply(nft::ComputeDelta(compiler.Build(w.model, index), std::nullopt)).ok());
  }
  void Push(const nft::Delta& d) {
    last_delta = d.size();
    absl::Status s = kernel.Apply(d);
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  void Endpoint(const std::string& id) { Push(compiler.Update(w.model, index, index.UpdateEndpoint(w.model, id))); }
  void NetworkSet(const std::string& id) { Push(compiler.Update(w.model, index, index.UpdateNetworkSet(w.model, id))); }
  void Rebuilt(const Changed& changed) {  // policy, profile, tier changes
    SelectionIndex after = SelectionIndex::Build(w.model);
    policy::SelectionDelta d = policy::Diff(index, after);
    index = std::move(after);
    Push(compiler.Update(w.model, index, d, changed));
  }
  // Path independence: the incremental table is the full rebuild's, in the kernel too.
  void Delete(const std::string& v, const std::string& k, const std::string& ns, const std::string& n) {
    w.Delete(v, k, ns, n);
  }
  void Check() {
    Compiler fresh(options);
    const nft::DesiredTable& want = fresh.Build(w.model, SelectionIndex::Build(w.model));
    CHECK(compiler.desired() == want);
    CHECK(*kernel.Read() == nft::ExpectedState(want));
    CHECK(nft::ComputeDelta(want, *kernel.Read()).empty());
    CHECK(compiler.link_groups() == fresh.link_groups());
    CheckOracle(w.model, compiler.desired(), &compiler.link_groups());
  }
};

std::string PodId(const std::string& ns, const std::string& name) { return ns + "/node1-k8s-" + name + "-eth0"; }

TEST_CASE("incremental: one change at a time ends in the full rebuild's table", "[unit][policy_compiler][incremental]") {
  nft::Dispatch dispatch =
      GENERATE(nft::Dispatch::kByInterface, nft::Dispatch::kByGroup, nft::Dispatch::kByLinkGroup);
  Driver d(dispatch);
  for (const Scenario& sc : kExtraScenarios) {
    for (const char* y : sc.steps) d.w.Apply(y);
  }
  d.w.Apply(kExplainScenarios[2].steps[0]);  // k8s default deny egress
  d.Start();
  d.Check();

  SECTION("pods join, change labels and leave") {
    d.w.Pod("prod", "api", "10.0.1.4", {{"app", "web"}}, "frontend", {{"http", "TCP", 8080}});
    d.Endpoint(PodId("prod", "api"));
    d.Check();
    d.w.Pod("prod", "cache", "10.0.1.3", {{"app", "db"}});
    d.Endpoint(PodId("prod", "cache"));
    d.Check();
    d.w.RemovePod("dev", "client");
    d.Endpoint(PodId("dev", "client"));
    d.Check();
    d.w.RemovePod("prod", "api");
    d.Endpoint(PodId("prod", "api"));
    d.Check();
  }
  SECTION("network sets, policies, namespaces and tiers") {
    d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: from-sets}
spec:
  order: 1
  selector: app == 'cache'
  ingress:
  - action: Allow
    source: {selector: role == 'partner'}
  - action: Deny
)");
    d.Rebuilt({{"from-sets"}, {}});
    d.Check();
    d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: partners, labels: {role: partner}}
spec: {nets: [192.168.4.0/24, 198.51.100.0/24]}
)");
    d.NetworkSet("partners");
    d.Check();
    d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: from-sets}
spec:
  order: 1
  selector: app == 'cache'
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'partner'}
    destination: {ports: [80, 443]}
  - action: Pass
)");
    d.Rebuilt({{"from-sets"}, {}});
    d.Check();
    d.w.Namespace("dev", {{"team", "c"}});
    d.Rebuilt({{}, {"kns.dev"}});
    d.Check();
    d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.quarantine}
spec:
  tier: security
  selector: app == 'db'
  types: [Ingress]
  ingress:
  - action: Deny
    source: {nets: [192.168.0.0/16]}
)");
    d.Rebuilt({{"security.quarantine"}, {}});
    d.Check();
    d.Delete("projectcalico.org/v3", "GlobalNetworkPolicy", "", "from-sets");
    d.Rebuilt({{"from-sets"}, {}});
    d.Check();
  }
}

TEST_CASE("incremental: a pod joining a selector is a handful of elements", "[unit][policy_compiler][incremental]") {
  Driver d;
  for (const Scenario& sc : kExtraScenarios) {
    for (const char* y : sc.steps) d.w.Apply(y);
  }
  d.Start();
  d.w.Pod("prod", "api", "10.0.1.4", {{"app", "web"}}, "frontend", {{"http", "TCP", 8080}});
  nft::Delta delta = d.compiler.Update(d.w.model, d.index, d.index.UpdateEndpoint(d.w.model, PodId("prod", "api")));
  CHECK(delta.put_chains.empty());  // its policy lists exist already: no new group chain
  CHECK(delta.add_sets.empty());
  CHECK(delta.delete_elements.empty());
  CHECK(delta.size() <= 12);  // dispatch + anti-spoofing + selector and named-port members
  d.Push(delta);
  d.Check();
}

}  // namespace
}  // namespace calico::felixd::policy_compiler::testing
