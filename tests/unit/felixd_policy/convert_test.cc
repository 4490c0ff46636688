// Conversion of resources into the model, as upstream converts them.

#include "tests/unit/felixd_policy/world.h"

namespace calico::felixd::policy::testing {
namespace {

resources::Resource One(const std::string& yaml) {
  absl::StatusOr<std::vector<resources::ParsedDocument>> docs = resources::ParseDocuments(yaml);
  REQUIRE(docs.ok());
  REQUIRE(docs->size() == 1);
  INFO((*docs)[0].resource.status().ToString());
  REQUIRE((*docs)[0].resource.ok());
  return *(*docs)[0].resource;
}

Policy Convert(const std::string& yaml) {
  absl::StatusOr<Policy> p = PolicyFromResource(One(yaml));
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  return *p;
}

TEST_CASE("k8s NetworkPolicy: name, tier, order, selector and rules per peer and protocol", "[unit][policy][convert]") {
  Policy p = Convert(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: db}
    matchExpressions:
    - {key: tier, operator: NotIn, values: [test]}
    - {key: legacy, operator: DoesNotExist}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
    - ipBlock: {cidr: 192.168.0.0/16, except: [192.168.5.0/24]}
    ports:
    - {port: 5432}
    - {protocol: UDP, port: 53}
    - {protocol: UDP}
  egress:
  - {}
)");
  CHECK(p.kind == PolicyKind::kKubernetesNetworkPolicy);
  CHECK(p.Id() == "prod/knp.default.db");
  CHECK(p.tier == "default");
  REQUIRE(p.order);
  CHECK(*p.order == 1000);
  CHECK(p.ingress);
  CHECK(p.egress);  // egress rules present
  CHECK(p.applies_to.scope == Scope::kNamespace);
  CHECK(p.applies_to.ns == "prod");
  REQUIRE(p.applies_to.selector);
  CHECK(p.applies_to.selector->String() ==
        R"((projectcalico.org/orchestrator == "k8s" && app == "db" && tier not in {"test"} && !has(legacy)))");
  // 2 peers x 2 protocols; UDP without a port is the whole protocol.
  REQUIRE(p.ingress_rules.size() == 4);
  const Rule& tcp_pod = p.ingress_rules[0];
  CHECK(tcp_pod.action == Action::kAllow);
  CHECK(tcp_pod.protocol == kProtoTcp);
  CHECK(tcp_pod.destination.ports.ranges == std::vector<PortRange>{{5432, 5432}});
  REQUIRE(tcp_pod.source.selector);
  CHECK(tcp_pod.source.selector->scope == Scope::kNamespace);
  CHECK(tcp_pod.origin == "spec.ingress[0].from[0] TCP");
  const Rule& udp_pod = p.ingress_rules[1];
  CHECK(udp_pod.protocol == kProtoUdp);
  CHECK(udp_pod.destination.ports.empty());
  const Rule& tcp_block = p.ingress_rules[2];
  CHECK(tcp_block.origin == "spec.ingress[0].from[1] TCP");
  CHECK_FALSE(tcp_block.source.selector);
  REQUIRE(tcp_block.source.nets.size() == 1);
  CHECK(tcp_block.source.nets[0].ToString() == "192.168.0.0/16");
  REQUIRE(tcp_block.source.not_nets.size() == 1);
  CHECK(tcp_block.source.not_nets[0].ToString() == "192.168.5.0/24");
  // egress: [{}] is one rule matching everything.
  REQUIRE(p.egress_rules.size() == 1);
  CHECK_FALSE(p.egress_rules[0].protocol);
  CHECK_FALSE(p.egress_rules[0].destination.selector);
}

TEST_CASE("k8s policyTypes default and explicit", "[unit][policy][convert]") {
  Policy ingress_only = Convert(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: ns1}
spec: {podSelector: {}}
)");
  CHECK(ingress_only.ingress);
  CHECK_FALSE(ingress_only.egress);
  CHECK(ingress_only.applies_to.selector->String() == R"(projectcalico.org/orchestrator == "k8s")");
  Policy egress_only = Convert(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: ns1}
spec: {podSelector: {}, policyTypes: [Egress]}
)");
  CHECK_FALSE(egress_only.ingress);
  CHECK(egress_only.egress);
}

TEST_CASE("k8s peers: namespaceSelector forms", "[unit][policy][convert]") {
  Policy p = Convert(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: ns1}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {}
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns2}}
      podSelector: {matchLabels: {app: x}}
)");
  REQUIRE(p.ingress_rules.size() == 2);
  const EntitySelector& all_ns = *p.ingress_rules[0].source.selector;
  CHECK(all_ns.scope == Scope::kNamespaceSelector);
  CHECK_FALSE(all_ns.namespace_selector);  // every namespace
  CHECK(all_ns.selector->String() == R"(projectcalico.org/orchestrator == "k8s")");
  const EntitySelector& both = *p.ingress_rules[1].source.selector;
  CHECK(both.namespace_selector->String() == R"(kubernetes.io/metadata.name == "ns2")");
  CHECK(both.selector->String() == R"((projectcalico.org/orchestrator == "k8s" && app == "x"))");
}

TEST_CASE("calico NetworkPolicy: namespaced selectors and rule fields", "[unit][policy][convert]") {
  Policy p = Convert(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: p1, namespace: ns1}
spec:
  order: 12.5
  selector: app == 'x'
  serviceAccountSelector: role == 'api'
  ingress:
  - action: Deny
    protocol: 17
    notProtocol: TCP
    source: {selector: a == 'b', ports: [53, "100:200", dns], notNets: [10.1.0.0/16]}
  - action: Pass
    source: {nets: [10.0.0.0/8]}
  - action: Log
    source: {namespaceSelector: global()}
  - action: Allow
    source: {serviceAccounts: {names: [sa1, sa2]}}
  - action: Allow
    source: {services: {name: frontend}}
)");
  CHECK(p.kind == PolicyKind::kNetworkPolicy);
  CHECK(p.Id() == "ns1/p1");
  CHECK(*p.order == 12.5);
  CHECK(p.ingress);
  CHECK_FALSE(p.egress);  // no egress rules: Ingress only
  CHECK(p.applies_to.scope == Scope::kNamespace);
  CHECK(p.applies_to.service_accounts);
  CHECK(p.applies_to.sa_selector->String() == R"(role == "api")");
  REQUIRE(p.ingress_rules.size() == 5);
  const Rule& r0 = p.ingress_rules[0];
  CHECK(r0.action == Action::kDeny);
  CHECK(r0.protocol == kProtoUdp);
  CHECK(r0.not_protocol == kProtoTcp);
  CHECK(r0.source.selector->scope == Scope::kNamespace);
  CHECK(r0.source.selector->ns == "ns1");
  CHECK(r0.source.ports.ranges == std::vector<PortRange>{{53, 53}, {100, 200}});
  CHECK(r0.source.ports.names == std::vector<std::string>{"dns"});
  CHECK(r0.source.not_nets.size() == 1);
  CHECK(p.ingress_rules[1].action == Action::kPass);
  CHECK_FALSE(p.ingress_rules[1].source.selector);  // nets alone are not namespaced
  CHECK(p.ingress_rules[2].action == Action::kLog);
  CHECK(p.ingress_rules[2].source.selector->scope == Scope::kGlobal);
  const Rule& r3 = p.ingress_rules[3];
  CHECK(r3.source.selector->service_accounts);
  CHECK(r3.source.selector->sa_names == std::vector<std::string>{"sa1", "sa2"});
  CHECK(r3.source.selector->scope == Scope::kNamespace);
  CHECK(r3.unsupported.empty());
  CHECK_FALSE(p.ingress_rules[4].unsupported.empty());  // services
}

TEST_CASE("calico GlobalNetworkPolicy: namespaceSelector and host-endpoint flags", "[unit][policy][convert]") {
  Policy p = Convert(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: sec.g1}
spec:
  tier: sec
  namespaceSelector: team == 'a'
  selector: all()
  applyOnForward: true
  preDNAT: true
  ingress: [{action: Allow, source: {selector: app == 'y'}}]
  egress: []
)");
  CHECK(p.kind == PolicyKind::kGlobalNetworkPolicy);
  CHECK(p.Id() == "sec.g1");
  CHECK(p.tier == "sec");
  CHECK_FALSE(p.order);
  CHECK(p.applies_to.scope == Scope::kNamespaceSelector);
  CHECK(p.apply_on_forward);
  CHECK(p.pre_dnat);
  CHECK_FALSE(p.do_not_track);
  CHECK(p.ingress_rules[0].source.selector->scope == Scope::kAll);
}

TEST_CASE("calico types default: egress rules alone mean Egress alone", "[unit][policy][convert]") {
  Policy p = Convert(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: p1, namespace: ns1}
spec:
  egress: [{action: Allow}]
)");
  CHECK_FALSE(p.ingress);
  CHECK(p.egress);
  Policy both = Convert(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: p1, namespace: ns1}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
)");
  CHECK(both.ingress);
  CHECK(both.egress);
}

TEST_CASE("endpoint: implicit labels, named ports and profiles", "[unit][policy][convert]") {
  absl::StatusOr<Endpoint> e = EndpointFromResource(One(R"(
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: n1-k8s-pod1-eth0, namespace: ns1, labels: {app: x}}
spec:
  orchestrator: k8s
  node: n1
  pod: pod1
  endpoint: eth0
  serviceAccountName: sa1
  ipNetworks: [10.0.0.5/32]
  profiles: [kns.ns1, ksa.ns1.sa1]
  interfaceName: cali0123456789a
  ports:
  - {name: http, protocol: TCP, port: 8080}
  - {name: dns, protocol: UDP, port: 53}
)"));
  REQUIRE(e.ok());
  CHECK(e->Id() == "ns1/n1-k8s-pod1-eth0");
  CHECK(e->labels == Labels{{"app", "x"},
                            {"projectcalico.org/namespace", "ns1"},
                            {"projectcalico.org/orchestrator", "k8s"},
                            {"projectcalico.org/serviceaccount", "sa1"}});
  CHECK(e->interface == "cali0123456789a");
  REQUIRE(e->ports.size() == 2);
  CHECK(ResolveNamedPort(*e, "http", kProtoTcp) == std::vector<int>{8080});
  CHECK(ResolveNamedPort(*e, "http", kProtoUdp).empty());
  CHECK(ResolveNamedPort(*e, "dns", kProtoUdp) == std::vector<int>{53});
  CHECK(e->profiles == std::vector<std::string>{"kns.ns1", "ksa.ns1.sa1"});
}

TEST_CASE("namespaces and service accounts come from kns./ksa. profiles", "[unit][policy][convert]") {
  Model m;
  REQUIRE(m.Apply(NamespaceProfile("ns1", {{"team", "a"}})).ok());
  REQUIRE(m.Apply(ServiceAccountProfile("ns1", "sa1", {{"role", "api"}})).ok());
  CHECK(m.NamespaceLabels("ns1") == Labels{{"team", "a"},
                                           {"projectcalico.org/name", "ns1"},
                                           {"kubernetes.io/metadata.name", "ns1"}});
  CHECK(m.NamespaceLabels("other") ==
        Labels{{"projectcalico.org/name", "other"}, {"kubernetes.io/metadata.name", "other"}});
  CHECK(m.ServiceAccountLabels("ns1", "sa1") == Labels{{"role", "api"}, {"projectcalico.org/name", "sa1"}});
  // The namespace profile is the upstream shape: allow all both ways.
  std::optional<Profile> kns = m.ProfileNamed("kns.ns1");
  REQUIRE(kns);
  REQUIRE(kns->ingress_rules.size() == 1);
  CHECK(kns->ingress_rules[0].action == Action::kAllow);
  // Synthesised when absent: kns allow-all, ksa without rules, others missing.
  std::optional<Profile> synth = m.ProfileNamed("kns.absent");
  REQUIRE(synth);
  CHECK(synth->egress_rules.size() == 1);
  REQUIRE(m.ProfileNamed("ksa.ns1.absent"));
  CHECK(m.ProfileNamed("ksa.ns1.absent")->ingress_rules.empty());
  CHECK_FALSE(m.ProfileNamed("custom"));
}

TEST_CASE("tiers: stored, the implicit default, and a missing one", "[unit][policy][convert]") {
  Model m;
  REQUIRE(m.Apply(One(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: sec}
spec: {order: 100, defaultAction: Pass}
)")).ok());
  Policy p;
  p.name = "late.p";
  p.tier = "late";
  m.Put(p);
  Policy d;
  d.name = "d";
  m.Put(d);
  std::vector<Tier> tiers = m.SortedTiers();
  REQUIRE(tiers.size() == 3);
  CHECK(tiers[0].name == "sec");
  CHECK(tiers[0].default_action == TierDefault::kPass);
  CHECK(tiers[1].name == "default");
  CHECK(*tiers[1].order == 1000000);
  CHECK(tiers[2].name == "late");  // no order: last
  CHECK_FALSE(tiers[2].order);
  CHECK(tiers[2].default_action == TierDefault::kDeny);
}

TEST_CASE("Model::Remove by kind and key, Kubernetes names included", "[unit][policy][convert]") {
  World w;
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: ns1}
spec: {podSelector: {}}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: a, namespace: ns1}
spec: {selector: all()}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: gs}
spec: {nets: [1.2.3.0/24]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: s, namespace: ns1}
spec: {nets: [1.2.4.0/24]}
)");
  CHECK(w.model.policies().size() == 2);
  CHECK(w.model.network_sets().count("ns1/s"));
  CHECK(w.model.network_sets().at("ns1/s").labels.at("projectcalico.org/namespace") == "ns1");
  w.Delete("networking.k8s.io/v1", "NetworkPolicy", "ns1", "a");
  CHECK(w.model.policies().size() == 1);
  CHECK(w.model.policies().count("ns1/a"));
  w.Delete("projectcalico.org/v3", "NetworkPolicy", "ns1", "a");
  w.Delete("projectcalico.org/v3", "GlobalNetworkSet", "", "gs");
  w.Delete("projectcalico.org/v3", "NetworkSet", "ns1", "s");
  CHECK(w.model.policies().empty());
  CHECK(w.model.network_sets().empty());
}

TEST_CASE("BuildModel skips kinds that do not concern policy", "[unit][policy][convert]") {
  std::vector<resources::Resource> rs = {One(R"(
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p}
spec: {cidr: 10.0.0.0/16}
)"),
                                         One(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: g}
spec: {selector: all()}
)")};
  std::vector<std::string> errors;
  Model m = BuildModel(rs, &errors);
  CHECK(errors.empty());
  CHECK(m.policies().size() == 1);
}

TEST_CASE("a rule whose CIDRs are of one IP version exists only for that version", "[unit][policy][convert]") {
  Policy p = Convert(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: p, namespace: prod}
spec:
  selector: all()
  ingress:
  - {action: Allow, source: {notNets: [fd00::5/128]}}
  - {action: Allow, source: {nets: [10.0.0.0/8]}}
  - {action: Allow, destination: {notNets: [10.1.0.0/16]}, source: {selector: all()}}
  - {action: Allow, ipVersion: 6, source: {notNets: [fd00::5/128]}}
  - {action: Allow, protocol: TCP}
)");
  REQUIRE(p.ingress_rules.size() == 5);
  CHECK(p.ingress_rules[0].ip_version == 6);  // not "every IPv4 address" (upstream)
  CHECK(p.ingress_rules[1].ip_version == 4);
  CHECK(p.ingress_rules[2].ip_version == 4);
  CHECK(p.ingress_rules[3].ip_version == 6);  // explicit: kept
  CHECK_FALSE(p.ingress_rules[4].ip_version);
  CHECK(p.ingress_rules[0].unsupported.empty());
}

}  // namespace
}  // namespace calico::felixd::policy::testing
