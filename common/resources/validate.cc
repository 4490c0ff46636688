#include "common/resources/internal/validate.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/resources/internal/net.h"
#include "common/resources/internal/schema.h"

namespace calico::resources::internal {
namespace {

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(path + ": " + what);
}

const Json* At(const Json& o, std::string_view key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  return it == o.end() ? nullptr : &*it;
}

std::string StrAt(const Json& o, std::string_view key) {
  const Json* v = At(o, key);
  return v && v->is_string() ? v->get<std::string>() : "";
}

bool BoolAt(const Json& o, std::string_view key) {
  const Json* v = At(o, key);
  return v && v->is_boolean() && v->get<bool>();
}

bool NonEmpty(const Json& o, std::string_view key) {
  const Json* v = At(o, key);
  return v && !v->is_null() && !(v->is_array() && v->empty()) && !(v->is_object() && v->empty()) &&
         !(v->is_string() && v->get_ref<const std::string&>().empty());
}

std::string Q(const std::string& s) { return ShowValue(Json(s)); }

// ---- Names ---------------------------------------------------------------------------------

bool IsAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63.
bool IsDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63 || !IsAlnumLower(s.front()) || !IsAlnumLower(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsAlnumLower(c) || c == '-'; });
}

// DNS-1123 subdomain: labels joined by '.', at most 253.
bool IsDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!IsDnsLabel(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// k8s qualified-name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63.
bool IsQualifiedPart(std::string_view s) {
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool IsQualifiedName(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return IsQualifiedPart(s);
  return IsDnsSubdomain(s.substr(0, slash)) && IsQualifiedPart(s.substr(slash + 1));
}

constexpr char kSubdomainRule[] =
    "is not a valid name (lower case alphanumerics, '-' and '.', starting and ending with an "
    "alphanumeric)";
constexpr char kLabelRule[] =
    "is not a valid name (lower case alphanumerics and '-', starting and ending with an alphanumeric)";

// Upstream's networkPolicyNameRegex: a label, label.label, or knp.default./ossg.default.<subdomain>.
bool IsNetworkPolicyName(std::string_view s) {
  for (std::string_view prefix : {"knp.default.", "ossg.default."}) {
    if (s.starts_with(prefix) && IsDnsSubdomain(s.substr(prefix.size()))) return true;
  }
  size_t dot = s.find('.');
  if (dot == std::string_view::npos) return IsDnsLabel(s);
  return IsDnsLabel(s.substr(0, dot)) && IsDnsLabel(s.substr(dot + 1));
}

// Upstream's globalNetworkPolicyNameRegex: (label.)?label.
bool IsGlobalNetworkPolicyName(std::string_view s) {
  size_t dot = s.find('.');
  if (dot == std::string_view::npos) return IsDnsLabel(s);
  return IsDnsLabel(s.substr(0, dot)) && IsDnsLabel(s.substr(dot + 1));
}

absl::Status ValidateMetadata(const KindInfo& kind, const Json& meta) {
  std::string name = StrAt(meta, "name");
  if (name.empty()) return Invalid("metadata.name", "required");
  bool ok = true;
  const char* rule = kSubdomainRule;
  if (kind.api_version == "networking.k8s.io/v1") {
    ok = IsDnsSubdomain(name);
  } else if (kind.kind == "Tier") {
    ok = IsDnsLabel(name);
    rule = kLabelRule;
  } else if (kind.kind == "NetworkPolicy") {
    ok = IsNetworkPolicyName(name);
    rule = "is not a valid name (lower case alphanumerics and '-', with at most one '.')";
  } else if (kind.kind == "GlobalNetworkPolicy") {
    ok = IsGlobalNetworkPolicyName(name);
    rule = "is not a valid name (lower case alphanumerics and '-', with at most one '.')";
  } else {
    ok = IsDnsSubdomain(name);
  }
  if (!ok) return Invalid("metadata.name", Q(name) + " " + rule);
  if (kind.namespaced) {
    std::string ns = StrAt(meta, "namespace");
    if (ns.empty()) return Invalid("metadata.namespace", "required");
    if (!IsDnsLabel(ns)) return Invalid("metadata.namespace", Q(ns) + " " + kLabelRule);
  }
  if (const Json* labels = At(meta, "labels")) {
    for (const auto& [k, v] : labels->items()) {
      if (!IsQualifiedName(k)) return Invalid("metadata.labels", Q(k) + " is not a valid label key");
      const std::string& value = v.get_ref<const std::string&>();
      if (!value.empty() && !IsQualifiedPart(value)) {
        return Invalid(JoinPath("metadata.labels", k), Q(value) + " is not a valid label value");
      }
    }
  }
  if (const Json* annotations = At(meta, "annotations")) {
    for (const auto& [k, v] : annotations->items()) {
      if (!IsQualifiedName(k)) return Invalid("metadata.annotations", Q(k) + " is not a valid annotation key");
    }
  }
  return absl::OkStatus();
}

// ---- Rules (NetworkPolicy, GlobalNetworkPolicy, Profile) -----------------------------------

bool SupportsPorts(const Json* protocol) {
  if (!protocol) return false;
  if (protocol->is_number()) {
    int64_t p = protocol->get<int64_t>();
    return p == 6 || p == 17 || p == 132;
  }
  std::string p = protocol->get<std::string>();
  return p == "TCP" || p == "UDP" || p == "SCTP";
}

bool IsProtocol(const Json* protocol, std::string_view name, int64_t number) {
  if (!protocol) return false;
  if (protocol->is_number()) return protocol->get<int64_t>() == number;
  return protocol->get<std::string>() == name;
}

bool HasGlobal(const std::string& selector) { return selector.find("global(") != std::string::npos; }

absl::Status ValidateEntity(const Json& entity, const std::string& path) {
  if (HasGlobal(StrAt(entity, "selector"))) {
    return Invalid(path + ".selector", Q(StrAt(entity, "selector")) +
                                           " uses global(), which is only valid in a namespaceSelector");
  }
  std::string ns_sel = StrAt(entity, "namespaceSelector");
  if (HasGlobal(ns_sel)) {
    std::string trimmed = ns_sel;
    trimmed.erase(std::remove(trimmed.begin(), trimmed.end(), ' '), trimmed.end());
    if (trimmed != "global()") {
      return Invalid(path + ".namespaceSelector", Q(ns_sel) + " combines global() with other selectors");
    }
  }
  if (const Json* services = At(entity, "services")) {
    std::string sp = path + ".services";
    if (StrAt(*services, "name").empty()) return Invalid(sp + ".name", "required");
    if (!ns_sel.empty()) return Invalid(sp, "cannot be combined with namespaceSelector");
    if (NonEmpty(entity, "selector") || NonEmpty(entity, "notSelector")) {
      return Invalid(sp, "cannot be combined with selector or notSelector");
    }
    if (NonEmpty(entity, "serviceAccounts")) return Invalid(sp, "cannot be combined with serviceAccounts");
    if (NonEmpty(entity, "nets") || NonEmpty(entity, "notNets")) {
      return Invalid(sp, "cannot be combined with nets or notNets");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRule(const Json& rule, const std::string& path, bool ingress) {
  const Json* protocol = At(rule, "protocol");
  const Json* not_protocol = At(rule, "notProtocol");
  static const Json kEmpty = Json::object();
  const Json* src = At(rule, "source");
  const Json* dst = At(rule, "destination");
  const Json& source = src ? *src : kEmpty;
  const Json& destination = dst ? *dst : kEmpty;

  if (!SupportsPorts(protocol)) {
    for (const auto& [side, entity] : {std::pair<std::string, const Json*>{"source", &source},
                                       std::pair<std::string, const Json*>{"destination", &destination}}) {
      for (const char* key : {"ports", "notPorts"}) {
        if (NonEmpty(*entity, key)) {
          return Invalid(path + "." + side + "." + key,
                         ShowValue((*entity)[key]) + " needs protocol TCP, UDP or SCTP" +
                             (protocol ? " (protocol is " + ShowValue(*protocol) + ")" : ""));
        }
      }
    }
  }
  for (const char* key : {"icmp", "notICMP"}) {
    const Json* icmp = At(rule, key);
    if (!icmp) continue;
    if (At(*icmp, "code") && !At(*icmp, "type")) {
      return Invalid(path + "." + key + ".code", ShowValue((*icmp)["code"]) + " needs a type");
    }
  }
  if (At(rule, "icmp") && !IsProtocol(protocol, "ICMP", 1) && !IsProtocol(protocol, "ICMPv6", 58)) {
    return Invalid(path + ".icmp", ShowValue(rule["icmp"]) + " needs protocol ICMP or ICMPv6");
  }
  const Json* ip_version = At(rule, "ipVersion");
  if (ip_version) {
    int64_t v = ip_version->get<int64_t>();
    if ((IsProtocol(protocol, "ICMP", 1) || IsProtocol(not_protocol, "ICMP", 1)) && v != 4) {
      return Invalid(path + ".ipVersion", std::to_string(v) + " does not match protocol ICMP (IPv4)");
    }
    if ((IsProtocol(protocol, "ICMPv6", 58) || IsProtocol(not_protocol, "ICMPv6", 58)) && v != 6) {
      return Invalid(path + ".ipVersion", std::to_string(v) + " does not match protocol ICMPv6 (IPv6)");
    }
  }
  // All CIDRs of a rule must be of one family, and match ipVersion when that is given.
  int seen_family = 0;
  for (const auto& [side, entity] : {std::pair<std::string, const Json*>{"source", &source},
                                     std::pair<std::string, const Json*>{"destination", &destination}}) {
    for (const char* key : {"nets", "notNets"}) {
      const Json* nets = At(*entity, key);
      if (!nets) continue;
      for (size_t i = 0; i < nets->size(); ++i) {
        std::string text = (*nets)[i].get<std::string>();
        int family = text.find(':') == std::string::npos ? 4 : 6;
        std::string p = path + "." + side + "." + key + "[" + std::to_string(i) + "]";
        if (ip_version && ip_version->get<int64_t>() != family) {
          return Invalid(p, Q(text) + " does not match ipVersion " + std::to_string(ip_version->get<int64_t>()));
        }
        if (seen_family && seen_family != family) return Invalid(p, Q(text) + " mixes IPv4 and IPv6 in one rule");
        seen_family = family;
      }
    }
  }
  RETURN_IF_ERROR(ValidateEntity(source, path + ".source"));
  RETURN_IF_ERROR(ValidateEntity(destination, path + ".destination"));
  if (At(rule, "http")) {
    if (StrAt(rule, "action") != "Allow") {
      return Invalid(path + ".http", "is only valid on Allow rules (action is " + Q(StrAt(rule, "action")) + ")");
    }
    if (protocol && !IsProtocol(protocol, "TCP", 6)) {
      return Invalid(path + ".protocol", ShowValue(*protocol) + " must be TCP (or unset) with http");
    }
    if (const Json* paths = At(rule["http"], "paths")) {
      for (size_t i = 0; i < paths->size(); ++i) {
        bool exact = NonEmpty((*paths)[i], "exact"), prefix = NonEmpty((*paths)[i], "prefix");
        if (exact == prefix) {
          return Invalid(path + ".http.paths[" + std::to_string(i) + "]", "needs exactly one of exact or prefix");
        }
      }
    }
  }
  if (NonEmpty(destination, "services") && (NonEmpty(destination, "ports") || NonEmpty(destination, "notPorts"))) {
    return Invalid(path + ".destination.ports", "cannot be combined with destination.services");
  }
  if (ingress && NonEmpty(destination, "services")) {
    return Invalid(path + ".destination.services", "is not allowed in an ingress rule");
  }
  if (!ingress && NonEmpty(source, "services")) {
    return Invalid(path + ".source.services", "is not allowed in an egress rule");
  }
  return absl::OkStatus();
}

absl::Status ValidateRules(const Json& spec) {
  for (const char* dir : {"ingress", "egress"}) {
    const Json* rules = At(spec, dir);
    if (!rules) continue;
    for (size_t i = 0; i < rules->size(); ++i) {
      RETURN_IF_ERROR(ValidateRule((*rules)[i], std::string("spec.") + dir + "[" + std::to_string(i) + "]",
                                   std::string(dir) == "ingress"));
    }
  }
  return absl::OkStatus();
}

// Upstream's defaulting: Ingress if there are no egress rules; Egress alone if only egress
// rules; both if both.
void DefaultPolicyTypes(Json& spec, std::string_view key, bool k8s) {
  if (NonEmpty(spec, key)) return;
  bool ingress = NonEmpty(spec, "ingress"), egress = NonEmpty(spec, "egress");
  Json types = Json::array();
  // Kubernetes always includes Ingress; Calico only when there are ingress rules or no rules.
  if (k8s || ingress || !egress) types.push_back("Ingress");
  if (egress) types.push_back("Egress");
  spec[std::string(key)] = types;
}

absl::Status NoDuplicateTypes(const Json& spec, std::string_view key) {
  std::set<std::string> seen;
  for (const Json& t : spec[std::string(key)]) {
    if (!seen.insert(t.get<std::string>()).second) {
      return Invalid("spec." + std::string(key), ShowValue(spec[std::string(key)]) + " lists " +
                                                     Q(t.get<std::string>()) + " more than once");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePolicy(const KindInfo& kind, Json& obj) {
  Json& spec = obj["spec"];
  std::string name = StrAt(obj["metadata"], "name");
  std::string tier = StrAt(spec, "tier");
  if (!IsDnsLabel(tier)) return Invalid("spec.tier", Q(tier) + " " + kLabelRule);
  // Upstream: a policy in tier T is named "T.<name>"; the default tier's policies need no prefix
  // (Kubernetes-derived "knp.default.*" names belong to it too).
  if (tier != "default") {
    if (!name.starts_with(tier + ".")) {
      return Invalid("metadata.name", Q(name) + " must start with \"" + tier + ".\" for tier " + Q(tier));
    }
  } else if (size_t dot = name.find('.'); dot != std::string::npos && !name.starts_with("default.") &&
                                          !name.starts_with("knp.default.") && !name.starts_with("ossg.default.")) {
    return Invalid("metadata.name", Q(name) + " has tier prefix " + Q(name.substr(0, dot)) +
                                        " but spec.tier is \"default\"");
  }
  DefaultPolicyTypes(spec, "types", false);
  RETURN_IF_ERROR(NoDuplicateTypes(spec, "types"));
  for (const char* key : {"selector", "serviceAccountSelector"}) {
    if (HasGlobal(StrAt(spec, key))) {
      return Invalid(std::string("spec.") + key,
                     Q(StrAt(spec, key)) + " uses global(), which is only valid in a rule's namespaceSelector");
    }
  }
  if (kind.kind == "GlobalNetworkPolicy") {
    if (HasGlobal(StrAt(spec, "namespaceSelector"))) {
      return Invalid("spec.namespaceSelector", Q(StrAt(spec, "namespaceSelector")) +
                                                   " uses global(), which is only valid in a rule's namespaceSelector");
    }
    bool dnt = BoolAt(spec, "doNotTrack"), pre = BoolAt(spec, "preDNAT"), fwd = BoolAt(spec, "applyOnForward");
    if (dnt && pre) return Invalid("spec.preDNAT", "true cannot be combined with doNotTrack true");
    if (pre && NonEmpty(spec, "egress")) return Invalid("spec.egress", "is not allowed with preDNAT true");
    if (pre) {
      for (const Json& t : spec["types"]) {
        if (t == "Egress") return Invalid("spec.types", ShowValue(spec["types"]) + " may not include Egress with preDNAT true");
      }
    }
    if ((dnt || pre) && !fwd) {
      return Invalid("spec.applyOnForward", "must be true when preDNAT or doNotTrack is true");
    }
    // At global scope a service name needs its namespace.
    for (const auto& [dir, side] : {std::pair<const char*, const char*>{"egress", "destination"},
                                    std::pair<const char*, const char*>{"ingress", "source"}}) {
      const Json* rules = At(spec, dir);
      if (!rules) continue;
      for (size_t i = 0; i < rules->size(); ++i) {
        const Json* entity = At((*rules)[i], side);
        const Json* services = entity ? At(*entity, "services") : nullptr;
        if (services && StrAt(*services, "namespace").empty()) {
          return Invalid(std::string("spec.") + dir + "[" + std::to_string(i) + "]." + side + ".services.namespace",
                         "required in a GlobalNetworkPolicy");
        }
      }
    }
  }
  return ValidateRules(spec);
}

// ---- Kinds ---------------------------------------------------------------------------------

absl::Status ValidateIPPool(Json& obj) {
  Json& spec = obj["spec"];
  std::string text = StrAt(spec, "cidr");
  if (text.empty()) return Invalid("spec.cidr", "required");
  std::optional<Cidr> cidr = ParseCidrOrIp(text);
  if (!cidr) return Invalid("spec.cidr", Q(text) + " is not a valid CIDR");
  Cidr masked = Masked(*cidr);
  if (masked.addr.bytes != cidr->addr.bytes) {
    return Invalid("spec.cidr", Q(text) + " is not strictly masked (did you mean " + FormatCidr(masked) + "?)");
  }
  spec["cidr"] = FormatCidr(*cidr);  // canonical text, as upstream persists it
  bool v4 = cidr->addr.family == 4;
  if (!NonEmpty(spec, "blockSize") || spec["blockSize"] == 0) spec["blockSize"] = v4 ? 26 : 122;
  int64_t block = spec["blockSize"].get<int64_t>();
  int64_t lo = v4 ? 20 : 116, hi = v4 ? 32 : 128;
  if (block < lo || block > hi) {
    return Invalid("spec.blockSize", absl::StrCat(block, " is outside ", lo, "-", hi, " for ", v4 ? "IPv4" : "IPv6"));
  }
  if (!BoolAt(spec, "disabled") && cidr->len > block) {
    return Invalid("spec.cidr", Q(spec["cidr"].get<std::string>()) + " is smaller than blockSize " +
                                    std::to_string(block));
  }
  const Cidr link_local = *ParseCidrOrIp(v4 ? "169.254.0.0/16" : "fe80::/10");
  if (Overlaps(*cidr, link_local)) {
    return Invalid("spec.cidr", Q(spec["cidr"].get<std::string>()) + " overlaps the " +
                                    (v4 ? "IPv4" : "IPv6") + " link-local range " + FormatCidr(link_local));
  }
  std::string ipip = StrAt(spec, "ipipMode"), vxlan = StrAt(spec, "vxlanMode");
  if (!v4 && ipip != "Never") return Invalid("spec.ipipMode", Q(ipip) + " is not supported on an IPv6 pool");
  if (ipip != "Never" && vxlan != "Never") {
    return Invalid("spec.ipipMode", Q(ipip) + " cannot be enabled together with vxlanMode " + Q(vxlan));
  }
  const Json& uses = spec["allowedUses"];
  bool lb = std::find(uses.begin(), uses.end(), Json("LoadBalancer")) != uses.end();
  if (lb) {
    for (const Json& u : uses) {
      if (u != "LoadBalancer") {
        return Invalid("spec.allowedUses", ShowValue(uses) + " cannot mix LoadBalancer with " + u.get<std::string>());
      }
    }
    if (ipip != "Never" || vxlan != "Never") {
      return Invalid("spec.allowedUses", ShowValue(uses) + " does not allow ipipMode or vxlanMode");
    }
    if (StrAt(spec, "nodeSelector") != "all()") {
      return Invalid("spec.nodeSelector", Q(StrAt(spec, "nodeSelector")) + " must be all() for a LoadBalancer pool");
    }
  }
  return absl::OkStatus();
}

bool IsCommunity(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t colon = s.find(':', start);
    parts.push_back(s.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() != 2 && parts.size() != 3) return false;
  uint64_t max = parts.size() == 2 ? 65535 : 4294967295ULL;
  for (const std::string& p : parts) {
    if (p.empty() || p.size() > 10 || !std::all_of(p.begin(), p.end(), ::isdigit)) return false;
    if (std::stoull(p) > max) return false;
  }
  return true;
}

absl::Status ValidateBGPConfiguration(Json& obj) {
  const Json& spec = obj["spec"];
  // Upstream's ValidateDefaultOnlyFields: cluster-wide settings live on "default" only.
  if (StrAt(obj["metadata"], "name") != "default") {
    for (const char* key : {"nodeToNodeMeshEnabled", "asNumber", "serviceLoadBalancerIPs", "serviceExternalIPs",
                            "serviceClusterIPs"}) {
      if (NonEmpty(spec, key)) {
        return Invalid(std::string("spec.") + key,
                       ShowValue(spec[key]) + " can only be set on the BGPConfiguration named \"default\"");
      }
    }
  }
  std::set<std::string> names;
  if (const Json* communities = At(spec, "communities")) {
    for (size_t i = 0; i < communities->size(); ++i) {
      std::string value = StrAt((*communities)[i], "value");
      if (!IsCommunity(value)) {
        return Invalid("spec.communities[" + std::to_string(i) + "].value",
                       Q(value) + " is not a community (aa:nn or aa:nn:mm)");
      }
      names.insert(StrAt((*communities)[i], "name"));
    }
    if (!NonEmpty(spec, "prefixAdvertisements")) {
      return Invalid("spec.communities", "are defined but not used in spec.prefixAdvertisements");
    }
  }
  if (const Json* ads = At(spec, "prefixAdvertisements")) {
    for (size_t i = 0; i < ads->size(); ++i) {
      const Json* used = At((*ads)[i], "communities");
      if (!used) continue;
      for (size_t j = 0; j < used->size(); ++j) {
        std::string c = (*used)[j].get<std::string>();
        if (!IsCommunity(c) && !names.count(c)) {
          return Invalid("spec.prefixAdvertisements[" + std::to_string(i) + "].communities[" + std::to_string(j) + "]",
                         Q(c) + " is neither a community value nor a name defined in spec.communities");
        }
      }
    }
  }
  const Json* mesh = At(spec, "nodeToNodeMeshEnabled");
  if (mesh && !mesh->get<bool>()) {
    for (const char* key : {"nodeMeshPassword", "nodeMeshMaxRestartTime"}) {
      if (NonEmpty(spec, key)) return Invalid(std::string("spec.") + key, "cannot be set when nodeToNodeMeshEnabled is false");
    }
  }
  return absl::OkStatus();
}

// "10.0.0.1", "10.0.0.1:179", "fd00::1" or "[fd00::1]:179"; returns the address part.
std::optional<IpAddr> ParseIpPort(const std::string& s) {
  if (std::optional<IpAddr> ip = ParseIp(s)) return ip;
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find("]:");
    if (close == std::string::npos) return std::nullopt;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    std::optional<IpAddr> ip = ParseIp(host);
    if (!ip || ip->family != 6) return std::nullopt;
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    std::optional<IpAddr> ip = ParseIp(host);
    if (!ip || ip->family != 4) return std::nullopt;
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return std::nullopt;
  int p = std::stoi(port);
  if (p < 1 || p > 65535) return std::nullopt;
  return ParseIp(host);
}

absl::Status ValidateBGPPeer(Json& obj) {
  const Json& spec = obj["spec"];
  if (NonEmpty(spec, "node") && NonEmpty(spec, "nodeSelector")) {
    return Invalid("spec.node", Q(StrAt(spec, "node")) + " must be empty when nodeSelector is set");
  }
  if (NonEmpty(spec, "peerIP") && NonEmpty(spec, "peerSelector")) {
    return Invalid("spec.peerIP", Q(StrAt(spec, "peerIP")) + " must be empty when peerSelector is set");
  }
  if (NonEmpty(spec, "asNumber") && NonEmpty(spec, "peerSelector")) {
    return Invalid("spec.asNumber", ShowValue(spec["asNumber"]) + " must be empty when peerSelector is set");
  }
  std::optional<IpAddr> peer;
  if (NonEmpty(spec, "peerIP")) {
    peer = ParseIpPort(StrAt(spec, "peerIP"));
    if (!peer) return Invalid("spec.peerIP", Q(StrAt(spec, "peerIP")) + " is not an IP address or IP:port");
  }
  if (NonEmpty(spec, "localWorkloadSelector")) {
    if (!NonEmpty(spec, "asNumber")) return Invalid("spec.asNumber", "required when localWorkloadSelector is set");
    if (peer) return Invalid("spec.peerIP", Q(StrAt(spec, "peerIP")) + " must be empty when localWorkloadSelector is set");
    if (NonEmpty(spec, "peerSelector")) {
      return Invalid("spec.peerSelector", Q(StrAt(spec, "peerSelector")) + " must be empty when localWorkloadSelector is set");
    }
  }
  if (NonEmpty(spec, "reachableBy")) {
    std::string rb = StrAt(spec, "reachableBy");
    if (!peer) return Invalid("spec.reachableBy", Q(rb) + " needs peerIP");
    if (ParseIp(rb)->family != peer->family) {
      return Invalid("spec.reachableBy", Q(rb) + " is not of the same address family as peerIP");
    }
  }
  if (BoolAt(spec, "keepOriginalNextHop") && NonEmpty(spec, "nextHopMode")) {
    return Invalid("spec.keepOriginalNextHop", "true cannot be combined with nextHopMode (it is deprecated)");
  }
  return absl::OkStatus();
}

absl::Status ValidateBGPFilter(Json& obj) {
  const Json& spec = obj["spec"];
  for (const char* key : {"exportV4", "importV4", "exportV6", "importV6"}) {
    const Json* rules = At(spec, key);
    if (!rules) continue;
    for (size_t i = 0; i < rules->size(); ++i) {
      const Json& r = (*rules)[i];
      std::string p = std::string("spec.") + key + "[" + std::to_string(i) + "]";
      if (NonEmpty(r, "cidr") != NonEmpty(r, "matchOperator")) {
        return Invalid(p, NonEmpty(r, "cidr") ? "cidr needs matchOperator" : "matchOperator needs cidr");
      }
      if (NonEmpty(r, "prefixLength") && !NonEmpty(r, "cidr")) return Invalid(p + ".prefixLength", "needs cidr");
      if (NonEmpty(r, "operations") && StrAt(r, "action") != "Accept") {
        return Invalid(p + ".operations", "are only allowed with action Accept");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateHostEndpoint(Json& obj) {
  const Json& spec = obj["spec"];
  if (!NonEmpty(spec, "node")) return Invalid("spec.node", "required");
  if (!NonEmpty(spec, "interfaceName") && !NonEmpty(spec, "expectedIPs")) {
    return Invalid("spec.interfaceName", "required when expectedIPs is empty");
  }
  if (const Json* ports = At(spec, "ports")) {
    for (size_t i = 0; i < ports->size(); ++i) {
      if (!SupportsPorts(At((*ports)[i], "protocol"))) {
        return Invalid("spec.ports[" + std::to_string(i) + "].protocol",
                       ShowValue((*ports)[i]["protocol"]) + " does not support ports (TCP, UDP or SCTP)");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateWorkloadEndpoint(Json& obj) {
  const Json& spec = obj["spec"];
  if (!NonEmpty(spec, "node")) return Invalid("spec.node", "required");
  std::string container = StrAt(spec, "containerID");
  if (!container.empty()) {
    auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    bool ok = alnum(container.front()) && alnum(container.back()) &&
              std::all_of(container.begin(), container.end(), [&](char c) { return alnum(c) || c == '-'; });
    if (!ok) return Invalid("spec.containerID", Q(container) + " is not a valid container ID");
  }
  std::vector<Cidr> networks;
  if (const Json* nets = At(spec, "ipNetworks")) {
    for (size_t i = 0; i < nets->size(); ++i) {
      Cidr c = *ParseCidrOrIp((*nets)[i].get<std::string>());
      if (c.len != c.addr.Bits()) {
        return Invalid("spec.ipNetworks[" + std::to_string(i) + "]",
                       ShowValue((*nets)[i]) + " must be a single address (/32 or /128)");
      }
      networks.push_back(c);
    }
  }
  if (const Json* nats = At(spec, "ipNATs")) {
    for (size_t i = 0; i < nats->size(); ++i) {
      IpAddr internal = *ParseIp(StrAt((*nats)[i], "internalIP"));
      IpAddr external = *ParseIp(StrAt((*nats)[i], "externalIP"));
      std::string p = "spec.ipNATs[" + std::to_string(i) + "]";
      if (internal.family != external.family) return Invalid(p + ".externalIP", "is not of the internalIP's family");
      bool inside = std::any_of(networks.begin(), networks.end(), [&](const Cidr& c) { return Contains(c, internal); });
      if (!inside) return Invalid(p + ".internalIP", Q(StrAt((*nats)[i], "internalIP")) + " is not in ipNetworks");
    }
  }
  if (const Json* ports = At(spec, "ports")) {
    for (size_t i = 0; i < ports->size(); ++i) {
      const Json& port = (*ports)[i];
      std::string p = "spec.ports[" + std::to_string(i) + "]";
      if (!SupportsPorts(At(port, "protocol"))) {
        return Invalid(p + ".protocol", ShowValue(port["protocol"]) + " does not support ports (TCP, UDP or SCTP)");
      }
      if (!NonEmpty(port, "name") && !NonEmpty(port, "hostPort")) return Invalid(p + ".name", "required when hostPort is not set");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNetworkSet(Json& obj) {
  const Json* labels = At(obj["metadata"], "labels");
  if (labels && labels->contains("projectcalico.org/namespace")) {
    return Invalid("metadata.labels", "\"projectcalico.org/namespace\" is reserved and may not be set");
  }
  return absl::OkStatus();
}

absl::Status ValidateTier(Json& obj) {
  const Json* order = At(obj["spec"], "order");
  if (StrAt(obj["metadata"], "name") == "default" && order && order->get<double>() != 1000000.0) {
    return Invalid("spec.order", ShowValue(*order) + " must be 1000000 for the default tier");
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelSelector(const Json& sel, const std::string& path) {
  const Json* exprs = At(sel, "matchExpressions");
  if (!exprs) return absl::OkStatus();
  for (size_t i = 0; i < exprs->size(); ++i) {
    const Json& e = (*exprs)[i];
    std::string op = StrAt(e, "operator");
    bool has_values = NonEmpty(e, "values");
    std::string p = path + ".matchExpressions[" + std::to_string(i) + "].values";
    if ((op == "In" || op == "NotIn") && !has_values) return Invalid(p, "required for operator " + Q(op));
    if ((op == "Exists" || op == "DoesNotExist") && has_values) return Invalid(p, "must be empty for operator " + Q(op));
  }
  return absl::OkStatus();
}

absl::Status ValidateK8sNetworkPolicy(Json& obj) {
  Json& spec = obj["spec"];
  DefaultPolicyTypes(spec, "policyTypes", true);
  RETURN_IF_ERROR(NoDuplicateTypes(spec, "policyTypes"));
  RETURN_IF_ERROR(ValidateLabelSelector(spec["podSelector"], "spec.podSelector"));
  for (const auto& [dir, peers_key] : {std::pair<const char*, const char*>{"ingress", "from"},
                                       std::pair<const char*, const char*>{"egress", "to"}}) {
    const Json* rules = At(spec, dir);
    if (!rules) continue;
    for (size_t i = 0; i < rules->size(); ++i) {
      std::string rp = std::string("spec.") + dir + "[" + std::to_string(i) + "]";
      const Json& rule = (*rules)[i];
      if (const Json* peers = At(rule, peers_key)) {
        for (size_t j = 0; j < peers->size(); ++j) {
          const Json& peer = (*peers)[j];
          std::string pp = rp + "." + peers_key + "[" + std::to_string(j) + "]";
          bool pod = At(peer, "podSelector"), ns = At(peer, "namespaceSelector"), block = At(peer, "ipBlock");
          if (!pod && !ns && !block) return Invalid(pp, "needs podSelector, namespaceSelector or ipBlock");
          if (block && (pod || ns)) return Invalid(pp + ".ipBlock", "cannot be combined with podSelector or namespaceSelector");
          if (pod) RETURN_IF_ERROR(ValidateLabelSelector(peer["podSelector"], pp + ".podSelector"));
          if (ns) RETURN_IF_ERROR(ValidateLabelSelector(peer["namespaceSelector"], pp + ".namespaceSelector"));
          if (block) {
            std::string text = StrAt(peer["ipBlock"], "cidr");
            std::optional<Cidr> cidr = ParseCidrOrIp(text);
            if (!cidr || text.find('/') == std::string::npos) {
              return Invalid(pp + ".ipBlock.cidr", Q(text) + " is not a valid CIDR");
            }
            if (const Json* except = At(peer["ipBlock"], "except")) {
              for (size_t k = 0; k < except->size(); ++k) {
                std::string et = (*except)[k].get<std::string>();
                std::optional<Cidr> e = ParseCidrOrIp(et);
                std::string ep = pp + ".ipBlock.except[" + std::to_string(k) + "]";
                if (!e || et.find('/') == std::string::npos) return Invalid(ep, Q(et) + " is not a valid CIDR");
                if (!Contains(*cidr, e->addr) || e->len <= cidr->len) {
                  return Invalid(ep, Q(et) + " is not strictly inside " + Q(text));
                }
              }
            }
          }
        }
      }
      if (const Json* ports = At(rule, "ports")) {
        for (size_t j = 0; j < ports->size(); ++j) {
          const Json& port = (*ports)[j];
          std::string pp = rp + ".ports[" + std::to_string(j) + "]";
          if (const Json* p = At(port, "port")) {
            if (p->is_number() && (p->get<int64_t>() < 1 || p->get<int64_t>() > 65535)) {
              return Invalid(pp + ".port", ShowValue(*p) + " is outside 1-65535");
            }
            if (p->is_string() && !p->get<std::string>().empty()) {
              std::string name = p->get<std::string>();
              bool ok = name.size() <= 15 && IsDnsLabel(name) &&
                        std::any_of(name.begin(), name.end(), [](char c) { return c >= 'a' && c <= 'z'; });
              if (!ok) return Invalid(pp + ".port", Q(name) + " is not a valid port name");
            }
          }
          if (const Json* end = At(port, "endPort")) {
            const Json* p = At(port, "port");
            if (!p || !p->is_number()) return Invalid(pp + ".endPort", ShowValue(*end) + " needs a numeric port");
            if (end->get<int64_t>() < p->get<int64_t>()) {
              return Invalid(pp + ".endPort", ShowValue(*end) + " is less than port " + ShowValue(*p));
            }
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateKind(const KindInfo& kind, Json& obj) {
  RETURN_IF_ERROR(ValidateMetadata(kind, obj["metadata"]));
  if (kind.api_version == "networking.k8s.io/v1") return ValidateK8sNetworkPolicy(obj);
  std::string_view k = kind.kind;
  if (k == "IPPool") return ValidateIPPool(obj);
  if (k == "IPAMConfiguration" && StrAt(obj["metadata"], "name") != "default") {
    return Invalid("metadata.name", Q(StrAt(obj["metadata"], "name")) + " must be \"default\" (IPAMConfiguration is a singleton)");
  }
  if (k == "BGPConfiguration") return ValidateBGPConfiguration(obj);
  if (k == "BGPPeer") return ValidateBGPPeer(obj);
  if (k == "BGPFilter") return ValidateBGPFilter(obj);
  if (k == "Tier") return ValidateTier(obj);
  if (k == "NetworkPolicy" || k == "GlobalNetworkPolicy") return ValidatePolicy(kind, obj);
  if (k == "Profile") return ValidateRules(obj["spec"]);
  if (k == "NetworkSet" || k == "GlobalNetworkSet") return ValidateNetworkSet(obj);
  if (k == "HostEndpoint") return ValidateHostEndpoint(obj);
  if (k == "WorkloadEndpoint") return ValidateWorkloadEndpoint(obj);
  return absl::OkStatus();
}

}  // namespace calico::resources::internal
