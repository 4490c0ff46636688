#include "felixd/dataplane/plumber.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"

namespace calico::felixd {
namespace {

bool HasFamily(const std::vector<net::Prefix>& ips, int family) {
  return std::any_of(ips.begin(), ips.end(),
                     [family](const net::Prefix& p) { return p.addr.family == family; });
}

kernel::Route PodRoute(std::string_view dst, std::string_view gateway, std::string_view ifname,
                       int family) {
  kernel::Route r = gateway.empty() ? kernel::Route::Local(dst, ifname)
                                    : kernel::Route::Via(dst, gateway, ifname);
  r.protocol = kernel::kProtoBoot;
  if (family == 6) r.priority = kernel::kIpv6DefaultMetric;
  return r;
}

// The routes inside the workload: the gateway on-link, then the default via it. IPv6 needs no
// on-link route: fe80::/64 is on every link.
std::vector<kernel::Route> PodRoutes(const PlumbSpec& spec) {
  std::vector<kernel::Route> routes;
  if (HasFamily(spec.ips, 4)) {
    routes.push_back(PodRoute(absl::StrCat(kIpv4Gateway, "/32"), "", spec.ifname, 4));
    routes.push_back(PodRoute("0.0.0.0/0", kIpv4Gateway, spec.ifname, 4));
  }
  if (HasFamily(spec.ips, 6)) routes.push_back(PodRoute("::/0", kIpv6Gateway, spec.ifname, 6));
  return routes;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> HostSideSysctls(std::string_view name,
                                                                  bool ipv4, bool ipv6) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string ifname(name);
  if (ipv4) {
    std::string base = absl::StrCat("net/ipv4/conf/", ifname, "/");
    // Answer ARP for the gateway 169.254.1.1 (and anything routed) at once, with our MAC.
    out.push_back({base + "proxy_arp", "1"});
    out.push_back({absl::StrCat("net/ipv4/neigh/", ifname, "/proxy_delay"), "0"});
    out.push_back({base + "forwarding", "1"});
    out.push_back({base + "route_localnet", "1"});
  }
  if (ipv6) {
    std::string base = absl::StrCat("net/ipv6/conf/", ifname, "/");
    out.push_back({base + "accept_ra", "0"});
    // The link-local gateway must answer before DAD would have finished (~1-2 s).
    out.push_back({base + "accept_dad", "0"});
    out.push_back({base + "proxy_ndp", "1"});
    out.push_back({base + "forwarding", "1"});
  }
  return out;
}

absl::StatusOr<PlumbResult> Plumber::Plumb(const PlumbSpec& spec) {
  if (spec.netns.empty()) return absl::InvalidArgumentError("no network namespace given");
  ASSIGN_OR_RETURN(std::unique_ptr<kernel::Netlink> host, open_({}));
  kernel::NetnsRef netns{.path = spec.netns};
  absl::StatusOr<std::unique_ptr<kernel::Netlink>> opened = open_(netns);
  if (!opened.ok()) {
    return Annotate(opened.status(), absl::StrCat("network namespace ", spec.netns));
  }
  std::unique_ptr<kernel::Netlink> pod = std::move(*opened);

  // A host veth of this name is a leftover of the workload's previous sandbox (names derive
  // from namespace/pod): the runtime would not ask for a new one while that one lives.
  if (host->GetLink(spec.host_ifname).ok()) {
    RETURN_IF_ERROR(Annotate(host->DeleteLink(spec.host_ifname), "removing stale host veth"));
  }
  kernel::VethSpec veth{.name = spec.host_ifname,
                        .peer_name = spec.ifname,
                        .peer_netns = netns,
                        .mtu = spec.mtu,
                        .mac = kHostSideMac,
                        .peer_mac = std::nullopt,
                        .index = 0,
                        .peer_index = 0};
  RETURN_IF_ERROR(Annotate(host->CreateVeth(veth), absl::StrCat("creating veth ", spec.host_ifname,
                                                                " (peer ", spec.ifname, ")")));
  PlumbResult result;
  absl::Status status = [&]() -> absl::Status {
    bool v4 = HasFamily(spec.ips, 4), v6 = HasFamily(spec.ips, 6);
    for (const auto& [path, value] : HostSideSysctls(spec.host_ifname, v4, v6)) {
      RETURN_IF_ERROR(host->WriteSysctl(path, value));
    }
    RETURN_IF_ERROR(host->SetLinkUp(spec.host_ifname, true));
    ASSIGN_OR_RETURN(kernel::Link link, host->GetLink(spec.host_ifname));
    result.host_ifindex = link.index;
    return ConfigureWorkloadSide(*pod, spec, result);
  }();
  if (!status.ok()) {
    // Roll back: the peer (and its addresses and routes) disappears with the host side.
    (void)host->DeleteLink(spec.host_ifname);
    return status;
  }
  return result;
}

absl::Status Plumber::ConfigureWorkloadSide(kernel::Netlink& pod, const PlumbSpec& spec,
                                            PlumbResult& result) {
  RETURN_IF_ERROR(Annotate(pod.SetLinkUp("lo", true), "workload side"));
  if (HasFamily(spec.ips, 6)) {
    RETURN_IF_ERROR(pod.WriteSysctl(absl::StrCat("net/ipv6/conf/", spec.ifname, "/accept_dad"), "0"));
  }
  RETURN_IF_ERROR(Annotate(pod.SetLinkUp(spec.ifname, true), "workload side"));
  ASSIGN_OR_RETURN(kernel::Link link, pod.GetLink(spec.ifname));
  if (link.mac) result.container_mac = kernel::FormatMac(*link.mac);
  for (const net::Prefix& ip : spec.ips) {
    RETURN_IF_ERROR(Annotate(
        pod.ReplaceAddress({.prefix = ip, .ifindex = link.index, .nodad = ip.addr.family == 6}),
        "workload side"));
  }
  for (kernel::Route route : PodRoutes(spec)) {
    route.hop.ifindex = link.index;
    RETURN_IF_ERROR(Annotate(pod.ReplaceRoute(route), "workload side"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Plumber::Unplumb(std::string_view host_ifname) {
  ASSIGN_OR_RETURN(std::unique_ptr<kernel::Netlink> host, open_({}));
  if (!host->GetLink(host_ifname).ok()) return false;
  RETURN_IF_ERROR(host->DeleteLink(host_ifname));
  return true;
}

absl::StatusOr<std::vector<std::string>> Plumber::Check(const PlumbSpec& spec) {
  std::vector<std::string> problems;
  ASSIGN_OR_RETURN(std::unique_ptr<kernel::Netlink> host, open_({}));
  absl::StatusOr<kernel::Link> host_link = host->GetLink(spec.host_ifname);
  if (!host_link.ok()) {
    problems.push_back(absl::StrCat("host interface ", spec.host_ifname, " is missing"));
  } else if (!host_link->up) {
    problems.push_back(absl::StrCat("host interface ", spec.host_ifname, " is down"));
  }
  if (host_link.ok()) {
    bool v4 = HasFamily(spec.ips, 4), v6 = HasFamily(spec.ips, 6);
    for (const auto& [path, value] : HostSideSysctls(spec.host_ifname, v4, v6)) {
      absl::StatusOr<std::string> got = host->ReadSysctl(path);
      if (got.ok() && *got != value) {
        problems.push_back(absl::StrCat("sysctl ", path, " is ", *got, ", want ", value));
      }
    }
  }
  if (spec.netns.empty()) return problems;
  absl::StatusOr<std::unique_ptr<kernel::Netlink>> pod = open_({.path = spec.netns});
  if (!pod.ok()) {
    problems.push_back(absl::StrCat("network namespace ", spec.netns, ": ", pod.status().message()));
    return problems;
  }
  absl::StatusOr<kernel::Link> link = (*pod)->GetLink(spec.ifname);
  if (!link.ok()) {
    problems.push_back(absl::StrCat("interface ", spec.ifname, " is missing in ", spec.netns));
    return problems;
  }
  if (!link->up) problems.push_back(absl::StrCat("interface ", spec.ifname, " is down"));
  ASSIGN_OR_RETURN(std::vector<kernel::Address> addresses, (*pod)->ListAddresses(link->index));
  for (const net::Prefix& ip : spec.ips) {
    bool found = std::any_of(addresses.begin(), addresses.end(),
                             [&](const kernel::Address& a) { return a.prefix == ip; });
    if (!found) {
      problems.push_back(absl::StrCat("address ", ip.ToString(), " is missing on ", spec.ifname));
    }
  }
  for (int family : {4, 6}) {
    if (!HasFamily(spec.ips, family)) continue;
    ASSIGN_OR_RETURN(std::vector<kernel::Route> routes,
                     (*pod)->ListRoutes({.table = kernel::kMainTable, .family = family}));
    for (const kernel::Route& want : PodRoutes(spec)) {
      if (want.dst.addr.family != family) continue;
      bool found = std::any_of(routes.begin(), routes.end(), [&](const kernel::Route& r) {
        return r.dst == want.dst && r.hop.ifindex == link->index &&
               r.hop.gateway == want.hop.gateway;
      });
      if (!found) {
        problems.push_back(absl::StrCat("route ", want.ToString(), " is missing in ", spec.netns));
      }
    }
  }
  return problems;
}

}  // namespace calico::felixd
