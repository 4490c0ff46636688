#pragma once
// birdd/kernel/fib.h — the Loc-RIB's best paths into the kernel as `proto bird` routes. Owns
// exactly the routes of its protocol in its table: Resync reads them back, adopts what it
// wants unchanged, rewrites what drifted and deletes strays (an earlier run's, hand-made ones);
// a route of another protocol is only ever replaced when we want its key (felix's and the
// operator's are otherwise never touched). BGP next hops carry no device: each is resolved from
// the host's connected prefixes; an unresolvable next hop is left out (and the route with it
// when none remains) until RefreshInterfaces() finds it.
//
// Sized for BGP tables (a million routes): one hash map entry per prefix holding what BGP wants
// and what the kernel has from us, a list of dirty prefixes, and writes in batches
// (Netlink::ReplaceRoutes), so Apply costs a sendmsg per few hundred routes rather than a round
// trip per route. Single-threaded; FibWriter runs one off the BGP thread.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string_view>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "common/kernel/netlink.h"

namespace calico::birdd::kernel_fib {

class Fib {
 public:
  explicit Fib(kernel::Netlink& netlink, uint8_t protocol = kernel::kProtoBird,
               uint32_t table = kernel::kMainTable);

  // Re-reads addresses and links (device lookup); every route's next hops are resolved again
  // by the next Apply, which writes only those that changed.
  absl::Status RefreshInterfaces();
  // The route for `dst` via `next_hops` (ECMP when several); empty removes it. No I/O.
  // With `tunnel` (IP-in-IP pools: "tunl0") every hop goes through that device, onlink, instead
  // of a connected prefix; while the device does not exist the route is withheld.
  void Set(const net::Prefix& dst, const std::vector<net::IpAddress>& next_hops, std::string_view tunnel = "") {
    SetNextHops(dst, next_hops, tunnel);
  }
  void SetNextHops(const net::Prefix& dst, std::span<const net::IpAddress> next_hops, std::string_view tunnel = "");
  // Tunnel devices that routes want but the host lacks (as of the last Apply).
  const std::set<std::string>& missing_devices() const { return missing_devices_; }
  // Writes what changed since the last Apply. A failed route stays pending for the next one;
  // the Status is the first failure, with the number of others.
  absl::Status Apply();
  // Reads this protocol's routes in this table back and applies the difference.
  absl::Status Resync();

  size_t unresolved() const { return unresolved_; }  // next hops without a device, last resolved
  size_t installed() const { return installed_; }    // routes the kernel has from us
  size_t pending() const { return dirty_.size() + strays_.size(); }

 private:
  struct Hop {  // a resolved next hop, as we write it
    net::IpAddress gateway;
    int ifindex = 0;
    bool operator==(const Hop&) const = default;
  };
  using Hops = absl::InlinedVector<Hop, 1>;
  struct Entry {
    absl::InlinedVector<net::IpAddress, 1> wanted;  // BGP's next hops; empty: not wanted
    Hops in_kernel;           // what the kernel has from us (valid when `installed`)
    bool installed = false;
    bool foreign = false;     // read back in a shape we never write: rewrite it
    bool dirty = false;
    uint8_t unresolved = 0;   // of `wanted`, at the last resolution
    uint8_t tunnel = 0;       // 1 + index into tunnels_; 0: none
  };
  struct Hasher {
    size_t operator()(const net::Prefix& p) const;
    size_t operator()(const net::IpAddress& a) const;
  };

  std::optional<Hop> Resolve(const net::IpAddress& gateway);
  void MarkDirty(const net::Prefix& dst, Entry& entry);
  kernel::Route ToRoute(const net::Prefix& dst, const Hops& hops, bool onlink) const;
  int TunnelIndex(uint8_t tunnel) const;  // the device's ifindex, 0 if absent
  kernel::RouteKey KeyOf(const net::Prefix& dst) const;

  kernel::Netlink& netlink_;
  uint8_t protocol_;
  uint32_t table_;
  std::vector<kernel::Address> addresses_;
  std::map<int, std::string> names_;  // ifindex → name
  absl::flat_hash_map<net::IpAddress, std::optional<Hop>, Hasher> resolved_;  // cache
  absl::flat_hash_map<net::Prefix, Entry, Hasher> entries_;
  std::vector<net::Prefix> dirty_;
  std::vector<kernel::RouteKey> strays_;  // ours in the kernel at keys we never use (metric)
  size_t unresolved_ = 0;
  size_t installed_ = 0;
  std::vector<std::string> tunnels_;  // device names Entry::tunnel refers to (a handful)
  std::set<std::string> missing_devices_;
};

}  // namespace calico::birdd::kernel_fib
