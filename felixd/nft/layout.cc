#include "felixd/nft/layout.h"

#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "felixd/nft/elements.h"

namespace calico::felixd::nft {
namespace {

Rule R(std::initializer_list<Expr> exprs) { return Rule{std::vector<Expr>(exprs)}; }

IfnameMatch Workloads(bool input) { return {input, kWorkloadPrefix, true, false}; }

uint64_t Fnv(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

DesiredTable Skeleton(const LayoutOptions& options) {
  DesiredTable t;
  const bool by_group = options.dispatch == Dispatch::kByGroup;
  const bool by_link = options.dispatch == Dispatch::kByLinkGroup;
  for (const char* map : {kFromWepMap, kToWepMap}) {
    if (by_link) break;
    SetSpec spec{map, KeyType::kIfname, false, !by_group};
    if (by_group) spec.data = KeyType::kIfname;
    t.sets[map] = {spec, {}};
  }
  if (by_link) {
    for (const char* map : {kFromGroupMap, kToGroupMap}) {
      t.sets[map] = {SetSpec{map, KeyType::kDevgroup, false, true}, {}};
    }
  }
  if (by_group) {
    for (const char* map : {kFromGroupMap, kToGroupMap}) {
      t.sets[map] = {SetSpec{map, KeyType::kIfname, false, true}, {}};
    }
  }
  t.sets[kWepSrc4] = {SetSpec{kWepSrc4, KeyType::kIfnameIpv4, false, false}, {}};
  t.sets[kWepSrc6] = {SetSpec{kWepSrc6, KeyType::kIfnameIpv6, false, false}, {}};

  const bool at_prerouting = options.egress == EgressHook::kPrerouting;
  Chain forward{"forward", BaseChain{Hook::kForward, 0, true}, {}};
  forward.rules = {
      R({CtStateMatch{kCtEstablished | kCtRelated}, Accept()}),
      R({CtStateMatch{kCtInvalid}, Drop()}),
  };
  if (!at_prerouting) forward.rules.push_back(R({Workloads(true), Jump("from-wep")}));
  forward.rules.push_back(R({Workloads(false), Jump("to-wep")}));
  Chain input{"input", BaseChain{Hook::kInput, 0, true}, {}};
  input.rules = {
      R({CtStateMatch{kCtEstablished | kCtRelated}, Accept()}),
      R({CtStateMatch{kCtInvalid}, Drop()}),
  };
  // IPv6 neighbour and router discovery and MLD to the host are not policy (as upstream).
  std::vector<Rule> nd;
  for (uint8_t type : {130, 131, 132, 133, 135, 136}) {
    nd.push_back(
        R({Workloads(true), L4ProtoMatch{58, false}, IcmpMatch{6, type, -1, false}, Accept()}));
  }
  input.rules.insert(input.rules.end(), nd.begin(), nd.end());
  if (at_prerouting) {
    Chain pre{"prerouting", BaseChain{Hook::kPrerouting, 0, true}, {}};
    pre.rules = {
        R({CtStateMatch{kCtEstablished | kCtRelated}, Accept()}),
        R({CtStateMatch{kCtInvalid}, Drop()}),
    };
    pre.rules.insert(pre.rules.end(), nd.begin(), nd.end());
    pre.rules.push_back(R({Workloads(true), Jump("from-wep")}));
    t.chains[pre.name] = std::move(pre);
  } else {
    input.rules.push_back(R({Workloads(true), Jump("from-wep")}));
  }
  switch (options.endpoint_to_host) {
    case EndpointToHost::kDrop:
      input.rules.push_back(R({Workloads(true), Drop()}));
      break;
    case EndpointToHost::kAccept:
      input.rules.push_back(R({Workloads(true), Accept()}));
      break;
    case EndpointToHost::kReturn:
      break;
  }
  // Host endpoints: traffic of the host through a non-workload interface.
  IfnameMatch not_in{true, kWorkloadPrefix, true, true}, not_out{false, kWorkloadPrefix, true, true};
  input.rules.push_back(R({not_in, Jump("from-hep")}));
  forward.rules.insert(forward.rules.begin() + 2, R({not_in, Jump("from-hep-fwd")}));
  forward.rules.push_back(R({not_out, Jump("to-hep-fwd")}));
  Chain output{"output", BaseChain{Hook::kOutput, 0, true}, {}};
  output.rules = {
      R({CtStateMatch{kCtEstablished | kCtRelated}, Accept()}),
      R({not_out, Jump("to-hep")}),
  };
  t.sets[kHepNodes4] = {SetSpec{kHepNodes4, KeyType::kIpv4}, {}};
  t.sets[kHepNodes6] = {SetSpec{kHepNodes6, KeyType::kIpv6}, {}};
  for (const char* map : {kHepInMap, kHepOutMap, kHepFwdInMap, kHepFwdOutMap, kHepPreDnatMap}) {
    t.sets[map] = {SetSpec{map, KeyType::kIfname, false, true}, {}};
  }
  auto dispatch = [&](const char* name, bool in, const char* map, bool nd, const char* any) {
    Chain c{name, std::nullopt, {R({MarkSet{kMarkMask, 0}})}};
    // IPv6 neighbour discovery and MLD are not policy (as for workloads).
    for (uint8_t type : {130, 131, 132, 133, 134, 135, 136}) {
      if (nd) c.rules.push_back(R({L4ProtoMatch{58, false}, IcmpMatch{6, type, -1, false}, Accept()}));
    }
    if (nd) {
      // Encapsulated pod traffic between Calico nodes (VXLAN, IP-in-IP) is not host policy.
      const Dir dir = in ? Dir::kSource : Dir::kDest;
      c.rules.push_back(R({AddrSetMatch{4, dir, kHepNodes4, false}, L4ProtoMatch{17, false},
                           PortMatch{Dir::kDest, 4789, 4789, false}, Accept()}));
      c.rules.push_back(R({AddrSetMatch{4, dir, kHepNodes4, false}, L4ProtoMatch{4, false}, Accept()}));
      c.rules.push_back(R({AddrSetMatch{6, dir, kHepNodes6, false}, L4ProtoMatch{17, false},
                           PortMatch{Dir::kDest, 4789, 4789, false}, Accept()}));
    }
    c.rules.push_back(R({IfnameVmap{in, map}}));
    // Not a named host endpoint: the all-interfaces one, if any (never loopback).
    c.rules.push_back(R({IfnameMatch{in, "lo", false, true}, Goto(any)}));
    t.chains[name] = std::move(c);
  };
  dispatch("from-hep", true, kHepInMap, true, kHepAnyIn);
  dispatch("to-hep", false, kHepOutMap, true, kHepAnyOut);
  dispatch("from-hep-fwd", true, kHepFwdInMap, false, kHepAnyFwdIn);
  dispatch("to-hep-fwd", false, kHepFwdOutMap, false, kHepAnyFwdOut);
  for (Chain& c : AnyHostEndpointChains(nullptr)) t.chains[c.name] = std::move(c);
  for (bool in : {true, false}) {
    Chain c{in ? kFailsafeInChain : kFailsafeOutChain, std::nullopt, {}};
    for (const FailsafePort& f : in ? options.failsafe_in : options.failsafe_out) {
      c.rules.push_back(R({L4ProtoMatch{f.proto, false}, PortMatch{Dir::kDest, f.port, f.port, false}, Accept()}));
    }
    t.chains[c.name] = std::move(c);
  }
  t.chains[output.name] = std::move(output);
  // preDNAT: no host endpoint's chain deciding falls through: accepted here.
  // A named host endpoint is always in the map (`return` without preDNAT policies), so only
  // other host interfaces reach the all-interfaces endpoint; workload interfaces never do.
  t.chains[kPreDnatChain] = Chain{kPreDnatChain, BaseChain{Hook::kPrerouting, kPriorityPreDnat, true},
                                  {R({IfnameVmap{true, kHepPreDnatMap}}),
                                   R({not_in, IfnameMatch{true, "lo", false, true}, Goto(kHepAnyPreDnat)})}};

  Chain from{"from-wep", std::nullopt, {}};
  from.rules = {
      // Anti-spoofing: (interface, source) must be one of the endpoint's addresses.
      R({IfaceAddrSetMatch{4, kWepSrc4, true}, Drop()}),
      R({IfaceAddrSetMatch{6, kWepSrc6, true}, Drop()}),
      // Encapsulated traffic from workloads (IP-in-IP, VXLAN).
      R({L4ProtoMatch{4, false}, Drop()}),
      R({L4ProtoMatch{17, false}, PortMatch{Dir::kDest, 4789, 4789, false}, Drop()}),
      R({MarkSet{kMarkMask, 0}}),
      by_link    ? R({GroupVmap{true, kFromGroupMap}})
      : by_group ? R({IfnameVmap{true, kFromGroupMap, kFromWepMap}})
                 : R({IfnameVmap{true, kFromWepMap}}),
      R({Drop()}),  // an interface felixd does not know: fail closed
  };
  Chain to{"to-wep", std::nullopt, {}};
  to.rules = {
      R({MarkSet{kMarkMask, 0}}),
      by_link    ? R({GroupVmap{false, kToGroupMap}})
      : by_group ? R({IfnameVmap{false, kToGroupMap, kToWepMap}})
                 : R({IfnameVmap{false, kToWepMap}}),
      R({Drop()}),
  };
  for (Chain* c : {&forward, &input, &from, &to}) t.chains[c->name] = std::move(*c);

  // doNotTrack: before conntrack, named host endpoints only (as upstream). The untracked
  // mark is cleared first so only an untracked Allow of ours carries it into the filter chains.
  for (bool in : {true, false}) {
    const char* map = in ? kHepUntrackedInMap : kHepUntrackedOutMap;
    t.sets[map] = {SetSpec{map, KeyType::kIfname, false, true}, {}};
    Chain raw{in ? kRawPreroutingChain : kRawOutputChain,
              BaseChain{in ? Hook::kPrerouting : Hook::kOutput, kPriorityRaw, true},
              {R({MarkSet{kMarkUntracked, 0}}), R({IfnameVmap{in, map}})}};
    t.chains[raw.name] = std::move(raw);
  }
  // An untracked Allow skips preDNAT and normal policy (untracked packets have no conntrack
  // state for the ct rules to accept).
  for (const char* base : {"input", "forward", "output", kPreDnatChain}) {
    std::vector<Rule>& rules = t.chains.at(base).rules;
    rules.insert(rules.begin(), R({MarkMatch{kMarkUntracked, kMarkUntracked, false}, Accept()}));
  }
  return t;
}

std::string GroupChainName(bool ingress, const EndpointPolicies& policies) {
  uint64_t h = Fnv(ingress ? "in" : "out");
  for (const TierChains& tier : policies.tiers) {
    h = Fnv(tier.pass_at_end ? "|tier-pass|" : "|tier|", h);
    if (tier.may_pass) h = Fnv("|may-pass|", h);
    for (const std::string& p : tier.policy_chains) h = Fnv(",", Fnv(p, h));
  }
  h = Fnv("|profiles|", h);
  for (const std::string& p : policies.profile_chains) h = Fnv(",", Fnv(p, h));
  return absl::StrCat(ingress ? "tw-" : "fw-", absl::Hex(h, absl::kZeroPad16));
}

uint32_t LinkGroupOf(const EndpointPolicies& ingress, const EndpointPolicies& egress) {
  return LinkGroupOf(GroupChainName(true, ingress), GroupChainName(false, egress));
}

uint32_t LinkGroupOf(std::string_view ingress_chain, std::string_view egress_chain) {
  uint64_t h = Fnv(egress_chain, Fnv("+", Fnv(ingress_chain)));
  uint32_t g = static_cast<uint32_t>(h ^ (h >> 32));
  return g < kMinLinkGroup ? g + kMinLinkGroup : g;
}

std::string GroupKey(bool ingress, const EndpointPolicies& policies) {
  return GroupChainName(ingress, policies).substr(3, 15);
}

Chain GroupChain(bool ingress, const EndpointPolicies& policies) {
  Chain c{GroupChainName(ingress, policies), std::nullopt, {}};
  // One rule per policy: after an Allow or a Pass the rest of the tier is skipped by the guard
  // on the later jumps; the tier then returns (Allow), drops (no decision, unless the tier
  // passes) or goes on (Pass). The mark is clean on entry (from-wep/to-wep clear it) and at each
  // tier's start (an Allow returned, a Pass is cleared), so a tier's first jump needs no guard.
  // (Two rules per policy before — jump, then `return` on Allow — made the kernel's commit-time
  // walk, which visits every group chain, ~12% longer at the benchmark's shape.)
  bool first_tier = true;
  for (const TierChains& tier : policies.tiers) {
    if (!first_tier) c.rules.push_back(R({MarkSet{kMarkPass, 0}}));
    first_tier = false;
    bool first_policy = true;
    for (const std::string& policy : tier.policy_chains) {
      if (first_policy) c.rules.push_back(R({Jump(policy)}));
      else c.rules.push_back(R({MarkMatch{kMarkMask, 0, false}, Jump(policy)}));
      first_policy = false;
    }
    if (&tier == &policies.tiers.back() && !tier.may_pass && !tier.pass_at_end && !tier.policy_chains.empty()) {
      // The last tier cannot pass: allowed falls off the end (a return), anything else is
      // dropped, and the profiles are unreachable. 1 rule instead of 5; the kernel validates
      // every group chain's rules on each chain change.
      c.rules.push_back(R({MarkMatch{kMarkAccept, 0, false}, Drop()}));
      return c;
    }
    if (!tier.policy_chains.empty()) {
      c.rules.push_back(R({MarkMatch{kMarkAccept, kMarkAccept, false}, Return()}));
    }
    if (!tier.pass_at_end) c.rules.push_back(R({MarkMatch{kMarkPass, 0, false}, Drop()}));
  }
  if (!policies.tiers.empty()) c.rules.push_back(R({MarkSet{kMarkPass, 0}}));
  // Profiles: a Pass goes on to the next profile; the first Allow ends them (falls off the end:
  // return); none allowing is a drop.
  bool first_profile = true;
  for (const std::string& profile : policies.profile_chains) {
    if (first_profile) c.rules.push_back(R({Jump(profile)}));
    else c.rules.push_back(R({MarkMatch{kMarkAccept, 0, false}, Jump(profile)}));
    first_profile = false;
  }
  if (policies.profile_chains.empty()) c.rules.push_back(R({Drop()}));
  else c.rules.push_back(R({MarkMatch{kMarkAccept, 0, false}, Drop()}));
  return c;
}

namespace {
const char* HostPrefix(HostPath path) {
  switch (path) {
    case HostPath::kIn: return "hi";
    case HostPath::kOut: return "ho";
    case HostPath::kFwdIn: return "hfi";
    case HostPath::kFwdOut: return "hfo";
  }
  return "h";
}
bool Ingress(HostPath path) { return path == HostPath::kIn || path == HostPath::kFwdIn; }
}  // namespace

std::string HostChainName(HostPath path, const EndpointPolicies& policies) {
  uint64_t h = Fnv(absl::StrCat(HostPrefix(path), ":", GroupChainName(Ingress(path), policies)));
  return absl::StrFormat("%s-%016x", HostPrefix(path), h);
}

Chain HostChain(HostPath path, const EndpointPolicies& policies) {
  Chain c = GroupChain(Ingress(path), policies);
  c.name = HostChainName(path, policies);
  if (path == HostPath::kIn) c.rules.insert(c.rules.begin(), R({Jump(kFailsafeInChain)}));
  if (path == HostPath::kOut) c.rules.insert(c.rules.begin(), R({Jump(kFailsafeOutChain)}));
  return c;
}

std::string UntrackedChainName(bool ingress, const EndpointPolicies& policies) {
  uint64_t h = Fnv(absl::StrCat(ingress ? "hui:" : "huo:", GroupChainName(ingress, policies)));
  return absl::StrFormat("%s-%016x", ingress ? "hui" : "huo", h);
}

namespace {
// A host endpoint's stage before normal policy (preDNAT, doNotTrack): clear the marks, failsafe
// first, then per tier the policies' chains as in GroupChain; `allowed` ends the stage for an
// Allow; a Pass goes on to the next tier; no end-of-tier, profile or default drop.
Chain StageChain(std::string name, const char* failsafe, const EndpointPolicies& policies, Rule allowed) {
  Chain c{std::move(name), std::nullopt, {R({MarkSet{kMarkMask, 0}}), R({Jump(failsafe)})}};
  for (const TierChains& tier : policies.tiers) {
    bool first_policy = true;
    for (const std::string& policy : tier.policy_chains) {
      if (first_policy) c.rules.push_back(R({Jump(policy)}));
      else c.rules.push_back(R({MarkMatch{kMarkMask, 0, false}, Jump(policy)}));
      first_policy = false;
    }
    c.rules.push_back(allowed);
    c.rules.push_back(R({MarkSet{kMarkPass, 0}}));
  }
  return c;
}
}  // namespace

Chain UntrackedChain(bool ingress, const EndpointPolicies& policies) {
  // Allowed: not tracked, and marked so the filter chains accept it without policy.
  return StageChain(UntrackedChainName(ingress, policies), ingress ? kFailsafeInChain : kFailsafeOutChain,
                    policies,
                    R({MarkMatch{kMarkAccept, kMarkAccept, false}, MarkSet{kMarkMask, kMarkUntracked},
                       Notrack{}, Accept()}));
}

std::string PreDnatChainName(const EndpointPolicies& policies) {
  uint64_t h = Fnv(absl::StrCat("hpd:", GroupChainName(true, policies)));
  return absl::StrFormat("hpd-%016x", h);
}

Chain PreDnatChain(const EndpointPolicies& policies) {
  // Accepted for this stage, marks cleared (normal policy runs later with its own).
  return StageChain(PreDnatChainName(policies), kFailsafeInChain, policies,
                    R({MarkMatch{kMarkAccept, kMarkAccept, false}, MarkSet{kMarkMask, 0}, Accept()}));
}

void AddHostEndpoint(DesiredTable& table, const HostEndpoint& endpoint) {
  const bool any = endpoint.ifname == "*";
  // preDNAT: a named interface's element either way (so its traffic never reaches the
  // all-interfaces endpoint's); "*": its chain only (AnyHostEndpointChains points at it).
  if (endpoint.pre_dnat) {
    Chain c = PreDnatChain(*endpoint.pre_dnat);
    if (!any) table.sets[kHepPreDnatMap].elements[endpoint.ifname] = absl::StrCat("goto ", c.name);
    if (!table.chains.contains(c.name)) table.chains[c.name] = std::move(c);
  } else if (!any) {
    table.sets[kHepPreDnatMap].elements[endpoint.ifname] = "return";
  }
  // doNotTrack: named interfaces only (upstream does not support it on "*").
  for (bool in : {true, false}) {
    const std::optional<EndpointPolicies>& p = in ? endpoint.untracked_in : endpoint.untracked_out;
    if (!p || any) continue;
    Chain c = UntrackedChain(in, *p);
    table.sets[in ? kHepUntrackedInMap : kHepUntrackedOutMap].elements[endpoint.ifname] =
        absl::StrCat("goto ", c.name);
    if (!table.chains.contains(c.name)) table.chains[c.name] = std::move(c);
  }
  auto add = [&](HostPath path, const EndpointPolicies* p, const char* map) {
    if (p == nullptr) {
      // No applyOnForward policy that way: allowed, and not the all-interfaces endpoint's.
      if (!any) table.sets[map].elements[endpoint.ifname] = "return";
      return;
    }
    Chain c = HostChain(path, *p);
    if (!any) table.sets[map].elements[endpoint.ifname] = absl::StrCat("goto ", c.name);
    if (!table.chains.contains(c.name)) table.chains[c.name] = std::move(c);
  };
  add(HostPath::kIn, &endpoint.in, kHepInMap);
  add(HostPath::kOut, &endpoint.out, kHepOutMap);
  add(HostPath::kFwdIn, endpoint.fwd_in ? &*endpoint.fwd_in : nullptr, kHepFwdInMap);
  add(HostPath::kFwdOut, endpoint.fwd_out ? &*endpoint.fwd_out : nullptr, kHepFwdOutMap);
}

std::vector<Chain> AnyHostEndpointChains(const HostEndpoint* endpoint) {
  std::vector<Chain> out;
  auto chain = [&](const char* name, HostPath path, const EndpointPolicies* p) {
    Chain c{name, std::nullopt, {}};
    if (endpoint != nullptr && p != nullptr) c.rules.push_back(R({Goto(HostChainName(path, *p))}));
    out.push_back(std::move(c));
  };
  const HostEndpoint* e = endpoint;
  chain(kHepAnyIn, HostPath::kIn, e ? &e->in : nullptr);
  chain(kHepAnyOut, HostPath::kOut, e ? &e->out : nullptr);
  chain(kHepAnyFwdIn, HostPath::kFwdIn, e && e->fwd_in ? &*e->fwd_in : nullptr);
  chain(kHepAnyFwdOut, HostPath::kFwdOut, e && e->fwd_out ? &*e->fwd_out : nullptr);
  Chain pre{kHepAnyPreDnat, std::nullopt, {}};
  if (e != nullptr && e->pre_dnat) pre.rules.push_back(R({Goto(PreDnatChainName(*e->pre_dnat))}));
  out.push_back(std::move(pre));
  return out;
}

namespace {

std::set<std::string> Reachable(const DesiredTable& t, std::initializer_list<const char*> roots) {
  std::set<std::string> seen;
  std::vector<std::string> todo;
  auto visit = [&](const std::string& c) {
    if (t.chains.contains(c) && seen.insert(c).second) todo.push_back(c);
  };
  for (const char* r : roots) visit(r);
  while (!todo.empty()) {
    std::string c = std::move(todo.back());
    todo.pop_back();
    for (const Rule& r : t.chains.at(c).rules) {
      for (const Expr& e : r.exprs) {
        if (const auto* v = std::get_if<Verdict>(&e)) {
          if (!v->chain.empty()) visit(v->chain);
        } else if (std::holds_alternative<IfnameVmap>(e) || std::holds_alternative<GroupVmap>(e)) {
          const std::string& name = std::holds_alternative<IfnameVmap>(e) ? std::get<IfnameVmap>(e).map
                                                                          : std::get<GroupVmap>(e).map;
          auto map = t.sets.find(name);
          if (map == t.sets.end()) continue;
          for (const auto& [key, verdict] : map->second.elements) {
            size_t sp = verdict.find(' ');  // "goto c" / "jump c"
            if (sp != std::string::npos) visit(verdict.substr(sp + 1));
          }
        }
      }
    }
  }
  return seen;
}

}  // namespace

DirectionSplit SplitByDirection(const DesiredTable& table) {
  DirectionSplit s;
  s.egress_chains = Reachable(table, {"prerouting"});
  s.ingress_chains = Reachable(table, {"forward", "input", "output", kPreDnatChain});
  for (const auto& [name, chain] : table.chains) {
    bool egress = s.egress_chains.contains(name);
    bool ingress = s.ingress_chains.contains(name) || !egress;
    if (ingress) s.ingress_chains.insert(name);  // unreachable: stays in kTableName
    for (const Rule& r : chain.rules) {
      for (const std::string& set : ReferencedSets(r)) {
        if (egress) s.egress_sets.insert(set);
        if (ingress) s.ingress_sets.insert(set);
      }
    }
    if (egress) s.egress.chains[name] = chain;
    if (ingress) s.ingress.chains[name] = chain;
  }
  for (const auto& [name, set] : table.sets) {
    bool egress = s.egress_sets.contains(name);
    if (egress) s.egress.sets[name] = set;
    if (!egress || s.ingress_sets.contains(name)) {
      s.ingress_sets.insert(name);
      s.ingress.sets[name] = set;
    }
  }
  return s;
}

void AddEndpoint(DesiredTable& table, const Endpoint& endpoint) {
  auto grp = table.sets.find(kFromGroupMap);
  const bool by_link = grp != table.sets.end() && grp->second.spec.key == KeyType::kDevgroup;
  const bool by_group = grp != table.sets.end() && !by_link;
  for (bool ingress : {true, false}) {
    const EndpointPolicies& p = ingress ? endpoint.ingress : endpoint.egress;
    const std::string& known = ingress ? endpoint.ingress_chain : endpoint.egress_chain;
    std::string name = known.empty() ? GroupChainName(ingress, p) : known;
    if (!table.chains.contains(name)) table.chains[name] = GroupChain(ingress, p);
    if (by_link) {
      // The interface carries the group number; the caller sets it (and keeps it unique).
      table.sets[ingress ? kToGroupMap : kFromGroupMap].elements[std::to_string(endpoint.link_group)] =
          absl::StrCat("goto ", name);
      continue;
    }
    Elements& by_if = table.sets[ingress ? kToWepMap : kFromWepMap].elements;
    if (by_group) {
      std::string key = name.substr(3, 15);
      table.sets[ingress ? kToGroupMap : kFromGroupMap].elements[key] = absl::StrCat("goto ", name);
      by_if[endpoint.ifname] = key;
    } else {
      by_if[endpoint.ifname] = absl::StrCat("goto ", name);
    }
  }
  for (const std::string& a : endpoint.addresses) {
    bool v6 = a.find(':') != std::string::npos;
    table.sets[v6 ? kWepSrc6 : kWepSrc4].elements[absl::StrCat(endpoint.ifname, " . ", a)] = "";
  }
}

namespace {

// The CIDRs as interval-set elements, without those inside another of the list.
Elements PoolElements(KeyType type, const std::vector<std::string>& cidrs) {
  struct Pool {
    std::string key;
    std::pair<std::string, std::string> range;
  };
  std::vector<Pool> pools;
  Elements out;
  for (const std::string& cidr : cidrs) {
    auto key = CanonicalKey(type, true, cidr);
    auto range = IntervalRange(type, cidr);
    if (!key.ok() || !range.ok()) {
      out.emplace(cidr, "");  // Canonicalize names it
      continue;
    }
    pools.push_back({*std::move(key), *std::move(range)});
  }
  for (size_t i = 0; i < pools.size(); ++i) {
    bool covered = false;
    for (size_t j = 0; j < pools.size() && !covered; ++j) {
      const auto& a = pools[i].range;
      const auto& b = pools[j].range;
      // Prefixes nest or are disjoint; an equal one is the same key (one element).
      covered = j != i && b.first <= a.first && a.second <= b.second && b != a;
    }
    if (!covered) out.emplace(pools[i].key, "");
  }
  return out;
}

}  // namespace

void AddNatOutgoing(DesiredTable& table, const NatOutgoing& pools) {
  table.sets[kNatPools4] = {SetSpec{kNatPools4, KeyType::kIpv4, true},
                            PoolElements(KeyType::kIpv4, pools.nat_pools4)};
  table.sets[kAllPools4] = {SetSpec{kAllPools4, KeyType::kIpv4, true},
                            PoolElements(KeyType::kIpv4, pools.all_pools4)};
  table.sets[kNatPools6] = {SetSpec{kNatPools6, KeyType::kIpv6, true},
                            PoolElements(KeyType::kIpv6, pools.nat_pools6)};
  table.sets[kAllPools6] = {SetSpec{kAllPools6, KeyType::kIpv6, true},
                            PoolElements(KeyType::kIpv6, pools.all_pools6)};
  Chain nat{kNatChain,
            BaseChain{Hook::kPostrouting, kPrioritySrcnat, true, ChainType::kNat},
            {}};
  nat.rules = {
      R({AddrSetMatch{4, Dir::kSource, kNatPools4, false},
         AddrSetMatch{4, Dir::kDest, kAllPools4, true}, Masquerade{}}),
      R({AddrSetMatch{6, Dir::kSource, kNatPools6, false},
         AddrSetMatch{6, Dir::kDest, kAllPools6, true}, Masquerade{}}),
  };
  table.chains[kNatChain] = std::move(nat);
}

}  // namespace calico::felixd::nft
