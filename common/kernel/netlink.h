#pragma once
// common/kernel/netlink.h — the narrow seam through which felixd (and later birdd) program links,
// addresses, routes and per-interface sysctls, in our own value types rather than libnl's.
// Owns: nothing; implementations are LibnlNetlink (real, next step) and FakeNetlink (tests).
// Never: enumerates another daemon's routes for it (ListRoutes takes the owner's filter), or
// reports "already in the desired state" as an error: replace/delete are idempotent, so a driver
// that lost its memory (restart) can re-apply its whole desired state safely.
// Errors: ErrnoError(errno, "<RTM_* or operation> <object>") — see common/base/errno_status.h.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/net/ip.h"

namespace calico::kernel {

// Route tables and protocols (rtnetlink numbers; /etc/iproute2/rt_tables, rt_protos).
inline constexpr uint32_t kMainTable = 254;
inline constexpr uint32_t kLocalTable = 255;
inline constexpr uint8_t kProtoUnspec = 0;  // in a filter or delete: any protocol
inline constexpr uint8_t kProtoKernel = 2;
inline constexpr uint8_t kProtoBoot = 3;
inline constexpr uint8_t kProtoStatic = 4;
inline constexpr uint8_t kProtoBird = 12;
// The kernel stores IPv6 routes added with metric 0 as metric 1024 (IP6_RT_PRIO_USER); keys use
// the stored value so a read-back matches what we asked for.
inline constexpr uint32_t kIpv6DefaultMetric = 1024;

using MacAddress = std::array<uint8_t, 6>;
std::string FormatMac(const MacAddress& mac);                  // "ee:ee:ee:ee:ee:ee"
std::optional<MacAddress> ParseMac(std::string_view text);     // same form, case-insensitive

// ---- Links ---------------------------------------------------------------------------------

enum class LinkKind { kOther, kLoopback, kVeth, kVxlan, kBridge, kTun, kIpip };
std::string_view LinkKindName(LinkKind kind);

// A network namespace, by open fd (preferred: no path race) or by path (/var/run/netns/x,
// /proc/<pid>/ns/net). Empty (fd < 0, no path) means "this namespace".
struct NetnsRef {
  int fd = -1;
  std::string path;
  bool IsSelf() const { return fd < 0 && path.empty(); }
  bool operator==(const NetnsRef&) const = default;
};

// What a vxlan device was created with (IFLA_VXLAN_*), read back by ListLinks/GetLink.
struct VxlanInfo {
  uint32_t vni = 0;                     // IFLA_VXLAN_ID
  uint16_t port = 0;                    // IFLA_VXLAN_PORT: UDP destination port
  std::optional<net::IpAddress> local;  // IFLA_VXLAN_LOCAL / LOCAL6: source of the outer header
  int parent_index = 0;                 // IFLA_VXLAN_LINK: underlay device; 0: none
  bool learning = true;                 // IFLA_VXLAN_LEARNING (the kernel's default is on)

  bool operator==(const VxlanInfo&) const = default;
};

struct Link {
  std::string name;
  int index = 0;
  LinkKind kind = LinkKind::kOther;
  int mtu = 1500;
  std::optional<MacAddress> mac;
  bool up = false;
  uint32_t group = 0;  // IFLA_GROUP (`ip link set dev X group N`); felixd's policy dispatch
  // veth only: the peer's name and the namespace it was created in (as given at creation;
  // empty when the peer lives here too, or when read back from the kernel without that detail).
  std::string peer_name;
  NetnsRef peer_netns;
  // vxlan only (kind kVxlan): the device's configuration as the kernel holds it, so a
  // reconciler can tell a wrongly configured vxlan.calico from a right one.
  std::optional<VxlanInfo> vxlan;

  bool operator==(const Link&) const = default;
};

// One veth pair, the host side here and the peer in `peer_netns` (created there directly: no
// move round trip). A veth peer cannot be created UP (ENOTCONN): bring it up from its namespace.
struct VethSpec {
  std::string name;       // ≤ 15 bytes (IFNAMSIZ - 1), else InvalidArgument
  std::string peer_name;
  NetnsRef peer_netns;
  int mtu = 0;            // 0: kernel default
  std::optional<MacAddress> mac;
  std::optional<MacAddress> peer_mac;
  int index = 0;          // 0: kernel chooses; a fixed index saves a lookup round trip
  int peer_index = 0;
};

// A VXLAN device (kind "vxlan"), e.g. Felix's vxlan.calico: VNI 4096, UDP 4789, learning off,
// no remote/group (so no default all-zero FDB entry: every remote VTEP is one FdbEntry).
struct VxlanSpec {
  std::string name;                     // ≤ 15 bytes, else InvalidArgument
  uint32_t vni = 0;                     // < 2^24, else ERANGE (Internal), as the kernel says
  uint16_t port = 4789;                 // IANA VXLAN port (the kernel's own default is 8472)
  std::optional<net::IpAddress> local;  // source address of the outer header; none: routing picks
  std::string parent;                   // underlay device (IFLA_VXLAN_LINK); empty: none
  int mtu = 0;                          // 0: kernel default (1500 without a parent)
  std::optional<MacAddress> mac;        // none: random
  bool learning = false;                // learn remote MACs from received packets (Felix: off)
};

// ---- Addresses -----------------------------------------------------------------------------

struct Address {
  net::Prefix prefix;     // address and its prefix length (10.65.0.3/32)
  int ifindex = 0;
  bool nodad = false;     // IFA_F_NODAD: IPv6 usable at once (DAD costs ~1.7 s per ADD)

  bool operator==(const Address&) const = default;
};

// ---- Neighbours and FDB ----------------------------------------------------------------------

// An ARP (IPv4) or NDP (IPv6) entry: `ip neigh replace <ip> lladdr <mac> dev <ifname> nud
// permanent`. Felix's VXLAN mode puts one per remote VTEP on vxlan.calico (tunnel IP → VTEP
// MAC): the device has no remote, so ARP could never resolve it.
struct Neighbor {
  int ifindex = 0;       // requests: ifindex, or ifname when 0 (one RTM_GETLINK); read-backs: both
  std::string ifname;
  net::IpAddress ip;
  MacAddress mac{};
  bool permanent = true;  // NUD_PERMANENT; false: NUD_REACHABLE (ages to stale, may be replaced)

  std::string ToString() const;  // "10.65.1.0 lladdr 66:00:00:00:00:01 dev vxlan.calico"
  bool operator==(const Neighbor&) const = default;
};

// A bridge forwarding entry on a device itself (AF_BRIDGE, NTF_SELF, NUD_PERMANENT): for a vxlan
// device, "frames for `mac` go to the VTEP at `dst`" (`bridge fdb append <mac> dev <ifname> dst
// <dst>`). `dst` is optional because the kernel lists entries without one on other devices (a
// veth's own multicast addresses); requests to a vxlan device carry one.
struct FdbEntry {
  int ifindex = 0;  // as in Neighbor
  std::string ifname;
  MacAddress mac{};
  std::optional<net::IpAddress> dst;  // NDA_DST: the remote node's underlay IP

  std::string ToString() const;  // "66:00:00:00:00:01 dev vxlan.calico dst 192.168.0.2"
  bool operator==(const FdbEntry&) const = default;
};

// ---- Routes --------------------------------------------------------------------------------

enum class RouteType { kUnicast, kBlackhole, kUnreachable, kProhibit };
// rtnetlink scopes: universe (via a gateway or blackhole), link (on-link dev route), host.
enum class RouteScope : uint8_t { kUniverse = 0, kLink = 253, kHost = 254 };

// One hop of a route. `ifname` or `ifindex` names the device (the real impl resolves names;
// read-backs fill both).
struct NextHop {
  int ifindex = 0;
  std::string ifname;
  std::optional<net::IpAddress> gateway;
  bool onlink = false;  // RTNH_F_ONLINK: gateway reachable on the device without a covering route
  int weight = 1;       // multipath only

  bool operator==(const NextHop&) const = default;
};

// What identifies a route for NLM_F_REPLACE and RTM_DELROUTE: a second route with the same key
// replaces the first, whatever its other fields (or its protocol).
struct RouteKey {
  uint32_t table = kMainTable;
  net::Prefix dst;
  uint32_t priority = 0;  // metric, normalised (IPv6 0 → 1024)

  std::string ToString() const;  // "10.65.0.3/32 table 254" (+ " metric N" when non-zero)
  auto operator<=>(const RouteKey&) const = default;
};

struct Route {
  net::Prefix dst;              // must have its host bits clear (kernel: EINVAL)
  uint32_t table = kMainTable;
  uint8_t protocol = kProtoBoot;
  RouteType type = RouteType::kUnicast;
  RouteScope scope = RouteScope::kUniverse;
  uint32_t priority = 0;
  // Single-hop routes use `hop`; multipath routes list their hops in `multipath` and leave `hop`
  // empty. Blackhole/unreachable/prohibit routes have no hop.
  NextHop hop;
  std::vector<NextHop> multipath;

  RouteKey Key() const;
  std::string ToString() const;  // "10.65.0.3/32 dev cali1 scope link proto 3 table 254"
  bool operator==(const Route&) const = default;

  // The host route to a workload: `dst` on-link via `ifname` (felixd's per-endpoint route).
  static Route Local(std::string_view dst, std::string_view ifname);
  // Traffic to an unassigned part of a local block is dropped here, not forwarded to the default.
  static Route Blackhole(std::string_view dst);
  // `dst` via `gateway` on `ifname`, optionally on-link (the pod's 169.254.1.1 default).
  static Route Via(std::string_view dst, std::string_view gateway, std::string_view ifname,
                   bool onlink = false);
};

// ListRoutes returns only routes matching every set field; a driver lists just what it owns.
struct RouteFilter {
  uint32_t table = kMainTable;
  uint8_t protocol = kProtoUnspec;  // unspec: any
  int family = 0;                   // 0: both, else 4 or 6
};

// ---- The seam ------------------------------------------------------------------------------

// All calls act on the namespace the implementation was opened in. Not thread-safe: felixd's
// single event-loop thread is the only caller.
class Netlink {
 public:
  virtual ~Netlink() = default;

  // Links.
  virtual absl::StatusOr<std::vector<Link>> ListLinks() = 0;
  virtual absl::StatusOr<Link> GetLink(std::string_view name) = 0;  // NotFound if absent
  virtual absl::Status CreateVeth(const VethSpec& spec) = 0;        // AlreadyExists if name taken
  // An IP-in-IP device (kind "ipip"), e.g. tunl0. FailedPrecondition naming the ipip module when
  // the kernel does not know the kind (the module is missing); AlreadyExists if name taken.
  virtual absl::Status CreateIpipTunnel(std::string_view name) = 0;
  virtual absl::Status DeleteLink(std::string_view name) = 0;       // already gone = success
  virtual absl::Status SetLinkUp(std::string_view name, bool up) = 0;
  virtual absl::Status SetLinkMtu(std::string_view name, int mtu) = 0;
  virtual absl::Status SetLinkMac(std::string_view name, const MacAddress& mac) = 0;
  virtual absl::Status SetLinkGroup(std::string_view name, uint32_t group) = 0;

  // A vxlan device, created down (RTM_NEWLINK, NLM_F_EXCL). AlreadyExists (EEXIST) if the name
  // is taken, and also if another vxlan device here already has this VNI and port (the kernel
  // allows one per VNI, port and local address); InvalidArgument for a bad name; ERANGE
  // (Internal) for a VNI of 2^24 or more; NotFound (ENODEV) when `parent` does not exist. Not idempotent: compare GetLink().vxlan with
  // the spec, and delete + create a wrongly configured device.
  virtual absl::Status CreateVxlan(const VxlanSpec& spec) = 0;

  // Addresses. Replace semantics: adding an address already present succeeds.
  virtual absl::StatusOr<std::vector<Address>> ListAddresses(int ifindex) = 0;
  virtual absl::Status ReplaceAddress(const Address& address) = 0;
  virtual absl::Status DeleteAddress(const Address& address) = 0;  // already gone = success

  // Neighbours (ARP and NDP together). ListNeighbors returns the device's entries of both
  // families as the kernel has them (0: every device), permanent or not, including those it
  // makes itself (on an up vxlan or veth: NUD_NOARP ff02::… → 33:33:… entries, permanent =
  // false); entries without a link-layer address (incomplete, failed) are skipped. A device
  // that does not exist has none. Setting a device down flushes all its neighbours, permanent
  // ones too (both families): re-apply after bringing it up.
  virtual absl::StatusOr<std::vector<Neighbor>> ListNeighbors(int ifindex) = 0;
  // RTM_NEWNEIGH NLM_F_CREATE|NLM_F_REPLACE: idempotent, and a new MAC for the IP replaces the
  // old one. NotFound (ENODEV) when the device does not exist; works on a down device.
  virtual absl::Status ReplaceNeighbor(const Neighbor& neighbor) = 0;
  // RTM_DELNEIGH of (device, ip), whatever its MAC. Already gone (ENOENT) or the device gone
  // (ENODEV) = success.
  virtual absl::Status DeleteNeighbor(const Neighbor& neighbor) = 0;

  // FDB. ListFdb returns the device's AF_BRIDGE entries as the kernel has them (0: every
  // device): a vxlan device without remote/group (VxlanSpec never sets one) starts with none; a
  // vxlan with a remote has 00:00:00:00:00:00 → remote; a device without an FDB of its own
  // (veth) lists its unicast and multicast addresses (33:33:00:00:00:01, 01:00:5e:00:00:01)
  // without dst. Entries survive the device going down (permanent ones).
  virtual absl::StatusOr<std::vector<FdbEntry>> ListFdb(int ifindex) = 0;
  // RTM_NEWNEIGH AF_BRIDGE NTF_SELF NUD_PERMANENT NLM_F_CREATE|NLM_F_APPEND, NDA_DST = dst:
  // `bridge fdb append`. Idempotent for the same entry. Kernel trap: for a unicast MAC that
  // already has an entry, append with another dst succeeds and changes nothing (only the
  // all-zero and multicast MACs take several dsts) — use ReplaceFdb to move a MAC to a new
  // node IP. NotFound (ENODEV) for a missing device; InvalidArgument without a dst;
  // EAFNOSUPPORT (Internal) for a dst of the other family than the vxlan device's. On a device
  // without an FDB of its own (veth) the kernel adds the MAC to its address list, without dst.
  virtual absl::Status AppendFdb(const FdbEntry& entry) = 0;
  // As AppendFdb with NLM_F_CREATE|NLM_F_REPLACE (`bridge fdb replace`): a unicast MAC's single
  // dst becomes `dst`. The all-zero and multicast MACs cannot be replaced (EOPNOTSUPP).
  virtual absl::Status ReplaceFdb(const FdbEntry& entry) = 0;
  // RTM_DELNEIGH AF_BRIDGE NTF_SELF of (mac, dst): removes that dst of the MAC (the entry with
  // its last one; without dst, the whole entry). No entry for the MAC (ENOENT), a dst the entry does not have (the kernel
  // answers 0 and keeps it), or the device gone (ENODEV) = success.
  virtual absl::Status DeleteFdb(const FdbEntry& entry) = 0;

  // Routes.
  virtual absl::StatusOr<std::vector<Route>> ListRoutes(const RouteFilter& filter) = 0;
  virtual absl::Status ReplaceRoute(const Route& route) = 0;  // NLM_F_REPLACE: idempotent
  // Deletes the route at `key` only if its protocol is `protocol` (kProtoUnspec: any), as the
  // kernel's RTM_DELROUTE does, so a driver never removes a route another owner put there.
  // Already gone (or owned by another protocol) counts as success.
  virtual absl::Status DeleteRoute(const RouteKey& key, uint8_t protocol) = 0;
  // Many routes at once, for tables of BGP size: result i is what ReplaceRoute(routes[i]) /
  // DeleteRoute(keys[i], protocol) would have returned, in that order. The real kernel gets
  // them packed many to a sendmsg with only failures answered, instead of one round trip per
  // route. The defaults call the single-route methods.
  virtual std::vector<absl::Status> ReplaceRoutes(std::span<const Route> routes);
  virtual std::vector<absl::Status> DeleteRoutes(std::span<const RouteKey> keys, uint8_t protocol);

  // Sysctls, as paths under /proc/sys ("net/ipv4/conf/cali1/proxy_arp"). Per-interface settings
  // live here because they exist exactly as long as the link and follow its namespace.
  virtual absl::StatusOr<std::string> ReadSysctl(std::string_view path) = 0;
  virtual absl::Status WriteSysctl(std::string_view path, std::string_view value) = 0;
};

}  // namespace calico::kernel
