#include "felixd/policy_compiler/compiler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/net/ip.h"
#include "felixd/policy/explain.h"

namespace calico::felixd::policy_compiler {
namespace {

using policy::Direction;
using policy::NamedPortMember;

std::string Hash(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return absl::StrCat(absl::Hex(h, absl::kZeroPad16));  // = %016x, without the format parser
}

std::string NamedPortElement(const NamedPortMember& m, int protocol) {
  return absl::StrCat(net::FormatIp(m.address.addr), " . ", protocol, " . ", m.port);
}

bool HasPorts(int protocol) {
  return protocol == policy::kProtoTcp || protocol == policy::kProtoUdp ||
         protocol == policy::kProtoSctp || protocol == policy::kProtoUdpLite;
}
constexpr int kPortProtocols[] = {policy::kProtoTcp, policy::kProtoUdp, policy::kProtoSctp,
                                  policy::kProtoUdpLite};

std::string AddrText(const net::Prefix& p) {
  return p.len == p.addr.Bits() ? net::FormatIp(p.addr) : net::FormatCidr(p);
}

// Interval-set elements of a union of prefixes: prefixes inside another are dropped (the kernel
// refuses overlapping intervals).
nft::Elements PrefixElements(const std::vector<net::Prefix>& prefixes, int family) {
  std::vector<net::Prefix> v;
  for (const net::Prefix& p : prefixes) {
    if (p.addr.family == family) v.push_back(net::Masked(p));
  }
  std::sort(v.begin(), v.end());
  nft::Elements out;
  const net::Prefix* last = nullptr;
  for (const net::Prefix& p : v) {
    if (last && net::Contains(*last, p)) continue;
    out.emplace(AddrText(p), "");
    last = &p;
  }
  return out;
}

// A disjunct under construction: a conjunction of expressions, the address family it is
// confined to (0: any) and the L4 protocol it matches (-1: any).
struct Alt {
  int family = 0;
  int proto = -1;
  std::vector<nft::Expr> exprs;
};
using Alts = std::vector<Alt>;  // empty: never matches

Alts Cross(const Alts& a, const Alts& b) {
  Alts out;
  for (const Alt& x : a) {
    for (const Alt& y : b) {
      if (x.family && y.family && x.family != y.family) continue;
      if (x.proto >= 0 && y.proto >= 0 && x.proto != y.proto) continue;
      Alt z = x;
      z.family = x.family ? x.family : y.family;
      z.proto = x.proto >= 0 ? x.proto : y.proto;
      z.exprs.insert(z.exprs.end(), y.exprs.begin(), y.exprs.end());
      out.push_back(std::move(z));
    }
  }
  return out;
}

// An interval set (named fields: felixd/nft's SetSpec grows).
nft::DesiredSet Set(const std::string& name, nft::KeyType key, nft::Elements elements) {
  nft::DesiredSet s;
  s.spec.name = name;
  s.spec.key = key;
  s.spec.interval = true;
  s.elements = std::move(elements);
  return s;
}

class RuleCompiler {
 public:
  explicit RuleCompiler(CompiledRules& out) : out_(out) {}

  Alts Compile(const policy::Rule& r) {
    if (!r.unsupported.empty()) return {};
    Alts alts{Alt{}};
    if (r.ip_version) alts = Cross(alts, {Alt{*r.ip_version, -1, {}}});
    alts = Cross(alts, Protocols(r));
    alts = Cross(alts, Icmp(r));
    for (const policy::RuleSide* side : {&r.source, &r.destination}) {
      nft::Dir dir = side == &r.source ? nft::Dir::kSource : nft::Dir::kDest;
      alts = Cross(alts, Addresses(*side, dir));
    }
    int named_proto = r.protocol.value_or(policy::kProtoTcp);  // as the index keys them
    for (const policy::RuleSide* side : {&r.source, &r.destination}) {
      nft::Dir dir = side == &r.source ? nft::Dir::kSource : nft::Dir::kDest;
      alts = Cross(alts, Ports(side->ports, dir, named_proto));
      alts = Cross(alts, NotPorts(side->not_ports, dir, named_proto));
    }
    return alts;
  }

 private:
  Alts Protocols(const policy::Rule& r) {
    bool ports = !r.source.ports.empty() || !r.source.not_ports.empty() ||
                 !r.destination.ports.empty() || !r.destination.not_ports.empty();
    Alt base;
    if (r.not_protocol) base.exprs.push_back(nft::L4ProtoMatch{uint8_t(*r.not_protocol), true});
    if (r.protocol) {
      if (r.not_protocol && *r.not_protocol == *r.protocol) return {};
      if (ports && !HasPorts(*r.protocol)) return {};
      base.proto = *r.protocol;
      base.exprs = {nft::L4ProtoMatch{uint8_t(*r.protocol), false}};
      return {base};
    }
    if (!ports) return {base};
    // Ports imply a protocol that has them (Explain: a port criterion fails otherwise).
    Alts out;
    for (int p : kPortProtocols) {
      if (r.not_protocol && *r.not_protocol == p) continue;
      out.push_back(Alt{0, p, {nft::L4ProtoMatch{uint8_t(p), false}}});
    }
    return out;
  }

  static bool IcmpPossible(const policy::Rule& r, int p) {
    return (!r.protocol || *r.protocol == p) && (!r.not_protocol || *r.not_protocol != p);
  }

  Alts Icmp(const policy::Rule& r) {
    Alts out;
    if (r.icmp) {
      for (int p : {policy::kProtoIcmp, policy::kProtoIcmpV6}) {
        if (!IcmpPossible(r, p)) continue;
        int family = p == policy::kProtoIcmp ? 4 : 6;
        Alt a{0, p, {}};
        if (!r.protocol) a.exprs.push_back(nft::L4ProtoMatch{uint8_t(p), false});
        a.exprs.push_back(nft::IcmpMatch{family, uint8_t(r.icmp->type), r.icmp->code.value_or(-1), false});
        out.push_back(std::move(a));
      }
    } else {
      out.push_back(Alt{});
    }
    if (!r.not_icmp) return out;
    // not (ICMP of type T [and code C]): any other protocol, or ICMP of another type, or (with a
    // code) type T with another code. nft negates each field on its own ("type != T code != C"
    // is a conjunction), so "type T, code != C" is written as type == T, type != T+1, code != C.
    Alts neg;
    if (!r.protocol || !(*r.protocol == policy::kProtoIcmp || *r.protocol == policy::kProtoIcmpV6)) {
      Alt other;
      if (!r.protocol) {
        other.exprs = {nft::L4ProtoMatch{policy::kProtoIcmp, true},
                       nft::L4ProtoMatch{policy::kProtoIcmpV6, true}};
      }
      neg.push_back(std::move(other));
    }
    for (int p : {policy::kProtoIcmp, policy::kProtoIcmpV6}) {
      if (!IcmpPossible(r, p)) continue;
      int family = p == policy::kProtoIcmp ? 4 : 6;
      uint8_t type = uint8_t(r.not_icmp->type);
      Alt a{0, p, {}};
      if (!r.protocol) a.exprs.push_back(nft::L4ProtoMatch{uint8_t(p), false});
      Alt b = a;
      a.exprs.push_back(nft::IcmpMatch{family, type, -1, true});
      neg.push_back(std::move(a));
      if (r.not_icmp->code) {
        b.exprs.push_back(nft::IcmpMatch{family, type, -1, false});
        b.exprs.push_back(nft::IcmpMatch{family, uint8_t(type + 1), *r.not_icmp->code, true});
        neg.push_back(std::move(b));
      }
    }
    return Cross(out, neg);
  }

  std::string NetsSet(const std::vector<net::Prefix>& nets, int family) {
    nft::Elements e = PrefixElements(nets, family);
    std::string keys;
    for (const auto& [k, _] : e) absl::StrAppend(&keys, k, ",");
    std::string name = absl::StrCat("n", family, "-", Hash(keys));
    out_.static_sets[name] = Set(name, family == 4 ? nft::KeyType::kIpv4 : nft::KeyType::kIpv6, std::move(e));
    return name;
  }

  static bool HasFamily(const std::vector<net::Prefix>& nets, int family) {
    return std::any_of(nets.begin(), nets.end(),
                       [&](const net::Prefix& p) { return p.addr.family == family; });
  }

  Alts Addresses(const policy::RuleSide& side, nft::Dir dir) {
    Alts alts{Alt{}};
    if (!side.nets.empty()) {
      Alts a;
      for (int f : {4, 6}) {
        if (HasFamily(side.nets, f)) a.push_back(Alt{f, -1, {nft::AddrSetMatch{f, dir, NetsSet(side.nets, f), false}}});
      }
      alts = Cross(alts, a);
    }
    if (!side.not_nets.empty()) {
      Alts a;
      for (int f : {4, 6}) {
        Alt x{f, -1, {}};
        if (HasFamily(side.not_nets, f)) x.exprs.push_back(nft::AddrSetMatch{f, dir, NetsSet(side.not_nets, f), true});
        a.push_back(std::move(x));
      }
      alts = Cross(alts, a);
    }
    auto selector = [&](const std::string& key, bool negate) {
      Alts a;
      for (int f : {4, 6}) {
        std::string name = SelectorSetName(key, f);
        out_.selector_sets[name] = key;
        a.push_back(Alt{f, -1, {nft::AddrSetMatch{f, dir, name, negate}}});
      }
      alts = Cross(alts, a);
    };
    if (side.selector) selector(side.selector->Key(), false);
    if (side.not_selector) selector(policy::NotSelectorKey(*side.not_selector), true);
    return alts;
  }

  nft::Expr PortList(const std::vector<policy::PortRange>& ranges, nft::Dir dir, bool negate) {
    std::vector<policy::PortRange> v = ranges;
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first < b.first; });
    std::vector<policy::PortRange> merged;
    for (const policy::PortRange& r : v) {
      if (!merged.empty() && r.first <= merged.back().last + 1) {
        merged.back().last = std::max(merged.back().last, r.last);
      } else {
        merged.push_back(r);
      }
    }
    if (merged.size() == 1) {
      return nft::PortMatch{dir, uint16_t(merged[0].first), uint16_t(merged[0].last), negate};
    }
    nft::Elements e;
    for (const policy::PortRange& r : merged) {
      e.emplace(r.first == r.last ? absl::StrCat(r.first) : absl::StrCat(r.first, "-", r.last), "");
    }
    std::string name = absl::StrCat("pt-", Hash(absl::StrJoin(e, ",", absl::PairFormatter("="))));
    out_.static_sets[name] = Set(name, nft::KeyType::kPort, std::move(e));
    return nft::PortSetMatch{dir, name, negate};
  }

  Alts Ports(const policy::Ports& ports, nft::Dir dir, int proto) {
    if (ports.empty()) return {Alt{}};
    Alts a;
    if (!ports.ranges.empty()) a.push_back(Alt{0, -1, {PortList(ports.ranges, dir, false)}});
    for (const std::string& name : ports.names) {
      for (int f : {4, 6}) {
        a.push_back(Alt{f, -1, {nft::NamedPortSetMatch{f, dir, NamedPort(name, proto, f), false}}});
      }
    }
    return a;
  }

  Alts NotPorts(const policy::Ports& ports, nft::Dir dir, int proto) {
    if (ports.empty()) return {Alt{}};
    Alt common;
    if (!ports.ranges.empty()) common.exprs.push_back(PortList(ports.ranges, dir, true));
    if (ports.names.empty()) return {common};
    Alts a;
    for (int f : {4, 6}) {
      Alt x = common;
      x.family = f;
      for (const std::string& name : ports.names) {
        x.exprs.push_back(nft::NamedPortSetMatch{f, dir, NamedPort(name, proto, f), true});
      }
      a.push_back(std::move(x));
    }
    return a;
  }

  std::string NamedPort(const std::string& name, int proto, int family) {
    std::string set = NamedPortSetName(name, proto, family);
    out_.named_port_sets[set] = {name, proto};
    return set;
  }

  CompiledRules& out_;
};

bool ImpliesFamily(const nft::Expr& e) {
  return std::holds_alternative<nft::AddrSetMatch>(e) ||
         std::holds_alternative<nft::NamedPortSetMatch>(e) || std::holds_alternative<nft::NfprotoMatch>(e);
}

}  // namespace

std::string PolicyChainName(const std::string& policy_id, Direction d) {
  return absl::StrCat(d == Direction::kIngress ? "pi-" : "pe-", Hash(policy_id));
}
std::string ProfileChainName(const std::string& profile, Direction d) {
  return absl::StrCat(d == Direction::kIngress ? "ri-" : "re-", Hash(profile));
}
std::string SelectorSetName(const std::string& selector_key, int family) {
  return absl::StrCat("s", family, "-", Hash(selector_key));
}
std::string NamedPortSetName(const std::string& name, int protocol, int family) {
  return absl::StrCat("p", family, "-", Hash(absl::StrCat(name, "/", protocol)));
}

CompiledRules CompileRules(const std::vector<policy::Rule>& rules, const Options& options) {
  CompiledRules out;
  RuleCompiler rc(out);
  for (const policy::Rule& r : rules) {
    for (Alt& alt : rc.Compile(r)) {
      nft::Rule rule;
      if (alt.family && std::none_of(alt.exprs.begin(), alt.exprs.end(), ImpliesFamily)) {
        rule.Add(nft::NfprotoMatch{alt.family});
      }
      for (nft::Expr& e : alt.exprs) rule.Add(std::move(e));
      switch (r.action) {
        case policy::Action::kAllow:
          rule.Add(nft::AllowMark()).Add(nft::Return());
          break;
        case policy::Action::kPass:
          rule.Add(nft::PassMark()).Add(nft::Return());
          break;
        case policy::Action::kDeny:
          rule.Add(nft::Drop());
          break;
        case policy::Action::kLog:
          rule.Add(nft::Log{options.log_prefix});
          break;
      }
      out.rules.push_back(std::move(rule));
    }
  }
  return out;
}

// ---- Compiler ----

const nft::DesiredTable& Compiler::Build(const policy::Model& model, const policy::SelectionIndex& index,
                                          const std::map<std::string, uint32_t>* group_hint) {
  nft::LayoutOptions layout = options_.layout;
  for (const policy::FailsafePort& f : model.failsafe().inbound) {
    layout.failsafe_in.push_back({uint8_t(f.protocol), uint16_t(f.port)});
  }
  for (const policy::FailsafePort& f : model.failsafe().outbound) {
    layout.failsafe_out.push_back({uint8_t(f.protocol), uint16_t(f.port)});
  }
  table_ = nft::Skeleton(layout);
  endpoints_.clear();
  host_endpoints_.clear();
  any_.clear();
  combos_.clear();
  group_owner_.clear();
  link_groups_.clear();
  group_refs_.clear();
  element_refs_.clear();  // else a rebuild adds no element an earlier build had counted
  profile_refs_.clear();
  set_refs_.clear();
  unreferenced_.clear();
  dynamic_sets_.clear();
  full_chains_.clear();
  pass_chains_.clear();
  lists_cache_.clear();
  set_users_.clear();
  skeleton_sets_.clear();
  for (const auto& [name, _] : table_.sets) skeleton_sets_.insert(name);
  nft::Delta scratch;
  for (const auto& [id, _] : model.policies()) RenderPolicy(model, index, id, scratch);
  pass_flips_.clear();
  transfers_.clear();
  group_hint_ = group_hint;
  for (const auto& [id, _] : model.endpoints()) RenderEndpoint(model, index, id, scratch);
  group_hint_ = nullptr;
  lists_cache_.clear();
  link_changes_.clear();  // a build's callers sync every link
  RenderAnyHostEndpoint(index, scratch);
  CollectGarbage(scratch);
  return table_;
}

namespace {
bool AnyHostStage(const policy::Model& model);
}  // namespace

nft::Delta Compiler::Update(const policy::Model& model, const policy::SelectionIndex& index,
                            const policy::SelectionDelta& delta, const Changed& changed) {
  nft::Delta out;
  pass_flips_.clear();
  lists_cache_.clear();  // lists depend on the model's profiles and the policies' Pass rules
  for (const std::string& id : changed.policies) RenderPolicy(model, index, id, out);
  for (const std::string& name : changed.profiles) {
    if (profile_refs_.contains(name)) RenderProfile(model, index, name, out);
  }
  // A profile that appeared or vanished changes the group chains of the endpoints naming it.
  std::set<std::string> endpoints(delta.endpoints_changed.begin(), delta.endpoints_changed.end());
  // So does a policy that gained or lost its first Pass rule (its group chains' tails).
  for (const auto& [policy, d] : pass_flips_) {
    for (const std::string& id : index.Selected(policy, d)) {
      if (endpoints_.contains(id)) endpoints.insert(id);
    }
  }
  pass_flips_.clear();
  // A host endpoint's forward chains depend on its policies' applyOnForward, which a policy
  // change can flip without changing which endpoints it selects: re-render the (few) local
  // host endpoints; unchanged ones cost nothing in the delta.
  // Their preDNAT and doNotTrack lists are not in the index, so a tier change shows nowhere
  // else: while any such policy exists, every change (a scan of the policies, no sorting when
  // there is none).
  if (!changed.policies.empty() || AnyHostStage(model)) {
    endpoints.insert(host_endpoints_.begin(), host_endpoints_.end());
  }
  if (!changed.profiles.empty()) {
    for (const auto& [id, state] : endpoints_) {
      for (const std::string& p : changed.profiles) {
        if (std::find(state.profiles.begin(), state.profiles.end(), p) != state.profiles.end()) {
          endpoints.insert(id);
        }
      }
    }
  }
  PlanGroupTransfers(model, index, endpoints);
  for (const std::string& id : endpoints) RenderEndpoint(model, index, id, out);
  transfers_.clear();
  lists_cache_.clear();
  RenderAnyHostEndpoint(index, out);
  // Members of existing sets.
  std::set<std::string> touched;
  for (const std::string& k : delta.sets_added) touched.insert(k);
  for (const auto& [k, _] : delta.sets_changed) touched.insert(k);
  for (const std::string& key : touched) {
    for (int f : {4, 6}) RefreshDynamicSet(SelectorSetName(key, f), index, out);
  }
  for (const std::string& key : delta.named_ports_changed) {
    size_t slash = key.rfind('/');
    std::string name = key.substr(0, slash);
    int protocol = std::stoi(key.substr(slash + 1));
    auto moves = delta.named_port_moves.find(key);
    for (int f : {4, 6}) {
      RefreshDynamicSet(NamedPortSetName(name, protocol, f), index, out,
                        moves == delta.named_port_moves.end() ? nullptr : &moves->second);
    }
  }
  // Chains with a rule over a selector or named-port set whose emptiness this change flipped
  // (a set every policy uses changes with every pod: only its first or last member counts).
  std::map<std::string, int> net;  // set → elements added minus deleted by this change
  for (const nft::ElementChange& e : out.add_elements) ++net[e.set];
  for (const nft::ElementChange& e : out.delete_elements) --net[e.set];
  for (const auto& [set, n] : net) {
    auto users = set_users_.find(set);
    auto now = table_.sets.find(set);
    if (users == set_users_.end() || now == table_.sets.end()) continue;
    const int size = int(now->second.elements.size());
    if ((size == 0) == (size - n == 0)) continue;
    for (const std::string& name : users->second) {
      nft::Chain elided = Elide(full_chains_.at(name));
      nft::Chain& current = table_.chains.at(name);
      if (current == elided) continue;
      current = elided;
      auto queued = std::find_if(out.put_chains.begin(), out.put_chains.end(),
                                 [&](const nft::Chain& c) { return c.name == name; });
      if (queued != out.put_chains.end()) *queued = std::move(elided);
      else out.put_chains.push_back(std::move(elided));
    }
  }
  CollectGarbage(out);
  // An element deleted and re-added in one delta (unchanged): drop both halves.
  std::set<std::pair<std::string, std::string>> re_added;
  for (const nft::ElementChange& a : out.add_elements) re_added.insert({a.set, a.key});
  std::erase_if(out.delete_elements, [&](const nft::ElementChange& d) {
    if (!re_added.contains({d.set, d.key})) return false;
    auto it = std::find(out.add_elements.begin(), out.add_elements.end(), d);
    if (it == out.add_elements.end()) return false;
    out.add_elements.erase(it);
    return true;
  });
  return out;
}

void Compiler::RenderPolicy(const policy::Model& model, const policy::SelectionIndex& index,
                            const std::string& id, nft::Delta& delta) {
  auto it = model.policies().find(id);
  for (Direction d : {Direction::kIngress, Direction::kEgress}) {
    std::string name = PolicyChainName(id, d);
    const policy::Policy* p = it == model.policies().end() ? nullptr : &it->second;
    // preDNAT policies: their ingress chain, entered from host endpoints' hpd- chains;
    // doNotTrack ones: their chains, entered from hui-/huo- chains.
    bool wanted = p && p->Applies(d) && !p->pre_dnat && !p->do_not_track;
    if (p && p->ProgrammedPreDnat()) wanted = d == Direction::kIngress;
    if (p && p->ProgrammedDoNotTrack()) wanted = p->Applies(d);
    const bool pass = wanted && std::any_of(p->Rules(d).begin(), p->Rules(d).end(), [](const policy::Rule& r) {
                        return r.action == policy::Action::kPass;
                      });
    if (pass != pass_chains_.contains(name)) {
      if (pass) pass_chains_.insert(name);
      else pass_chains_.erase(name);
      pass_flips_.emplace_back(id, d);
    }
    if (!wanted) {
      if (table_.chains.contains(name)) DeleteChain(name, delta);
      continue;
    }
    CompiledRules c = CompileRules(p->Rules(d), options_);
    nft::Chain chain{name, std::nullopt, std::move(c.rules)};
    PutChain(std::move(chain), &c, index, delta);
  }
}

namespace {
bool AnyHostStage(const policy::Model& model) {
  for (const auto& [_, p] : model.policies()) {
    if (p.ProgrammedPreDnat() || p.ProgrammedDoNotTrack()) return true;
  }
  return false;
}

// Not in the SelectionIndex (preDNAT and doNotTrack policies select host endpoints only, and a
// node has few): every programmed policy of the kind in tier order, matched here.
std::optional<nft::EndpointPolicies> HostStagePolicies(const policy::Model& model,
                                                       const policy::Endpoint& host, Direction d,
                                                       bool (policy::Policy::*programmed)() const) {
  if (!AnyHostStage(model)) return std::nullopt;
  nft::EndpointPolicies out;
  std::optional<policy::EntityView> self;
  for (const policy::Tier& tier : model.SortedTiers()) {
    nft::TierChains tc;
    for (const policy::Policy* p : model.PoliciesInTier(tier.name)) {
      if (!(p->*programmed)() || !p->Applies(d)) continue;
      if (!self) self = policy::ViewOf(model, host);
      if (!policy::Matches(p->applies_to, *self)) continue;
      tc.policy_chains.push_back(PolicyChainName(p->Id(), d));
    }
    if (!tc.policy_chains.empty()) out.tiers.push_back(std::move(tc));
  }
  if (out.tiers.empty()) return std::nullopt;
  return out;
}
}  // namespace

std::optional<nft::EndpointPolicies> PreDnatPolicies(const policy::Model& model,
                                                     const policy::Endpoint& host) {
  return HostStagePolicies(model, host, Direction::kIngress, &policy::Policy::ProgrammedPreDnat);
}

std::optional<nft::EndpointPolicies> UntrackedPolicies(const policy::Model& model,
                                                       const policy::Endpoint& host, Direction d) {
  if (host.interface == "*") return std::nullopt;  // upstream: not on all-interfaces endpoints
  return HostStagePolicies(model, host, d, &policy::Policy::ProgrammedDoNotTrack);
}

void Compiler::RenderProfile(const policy::Model& model, const policy::SelectionIndex& index,
                             const std::string& name, nft::Delta& delta) {
  std::optional<policy::Profile> p = model.ProfileNamed(name);
  for (Direction d : {Direction::kIngress, Direction::kEgress}) {
    std::string chain = ProfileChainName(name, d);
    if (!p || !profile_refs_.contains(name)) {
      if (table_.chains.contains(chain)) DeleteChain(chain, delta);
      continue;
    }
    CompiledRules c = CompileRules(p->Rules(d), options_);
    PutChain(nft::Chain{chain, std::nullopt, std::move(c.rules)}, &c, index, delta);
  }
}

const policy::Endpoint* Compiler::Programmed(const policy::Model& model, const std::string& id) const {
  auto it = model.endpoints().find(id);
  const policy::Endpoint* e = it == model.endpoints().end() ? nullptr : &it->second;
  if (e && ((!options_.node.empty() && e->node != options_.node) || e->interface.empty())) e = nullptr;
  // Host endpoints: a named interface or "*" (expectedIPs-only endpoints are not programmed;
  // their addresses still fill selector sets).
  if (e && e->host && !policy::ProgrammedHostEndpoint(*e)) e = nullptr;
  return e;
}

namespace {
std::vector<std::string> UniqueProfiles(const policy::Endpoint& e) {
  std::vector<std::string> out;
  for (const std::string& profile : e.profiles) {
    if (std::find(out.begin(), out.end(), profile) == out.end()) out.push_back(profile);
  }
  return out;
}
}  // namespace

std::shared_ptr<const Compiler::EndpointLists> Compiler::Lists(const policy::Model& model,
                                                               const policy::SelectionIndex& index,
                                                               const std::string& id, const policy::Endpoint& e) {
  const policy::EndpointPolicies& pols = index.PoliciesOf(id);
  std::vector<std::string> profiles = UniqueProfiles(e);
  for (const ListsSource& cached : lists_cache_) {
    if (cached.entry == pols && cached.profiles == profiles) return cached.lists;
  }
  auto out = std::make_shared<EndpointLists>();
  for (Direction d : {Direction::kIngress, Direction::kEgress}) {
    nft::EndpointPolicies& ep = d == Direction::kIngress ? out->ingress : out->egress;
    for (const policy::TierPolicies& tier : pols.For(d)) {
      nft::TierChains tc;
      for (const std::string& p : tier.policies) {
        tc.policy_chains.push_back(PolicyChainName(p, d));
        tc.may_pass = tc.may_pass || MayPass(tc.policy_chains.back());
      }
      tc.pass_at_end = tier.default_action == policy::TierDefault::kPass;
      ep.tiers.push_back(std::move(tc));
    }
    for (const std::string& profile : profiles) {
      if (model.HasProfile(profile)) ep.profile_chains.push_back(ProfileChainName(profile, d));
    }
  }
  out->ingress_chain = nft::GroupChainName(true, out->ingress);
  out->egress_chain = nft::GroupChainName(false, out->egress);
  constexpr size_t kCached = 8;
  ListsSource source{pols, std::move(profiles), out};
  if (lists_cache_.size() < kCached) {
    lists_cache_.push_back(std::move(source));
  } else {
    lists_cache_[lists_cache_next_++ % kCached] = std::move(source);
  }
  return out;
}

namespace {
// A link group's key: its ingress and egress group chains.
std::string Combo(const std::string& ingress_chain, const std::string& egress_chain) {
  return absl::StrCat(ingress_chain, "+", egress_chain);
}
}  // namespace

void Compiler::PlanGroupTransfers(const policy::Model& model, const policy::SelectionIndex& index,
                                  const std::set<std::string>& endpoints) {
  transfers_.clear();
  if (options_.layout.dispatch != nft::Dispatch::kByLinkGroup) return;
  struct Move {
    int endpoints = 0;
    std::string to;  // "" once its endpoints go different ways (or stop being workloads here)
  };
  std::map<std::string, Move> moves;  // combo now → where its endpoints in this change go
  for (const std::string& id : endpoints) {
    auto old = endpoints_.find(id);
    if (old == endpoints_.end() || old->second.combo.empty()) continue;
    const policy::Endpoint* e = Programmed(model, id);
    std::string to;
    if (e != nullptr && !e->host) {
      // Cached (lists_cache_): RenderEndpoint asks again for the same lists.
      std::shared_ptr<const EndpointLists> lists = Lists(model, index, id, *e);
      to = Combo(lists->ingress_chain, lists->egress_chain);
    }
    Move& m = moves[old->second.combo];
    if (m.endpoints++ == 0) m.to = std::move(to);
    else if (m.to != to) m.to.clear();
  }
  for (const auto& [from, m] : moves) {
    const auto& [group, members] = combos_.at(from);
    // All of the group's endpoints, to one list nobody has; the first group to claim it wins
    // (two groups merging: the other's interfaces are rewritten).
    if (m.to.empty() || m.to == from || m.endpoints != members || combos_.contains(m.to)) continue;
    transfers_.try_emplace(m.to, group);
  }
}

void Compiler::RenderEndpoint(const policy::Model& model, const policy::SelectionIndex& index,
                              const std::string& id, nft::Delta& delta) {
  const policy::Endpoint* e = Programmed(model, id);
  auto old = endpoints_.find(id);
  std::optional<EndpointState> next;
  // Most re-renders keep the endpoint's profiles (a policy's lists moved): their counts stay.
  bool same_profiles = false;
  if (e) {
    next.emplace();
    next->profiles = UniqueProfiles(*e);
    same_profiles = old != endpoints_.end() && old->second.profiles == next->profiles;
    for (const std::string& profile : next->profiles) {
      if (same_profiles) break;
      if (profile_refs_[profile]++ == 0) RenderProfile(model, index, profile, delta);
    }
    std::shared_ptr<const EndpointLists> lists = Lists(model, index, id, *e);
    const nft::EndpointPolicies& ep_in = lists->ingress;
    const nft::EndpointPolicies& ep_out = lists->egress;
    const policy::EndpointPolicies& pols = index.PoliciesOf(id);
    // The layout decides the dispatch elements and group chains (felixd/nft may change it):
    // AddEndpoint on an empty copy of the skeleton's sets says what this endpoint contributes
    // (a workload: only the dispatch and anti-spoofing sets, the rest are the host's).
    nft::DesiredTable scratch;
    static constexpr const char* kWorkloadSets[] = {nft::kFromGroupMap, nft::kToGroupMap, nft::kFromWepMap,
                                                    nft::kToWepMap,     nft::kWepSrc4,    nft::kWepSrc6};
    if (e->host) {
      for (const std::string& name : skeleton_sets_) scratch.sets[name].spec = table_.sets.at(name).spec;
    } else {
      for (const char* name : kWorkloadSets) {
        if (skeleton_sets_.contains(name)) scratch.sets[name].spec = table_.sets.at(name).spec;
      }
    }
    next->host = e->host;
    if (e->host) {
      nft::HostEndpoint he;
      he.ifname = e->interface;
      he.in = ep_in;
      he.out = ep_out;
      // Forwarded traffic: applyOnForward policies only, no profiles (upstream: with none
      // selecting the endpoint in a direction, forwarded traffic is allowed that way).
      for (Direction d : {Direction::kIngress, Direction::kEgress}) {
        nft::EndpointPolicies fwd;
        for (const policy::TierPolicies& tier : pols.For(d)) {
          nft::TierChains tc;
          for (const std::string& p : tier.policies) {
            auto pol = model.policies().find(p);
            if (pol != model.policies().end() && pol->second.apply_on_forward) {
              tc.policy_chains.push_back(PolicyChainName(p, d));
              tc.may_pass = tc.may_pass || MayPass(tc.policy_chains.back());
            }
          }
          tc.pass_at_end = tier.default_action == policy::TierDefault::kPass;
          if (!tc.policy_chains.empty()) fwd.tiers.push_back(std::move(tc));
        }
        if (!fwd.tiers.empty()) (d == Direction::kIngress ? he.fwd_in : he.fwd_out) = std::move(fwd);
      }
      he.pre_dnat = PreDnatPolicies(model, *e);
      he.untracked_in = UntrackedPolicies(model, *e, Direction::kIngress);
      he.untracked_out = UntrackedPolicies(model, *e, Direction::kEgress);
      nft::AddHostEndpoint(scratch, he);
      if (he.ifname == "*") next->any = std::move(he);
    }
    nft::Endpoint ne;
    ne.ifname = e->interface;
    for (const net::Prefix& ip : e->ips) ne.addresses.push_back(net::FormatIp(ip.addr));
    if (!e->host) {
      ne.ingress_chain = lists->ingress_chain;
      ne.egress_chain = lists->egress_chain;
      // The lists only build a group chain no endpoint has yet (below, AddEndpoint).
      if (!group_refs_.contains(ne.ingress_chain)) ne.ingress = ep_in;
      if (!group_refs_.contains(ne.egress_chain)) ne.egress = ep_out;
    }
    if (options_.layout.dispatch == nft::Dispatch::kByLinkGroup && !e->host) {
      next->combo = Combo(ne.ingress_chain, ne.egress_chain);
      next->ifname = e->interface;
      uint32_t preferred = nft::LinkGroupOf(ne.ingress_chain, ne.egress_chain);
      if (group_hint_ != nullptr) {  // the number its interface carries (adopting a table)
        auto h = group_hint_->find(e->interface);
        if (h != group_hint_->end() && h->second >= nft::kMinLinkGroup) preferred = h->second;
      }
      ne.link_group = AcquireGroup(next->combo, preferred);
    }
    if (!e->host) {
      // A group chain some endpoint already uses is in the table: AddEndpoint need not build
      // its rules again for every endpoint joining it (a new policy moves many at once).
      for (const std::string& name : {ne.ingress_chain, ne.egress_chain}) {
        if (group_refs_.contains(name)) scratch.chains[name] = nft::Chain{name, std::nullopt, {}};
      }
      nft::AddEndpoint(scratch, ne);
    }
    for (auto& [name, chain] : scratch.chains) {
      next->chains.push_back(name);
      if (group_refs_[name]++ == 0) PutChain(std::move(chain), nullptr, index, delta);
    }
    for (const auto& [set, contents] : scratch.sets) {
      for (const auto& [k, v] : contents.elements) {
        next->elements.push_back({set, k, v});
        ElementRef& ref = element_refs_[{set, k}];
        if (ref.count++ == 0 || ref.value != v) {
          if (ref.count > 1) delta.delete_elements.push_back({set, k, ref.value});
          ref.value = v;
          delta.add_elements.push_back({set, k, v});
          table_.sets[set].elements[k] = v;
        }
      }
    }
  }

  uint32_t old_group = 0;
  std::string old_ifname;
  auto old_link = link_groups_.end();  // one lookup of the (long, prefix-sharing) names
  if (old != endpoints_.end()) {
    for (const nft::ElementChange& el : old->second.elements) {
      auto ref = element_refs_.find({el.set, el.key});
      if (ref == element_refs_.end() || --ref->second.count > 0) continue;
      delta.delete_elements.push_back({el.set, el.key, ref->second.value});
      table_.sets[el.set].elements.erase(el.key);
      element_refs_.erase(ref);
    }
    for (const std::string& g : old->second.chains) {
      if (--group_refs_[g] == 0) {
        group_refs_.erase(g);
        DeleteChain(g, delta);
      }
    }
    for (const std::string& profile : old->second.profiles) {
      if (same_profiles) break;
      if (--profile_refs_[profile] == 0) {
        profile_refs_.erase(profile);
        RenderProfile(model, index, profile, delta);  // deletes its chains
      }
    }
    if (old->second.any) any_.erase(id);
    if (!old->second.combo.empty()) {
      ReleaseGroup(old->second.combo);
      old_link = link_groups_.find(old->second.ifname);
      if (old_link != link_groups_.end()) old_group = old_link->second;
      old_ifname = old->second.ifname;
    }
    if (!next) endpoints_.erase(old);  // else replaced in place below
    host_endpoints_.erase(id);
  }
  if (next) {
    if (next->any) any_[id] = *next->any;
    if (!next->combo.empty()) {
      const uint32_t group = combos_.at(next->combo).first;
      if (old_link != link_groups_.end() && next->ifname == old_ifname) {
        old_link->second = group;
        old_link = link_groups_.end();  // kept
      } else {
        link_groups_[next->ifname] = group;
      }
      if (group != old_group || next->ifname != old_ifname) link_changes_.insert(next->ifname);
    }
    if (next->host) host_endpoints_.insert(id);
    if (old != endpoints_.end()) old->second = std::move(*next);
    else endpoints_.emplace(id, std::move(*next));
  }
  if (old_link != link_groups_.end()) link_groups_.erase(old_link);
}

void Compiler::RenderAnyHostEndpoint(const policy::SelectionIndex& index, nft::Delta& delta) {
  // One all-interfaces host endpoint per node is in force: the first by id (the others' chains
  // exist but nothing enters them; the policy manager reports them). Depends only on the set.
  const nft::HostEndpoint* any = any_.empty() ? nullptr : &any_.begin()->second;
  for (nft::Chain& c : nft::AnyHostEndpointChains(any)) PutChain(std::move(c), nullptr, index, delta);
}

uint32_t Compiler::AcquireGroup(const std::string& combo, uint32_t preferred) {
  auto [it, fresh] = combos_.try_emplace(combo, 0, 0);
  if (fresh) {
    uint32_t g = preferred;
    if (auto t = transfers_.find(combo); t != transfers_.end()) {
      g = t->second;  // its endpoints' group, whose last one leaves in this Update
    } else {
      while (group_owner_.contains(g)) g = g == UINT32_MAX ? nft::kMinLinkGroup : g + 1;
    }
    it->second.first = g;
    group_owner_[g] = combo;
  }
  ++it->second.second;
  return it->second.first;
}

void Compiler::ReleaseGroup(const std::string& combo) {
  auto it = combos_.find(combo);
  if (it == combos_.end() || --it->second.second > 0) return;
  auto owner = group_owner_.find(it->second.first);
  if (owner != group_owner_.end() && owner->second == combo) group_owner_.erase(owner);  // else transferred
  combos_.erase(it);
}

void Compiler::RefSets(const nft::Chain& chain, int by) {
  for (const nft::Rule& r : chain.rules) {
    for (const std::string& s : nft::ReferencedSets(r)) {
      if (skeleton_sets_.contains(s)) continue;
      int& refs = set_refs_[s];
      refs += by;
      if (refs <= 0) unreferenced_.insert(s);
    }
  }
}

nft::Chain Compiler::Elide(const nft::Chain& full) const {
  // A rule that needs an address in an empty selector or named-port set never matches (an
  // IPv4-only cluster's IPv6 alternatives): left out, the kernel validates fewer rules on every
  // chain change. A negated match on an empty set matches everything and stays.
  auto empty = [&](const std::string& set) {
    if (!dynamic_sets_.contains(set)) return false;
    auto it = table_.sets.find(set);
    return it != table_.sets.end() && it->second.elements.empty();
  };
  nft::Chain out{full.name, full.base, {}};
  for (const nft::Rule& r : full.rules) {
    bool never = false;
    for (const nft::Expr& e : r.exprs) {
      if (const auto* m = std::get_if<nft::AddrSetMatch>(&e)) never = never || (!m->negate && empty(m->set));
      if (const auto* m = std::get_if<nft::NamedPortSetMatch>(&e)) never = never || (!m->negate && empty(m->set));
    }
    if (!never) out.rules.push_back(r);
  }
  return out;
}

void Compiler::PutChain(nft::Chain chain, const CompiledRules* sources,
                        const policy::SelectionIndex& index, nft::Delta& delta) {
  auto it = table_.chains.find(chain.name);
  auto full = full_chains_.find(chain.name);
  if (sources != nullptr ? full != full_chains_.end() && full->second == chain
                         : it != table_.chains.end() && it->second == chain) {
    return;
  }
  // Sets first: a new set the chain needs is created with its members.
  for (const nft::Rule& r : chain.rules) {
    for (const std::string& s : nft::ReferencedSets(r)) {
      if (table_.sets.contains(s)) continue;
      nft::DesiredSet set;
      if (!sources) continue;  // group chains reference only chains
      if (auto st = sources->static_sets.find(s); st != sources->static_sets.end()) {
        set = st->second;
      } else {
        DynamicSet d;
        d.family = s[1] == '6' ? 6 : 4;
        if (auto sel = sources->selector_sets.find(s); sel != sources->selector_sets.end()) {
          d.key = sel->second;
        } else if (auto np = sources->named_port_sets.find(s); np != sources->named_port_sets.end()) {
          d.named_port = true;
          d.key = np->second.first;
          d.protocol = np->second.second;
        }
        set.spec.name = s;
        set.spec.key = d.named_port ? (d.family == 4 ? nft::KeyType::kIpv4ProtoPort : nft::KeyType::kIpv6ProtoPort)
                                    : (d.family == 4 ? nft::KeyType::kIpv4 : nft::KeyType::kIpv6);
        set.spec.interval = !d.named_port;
        set.elements = DynamicElements(d, index);
        dynamic_sets_[s] = std::move(d);
      }
      delta.add_sets.push_back(set.spec);
      for (const auto& [k, v] : set.elements) delta.add_elements.push_back({s, k, v});
      table_.sets[s] = std::move(set);
    }
  }
  // References (what keeps a set) follow the full rules, elided or not.
  RefSets(chain, +1);
  if (full != full_chains_.end()) {
    RefSets(full->second, -1);
    SetUsers(full->second, -1);
  } else if (it != table_.chains.end()) {
    RefSets(it->second, -1);
  }
  nft::Chain programmed = chain;
  if (sources != nullptr) {
    SetUsers(chain, +1);
    programmed = Elide(chain);
    full_chains_[chain.name] = std::move(chain);
  }
  if (it != table_.chains.end()) {
    if (it->second == programmed) return;  // only never-matching rules changed
    it->second = programmed;
  } else {
    table_.chains[programmed.name] = programmed;
  }
  delta.put_chains.push_back(std::move(programmed));
}

void Compiler::SetUsers(const nft::Chain& chain, int by) {
  for (const nft::Rule& r : chain.rules) {
    for (const std::string& s : nft::ReferencedSets(r)) {
      if (!dynamic_sets_.contains(s)) continue;
      if (by > 0) {
        set_users_[s].insert(chain.name);
      } else if (auto u = set_users_.find(s); u != set_users_.end()) {
        u->second.erase(chain.name);
        if (u->second.empty()) set_users_.erase(u);
      }
    }
  }
}

void Compiler::DeleteChain(const std::string& name, nft::Delta& delta) {
  auto it = table_.chains.find(name);
  if (it == table_.chains.end()) return;
  if (auto full = full_chains_.find(name); full != full_chains_.end()) {
    RefSets(full->second, -1);
    SetUsers(full->second, -1);
    full_chains_.erase(full);
  } else {
    RefSets(it->second, -1);
  }
  table_.chains.erase(it);
  delta.delete_chains.push_back(name);
}

nft::Elements Compiler::DynamicElements(DynamicSet& d, const policy::SelectionIndex& index) const {
  if (!d.named_port) {
    d.ips.clear();
    for (const net::Prefix& p : index.Members(d.key)) {
      if (p.addr.family == d.family) d.ips.insert(p);
    }
    return PrefixElements(std::vector<net::Prefix>(d.ips.begin(), d.ips.end()), d.family);
  }
  d.ports.clear();
  nft::Elements out;
  for (const NamedPortMember& m : index.NamedPortMembers(d.key, d.protocol)) {
    if (m.address.addr.family != d.family) continue;
    d.ports.insert(m);
    out.emplace(NamedPortElement(m, d.protocol), "");
  }
  return out;
}

namespace {
int FamilyOf(const net::Prefix& p) { return p.addr.family; }
int FamilyOf(const NamedPortMember& m) { return m.address.addr.family; }

// Walks the stored members (`stored`, this family only) and the index's (`now`) in step and
// brings `stored` up to date: only changed members are formatted, so a pod joining a
// 10,000-member set costs a comparison per member, not a string.
template <typename T, typename Format>
void DiffMembers(std::set<T>& stored, const std::set<T>& now, int family, Format format,
                 const std::string& set, nft::Elements& current, nft::Delta& delta) {
  std::vector<T> removed, added;
  auto a = stored.begin();
  auto b = now.begin();
  while (a != stored.end() || b != now.end()) {
    if (b != now.end() && FamilyOf(*b) != family) {
      ++b;
    } else if (b == now.end() || (a != stored.end() && *a < *b)) {
      removed.push_back(*a++);
    } else if (a == stored.end() || *b < *a) {
      added.push_back(*b++);
    } else {
      ++a;
      ++b;
    }
  }
  for (const T& m : removed) {
    std::string k = format(m);
    current.erase(k);
    delta.delete_elements.push_back({set, std::move(k), ""});
    stored.erase(m);
  }
  for (const T& m : added) {
    std::string k = format(m);
    current.emplace(k, "");
    delta.add_elements.push_back({set, std::move(k), ""});
    stored.insert(m);
  }
}
}  // namespace

void Compiler::RefreshDynamicSet(const std::string& name, const policy::SelectionIndex& index,
                                 nft::Delta& delta, const policy::NamedPortDelta* moves) {
  auto it = dynamic_sets_.find(name);
  if (it == dynamic_sets_.end() || !table_.sets.contains(name)) return;
  DynamicSet& d = it->second;
  nft::Elements& current = table_.sets[name].elements;
  if (d.named_port && moves != nullptr) {
    // Only what moved: a port every pod names is a set of every pod's address, and diffing it
    // whole cost O(pods) per pod event.
    for (const NamedPortMember& m : moves->removed) {
      if (FamilyOf(m) != d.family || d.ports.erase(m) == 0) continue;
      std::string k = NamedPortElement(m, d.protocol);
      current.erase(k);
      delta.delete_elements.push_back({name, std::move(k), ""});
    }
    for (const NamedPortMember& m : moves->added) {
      if (FamilyOf(m) != d.family || !d.ports.insert(m).second) continue;
      std::string k = NamedPortElement(m, d.protocol);
      current.emplace(k, "");
      delta.add_elements.push_back({name, std::move(k), ""});
    }
    return;
  }
  if (d.named_port) {
    DiffMembers(d.ports, index.NamedPortMembers(d.key, d.protocol), d.family,
                [&](const NamedPortMember& m) { return NamedPortElement(m, d.protocol); }, name,
                current, delta);
    return;
  }
  const policy::IpSet& now = index.Members(d.key);
  auto host = [](const net::Prefix& p) { return p.len == p.addr.Bits(); };
  if (!std::all_of(d.ips.begin(), d.ips.end(), host) || !std::all_of(now.begin(), now.end(), host)) {
    SetElements(name, DynamicElements(d, index), delta);  // prefixes may cover one another
    return;
  }
  DiffMembers(d.ips, now, d.family, [](const net::Prefix& p) { return AddrText(p); }, name,
              current, delta);
}

void Compiler::SetElements(const std::string& set, nft::Elements elements, nft::Delta& delta) {
  nft::Elements& current = table_.sets[set].elements;
  for (const auto& [k, v] : current) {
    if (!elements.contains(k)) delta.delete_elements.push_back({set, k, v});
  }
  for (const auto& [k, v] : elements) {
    if (!current.contains(k)) delta.add_elements.push_back({set, k, v});
  }
  current = std::move(elements);
}

void Compiler::CollectGarbage(nft::Delta& delta) {
  // Only the sets whose last reference went in this change (not a walk over every set).
  for (const std::string& name : std::exchange(unreferenced_, {})) {
    auto it = set_refs_.find(name);
    if (it == set_refs_.end() || it->second > 0) continue;
    // Elements added to a set deleted in the same transaction would be dropped with it.
    std::erase_if(delta.add_elements, [&](const nft::ElementChange& c) { return c.set == it->first; });
    std::erase_if(delta.delete_elements, [&](const nft::ElementChange& c) { return c.set == it->first; });
    bool added_now = std::erase_if(delta.add_sets, [&](const nft::SetSpec& s) { return s.name == it->first; });
    if (!added_now) delta.delete_sets.push_back(it->first);
    table_.sets.erase(it->first);
    dynamic_sets_.erase(it->first);
    set_refs_.erase(it);
  }
}

}  // namespace calico::felixd::policy_compiler
