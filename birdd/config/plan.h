#pragma once
// birdd/config/plan.h — what this node's BGP should look like, derived from the datastore's
// Node, BGPConfiguration and BGPPeer resources exactly as upstream Calico derives its BIRD
// configuration. Pure: no I/O (secrets are read through a callback), so every rule is
// unit-tested.
//
// Rules (upstream's):
//  - BGPConfiguration "default" holds the cluster-wide settings: asNumber (64512),
//    nodeToNodeMeshEnabled (true), listenPort (179), nodeMeshPassword, nodeMeshMaxRestartTime;
//    "node.<node>" overrides listenPort for one node.
//  - A node takes part in BGP only when its spec.bgp names an address; its AS is
//    spec.bgp.asNumber, else the global one; its router id is its IPv4 address (IPv6-only
//    nodes: a hash of the node name, as upstream's `hash` router-id mode).
//  - Mesh: every other BGP node, per address family both nodes have. Of each pair the node
//    whose address is greater as a string stays passive, so exactly one side connects.
//  - BGPPeer applies to this node when spec.node names it, spec.nodeSelector matches it, or
//    neither is set (global). Its peers are spec.peerIP ("ip", "ip:port", "[ip6]:port") with
//    spec.asNumber, or every node spec.peerSelector matches (their addresses and ASes).
//  - Route reflection: a node with spec.bgp.routeReflectorClusterID reflects; a node peer
//    (mesh or peerSelector) is its client unless that node reflects for the same cluster.
//  - An explicit BGPPeer for an address replaces the mesh session to it; two BGPPeers for the
//    same address: the first by name wins, the other is reported.
//  - A password whose secret cannot be read leaves that peer out (reported): a session
//    without the key would only be refused by the peer.

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/ip.h"
#include "common/resources/resource.h"

namespace calico::birdd::config {

inline constexpr uint32_t kDefaultAs = 64512;
inline constexpr uint16_t kDefaultPort = 179;
inline constexpr absl::Duration kDefaultRestartTime = absl::Seconds(120);

enum class PeerType { kMesh, kGlobal, kNodeSpecific };

// One BGPFilter rule (upstream's semantics): a route matches when its prefix stands in
// `op` to `cidr` (Equal / NotEqual: the same prefix; In / NotIn: inside it, optionally with a
// prefix length in [min_len, max_len]), and, with `remote_only`, when it was learned from a
// peer (not this node's own). Rules run in order; the first match decides; none: accepted.
struct FilterRule {
  enum class Op { kEqual, kNotEqual, kIn, kNotIn };
  std::optional<net::Prefix> cidr;
  Op op = Op::kIn;
  std::optional<int> min_len;
  std::optional<int> max_len;
  bool remote_only = false;
  bool accept = true;
  bool operator==(const FilterRule&) const = default;
};
bool FilterAccepts(const std::vector<FilterRule>& rules, const net::Prefix& prefix, bool from_peer);

// BGP communities for this node's own routes inside `cidr` (BGPConfiguration
// prefixAdvertisements): standard "aa:nn" and large "aa:nn:mm".
struct PrefixCommunities {
  net::Prefix cidr;
  std::vector<uint32_t> standard;
  std::vector<std::array<uint32_t, 3>> large;
  bool operator==(const PrefixCommunities&) const = default;
};
// As `calicoctl node status` prints it: "node-to-node mesh", "global", "node specific".
std::string_view PeerTypeName(PeerType type);

struct Peer {
  std::string name;  // BIRD's protocol names: Mesh_10_0_0_2, Global_10_0_0_9, Node_10_0_0_9
  PeerType type = PeerType::kMesh;
  net::IpAddress address;
  uint16_t port = kDefaultPort;
  uint32_t as = kDefaultAs;
  bool passive = false;
  std::string password;                          // TCP-MD5; empty: none
  std::optional<net::IpAddress> source_address;  // sourceAddress UseNodeIP (default)
  bool keep_original_next_hop = false;
  absl::Duration restart_time = kDefaultRestartTime;
  int ttl_security = 0;  // hops (GTSM, RFC 5082); 0: off
  bool rr_client = false;
  std::string origin;  // the resource it came from: `Node "n2"`, `BGPPeer "tor"`
  // BGPPeer spec.filters, resolved: rules per direction and family (v4 index 0, v6 index 1).
  std::array<std::vector<FilterRule>, 2> import_rules;
  std::array<std::vector<FilterRule>, 2> export_rules;

  bool operator==(const Peer&) const = default;
};

struct Plan {
  bool enabled = false;  // this node has a BGP address
  uint32_t as = kDefaultAs;
  uint32_t router_id = 0;
  std::optional<net::IpAddress> ipv4;
  std::optional<net::Prefix> ipv4_subnet;  // the node's IPv4 subnet (ipv4Address's length)
  std::optional<net::IpAddress> ipv6;
  std::optional<uint32_t> cluster_id;
  uint16_t listen_port = kDefaultPort;
  std::vector<Peer> peers;            // ordered by address
  std::vector<PrefixCommunities> communities;
  std::vector<std::string> problems;  // resources that could not be honoured, and why

  bool operator==(const Plan&) const = default;
};

struct Inputs {
  std::vector<resources::Resource> nodes;
  std::vector<resources::Resource> bgp_configurations;
  std::vector<resources::Resource> bgp_peers;
  std::vector<resources::Resource> bgp_filters;
};

// Reads secret `name`, key `key` (the BGP password); NotFound when it does not exist.
using SecretReader = std::function<absl::StatusOr<std::string>(std::string_view name, std::string_view key)>;

// NotFound when `node` has no Node resource (birdd waits for it).
absl::StatusOr<Plan> MakePlan(const Inputs& inputs, std::string_view node, const SecretReader& secrets);

// Secrets as Kubernetes mounts them: <dir>/<name>/<key>, the value without a trailing newline.
SecretReader FileSecrets(std::string dir);

}  // namespace calico::birdd::config
