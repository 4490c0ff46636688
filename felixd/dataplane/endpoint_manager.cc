#include "felixd/dataplane/endpoint_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "felixd/dataplane/plumber.h"

namespace calico::felixd {
namespace {

constexpr char kBlocksOwner[] = "~blocks";  // sorts after every interface name
constexpr char kRemoteOwner[] = "~remote";

kernel::Route EndpointRoute(const net::Prefix& ip, const std::string& ifname) {
  kernel::Route r;
  r.dst = ip;
  r.scope = kernel::RouteScope::kLink;
  r.hop.ifname = ifname;
  if (ip.addr.family == 6) r.priority = kernel::kIpv6DefaultMetric;
  return r;
}

}  // namespace

EndpointManager::EndpointManager(kernel::Netlink& host, uint8_t route_protocol)
    : host_(host), routes_(host, route_protocol, kernel::kMainTable) {}

void EndpointManager::SetRoutesFor(const LocalEndpoint& endpoint) {
  std::vector<kernel::Route> routes;
  for (const net::Prefix& ip : endpoint.ips) routes.push_back(EndpointRoute(ip, endpoint.host_ifname));
  routes_.SetDesired(endpoint.name, std::move(routes));
}

void EndpointManager::SetEndpoint(LocalEndpoint endpoint) {
  SetRoutesFor(endpoint);
  endpoints_[endpoint.name] = std::move(endpoint);
}

void EndpointManager::RemoveEndpoint(const std::string& name) {
  routes_.Remove(name);
  endpoints_.erase(name);
}

void EndpointManager::ReplaceEndpoints(std::vector<LocalEndpoint> endpoints) {
  std::set<std::string> keep;
  for (const LocalEndpoint& e : endpoints) keep.insert(e.name);
  std::vector<std::string> gone;
  for (const auto& [name, e] : endpoints_) {
    if (!keep.count(name)) gone.push_back(name);
  }
  for (const std::string& name : gone) RemoveEndpoint(name);
  for (LocalEndpoint& e : endpoints) {
    auto it = endpoints_.find(e.name);
    if (it == endpoints_.end() || !(it->second == e)) SetEndpoint(std::move(e));
  }
}

void EndpointManager::SetAffineBlocks(std::vector<net::Prefix> blocks) {
  std::sort(blocks.begin(), blocks.end());
  if (blocks == blocks_) return;
  blocks_ = std::move(blocks);
  std::vector<kernel::Route> routes;
  for (const net::Prefix& b : blocks_) {
    kernel::Route r;
    r.dst = b;
    r.type = kernel::RouteType::kBlackhole;
    if (b.addr.family == 6) r.priority = kernel::kIpv6DefaultMetric;
    routes.push_back(r);
  }
  routes_.SetDesired(kBlocksOwner, std::move(routes));
}

void EndpointManager::SetRemoteRoutes(std::vector<kernel::Route> routes) {
  remote_routes_ = routes.size();
  routes_.SetDesired(kRemoteOwner, std::move(routes));
}

absl::Status EndpointManager::Apply() { return routes_.Apply(); }

absl::Status EndpointManager::Resync() {
  ++resyncs_;
  absl::Status first = routes_.Resync();
  for (const auto& [name, e] : endpoints_) {
    bool v4 = false, v6 = false;
    for (const net::Prefix& ip : e.ips) (ip.addr.family == 4 ? v4 : v6) = true;
    for (const auto& [path, value] : HostSideSysctls(e.host_ifname, v4, v6)) {
      absl::StatusOr<std::string> got = host_.ReadSysctl(path);
      if (!got.ok()) break;  // the interface is gone: nothing to repair until it is back
      if (*got == value) continue;
      ++sysctl_repairs_;
      log::Warn("sysctl_repaired", {{"path", path}, {"was", *got}, {"value", value}});
      absl::Status s = host_.WriteSysctl(path, value);
      if (!s.ok() && first.ok()) first = s;
    }
  }
  return first;
}

const LocalEndpoint* EndpointManager::Find(const std::string& name) const {
  auto it = endpoints_.find(name);
  return it == endpoints_.end() ? nullptr : &it->second;
}

std::set<AdvertisedRoute> EndpointManager::Advertised() const {
  std::set<AdvertisedRoute> out;
  for (const net::Prefix& b : blocks_) out.insert({b, true});
  for (const auto& [name, e] : endpoints_) {
    for (const net::Prefix& ip : e.ips) {
      bool inside = std::any_of(blocks_.begin(), blocks_.end(),
                                [&](const net::Prefix& b) { return net::Contains(b, ip); });
      if (!inside) out.insert({ip, false});
    }
  }
  return out;
}

EndpointManagerStats EndpointManager::stats() const {
  size_t routes = blocks_.size() + remote_routes_;
  for (const auto& [name, e] : endpoints_) routes += e.ips.size();
  return {.resyncs = resyncs_, .sysctl_repairs = sysctl_repairs_, .routes = routes};
}

}  // namespace calico::felixd
