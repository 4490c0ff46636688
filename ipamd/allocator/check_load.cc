#include "ipamd/allocator/check_load.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/net/ip.h"
#include "common/resources/resource.h"

namespace calico::ipamd {
namespace {

using resources::Json;

const Json* At(const Json& root, const std::vector<const char*>& path) {
  const Json* at = &root;
  for (const char* step : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(step);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

// Two users of one address are worth seeing side by side rather than one hiding the other.
void Record(InUse& in_use, const net::IpAddress& ip, const std::string& user) {
  auto [it, inserted] = in_use.ips.emplace(ip, user);
  if (!inserted) it->second += ", " + user;
}

absl::StatusOr<const resources::KindInfo*> Kind(const char* name) {
  const resources::KindInfo* kind = resources::FindKind(name);
  if (kind == nullptr)
    return absl::InternalError(absl::StrCat("resource kind ", name, " is not registered"));
  return kind;
}

}  // namespace

absl::StatusOr<InUse> LoadInUse(resources::Client& client) {
  InUse in_use;
  ASSIGN_OR_RETURN(const resources::KindInfo* node_kind, Kind("Node"));
  ASSIGN_OR_RETURN(const resources::KindInfo* wep_kind, Kind("WorkloadEndpoint"));

  absl::StatusOr<std::vector<resources::Resource>> nodes = client.List(*node_kind);
  if (!nodes.ok()) return Annotate(nodes.status(), "listing Nodes");
  struct Tunnel {
    std::vector<const char*> path;
    const char* what;
  };
  // Upstream's IPAM-allocated node addresses (handles vxlan-tunnel-addr-<node>, ...).
  const Tunnel kTunnels[] = {
      {{"spec", "ipv4VXLANTunnelAddr"}, "vxlan tunnel"},
      {{"spec", "ipv6VXLANTunnelAddr"}, "vxlan-v6 tunnel"},
      {{"spec", "bgp", "ipv4IPIPTunnelAddr"}, "ipip tunnel"},
      {{"spec", "wireguard", "interfaceIPv4Address"}, "wireguard tunnel"},
      {{"spec", "wireguard", "interfaceIPv6Address"}, "wireguard-v6 tunnel"},
  };
  for (const resources::Resource& node : *nodes) {
    in_use.nodes.insert(node.Name());
    for (const Tunnel& tunnel : kTunnels) {
      const Json* value = At(node.object, tunnel.path);
      if (value == nullptr || !value->is_string() || value->get<std::string>().empty()) continue;
      std::optional<net::IpAddress> ip = net::ParseIp(value->get<std::string>());
      if (!ip) {
        return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": ", tunnel.what,
                                                       " address \"", value->get<std::string>(),
                                                       "\" is not an IP address"));
      }
      Record(in_use, *ip, absl::StrCat("Node ", node.Name(), " (", tunnel.what, ")"));
    }
  }

  absl::StatusOr<std::vector<resources::Resource>> weps = client.List(*wep_kind);
  if (!weps.ok()) return Annotate(weps.status(), "listing WorkloadEndpoints");
  for (const resources::Resource& wep : *weps) {
    const Json* networks = At(wep.object, {"spec", "ipNetworks"});
    if (networks == nullptr || !networks->is_array()) continue;
    for (const Json& network : *networks) {
      const std::string text = network.is_string() ? network.get<std::string>() : network.dump();
      // "10.65.0.3/32" (or a bare address): the address is what is used.
      std::optional<net::Prefix> prefix = net::ParseCidrOrIp(text);
      if (!prefix) {
        return absl::InvalidArgumentError(
            absl::StrCat(wep.Describe(), ": spec.ipNetworks: \"", text, "\" is not a CIDR"));
      }
      Record(in_use, prefix->addr,
             absl::StrCat("WorkloadEndpoint ", wep.Namespace(), "/", wep.Name()));
    }
  }
  return in_use;
}

}  // namespace calico::ipamd
