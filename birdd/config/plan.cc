#include "birdd/config/plan.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/resources/selector/selector.h"

namespace calico::birdd::config {
namespace {

using resources::Json;
using resources::Resource;

const Json* Find(const Json& object, std::string_view path) {
  const Json* at = &object;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('.', start);
    if (end == std::string_view::npos) end = path.size();
    std::string key(path.substr(start, end - start));
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
    start = end + 1;
  }
  return at;
}

std::string String(const Json& object, std::string_view path) {
  const Json* v = Find(object, path);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

std::optional<uint32_t> Asn(const Json& object, std::string_view path) {
  const Json* v = Find(object, path);
  if (v == nullptr || !v->is_number_integer()) return std::nullopt;
  return static_cast<uint32_t>(v->get<int64_t>());
}

resources::Labels LabelsOf(const Resource& r) {
  resources::Labels labels;
  const Json* l = Find(r.object, "metadata.labels");
  if (l == nullptr || !l->is_object()) return labels;
  for (auto it = l->begin(); it != l->end(); ++it) {
    if (it.value().is_string()) labels[it.key()] = it.value().get<std::string>();
  }
  return labels;
}

// "10.0.0.1/24" (Node.spec.bgp.ipv4Address) → 10.0.0.1.
std::optional<net::IpAddress> NodeAddress(const Resource& node, int family) {
  std::string text = String(node.object, family == 4 ? "spec.bgp.ipv4Address" : "spec.bgp.ipv6Address");
  if (text.empty()) return std::nullopt;
  std::optional<net::Prefix> p = net::ParseCidrOrIp(text);
  if (!p || p->addr.family != family) return std::nullopt;
  return p->addr;
}

std::optional<uint32_t> ClusterId(const Resource& node) {
  std::optional<net::IpAddress> id = net::ParseIp(String(node.object, "spec.bgp.routeReflectorClusterID"));
  if (!id || id->family != 4) return std::nullopt;
  return (uint32_t{id->bytes[0]} << 24) | (uint32_t{id->bytes[1]} << 16) | (uint32_t{id->bytes[2]} << 8) |
         id->bytes[3];
}

std::string ProtocolName(std::string_view prefix, const net::IpAddress& address, uint16_t port) {
  std::string name = absl::StrCat(std::string(prefix), "_", absl::StrReplaceAll(net::FormatIp(address), {{".", "_"}, {":", "_"}}));
  if (port != kDefaultPort) absl::StrAppend(&name, "_port_", port);
  return name;
}

// "10.0.0.9", "10.0.0.9:1179", "fd00::9", "[fd00::9]:1179".
std::optional<std::pair<net::IpAddress, uint16_t>> ParsePeerIp(const std::string& text) {
  if (std::optional<net::IpAddress> ip = net::ParseIp(text)) return std::make_pair(*ip, kDefaultPort);
  std::string host;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find("]:");
    if (close == std::string::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  std::optional<net::IpAddress> ip = net::ParseIp(host);
  uint32_t p = 0;
  if (!ip || !absl::SimpleAtoi(port, &p) || p == 0 || p > 65535) return std::nullopt;
  return std::make_pair(*ip, static_cast<uint16_t>(p));
}

uint32_t HashRouterId(std::string_view node) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (char c : node) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  return h == 0 ? 1 : h;
}

const Resource* ByName(const std::vector<Resource>& list, std::string_view name) {
  for (const Resource& r : list) {
    if (r.Name() == name) return &r;
  }
  return nullptr;
}

// The password a resource's `password.secretKeyRef` names: "" with no password, nullopt (and a
// problem) when it cannot be read.
std::optional<std::string> Password(const Json& object, std::string_view path, const std::string& who,
                                    const SecretReader& secrets, std::vector<std::string>& problems) {
  const Json* ref = Find(object, path);
  if (ref == nullptr) return std::string();
  std::string name = String(*ref, "secretKeyRef.name");
  std::string key = String(*ref, "secretKeyRef.key");
  const Json* optional = Find(*ref, "secretKeyRef.optional");
  if (name.empty() || key.empty()) return std::string();
  absl::StatusOr<std::string> value =
      secrets ? secrets(name, key) : absl::NotFoundError("no secret store configured");
  if (value.ok()) return *value;
  if (optional != nullptr && optional->is_boolean() && optional->get<bool>() && absl::IsNotFound(value.status())) {
    return std::string();
  }
  problems.push_back(absl::StrCat(who, ": password secret ", name, "/", key, " unreadable (",
                                  value.status().message(), "); peer left out"));
  return std::nullopt;
}

// "65000:100" → standard; "65000:100:200" → large. nullopt when neither.
bool ParseCommunity(const std::string& text, PrefixCommunities& out) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t colon = text.find(':', start);
    parts.push_back(text.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  std::vector<uint32_t> values;
  for (const std::string& p : parts) {
    uint32_t v = 0;
    if (!absl::SimpleAtoi(p, &v)) return false;
    values.push_back(v);
  }
  if (values.size() == 2 && values[0] <= 0xffff && values[1] <= 0xffff) {
    out.standard.push_back((values[0] << 16) | values[1]);
    return true;
  }
  if (values.size() == 3) {
    out.large.push_back({values[0], values[1], values[2]});
    return true;
  }
  return false;
}

std::vector<PrefixCommunities> CommunitiesOf(const Json& config, std::vector<std::string>& problems) {
  std::map<std::string, std::string> named;
  if (const Json* defs = Find(config, "spec.communities"); defs != nullptr && defs->is_array()) {
    for (const Json& d : *defs) named[String(d, "name")] = String(d, "value");
  }
  std::vector<PrefixCommunities> out;
  const Json* ads = Find(config, "spec.prefixAdvertisements");
  if (ads == nullptr || !ads->is_array()) return out;
  for (const Json& ad : *ads) {
    PrefixCommunities pc;
    std::optional<net::Prefix> cidr = net::ParsePrefix(String(ad, "cidr"));
    if (!cidr) continue;
    pc.cidr = net::Masked(*cidr);
    if (const Json* list = Find(ad, "communities"); list != nullptr && list->is_array()) {
      for (const Json& c : *list) {
        if (!c.is_string()) continue;
        std::string v = c.get<std::string>();
        auto n = named.find(v);
        if (n != named.end()) v = n->second;
        if (!ParseCommunity(v, pc)) {
          problems.push_back(absl::StrCat("BGPConfiguration \"default\": community \"", v, "\" is not aa:nn or aa:nn:mm"));
        }
      }
    }
    out.push_back(std::move(pc));
  }
  return out;
}

// BGPFilter rules of one direction and family ("importV4", ...).
std::vector<FilterRule> RulesOf(const Resource& filter, const char* field) {
  std::vector<FilterRule> out;
  const Json* rules = Find(filter.object, absl::StrCat("spec.", field));
  if (rules == nullptr || !rules->is_array()) return out;
  for (const Json& r : *rules) {
    FilterRule rule;
    if (std::string cidr = String(r, "cidr"); !cidr.empty()) {
      if (std::optional<net::Prefix> p = net::ParsePrefix(cidr)) rule.cidr = net::Masked(*p);
    }
    std::string op = String(r, "matchOperator");
    if (op == "Equal") rule.op = FilterRule::Op::kEqual;
    if (op == "NotEqual") rule.op = FilterRule::Op::kNotEqual;
    if (op == "NotIn") rule.op = FilterRule::Op::kNotIn;
    if (const Json* len = Find(r, "prefixLength"); len != nullptr && len->is_object()) {
      if (len->contains("min") && (*len)["min"].is_number_integer()) rule.min_len = (*len)["min"].get<int>();
      if (len->contains("max") && (*len)["max"].is_number_integer()) rule.max_len = (*len)["max"].get<int>();
    }
    rule.remote_only = String(r, "source") == "RemotePeers";
    rule.accept = String(r, "action") != "Reject";
    out.push_back(rule);
  }
  return out;
}

}  // namespace

bool FilterAccepts(const std::vector<FilterRule>& rules, const net::Prefix& prefix, bool from_peer) {
  for (const FilterRule& r : rules) {
    if (r.remote_only && !from_peer) continue;
    bool match = true;
    if (r.cidr) {
      if (r.cidr->addr.family != prefix.addr.family) continue;
      const bool inside = net::Contains(*r.cidr, prefix);
      switch (r.op) {
        case FilterRule::Op::kEqual:
          match = *r.cidr == prefix;
          break;
        case FilterRule::Op::kNotEqual:
          match = !(*r.cidr == prefix);
          break;
        case FilterRule::Op::kIn:
          match = inside;
          break;
        case FilterRule::Op::kNotIn:
          match = !inside;
          break;
      }
    }
    if (match && r.min_len && prefix.len < *r.min_len) match = false;
    if (match && r.max_len && prefix.len > *r.max_len) match = false;
    if (match) return r.accept;
  }
  return true;
}

std::string_view PeerTypeName(PeerType type) {
  switch (type) {
    case PeerType::kMesh:
      return "node-to-node mesh";
    case PeerType::kGlobal:
      return "global";
    case PeerType::kNodeSpecific:
      return "node specific";
  }
  return "?";
}

absl::StatusOr<Plan> MakePlan(const Inputs& in, std::string_view node_name, const SecretReader& secrets) {
  const Resource* self = ByName(in.nodes, node_name);
  if (self == nullptr) return absl::NotFoundError(absl::StrCat("Node \"", std::string(node_name), "\" does not exist"));
  Plan plan;
  const Resource* global = ByName(in.bgp_configurations, "default");
  static const Json kEmpty = Json::object();
  const Json& g = global != nullptr ? global->object : kEmpty;
  const uint32_t default_as = Asn(g, "spec.asNumber").value_or(kDefaultAs);
  const Json* mesh_flag = Find(g, "spec.nodeToNodeMeshEnabled");
  const bool mesh = mesh_flag == nullptr || !mesh_flag->is_boolean() || mesh_flag->get<bool>();
  // Each node listens on its own BGPConfiguration's port, else the global one.
  auto port_of = [&](std::string_view node) {
    uint16_t port = kDefaultPort;
    for (const Resource* c : {global, ByName(in.bgp_configurations, absl::StrCat("node.", std::string(node)))}) {
      if (c == nullptr) continue;
      if (const Json* p = Find(c->object, "spec.listenPort"); p != nullptr && p->is_number_integer()) {
        port = static_cast<uint16_t>(p->get<int>());
      }
    }
    return port;
  };
  plan.listen_port = port_of(node_name);
  absl::Duration mesh_restart = kDefaultRestartTime;
  if (std::string d = String(g, "spec.nodeMeshMaxRestartTime"); !d.empty()) {
    (void)absl::ParseDuration(d, &mesh_restart);
  }

  plan.communities = CommunitiesOf(g, plan.problems);
  plan.ipv4 = NodeAddress(*self, 4);
  if (std::optional<net::Prefix> p = net::ParseCidrOrIp(String(self->object, "spec.bgp.ipv4Address")); p && plan.ipv4) {
    plan.ipv4_subnet = net::Masked(*p);
  }
  plan.ipv6 = NodeAddress(*self, 6);
  plan.enabled = plan.ipv4 || plan.ipv6;
  if (!plan.enabled) return plan;
  plan.as = Asn(self->object, "spec.bgp.asNumber").value_or(default_as);
  plan.cluster_id = ClusterId(*self);
  if (plan.ipv4) {
    const auto& b = plan.ipv4->bytes;
    plan.router_id = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  } else {
    plan.router_id = HashRouterId(node_name);
  }
  auto own = [&](int family) { return family == 4 ? plan.ipv4 : plan.ipv6; };

  std::map<net::IpAddress, Peer> explicit_peers;
  std::map<net::IpAddress, Peer> mesh_peers;

  // A session to another Calico node (mesh or peerSelector): both ends run this same rule.
  auto node_peer = [&](const Resource& other, int family, PeerType type, const std::string& prefix) -> std::optional<Peer> {
    std::optional<net::IpAddress> mine = own(family);
    std::optional<net::IpAddress> theirs = NodeAddress(other, family);
    if (!mine || !theirs || *mine == *theirs) return std::nullopt;
    Peer p;
    p.type = type;
    p.address = *theirs;
    p.port = port_of(other.Name());
    p.as = Asn(other.object, "spec.bgp.asNumber").value_or(default_as);
    p.passive = net::FormatIp(*mine) > net::FormatIp(*theirs);
    p.source_address = mine;
    p.name = ProtocolName(prefix, *theirs, p.port);
    std::optional<uint32_t> theirs_cluster = ClusterId(other);
    p.rr_client = plan.cluster_id && theirs_cluster != plan.cluster_id;
    p.origin = other.Describe();
    return p;
  };

  if (mesh) {
    std::optional<std::string> password =
        Password(g, "spec.nodeMeshPassword", "BGPConfiguration \"default\"", secrets, plan.problems);
    for (const Resource& other : in.nodes) {
      if (other.Name() == node_name || !password) continue;
      for (int family : {4, 6}) {
        std::optional<Peer> p = node_peer(other, family, PeerType::kMesh, "Mesh");
        if (!p) continue;
        p->password = *password;
        p->restart_time = mesh_restart;
        mesh_peers[p->address] = *p;
      }
    }
  }

  std::vector<const Resource*> peers;
  for (const Resource& r : in.bgp_peers) peers.push_back(&r);
  std::sort(peers.begin(), peers.end(), [](const Resource* a, const Resource* b) { return a->Name() < b->Name(); });
  const resources::Labels self_labels = LabelsOf(*self);
  for (const Resource* r : peers) {
    const Json& o = r->object;
    const std::string who = r->Describe();
    std::string node = String(o, "spec.node");
    std::string node_selector = String(o, "spec.nodeSelector");
    std::optional<resources::selector::Selector> scope;  // nodeSelector
    if (!node_selector.empty()) {
      absl::StatusOr<resources::selector::Selector> sel = resources::selector::Selector::Parse(node_selector);
      if (!sel.ok()) {
        plan.problems.push_back(absl::StrCat(who, ": spec.nodeSelector: ", sel.status().message()));
        continue;
      }
      scope = *sel;
    }
    // Whether a node is one this BGPPeer configures (spec.node, spec.nodeSelector, or all).
    auto in_scope = [&](const Resource& n) {
      if (!node.empty()) return n.Name() == node;
      return !scope || scope->Matches(LabelsOf(n));
    };
    std::optional<resources::selector::Selector> peer_sel;
    if (std::string text = String(o, "spec.peerSelector"); !text.empty()) {
      absl::StatusOr<resources::selector::Selector> sel = resources::selector::Selector::Parse(text);
      if (!sel.ok()) {
        plan.problems.push_back(absl::StrCat(who, ": spec.peerSelector: ", sel.status().message()));
        continue;
      }
      peer_sel = *sel;
    }
    const bool forward = in_scope(*self);
    // Reverse peering (upstream's reversePeering: Auto): a node that a peerSelector selects
    // peers back with the nodes in the BGPPeer's scope, so one resource makes both ends.
    const bool reverse = peer_sel && String(o, "spec.reversePeering") != "Manual" && peer_sel->Matches(self_labels);
    if (!forward && !reverse) continue;
    const PeerType type = node.empty() && node_selector.empty() ? PeerType::kGlobal : PeerType::kNodeSpecific;
    const std::string prefix = type == PeerType::kGlobal ? "Global" : "Node";
    std::optional<std::string> password = Password(o, "spec.password", who, secrets, plan.problems);
    if (!password) continue;
    const bool use_node_ip = String(o, "spec.sourceAddress") != "None";
    const Json* keep_flag = Find(o, "spec.keepOriginalNextHop");
    const bool keep = (keep_flag != nullptr && keep_flag->is_boolean() && keep_flag->get<bool>()) ||
                      String(o, "spec.nextHopMode") == "Keep";
    absl::Duration restart = kDefaultRestartTime;
    if (std::string d = String(o, "spec.maxRestartTime"); !d.empty()) (void)absl::ParseDuration(d, &restart);
    int ttl = 0;
    if (const Json* t = Find(o, "spec.ttlSecurity"); t != nullptr && t->is_number_integer()) ttl = t->get<int>();

    std::vector<Peer> found;
    if (peer_sel) {
      for (const Resource& other : in.nodes) {
        if (other.Name() == node_name) continue;
        bool wanted = (forward && peer_sel->Matches(LabelsOf(other))) || (reverse && in_scope(other));
        if (!wanted) continue;
        for (int family : {4, 6}) {
          if (std::optional<Peer> p = node_peer(other, family, type, prefix)) found.push_back(*p);
        }
      }
    } else if (forward) {
      std::optional<std::pair<net::IpAddress, uint16_t>> ip = ParsePeerIp(String(o, "spec.peerIP"));
      if (!ip) {
        plan.problems.push_back(absl::StrCat(who, ": spec.peerIP \"", String(o, "spec.peerIP"),
                                             "\" is not an IP or IP:port"));
        continue;
      }
      std::optional<net::IpAddress> mine = own(ip->first.family);
      if (!mine) continue;  // no address of that family on this node: upstream skips it too
      if (*mine == ip->first) continue;
      Peer p;
      p.type = type;
      p.address = ip->first;
      p.port = ip->second;
      p.as = Asn(o, "spec.asNumber").value_or(plan.as);
      p.source_address = mine;
      p.name = ProtocolName(prefix, p.address, p.port);
      p.origin = who;
      found.push_back(p);
    }
    std::array<std::vector<FilterRule>, 2> import_rules;
    std::array<std::vector<FilterRule>, 2> export_rules;
    bool filters_ok = true;
    if (const Json* names = Find(o, "spec.filters"); names != nullptr && names->is_array()) {
      for (const Json& n : *names) {
        const Resource* f = n.is_string() ? ByName(in.bgp_filters, n.get<std::string>()) : nullptr;
        if (f == nullptr) {
          plan.problems.push_back(absl::StrCat(who, ": BGPFilter \"", n.is_string() ? n.get<std::string>() : "?",
                                               "\" does not exist; peer left out"));
          filters_ok = false;
          continue;
        }
        for (int v : {0, 1}) {
          for (FilterRule& r : RulesOf(*f, v == 0 ? "importV4" : "importV6")) import_rules[v].push_back(r);
          for (FilterRule& r : RulesOf(*f, v == 0 ? "exportV4" : "exportV6")) export_rules[v].push_back(r);
        }
      }
    }
    // A peer whose filter is missing would get (or give) routes the operator meant to block.
    if (!filters_ok) continue;
    for (Peer& p : found) {
      p.import_rules = import_rules;
      p.export_rules = export_rules;
      p.password = *password;
      if (!use_node_ip) p.source_address.reset();
      p.keep_original_next_hop = keep;
      p.restart_time = restart;
      p.ttl_security = ttl;
      auto [it, inserted] = explicit_peers.emplace(p.address, p);
      if (!inserted && it->second.origin != p.origin) {
        plan.problems.push_back(absl::StrCat(who, ": peer ", net::FormatIp(p.address), " is already configured by ",
                                             it->second.origin, "; ignored"));
      }
    }
  }
  for (auto& [address, p] : mesh_peers) explicit_peers.emplace(address, std::move(p));
  for (auto& [address, p] : explicit_peers) plan.peers.push_back(std::move(p));
  return plan;
}

SecretReader FileSecrets(std::string dir) {
  return [dir = std::move(dir)](std::string_view name, std::string_view key) -> absl::StatusOr<std::string> {
    if (dir.empty()) return absl::NotFoundError("no --secrets_dir");
    if (name.find('/') != std::string_view::npos || key.find('/') != std::string_view::npos || name == ".." ||
        key == "..") {
      return absl::InvalidArgumentError("secret name or key contains '/'");
    }
    std::string path = absl::StrCat(dir, "/", std::string(name), "/", std::string(key));
    std::ifstream f(path);
    if (!f) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    std::stringstream s;
    s << f.rdbuf();
    std::string value = s.str();
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    return value;
  };
}

}  // namespace calico::birdd::config
