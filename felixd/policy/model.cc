#include "felixd/policy/model.h"

#include <algorithm>
#include <limits>
#include <set>

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
    for (const net::Prefix& p : e.ips) {
      if (net::Contains(p, ip)) return &e;
    }
  }
  return nullptr;
}

}  // namespace calico::felixd::policy
