#include "felixd/policy/match.h"

#include <algorithm>

namespace calico::felixd::policy {

std::string EntityView::Id() const { return endpoint ? endpoint->Id() : network_set->Id(); }

EntityView ViewOf(const Model& model, const Endpoint& endpoint) {
  EntityView v;
  v.endpoint = &endpoint;
  v.ns = endpoint.ns;
  v.labels = model.EffectiveLabels(endpoint);
  if (!endpoint.host) v.namespace_labels = model.NamespaceLabels(endpoint.ns);
  if (!endpoint.service_account.empty()) {
    v.sa_labels = model.ServiceAccountLabels(endpoint.ns, endpoint.service_account);
  }
  return v;
}

EntityView ViewOf(const Model& model, const NetworkSet& set) {
  EntityView v;
  v.network_set = &set;
  v.ns = set.ns;
  v.labels = set.labels;
  if (!set.ns.empty()) v.namespace_labels = model.NamespaceLabels(set.ns);
  return v;
}

const std::vector<net::Prefix>& AddressesOf(const EntityView& entity) {
  return entity.endpoint ? entity.endpoint->ips : entity.network_set->nets;
}

std::vector<EntityView> EntitiesAt(const Model& model, const net::IpAddress& ip) {
  std::vector<EntityView> out;
  auto contains = [&](const std::vector<net::Prefix>& prefixes) {
    return std::any_of(prefixes.begin(), prefixes.end(),
                       [&](const net::Prefix& p) { return net::Contains(p, ip); });
  };
  for (const auto& [_, e] : model.endpoints()) {
    if (contains(e.ips)) out.push_back(ViewOf(model, e));
  }
  for (const auto& [_, s] : model.network_sets()) {
    if (contains(s.nets)) out.push_back(ViewOf(model, s));
  }
  return out;
}

bool Matches(const EntitySelector& sel, const EntityView& e) {
  switch (sel.scope) {
    case Scope::kAll: break;
    case Scope::kNamespace:
      if (e.ns != sel.ns) return false;
      break;
    case Scope::kNamespaceSelector:
      if (e.ns.empty()) return false;
      if (sel.namespace_selector && !sel.namespace_selector->Matches(e.namespace_labels)) return false;
      break;
    case Scope::kGlobal:
      if (!e.ns.empty()) return false;
      break;
  }
  if (sel.service_accounts) {
    if (!e.endpoint || !e.sa_labels) return false;
    const std::string& sa = e.endpoint->service_account;
    if (!sel.sa_names.empty() && std::find(sel.sa_names.begin(), sel.sa_names.end(), sa) == sel.sa_names.end()) {
      return false;
    }
    if (sel.sa_selector && !sel.sa_selector->Matches(*e.sa_labels)) return false;
  }
  return !sel.selector || sel.selector->Matches(e.labels);
}

std::vector<int> ResolveNamedPort(const Endpoint& endpoint, const std::string& name, int protocol) {
  std::vector<int> out;
  for (const NamedPort& p : endpoint.ports) {
    if (p.name == name && p.protocol == protocol) out.push_back(p.port);
  }
  return out;
}

std::string Packet::ToString() const {
  std::string proto;
  switch (protocol) {
    case kProtoTcp: proto = "TCP"; break;
    case kProtoUdp: proto = "UDP"; break;
    case kProtoSctp: proto = "SCTP"; break;
    case kProtoIcmp: proto = "ICMP"; break;
    case kProtoIcmpV6: proto = "ICMPv6"; break;
    default: proto = "proto " + std::to_string(protocol);
  }
  bool ports = protocol == kProtoTcp || protocol == kProtoUdp || protocol == kProtoSctp;
  std::string out = proto + " " + net::FormatIp(src);
  if (ports && src_port) out += ":" + std::to_string(src_port);
  out += " -> " + net::FormatIp(dst);
  if (ports) out += ":" + std::to_string(dst_port);
  if (icmp_type) {
    out += " type " + std::to_string(*icmp_type);
    if (icmp_code) out += " code " + std::to_string(*icmp_code);
  }
  return out;
}

PacketContext ContextFor(const Model& model, const Packet& packet) {
  PacketContext ctx;
  ctx.packet = packet;
  ctx.src_entities = EntitiesAt(model, packet.src);
  ctx.dst_entities = EntitiesAt(model, packet.dst);
  ctx.src_endpoint = model.EndpointByIp(packet.src);
  ctx.dst_endpoint = model.EndpointByIp(packet.dst);
  ctx.src_host = model.HostEndpointByIp(packet.src);
  ctx.dst_host = model.HostEndpointByIp(packet.dst);
  return ctx;
}

namespace {

bool HasPorts(int protocol) {
  return protocol == kProtoTcp || protocol == kProtoUdp || protocol == kProtoSctp || protocol == kProtoUdpLite;
}

// Named ports resolve on the endpoint that owns the address (upstream programs an IP set of
// (address, protocol, port) of the endpoints having the name).
bool PortMatches(const Ports& ports, int port, int protocol, const Endpoint* owner) {
  for (const PortRange& r : ports.ranges) {
    if (port >= r.first && port <= r.last) return true;
  }
  if (!owner) return false;
  for (const std::string& name : ports.names) {
    std::vector<int> resolved = ResolveNamedPort(*owner, name, protocol);
    if (std::find(resolved.begin(), resolved.end(), port) != resolved.end()) return true;
  }
  return false;
}

bool InAny(const std::vector<net::Prefix>& nets, const net::IpAddress& ip) {
  return std::any_of(nets.begin(), nets.end(), [&](const net::Prefix& p) { return net::Contains(p, ip); });
}

bool SideMatches(const RuleSide& side, const net::IpAddress& ip, int port, int protocol,
                 const std::vector<EntityView>& entities, const Endpoint* owner) {
  if (!side.nets.empty() && !InAny(side.nets, ip)) return false;
  if (InAny(side.not_nets, ip)) return false;
  if (side.selector) {
    bool any = std::any_of(entities.begin(), entities.end(),
                           [&](const EntityView& e) { return Matches(*side.selector, e); });
    if (!any) return false;
  }
  if (side.not_selector) {
    bool any = std::any_of(entities.begin(), entities.end(),
                           [&](const EntityView& e) { return side.not_selector->Matches(e.labels); });
    if (any) return false;
  }
  if (!side.ports.empty()) {
    if (!HasPorts(protocol) || !PortMatches(side.ports, port, protocol, owner)) return false;
  }
  if (!side.not_ports.empty()) {
    if (!HasPorts(protocol) || PortMatches(side.not_ports, port, protocol, owner)) return false;
  }
  return true;
}

bool IcmpMatches(const Icmp& icmp, const Packet& p) {
  if (p.protocol != kProtoIcmp && p.protocol != kProtoIcmpV6) return false;
  if (!p.icmp_type || *p.icmp_type != icmp.type) return false;
  return !icmp.code || (p.icmp_code && *p.icmp_code == *icmp.code);
}

}  // namespace

bool RuleMatches(const Rule& rule, const PacketContext& ctx) {
  const Packet& p = ctx.packet;
  if (!rule.unsupported.empty()) return false;
  if (rule.ip_version && *rule.ip_version != p.src.family) return false;
  if (rule.protocol && *rule.protocol != p.protocol) return false;
  if (rule.not_protocol && *rule.not_protocol == p.protocol) return false;
  if (rule.icmp && !IcmpMatches(*rule.icmp, p)) return false;
  if (rule.not_icmp && IcmpMatches(*rule.not_icmp, p)) return false;
  // Named ports resolve on the workload at the address, else the host endpoint listing it.
  const Endpoint* src = ctx.src_endpoint ? ctx.src_endpoint : ctx.src_host;
  const Endpoint* dst = ctx.dst_endpoint ? ctx.dst_endpoint : ctx.dst_host;
  return SideMatches(rule.source, p.src, p.src_port, p.protocol, ctx.src_entities, src) &&
         SideMatches(rule.destination, p.dst, p.dst_port, p.protocol, ctx.dst_entities, dst);
}

}  // namespace calico::felixd::policy
