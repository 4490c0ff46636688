#include "felixd/policy/model.h"

#include <algorithm>
#include <limits>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace calico::felixd::policy {

std::string_view ToString(Action action) {
  switch (action) {
    case Action::kAllow: return "Allow";
    case Action::kDeny: return "Deny";
    case Action::kPass: return "Pass";
    case Action::kLog: return "Log";
  }
  return "?";
}

std::string_view ToString(Direction direction) {
  return direction == Direction::kIngress ? "ingress" : "egress";
}

std::optional<int> ProtocolNumber(std::string_view name) {
  if (name == "TCP") return kProtoTcp;
  if (name == "UDP") return kProtoUdp;
  if (name == "ICMP") return kProtoIcmp;
  if (name == "ICMPv6") return kProtoIcmpV6;
  if (name == "SCTP") return kProtoSctp;
  if (name == "UDPLite") return kProtoUdpLite;
  return std::nullopt;
}

std::string EntitySelector::Key() const {
  std::string key = selector ? selector->String() : "all()";
  switch (scope) {
    case Scope::kAll: break;
    case Scope::kNamespace: key += " ns=" + ns; break;
    case Scope::kNamespaceSelector:
      key += " nsSelector=" + (namespace_selector ? namespace_selector->String() : "all()");
      break;
    case Scope::kGlobal: key += " global()"; break;
  }
  if (service_accounts) {
    std::vector<std::string> names = sa_names;
    std::sort(names.begin(), names.end());
    key += " sa={";
    for (size_t i = 0; i < names.size(); ++i) key += (i ? "," : "") + names[i];
    key += "}";
    if (sa_selector) key += " saSelector=" + sa_selector->String();
  }
  return key;
}

std::string Policy::Id() const { return ns.empty() ? name : ns + "/" + name; }

bool PolicyBefore(const Policy& a, const Policy& b) {
  constexpr double kLast = std::numeric_limits<double>::infinity();
  double oa = a.order.value_or(kLast), ob = b.order.value_or(kLast);
  if (oa != ob) return oa < ob;
  return a.Id() < b.Id();
}

Tier Model::TierNamed(const std::string& name) const {
  if (auto it = tiers_.find(name); it != tiers_.end()) return it->second;
  Tier t;
  t.name = name;
  if (name == "default") t.order = 1000000;  // upstream's default tier
  return t;
}

std::vector<Tier> Model::SortedTiers() const {
  std::set<std::string> names;
  for (const auto& [name, _] : tiers_) names.insert(name);
  for (const auto& [_, p] : policies_) names.insert(p.tier);
  std::vector<Tier> out;
  for (const std::string& n : names) out.push_back(TierNamed(n));
  constexpr double kLast = std::numeric_limits<double>::infinity();
  std::stable_sort(out.begin(), out.end(), [&](const Tier& a, const Tier& b) {
    double oa = a.order.value_or(kLast), ob = b.order.value_or(kLast);
    if (oa != ob) return oa < ob;
    return a.name < b.name;
  });
  return out;
}

std::vector<const Policy*> Model::PoliciesInTier(const std::string& tier) const {
  std::vector<const Policy*> out;
  for (const auto& [_, p] : policies_) {
    if (p.tier == tier) out.push_back(&p);
  }
  std::sort(out.begin(), out.end(), [](const Policy* a, const Policy* b) { return PolicyBefore(*a, *b); });
  return out;
}

bool Model::HasProfile(const std::string& name) const {
  return profiles_.contains(name) || name.starts_with(kNamespaceProfilePrefix) ||
         name.starts_with(kServiceAccountProfilePrefix);
}

std::optional<Profile> Model::ProfileNamed(const std::string& name) const {
  if (auto it = profiles_.find(name); it != profiles_.end()) return it->second;
  if (name.starts_with(kNamespaceProfilePrefix)) {
    Profile p;
    p.name = name;
    Rule allow;
    allow.action = Action::kAllow;
    allow.origin = "synthesised allow-all";
    p.ingress_rules.push_back(allow);
    p.egress_rules.push_back(allow);
    return p;
  }
  if (name.starts_with(kServiceAccountProfilePrefix)) {
    Profile p;
    p.name = name;
    return p;
  }
  return std::nullopt;
}

namespace {
Labels StripPrefix(const Labels& labels, std::string_view prefix) {
  Labels out;
  for (const auto& [k, v] : labels) {
    if (k.starts_with(prefix)) out[k.substr(prefix.size())] = v;
  }
  return out;
}
}  // namespace

Labels Model::NamespaceLabels(const std::string& ns) const {
  Labels out;
  if (auto it = profiles_.find(std::string(kNamespaceProfilePrefix) + ns); it != profiles_.end()) {
    out = StripPrefix(it->second.labels_to_apply, kNamespaceLabelPrefix);
  }
  out[std::string(kLabelName)] = ns;
  out[std::string(kLabelK8sNamespaceName)] = ns;
  return out;
}

Labels Model::ServiceAccountLabels(const std::string& ns, const std::string& sa) const {
  Labels out;
  std::string key = std::string(kServiceAccountProfilePrefix) + ns + "." + sa;
  if (auto it = profiles_.find(key); it != profiles_.end()) {
    out = StripPrefix(it->second.labels_to_apply, kServiceAccountLabelPrefix);
  }
  out[std::string(kLabelName)] = sa;
  return out;
}

Labels Model::EffectiveLabels(const Endpoint& endpoint) const {
  Labels out = endpoint.labels;
  for (const std::string& name : endpoint.profiles) {
    auto it = profiles_.find(name);
    if (it == profiles_.end()) continue;
    for (const auto& [k, v] : it->second.labels_to_apply) out.emplace(k, v);  // own labels win
  }
  return out;
}

const Endpoint* Model::EndpointByIp(const net::IpAddress& ip) const {
  for (const auto& [_, e] : endpoints_) {
    if (e.host) continue;
    for (const net::Prefix& p : e.ips) {
      if (net::Contains(p, ip)) return &e;
    }
  }
  return nullptr;
}

const Endpoint* Model::HostEndpointByIp(const net::IpAddress& ip) const {
  for (const auto& [_, e] : endpoints_) {
    if (!e.host) continue;
    for (const net::Prefix& p : e.ips) {
      if (net::Contains(p, ip)) return &e;
    }
  }
  return nullptr;
}

Failsafe DefaultFailsafe() {
  Failsafe f;
  f.inbound = {{kProtoTcp, 22}, {kProtoUdp, 68}};
  f.outbound = {{kProtoUdp, 53}, {kProtoUdp, 67}};
  for (int port : {179, 2379, 2380, 5473, 6443, 6666, 6667}) {
    f.inbound.push_back({kProtoTcp, port});
    f.outbound.push_back({kProtoTcp, port});
  }
  return f;
}

absl::StatusOr<std::vector<FailsafePort>> ParseFailsafePorts(std::string_view text) {
  std::vector<FailsafePort> out;
  if (text.empty() || text == "none" || text == "[]") return out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view entry = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    start = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    auto bad = [&](std::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("failsafe port \"", std::string(entry), "\": ", std::string(why)));
    };
    FailsafePort p;
    std::string_view port = entry;
    if (size_t colon = entry.find(':'); colon != std::string_view::npos) {
      std::string_view proto = entry.substr(0, colon);
      port = entry.substr(colon + 1);
      if (port.find(':') != std::string_view::npos) {
        return bad("the proto:cidr:port form is not supported; use proto:port");
      }
      if (proto == "tcp" || proto == "TCP") p.protocol = kProtoTcp;
      else if (proto == "udp" || proto == "UDP") p.protocol = kProtoUdp;
      else if (proto == "sctp" || proto == "SCTP") p.protocol = kProtoSctp;
      else return bad("protocol must be tcp, udp or sctp");
    }
    int value = 0;
    if (!absl::SimpleAtoi(absl::string_view(port.data(), port.size()), &value) || value < 1 || value > 65535) {
      return bad("port must be a number in [1,65535]");
    }
    p.port = value;
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

std::string FormatFailsafePorts(const std::vector<FailsafePort>& ports) {
  if (ports.empty()) return "none";
  std::string out;
  for (const FailsafePort& p : ports) {
    const char* proto = p.protocol == kProtoUdp ? "udp" : p.protocol == kProtoSctp ? "sctp" : "tcp";
    absl::StrAppend(&out, out.empty() ? "" : ",", proto, ":", p.port);
  }
  return out;
}

}  // namespace calico::felixd::policy
