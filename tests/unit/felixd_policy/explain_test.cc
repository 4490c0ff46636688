// Verdicts of the evaluator against upstream semantics: Kubernetes NetworkPolicy (as the
// Kubernetes documentation defines it, via Calico's conversion) and Calico's extensions. Every
// expectation is written from the documented semantics, not from running the code.

#include "tests/unit/felixd_policy/world.h"

namespace calico::felixd::policy::testing {
namespace {

// Two namespaces and five pods; 192.168.x and 203.0.113.x are outside the cluster.
//   prod (team=a, env=prod): web 10.0.1.1 (app=web, named port http=8080/TCP, dns=53/UDP),
//                            db 10.0.1.2 (app=db), cache 10.0.1.3 (app=cache)
//   dev  (team=b, env=dev):  client 10.0.2.1 (app=client), web 10.0.2.2 (app=web, no named port)
constexpr const char* kWeb = "10.0.1.1";
constexpr const char* kDb = "10.0.1.2";
constexpr const char* kCache = "10.0.1.3";
constexpr const char* kClient = "10.0.2.1";
constexpr const char* kDevWeb = "10.0.2.2";
constexpr const char* kOutside = "192.168.5.5";
constexpr const char* kOutside2 = "192.168.4.4";

World Cluster() {
  World w;
  w.Namespace("prod", {{"team", "a"}, {"env", "prod"}});
  w.Namespace("dev", {{"team", "b"}, {"env", "dev"}});
  w.Pod("prod", "web", kWeb, {{"app", "web"}}, "", {{"http", "TCP", 8080}, {"dns", "UDP", 53}});
  w.Pod("prod", "db", kDb, {{"app", "db"}});
  w.Pod("prod", "cache", kCache, {{"app", "cache"}});
  w.Pod("dev", "client", kClient, {{"app", "client"}});
  w.Pod("dev", "web", kDevWeb, {{"app", "web"}});
  return w;
}

TEST_CASE("no policy: the namespace profile allows everything", "[unit][policy][explain]") {
  World w = Cluster();
  CHECK(w.Tcp(kClient, kWeb));
  CHECK(w.Tcp(kWeb, kOutside, 443));
  CHECK(w.Udp(kOutside, kDb, 53));
  CHECK(w.Icmp(kDb, kCache));
  Verdict v = w.Probe(World::TcpPacket(kClient, kWeb, 80));
  REQUIRE(v.egress);
  REQUIRE(v.ingress);
  CHECK(v.egress->endpoint == "dev/node1-k8s-client-eth0");
  CHECK(v.egress->reason == Reason::kProfileRule);
  CHECK(v.egress->profile == "kns.dev");
  CHECK_FALSE(v.egress->policy_applied);
  CHECK(v.ingress->profile == "kns.prod");
  CHECK(v.ingress->Describe().find("no policy selects the endpoint") != std::string::npos);
}

TEST_CASE("neither end a workload: not ours to police", "[unit][policy][explain]") {
  World w = Cluster();
  Verdict v = w.Probe(World::TcpPacket(kOutside, "203.0.113.7", 80));
  CHECK(v.allowed);
  CHECK_FALSE(v.egress);
  CHECK_FALSE(v.ingress);
  CHECK(v.Deciding() == nullptr);
}

TEST_CASE("k8s default deny ingress", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Ingress]
)");
  Verdict v = w.Probe(World::TcpPacket(kClient, kWeb, 80));
  CHECK_FALSE(v.allowed);
  REQUIRE(v.ingress);
  CHECK(v.ingress->reason == Reason::kEndOfTier);
  CHECK(v.ingress->tier == "default");
  CHECK(v.Deciding() == &*v.ingress);
  CHECK(v.egress->allowed);  // dev/client's egress has no policy
  CHECK_FALSE(w.Tcp(kWeb, kDb));       // within prod too
  CHECK_FALSE(w.Tcp(kOutside, kWeb));  // from outside the cluster
  CHECK_FALSE(w.Icmp(kClient, kCache));
  CHECK(w.Tcp(kWeb, kDevWeb));         // dev is not selected
  CHECK(w.Tcp(kWeb, kOutside));        // egress is not restricted
  // Deleting the policy restores access.
  w.Delete("networking.k8s.io/v1", "NetworkPolicy", "prod", "default-deny");
  CHECK(w.Tcp(kClient, kWeb));
  CHECK(w.Tcp(kWeb, kDb));
}

TEST_CASE("k8s default deny egress", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Egress]
)");
  Verdict v = w.Probe(World::TcpPacket(kWeb, kDevWeb, 80));
  CHECK_FALSE(v.allowed);
  REQUIRE(v.egress);
  CHECK(v.egress->reason == Reason::kEndOfTier);
  CHECK_FALSE(v.ingress);  // the packet never reaches dev/web
  CHECK_FALSE(w.Tcp(kWeb, kOutside, 443));
  CHECK_FALSE(w.Tcp(kDb, kCache));
  CHECK(w.Tcp(kClient, kWeb));  // ingress into prod is not restricted
  CHECK(w.Tcp(kOutside, kDb));
}

TEST_CASE("k8s pod selector alone stays in the policy's namespace", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
)");
  Verdict v = w.Probe(World::TcpPacket(kWeb, kDb, 5432));
  CHECK(v.allowed);
  REQUIRE(v.ingress);
  CHECK(v.ingress->reason == Reason::kRule);
  CHECK(v.ingress->policy == "prod/knp.default.db-from-web");
  CHECK(v.ingress->rule_index == 0);
  CHECK(v.ingress->rule_origin == "spec.ingress[0].from[0] TCP");
  CHECK_FALSE(w.Tcp(kWeb, kDb, 80));            // other port
  CHECK_FALSE(w.Udp(kWeb, kDb, 5432));          // protocol defaults to TCP
  CHECK_FALSE(w.Tcp(kCache, kDb, 5432));        // not app=web
  CHECK_FALSE(w.Tcp(kDevWeb, kDb, 5432));       // app=web but another namespace
  CHECK_FALSE(w.Tcp(kOutside, kDb, 5432));
  CHECK(w.Tcp(kWeb, kCache, 80));               // cache is not selected
}

TEST_CASE("k8s namespace selector alone", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-team-b, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: b}}}]
)");
  CHECK(w.Tcp(kClient, kWeb));
  CHECK(w.Tcp(kDevWeb, kWeb, 9999));
  CHECK(w.Udp(kClient, kWeb, 53));  // no ports: any port and protocol
  CHECK_FALSE(w.Tcp(kDb, kWeb));    // prod is team=a
  CHECK_FALSE(w.Tcp(kOutside, kWeb));
}

TEST_CASE("k8s namespace selector on kubernetes.io/metadata.name", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-dev, namespace: prod}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [dev]}]
)");
  CHECK(w.Tcp(kClient, kDb));
  CHECK(w.Tcp(kDevWeb, kCache));
  CHECK_FALSE(w.Tcp(kWeb, kDb));
}

TEST_CASE("k8s pod and namespace selectors: one peer is AND, two peers are OR", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and-peer, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: b}}
      podSelector: {matchLabels: {app: client}}
)");
  CHECK(w.Tcp(kClient, kWeb));
  CHECK_FALSE(w.Tcp(kDevWeb, kWeb));  // team b, but not app=client
  CHECK_FALSE(w.Tcp(kDb, kWeb));
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and-peer, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: b}}
    - podSelector: {matchLabels: {app: db}}
)");
  CHECK(w.Tcp(kClient, kWeb));
  CHECK(w.Tcp(kDevWeb, kWeb));
  CHECK(w.Tcp(kDb, kWeb));
  CHECK_FALSE(w.Tcp(kCache, kWeb));
}

TEST_CASE("k8s empty namespace selector means every namespace, pods only", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-all-clients, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}]
  - from: [{namespaceSelector: {}}]
    ports: [{port: 9000}]
)");
  CHECK(w.Tcp(kClient, kDb, 1));      // app=client in any namespace
  CHECK_FALSE(w.Tcp(kDevWeb, kDb, 1));
  CHECK(w.Tcp(kDevWeb, kDb, 9000));   // any pod of any namespace on 9000
  CHECK(w.Tcp(kWeb, kDb, 9000));
  CHECK_FALSE(w.Tcp(kOutside, kDb, 9000));  // not a pod
}

TEST_CASE("k8s ports: numbers, endPort ranges, named ports, UDP and SCTP", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ports, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports:
    - port: http
    - {port: 9000, endPort: 9100}
    - {protocol: UDP, port: dns}
    - {protocol: SCTP, port: 3868}
)");
  CHECK(w.Tcp(kClient, kWeb, 8080));  // named port http on prod/web
  CHECK_FALSE(w.Tcp(kClient, kWeb, 80));
  CHECK(w.Tcp(kClient, kWeb, 9000));
  CHECK(w.Tcp(kClient, kWeb, 9050));
  CHECK(w.Tcp(kClient, kWeb, 9100));
  CHECK_FALSE(w.Tcp(kClient, kWeb, 9101));
  CHECK_FALSE(w.Tcp(kClient, kWeb, 8999));
  CHECK(w.Udp(kClient, kWeb, 53));
  CHECK_FALSE(w.Tcp(kClient, kWeb, 53));     // dns is UDP
  CHECK_FALSE(w.Udp(kClient, kWeb, 8080));   // http is TCP
  CHECK(w.Probe(World::Make(kClient, kWeb, kProtoSctp, 3868)).allowed);
  CHECK_FALSE(w.Probe(World::Make(kClient, kWeb, kProtoTcp, 3868)).allowed);
  CHECK_FALSE(w.Icmp(kClient, kWeb));
}

TEST_CASE("k8s egress to a named port resolves on the destination pod", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-egress, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Egress]
  egress:
  - ports: [{port: http}]
)");
  CHECK(w.Tcp(kDb, kWeb, 8080));           // prod/web names 8080 http
  CHECK_FALSE(w.Tcp(kDb, kWeb, 80));
  CHECK_FALSE(w.Tcp(kDb, kDevWeb, 8080));  // dev/web has no port named http
  CHECK_FALSE(w.Tcp(kDb, kOutside, 8080)); // not an endpoint: no named ports
}

TEST_CASE("k8s ipBlock with except, ingress and egress", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: blocks, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{ipBlock: {cidr: 192.168.0.0/16, except: [192.168.5.0/24]}}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.0/24]}}]
)");
  CHECK(w.Tcp(kOutside2, kWeb));        // 192.168.4.4
  CHECK_FALSE(w.Tcp(kOutside, kWeb));   // 192.168.5.5 is excepted
  CHECK_FALSE(w.Tcp(kDb, kWeb));        // 10.0.1.2 is not in 192.168/16
  CHECK(w.Tcp(kWeb, kDb));              // 10.0.1.2 inside 10.0/16
  CHECK_FALSE(w.Tcp(kWeb, kClient));    // 10.0.2.1 excepted
  CHECK_FALSE(w.Tcp(kWeb, kOutside));
}

TEST_CASE("k8s policyTypes default: egress rules add Egress, Ingress is always there", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-to-db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  egress:
  - to: [{podSelector: {matchLabels: {app: db}}}]
)");
  CHECK(w.Tcp(kWeb, kDb));
  CHECK_FALSE(w.Tcp(kWeb, kCache));
  CHECK_FALSE(w.Tcp(kClient, kWeb));  // Ingress is selected too, with no rules
  // The same as a Calico NetworkPolicy: types default to Egress alone.
  World c = Cluster();
  c.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-to-db, namespace: prod}
spec:
  selector: app == 'web'
  egress:
  - action: Allow
    destination: {selector: app == 'db'}
)");
  CHECK(c.Tcp(kWeb, kDb));
  CHECK_FALSE(c.Tcp(kWeb, kCache));
  CHECK(c.Tcp(kClient, kWeb));
}

TEST_CASE("k8s allow-all rule and the union of policies", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: prod}
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: b}}, podSelector: {matchLabels: {app: client}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: db}}}]
)");
  CHECK(w.Tcp(kClient, kWeb));
  CHECK(w.Tcp(kDb, kWeb));
  CHECK_FALSE(w.Tcp(kCache, kWeb));
  CHECK_FALSE(w.Tcp(kWeb, kDb));
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: prod}
spec:
  podSelector: {}
  ingress: [{}]
)");
  CHECK(w.Tcp(kCache, kWeb));
  CHECK(w.Tcp(kOutside, kDb));
}

TEST_CASE("k8s label changes take effect: pods and namespaces", "[unit][policy][explain][k8s]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
  - from: [{namespaceSelector: {matchLabels: {team: b}}}]
)");
  CHECK_FALSE(w.Tcp(kCache, kDb));
  w.Pod("prod", "cache", kCache, {{"app", "web"}});  // relabelled
  CHECK(w.Tcp(kCache, kDb));
  CHECK(w.Tcp(kClient, kDb));
  w.Namespace("dev", {{"team", "c"}});  // namespace relabelled
  CHECK_FALSE(w.Tcp(kClient, kDb));
  // The selected pod itself: db relabelled out of the policy's podSelector.
  w.Pod("prod", "db", kDb, {{"app", "olddb"}});
  CHECK(w.Tcp(kClient, kDb));
  // A pod removed is no longer a workload: its address is checked on the other side only.
  w.RemovePod("prod", "web");
  w.Pod("prod", "db", kDb, {{"app", "db"}});
  CHECK_FALSE(w.Tcp(kWeb, kDb));
}

// ---- Calico extensions ---------------------------------------------------------------------

TEST_CASE("calico Deny and order: the first matching rule wins", "[unit][policy][explain][calico]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: deny-client, namespace: prod}
spec:
  order: 10
  selector: app == 'web'
  ingress:
  - action: Deny
    source: {selector: app == 'client', namespaceSelector: all()}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-all, namespace: prod}
spec:
  order: 20
  selector: app == 'web'
  ingress: [{action: Allow}]
)");
  Verdict v = w.Probe(World::TcpPacket(kClient, kWeb, 80));
  CHECK_FALSE(v.allowed);
  CHECK(v.ingress->policy == "prod/deny-client");
  CHECK(v.ingress->rule_index == 0);
  CHECK(w.Tcp(kDevWeb, kWeb));
  CHECK(w.Tcp(kOutside, kWeb));
  // Reordered: the allow comes first.
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-all, namespace: prod}
spec:
  order: 5
  selector: app == 'web'
  ingress: [{action: Allow}]
)");
  CHECK(w.Tcp(kClient, kWeb));
  // Equal order: the name decides ("allow-all" < "deny-client").
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-all, namespace: prod}
spec:
  order: 10
  selector: app == 'web'
  ingress: [{action: Allow}]
)");
  CHECK(w.Tcp(kClient, kWeb));
  // No order sorts after every ordered policy.
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-all, namespace: prod}
spec:
  selector: app == 'web'
  ingress: [{action: Allow}]
)");
  CHECK_FALSE(w.Tcp(kClient, kWeb));
}

TEST_CASE("calico Pass across tiers, tier order and defaultAction", "[unit][policy][explain][calico][tiers]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.base}
spec:
  tier: security
  order: 1
  selector: all()
  types: [Ingress]
  ingress:
  - action: Deny
    source: {nets: [192.168.5.0/24]}
  - action: Pass
)");
  Verdict v = w.Probe(World::TcpPacket(kOutside, kWeb, 80));
  CHECK_FALSE(v.allowed);
  CHECK(v.ingress->tier == "security");
  CHECK(v.ingress->policy == "security.base");
  // Passed to the next tier: the default tier has no policy for web, so its profile decides.
  v = w.Probe(World::TcpPacket(kOutside2, kWeb, 80));
  CHECK(v.allowed);
  CHECK(v.ingress->reason == Reason::kProfileRule);
  CHECK(v.ingress->policy_applied);
  REQUIRE(v.ingress->trace.size() == 1);
  CHECK(v.ingress->trace[0].starts_with("pass: tier security policy security.base rule 1"));
  // A default-deny in the default tier now decides after the pass.
  w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: prod}
spec: {podSelector: {}}
)");
  v = w.Probe(World::TcpPacket(kOutside2, kWeb, 80));
  CHECK_FALSE(v.allowed);
  CHECK(v.ingress->reason == Reason::kEndOfTier);
  CHECK(v.ingress->tier == "default");
  CHECK(w.Tcp(kOutside2, kDevWeb));  // dev has no default-tier policy
}

TEST_CASE("calico tier without a matching rule: end of tier drop unless defaultAction Pass", "[unit][policy][explain][calico][tiers]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.block-5}
spec:
  tier: security
  selector: app == 'web'
  ingress:
  - action: Deny
    source: {nets: [192.168.5.0/24]}
)");
  Verdict v = w.Probe(World::TcpPacket(kOutside2, kWeb, 80));
  CHECK_FALSE(v.allowed);
  CHECK(v.ingress->reason == Reason::kEndOfTier);
  CHECK(v.ingress->tier == "security");
  CHECK(w.Tcp(kOutside2, kDb));  // not selected: the tier does not apply
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Pass}
)");
  CHECK(w.Tcp(kOutside2, kWeb));
  CHECK_FALSE(w.Tcp(kOutside, kWeb));
}

TEST_CASE("calico tiers: the lower order goes first", "[unit][policy][explain][calico][tiers]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: alpha}
spec: {order: 10}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: beta}
spec: {order: 5}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: alpha.allow}
spec:
  tier: alpha
  ingress: [{action: Allow, source: {nets: [192.168.4.4/32]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: beta.deny}
spec:
  tier: beta
  ingress:
  - {action: Deny, source: {nets: [192.168.0.0/16]}}
  - {action: Pass}
)");
  Verdict v = w.Probe(World::TcpPacket(kOutside2, kDb, 80));
  CHECK_FALSE(v.allowed);
  CHECK(v.ingress->tier == "beta");
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: beta}
spec: {order: 20}
)");
  v = w.Probe(World::TcpPacket(kOutside2, kDb, 80));
  CHECK(v.allowed);
  CHECK(v.ingress->tier == "alpha");
  CHECK(v.ingress->policy == "alpha.allow");
  // Pod to pod: beta passes, nothing in alpha matches → end of tier alpha (Deny).
  CHECK_FALSE(w.Tcp(kWeb, kDb));
}

TEST_CASE("calico GlobalNetworkPolicy with namespaceSelector, ICMP and end of tier", "[unit][policy][explain][calico]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: no-ping-prod}
spec:
  namespaceSelector: team == 'a'
  ingress:
  - action: Deny
    protocol: ICMP
    icmp: {type: 8}
  - action: Allow
)");
  CHECK_FALSE(w.Icmp(kClient, kWeb, 8));
  CHECK(w.Icmp(kClient, kWeb, 0));      // echo reply is not type 8
  CHECK(w.Tcp(kClient, kWeb));
  CHECK(w.Icmp(kWeb, kDevWeb, 8));      // dev is not selected
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: no-ping-prod}
spec:
  namespaceSelector: team == 'a'
  ingress:
  - action: Deny
    protocol: ICMP
    icmp: {type: 8}
)");
  CHECK_FALSE(w.Tcp(kClient, kWeb));   // the tier applies and nothing allows: end of tier
  CHECK(w.Tcp(kWeb, kDevWeb));
}

TEST_CASE("calico ICMP type and code, notICMP, notProtocol", "[unit][policy][explain][calico]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: icmp, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: ICMP
    icmp: {type: 3, code: 4}
  - action: Allow
    protocol: ICMP
    notICMP: {type: 8}
  - action: Allow
    notProtocol: UDP
    source: {nets: [192.168.0.0/16]}
)");
  CHECK(w.Icmp(kClient, kWeb, 3, 4));
  CHECK(w.Icmp(kClient, kWeb, 3, 1));    // second rule: not type 8
  CHECK_FALSE(w.Icmp(kClient, kWeb, 8)); // echo request only excluded
  CHECK_FALSE(w.Tcp(kClient, kWeb));
  CHECK(w.Tcp(kOutside, kWeb));
  CHECK_FALSE(w.Udp(kOutside, kWeb, 53));
  CHECK(w.Icmp(kOutside, kWeb, 8));      // third rule: any protocol but UDP
}

TEST_CASE("calico rule selectors: own namespace by default, namespaceSelector, global()", "[unit][policy][explain][calico]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: partners, labels: {role: partners}}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: prod-partners, namespace: prod, labels: {role: partners}}
spec: {nets: [203.0.113.0/25]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  selector: app == 'db'
  ingress:
  - action: Allow
    source: {selector: app == 'web'}
  - action: Allow
    source: {selector: role == 'partners'}
)");
  CHECK(w.Tcp(kWeb, kDb));
  CHECK_FALSE(w.Tcp(kDevWeb, kDb));          // app=web in dev: other namespace
  CHECK(w.Tcp("203.0.113.9", kDb));          // the namespace's NetworkSet
  CHECK_FALSE(w.Tcp("203.0.113.200", kDb));  // outside its nets
  CHECK_FALSE(w.Tcp("198.51.100.9", kDb));   // a GlobalNetworkSet is not in the namespace
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  selector: app == 'db'
  ingress:
  - action: Allow
    source: {selector: app == 'web', namespaceSelector: all()}
  - action: Allow
    source: {selector: role == 'partners', namespaceSelector: global()}
)");
  CHECK(w.Tcp(kWeb, kDb));
  CHECK(w.Tcp(kDevWeb, kDb));                // all(): any namespace
  CHECK(w.Tcp("198.51.100.9", kDb));         // global(): non-namespaced only
  CHECK_FALSE(w.Tcp("203.0.113.9", kDb));
  // In a GlobalNetworkPolicy a selector alone sees every namespace and global sets.
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: partners-to-cache}
spec:
  selector: app == 'cache'
  ingress:
  - action: Allow
    source: {selector: role == 'partners'}
)");
  CHECK(w.Tcp("198.51.100.9", kCache));
  CHECK(w.Tcp("203.0.113.9", kCache));
  CHECK_FALSE(w.Tcp(kWeb, kCache));
}

TEST_CASE("calico notNets and notSelector", "[unit][policy][explain][calico]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: not-dev-net, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    source: {notNets: [10.0.2.0/24]}
)");
  CHECK_FALSE(w.Tcp(kClient, kWeb));
  CHECK_FALSE(w.Tcp(kDevWeb, kWeb));
  CHECK(w.Tcp(kDb, kWeb));
  CHECK(w.Tcp(kOutside, kWeb));
  // notSelector in a namespaced policy: the rule is confined to the namespace too.
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: not-dev-net, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    source: {notSelector: app == 'cache'}
)");
  CHECK(w.Tcp(kDb, kWeb));
  CHECK_FALSE(w.Tcp(kCache, kWeb));
  CHECK_FALSE(w.Tcp(kClient, kWeb));   // other namespace
  CHECK_FALSE(w.Tcp(kOutside, kWeb));  // not an entity of the namespace
  // In a GlobalNetworkPolicy notSelector alone excludes only what it selects.
  World g = Cluster();
  g.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: not-client}
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    source: {notSelector: app == 'client'}
)");
  CHECK_FALSE(g.Tcp(kClient, kWeb));
  CHECK(g.Tcp(kDb, kWeb));
  CHECK(g.Tcp(kOutside, kWeb));
  CHECK_FALSE(g.Tcp(kClient, kDevWeb));  // dev/web is app=web too: selected, client excluded
  CHECK(g.Tcp(kClient, kDb));            // db is not selected
}

TEST_CASE("calico serviceAccounts: names and selector, within the namespace", "[unit][policy][explain][calico]") {
  World w;
  w.Namespace("prod", {{"team", "a"}});
  w.Namespace("dev", {{"team", "b"}});
  w.ServiceAccount("prod", "frontend", {{"tier", "front"}});
  w.ServiceAccount("dev", "frontend", {{"tier", "front"}});
  w.Pod("prod", "web", kWeb, {{"app", "web"}}, "frontend");
  w.Pod("prod", "db", kDb, {{"app", "db"}}, "database");
  w.Pod("prod", "cache", kCache, {{"app", "cache"}});
  w.Pod("dev", "web", kDevWeb, {{"app", "web"}}, "frontend");
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  selector: app == 'db'
  ingress:
  - action: Allow
    source:
      serviceAccounts: {names: [frontend]}
)");
  CHECK(w.Tcp(kWeb, kDb));
  CHECK_FALSE(w.Tcp(kCache, kDb));   // no service account
  CHECK_FALSE(w.Tcp(kDevWeb, kDb));  // same name, other namespace
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  selector: app == 'db'
  ingress:
  - action: Allow
    source:
      serviceAccounts: {selector: tier == 'front'}
      namespaceSelector: all()
)");
  CHECK(w.Tcp(kWeb, kDb));
  CHECK(w.Tcp(kDevWeb, kDb));
  CHECK_FALSE(w.Tcp(kCache, kDb));
  // serviceAccountSelector on the policy: applies to endpoints by their account's labels.
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: fronts-no-udp}
spec:
  serviceAccountSelector: tier == 'front'
  ingress:
  - {action: Deny, protocol: UDP}
  - {action: Allow}
)");
  CHECK_FALSE(w.Udp(kCache, kWeb, 53));
  CHECK_FALSE(w.Udp(kCache, kDevWeb, 53));
  CHECK(w.Udp(kWeb, kCache, 53));
}

TEST_CASE("calico ports: ranges, named ports, notPorts, source ports", "[unit][policy][explain][calico]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: ports, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: ["9000:9100", http, 443], notPorts: [9050]}
  - action: Allow
    protocol: UDP
    source: {ports: [53]}
)");
  CHECK(w.Tcp(kClient, kWeb, 9000));
  CHECK(w.Tcp(kClient, kWeb, 9100));
  CHECK_FALSE(w.Tcp(kClient, kWeb, 9050));  // notPorts
  CHECK_FALSE(w.Tcp(kClient, kWeb, 9101));
  CHECK(w.Tcp(kClient, kWeb, 8080));        // named port http of prod/web
  CHECK(w.Tcp(kClient, kWeb, 443));
  CHECK_FALSE(w.Tcp(kClient, kWeb, 80));
  Packet reply = World::Make(kOutside, kWeb, kProtoUdp, 33000);
  reply.src_port = 53;
  CHECK(w.Probe(reply).allowed);
  reply.src_port = 54;
  CHECK_FALSE(w.Probe(reply).allowed);
}

TEST_CASE("calico egress deny and both ends must allow", "[unit][policy][explain][calico]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web-out, namespace: prod}
spec:
  selector: app == 'web'
  egress:
  - action: Deny
    destination: {nets: [10.0.2.0/24]}
  - action: Allow
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db-in, namespace: prod}
spec:
  selector: app == 'db'
  ingress:
  - action: Deny
    source: {selector: app == 'web'}
  - action: Allow
)");
  Verdict v = w.Probe(World::TcpPacket(kWeb, kClient, 80));
  CHECK_FALSE(v.allowed);
  CHECK(v.Deciding() == &*v.egress);
  CHECK(v.egress->policy == "prod/web-out");
  v = w.Probe(World::TcpPacket(kWeb, kDb, 80));
  CHECK_FALSE(v.allowed);
  CHECK(v.egress->allowed);
  CHECK(v.Deciding() == &*v.ingress);
  CHECK(v.ingress->policy == "prod/db-in");
  CHECK(w.Tcp(kWeb, kCache));
  CHECK(w.Tcp(kCache, kDb));
}

TEST_CASE("calico Log goes on and preDNAT and doNotTrack skip workloads", "[unit][policy][explain][calico]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: log-then-allow, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - {action: Log}
  - {action: Allow, protocol: TCP}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: untracked}
spec:
  order: 1
  selector: all()
  doNotTrack: true
  applyOnForward: true
  ingress: [{action: Deny}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: pre-dnat}
spec:
  order: 1
  selector: all()
  preDNAT: true
  applyOnForward: true
  ingress: [{action: Deny}]
)");
  Verdict v = w.Probe(World::TcpPacket(kClient, kWeb, 80));
  CHECK(v.allowed);
  CHECK(v.ingress->rule_index == 1);
  REQUIRE(v.ingress->trace.size() == 1);
  CHECK(v.ingress->trace[0].starts_with("log: "));
  CHECK_FALSE(w.Udp(kClient, kWeb, 53));
  CHECK(w.Tcp(kClient, kDb));  // the host-endpoint-only policies do not select db
}

TEST_CASE("calico ipVersion and unsupported criteria never match", "[unit][policy][explain][calico]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: v6-and-http, namespace: prod}
spec:
  selector: app == 'web'
  ingress:
  - {action: Allow, ipVersion: 6}
  - action: Allow
    protocol: TCP
    http: {methods: [GET]}
)");
  CHECK_FALSE(w.Tcp(kClient, kWeb));
}

TEST_CASE("profiles: inherited labels, missing profiles and none at all", "[unit][policy][explain][profiles]") {
  World w = Cluster();
  // Namespace labels are inherited by endpoints with the pcns. prefix (upstream's labelsToApply).
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: from-team-b}
spec:
  selector: app == 'db'
  ingress:
  - action: Allow
    source: {selector: pcns.team == 'b'}
)");
  CHECK(w.Tcp(kClient, kDb));
  CHECK_FALSE(w.Tcp(kWeb, kDb));
  // An endpoint without profiles and without policy is denied.
  Endpoint bare;
  bare.ns = "prod";
  bare.name = "bare";
  bare.ips = {*net::ParsePrefix("10.0.1.9/32")};
  bare.labels = {{"projectcalico.org/namespace", "prod"}};
  w.model.Put(bare);
  Verdict v = w.Probe(World::TcpPacket(kWeb, "10.0.1.9", 80));
  CHECK_FALSE(v.allowed);
  CHECK(v.ingress->reason == Reason::kNoProfileAllowed);
  // A stored profile with its own rules replaces the synthesised allow-all.
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: kns.dev}
spec:
  ingress: [{action: Allow, source: {nets: [10.0.0.0/8]}}]
  egress: [{action: Allow}]
  labelsToApply: {pcns.team: b}
)");
  CHECK(w.Tcp(kWeb, kDevWeb));
  CHECK_FALSE(w.Tcp(kOutside, kDevWeb));
  v = w.Probe(World::TcpPacket(kOutside, kDevWeb, 80));
  CHECK(v.ingress->reason == Reason::kNoProfileAllowed);
}

}  // namespace
}  // namespace calico::felixd::policy::testing

namespace calico::felixd::policy::testing {
namespace {

TEST_CASE("host endpoints: forwarded traffic's host endpoint policies are named as not evaluated",
          "[unit][policy][explain][hostendpoint]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth0, labels: {role: host}}
spec: {node: node1, interfaceName: eth0, expectedIPs: [192.168.1.10]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: fwd-in}
spec:
  selector: role == 'host'
  applyOnForward: true
  types: [Ingress]
  ingress: [{action: Deny, protocol: TCP, destination: {ports: [80]}}]
)");
  // Outside → a node1 pod: eth0's applyOnForward ingress policy may apply; said, not guessed.
  Verdict in = w.Probe(World::TcpPacket(kOutside, kWeb, 80));
  REQUIRE(in.notes.size() == 1);
  CHECK(in.notes[0].find("host endpoint node1-eth0 of node node1") != std::string::npos);
  CHECK(in.Describe().find("not evaluated: host endpoint node1-eth0") != std::string::npos);
  // The pod → outside: no egress forward policy, nothing to say; pod ↔ pod never crosses it.
  CHECK(w.Probe(World::TcpPacket(kWeb, kOutside, 80)).notes.empty());
  CHECK(w.Probe(World::TcpPacket(kClient, kWeb, 80)).notes.empty());
  // The host itself (its expectedIP) is host endpoint policy proper, evaluated: no note.
  CHECK(w.Probe(World::TcpPacket(kOutside, "192.168.1.10", 22)).notes.empty());
}

// Host endpoints (upstream's HostEndpoint reference and "failsafe rules"): the host through a
// named interface; failsafe ports open whatever the policy; no policy and no profile: deny;
// traffic between the host and its own workloads is not host endpoint policy.
TEST_CASE("host endpoints: failsafe ports, default deny, policy, own workloads exempt", "[unit][policy][explain][hostendpoint]") {
  World w = Cluster();
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth0, labels: {role: host}}
spec:
  node: node1
  interfaceName: eth0
  expectedIPs: [192.168.1.10]
  ports: [{name: admin, protocol: TCP, port: 9443}]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-any}
spec: {node: node1, interfaceName: "*", expectedIPs: [192.168.1.11]}
)");
  const Endpoint& hep = w.model.endpoints().at("hep:node1-eth0");
  CHECK(hep.host);
  CHECK(hep.labels == Labels{{"role", "host"}});  // no implicit namespace label
  CHECK(w.model.HostEndpointByIp(*net::ParseIp("192.168.1.10")) == &hep);
  CHECK(w.model.EndpointByIp(*net::ParseIp("192.168.1.10")) == nullptr);  // not a workload

  // No policy: deny, except the failsafe ports (upstream's defaults).
  CHECK_FALSE(w.Tcp(kOutside, "192.168.1.10", 80));
  Verdict ssh = w.Probe(World::TcpPacket(kOutside, "192.168.1.10", 22));
  CHECK(ssh.allowed);
  REQUIRE(ssh.ingress);
  CHECK(ssh.ingress->reason == Reason::kFailsafe);
  CHECK(ssh.ingress->failsafe == "tcp:22");
  CHECK(w.Udp(kOutside, "192.168.1.10", 68));
  CHECK_FALSE(w.Udp(kOutside, "192.168.1.10", 53));  // 53 is outbound only
  CHECK(w.Udp("192.168.1.10", kOutside, 53));
  CHECK(w.Tcp("192.168.1.10", kOutside, 6443));
  CHECK_FALSE(w.Tcp("192.168.1.10", kOutside, 22));  // 22 is inbound only
  // "*" (all interfaces): the same default deny and failsafe ports.
  CHECK_FALSE(w.Tcp(kOutside, "192.168.1.11", 80));
  CHECK(w.Tcp(kOutside, "192.168.1.11", 22));
  // The host and a workload of the same node: not host endpoint policy (the pods are node1's).
  CHECK(w.Tcp(kWeb, "192.168.1.10", 80));
  CHECK(w.Tcp("192.168.1.10", kWeb, 80));

  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: host}
spec:
  selector: role == 'host'
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [admin]}
  - action: Allow
    protocol: TCP
    source: {selector: app == 'web'}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: to-host}
spec:
  selector: app == 'client'
  types: [Egress]
  egress:
  - action: Allow
    destination: {selector: role == 'host'}
)");
  CHECK(w.Tcp(kOutside, "192.168.1.10", 9443));  // named port on the host endpoint
  CHECK_FALSE(w.Tcp(kOutside, "192.168.1.10", 80));
  Verdict end = w.Probe(World::TcpPacket(kOutside, "192.168.1.10", 80));
  REQUIRE(end.ingress);
  CHECK(end.ingress->reason == Reason::kEndOfTier);
  CHECK(end.ingress->endpoint == "hep:node1-eth0");
  // A workload selects the host as a peer by its labels (expectedIPs are its addresses).
  CHECK(w.Tcp(kClient, "192.168.1.10", 80));
  CHECK_FALSE(w.Tcp(kClient, kOutside, 80));
  // Outside ↔ a pod of node1 may be forwarded through eth0; no forward policy selects it yet.
  CHECK(w.Probe(World::TcpPacket(kOutside, kWeb, 80)).notes.empty());

  SECTION("failsafe ports configured") {
    absl::StatusOr<std::vector<FailsafePort>> in = ParseFailsafePorts("tcp:2222, udp:500,179");
    CHECK_FALSE(in.ok());  // spaces are not upstream's syntax
    in = ParseFailsafePorts("tcp:2222,udp:500,179");
    REQUIRE(in.ok());
    CHECK(*in == std::vector<FailsafePort>{{kProtoTcp, 2222}, {kProtoUdp, 500}, {kProtoTcp, 179}});
    CHECK(FormatFailsafePorts(*in) == "tcp:2222,udp:500,tcp:179");
    CHECK(ParseFailsafePorts("none")->empty());
    CHECK(ParseFailsafePorts("[]")->empty());
    CHECK_FALSE(ParseFailsafePorts("tcp:10.0.0.0/8:22").ok());  // CIDR form: said clearly
    CHECK(ParseFailsafePorts("tcp:10.0.0.0/8:22").status().message().find("not supported") != std::string::npos);
    CHECK_FALSE(ParseFailsafePorts("icmp:8").ok());
    CHECK_FALSE(ParseFailsafePorts("tcp:0").ok());
    CHECK_FALSE(ParseFailsafePorts("tcp:65536").ok());
    w.model.SetFailsafe(Failsafe{*in, {}});
    CHECK_FALSE(w.Tcp(kOutside, "192.168.1.10", 22));
    CHECK(w.Tcp(kOutside, "192.168.1.10", 2222));
    CHECK_FALSE(w.Udp("192.168.1.10", kOutside, 53));
  }
}

}  // namespace
}  // namespace calico::felixd::policy::testing
