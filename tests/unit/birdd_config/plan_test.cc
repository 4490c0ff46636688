// The BGP plan from resources: mesh, passive side, BGPPeer scoping, route reflection, passwords.
#include "birdd/config/plan.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"

namespace calico::birdd::config {
namespace {

resources::Resource Parse(const std::string& yaml) {
  absl::StatusOr<std::vector<resources::ParsedDocument>> docs = resources::ParseDocuments(yaml);
  REQUIRE(docs.ok());
  REQUIRE(docs->size() == 1);
  INFO(yaml);
  REQUIRE((*docs)[0].resource.ok());
  return *(*docs)[0].resource;
}

resources::Resource Node(const std::string& name, const std::string& v4, const std::string& extra_bgp = "",
                         const std::string& labels = "") {
  std::string yaml = absl::StrCat("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: ", name, "\n");
  if (!labels.empty()) absl::StrAppend(&yaml, "  labels: ", labels, "\n");
  absl::StrAppend(&yaml, "spec:\n  bgp:\n");
  if (!v4.empty()) absl::StrAppend(&yaml, "    ipv4Address: ", v4, "\n");
  absl::StrAppend(&yaml, extra_bgp);
  return Parse(yaml);
}

resources::Resource PeerRes(const std::string& name, const std::string& spec) {
  return Parse(absl::StrCat("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: ", name,
                            "\nspec:\n", spec));
}

resources::Resource Config(const std::string& name, const std::string& spec) {
  return Parse(absl::StrCat("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: ", name,
                            "\nspec:\n", spec));
}

const Peer* FindPeer(const Plan& plan, const std::string& address) {
  for (const Peer& p : plan.peers) {
    if (net::FormatIp(p.address) == address) return &p;
  }
  return nullptr;
}

Plan MustPlan(const Inputs& in, const std::string& node, const SecretReader& secrets = nullptr) {
  absl::StatusOr<Plan> plan = MakePlan(in, node, secrets);
  INFO(plan.status().ToString());
  REQUIRE(plan.ok());
  return *plan;
}

TEST_CASE("the mesh peers every other BGP node and exactly one side of each pair connects") {
  Inputs in;
  in.nodes = {Node("n1", "10.0.0.1/24"), Node("n2", "10.0.0.2/24"), Node("n3", "10.0.0.10/24"),
              Node("nobgp", "")};
  Plan p1 = MustPlan(in, "n1");
  REQUIRE(p1.enabled);
  CHECK(p1.as == 64512);
  CHECK(p1.router_id == 0x0a000001);
  CHECK(p1.listen_port == 179);
  REQUIRE(p1.peers.size() == 2);
  const Peer* to2 = FindPeer(p1, "10.0.0.2");
  REQUIRE(to2 != nullptr);
  CHECK(to2->name == "Mesh_10_0_0_2");
  CHECK(to2->type == PeerType::kMesh);
  CHECK(PeerTypeName(to2->type) == "node-to-node mesh");
  CHECK(to2->as == 64512);
  CHECK(to2->source_address == net::ParseIp("10.0.0.1"));
  CHECK(to2->origin == "Node \"n2\"");
  // Passive: the greater address as a string. "10.0.0.10" < "10.0.0.2" as strings.
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{{"n1", "10.0.0.2"},
                                                                               {"n1", "10.0.0.10"},
                                                                               {"n2", "10.0.0.10"}}) {
    Plan mine = MustPlan(in, a);
    const Peer* peer = FindPeer(mine, b);
    REQUIRE(peer != nullptr);
    std::string other_node = b == "10.0.0.2" ? "n2" : "n3";
    Plan theirs = MustPlan(in, other_node);
    const Peer* back = FindPeer(theirs, net::FormatIp(*mine.ipv4));
    REQUIRE(back != nullptr);
    CHECK(peer->passive != back->passive);
  }
  CHECK(FindPeer(p1, "10.0.0.2")->passive == false);  // "10.0.0.1" < "10.0.0.2": n1 connects
  CHECK(FindPeer(p1, "10.0.0.10")->passive == false);
  CHECK(FindPeer(MustPlan(in, "n2"), "10.0.0.10")->passive == true);  // "10.0.0.2" > "10.0.0.10"

  Plan none = MustPlan(in, "nobgp");
  CHECK_FALSE(none.enabled);
  CHECK(none.peers.empty());
  CHECK(absl::IsNotFound(MakePlan(in, "ghost", nullptr).status()));
}

TEST_CASE("the mesh can be switched off and its AS, port and restart time configured") {
  Inputs in;
  in.nodes = {Node("n1", "10.0.0.1/24", "    asNumber: 65001\n"), Node("n2", "10.0.0.2/24")};
  in.bgp_configurations = {Config("default", "  asNumber: 65000\n  nodeMeshMaxRestartTime: 30s\n  listenPort: 1790\n"),
                           Config("node.n2", "  listenPort: 1791\n")};
  Plan p1 = MustPlan(in, "n1");
  CHECK(p1.as == 65001);  // the node's own wins
  CHECK(p1.listen_port == 1790);
  REQUIRE(p1.peers.size() == 1);
  CHECK(p1.peers[0].as == 65000);
  CHECK(p1.peers[0].restart_time == absl::Seconds(30));
  CHECK(MustPlan(in, "n2").listen_port == 1791);
  CHECK(MustPlan(in, "n2").peers[0].as == 65001);
  CHECK(p1.peers[0].port == 1791);  // n2 listens on its own port
  CHECK(p1.peers[0].name == "Mesh_10_0_0_2_port_1791");
  CHECK(MustPlan(in, "n2").peers[0].port == 1790);

  in.bgp_configurations = {Config("default", "  nodeToNodeMeshEnabled: false\n")};
  CHECK(MustPlan(in, "n1").peers.empty());
}

TEST_CASE("IPv6 mesh sessions only between nodes that both have IPv6 and IPv6-only nodes hash a router id") {
  Inputs in;
  in.nodes = {Node("n1", "10.0.0.1/24", "    ipv6Address: fd00::1/64\n"), Node("n2", "10.0.0.2/24", "    ipv6Address: fd00::2/64\n"),
              Node("n3", "10.0.0.3/24"), Node("v6only", "", "    ipv6Address: fd00::9/64\n")};
  Plan p1 = MustPlan(in, "n1");
  CHECK(FindPeer(p1, "fd00::2") != nullptr);
  CHECK(FindPeer(p1, "fd00::2")->name == "Mesh_fd00__2");
  CHECK(FindPeer(p1, "fd00::9") != nullptr);
  CHECK(p1.peers.size() == 4);  // v4: n2, n3; v6: n2, v6only
  Plan v6 = MustPlan(in, "v6only");
  CHECK(v6.enabled);
  CHECK(v6.router_id != 0);
  CHECK(v6.router_id == MustPlan(in, "v6only").router_id);
  CHECK(v6.peers.size() == 2);
}

TEST_CASE("BGPPeer scope: global, node, nodeSelector, and explicit peers replace the mesh session") {
  Inputs in;
  in.nodes = {Node("n1", "10.0.0.1/24", "", "{rack: a}"), Node("n2", "10.0.0.2/24", "", "{rack: b}")};
  in.bgp_peers = {PeerRes("tor-a", "  nodeSelector: rack == 'a'\n  peerIP: 10.0.0.254\n  asNumber: 65100\n"),
                  PeerRes("tor-b", "  node: n2\n  peerIP: '[fd00::fe]:1179'\n  asNumber: 65100\n"),
                  PeerRes("everyone", "  peerIP: 10.0.0.200:1179\n  asNumber: 65200\n  keepOriginalNextHop: true\n"
                                   "  sourceAddress: None\n  maxRestartTime: 15s\n  ttlSecurity: 1\n"),
                  PeerRes("n2-direct", "  node: n1\n  peerIP: 10.0.0.2\n  asNumber: 64512\n")};
  Plan p1 = MustPlan(in, "n1");
  CAPTURE(p1.problems);
  const Peer* tor = FindPeer(p1, "10.0.0.254");
  REQUIRE(tor != nullptr);
  CHECK(tor->type == PeerType::kNodeSpecific);
  CHECK(tor->name == "Node_10_0_0_254");
  CHECK(tor->as == 65100);
  CHECK_FALSE(tor->passive);
  CHECK(tor->source_address == net::ParseIp("10.0.0.1"));
  const Peer* all = FindPeer(p1, "10.0.0.200");
  REQUIRE(all != nullptr);
  CHECK(all->type == PeerType::kGlobal);
  CHECK(all->name == "Global_10_0_0_200_port_1179");
  CHECK(all->port == 1179);
  CHECK(all->keep_original_next_hop);
  CHECK_FALSE(all->source_address.has_value());
  CHECK(all->restart_time == absl::Seconds(15));
  CHECK(all->ttl_security == 1);
  CHECK(FindPeer(p1, "fd00::fe") == nullptr);  // tor-b is n2's (and n1 has no IPv6 anyway)
  const Peer* direct = FindPeer(p1, "10.0.0.2");
  REQUIRE(direct != nullptr);
  CHECK(direct->type == PeerType::kNodeSpecific);  // replaced the mesh session
  CHECK(p1.peers.size() == 3);

  Plan p2 = MustPlan(in, "n2");
  CHECK(FindPeer(p2, "10.0.0.254") == nullptr);
  CHECK(FindPeer(p2, "10.0.0.200") != nullptr);
  CHECK(FindPeer(p2, "10.0.0.1")->type == PeerType::kMesh);
}

TEST_CASE("route reflectors: peerSelector peers, clients unless they reflect for the same cluster") {
  Inputs in;
  in.nodes = {Node("rr1", "10.0.0.1/24", "    routeReflectorClusterID: 224.0.0.1\n", "{rr: 'true'}"),
              Node("rr2", "10.0.0.2/24", "    routeReflectorClusterID: 224.0.0.1\n", "{rr: 'true'}"),
              Node("c1", "10.0.0.11/24"), Node("c2", "10.0.0.12/24")};
  in.bgp_configurations = {Config("default", "  nodeToNodeMeshEnabled: false\n")};
  in.bgp_peers = {PeerRes("to-rr", "  nodeSelector: all()\n  peerSelector: rr == 'true'\n"),
                  PeerRes("rr-to-all", "  nodeSelector: rr == 'true'\n  peerSelector: all()\n")};
  Plan rr1 = MustPlan(in, "rr1");
  CHECK(rr1.cluster_id == 0xe0000001);
  REQUIRE(rr1.peers.size() == 3);
  CHECK(FindPeer(rr1, "10.0.0.11")->rr_client);
  CHECK(FindPeer(rr1, "10.0.0.12")->rr_client);
  CHECK_FALSE(FindPeer(rr1, "10.0.0.2")->rr_client);  // same cluster: a non-client iBGP peer
  Plan c1 = MustPlan(in, "c1");
  REQUIRE(c1.peers.size() == 2);  // only the reflectors
  CHECK_FALSE(c1.cluster_id.has_value());
  CHECK_FALSE(FindPeer(c1, "10.0.0.1")->rr_client);
  CHECK(FindPeer(c1, "10.0.0.1")->passive != FindPeer(rr1, "10.0.0.11")->passive);
}

TEST_CASE("one BGPPeer with a peerSelector makes both ends (reverse peering) unless Manual") {
  Inputs in;
  in.nodes = {Node("rr", "10.0.0.1/24", "    routeReflectorClusterID: 224.0.0.1\n", "{rr: 'true'}"),
              Node("c1", "10.0.0.11/24"), Node("c2", "10.0.0.12/24")};
  in.bgp_configurations = {Config("default", "  nodeToNodeMeshEnabled: false\n")};
  in.bgp_peers = {PeerRes("to-rr", "  nodeSelector: all()\n  peerSelector: rr == 'true'\n")};
  Plan rr = MustPlan(in, "rr");
  REQUIRE(rr.peers.size() == 2);
  CHECK(FindPeer(rr, "10.0.0.11")->rr_client);
  CHECK(FindPeer(rr, "10.0.0.12")->rr_client);
  Plan c1 = MustPlan(in, "c1");
  REQUIRE(c1.peers.size() == 1);
  CHECK(net::FormatIp(c1.peers[0].address) == "10.0.0.1");

  in.bgp_peers = {PeerRes("to-rr", "  nodeSelector: all()\n  peerSelector: rr == 'true'\n  reversePeering: Manual\n")};
  CHECK(MustPlan(in, "rr").peers.empty());
  CHECK(MustPlan(in, "c1").peers.size() == 1);
}

TEST_CASE("passwords come from secrets and an unreadable one leaves the peer out and says why") {
  Inputs in;
  in.nodes = {Node("n1", "10.0.0.1/24"), Node("n2", "10.0.0.2/24")};
  in.bgp_configurations = {Config("default", "  nodeMeshPassword:\n    secretKeyRef: {name: mesh, key: pw}\n")};
  in.bgp_peers = {PeerRes("tor", "  peerIP: 10.0.0.254\n  asNumber: 65100\n  password:\n    secretKeyRef: {name: bgp, key: tor}\n"),
                  PeerRes("opt", "  peerIP: 10.0.0.253\n  asNumber: 65100\n  password:\n    secretKeyRef: {name: bgp, key: nope, optional: true}\n")};
  SecretReader secrets = [](std::string_view name, std::string_view key) -> absl::StatusOr<std::string> {
    if (name == "mesh" && key == "pw") return std::string("m3sh");
    return absl::NotFoundError(absl::StrCat(std::string(name), "/", std::string(key), " not found"));
  };
  Plan p = MustPlan(in, "n1", secrets);
  CHECK(FindPeer(p, "10.0.0.2")->password == "m3sh");
  CHECK(FindPeer(p, "10.0.0.254") == nullptr);
  REQUIRE(FindPeer(p, "10.0.0.253") != nullptr);  // optional and absent: no password
  CHECK(FindPeer(p, "10.0.0.253")->password.empty());
  REQUIRE(p.problems.size() == 1);
  CHECK(p.problems[0].find("BGPPeer \"tor\": password secret bgp/tor unreadable") != std::string::npos);
}

resources::Resource Filter(const std::string& name, const std::string& spec) {
  return Parse(absl::StrCat("apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: ", name,
                            "\nspec:\n", spec));
}

TEST_CASE("BGPFilter rules: first match decides, operators, prefix lengths, RemotePeers, default accept") {
  Inputs in;
  in.nodes = {Node("n1", "10.0.0.1/24")};
  in.bgp_configurations = {Config("default", "  nodeToNodeMeshEnabled: false\n")};
  in.bgp_filters = {Filter("f", "  importV4:\n"
                                "  - {cidr: 10.9.0.0/16, matchOperator: Equal, action: Accept}\n"
                                "  - {cidr: 10.9.0.0/16, matchOperator: In, prefixLength: {max: 24}, action: Reject}\n"
                                "  - {cidr: 10.0.0.0/8, matchOperator: NotIn, action: Reject}\n"
                                "  exportV4:\n"
                                "  - {cidr: 10.244.0.0/16, matchOperator: In, source: RemotePeers, action: Reject}\n"
                                "  exportV6:\n"
                                "  - {cidr: 'fd00::/8', matchOperator: NotEqual, action: Reject}\n")};
  in.bgp_peers = {PeerRes("tor", "  peerIP: 10.0.0.254\n  asNumber: 65100\n  filters: [f]\n"),
                  PeerRes("bad", "  peerIP: 10.0.0.253\n  asNumber: 65100\n  filters: [nope]\n")};
  Plan p = MustPlan(in, "n1");
  REQUIRE(p.peers.size() == 1);  // "bad" names a filter that does not exist
  REQUIRE(p.problems.size() == 1);
  CHECK(p.problems[0] == "BGPPeer \"bad\": BGPFilter \"nope\" does not exist; peer left out");
  const Peer& tor = p.peers[0];
  auto in4 = [&](const char* cidr) { return FilterAccepts(tor.import_rules[0], *net::ParsePrefix(cidr), true); };
  CHECK(in4("10.9.0.0/16"));        // Equal: accepted before the In rule could reject it
  CHECK_FALSE(in4("10.9.1.0/24"));  // In, length <= 24
  CHECK(in4("10.9.1.0/26"));        // In but longer than 24: next rule, inside 10/8: default accept
  CHECK_FALSE(in4("192.168.0.0/24"));  // NotIn 10/8
  auto out4 = [&](const char* cidr, bool from_peer) {
    return FilterAccepts(tor.export_rules[0], *net::ParsePrefix(cidr), from_peer);
  };
  CHECK(out4("10.244.1.0/26", false));       // our own block
  CHECK_FALSE(out4("10.244.2.0/26", true));  // learned from a peer
  CHECK(FilterAccepts(tor.export_rules[1], *net::ParsePrefix("fd00::/8"), false));
  CHECK_FALSE(FilterAccepts(tor.export_rules[1], *net::ParsePrefix("fd00:1::/64"), false));
  CHECK(tor.import_rules[1].empty());
}

TEST_CASE("communities for this node's routes come from prefixAdvertisements, by name or value") {
  Inputs in;
  in.nodes = {Node("n1", "10.0.0.1/24")};
  in.bgp_configurations = {Config("default", "  communities:\n  - {name: no-export-ish, value: '65000:100'}\n"
                                             "  prefixAdvertisements:\n"
                                             "  - {cidr: 10.244.0.0/16, communities: [no-export-ish, '65000:1:2']}\n")};
  Plan p = MustPlan(in, "n1");
  REQUIRE(p.communities.size() == 1);
  CHECK(net::FormatCidr(p.communities[0].cidr) == "10.244.0.0/16");
  CHECK(p.communities[0].standard == std::vector<uint32_t>{(65000u << 16) | 100});
  REQUIRE(p.communities[0].large.size() == 1);
  CHECK(p.communities[0].large[0] == std::array<uint32_t, 3>{65000, 1, 2});
}

TEST_CASE("a bad peerIP or selector is reported, the rest of the plan stands") {
  Inputs in;
  in.nodes = {Node("n1", "10.0.0.1/24"), Node("n2", "10.0.0.2/24")};
  // Validation refuses such a peerIP; the datastore may still hold one written by another tool.
  resources::Resource bad = PeerRes("bad", "  peerIP: 10.0.0.30\n  asNumber: 65100\n");
  bad.object["spec"]["peerIP"] = "10.0.0.300";
  in.bgp_peers = {bad,
                  PeerRes("dup1", "  peerIP: 10.0.0.250\n  asNumber: 65100\n"),
                  PeerRes("dup2", "  peerIP: 10.0.0.250\n  asNumber: 65101\n")};
  Plan p = MustPlan(in, "n1");
  CHECK(FindPeer(p, "10.0.0.2") != nullptr);
  REQUIRE(FindPeer(p, "10.0.0.250") != nullptr);
  CHECK(FindPeer(p, "10.0.0.250")->as == 65100);  // first by name
  REQUIRE(p.problems.size() == 2);
  CHECK(p.problems[0].find("BGPPeer \"bad\": spec.peerIP \"10.0.0.300\"") != std::string::npos);
  CHECK(p.problems[1].find("BGPPeer \"dup2\": peer 10.0.0.250 is already configured by BGPPeer \"dup1\"") !=
        std::string::npos);
}

}  // namespace
}  // namespace calico::birdd::config
