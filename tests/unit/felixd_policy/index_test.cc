// The selection index: policies per endpoint, selector members, named ports, and the delta a
// single change produces.

#include "tests/unit/felixd_policy/world.h"

namespace calico::felixd::policy::testing {
namespace {

net::Prefix P(const std::string& text) { return *net::ParsePrefix(text); }

// prod (team=a): web 10.0.1.1 (app=web, http=8080/TCP), db 10.0.1.2 (app=db)
// dev  (team=b): client 10.0.2.1 (app=client), web 10.0.2.2 (app=web)
World IndexCluster() {
  World w;
  w.Namespace("prod", {{"team", "a"}});
  w.Namespace("dev", {{"team", "b"}});
  w.Pod("prod", "web", "10.0.1.1", {{"app", "web"}}, "", {{"http", "TCP", 8080}});
  w.Pod("prod", "db", "10.0.1.2", {{"app", "db"}});
  w.Pod("dev", "client", "10.0.2.1", {{"app", "client"}});
  w.Pod("dev", "web", "10.0.2.2", {{"app", "web"}});
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: sec}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: sec.all}
spec:
  tier: sec
  selector: all()
  types: [Ingress, Egress]
  ingress: [{action: Pass}]
  egress: [{action: Pass}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: db}}}]
    ports: [{port: http}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  selector: app == 'db'
  types: [Egress]
  egress:
  - action: Allow
    destination: {selector: app == 'web', namespaceSelector: all()}
  - action: Allow
    destination: {selector: role == 'ext', namespaceSelector: global(), notSelector: app == 'client'}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: ext, labels: {role: ext}}
spec: {nets: [198.51.100.0/24]}
)");
  return w;
}

const std::string kProdWeb = "prod/node1-k8s-web-eth0";
const std::string kProdDb = "prod/node1-k8s-db-eth0";
const std::string kDevClient = "dev/node1-k8s-client-eth0";
const std::string kDevWeb = "dev/node1-k8s-web-eth0";

std::string RuleKey(const Model& m, const std::string& policy, Direction d, size_t rule, bool source) {
  const Rule& r = m.policies().at(policy).Rules(d).at(rule);
  const RuleSide& side = source ? r.source : r.destination;
  REQUIRE(side.selector);
  return side.selector->Key();
}

TEST_CASE("index: which endpoints each policy applies to, per direction", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionIndex idx = SelectionIndex::Build(w.model);
  CHECK(idx.Selected("prod/knp.default.web-in", Direction::kIngress) == std::set<std::string>{kProdWeb});
  CHECK(idx.Selected("prod/knp.default.web-in", Direction::kEgress).empty());
  CHECK(idx.Selected("prod/db", Direction::kEgress) == std::set<std::string>{kProdDb});
  CHECK(idx.Selected("prod/db", Direction::kIngress).empty());
  CHECK(idx.Selected("sec.all", Direction::kIngress) ==
        std::set<std::string>{kProdWeb, kProdDb, kDevClient, kDevWeb});
  CHECK(idx.Selected("unknown", Direction::kIngress).empty());
}

TEST_CASE("index: per endpoint tiers of ordered policies, shared when equal", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionIndex idx = SelectionIndex::Build(w.model);
  const EndpointPolicies& web = idx.PoliciesOf(kProdWeb);
  REQUIRE(web.ingress.size() == 2);
  CHECK(web.ingress[0] == TierPolicies{"sec", TierDefault::kDeny, {"sec.all"}});
  CHECK(web.ingress[1] == TierPolicies{"default", TierDefault::kDeny, {"prod/knp.default.web-in"}});
  REQUIRE(web.egress.size() == 1);
  CHECK(web.egress[0].tier == "sec");
  CHECK(web.profiles == std::vector<std::string>{"kns.prod"});
  const EndpointPolicies& db = idx.PoliciesOf(kProdDb);
  REQUIRE(db.egress.size() == 2);
  CHECK(db.egress[1].policies == std::vector<std::string>{"prod/db"});
  // dev/client and dev/web have the same lists: one chain can serve both.
  CHECK(idx.PoliciesOf(kDevClient).ingress == idx.PoliciesOf(kDevWeb).ingress);
  CHECK(idx.PoliciesOf(kDevClient).egress == idx.PoliciesOf(kDevWeb).egress);
  CHECK_FALSE(idx.PoliciesOf(kProdWeb).ingress == idx.PoliciesOf(kDevWeb).ingress);
}

TEST_CASE("index: selector members are endpoint addresses and network set nets", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionIndex idx = SelectionIndex::Build(w.model);
  std::string from_db = RuleKey(w.model, "prod/knp.default.web-in", Direction::kIngress, 0, true);
  CHECK(idx.Members(from_db) == IpSet{P("10.0.1.2/32")});
  std::string to_web = RuleKey(w.model, "prod/db", Direction::kEgress, 0, false);
  CHECK(idx.Members(to_web) == IpSet{P("10.0.1.1/32"), P("10.0.2.2/32")});
  std::string to_ext = RuleKey(w.model, "prod/db", Direction::kEgress, 1, false);
  CHECK(idx.Members(to_ext) == IpSet{P("198.51.100.0/24")});
  const Rule& r = w.model.policies().at("prod/db").egress_rules[1];
  CHECK(idx.Members(NotSelectorKey(*r.destination.not_selector)) == IpSet{P("10.0.2.1/32")});
  CHECK(idx.policy_sets().at("prod/db").count(to_web));
  CHECK(idx.NamedPortMembers("http", kProtoTcp) == std::set<NamedPortMember>{{P("10.0.1.1/32"), 8080}});
  CHECK(idx.NamedPortMembers("http", kProtoUdp).empty());
}

TEST_CASE("index: members agree with the matcher Explain uses", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionIndex idx = SelectionIndex::Build(w.model);
  // For every set, every endpoint and network set is a member exactly when it matches.
  for (const auto& [key, members] : idx.ip_sets()) {
    std::optional<EntitySelector> sel;
    for (const auto& [_, p] : w.model.policies()) {
      for (Direction d : {Direction::kIngress, Direction::kEgress}) {
        for (const Rule& r : p.Rules(d)) {
          for (const RuleSide* s : {&r.source, &r.destination}) {
            if (s->selector && s->selector->Key() == key) sel = s->selector;
            if (s->not_selector && NotSelectorKey(*s->not_selector) == key) {
              sel = EntitySelector();
              sel->selector = s->not_selector;
            }
          }
        }
      }
    }
    REQUIRE(sel);
    for (const auto& [_, e] : w.model.endpoints()) {
      INFO(key << " " << e.Id());
      CHECK(members.count(e.ips[0]) == (Matches(*sel, ViewOf(w.model, e)) ? 1u : 0u));
    }
  }
}

TEST_CASE("index diff: nothing changed is an empty delta", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionDelta d = Diff(SelectionIndex::Build(w.model), SelectionIndex::Build(w.model));
  CHECK(d.empty());
}

TEST_CASE("index diff: a new pod matching an existing selector", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionIndex before = SelectionIndex::Build(w.model);
  w.Pod("prod", "db2", "10.0.1.5", {{"app", "db"}});
  SelectionIndex after = SelectionIndex::Build(w.model);
  SelectionDelta d = Diff(before, after);
  CHECK(d.endpoints_changed == std::vector<std::string>{"prod/node1-k8s-db2-eth0"});
  std::string from_db = RuleKey(w.model, "prod/knp.default.web-in", Direction::kIngress, 0, true);
  REQUIRE(d.sets_changed.size() == 1);
  REQUIRE(d.sets_changed.count(from_db));
  CHECK(d.sets_changed[from_db].added == std::vector<net::Prefix>{P("10.0.1.5/32")});
  CHECK(d.sets_changed[from_db].removed.empty());
  CHECK(d.policies_reselected == std::vector<std::string>{"prod/db", "sec.all"});
  CHECK(d.sets_added.empty());
  CHECK(d.named_ports_changed.empty());
  // Explain agrees: the new pod may reach web's named port.
  CHECK(w.Tcp("10.0.1.5", "10.0.1.1", 8080));
}

TEST_CASE("index diff: a label change moves an address between sets", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionIndex before = SelectionIndex::Build(w.model);
  w.Pod("dev", "client", "10.0.2.1", {{"app", "web"}});
  SelectionDelta d = Diff(before, SelectionIndex::Build(w.model));
  std::string to_web = RuleKey(w.model, "prod/db", Direction::kEgress, 0, false);
  const Rule& r = w.model.policies().at("prod/db").egress_rules[1];
  std::string not_client = NotSelectorKey(*r.destination.not_selector);
  REQUIRE(d.sets_changed.count(to_web));
  CHECK(d.sets_changed[to_web].added == std::vector<net::Prefix>{P("10.0.2.1/32")});
  REQUIRE(d.sets_changed.count(not_client));
  CHECK(d.sets_changed[not_client].removed == std::vector<net::Prefix>{P("10.0.2.1/32")});
  CHECK(d.endpoints_changed.empty());  // no policy selects by app in dev
  CHECK(d.policies_reselected.empty());
  // A namespace label change reaches namespace-selector sets.
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: from-team-b, namespace: prod}
spec:
  selector: app == 'web'
  ingress: [{action: Allow, source: {namespaceSelector: team == 'b'}}]
)");
  SelectionIndex with_policy = SelectionIndex::Build(w.model);
  w.Namespace("dev", {{"team", "c"}});
  d = Diff(with_policy, SelectionIndex::Build(w.model));
  std::string team_b = RuleKey(w.model, "prod/from-team-b", Direction::kIngress, 0, true);
  REQUIRE(d.sets_changed.count(team_b));
  CHECK(d.sets_changed[team_b].removed == std::vector<net::Prefix>{P("10.0.2.1/32"), P("10.0.2.2/32")});
}

TEST_CASE("index diff: a new policy adds its sets and changes only the endpoints it selects", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionIndex before = SelectionIndex::Build(w.model);
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: client-in, namespace: dev}
spec:
  selector: app == 'client'
  ingress: [{action: Allow, source: {selector: app == 'web'}}]
)");
  SelectionDelta d = Diff(before, SelectionIndex::Build(w.model));
  CHECK(d.endpoints_changed == std::vector<std::string>{kDevClient});
  CHECK(d.policies_reselected == std::vector<std::string>{"dev/client-in"});
  std::string key = RuleKey(w.model, "dev/client-in", Direction::kIngress, 0, true);
  CHECK(d.sets_added == std::vector<std::string>{key});
  CHECK(d.sets_changed.empty());
  // Deleting it removes the set again.
  SelectionIndex with = SelectionIndex::Build(w.model);
  w.Delete("projectcalico.org/v3", "NetworkPolicy", "dev", "client-in");
  d = Diff(with, SelectionIndex::Build(w.model));
  CHECK(d.sets_removed == std::vector<std::string>{key});
  CHECK(d.endpoints_changed == std::vector<std::string>{kDevClient});
}

void RequireSame(const SelectionIndex& got, const SelectionIndex& want, const Model& m) {
  CHECK(got.endpoints() == want.endpoints());
  CHECK(got.ip_sets() == want.ip_sets());
  CHECK(got.named_port_sets() == want.named_port_sets());
  CHECK(got.policy_sets() == want.policy_sets());
  for (const auto& [id, _] : m.policies()) {
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      INFO(id);
      CHECK(got.Selected(id, d) == want.Selected(id, d));
    }
  }
}

void RequireSameDelta(const SelectionDelta& got, const SelectionDelta& want) {
  CHECK(got.endpoints_changed == want.endpoints_changed);
  CHECK(got.policies_reselected == want.policies_reselected);
  CHECK(got.sets_added == want.sets_added);
  CHECK(got.sets_removed == want.sets_removed);
  REQUIRE(got.sets_changed.size() == want.sets_changed.size());
  for (const auto& [key, delta] : want.sets_changed) {
    INFO(key);
    REQUIRE(got.sets_changed.count(key));
    CHECK(got.sets_changed.at(key).added == delta.added);
    CHECK(got.sets_changed.at(key).removed == delta.removed);
  }
  CHECK(got.named_ports_changed == want.named_ports_changed);
}

TEST_CASE("index update: one endpoint or network set at a time equals a full rebuild", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionIndex idx = SelectionIndex::Build(w.model);
  auto step = [&](const std::string& what, auto change, bool is_set, const std::string& id) {
    INFO(what);
    SelectionIndex before = SelectionIndex::Build(w.model);
    change();
    SelectionIndex want = SelectionIndex::Build(w.model);
    SelectionDelta got = is_set ? idx.UpdateNetworkSet(w.model, id) : idx.UpdateEndpoint(w.model, id);
    RequireSame(idx, want, w.model);
    RequireSameDelta(got, Diff(before, want));
    return got;
  };
  SelectionDelta d = step("new pod matching web-in's selector", [&] { w.Pod("prod", "db2", "10.0.1.5", {{"app", "db"}}); },
                          false, "prod/node1-k8s-db2-eth0");
  CHECK_FALSE(d.sets_changed.empty());
  step("pod relabelled", [&] { w.Pod("dev", "client", "10.0.2.1", {{"app", "web"}}); }, false, kDevClient);
  step("selected pod relabelled out", [&] { w.Pod("prod", "web", "10.0.1.1", {{"app", "other"}}, "", {{"http", "TCP", 8080}}); },
       false, kProdWeb);
  d = step("named port renumbered", [&] { w.Pod("prod", "web", "10.0.1.1", {{"app", "web"}}, "", {{"http", "TCP", 8081}}); },
           false, kProdWeb);
  CHECK(d.named_ports_changed == std::vector<std::string>{"http/6"});
  d = step("unchanged pod re-applied", [&] { w.Pod("prod", "web", "10.0.1.1", {{"app", "web"}}, "", {{"http", "TCP", 8081}}); },
           false, kProdWeb);
  CHECK(d.empty());
  step("pod deleted", [&] { w.RemovePod("prod", "db"); }, false, kProdDb);
  step("network set added", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: ext2, labels: {role: ext}}
spec: {nets: [198.51.100.0/24, 203.0.113.0/24]}
)");
  }, true, "ext2");
  step("overlapping network set deleted keeps the other's member", [&] {
    w.Delete("projectcalico.org/v3", "GlobalNetworkSet", "", "ext");
  }, true, "ext");
  step("network set relabelled", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: ext2, labels: {role: other}}
spec: {nets: [198.51.100.0/24]}
)");
  }, true, "ext2");
}

TEST_CASE("index update: one policy at a time equals a full rebuild", "[unit][policy][index]") {
  World w = IndexCluster();
  SelectionIndex idx = SelectionIndex::Build(w.model);
  auto step = [&](const std::string& what, auto change, const std::string& id) {
    INFO(what);
    SelectionIndex before = SelectionIndex::Build(w.model);
    change();
    SelectionIndex want = SelectionIndex::Build(w.model);
    SelectionDelta got = idx.UpdatePolicy(w.model, id);
    RequireSame(idx, want, w.model);
    RequireSameDelta(got, Diff(before, want));
    return got;
  };
  SelectionDelta d = step("new policy with a new selector set", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: client-in, namespace: dev}
spec:
  selector: app == 'client'
  order: 10
  ingress: [{action: Allow, source: {selector: app == 'web'}}]
)");
  }, "dev/client-in");
  CHECK(d.sets_added.size() == 1);
  CHECK(d.endpoints_changed == std::vector<std::string>{kDevClient});
  step("same policy, wider selector and an egress named port", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: client-in, namespace: dev}
spec:
  selector: app in {'client', 'web'}
  order: 10
  types: [Ingress, Egress]
  ingress: [{action: Allow, source: {selector: app == 'db', namespaceSelector: all()}}]
  egress: [{action: Allow, protocol: TCP, destination: {ports: [http, metrics]}}]
)");
  }, "dev/client-in");
  step("a second policy in the same tier, ordered before", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: early, namespace: dev}
spec:
  selector: all()
  order: 5
  ingress: [{action: Deny, source: {nets: [10.9.0.0/16]}}]
)");
  }, "dev/early");
  step("reordered after the other", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: early, namespace: dev}
spec:
  selector: all()
  order: 50
  ingress: [{action: Deny, source: {nets: [10.9.0.0/16]}}]
)");
  }, "dev/early");
  step("a policy in another tier", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: sec.early, namespace: dev}
spec:
  tier: sec
  selector: all()
  order: 50
  ingress: [{action: Deny, source: {nets: [10.9.0.0/16]}}]
)");
  }, "dev/sec.early");
  step("a policy naming a tier that is not stored", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: nowhere.loose}
spec:
  tier: nowhere
  selector: app == 'web'
  ingress: [{action: Allow, source: {selector: app == 'client'}}]
)");
  }, "nowhere.loose");
  step("its deletion drops the unstored tier", [&] {
    w.Delete("projectcalico.org/v3", "GlobalNetworkPolicy", "", "nowhere.loose");
  }, "nowhere.loose");
  d = step("a policy whose set another policy still uses is deleted", [&] {
    w.Delete("projectcalico.org/v3", "NetworkPolicy", "dev", "client-in");
  }, "dev/client-in");
  CHECK(std::find(d.named_ports_changed.begin(), d.named_ports_changed.end(), "metrics/6") !=
        d.named_ports_changed.end());
  step("a Kubernetes policy changed", [&] {
    w.Apply(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: b}}}]
)");
  }, "prod/knp.default.web-in");
  // A namespaced selector walks only its namespace's entities: network sets of the namespace
  // count, those of a namespace whose name extends it ("dev2") and global ones do not.
  w.Namespace("dev2", {{"team", "b"}});
  w.Pod("dev2", "web", "10.0.3.2", {{"app", "web"}, {"role", "ext"}});
  w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: dev, labels: {role: ext}}
spec: {nets: [192.0.2.0/24]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: dev2, labels: {role: ext}}
spec: {nets: [203.0.113.0/24]}
)");
  idx = SelectionIndex::Build(w.model);
  d = step("a namespaced rule selector over network sets of its namespace", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: to-partners, namespace: dev}
spec:
  selector: role == 'ext' || app == 'web'
  types: [Egress]
  egress: [{action: Allow, destination: {selector: role == 'ext'}}]
)");
  }, "dev/to-partners");
  CHECK(d.endpoints_changed == std::vector<std::string>{"dev/node1-k8s-web-eth0"});
  REQUIRE(d.sets_added.size() == 1);
  CHECK(idx.ip_sets().at(d.sets_added[0]) == IpSet{P("192.0.2.0/24")});
  step("a policy selecting nothing", [&] {
    w.Apply(R"(
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: none}
spec:
  selector: app == 'nothing'
  ingress: [{action: Allow}]
)");
  }, "none");
  // Endpoint updates after policy updates still match rebuilds.
  SelectionIndex before = SelectionIndex::Build(w.model);
  w.Pod("dev", "client", "10.0.2.1", {{"app", "web"}});
  SelectionIndex want = SelectionIndex::Build(w.model);
  RequireSameDelta(idx.UpdateEndpoint(w.model, kDevClient), Diff(before, want));
  RequireSame(idx, want, w.model);
}

TEST_CASE("model is path independent: the same resources in another order", "[unit][policy][index]") {
  World a = IndexCluster();
  World b;
  // Policies before endpoints and namespaces, reversed.
  for (const auto& [_, p] : a.model.policies()) b.model.Put(p);
  for (const auto& [_, s] : a.model.network_sets()) b.model.Put(s);
  for (const auto& [_, t] : a.model.stored_tiers()) b.model.Put(t);
  std::vector<Endpoint> eps;
  for (const auto& [_, e] : a.model.endpoints()) eps.push_back(e);
  for (auto it = eps.rbegin(); it != eps.rend(); ++it) b.model.Put(*it);
  for (const auto& [_, p] : a.model.profiles()) b.model.Put(p);
  SelectionDelta d = Diff(SelectionIndex::Build(a.model), SelectionIndex::Build(b.model));
  CHECK(d.empty());
}

}  // namespace
}  // namespace calico::felixd::policy::testing
