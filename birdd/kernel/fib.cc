#include "birdd/kernel/fib.h"

#include "common/base/status_macros.h"

namespace calico::birdd::kernel_fib {

Fib::Fib(kernel::Netlink& netlink, uint8_t protocol, uint32_t table)
    : netlink_(netlink), table_(netlink, protocol, table) {}

absl::Status Fib::RefreshInterfaces() {
  ASSIGN_OR_RETURN(addresses_, netlink_.ListAddresses(0));
  ASSIGN_OR_RETURN(std::vector<kernel::Link> links, netlink_.ListLinks());
  names_.clear();
  for (const kernel::Link& l : links) names_[l.index] = l.name;
  unresolved_ = 0;
  for (const auto& [dst, hops] : wanted_) Program(dst, hops);
  return absl::OkStatus();
}

std::optional<kernel::NextHop> Fib::Resolve(const net::IpAddress& gateway) const {
  // The most specific connected prefix containing the gateway names the device.
  const kernel::Address* best = nullptr;
  for (const kernel::Address& a : addresses_) {
    if (a.prefix.addr.family != gateway.family) continue;
    net::Prefix connected = net::Masked(a.prefix);
    if (!net::Contains(connected, gateway)) continue;
    if (best == nullptr || a.prefix.len > best->prefix.len) best = &a;
  }
  if (best == nullptr) return std::nullopt;
  kernel::NextHop hop;
  hop.ifindex = best->ifindex;
  auto name = names_.find(best->ifindex);
  if (name != names_.end()) hop.ifname = name->second;
  hop.gateway = gateway;
  return hop;
}

void Fib::Program(const net::Prefix& dst, const std::vector<net::IpAddress>& next_hops) {
  std::vector<kernel::NextHop> hops;
  for (const net::IpAddress& gw : next_hops) {
    if (std::optional<kernel::NextHop> hop = Resolve(gw)) {
      hops.push_back(*hop);
    } else {
      ++unresolved_;
    }
  }
  const std::string owner = net::FormatCidr(dst);
  if (hops.empty()) {
    table_.Remove(owner);
    return;
  }
  kernel::Route route;
  route.dst = dst;
  if (dst.addr.family == 6) route.priority = kernel::kIpv6DefaultMetric;
  if (hops.size() == 1) {
    route.hop = hops[0];
  } else {
    route.multipath = hops;
  }
  table_.SetDesired(owner, {route});
}

void Fib::Set(const net::Prefix& dst, const std::vector<net::IpAddress>& next_hops) {
  if (next_hops.empty()) {
    wanted_.erase(dst);
  } else {
    wanted_[dst] = next_hops;
  }
  Program(dst, next_hops);
}

}  // namespace calico::birdd::kernel_fib
