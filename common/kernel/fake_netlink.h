#pragma once
// common/kernel/fake_netlink.h — a stateful in-memory kernel for unit tests (Felix's mock
// dataplane, Envoy's preference for fakes over interaction mocks). One network namespace: links,
// addresses, routes in tables, per-interface sysctls, vxlan devices, neighbours and vxlan FDB
// entries, with the kernel behaviour our drivers rely
// on: replace is idempotent, routes via a missing device fail ENODEV, routes via a down device
// fail ENETDOWN and are flushed when it goes down (both families), a gateway that is neither
// on-link nor covered by a connected prefix fails ENETUNREACH, deleting a device removes its
// routes, addresses and sysctls, IPv4 RTM_DELROUTE with metric 0 takes the lowest metric, IPv4
// addresses are (IP, prefix length) and IPv6 ones one per IP. Not modelled: the local/prefix
// routes and addresses the kernel adds by itself, the neighbours it adds (NOARP multicast), FDB
// entries of non-vxlan devices beyond "mac without dst", the peer namespace's contents,
// multipath hops going down one by one. Neighbours: replace by (device, IP), deleted with their
// device and flushed (permanent ones too) when it goes down. Vxlan FDB: per MAC a list of dsts;
// append adds a dst only to the all-zero and multicast MACs (a unicast MAC keeps its dst),
// replace moves a unicast MAC and refuses the others (EOPNOTSUPP), a dst of the other family
// than the device's is EAFNOSUPPORT; entries survive the device going down. The conformance suite
// (tests/support/kernel/netlink_conformance.h) holds this fake and LibnlNetlink in a real
// namespace to the same cases.

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/kernel/netlink.h"

namespace calico::kernel {

enum class NetlinkOp {
  kLinkList,
  kLinkGet,
  kLinkCreate,
  kLinkDelete,
  kLinkSet,  // up/down, mtu, mac
  kAddrList,
  kAddrReplace,
  kAddrDelete,
  kRouteList,
  kRouteReplace,
  kRouteDelete,
  kSysctlRead,
  kSysctlWrite,
  kNeighList,
  kNeighReplace,
  kNeighDelete,
  kFdbList,
  kFdbAdd,  // AppendFdb and ReplaceFdb
  kFdbDelete,
};

class FakeNetlink : public Netlink {
 public:
  // A fresh namespace: "lo" (index 1, up) and the global forwarding sysctls.
  FakeNetlink();

  // Netlink
  absl::StatusOr<std::vector<Link>> ListLinks() override;
  absl::StatusOr<Link> GetLink(std::string_view name) override;
  absl::Status CreateVeth(const VethSpec& spec) override;
  absl::Status CreateIpipTunnel(std::string_view name) override;
  // Whether this fake kernel has the ipip module (this machine's kernel has not).
  void set_ipip_available(bool available) { ipip_available_ = available; }
  absl::Status CreateVxlan(const VxlanSpec& spec) override;
  absl::Status DeleteLink(std::string_view name) override;
  absl::Status SetLinkUp(std::string_view name, bool up) override;
  absl::Status SetLinkMtu(std::string_view name, int mtu) override;
  absl::Status SetLinkMac(std::string_view name, const MacAddress& mac) override;
  absl::Status SetLinkGroup(std::string_view name, uint32_t group) override;
  absl::StatusOr<std::vector<Address>> ListAddresses(int ifindex) override;
  absl::Status ReplaceAddress(const Address& address) override;
  absl::Status DeleteAddress(const Address& address) override;
  absl::StatusOr<std::vector<Neighbor>> ListNeighbors(int ifindex) override;
  absl::Status ReplaceNeighbor(const Neighbor& neighbor) override;
  absl::Status DeleteNeighbor(const Neighbor& neighbor) override;
  absl::StatusOr<std::vector<FdbEntry>> ListFdb(int ifindex) override;
  absl::Status AppendFdb(const FdbEntry& entry) override;
  absl::Status ReplaceFdb(const FdbEntry& entry) override;
  absl::Status DeleteFdb(const FdbEntry& entry) override;
  absl::StatusOr<std::vector<Route>> ListRoutes(const RouteFilter& filter) override;
  absl::Status ReplaceRoute(const Route& route) override;
  absl::Status DeleteRoute(const RouteKey& key, uint8_t protocol) override;
  absl::StatusOr<std::string> ReadSysctl(std::string_view path) override;
  absl::Status WriteSysctl(std::string_view path, std::string_view value) override;

  // ---- Test controls ----
  // The next call of `op` fails with `error` and changes nothing; several queue up in order.
  void FailNext(NetlinkOp op, int error);
  // Calls of `op` made through the Netlink interface, failed ones included.
  int Calls(NetlinkOp op) const;
  // Calls of every mutating op (create/delete/set/replace/write).
  int Writes() const;
  void ResetCalls() { calls_.clear(); }

  // ---- Direct state: "by hand", like `ip` from a shell. Not counted, never failed. ----
  std::vector<Route> Routes() const;  // all tables, in key order, as stored (ifindex+ifname)
  std::vector<Link> Links() const;
  std::vector<Address> Addresses() const;
  std::vector<Neighbor> Neighbors() const { return neighbors_; }
  std::vector<FdbEntry> Fdb() const { return fdb_; }
  std::optional<std::string> Sysctl(std::string_view path) const;
  // Adds a link as-is (e.g. the host uplink "eth0"); index 0 picks the next free one.
  Link AddLinkByHand(Link link);
  // Stores a route without validation (drift, another daemon's route).
  void PutRouteByHand(Route route);
  void DeleteRouteByHand(const RouteKey& key);
  void SetSysctlByHand(std::string_view path, std::string_view value);

 private:
  // Pops an injected failure for `op` (counting the call either way).
  std::optional<int> Begin(NetlinkOp op);
  Link* FindLink(std::string_view name);
  Link* FindLink(int index);
  int NextIndex() const;
  void CreateLinkSysctls(const std::string& name);
  void RemoveLink(int index);
  // Resolves the device of `hop` (index wins over name) and fills both; errno on failure.
  int ResolveHop(const Route& route, NextHop& hop);
  bool GatewayReachable(const Route& route, const NextHop& hop) const;
  // The device a neighbour or FDB request names (index wins over name); nullptr: ENODEV.
  Link* FindDevice(int ifindex, std::string_view ifname);
  int AddFdb(const FdbEntry& entry, bool replace);  // errno; 0: done

  std::map<int, Link> links_;  // by ifindex
  std::vector<Address> addresses_;
  std::vector<Neighbor> neighbors_;  // ifindex and ifname filled
  std::vector<FdbEntry> fdb_;        // one per (device, MAC, dst), in insertion order
  std::map<RouteKey, Route> routes_;
  std::map<std::string, std::string, std::less<>> sysctls_;
  std::map<NetlinkOp, std::deque<int>> failures_;
  std::map<NetlinkOp, int> calls_;
  bool ipip_available_ = false;
};

}  // namespace calico::kernel
