#pragma once
// birdd/kernel/fib.h — the Loc-RIB's best paths into the kernel as `proto bird` routes, through
// the shared reconciling RouteTable (so a restart adopts what is installed, drift is repaired,
// and felix's routes are never touched). BGP next hops carry no device: each is resolved from
// the host's connected prefixes; an unresolvable next hop is left out (and the route with it
// when none remains) until RefreshInterfaces() finds it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/kernel/netlink.h"
#include "common/kernel/route_table.h"

namespace calico::birdd::kernel_fib {

class Fib {
 public:
  explicit Fib(kernel::Netlink& netlink, uint8_t protocol = kernel::kProtoBird,
               uint32_t table = kernel::kMainTable);

  // Re-reads addresses and links (device lookup); re-resolves every route's next hops.
  absl::Status RefreshInterfaces();
  // The route for `dst` via `next_hops` (ECMP when several); empty removes it. No I/O.
  void Set(const net::Prefix& dst, const std::vector<net::IpAddress>& next_hops);
  absl::Status Apply() { return table_.Apply(); }
  absl::Status Resync() { return table_.Resync(); }
  size_t unresolved() const { return unresolved_; }

 private:
  std::optional<kernel::NextHop> Resolve(const net::IpAddress& gateway) const;
  void Program(const net::Prefix& dst, const std::vector<net::IpAddress>& next_hops);

  kernel::Netlink& netlink_;
  kernel::RouteTable table_;
  std::vector<kernel::Address> addresses_;
  std::map<int, std::string> names_;  // ifindex → name
  std::map<net::Prefix, std::vector<net::IpAddress>> wanted_;
  size_t unresolved_ = 0;
};

}  // namespace calico::birdd::kernel_fib
