#include "felixd/service/node_registration.h"

#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "common/resources/client/client.h"
#include "common/resources/resource.h"

namespace calico::felixd {
namespace {

// Devices whose addresses are never the node's: Calico's own, containers', loopback.
bool Excluded(const kernel::Link& l) {
  static const char* kPrefixes[] = {"cali", "tunl", "vxlan", "flannel", "cni", "docker", "veth",
                                    "virbr", "br-", "kube-ipvs", "wireguard", "lo"};
  if (l.kind == kernel::LinkKind::kLoopback) return true;
  for (const char* p : kPrefixes) {
    if (absl::StartsWith(l.name, p)) return true;
  }
  return false;
}

bool Global(const net::IpAddress& ip) {
  if (ip.family == 4) return ip.bytes[0] != 127 && !(ip.bytes[0] == 169 && ip.bytes[1] == 254);
  return !(ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80) && !(ip == *net::ParseIp("::1"));
}

}  // namespace

absl::StatusOr<net::Prefix> DetectNodeAddress(kernel::Netlink& host, int family, const std::string& method) {
  ASSIGN_OR_RETURN(std::vector<kernel::Link> links, host.ListLinks());
  ASSIGN_OR_RETURN(std::vector<kernel::Address> addresses, host.ListAddresses(0));
  auto link_of = [&](int index) -> const kernel::Link* {
    for (const kernel::Link& l : links) {
      if (l.index == index) return &l;
    }
    return nullptr;
  };
  std::function<bool(const kernel::Address&, const kernel::Link&)> pick;
  std::string looked_at;
  if (method == "default-route") {
    ASSIGN_OR_RETURN(std::vector<kernel::Route> routes,
                     host.ListRoutes({.table = kernel::kMainTable, .family = family}));
    int index = 0;
    for (const kernel::Route& r : routes) {
      if (r.dst.len == 0 && r.hop.ifindex != 0) index = r.hop.ifindex;
    }
    if (index == 0) return DetectNodeAddress(host, family, "first-found");  // no default route
    looked_at = absl::StrCat("the default route's device #", index);
    pick = [index](const kernel::Address& a, const kernel::Link&) { return a.ifindex == index; };
  } else if (method == "first-found") {
    looked_at = "every device but Calico's, containers' and loopback";
    pick = [](const kernel::Address&, const kernel::Link& l) { return !Excluded(l); };
  } else if (absl::StartsWith(method, "interface=")) {
    std::regex re;
    try {
      re = std::regex(method.substr(10));
    } catch (const std::regex_error& e) {
      return absl::InvalidArgumentError(absl::StrCat("--ip_autodetection_method=", method, ": ", e.what()));
    }
    looked_at = absl::StrCat("devices matching ", method.substr(10));
    pick = [re](const kernel::Address&, const kernel::Link& l) { return std::regex_match(l.name, re); };
  } else if (absl::StartsWith(method, "cidr=")) {
    std::optional<net::Prefix> cidr = net::ParsePrefix(method.substr(5));
    if (!cidr) return absl::InvalidArgumentError(absl::StrCat("--ip_autodetection_method=", method, ": not a CIDR"));
    looked_at = absl::StrCat("addresses in ", method.substr(5));
    pick = [c = *cidr](const kernel::Address& a, const kernel::Link&) { return net::Contains(c, a.prefix.addr); };
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--ip_autodetection_method=", method,
        ": expected default-route, first-found, interface=REGEX or cidr=CIDR"));
  }
  for (const kernel::Address& a : addresses) {
    const kernel::Link* l = link_of(a.ifindex);
    if (l == nullptr || a.prefix.addr.family != family || !Global(a.prefix.addr)) continue;
    if (pick(a, *l)) return a.prefix;
  }
  return absl::NotFoundError(absl::StrCat("no global IPv", family, " address on ", looked_at));
}

absl::StatusOr<RegistrationResult> RegisterNode(datastore::Datastore& store, kernel::Netlink& host,
                                                const NodeRegistration& options) {
  // What each family should be: nullopt = leave as is.
  auto wanted = [&](const std::string& setting, int family,
                    bool have) -> absl::StatusOr<std::optional<std::string>> {
    if (setting == "none") return std::nullopt;
    if (setting == "autodetect") {
      if (have) return std::nullopt;  // keep what is there
      absl::StatusOr<net::Prefix> found = DetectNodeAddress(host, family, options.method);
      if (!found.ok()) {
        // Without a v4 address the node cannot peer or tunnel: say so; v6 is optional.
        if (family == 6) return std::nullopt;
        return found.status();
      }
      return net::FormatCidr(*found);
    }
    std::optional<net::Prefix> p = net::ParsePrefix(setting);
    if (!p || p->addr.family != family) {
      return absl::InvalidArgumentError(absl::StrCat("--ip", family == 6 ? "6" : "", "=", setting,
                                                     ": expected autodetect, none or an IPv", family,
                                                     " address with its prefix length"));
    }
    return net::FormatCidr(*p);
  };
  resources::Client client(store);
  const resources::KindInfo& kind = *resources::FindKind("Node");
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<resources::Resource> got = client.Get(kind, "", options.node);
    const bool exists = got.ok();
    if (!exists && !absl::IsNotFound(got.status())) return got.status();
    resources::Json object = exists ? got->object
                                    : resources::Json{{"apiVersion", "projectcalico.org/v3"},
                                                      {"kind", "Node"},
                                                      {"metadata", {{"name", options.node}}},
                                                      {"spec", resources::Json::object()}};
    resources::Json& spec = object["spec"];
    resources::Json bgp = spec.contains("bgp") && spec["bgp"].is_object() ? spec["bgp"] : resources::Json::object();
    const std::string v4 = bgp.value("ipv4Address", "");
    const std::string v6 = bgp.value("ipv6Address", "");
    ASSIGN_OR_RETURN(std::optional<std::string> want4, wanted(options.ip, 4, !v4.empty()));
    ASSIGN_OR_RETURN(std::optional<std::string> want6, wanted(options.ip6, 6, !v6.empty()));
    bool change = !exists;
    if (want4 && *want4 != v4) bgp["ipv4Address"] = *want4, change = true;
    if (want6 && *want6 != v6) bgp["ipv6Address"] = *want6, change = true;
    RegistrationResult result{.created = !exists, .updated = exists && change,
                              .ipv4 = bgp.value("ipv4Address", ""), .ipv6 = bgp.value("ipv6Address", "")};
    if (!change) return result;
    if (!bgp.empty()) spec["bgp"] = bgp;
    ASSIGN_OR_RETURN(resources::Resource r, resources::FromObject(object));
    absl::StatusOr<resources::Resource> w = exists ? client.Replace(r) : client.Create(r);
    if (absl::IsAborted(w.status()) || absl::IsAlreadyExists(w.status())) continue;
    RETURN_IF_ERROR(Annotate(w.status(), absl::StrCat("writing Node ", options.node)));
    log::Info(exists ? "node_updated" : "node_registered",
              {{"node", options.node}, {"ipv4Address", result.ipv4}, {"ipv6Address", result.ipv6}});
    return result;
  }
  return absl::AbortedError(absl::StrCat("Node ", options.node, " kept changing while registering it"));
}

}  // namespace calico::felixd
