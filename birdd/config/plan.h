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

  bool operator==(const Peer&) const = default;
};

struct Plan {
  bool enabled = false;  // this node has a BGP address
  uint32_t as = kDefaultAs;
  uint32_t router_id = 0;
  std::optional<net::IpAddress> ipv4;
  std::optional<net::IpAddress> ipv6;
  std::optional<uint32_t> cluster_id;
  uint16_t listen_port = kDefaultPort;
  std::vector<Peer> peers;            // ordered by address
  std::vector<std::string> problems;  // resources that could not be honoured, and why

  bool operator==(const Plan&) const = default;
};

struct Inputs {
  std::vector<resources::Resource> nodes;
  std::vector<resources::Resource> bgp_configurations;
  std::vector<resources::Resource> bgp_peers;
};

// Reads secret `name`, key `key` (the BGP password); NotFound when it does not exist.
using SecretReader = std::function<absl::StatusOr<std::string>(std::string_view name, std::string_view key)>;

// NotFound when `node` has no Node resource (birdd waits for it).
absl::StatusOr<Plan> MakePlan(const Inputs& inputs, std::string_view node, const SecretReader& secrets);

// Secrets as Kubernetes mounts them: <dir>/<name>/<key>, the value without a trailing newline.
SecretReader FileSecrets(std::string dir);

}  // namespace calico::birdd::config
