#include "common/resources/resource.h"

#include <catch2/catch.hpp>

#include "common/base/status_macros.h"

namespace calico::resources {
namespace {

// Parses one document that must validate.
Resource One(std::string_view yaml, std::string_view ns = "default") {
  absl::StatusOr<std::vector<ParsedDocument>> docs = ParseDocuments(yaml, ns);
  REQUIRE(docs.ok());
  REQUIRE(docs->size() == 1);
  INFO((*docs)[0].resource.status().ToString());
  REQUIRE((*docs)[0].resource.ok());
  return *(*docs)[0].resource;
}

// The error of one document that must not validate.
std::string ErrorOf(std::string_view yaml) {
  absl::StatusOr<std::vector<ParsedDocument>> docs = ParseDocuments(yaml, "default");
  if (!docs.ok()) return ToStd(docs.status().message());
  REQUIRE(docs->size() == 1);
  REQUIRE_FALSE((*docs)[0].resource.ok());
  return ToStd((*docs)[0].resource.status().message());
}

TEST_CASE("FindKind resolves names, aliases and apiVersions", "[unit][resources]") {
  REQUIRE(FindKind("ippool") != nullptr);
  CHECK(FindKind("IPPool")->kind == "IPPool");
  CHECK(FindKind("ipp")->kind == "IPPool");
  CHECK(FindKind("Pools")->kind == "IPPool");
  CHECK(FindKind("wep")->kind == "WorkloadEndpoint");
  CHECK(FindKind("bgpconfig")->kind == "BGPConfiguration");
  CHECK(FindKind("bps")->kind == "BGPPeer");
  CHECK(FindKind("gnp")->kind == "GlobalNetworkPolicy");
  CHECK(FindKind("ipamconfig")->kind == "IPAMConfiguration");
  for (std::string_view alias : {"networkpolicy", "NetworkPolicy", "netpol", "np", "policies"}) {
    REQUIRE(FindKind(alias) != nullptr);
    CHECK(FindKind(alias)->api_version == "projectcalico.org/v3");
  }
  CHECK(FindKind("knp")->api_version == "networking.k8s.io/v1");
  CHECK(FindKind("networking.k8s.io/v1", "NetworkPolicy") == FindKind("k8snetworkpolicy"));
  CHECK(FindKind("projectcalico.org/v3", "NetworkPolicy") == FindKind("np"));
  CHECK(FindKind("projectcalico.org/v3", "ippool") == nullptr);  // manifests spell kinds exactly
  CHECK(FindKind("nope") == nullptr);
  CHECK(AllKinds().size() == 18);
}

TEST_CASE("IPPool defaults, canonical form and output", "[unit][resources]") {
  Resource r = One("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p1}\nspec:\n  cidr: 10.1.0.0/16\n");
  CHECK(r.Describe() == "IPPool \"p1\"");
  CHECK(ToYaml({r}) ==
        "apiVersion: projectcalico.org/v3\n"
        "kind: IPPool\n"
        "metadata:\n"
        "  name: p1\n"
        "spec:\n"
        "  cidr: 10.1.0.0/16\n"
        "  vxlanMode: Never\n"
        "  ipipMode: Never\n"
        "  blockSize: 26\n"
        "  nodeSelector: all()\n"
        "  allowedUses:\n"
        "  - Workload\n"
        "  - Tunnel\n"
        "  assignmentMode: Automatic\n");
  Resource v6 = One("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p6}\nspec: {cidr: 'FD00:0::/48'}\n");
  CHECK(v6.object["spec"]["cidr"] == "fd00::/48");
  CHECK(v6.object["spec"]["blockSize"] == 122);
  // Parse(ToYaml(x)) == x, and the text is stable.
  Resource again = One(ToYaml({v6}));
  CHECK(again == v6);
  CHECK(ToYaml({again}) == ToYaml({v6}));
}

TEST_CASE("IPPool rules", "[unit][resources]") {
  auto pool = [](const std::string& spec) {
    return ErrorOf("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspec:\n" + spec);
  };
  CHECK(pool("  cidr: 10.0.0.0/16\n  blockSize: 33\n") == "IPPool \"p1\": spec.blockSize: 33 is outside 20-32 for IPv4");
  CHECK(pool("  cidr: fd00::/48\n  blockSize: 64\n") == "IPPool \"p1\": spec.blockSize: 64 is outside 116-128 for IPv6");
  CHECK(pool("  cidr: 10.0.0.1/16\n") ==
        "IPPool \"p1\": spec.cidr: \"10.0.0.1/16\" is not strictly masked (did you mean 10.0.0.0/16?)");
  CHECK(pool("  cidr: 10.0.0.0/33\n") == "IPPool \"p1\": spec.cidr: \"10.0.0.0/33\" is not a valid CIDR");
  CHECK(pool("  blockSize: 26\n") == "IPPool \"p1\": spec.cidr: required");
  CHECK(pool("  cidr: 169.254.0.0/24\n") ==
        "IPPool \"p1\": spec.cidr: \"169.254.0.0/24\" overlaps the IPv4 link-local range 169.254.0.0/16");
  CHECK(pool("  cidr: 10.0.0.0/28\n") == "IPPool \"p1\": spec.cidr: \"10.0.0.0/28\" is smaller than blockSize 26");
  CHECK(pool("  cidr: 10.0.0.0/16\n  ipipMode: Always\n  vxlanMode: CrossSubnet\n") ==
        "IPPool \"p1\": spec.ipipMode: \"Always\" cannot be enabled together with vxlanMode \"CrossSubnet\"");
  CHECK(pool("  cidr: fd00::/48\n  ipipMode: Always\n") ==
        "IPPool \"p1\": spec.ipipMode: \"Always\" is not supported on an IPv6 pool");
  CHECK(pool("  cidr: 10.0.0.0/16\n  blokSize: 26\n") == "IPPool \"p1\": spec.blokSize: unknown field");
  CHECK(pool("  cidr: 10.0.0.0/16\n  natOutgoing: 'yes'\n") ==
        "IPPool \"p1\": spec.natOutgoing: \"yes\" is not a boolean");
  CHECK(pool("  cidr: 10.0.0.0/16\n  vxlanMode: always\n") ==
        "IPPool \"p1\": spec.vxlanMode: \"always\" is not one of Never|Always|CrossSubnet");
  CHECK(pool("  cidr: 10.0.0.0/16\n  nodeSelector: a ==\n") ==
        "IPPool \"p1\": spec.nodeSelector: expected a quoted string but found the end of selector at position 4 "
        "in selector \"a ==\"");
}

TEST_CASE("ValidateAgainstExisting rejects overlapping pools", "[unit][resources]") {
  auto pool = [](const std::string& name, const std::string& cidr) {
    return One("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: " + name + "}\nspec: {cidr: " + cidr + "}\n");
  };
  std::vector<Resource> existing = {pool("a", "10.0.0.0/16"), pool("b", "fd00::/48")};
  CHECK(ValidateAgainstExisting(pool("c", "10.1.0.0/16"), existing).ok());
  CHECK(ValidateAgainstExisting(pool("a", "10.0.0.0/16"), existing).ok());  // itself, on update
  absl::Status s = ValidateAgainstExisting(pool("c", "10.0.128.0/17"), existing);
  CHECK(ToStd(s.message()) == "IPPool \"c\": spec.cidr: \"10.0.128.0/17\" overlaps IPPool \"a\" (10.0.0.0/16)");
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("Keys and stored form", "[unit][resources]") {
  Resource pool = One("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p1, resourceVersion: '7'}\n"
                      "spec: {cidr: 10.0.0.0/16}\n");
  CHECK(Key(pool) == "/calico/resources/v3/projectcalico.org/ippools/p1");
  CHECK(KeyPrefix(*pool.kind) == "/calico/resources/v3/projectcalico.org/ippools/");
  std::string stored = ToStored(pool);
  CHECK(stored.find("resourceVersion") == std::string::npos);
  absl::StatusOr<Resource> back = FromStored(stored, 42);
  REQUIRE(back.ok());
  CHECK(back->object["metadata"]["resourceVersion"] == "42");
  CHECK(back->object["spec"] == pool.object["spec"]);

  Resource np = One("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: allow, namespace: ns1}\n");
  CHECK(Key(np) == "/calico/resources/v3/projectcalico.org/networkpolicies/ns1/allow");
  CHECK(KeyPrefix(*np.kind, "ns1") == "/calico/resources/v3/projectcalico.org/networkpolicies/ns1/");
  CHECK(KeyPrefix(*np.kind) == "/calico/resources/v3/projectcalico.org/networkpolicies/");
  const KindInfo* knp = FindKind("knp");
  CHECK(Key(*knp, "ns1", "deny") == "/calico/resources/v3/networking.k8s.io/networkpolicies/ns1/deny");
  CHECK(FromStored("{not json", 1).status().code() == absl::StatusCode::kDataLoss);
}

TEST_CASE("Namespaces default and are described", "[unit][resources]") {
  Resource np = One("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: allow}\n", "ns9");
  CHECK(np.Namespace() == "ns9");
  CHECK(np.Describe() == "NetworkPolicy \"ns9/allow\"");
  CHECK(np.object["spec"]["tier"] == "default");
  CHECK(np.object["spec"]["types"] == Json::array({"Ingress"}));
  CHECK(ErrorOf("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p, namespace: x}\nspec: {cidr: 10.0.0.0/8}\n") ==
        "IPPool \"p\": metadata.namespace: \"x\" is not allowed (IPPool is cluster-scoped)");
}

TEST_CASE("Policy rules", "[unit][resources]") {
  auto gnp = [](const std::string& name, const std::string& spec) {
    return ErrorOf("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: " + name +
                   "\nspec:\n" + spec);
  };
  CHECK(gnp("a", "  ingress:\n  - action: Allow\n    destination:\n      ports: [80]\n") ==
        "GlobalNetworkPolicy \"a\": spec.ingress[0].destination.ports: [80] needs protocol TCP, UDP or SCTP");
  CHECK(gnp("a", "  ingress:\n  - action: Allow\n    protocol: ICMP\n    destination:\n      notPorts: ['1:2']\n") ==
        "GlobalNetworkPolicy \"a\": spec.ingress[0].destination.notPorts: [\"1:2\"] needs protocol TCP, UDP or SCTP "
        "(protocol is \"ICMP\")");
  CHECK(gnp("a", "  egress:\n  - action: Accept\n") ==
        "GlobalNetworkPolicy \"a\": spec.egress[0].action: \"Accept\" is not one of Allow|Deny|Log|Pass");
  CHECK(gnp("a", "  egress:\n  - protocol: TCP\n") == "GlobalNetworkPolicy \"a\": spec.egress[0].action: required");
  CHECK(gnp("a", "  ingress:\n  - action: Allow\n    protocol: ICMP\n    icmp: {type: 255}\n") ==
        "GlobalNetworkPolicy \"a\": spec.ingress[0].icmp.type: 255 is outside 0-254");
  CHECK(gnp("a", "  ingress:\n  - action: Allow\n    protocol: ICMP\n    icmp: {code: 1}\n") ==
        "GlobalNetworkPolicy \"a\": spec.ingress[0].icmp.code: 1 needs a type");
  CHECK(gnp("a", "  ingress:\n  - action: Allow\n    icmp: {type: 8}\n") ==
        "GlobalNetworkPolicy \"a\": spec.ingress[0].icmp: {\"type\":8} needs protocol ICMP or ICMPv6");
  CHECK(gnp("a", "  tier: security\n") ==
        "GlobalNetworkPolicy \"a\": metadata.name: \"a\" must start with \"security.\" for tier \"security\"");
  CHECK(gnp("x.a", "  selector: all()\n") ==
        "GlobalNetworkPolicy \"x.a\": metadata.name: \"x.a\" has tier prefix \"x\" but spec.tier is \"default\"");
  CHECK(gnp("a", "  selector: global()\n") ==
        "GlobalNetworkPolicy \"a\": spec.selector: \"global()\" uses global(), which is only valid in a rule's "
        "namespaceSelector");
  CHECK(gnp("a", "  ingress:\n  - action: Allow\n    protocol: TCP\n    destination:\n      ports: [0]\n") ==
        "GlobalNetworkPolicy \"a\": spec.ingress[0].destination.ports[0]: 0 is outside 1-65535");
  CHECK(gnp("A", "  selector: all()\n") ==
        "GlobalNetworkPolicy \"A\": metadata.name: \"A\" is not a valid name (lower case alphanumerics and '-', with "
        "at most one '.')");

  Resource both = One("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: security.p}\n"
                      "spec:\n  tier: security\n  order: 100.0\n  egress:\n  - action: Allow\n    protocol: TCP\n"
                      "    destination:\n      ports: ['443', '8000:8080', http]\n");
  CHECK(both.object["spec"]["order"] == 100);
  CHECK(both.object["spec"]["types"] == Json::array({"Egress"}));
  CHECK(both.object["spec"]["egress"][0]["destination"]["ports"] == Json::array({443, "8000:8080", "http"}));
}

TEST_CASE("BGP rules", "[unit][resources]") {
  CHECK(ErrorOf("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\n"
                "spec: {peerIP: 10.0.0.1, peerSelector: all(), asNumber: 64512}\n") ==
        "BGPPeer \"p\": spec.peerIP: \"10.0.0.1\" must be empty when peerSelector is set");
  CHECK(ErrorOf("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\n"
                "spec: {node: n1, nodeSelector: all()}\n") ==
        "BGPPeer \"p\": spec.node: \"n1\" must be empty when nodeSelector is set");
  CHECK(ErrorOf("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\n"
                "spec: {peerIP: 10.0.0.1, asNumber: 4294967296}\n") ==
        "BGPPeer \"p\": spec.asNumber: 4294967296 is not a valid AS number");
  Resource peer = One("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\n"
                      "spec: {peerIP: '[fd00::1]:179', asNumber: '1.10'}\n");
  CHECK(peer.object["spec"]["asNumber"] == 65546);
  CHECK(ErrorOf("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.n1}\n"
                "spec: {asNumber: 64512}\n") ==
        "BGPConfiguration \"node.n1\": spec.asNumber: 64512 can only be set on the BGPConfiguration named \"default\"");
  CHECK(ErrorOf("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n"
                "spec: {logSeverityScreen: Verbose}\n") ==
        "BGPConfiguration \"default\": spec.logSeverityScreen: \"Verbose\" is not one of "
        "Trace|Debug|Info|Warning|Error|Fatal");
  CHECK(ErrorOf("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\n"
                "spec: {bgp: {ipv4Address: 'fd00::1/64'}}\n") ==
        "Node \"n1\": spec.bgp.ipv4Address: \"fd00::1/64\" is not an IPv4 CIDR");
  Resource node = One("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\n"
                      "spec: {bgp: {ipv4Address: 10.0.0.5/24, routeReflectorClusterID: 224.0.0.1}}\n");
  CHECK(node.object["spec"]["bgp"]["ipv4Address"] == "10.0.0.5/24");  // host bits are the point here
}

TEST_CASE("ClusterInformation and IPAMConfiguration", "[unit][resources]") {
  // Not in the golden files: calicoctl refuses to write ClusterInformation (the daemons own it).
  Resource info = One("apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata: {name: default}\n"
                      "spec: {clusterGUID: abc, calicoVersion: v3.28.0, datastoreReady: false}\n");
  CHECK(info.object["spec"]["datastoreReady"] == false);  // *bool upstream: false is printed
  Resource ipam = One("apiVersion: projectcalico.org/v3\nkind: IPAMConfiguration\nmetadata: {name: default}\n");
  CHECK(ipam.object["spec"] == Json::parse(R"({"strictAffinity": false, "autoAllocateBlocks": true})"));
}

TEST_CASE("YAML quoting round-trips values that look like other types", "[unit][resources]") {
  Resource r = One("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: s\n  labels:\n"
                   "    a: \"80\"\n    b: \"true\"\n    c: \"\"\n    d: \"y\"\n    e: \"1.5\"\n    f: plain\n"
                   "  annotations:\n    note: \"it's: here #1\"\n    multi: \"line1\\nline2\"\n    sel: '!has(x)'\n"
                   "    ts: \"2024-01-02T03:04:05Z\"\n    nul: \"null\"\n");
  std::string yaml = ToYaml({r});
  CHECK(yaml.find("    a: \"80\"\n") != std::string::npos);
  CHECK(yaml.find("    b: \"true\"\n") != std::string::npos);
  CHECK(yaml.find("    c: \"\"\n") != std::string::npos);
  CHECK(yaml.find("    f: plain\n") != std::string::npos);
  CHECK(yaml.find("    sel: '!has(x)'\n") != std::string::npos);
  Resource again = One(yaml);
  CHECK(again == r);
  CHECK(ToYaml({again}) == yaml);
  Resource from_json = One(ToJson({r}));
  CHECK(from_json == r);
}

TEST_CASE("Documents: lists, JSON, syntax errors", "[unit][resources]") {
  absl::StatusOr<std::vector<ParsedDocument>> docs = ParseDocuments(
      "# leading comment\n---\napiVersion: projectcalico.org/v3\nkind: List\nitems:\n"
      "- apiVersion: projectcalico.org/v3\n  kind: Tier\n  metadata: {name: t1}\n"
      "- apiVersion: projectcalico.org/v3\n  kind: Tier\n  metadata: {name: T2}\n"
      "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t3}\n");
  REQUIRE(docs.ok());
  REQUIRE(docs->size() == 3);
  CHECK((*docs)[0].resource.ok());
  CHECK((*docs)[1].index == 2);
  CHECK_FALSE((*docs)[1].resource.ok());
  CHECK((*docs)[2].resource.ok());

  absl::StatusOr<std::vector<ParsedDocument>> bad =
      ParseDocuments("apiVersion: projectcalico.org/v3\nkind: Tier\n---\nkind: Tier\nmetadata: [a, b\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(ToStd(bad.status().message()).starts_with("YAML syntax error in document 2, line "));

  absl::StatusOr<std::vector<ParsedDocument>> json =
      ParseDocuments("{\"apiVersion\": \"projectcalico.org/v3\", \"kind\": \"IPPoolList\", \"items\": "
                     "[{\"metadata\": {\"name\": \"p\"}, \"spec\": {\"cidr\": \"10.0.0.0/8\"}}]}");
  REQUIRE(json.ok());
  REQUIRE(json->size() == 1);
  CHECK((*json)[0].resource.ok());
  absl::StatusOr<std::vector<ParsedDocument>> bad_json = ParseDocuments("{\n\"kind\": }");
  REQUIRE_FALSE(bad_json.ok());
  CHECK(ToStd(bad_json.status().message()).starts_with("JSON syntax error at line 2"));

  CHECK(ErrorOf("apiVersion: projectcalico.org/v2\nkind: IPPool\nmetadata: {name: p}\n") ==
        "IPPool \"p\": apiVersion: \"projectcalico.org/v2\" is not projectcalico.org/v3");
  CHECK(ErrorOf("apiVersion: projectcalico.org/v3\nkind: IPPol\n") ==
        "unknown kind \"IPPol\" (apiVersion projectcalico.org/v3)");
  CHECK(ErrorOf("a: 1\na: 2\n") == "YAML error in document 1: line 2: duplicate key \"a\"");
}

TEST_CASE("ToYaml and ToJson lists", "[unit][resources]") {
  Resource t = One("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t1}\nspec: {order: 10}\n");
  CHECK(ToYaml({}, true) == "apiVersion: projectcalico.org/v3\nkind: List\nitems: []\n");
  CHECK(ToYaml({t, t}) ==
        "apiVersion: projectcalico.org/v3\nkind: List\nitems:\n"
        "- apiVersion: projectcalico.org/v3\n  kind: Tier\n  metadata:\n    name: t1\n  spec:\n    order: 10\n"
        "- apiVersion: projectcalico.org/v3\n  kind: Tier\n  metadata:\n    name: t1\n  spec:\n    order: 10\n");
  CHECK(ToJson({t}) ==
        "{\n  \"apiVersion\": \"projectcalico.org/v3\",\n  \"kind\": \"Tier\",\n  \"metadata\": {\n"
        "    \"name\": \"t1\"\n  },\n  \"spec\": {\n    \"order\": 10\n  }\n}\n");
}

}  // namespace
}  // namespace calico::resources
