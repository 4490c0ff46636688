#include "ipamd/service/tunnel_address.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "common/resources/client/client.h"
#include "common/resources/selector/selector.h"

namespace calico::ipamd::service {
namespace {

using resources::Json;

struct VxlanPool {
  std::string name;
  net::Prefix cidr;
};

// Enabled pools of the family with VXLAN that allow tunnel addresses and select the node.
absl::StatusOr<std::vector<VxlanPool>> VxlanPoolsFor(resources::Client& client,
                                                     const resources::Resource& node, int family,
                                                     bool ignore_selector) {
  ASSIGN_OR_RETURN(std::vector<resources::Resource> pools,
                   client.List(*resources::FindKind("IPPool")));
  resources::Labels labels;
  if (node.object.contains("metadata") && node.object["metadata"].contains("labels")) {
    for (const auto& [k, v] : node.object["metadata"]["labels"].items()) {
      if (v.is_string()) labels[k] = v.get<std::string>();
    }
  }
  std::vector<VxlanPool> out;
  for (const resources::Resource& pool : pools) {
    const Json& spec = pool.object["spec"];
    std::optional<net::Prefix> cidr = net::ParsePrefix(spec.value("cidr", ""));
    if (!cidr || cidr->addr.family != family || spec.value("disabled", false)) continue;
    const std::string mode = spec.value("vxlanMode", "Never");
    if (mode != "Always" && mode != "CrossSubnet") continue;
    if (spec.contains("allowedUses") && spec["allowedUses"].is_array()) {
      const Json& uses = spec["allowedUses"];
      if (std::find(uses.begin(), uses.end(), "Tunnel") == uses.end()) continue;
    }
    absl::StatusOr<resources::selector::Selector> sel =
        resources::selector::Selector::Parse(spec.value("nodeSelector", "all()"));
    if (!ignore_selector && (!sel.ok() || !sel->Matches(labels))) continue;
    out.push_back({pool.Name(), *cidr});
  }
  return out;
}

}  // namespace

std::string VxlanTunnelHandle(std::string_view node, int family) {
  return (family == 6 ? "vxlan-v6-tunnel-addr-" : "vxlan-tunnel-addr-") + std::string(node);
}

absl::StatusOr<TunnelResult> EnsureVxlanTunnelAddress(Allocator& allocator, datastore::Datastore& store,
                                                      const std::string& node, int family) {
  resources::Client client(store);
  const resources::KindInfo& node_kind = *resources::FindKind("Node");
  const std::string handle = VxlanTunnelHandle(node, family);
  const char* field = family == 6 ? "ipv6VXLANTunnelAddr" : "ipv4VXLANTunnelAddr";
  // Node writes race felixd's (it publishes the VTEP MAC): compare-and-swap, re-read on conflict.
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<resources::Resource> got = client.Get(node_kind, "", node);
    if (absl::IsNotFound(got.status())) {
      // Standalone set-ups without Node resources are fine as long as nothing needs VXLAN.
      resources::Resource bare;
      bare.object = Json::object();
      ASSIGN_OR_RETURN(std::vector<VxlanPool> any,
                       VxlanPoolsFor(client, bare, family, /*ignore_selector=*/true));
      if (any.empty()) return TunnelResult{};
      return absl::NotFoundError(absl::StrCat(
          "IPPool ", any.front().name, " uses VXLAN but there is no Node resource named ", node,
          " to hold this node's tunnel address: create it (felixd registers it at start)"));
    }
    RETURN_IF_ERROR(got.status());
    resources::Resource current = std::move(*got);
    ASSIGN_OR_RETURN(std::vector<VxlanPool> pools, VxlanPoolsFor(client, current, family, false));
    Json& spec = current.object["spec"];
    const std::string have = spec.is_object() ? spec.value(field, "") : "";
    std::optional<net::IpAddress> have_ip = net::ParseIp(have);

    if (pools.empty()) {
      if (have.empty()) {
        // A handle left by a crash between release and write still gets freed.
        ASSIGN_OR_RETURN(std::vector<net::IpAddress> freed, allocator.ReleaseByHandle(handle));
        return TunnelResult{.address = "", .changed = !freed.empty()};
      }
      spec.erase(field);
      absl::StatusOr<resources::Resource> w = client.Replace(current);
      if (absl::IsAborted(w.status())) continue;
      RETURN_IF_ERROR(w.status());
      RETURN_IF_ERROR(allocator.ReleaseByHandle(handle).status());
      log::Info("vxlan_tunnel_address_released", {{"node", node}, {"address", have}});
      return TunnelResult{.address = "", .changed = true};
    }

    // Keep the current address while its handle holds it and a VXLAN pool still contains it.
    absl::StatusOr<std::vector<net::IpAddress>> held = allocator.GetHandle(handle);
    if (!held.ok() && !absl::IsNotFound(held.status())) return held.status();
    const bool holds = held.ok() && have_ip &&
                       std::find(held->begin(), held->end(), *have_ip) != held->end();
    const bool in_pool = have_ip && std::any_of(pools.begin(), pools.end(), [&](const VxlanPool& p) {
                           return net::Contains(p.cidr, *have_ip);
                         });
    if (holds && in_pool && held->size() == 1) return TunnelResult{.address = have, .changed = false};

    RETURN_IF_ERROR(allocator.ReleaseByHandle(handle).status());
    AutoAssignRequest req;
    req.handle_id = handle;
    (family == 6 ? req.num_v6 : req.num_v4) = 1;
    for (const VxlanPool& p : pools) (family == 6 ? req.v6_pools : req.v4_pools).push_back(p.name);
    req.attributes = {{"node", node}, {"type", family == 6 ? "vxlanV6TunnelAddress" : "vxlanTunnelAddress"}};
    req.node = node;
    req.use = Use::kTunnel;
    ASSIGN_OR_RETURN(AutoAssignResult assigned, allocator.AutoAssign(req));
    const std::vector<Assigned>& got_addrs = family == 6 ? assigned.v6 : assigned.v4;
    if (got_addrs.empty()) return absl::InternalError("AutoAssign returned no address");
    const std::string address = net::FormatIp(got_addrs.front().ip);
    spec[field] = address;
    absl::StatusOr<resources::Resource> w = client.Replace(current);
    if (!w.ok()) {
      // Not recorded on the Node: nobody would know it is in use.
      (void)allocator.ReleaseByHandle(handle);
      if (absl::IsAborted(w.status())) continue;
      return Annotate(w.status(), absl::StrCat("writing ", field, " ", address, " to Node ", node));
    }
    log::Info("vxlan_tunnel_address_assigned",
              {{"node", node}, {"address", address}, {"was", have}, {"how", got_addrs.front().how}});
    return TunnelResult{.address = address, .changed = true};
  }
  return absl::AbortedError(absl::StrCat("Node ", node, " kept changing while writing its VXLAN tunnel address"));
}

}  // namespace calico::ipamd::service
