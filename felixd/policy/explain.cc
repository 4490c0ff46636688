#include "felixd/policy/explain.h"

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
      out += "tier " + tier + " policy " + policy + " " + RuleName(rule_index, rule_origin);
      break;
    case Reason::kEndOfTier:
      out += "end of tier " + tier + " (no policy rule matched; defaultAction Deny)";
      break;
    case Reason::kProfileRule:
      out += "profile " + profile + " " + RuleName(rule_index, rule_origin);
      out += policy_applied ? " after every applied tier passed" : " (no policy selects the endpoint)";
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
  if (!egress && !ingress) return out + ": neither end is a workload endpoint";
  if (egress) out += "; " + egress->Describe();
  if (ingress) out += "; " + ingress->Describe();
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

Verdict Explain(const Model& model, const Packet& packet) {
  PacketContext ctx = ContextFor(model, packet);
  Verdict out;
  out.allowed = true;
  if (ctx.src_endpoint) {
    out.egress = EvaluateDirection(model, *ctx.src_endpoint, Direction::kEgress, ctx);
    if (!out.egress->allowed) {
      out.allowed = false;
      return out;
    }
  }
  if (ctx.dst_endpoint) {
    out.ingress = EvaluateDirection(model, *ctx.dst_endpoint, Direction::kIngress, ctx);
    out.allowed = out.ingress->allowed;
  }
  return out;
}

}  // namespace calico::felixd::policy
