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

// The table shapes felixd can program: every dispatch, and link groups with egress policy at
// prerouting (felixd's default).
struct LayoutCase {
  nft::Dispatch dispatch;
  nft::EgressHook egress;
};
constexpr LayoutCase kLayouts[] = {
    {nft::Dispatch::kByInterface, nft::EgressHook::kForwardAndInput},
    {nft::Dispatch::kByGroup, nft::EgressHook::kForwardAndInput},
    {nft::Dispatch::kByLinkGroup, nft::EgressHook::kForwardAndInput},
    {nft::Dispatch::kByLinkGroup, nft::EgressHook::kPrerouting},
};
constexpr char kHostEndpointsForRebuild[] = R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth9, labels: {role: host}}
spec: {node: node1, interfaceName: eth9, expectedIPs: [192.168.9.10]}
)";
void SetLayout(Options& options, const LayoutCase& l) {
  options.layout.dispatch = l.dispatch;
  options.layout.egress = l.egress;
}

void RunScenario(const Scenario& sc, int& probes) {
  World w = Cluster();
  INFO("scenario: " << sc.name);
  for (size_t i = 0; i < sc.steps.size(); ++i) {
    INFO("step " << i);
    w.Apply(sc.steps[i]);
    SelectionIndex index = SelectionIndex::Build(w.model);
    for (const LayoutCase& layout : kLayouts) {
      INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
      Options options;
      SetLayout(options, layout);
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

TEST_CASE("Build again on the same compiler equals a fresh compiler's Build", "[unit][policy_compiler]") {
  // The policy manager rebuilds on a burst of events (more than incremental_limit); the dispatch
  // and anti-spoofing elements must come back (they were left out: every pod dropped).
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  World w = Cluster();
  w.Apply(kHostEndpointsForRebuild);
  Options options;
  SetLayout(options, layout);
  options.node = "node1";
  Compiler compiler(options);
  SelectionIndex index = SelectionIndex::Build(w.model);
  compiler.Build(w.model, index);
  const nft::DesiredTable again = compiler.Build(w.model, index);
  Compiler fresh(options);
  CHECK(again == fresh.Build(w.model, index));
  CHECK_FALSE(again.sets.at(nft::kWepSrc4).elements.empty());
  CHECK_FALSE(again.sets.at(nft::kHepInMap).elements.empty());
}

// `c`'s table with its link group numbers mapped onto `fresh`'s through the interfaces carrying
// them. Numbers depend on history (a group keeps its number when all its endpoints move to a new
// policy list); nothing else may: the mapping must be one-to-one and cover every group element.
nft::DesiredTable Renumbered(const Compiler& c, const Compiler& fresh) {
  std::map<std::string, std::string> to_fresh, from_fresh;  // as element keys
  for (const auto& [ifname, g] : c.link_groups()) {
    auto f = fresh.link_groups().find(ifname);
    REQUIRE(f != fresh.link_groups().end());
    auto [it, added] = to_fresh.try_emplace(std::to_string(g), std::to_string(f->second));
    CHECK(it->second == std::to_string(f->second));
    auto [back, added_back] = from_fresh.try_emplace(std::to_string(f->second), std::to_string(g));
    CHECK(back->second == std::to_string(g));
  }
  CHECK(c.link_groups().size() == fresh.link_groups().size());
  nft::DesiredTable t = c.desired();
  for (const char* map : {nft::kFromGroupMap, nft::kToGroupMap}) {
    auto set = t.sets.find(map);
    if (set == t.sets.end() || set->second.spec.key != nft::KeyType::kDevgroup) continue;
    nft::Elements renamed;
    for (const auto& [key, value] : set->second.elements) {
      auto m = to_fresh.find(key);
      CHECK(m != to_fresh.end());  // no element for a group no interface carries
      renamed[m == to_fresh.end() ? key : m->second] = value;
    }
    set->second.elements = std::move(renamed);
  }
  return t;
}

// A felixd-like driver: the model changes, the index follows incrementally where it can, the
// compiler's delta goes to the (fake) kernel.
struct Driver {
  // `node`: the node whose endpoints it programs (empty: every endpoint, workloads only).
  explicit Driver(LayoutCase layout = kLayouts[0], std::string node = "") {
    SetLayout(options, layout);
    options.node = std::move(node);
    compiler = Compiler(options);
  }
  Options options;
  World w = Cluster();
  SelectionIndex index;
  Compiler compiler;
  nft::FakeNftables kernel;
  size_t last_delta = 0;
  bool forward_oracle = true;

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
    CHECK(Renumbered(compiler, fresh) == want);
    CHECK(*kernel.Read() == nft::ExpectedState(compiler.desired()));
    CHECK(nft::ComputeDelta(compiler.desired(), *kernel.Read()).empty());
    // Forward probes enter by eth0: an all-interfaces host endpoint's applyOnForward policy
    // polices them, which Explain does not model (its tests turn this off).
    if (forward_oracle) CheckOracle(w.model, compiler.desired(), &compiler.link_groups());
  }
};

std::string PodId(const std::string& ns, const std::string& name) { return ns + "/node1-k8s-" + name + "-eth0"; }

TEST_CASE("incremental: one change at a time ends in the full rebuild's table", "[unit][policy_compiler][incremental]") {
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
  Driver d(layout);
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


// ---- Host endpoints ----

constexpr char kHostEndpoints[] = R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth9, labels: {role: host, zone: a}}
spec:
  node: node1
  interfaceName: eth9
  expectedIPs: [192.168.9.10, fd09::10]
  ports: [{name: admin, protocol: TCP, port: 9443}]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth8, labels: {role: bare}}
spec: {node: node1, interfaceName: eth8, expectedIPs: [192.168.8.10]}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node2-eth9, labels: {role: host}}
spec: {node: node2, interfaceName: eth9, expectedIPs: [192.168.9.20]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: host-in}
spec:
  order: 10
  selector: role == 'host'
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {nets: [203.0.113.0/24]}
    destination: {ports: [80, admin]}
  - action: Deny
    protocol: TCP
    destination: {ports: [8080]}
  egress:
  - action: Allow
    protocol: UDP
    destination: {ports: [5353]}
  - action: Allow
    protocol: TCP
    destination: {selector: role == 'host'}
)";

// node1's compiler under `layout` over the cluster, its host endpoints and `extra` documents:
// built, and the table checked to load.
struct HostNode {
  HostNode(const LayoutCase& layout, std::vector<const char*> extra) {
    w.Apply(kHostEndpoints);
    for (const char* doc : extra) w.Apply(doc);
    SetLayout(options, layout);
    options.node = "node1";
    compiler = Compiler(options);
    t = &compiler.Build(w.model, SelectionIndex::Build(w.model));
    CheckLoads(*t);
  }
  World w = Cluster();
  Options options;
  Compiler compiler;
  const nft::DesiredTable* t = nullptr;
};

// Peers and ports for host probes: failsafe (22, 68, 179, 53, 67), allowed, denied, other.
std::vector<Packet> HostProbes(const std::vector<std::string>& hosts) {
  std::vector<Packet> out;
  for (const std::string peer : {"203.0.113.9", "198.51.100.9", "192.168.9.20"}) {
    for (const std::string& host : hosts) {
      for (int port : {22, 80, 179, 443, 8080, 9443, 6443}) {
        out.push_back(World::Make(peer, host, policy::kProtoTcp, port));
        out.push_back(World::Make(host, peer, policy::kProtoTcp, port));
      }
      for (int port : {53, 67, 68, 5353, 5000}) {
        out.push_back(World::Make(peer, host, policy::kProtoUdp, port));
        out.push_back(World::Make(host, peer, policy::kProtoUdp, port));
      }
      out.push_back(World::PingPacket(peer, host));
    }
  }
  return out;
}

// Host probes through `input` (peer → host, arriving on the endpoint's interface) and `output`
// (host → peer) against Explain. Returns the number of probes.
int CheckHostOracle(const policy::Model& model, const nft::DesiredTable& table,
                    std::vector<std::string> hosts = {"192.168.9.10", "192.168.8.10"}) {
  Interpreter interp(table);
  int n = 0, mismatches = 0;
  for (const Packet& p : HostProbes(hosts)) {
    const policy::Endpoint* dst = model.HostEndpointByIp(p.dst);
    const policy::Endpoint* src = model.HostEndpointByIp(p.src);
    bool inbound = dst != nullptr && dst->node == "node1";
    const policy::Endpoint* host = inbound ? dst : src;
    Probe probe;
    probe.packet = p;
    // An all-interfaces endpoint: through some interface no named endpoint has.
    const std::string ifname = host->interface == "*" ? "eth5" : host->interface;
    probe.iif = inbound ? ifname : "lo";
    probe.oif = inbound ? "lo" : ifname;
    bool got = interp.Hook(inbound ? "input" : "output", probe);
    policy::Verdict want = policy::Explain(model, p);
    // Only the local host's side is in this table; a remote host endpoint peer is checked on its
    // own node (and when it denies, Explain stops before this side).
    if (inbound && want.egress && !want.egress->allowed) continue;
    bool want_allowed = inbound ? (want.ingress ? want.ingress->allowed : true)
                                : (want.egress ? want.egress->allowed : true);
    ++n;
    if (got != want_allowed && ++mismatches <= 5) {
      FAIL_CHECK(p.ToString() << (inbound ? " input: " : " output: ") << (got ? "allow" : "deny")
                              << ", Explain " << want.Describe());
    }
  }
  CHECK(mismatches == 0);
  return n;
}

TEST_CASE("host endpoints: input/output verdicts equal Explain, failsafe ports, default deny", "[unit][policy_compiler][hostendpoint]") {
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
  HostNode node(layout, {});
  World& w = node.w;
  Compiler& compiler = node.compiler;
  const Options& options = node.options;
  const nft::DesiredTable& t = *node.t;
  CHECK(CheckHostOracle(w.model, t) > 100);
  // Local named host endpoints only; the remote one (node2) is a selector member, not dispatched.
  CHECK(t.sets.at(nft::kHepInMap).elements.size() == 2);
  CHECK(t.sets.at(nft::kHepInMap).elements.contains("eth9"));
  // No applyOnForward policy: forwarded traffic through them returns (allowed), and the
  // all-interfaces endpoint (none here) would not catch them.
  CHECK(t.sets.at(nft::kHepFwdInMap).elements == nft::Elements{{"eth8", "return"}, {"eth9", "return"}});
  // The host's expectedIPs joined the selector set of role == 'host' (remote one too).
  std::string set = SelectorSetName(w.model.policies().at("host-in").egress_rules[1].destination.selector->Key(), 4);
  CHECK(t.sets.at(set).elements == nft::Elements{{"192.168.9.10", ""}, {"192.168.9.20", ""}});

  Interpreter interp(t, &compiler.link_groups());
  auto in = [&](const char* iif, const char* src, const char* dst, int proto, int port) {
    Probe p;
    p.packet = World::Make(src, dst, proto, port);
    p.iif = iif;
    p.oif = "lo";
    return interp.Hook("input", p);
  };
  // Explicit expectations (the oracle compares with Explain; these pin upstream's semantics).
  CHECK(in("eth9", "203.0.113.9", "192.168.9.10", policy::kProtoTcp, 80));        // policy allows
  CHECK(in("eth9", "203.0.113.9", "192.168.9.10", policy::kProtoTcp, 9443));      // named port
  CHECK_FALSE(in("eth9", "198.51.100.9", "192.168.9.10", policy::kProtoTcp, 80));  // not from the net
  CHECK_FALSE(in("eth9", "203.0.113.9", "192.168.9.10", policy::kProtoTcp, 8080));
  CHECK(in("eth9", "198.51.100.9", "192.168.9.10", policy::kProtoTcp, 22));       // failsafe
  CHECK(in("eth9", "198.51.100.9", "192.168.9.10", policy::kProtoUdp, 68));
  CHECK(in("eth8", "198.51.100.9", "192.168.8.10", policy::kProtoTcp, 179));      // failsafe, no policy
  CHECK_FALSE(in("eth8", "198.51.100.9", "192.168.8.10", policy::kProtoTcp, 80));  // default deny
  CHECK(in("eth7", "198.51.100.9", "192.168.7.10", policy::kProtoTcp, 80));  // not a host endpoint
  // Workload → host is not host endpoint policy (the endpoint-to-host action decides it).
  CHECK(interp.Hook("output", Probe{World::Make("192.168.8.10", "10.0.1.1", policy::kProtoTcp, 80), "lo", "calib"}));
  // Forwarded traffic through a host endpoint with no applyOnForward policy: allowed by it.
  Probe fwd{World::Make("198.51.100.9", "10.0.1.1", policy::kProtoTcp, 8080), "eth9", "cali-web"};
  Probe fwd_explain = ToProbe(w.model, fwd.packet);
  fwd.oif = fwd_explain.oif;
  CHECK(interp.Forward(fwd) == policy::Explain(w.model, fwd.packet).allowed);

  SECTION("VXLAN and IP-in-IP from Calico nodes pass host endpoints (hep-nodes4)") {
    nft::DesiredTable with_nodes = t;
    with_nodes.sets.at(nft::kHepNodes4).elements = {{"198.51.100.7", ""}};
    Interpreter i2(with_nodes, &compiler.link_groups());
    auto vxlan = [&](const char* src, int proto, int port) {
      Probe p{World::Make(src, "192.168.8.10", proto, port), "eth8", "lo"};
      return i2.Hook("input", p);
    };
    CHECK(vxlan("198.51.100.7", policy::kProtoUdp, 4789));
    CHECK_FALSE(vxlan("198.51.100.8", policy::kProtoUdp, 4789));  // not a node: default deny
    CHECK_FALSE(vxlan("198.51.100.7", policy::kProtoUdp, 4790));  // a node, not VXLAN
    Probe ipip{World::Make("198.51.100.7", "192.168.8.10", 4, 0), "eth8", "lo"};
    CHECK(i2.Hook("input", ipip));
    Probe out{World::Make("192.168.8.10", "198.51.100.7", policy::kProtoUdp, 4789), "lo", "eth8"};
    CHECK(i2.Hook("output", out));
    CHECK_FALSE(interp.Hook("output", out));  // without the node's address
  }
  SECTION("failsafe ports configured: none") {
    policy::Failsafe none;
    w.model.SetFailsafe(none);
    Compiler c2(options);
    const nft::DesiredTable& t2 = c2.Build(w.model, SelectionIndex::Build(w.model));
    CHECK(t2.chains.at(nft::kFailsafeInChain).rules.empty());
    CheckHostOracle(w.model, t2);
    Interpreter i2(t2);
    Probe ssh{World::Make("198.51.100.9", "192.168.8.10", policy::kProtoTcp, 22), "eth8", "lo"};
    CHECK_FALSE(i2.Hook("input", ssh));
  }
  SECTION("applyOnForward: forwarded traffic through the host endpoint is policed") {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: host-fwd}
spec:
  order: 5
  selector: role == 'host'
  applyOnForward: true
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [8080]}
)");
    Compiler c2(options);
    const nft::DesiredTable& t2 = c2.Build(w.model, SelectionIndex::Build(w.model));
    CheckLoads(t2);
    CHECK(t2.sets.at(nft::kHepFwdInMap).elements.contains("eth9"));
    CHECK(t2.sets.at(nft::kHepFwdOutMap).elements.at("eth9") == "return");  // no egress AOF policy
    Interpreter i2(t2, &c2.link_groups());
    std::string web_if = ToProbe(w.model, World::Make("10.0.9.9", "10.0.1.1", 6, 1)).oif;
    Probe allowed{World::Make("198.51.100.9", "10.0.1.1", policy::kProtoTcp, 8080), "eth9", web_if};
    Probe denied{World::Make("198.51.100.9", "10.0.1.1", policy::kProtoTcp, 53), "eth9", web_if};
    Probe other_if{World::Make("198.51.100.9", "10.0.1.1", policy::kProtoTcp, 53), "eth8", web_if};
    CHECK(i2.Forward(allowed) == policy::Explain(w.model, allowed.packet).allowed);
    CHECK_FALSE(i2.Forward(denied));  // the host endpoint's applyOnForward policy: end of tier
    // eth8's endpoint has no applyOnForward policy: only the workload's policy decides.
    CHECK(i2.Forward(other_if) == policy::Explain(w.model, other_if.packet).allowed);
    // host-fwd applies to host traffic too (applyOnForward widens, it does not narrow).
    CheckHostOracle(w.model, t2);
  }
}

TEST_CASE("host endpoints: each incremental step equals a fresh build", "[unit][policy_compiler][hostendpoint][incremental]") {
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
  Driver d(layout, "node1");
  d.Start();
  d.Check();
  d.w.Apply(kHostEndpoints);
  d.Rebuilt({{"host-in"}, {}});
  d.Check();
  CheckHostOracle(d.w.model, d.compiler.desired());
  // Labels change: eth8 joins role == 'host' (its chains change, its IP joins the set).
  d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth8, labels: {role: host}}
spec: {node: node1, interfaceName: eth8, expectedIPs: [192.168.8.10], profiles: [kns.prod]}
)");
  d.Endpoint("hep:node1-eth8");
  d.Check();
  CheckHostOracle(d.w.model, d.compiler.desired());
  // A policy becomes applyOnForward: the same endpoints, new forward chains.
  d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: host-in}
spec:
  order: 10
  selector: role == 'host'
  applyOnForward: true
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80]}
)");
  d.Push(d.compiler.Update(d.w.model, d.index, d.index.UpdatePolicy(d.w.model, "host-in"), {{"host-in"}, {}}));
  d.Check();
  CHECK(d.compiler.desired().sets.at(nft::kHepFwdInMap).elements.size() == 2);
  CHECK(d.compiler.desired().sets.at(nft::kHepFwdInMap).elements.at("eth8").starts_with("goto hfi-"));
  CheckHostOracle(d.w.model, d.compiler.desired());
  // Back to host traffic only.
  d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: host-in}
spec:
  order: 10
  selector: role == 'host'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80]}
)");
  d.Push(d.compiler.Update(d.w.model, d.index, d.index.UpdatePolicy(d.w.model, "host-in"), {{"host-in"}, {}}));
  d.Check();
  for (const auto& [_, verdict] : d.compiler.desired().sets.at(nft::kHepFwdInMap).elements) {
    CHECK(verdict == "return");
  }
  // Endpoints deleted: their chains and elements go.
  d.Delete("projectcalico.org/v3", "HostEndpoint", "", "node1-eth9");
  d.Endpoint("hep:node1-eth9");
  d.Check();
  d.Delete("projectcalico.org/v3", "HostEndpoint", "", "node1-eth8");
  d.Endpoint("hep:node1-eth8");
  d.Check();
  CHECK(d.compiler.desired().sets.at(nft::kHepInMap).elements.empty());
  for (const auto& [name, _] : d.compiler.desired().chains) {
    CHECK_FALSE(name.starts_with("hi-"));
    CHECK_FALSE(name.starts_with("hfi-"));
  }
}


constexpr char kAnyHostEndpoint[] = R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-any, labels: {role: any}}
spec: {node: node1, interfaceName: "*", expectedIPs: [192.168.5.10]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: any-fwd}
spec:
  selector: role == 'any'
  applyOnForward: true
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [8080]}
)";

TEST_CASE("host endpoints: interfaceName \"*\" covers every interface but named ones, lo and workloads", "[unit][policy_compiler][hostendpoint]") {
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
  HostNode node(layout, {kAnyHostEndpoint});
  World& w = node.w;
  Compiler& compiler = node.compiler;
  const nft::DesiredTable& t = *node.t;
  CheckHostOracle(w.model, t, {"192.168.9.10", "192.168.8.10", "192.168.5.10"});
  Interpreter interp(t, &compiler.link_groups());
  auto in = [&](const char* iif, int port) {
    Probe p{World::Make("198.51.100.9", "192.168.5.10", policy::kProtoTcp, port), iif, "lo"};
    return interp.Hook("input", p);
  };
  CHECK_FALSE(in("eth5", 80));  // "*": no policy for role any on host traffic: default deny
  CHECK(in("eth5", 22));        // failsafe
  CHECK(in("lo", 80));          // loopback is never a host endpoint
  CHECK_FALSE(in("eth8", 80));  // eth8's own (named) endpoint: its verdict, default deny too
  // eth9's named endpoint decides there (tcp 80 from 203.0.113.0/24), not the "*" one.
  CHECK(interp.Hook("input", Probe{World::Make("203.0.113.9", "192.168.9.10", policy::kProtoTcp, 80), "eth9", "lo"}));
  CHECK_FALSE(interp.Hook("input", Probe{World::Make("203.0.113.9", "192.168.9.10", policy::kProtoTcp, 80), "eth5", "lo"}));
  std::string web_if = ToProbe(w.model, World::Make("10.0.9.9", "10.0.1.1", 6, 1)).oif;
  // Forwarded in through eth5: the "*" endpoint's applyOnForward policy (8080 only).
  CHECK(interp.Forward(Probe{World::Make("198.51.100.9", "10.0.1.1", policy::kProtoTcp, 8080), "eth5", web_if}));
  CHECK_FALSE(interp.Forward(Probe{World::Make("198.51.100.9", "10.0.1.1", policy::kProtoTcp, 80), "eth5", web_if}));
  // Through eth9 (named, no applyOnForward policy of its own): allowed, not the "*" one's.
  Probe via9{World::Make("198.51.100.9", "10.0.1.1", policy::kProtoTcp, 80), "eth9", web_if};
  CHECK(interp.Forward(via9) == policy::Explain(w.model, via9.packet).allowed);
  // Workload to host and host to workload: not host endpoint policy.
  CHECK(interp.Hook("output", Probe{World::Make("192.168.5.10", "10.0.1.1", 6, 80), "lo", web_if}));
}

TEST_CASE("host endpoints: \"*\" endpoints added, replaced and removed incrementally equal a fresh build", "[unit][policy_compiler][hostendpoint][incremental]") {
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
  Driver d(layout, "node1");
  d.forward_oracle = false;
  d.w.Apply(kHostEndpoints);
  d.Start();
  d.w.Apply(kAnyHostEndpoint);
  d.Rebuilt({{"any-fwd"}, {}});
  d.Check();
  CheckHostOracle(d.w.model, d.compiler.desired(), {"192.168.9.10", "192.168.8.10", "192.168.5.10"});
  CHECK(d.compiler.desired().chains.at(nft::kHepAnyIn).rules.size() == 1);
  // A second "*" endpoint sorting first takes over; removing it hands back.
  d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-a-any, labels: {role: host}}
spec: {node: node1, interfaceName: "*"}
)");
  d.Endpoint("hep:node1-a-any");
  d.Check();
  d.Delete("projectcalico.org/v3", "HostEndpoint", "", "node1-a-any");
  d.Endpoint("hep:node1-a-any");
  d.Check();
  d.Delete("projectcalico.org/v3", "HostEndpoint", "", "node1-any");
  d.Endpoint("hep:node1-any");
  d.Check();
  CHECK(d.compiler.desired().chains.at(nft::kHepAnyIn).rules.empty());
  CHECK(d.compiler.desired().chains.at(nft::kHepAnyFwdIn).rules.empty());
}

// preDNAT: Deny 198.51.100.0/24 (and TCP 80 from 203.0.113.9 alone, which host-in allows), Pass
// to the next tier for 443, Allow the rest of 203.0.113.0/24 for this stage only.
constexpr char kPreDnat[] = R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: early}
spec: {order: 50}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: early.pre-pass}
spec:
  tier: early
  selector: role == 'host'
  preDNAT: true
  applyOnForward: true
  ingress:
  - {action: Pass, protocol: TCP, destination: {ports: [443]}}
  - {action: Deny, protocol: TCP, source: {nets: [203.0.113.9/32]}, destination: {ports: [80]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: pre-deny}
spec:
  order: 1
  selector: has(role)
  preDNAT: true
  applyOnForward: true
  ingress:
  - {action: Allow, source: {nets: [203.0.113.0/24]}}
  - {action: Deny, source: {nets: [198.51.100.0/24]}}
)";

TEST_CASE("preDNAT: before normal policy, failsafe first, Deny drops, Allow goes on to normal policy", "[unit][policy_compiler][hostendpoint][prednat]") {
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
  HostNode node(layout, {kPreDnat});
  World& w = node.w;
  Compiler& compiler = node.compiler;
  const nft::DesiredTable& t = *node.t;
  CHECK(t.chains.at(nft::kPreDnatChain).base->hook == nft::Hook::kPrerouting);
  CHECK(t.chains.at(nft::kPreDnatChain).base->priority == -110);
  // Both local endpoints (eth8 only through pre-deny); the remote one is not dispatched.
  REQUIRE(t.sets.at(nft::kHepPreDnatMap).elements.size() == 2);
  CHECK(t.sets.at(nft::kHepPreDnatMap).elements.at("eth9").starts_with("goto hpd-"));
  CHECK(CheckHostOracle(w.model, t) > 100);
  Interpreter interp(t, &compiler.link_groups());
  auto in = [&](const char* iif, const char* src, const char* dst, int proto, int port) {
    Probe p{World::Make(src, dst, proto, port), iif, "lo"};
    return interp.Hook("input", p);
  };
  CHECK_FALSE(in("eth9", "203.0.113.9", "192.168.9.10", policy::kProtoTcp, 80));  // preDNAT Deny
  CHECK(in("eth9", "203.0.113.8", "192.168.9.10", policy::kProtoTcp, 80));        // preDNAT Allow, host-in allows
  CHECK_FALSE(in("eth9", "203.0.113.8", "192.168.9.10", policy::kProtoTcp, 8080));  // preDNAT Allow, host-in denies
  CHECK(in("eth9", "198.51.100.9", "192.168.9.10", policy::kProtoTcp, 22));       // failsafe first
  CHECK(in("eth8", "198.51.100.9", "192.168.8.10", policy::kProtoTcp, 179));      // failsafe first
  CHECK_FALSE(in("eth8", "198.51.100.9", "192.168.8.10", policy::kProtoUdp, 5000));  // preDNAT Deny
  // Forwarded traffic entering eth9 runs preDNAT too (it is prerouting), which Explain does not model.
  std::string web_if = ToProbe(w.model, World::Make("10.0.9.9", "10.0.1.1", 6, 1)).oif;
  Probe fwd{World::Make("198.51.100.9", "10.0.1.1", policy::kProtoTcp, 80), "eth9", web_if};
  CHECK_FALSE(interp.Forward(fwd));
  policy::Verdict v = policy::Explain(w.model, World::Make("203.0.113.9", "192.168.9.10", policy::kProtoTcp, 80));
  CHECK(v.Describe().find("denied by preDNAT tier early policy early.pre-pass rule 1") != std::string::npos);
  // A 443 Pass leaves tier early; default's pre-deny then allows 203.0.113.0/24 at this stage.
  CHECK(policy::Explain(w.model, World::Make("203.0.113.9", "192.168.9.10", policy::kProtoTcp, 443)).ingress->reason !=
        policy::Reason::kRule);

  SECTION("restart: the kernel's table reads back equal") {
    nft::FakeNftables kernel;
    REQUIRE(kernel.Apply(nft::ComputeDelta(t, std::nullopt)).ok());
    CHECK(nft::ComputeDelta(t, *kernel.Read()).empty());
  }
}

// doNotTrack: in, TCP 8080 allowed untracked (host-in denies it), 198.51.100.0/24 denied before
// anything else but failsafe; out, UDP 5000 allowed untracked (host-in's egress does not allow
// it), TCP to 192.168.9.20 denied (host-in allows it). A later tier passes 443.
constexpr char kDoNotTrack[] = R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: early}
spec: {order: 50}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: early.dnt-pass}
spec:
  tier: early
  selector: role == 'host'
  doNotTrack: true
  applyOnForward: true
  ingress:
  - {action: Pass, protocol: TCP, destination: {ports: [443]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: dnt}
spec:
  order: 1
  selector: role == 'host'
  doNotTrack: true
  applyOnForward: true
  types: [Ingress, Egress]
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [8080, 443]}}
  - {action: Deny, source: {nets: [198.51.100.0/24]}}
  egress:
  - {action: Allow, protocol: UDP, destination: {ports: [5000]}}
  - {action: Deny, protocol: TCP, destination: {nets: [192.168.9.20/32]}}
)";

TEST_CASE("doNotTrack: before conntrack on named host endpoints, an Allow skips all other policy, failsafe first", "[unit][policy_compiler][hostendpoint][donottrack]") {
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
  Driver d(layout, "node1");
  d.w.Apply(kHostEndpoints);
  d.Start();
  d.w.Apply(kDoNotTrack);
  d.Rebuilt({{"early.dnt-pass", "dnt"}, {}});
  d.Check();
  const nft::DesiredTable& t = d.compiler.desired();
  CheckLoads(t);
  CHECK(t.chains.at(nft::kRawPreroutingChain).base->priority == -300);
  CHECK(t.chains.at(nft::kRawOutputChain).base->hook == nft::Hook::kOutput);
  // eth9 only (eth8 is not role host; node2's is remote).
  REQUIRE(t.sets.at(nft::kHepUntrackedInMap).elements.size() == 1);
  const std::string hui = t.sets.at(nft::kHepUntrackedInMap).elements.at("eth9").substr(5);
  bool notrack = false;
  for (const nft::Rule& r : t.chains.at(hui).rules) notrack = notrack || r.ToString().find("notrack") != std::string::npos;
  CHECK(notrack);
  CHECK(CheckHostOracle(d.w.model, t) > 100);
  Interpreter interp(t, &d.compiler.link_groups());
  auto in = [&](const char* src, int proto, int port) {
    return interp.Hook("input", Probe{World::Make(src, "192.168.9.10", proto, port), "eth9", "lo"});
  };
  auto out = [&](const char* dst, int proto, int port) {
    return interp.Hook("output", Probe{World::Make("192.168.9.10", dst, proto, port), "lo", "eth9"});
  };
  CHECK(in("203.0.113.9", policy::kProtoTcp, 8080));         // untracked Allow over host-in's Deny
  CHECK_FALSE(in("198.51.100.9", policy::kProtoTcp, 80));    // untracked Deny
  CHECK(in("198.51.100.9", policy::kProtoTcp, 22));          // failsafe first
  CHECK(in("203.0.113.9", policy::kProtoTcp, 80));           // no decision: host-in allows
  CHECK(in("198.51.100.9", policy::kProtoTcp, 443));         // tier early passes; dnt allows 443 first
  CHECK(out("203.0.113.9", policy::kProtoUdp, 5000));        // untracked Allow (host-in: no)
  CHECK_FALSE(out("192.168.9.20", policy::kProtoTcp, 80));   // untracked Deny (host-in allows)
  policy::Verdict v = policy::Explain(d.w.model, World::Make("203.0.113.9", "192.168.9.10", policy::kProtoTcp, 8080));
  CHECK(v.allowed);
  CHECK(v.Describe().find("doNotTrack tier default policy dnt rule 0") != std::string::npos);

  SECTION("restart: the kernel's table reads back equal") {
    nft::FakeNftables kernel;
    REQUIRE(kernel.Apply(nft::ComputeDelta(t, std::nullopt)).ok());
    CHECK(nft::ComputeDelta(t, *kernel.Read()).empty());
  }
  SECTION("deleted: no untracked chain or element stays") {
    d.Delete("projectcalico.org/v3", "GlobalNetworkPolicy", "", "early.dnt-pass");
    d.Delete("projectcalico.org/v3", "GlobalNetworkPolicy", "", "dnt");
    d.Rebuilt({{"early.dnt-pass", "dnt"}, {}});
    d.Check();
    CHECK(d.compiler.desired().sets.at(nft::kHepUntrackedInMap).elements.empty());
    CHECK(d.compiler.desired().sets.at(nft::kHepUntrackedOutMap).elements.empty());
    for (const auto& [name, _] : d.compiler.desired().chains) CHECK_FALSE(name.starts_with("hu"));
  }
}

// An all-interfaces endpoint (role host, like eth9) and a named one no preDNAT policy selects.
constexpr char kAnyPreDnatEndpoints[] = R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-any, labels: {role: host}}
spec: {node: node1, interfaceName: "*", expectedIPs: [192.168.5.10]}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth7}
spec: {node: node1, interfaceName: eth7, expectedIPs: [192.168.7.10]}
)";

TEST_CASE("preDNAT: the all-interfaces host endpoint's policies run for host interfaces no named endpoint has", "[unit][policy_compiler][hostendpoint][prednat]") {
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
  Driver d(layout, "node1");
  // Forward probes from outside enter through a host interface, so "*"'s preDNAT policies run
  // for them; Explain does not model preDNAT on forwarded traffic (host traffic only).
  d.forward_oracle = false;
  d.w.Apply(kPreDnat);
  d.Start();
  // Endpoints arrive after the policies: each incremental step equals a fresh build.
  d.w.Apply(kAnyPreDnatEndpoints);
  d.Endpoint("hep:node1-any");
  d.Endpoint("hep:node1-eth7");
  d.Check();
  const nft::DesiredTable& t = d.compiler.desired();
  CheckLoads(t);
  REQUIRE(t.chains.at(nft::kHepAnyPreDnat).rules.size() == 1);
  CHECK(t.sets.at(nft::kHepPreDnatMap).elements.at("eth7") == "return");
  CHECK(CheckHostOracle(d.w.model, t, {"192.168.5.10", "192.168.7.10"}) > 50);
  Interpreter interp(t, &d.compiler.link_groups());
  auto pre = [&](const char* iif, const char* src, const char* dst, int proto, int port) {
    Probe p{World::Make(src, dst, proto, port), iif, "lo"};
    return interp.Hook(nft::kPreDnatChain, p);
  };
  CHECK_FALSE(pre("eth5", "203.0.113.9", "192.168.5.10", policy::kProtoTcp, 80));  // early.pre-pass Deny
  CHECK_FALSE(pre("eth5", "198.51.100.9", "192.168.5.10", policy::kProtoUdp, 53));  // pre-deny Deny
  CHECK(pre("eth5", "198.51.100.9", "192.168.5.10", policy::kProtoTcp, 22));        // failsafe first
  CHECK(pre("eth5", "203.0.113.8", "192.168.5.10", policy::kProtoTcp, 80));         // Allow: this stage
  // A named endpoint without preDNAT policies, loopback and workload interfaces: not "*"'s.
  CHECK(pre("eth7", "198.51.100.9", "192.168.7.10", policy::kProtoUdp, 53));
  CHECK(pre("lo", "198.51.100.9", "192.168.5.10", policy::kProtoUdp, 53));
  // (A spoofed source from a pod: only where no prerouting anti-spoofing runs after pre-dnat.)
  const std::string web_if = ToProbe(d.w.model, World::Make("10.0.9.9", "10.0.1.1", 6, 1)).oif;
  if (!t.chains.contains("prerouting")) CHECK(pre(web_if.c_str(), "198.51.100.9", "10.0.1.1", policy::kProtoUdp, 53));
  CHECK(policy::Explain(d.w.model, World::Make("203.0.113.9", "192.168.5.10", policy::kProtoTcp, 80))
            .Describe()
            .find("denied by preDNAT tier early policy early.pre-pass rule 1") != std::string::npos);
  // The endpoint leaves the selectors: its preDNAT entry empties, named ones are untouched.
  d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-any}
spec: {node: node1, interfaceName: "*", expectedIPs: [192.168.5.10]}
)");
  d.Endpoint("hep:node1-any");
  d.Check();
  CHECK(d.compiler.desired().chains.at(nft::kHepAnyPreDnat).rules.empty());
  CHECK(d.compiler.desired().sets.at(nft::kHepPreDnatMap).elements.at("eth7") == "return");
}

TEST_CASE("preDNAT: each incremental step equals a fresh build", "[unit][policy_compiler][hostendpoint][prednat][incremental]") {
  const LayoutCase layout = kLayouts[GENERATE(0, 1, 2, 3)];
  INFO("dispatch " << int(layout.dispatch) << " egress " << int(layout.egress));
  Driver d(layout, "node1");
  d.w.Apply(kHostEndpoints);
  d.Start();
  d.w.Apply(kPreDnat);
  d.Rebuilt({{"early.pre-pass", "pre-deny"}, {}});
  d.Check();
  CheckHostOracle(d.w.model, d.compiler.desired());
  // A policy change through UpdatePolicy (preDNAT policies are not in the index's lists).
  d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: pre-deny}
spec:
  order: 1
  selector: role == 'bare'
  preDNAT: true
  applyOnForward: true
  ingress:
  - {action: Deny, protocol: UDP}
)");
  d.Push(d.compiler.Update(d.w.model, d.index, d.index.UpdatePolicy(d.w.model, "pre-deny"), {{"pre-deny"}, {}}));
  d.Check();
  CheckHostOracle(d.w.model, d.compiler.desired());
  // The host endpoint's labels change: it leaves the selector.
  d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth8, labels: {role: other}}
spec: {node: node1, interfaceName: eth8, expectedIPs: [192.168.8.10]}
)");
  d.Endpoint("hep:node1-eth8");
  d.Check();
  // Still in the map, so the all-interfaces endpoint's preDNAT never runs for it.
  CHECK(d.compiler.desired().sets.at(nft::kHepPreDnatMap).elements.at("eth8") == "return");
  // The tier's order changes (a rebuild, no policy named): eth9's chain follows.
  d.w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: early}
spec: {order: 2000000}
)");
  d.Rebuilt({});
  d.Check();
  // Policies deleted: chains and elements go.
  d.Delete("projectcalico.org/v3", "GlobalNetworkPolicy", "", "early.pre-pass");
  d.Delete("projectcalico.org/v3", "GlobalNetworkPolicy", "", "pre-deny");
  d.Rebuilt({{"early.pre-pass", "pre-deny"}, {}});
  d.Check();
  for (const auto& [ifname, verdict] : d.compiler.desired().sets.at(nft::kHepPreDnatMap).elements) {
    CHECK(verdict == "return");
  }
  for (const auto& [name, _] : d.compiler.desired().chains) CHECK_FALSE(name.starts_with("hpd-"));
}

}  // namespace
}  // namespace calico::felixd::policy_compiler::testing
