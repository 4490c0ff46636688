#include "felixd/policy/convert.h"

#include <algorithm>
#include <cctype>

#include "common/base/status_macros.h"

namespace calico::felixd::policy {
namespace {

using resources::Json;
using resources::Resource;

absl::Status Bad(const Resource& r, const std::string& what) {
  return absl::InvalidArgumentError(r.Describe() + ": " + what);
}

const Json* At(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string Str(const Json& obj, std::string_view key) {
  const Json* v = At(obj, key);
  return v && v->is_string() ? v->get<std::string>() : "";
}

bool BoolAt(const Json& obj, std::string_view key) {
  const Json* v = At(obj, key);
  return v && v->is_boolean() && v->get<bool>();
}

Labels LabelsAt(const Json& obj, std::string_view key) {
  Labels out;
  if (const Json* m = At(obj, key); m && m->is_object()) {
    for (const auto& [k, v] : m->items()) {
      if (v.is_string()) out[k] = v.get<std::string>();
    }
  }
  return out;
}

absl::StatusOr<std::optional<Selector>> SelectorAt(const Json& obj, std::string_view key) {
  std::string text = Str(obj, key);
  if (text.empty()) return std::optional<Selector>();
  absl::StatusOr<Selector> s = Selector::Parse(text);
  if (!s.ok()) return s.status();
  return std::optional<Selector>(*s);
}

absl::StatusOr<Selector> MustParse(const std::string& text) { return Selector::Parse(text); }

absl::StatusOr<std::vector<net::Prefix>> NetsAt(const Json& obj, std::string_view key) {
  std::vector<net::Prefix> out;
  if (const Json* list = At(obj, key)) {
    for (const Json& n : *list) {
      std::optional<net::Prefix> p = net::ParseCidrOrIp(n.get<std::string>());
      if (!p) return absl::InvalidArgumentError(std::string(key) + ": bad CIDR " + n.dump());
      out.push_back(net::Masked(*p));
    }
  }
  return out;
}

absl::StatusOr<int> ProtocolOf(const Json& v) {
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_string()) {
    if (std::optional<int> n = ProtocolNumber(v.get<std::string>())) return *n;
  }
  return absl::InvalidArgumentError("unknown protocol " + v.dump());
}

absl::StatusOr<Ports> PortsAt(const Json& obj, std::string_view key) {
  Ports out;
  if (const Json* list = At(obj, key)) {
    for (const Json& p : *list) {
      if (p.is_number_integer()) {
        out.ranges.push_back({p.get<int>(), p.get<int>()});
        continue;
      }
      std::string s = p.get<std::string>();
      if (size_t colon = s.find(':'); colon != std::string::npos) {
        out.ranges.push_back({std::stoi(s.substr(0, colon)), std::stoi(s.substr(colon + 1))});
      } else if (!s.empty() && std::all_of(s.begin(), s.end(), ::isdigit)) {
        out.ranges.push_back({std::stoi(s), std::stoi(s)});
      } else {
        out.names.push_back(s);
      }
    }
  }
  return out;
}

std::optional<Icmp> IcmpAt(const Json& obj, std::string_view key) {
  const Json* v = At(obj, key);
  if (!v || !At(*v, "type")) return std::nullopt;
  Icmp icmp;
  icmp.type = (*v)["type"].get<int>();
  if (const Json* c = At(*v, "code")) icmp.code = c->get<int>();
  return icmp;
}

// One side of a Calico rule. `policy_ns` is the namespace of a NetworkPolicy, empty for global
// policies and profiles. As felix's rule update processor: in a namespaced policy, a side that
// names selector, notSelector, namespaceSelector or serviceAccounts is confined to the policy's
// namespace unless namespaceSelector says otherwise; namespaceSelector all() means "any
// namespaced entity" and global() "only non-namespaced ones".
absl::StatusOr<RuleSide> SideFromJson(const Json& entity, const std::string& policy_ns) {
  RuleSide side;
  ASSIGN_OR_RETURN(side.nets, NetsAt(entity, "nets"));
  ASSIGN_OR_RETURN(side.not_nets, NetsAt(entity, "notNets"));
  ASSIGN_OR_RETURN(side.ports, PortsAt(entity, "ports"));
  ASSIGN_OR_RETURN(side.not_ports, PortsAt(entity, "notPorts"));
  ASSIGN_OR_RETURN(side.not_selector, SelectorAt(entity, "notSelector"));
  ASSIGN_OR_RETURN(std::optional<Selector> sel, SelectorAt(entity, "selector"));
  ASSIGN_OR_RETURN(std::optional<Selector> ns_sel, SelectorAt(entity, "namespaceSelector"));
  const Json* sa = At(entity, "serviceAccounts");
  bool has_sa = sa && (At(*sa, "names") || !Str(*sa, "selector").empty());

  bool namespaced_positive = sel || side.not_selector || ns_sel || has_sa;
  bool global_positive = sel || ns_sel || has_sa;
  if (policy_ns.empty() ? !global_positive : !namespaced_positive) return side;

  EntitySelector es;
  es.selector = sel;
  if (ns_sel) {
    if (ns_sel->String() == "global()") {
      es.scope = Scope::kGlobal;
    } else {
      es.scope = Scope::kNamespaceSelector;
      es.namespace_selector = ns_sel;
    }
  } else if (!policy_ns.empty()) {
    es.scope = Scope::kNamespace;
    es.ns = policy_ns;
  }
  if (has_sa) {
    es.service_accounts = true;
    if (const Json* names = At(*sa, "names")) {
      for (const Json& n : *names) es.sa_names.push_back(n.get<std::string>());
    }
    ASSIGN_OR_RETURN(es.sa_selector, SelectorAt(*sa, "selector"));
  }
  side.selector = std::move(es);
  return side;
}

// A rule without ipVersion whose CIDRs leave a list empty for a family does not exist for that
// family (upstream Felix's FilterRuleToIPVersion): `notNets: [fd00::5/128]` alone is an IPv6
// rule, not "every IPv4 address". When no family survives, the rule never matches.
void ImplyIpVersion(Rule& rule) {
  if (rule.ip_version) return;
  bool survives[2] = {true, true};  // IPv4, IPv6
  for (const RuleSide* side : {&rule.source, &rule.destination}) {
    for (const std::vector<net::Prefix>* list : {&side->nets, &side->not_nets}) {
      if (list->empty()) continue;
      for (int f : {4, 6}) {
        bool any = std::any_of(list->begin(), list->end(),
                               [&](const net::Prefix& p) { return p.addr.family == f; });
        if (!any) survives[f == 4 ? 0 : 1] = false;
      }
    }
  }
  if (survives[0] && survives[1]) return;
  if (survives[0]) rule.ip_version = 4;
  else if (survives[1]) rule.ip_version = 6;
  else rule.unsupported = "nets of both IP versions in one rule (no family keeps them all)";
}

absl::StatusOr<Rule> RuleFromJson(const Json& r, const std::string& policy_ns, std::string origin) {
  Rule rule;
  rule.origin = std::move(origin);
  std::string action = Str(r, "action");
  if (action == "Allow") rule.action = Action::kAllow;
  else if (action == "Deny") rule.action = Action::kDeny;
  else if (action == "Pass") rule.action = Action::kPass;
  else if (action == "Log") rule.action = Action::kLog;
  else return absl::InvalidArgumentError(rule.origin + ": unknown action \"" + action + "\"");
  if (const Json* v = At(r, "ipVersion")) rule.ip_version = v->get<int>();
  if (const Json* v = At(r, "protocol")) {
    ASSIGN_OR_RETURN(int p, ProtocolOf(*v));
    rule.protocol = p;
  }
  if (const Json* v = At(r, "notProtocol")) {
    ASSIGN_OR_RETURN(int p, ProtocolOf(*v));
    rule.not_protocol = p;
  }
  rule.icmp = IcmpAt(r, "icmp");
  rule.not_icmp = IcmpAt(r, "notICMP");
  static const Json kEmpty = Json::object();
  const Json* src = At(r, "source");
  const Json* dst = At(r, "destination");
  ASSIGN_OR_RETURN(rule.source, SideFromJson(src ? *src : kEmpty, policy_ns));
  ASSIGN_OR_RETURN(rule.destination, SideFromJson(dst ? *dst : kEmpty, policy_ns));
  if (At(r, "http")) rule.unsupported = "http match (application layer)";
  if ((src && At(*src, "services")) || (dst && At(*dst, "services"))) {
    rule.unsupported = "services match (needs Kubernetes Service endpoints)";
  }
  ImplyIpVersion(rule);
  return rule;
}

absl::StatusOr<std::vector<Rule>> RulesAt(const Json& spec, std::string_view dir, const std::string& ns) {
  std::vector<Rule> out;
  if (const Json* rules = At(spec, dir)) {
    for (size_t i = 0; i < rules->size(); ++i) {
      std::string origin = "spec." + std::string(dir) + "[" + std::to_string(i) + "]";
      ASSIGN_OR_RETURN(Rule r, RuleFromJson((*rules)[i], ns, origin));
      out.push_back(std::move(r));
    }
  }
  return out;
}

void TypesAt(const Json& spec, std::string_view key, Policy& p) {
  if (const Json* types = At(spec, key)) {
    for (const Json& t : *types) {
      if (t == "Ingress") p.ingress = true;
      if (t == "Egress") p.egress = true;
    }
  }
}

// ---- Kubernetes NetworkPolicy (libcalico-go's K8sNetworkPolicyToCalico) --------------------

std::string Quote(const std::string& v) {
  char q = v.find('"') == std::string::npos ? '"' : '\'';
  return std::string(1, q) + v + std::string(1, q);
}

// A metav1.LabelSelector as Calico selector text; "" when it has no terms.
std::string LabelSelectorText(const Json& sel) {
  std::vector<std::string> terms;
  if (const Json* ml = At(sel, "matchLabels")) {
    for (const auto& [k, v] : ml->items()) terms.push_back(k + " == " + Quote(v.get<std::string>()));
  }
  if (const Json* exprs = At(sel, "matchExpressions")) {
    for (const Json& e : *exprs) {
      std::string key = Str(e, "key"), op = Str(e, "operator");
      std::string values;
      if (const Json* vs = At(e, "values")) {
        for (size_t i = 0; i < vs->size(); ++i) values += (i ? ", " : "") + Quote((*vs)[i].get<std::string>());
      }
      if (op == "In") terms.push_back(key + " in {" + values + "}");
      else if (op == "NotIn") terms.push_back(key + " not in {" + values + "}");
      else if (op == "Exists") terms.push_back("has(" + key + ")");
      else if (op == "DoesNotExist") terms.push_back("!has(" + key + ")");
    }
  }
  std::string out;
  for (size_t i = 0; i < terms.size(); ++i) out += (i ? " && " : "") + terms[i];
  return out;
}

// podSelector → pods only (orchestrator k8s) and the selector's terms.
absl::StatusOr<Selector> PodSelector(const Json* sel) {
  std::string text = std::string(kLabelOrchestrator) + " == \"k8s\"";
  if (sel) {
    std::string terms = LabelSelectorText(*sel);
    if (!terms.empty()) text += " && " + terms;
  }
  return MustParse(text);
}

struct K8sPortGroup {
  int protocol = kProtoTcp;
  bool any_port = false;  // a port entry without a port: the whole protocol
  Ports ports;
};

absl::StatusOr<std::vector<K8sPortGroup>> K8sPorts(const Json& rule) {
  std::vector<K8sPortGroup> groups;
  const Json* ports = At(rule, "ports");
  if (!ports) return groups;
  for (const Json& p : *ports) {
    std::string proto = Str(p, "protocol");
    std::optional<int> number = ProtocolNumber(proto.empty() ? "TCP" : proto);
    if (!number) return absl::InvalidArgumentError("unknown protocol \"" + proto + "\"");
    auto it = std::find_if(groups.begin(), groups.end(), [&](const K8sPortGroup& g) { return g.protocol == *number; });
    if (it == groups.end()) {
      groups.push_back(K8sPortGroup{*number, false, {}});
      it = groups.end() - 1;
    }
    const Json* port = At(p, "port");
    if (!port) {
      it->any_port = true;
    } else if (port->is_number_integer()) {
      int first = port->get<int>();
      int last = first;
      if (const Json* end = At(p, "endPort")) last = end->get<int>();
      it->ports.ranges.push_back({first, last});
    } else {
      it->ports.names.push_back(port->get<std::string>());
    }
  }
  for (K8sPortGroup& g : groups) {
    if (g.any_port) g.ports = Ports();
  }
  return groups;
}

// Upstream emits one Allow rule per peer and protocol, the peer on the remote side and the
// ports on the destination.
absl::StatusOr<std::vector<Rule>> K8sRules(const Json& spec, Direction dir, const std::string& ns) {
  std::vector<Rule> out;
  std::string dir_key = dir == Direction::kIngress ? "ingress" : "egress";
  std::string peers_key = dir == Direction::kIngress ? "from" : "to";
  const Json* rules = At(spec, dir_key);
  if (!rules) return out;
  for (size_t i = 0; i < rules->size(); ++i) {
    const Json& kr = (*rules)[i];
    std::string base = "spec." + dir_key + "[" + std::to_string(i) + "]";
    ASSIGN_OR_RETURN(std::vector<K8sPortGroup> groups, K8sPorts(kr));
    std::vector<std::pair<std::string, RuleSide>> peers;
    if (const Json* list = At(kr, peers_key)) {
      for (size_t j = 0; j < list->size(); ++j) {
        const Json& peer = (*list)[j];
        RuleSide side;
        if (const Json* block = At(peer, "ipBlock")) {
          std::optional<net::Prefix> cidr = net::ParseCidrOrIp(Str(*block, "cidr"));
          if (!cidr) return absl::InvalidArgumentError(base + ": bad ipBlock cidr");
          side.nets.push_back(net::Masked(*cidr));
          ASSIGN_OR_RETURN(side.not_nets, NetsAt(*block, "except"));
        } else {
          const Json* pod = At(peer, "podSelector");
          const Json* nss = At(peer, "namespaceSelector");
          EntitySelector es;
          ASSIGN_OR_RETURN(Selector ps, PodSelector(pod));
          es.selector = ps;
          if (nss) {
            es.scope = Scope::kNamespaceSelector;
            std::string terms = LabelSelectorText(*nss);
            if (!terms.empty()) {
              ASSIGN_OR_RETURN(Selector s, MustParse(terms));
              es.namespace_selector = s;
            }
          } else {
            es.scope = Scope::kNamespace;
            es.ns = ns;
          }
          side.selector = std::move(es);
        }
        peers.emplace_back(base + "." + peers_key + "[" + std::to_string(j) + "]", std::move(side));
      }
    } else {
      peers.emplace_back(base, RuleSide());
    }
    for (const auto& [origin, peer] : peers) {
      auto make = [&](std::optional<K8sPortGroup> group) {
        Rule r;
        r.action = Action::kAllow;
        r.origin = origin;
        (dir == Direction::kIngress ? r.source : r.destination) = peer;
        if (group) {
          r.protocol = group->protocol;
          r.destination.ports = group->ports;
          for (const auto& [name, n] : {std::pair<const char*, int>{"TCP", kProtoTcp}, {"UDP", kProtoUdp},
                                        {"SCTP", kProtoSctp}}) {
            if (n == group->protocol) r.origin += std::string(" ") + name;
          }
        }
        out.push_back(std::move(r));
      };
      if (groups.empty()) {
        make(std::nullopt);
      } else {
        for (const K8sPortGroup& g : groups) make(g);
      }
    }
  }
  return out;
}

absl::StatusOr<Policy> K8sPolicy(const Resource& r) {
  const Json& spec = r.object["spec"];
  Policy p;
  p.kind = PolicyKind::kKubernetesNetworkPolicy;
  p.ns = r.Namespace();
  p.name = "knp.default." + r.Name();
  p.tier = "default";
  p.order = 1000;
  ASSIGN_OR_RETURN(Selector ps, PodSelector(At(spec, "podSelector")));
  p.applies_to.selector = ps;
  p.applies_to.scope = Scope::kNamespace;
  p.applies_to.ns = p.ns;
  TypesAt(spec, "policyTypes", p);
  if (!At(spec, "policyTypes")) {  // defaulted by validation; kept for hand-built objects
    p.ingress = true;
    p.egress = At(spec, "egress") != nullptr;
  }
  ASSIGN_OR_RETURN(p.ingress_rules, K8sRules(spec, Direction::kIngress, p.ns));
  ASSIGN_OR_RETURN(p.egress_rules, K8sRules(spec, Direction::kEgress, p.ns));
  return p;
}

absl::StatusOr<Policy> CalicoPolicy(const Resource& r) {
  const Json& spec = r.object["spec"];
  Policy p;
  bool global = r.kind->kind == "GlobalNetworkPolicy";
  p.kind = global ? PolicyKind::kGlobalNetworkPolicy : PolicyKind::kNetworkPolicy;
  p.ns = global ? "" : r.Namespace();
  p.name = r.Name();
  p.tier = Str(spec, "tier");
  if (p.tier.empty()) p.tier = "default";
  if (const Json* o = At(spec, "order")) p.order = o->get<double>();
  ASSIGN_OR_RETURN(p.applies_to.selector, SelectorAt(spec, "selector"));
  if (global) {
    ASSIGN_OR_RETURN(std::optional<Selector> ns_sel, SelectorAt(spec, "namespaceSelector"));
    if (ns_sel) {
      p.applies_to.scope = Scope::kNamespaceSelector;
      p.applies_to.namespace_selector = ns_sel;
    }
  } else {
    p.applies_to.scope = Scope::kNamespace;
    p.applies_to.ns = p.ns;
  }
  ASSIGN_OR_RETURN(std::optional<Selector> sa_sel, SelectorAt(spec, "serviceAccountSelector"));
  if (sa_sel) {
    p.applies_to.service_accounts = true;
    p.applies_to.sa_selector = sa_sel;
  }
  TypesAt(spec, "types", p);
  if (!At(spec, "types")) {
    p.egress = At(spec, "egress") != nullptr;
    p.ingress = At(spec, "ingress") != nullptr || !p.egress;
  }
  ASSIGN_OR_RETURN(p.ingress_rules, RulesAt(spec, "ingress", p.ns));
  ASSIGN_OR_RETURN(p.egress_rules, RulesAt(spec, "egress", p.ns));
  p.apply_on_forward = BoolAt(spec, "applyOnForward");
  p.pre_dnat = BoolAt(spec, "preDNAT");
  p.do_not_track = BoolAt(spec, "doNotTrack");
  return p;
}

bool IsK8s(const resources::KindInfo& kind) { return kind.api_version == "networking.k8s.io/v1"; }

}  // namespace

absl::StatusOr<Policy> PolicyFromResource(const Resource& r) {
  if (!r.kind) return absl::InvalidArgumentError("resource without a kind");
  absl::StatusOr<Policy> p;
  if (IsK8s(*r.kind)) {
    p = K8sPolicy(r);
  } else if (r.kind->kind == "NetworkPolicy" || r.kind->kind == "GlobalNetworkPolicy") {
    p = CalicoPolicy(r);
  } else {
    return Bad(r, "is not a policy");
  }
  if (!p.ok()) return Bad(r, ToStd(p.status().message()));
  return p;
}

absl::StatusOr<Tier> TierFromResource(const Resource& r) {
  const Json& spec = r.object["spec"];
  Tier t;
  t.name = r.Name();
  if (const Json* o = At(spec, "order")) t.order = o->get<double>();
  else if (t.name == "default") t.order = 1000000;
  t.default_action = Str(spec, "defaultAction") == "Pass" ? TierDefault::kPass : TierDefault::kDeny;
  return t;
}

absl::StatusOr<Profile> ProfileFromResource(const Resource& r) {
  const Json& spec = r.object["spec"];
  Profile p;
  p.name = r.Name();
  absl::StatusOr<std::vector<Rule>> in = RulesAt(spec, "ingress", "");
  if (!in.ok()) return Bad(r, ToStd(in.status().message()));
  absl::StatusOr<std::vector<Rule>> out = RulesAt(spec, "egress", "");
  if (!out.ok()) return Bad(r, ToStd(out.status().message()));
  p.ingress_rules = std::move(*in);
  p.egress_rules = std::move(*out);
  p.labels_to_apply = LabelsAt(spec, "labelsToApply");
  return p;
}

absl::StatusOr<NetworkSet> NetworkSetFromResource(const Resource& r) {
  NetworkSet s;
  s.ns = r.kind->namespaced ? r.Namespace() : "";
  s.name = r.Name();
  s.labels = LabelsAt(r.object["metadata"], "labels");
  if (!s.ns.empty()) s.labels[std::string(kLabelNamespace)] = s.ns;  // upstream's implicit label
  absl::StatusOr<std::vector<net::Prefix>> nets = NetsAt(r.object["spec"], "nets");
  if (!nets.ok()) return Bad(r, ToStd(nets.status().message()));
  s.nets = std::move(*nets);
  return s;
}

absl::StatusOr<Endpoint> EndpointFromResource(const Resource& r) {
  const Json& spec = r.object["spec"];
  Endpoint e;
  e.ns = r.Namespace();
  e.name = r.Name();
  e.node = Str(spec, "node");
  e.interface = Str(spec, "interfaceName");
  absl::StatusOr<std::vector<net::Prefix>> ips = NetsAt(spec, "ipNetworks");
  if (!ips.ok()) return Bad(r, ToStd(ips.status().message()));
  e.ips = std::move(*ips);
  e.labels = LabelsAt(r.object["metadata"], "labels");
  e.service_account = Str(spec, "serviceAccountName");
  // The automatic labels, as upstream adds them (felixd writes them too; these fill in for
  // endpoints written by others).
  e.labels[std::string(kLabelNamespace)] = e.ns;
  if (std::string o = Str(spec, "orchestrator"); !o.empty()) e.labels.emplace(kLabelOrchestrator, o);
  if (!e.service_account.empty()) e.labels.emplace(kLabelServiceAccount, e.service_account);
  if (const Json* ports = At(spec, "ports")) {
    for (const Json& p : *ports) {
      std::string name = Str(p, "name");
      if (name.empty()) continue;  // a hostPort-only entry names nothing
      absl::StatusOr<int> proto = ProtocolOf(p["protocol"]);
      if (!proto.ok()) return Bad(r, ToStd(proto.status().message()));
      e.ports.push_back(NamedPort{name, *proto, p["port"].get<int>()});
    }
  }
  if (const Json* profiles = At(spec, "profiles")) {
    for (const Json& p : *profiles) e.profiles.push_back(p.get<std::string>());
  }
  return e;
}

absl::StatusOr<Endpoint> HostEndpointFromResource(const Resource& r) {
  const Json& spec = r.object["spec"];
  Endpoint e;
  e.host = true;
  e.name = r.Name();
  e.node = Str(spec, "node");
  e.interface = Str(spec, "interfaceName");
  absl::StatusOr<std::vector<net::Prefix>> ips = NetsAt(spec, "expectedIPs");
  if (!ips.ok()) return Bad(r, ToStd(ips.status().message()));
  e.ips = std::move(*ips);
  e.labels = LabelsAt(r.object["metadata"], "labels");
  if (const Json* ports = At(spec, "ports")) {
    for (const Json& p : *ports) {
      absl::StatusOr<int> proto = ProtocolOf(p["protocol"]);
      if (!proto.ok()) return Bad(r, ToStd(proto.status().message()));
      e.ports.push_back(NamedPort{Str(p, "name"), *proto, p["port"].get<int>()});
    }
  }
  if (const Json* profiles = At(spec, "profiles")) {
    for (const Json& p : *profiles) e.profiles.push_back(p.get<std::string>());
  }
  return e;
}

Resource NamespaceProfile(const std::string& ns, const Labels& labels) {
  Json lta = Json::object();
  for (const auto& [k, v] : labels) lta[std::string(kNamespaceLabelPrefix) + k] = v;
  lta[std::string(kNamespaceLabelPrefix) + std::string(kLabelName)] = ns;
  Json obj = {{"apiVersion", "projectcalico.org/v3"},
              {"kind", "Profile"},
              {"metadata", {{"name", std::string(kNamespaceProfilePrefix) + ns}}},
              {"spec",
               {{"ingress", Json::array({{{"action", "Allow"}}})},
                {"egress", Json::array({{{"action", "Allow"}}})},
                {"labelsToApply", lta}}}};
  Resource r;
  r.kind = resources::FindKind("projectcalico.org/v3", "Profile");
  r.object = std::move(obj);
  return r;
}

Resource ServiceAccountProfile(const std::string& ns, const std::string& sa, const Labels& labels) {
  Json lta = Json::object();
  for (const auto& [k, v] : labels) lta[std::string(kServiceAccountLabelPrefix) + k] = v;
  lta[std::string(kServiceAccountLabelPrefix) + std::string(kLabelName)] = sa;
  Json obj = {{"apiVersion", "projectcalico.org/v3"},
              {"kind", "Profile"},
              {"metadata", {{"name", std::string(kServiceAccountProfilePrefix) + ns + "." + sa}}},
              {"spec", {{"labelsToApply", lta}}}};
  Resource r;
  r.kind = resources::FindKind("projectcalico.org/v3", "Profile");
  r.object = std::move(obj);
  return r;
}

absl::Status Model::Apply(const Resource& r) {
  if (!r.kind) return absl::InvalidArgumentError("resource without a kind");
  std::string_view k = r.kind->kind;
  if (IsK8s(*r.kind) || k == "NetworkPolicy" || k == "GlobalNetworkPolicy") {
    ASSIGN_OR_RETURN(Policy p, PolicyFromResource(r));
    Put(std::move(p));
  } else if (k == "Tier") {
    ASSIGN_OR_RETURN(Tier t, TierFromResource(r));
    Put(std::move(t));
  } else if (k == "Profile") {
    ASSIGN_OR_RETURN(Profile p, ProfileFromResource(r));
    Put(std::move(p));
  } else if (k == "NetworkSet" || k == "GlobalNetworkSet") {
    ASSIGN_OR_RETURN(NetworkSet s, NetworkSetFromResource(r));
    Put(std::move(s));
  } else if (k == "WorkloadEndpoint") {
    ASSIGN_OR_RETURN(Endpoint e, EndpointFromResource(r));
    Put(std::move(e));
  } else if (k == "HostEndpoint") {
    ASSIGN_OR_RETURN(Endpoint e, HostEndpointFromResource(r));
    Put(std::move(e));
  }
  return absl::OkStatus();
}

void Model::Remove(const resources::KindInfo& kind, std::string_view ns, std::string_view name) {
  std::string n(name), key = ns.empty() ? std::string(name) : std::string(ns) + "/" + n;
  std::string_view k = kind.kind;
  if (IsK8s(kind)) {
    policies_.erase(std::string(ns) + "/knp.default." + n);
  } else if (k == "NetworkPolicy" || k == "GlobalNetworkPolicy") {
    policies_.erase(key);
  } else if (k == "Tier") {
    tiers_.erase(n);
  } else if (k == "Profile") {
    profiles_.erase(n);
  } else if (k == "NetworkSet" || k == "GlobalNetworkSet") {
    network_sets_.erase(key);
  } else if (k == "WorkloadEndpoint") {
    endpoints_.erase(std::string(ns) + "/" + n);
  } else if (k == "HostEndpoint") {
    endpoints_.erase(std::string(Endpoint::kHostEndpointIdPrefix) + n);
  }
}

Model BuildModel(const std::vector<Resource>& resources, std::vector<std::string>* errors) {
  Model m;
  for (const Resource& r : resources) {
    absl::Status s = m.Apply(r);
    if (!s.ok() && errors) errors->push_back(ToStd(s.message()));
  }
  return m;
}

}  // namespace calico::felixd::policy
