#include "felixd/policy/explain.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace calico::felixd::policy {
namespace {

std::string RuleName(int index, const std::string& origin) {
  return "rule " + std::to_string(index) + (origin.empty() ? "" : " (" + origin + ")");
}

}  // namespace

std::string DirectionVerdict::Describe() const {
  std::string out = std::string(ToString(direction)) + " of " + endpoint + ": " +
                    (allowed ? "allowed" : "denied") + " by ";
  switch (reason) {
    case Reason::kRule:
      out += std::string(pre_dnat ? "preDNAT " : untracked ? "doNotTrack " : "") + "tier " + tier +
             " policy " + policy + " " +
             RuleName(rule_index, rule_origin);
      break;
    case Reason::kEndOfTier:
      out += "end of tier " + tier + " (no policy rule matched; defaultAction Deny)";
      break;
    case Reason::kProfileRule:
      out += "profile " + profile + " " + RuleName(rule_index, rule_origin);
      out += policy_applied ? " after every applied tier passed" : " (no policy selects the endpoint)";
      break;
    case Reason::kFailsafe:
      out += "failsafe port " + failsafe;
      break;
    case Reason::kNoProfileAllowed:
      out += policy_applied ? "default deny (every applied tier passed and no profile matched)"
                            : "default deny (no policy selects the endpoint and no profile matched)";
      break;
  }
  return out;
}

const DirectionVerdict* Verdict::Deciding() const {
  if (egress && !egress->allowed) return &*egress;
  if (ingress) return &*ingress;
  if (egress) return &*egress;
  return nullptr;
}

std::string Verdict::Describe() const {
  std::string out = allowed ? "allow" : "deny";
  if (!egress && !ingress) return out + ": neither end is a workload or host endpoint";
  if (egress) out += "; " + egress->Describe();
  if (ingress) out += "; " + ingress->Describe();
  for (const std::string& note : notes) out += "; not evaluated: " + note;
  return out;
}

DirectionVerdict EvaluateDirection(const Model& model, const Endpoint& endpoint, Direction dir,
                                   const PacketContext& ctx) {
  DirectionVerdict v;
  v.direction = dir;
  v.endpoint = endpoint.Id();
  EntityView self = ViewOf(model, endpoint);
  for (const Tier& tier : model.SortedTiers()) {
    bool applied = false;
    bool passed = false;
    for (const Policy* p : model.PoliciesInTier(tier.name)) {
      if (!p->Applies(dir) || !Matches(p->applies_to, self)) continue;
      // Upstream: preDNAT and doNotTrack policies apply to host endpoints only.
      if (p->pre_dnat || p->do_not_track) continue;
      applied = true;
      const std::vector<Rule>& rules = p->Rules(dir);
      for (size_t i = 0; i < rules.size() && !passed; ++i) {
        const Rule& r = rules[i];
        if (!RuleMatches(r, ctx)) continue;
        std::string where = "tier " + tier.name + " policy " + p->Id() + " " + RuleName(int(i), r.origin);
        if (r.action == Action::kLog) {
          v.trace.push_back("log: " + where);
          continue;
        }
        if (r.action == Action::kPass) {
          v.trace.push_back("pass: " + where);
          passed = true;
          break;
        }
        v.allowed = r.action == Action::kAllow;
        v.reason = Reason::kRule;
        v.policy_applied = true;
        v.tier = tier.name;
        v.policy = p->Id();
        v.rule_index = int(i);
        v.rule_origin = r.origin;
        return v;
      }
      if (passed) break;
    }
    if (!applied) continue;
    v.policy_applied = true;
    if (passed) continue;
    if (tier.default_action == TierDefault::kPass) {
      v.trace.push_back("pass: end of tier " + tier.name + " (defaultAction Pass)");
      continue;
    }
    v.allowed = false;
    v.reason = Reason::kEndOfTier;
    v.tier = tier.name;
    return v;
  }
  for (const std::string& name : endpoint.profiles) {
    std::optional<Profile> profile = model.ProfileNamed(name);
    if (!profile) {
      v.trace.push_back("profile " + name + " does not exist");
      continue;
    }
    const std::vector<Rule>& rules = profile->Rules(dir);
    bool next = false;
    for (size_t i = 0; i < rules.size() && !next; ++i) {
      const Rule& r = rules[i];
      if (!RuleMatches(r, ctx)) continue;
      std::string where = "profile " + name + " " + RuleName(int(i), r.origin);
      if (r.action == Action::kLog) {
        v.trace.push_back("log: " + where);
        continue;
      }
      if (r.action == Action::kPass) {
        v.trace.push_back("pass: " + where);
        next = true;
        continue;
      }
      v.allowed = r.action == Action::kAllow;
      v.reason = Reason::kProfileRule;
      v.profile = name;
      v.rule_index = int(i);
      v.rule_origin = r.origin;
      return v;
    }
  }
  v.allowed = false;
  v.reason = Reason::kNoProfileAllowed;
  return v;
}

bool ProgrammedHostEndpoint(const Endpoint& endpoint) {
  return endpoint.host && !endpoint.interface.empty();
}

namespace {

// A host endpoint's side of a packet of the host: failsafe ports first.
DirectionVerdict EvaluateHost(const Model& model, const Endpoint& host, Direction dir,
                              const PacketContext& ctx) {
  const Packet& p = ctx.packet;
  const std::vector<FailsafePort>& ports =
      dir == Direction::kIngress ? model.failsafe().inbound : model.failsafe().outbound;
  for (const FailsafePort& f : ports) {
    if (f.protocol != p.protocol || f.port != p.dst_port) continue;
    DirectionVerdict v;
    v.direction = dir;
    v.endpoint = host.Id();
    v.allowed = true;
    v.reason = Reason::kFailsafe;
    v.failsafe = FormatFailsafePorts({f});
    return v;
  }
  return EvaluateDirection(model, host, dir, ctx);
}

// A host stage before normal policy (preDNAT: ingress; doNotTrack: either direction) on a host
// endpoint: the verdict that decides, if any. preDNAT: only a Deny decides (an Allow goes on to
// normal policy); doNotTrack: an Allow decides too (untracked, no further policy).
std::optional<DirectionVerdict> EvaluateHostStage(const Model& model, const Endpoint& host,
                                                  Direction dir, bool untracked,
                                                  const PacketContext& ctx) {
  const Packet& p = ctx.packet;
  if (untracked && host.interface == "*") return std::nullopt;  // upstream: named ones only
  const bool in = dir == Direction::kIngress;
  for (const FailsafePort& f : in ? model.failsafe().inbound : model.failsafe().outbound) {
    if (f.protocol == p.protocol && f.port == p.dst_port) return std::nullopt;
  }
  std::optional<EntityView> self;
  for (const Tier& tier : model.SortedTiers()) {
    for (const Policy* pol : model.PoliciesInTier(tier.name)) {
      if (!(untracked ? pol->ProgrammedDoNotTrack() : pol->ProgrammedPreDnat()) || !pol->Applies(dir)) continue;
      if (!self) self = ViewOf(model, host);
      if (!Matches(pol->applies_to, *self)) continue;
      bool passed = false;
      const std::vector<Rule>& rules = pol->Rules(dir);
      for (size_t i = 0; i < rules.size(); ++i) {
        const Rule& r = rules[i];
        if (r.action == Action::kLog || !RuleMatches(r, ctx)) continue;
        if (r.action == Action::kPass) {
          passed = true;
          break;
        }
        if (r.action == Action::kAllow && !untracked) return std::nullopt;  // on to normal policy
        DirectionVerdict v;
        v.direction = dir;
        v.endpoint = host.Id();
        v.allowed = r.action == Action::kAllow;
        v.reason = Reason::kRule;
        v.pre_dnat = !untracked;
        v.untracked = untracked;
        v.policy_applied = true;
        v.tier = tier.name;
        v.policy = pol->Id();
        v.rule_index = int(i);
        v.rule_origin = r.origin;
        return v;
      }
      if (passed) break;  // the rest of this tier is skipped; no end-of-tier deny here
    }
  }
  return std::nullopt;
}

// The host endpoint checked for this end, if any: programmed, and the other end is not a
// workload of the same host.
const Endpoint* HostSide(const Endpoint* host, const Endpoint* other_workload) {
  if (!host || !ProgrammedHostEndpoint(*host)) return nullptr;
  if (other_workload && other_workload->node == host->node) return nullptr;
  return host;
}

// The programmed host endpoints of `node` that policy applies to when traffic is forwarded
// through them in `dir`: applyOnForward policies of that direction, preDNAT ones (ingress).
std::vector<std::string> ForwardingHostEndpoints(const Model& model, const std::string& node, Direction dir) {
  std::vector<std::string> out;
  for (const auto& [_, e] : model.endpoints()) {
    if (!e.host || e.node != node || !ProgrammedHostEndpoint(e)) continue;
    const EntityView self = ViewOf(model, e);
    for (const auto& [__, p] : model.policies()) {
      const bool forward = p.apply_on_forward && !p.pre_dnat && !p.do_not_track && p.Applies(dir);
      const bool pre_dnat = p.ProgrammedPreDnat() && dir == Direction::kIngress;
      if ((forward || pre_dnat) && Matches(p.applies_to, self)) {
        out.push_back(e.name);
        break;
      }
    }
  }
  return out;
}

// A note for a workload's traffic with an address outside every endpoint: it may cross one of
// these host endpoints, whose forward policies Explain cannot place.
void NoteForwarding(const Model& model, const Endpoint& workload, Direction dir, Verdict& out) {
  std::vector<std::string> heps = ForwardingHostEndpoints(model, workload.node, dir);
  if (heps.empty()) return;
  out.notes.push_back(absl::StrCat(
      "host endpoint", heps.size() > 1 ? "s " : " ", absl::StrJoin(heps, ", "), " of node ", workload.node,
      dir == Direction::kIngress ? " (traffic arriving through it is forwarded to the workload: its preDNAT and "
                                   "applyOnForward ingress policies apply too)"
                                 : " (traffic leaving through it: its applyOnForward egress policies apply too)",
      "; which interface the packet uses is not known here"));
}

}  // namespace

Verdict Explain(const Model& model, const Packet& packet) {
  PacketContext ctx = ContextFor(model, packet);
  Verdict out;
  out.allowed = true;
  if (ctx.dst_endpoint && !ctx.src_endpoint && !ctx.src_host) {
    NoteForwarding(model, *ctx.dst_endpoint, Direction::kIngress, out);
  }
  if (ctx.src_endpoint && !ctx.dst_endpoint && !ctx.dst_host) {
    NoteForwarding(model, *ctx.src_endpoint, Direction::kEgress, out);
  }
  if (ctx.src_endpoint) {
    out.egress = EvaluateDirection(model, *ctx.src_endpoint, Direction::kEgress, ctx);
  } else if (const Endpoint* host = HostSide(ctx.src_host, ctx.dst_endpoint)) {
    std::optional<DirectionVerdict> untracked = EvaluateHostStage(model, *host, Direction::kEgress, true, ctx);
    out.egress = untracked ? *std::move(untracked) : EvaluateHost(model, *host, Direction::kEgress, ctx);
  }
  if (out.egress && !out.egress->allowed) {
    out.allowed = false;
    return out;
  }
  if (ctx.dst_endpoint) {
    out.ingress = EvaluateDirection(model, *ctx.dst_endpoint, Direction::kIngress, ctx);
    out.allowed = out.ingress->allowed;
  } else if (const Endpoint* host = HostSide(ctx.dst_host, ctx.src_endpoint)) {
    std::optional<DirectionVerdict> pre = EvaluateHostStage(model, *host, Direction::kIngress, true, ctx);
    if (!pre) pre = EvaluateHostStage(model, *host, Direction::kIngress, false, ctx);
    out.ingress = pre ? *std::move(pre) : EvaluateHost(model, *host, Direction::kIngress, ctx);
    out.allowed = out.ingress->allowed;
  }
  return out;
}

}  // namespace calico::felixd::policy
