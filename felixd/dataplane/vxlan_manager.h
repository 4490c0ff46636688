#pragma once
// felixd/dataplane/vxlan_manager.h — Felix's VXLAN mode on this node, one instance per family:
// vxlan.calico for IPv4 and vxlan-v6.calico for IPv6 (as upstream), each with its own tunnel
// address, VTEP MAC and outer family.
//
// PlanVxlan (pure) turns the cluster's view — IPv4 pools with their vxlanMode, every Node's
// address, tunnel address and VTEP MAC, every node's affine blocks, and workload addresses
// borrowed outside their node's blocks — into what this node needs:
//  - the device vxlan.calico (VNI 4096, UDP 4789, learning off, outer source = this node's
//    address, parent = the device holding it, MTU = parent's - 50) with this node's tunnel
//    address as a /32, while an enabled IPv4 pool has vxlanMode Always or CrossSubnet;
//  - per remote VTEP a permanent neighbour (tunnel IP → VTEP MAC) and an FDB entry (VTEP MAC →
//    node address): the device has no remote, so nothing is learned or flooded;
//  - per remote block (or borrowed address) of a VXLAN pool a route: `via <tunnel IP> dev
//    vxlan.calico onlink`, or for CrossSubnet towards a node on this node's subnet `via <node
//    address>` on the underlay (no encapsulation, no BGP needed either way).
// VxlanManager reconciles the device, its address, neighbours and FDB against the kernel (read
// back every Apply: a handful of dumps of one device). The routes are programmed by the
// EndpointManager's route table, the single owner of felix's route protocol.
// Owns: vxlan.calico, its addresses, permanent neighbours and FDB entries. Never: another device.
// Not thread-safe: felixd calls it under its mutex.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/kernel/netlink.h"
#include "common/net/ip.h"

namespace calico::felixd {

inline constexpr char kVxlanDevice[] = "vxlan.calico";
inline constexpr char kVxlanDeviceV6[] = "vxlan-v6.calico";
inline constexpr uint32_t kVxlanVni = 4096;
inline constexpr uint16_t kVxlanPort = 4789;
inline constexpr int kVxlanOverhead = 50;    // outer IPv4 20 + UDP 8 + VXLAN 8 + Ethernet 14
inline constexpr int kVxlanOverheadV6 = 70;  // outer IPv6 40 + UDP 8 + VXLAN 8 + Ethernet 14
inline const char* VxlanDevice(int family) { return family == 6 ? kVxlanDeviceV6 : kVxlanDevice; }
inline int VxlanOverhead(int family) { return family == 6 ? kVxlanOverheadV6 : kVxlanOverhead; }

enum class EncapMode { kNever, kAlways, kCrossSubnet };
std::optional<EncapMode> ParseEncapMode(std::string_view text);  // "Never", "Always", "CrossSubnet"

struct VxlanPool {
  net::Prefix cidr;
  EncapMode vxlan = EncapMode::kNever;
  bool disabled = false;
};

// One Node as one family's VXLAN sees it (IPv6: ipv6Address, ipv6VXLANTunnelAddr,
// vxlanTunnelMACAddrV6).
struct VxlanNode {
  std::optional<net::Prefix> address;         // spec.bgp.ipv4Address: underlay IP and subnet
  std::optional<net::IpAddress> tunnel_ip;    // spec.ipv4VXLANTunnelAddr (ipamd assigns it)
  std::optional<kernel::MacAddress> mac;      // spec.vxlanTunnelMACAddr (felixd writes its own)
};

struct VxlanInputs {
  int family = 4;    // pools, blocks and addresses of the other family are ignored
  std::string node;  // this node
  std::vector<VxlanPool> pools;
  std::map<std::string, VxlanNode> nodes;
  std::vector<std::pair<net::Prefix, std::string>> blocks;    // confirmed affinities: block → node
  std::vector<std::pair<net::Prefix, std::string>> borrowed;  // workload /32s outside their node's blocks
};

struct Vtep {
  std::string node;
  net::IpAddress node_ip;
  net::IpAddress tunnel_ip;
  kernel::MacAddress mac{};
  bool operator==(const Vtep&) const = default;
};

struct VxlanPlan {
  int family = 4;
  bool wanted = false;          // some enabled pool of the family uses VXLAN
  std::optional<Vtep> local;    // set when wanted and this node's VTEP is complete
  std::vector<Vtep> remotes;    // complete remote VTEPs, by node name
  std::vector<kernel::Route> routes;  // to remote blocks/addresses (no protocol: the table sets it)
  // Why the device (or a remote) is not programmed yet, as sentences ("Node node1 has no
  // ipv4VXLANTunnelAddr yet: ipamd assigns one"); empty when complete.
  std::vector<std::string> waiting;
  bool operator==(const VxlanPlan&) const = default;
};

// The MAC felixd gives its VTEP when the Node has none: locally administered unicast (0x66 …),
// stable for a node name and family so a restart never changes it.
kernel::MacAddress VtepMacFor(std::string_view node, int family = 4);

// Whether `cidr` lies in an enabled pool of its family with VXLAN (its blocks are routed by
// felixd, not BGP).
bool InVxlanPool(const std::vector<VxlanPool>& pools, const net::Prefix& cidr);

VxlanPlan PlanVxlan(const VxlanInputs& in);

struct VxlanStats {
  int64_t device_writes = 0;    // create/delete/up/mtu/mac
  int64_t neighbor_writes = 0;  // replace + delete
  int64_t fdb_writes = 0;       // replace + delete
};

class VxlanManager {
 public:
  explicit VxlanManager(kernel::Netlink& host, int family = 4)
      : host_(host), family_(family), device_(VxlanDevice(family)) {}

  void Set(VxlanPlan plan) { plan_ = std::move(plan); }
  const VxlanPlan& plan() const { return plan_; }

  // Reads the device, its addresses, neighbours and FDB back and writes only the difference.
  // Without a wanted VTEP the device is removed (with it everything on it). A device of the
  // same name but the wrong VNI/port/local/parent is recreated. Returns the first failure.
  absl::Status Apply();

  int family() const { return family_; }
  const std::string& device() const { return device_; }
  // The parent's MTU minus the VXLAN overhead once the device exists; 0 before.
  int device_mtu() const { return device_mtu_; }
  const VxlanStats& stats() const { return stats_; }

 private:
  absl::Status EnsureDevice(const Vtep& local, int& ifindex);

  kernel::Netlink& host_;
  int family_;
  std::string device_;
  VxlanPlan plan_;
  int device_mtu_ = 0;
  VxlanStats stats_;
};

}  // namespace calico::felixd
