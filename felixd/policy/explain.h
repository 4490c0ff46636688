#pragma once
// The evaluator: a packet's verdict and what decided it (felixd's Explain RPC, and the oracle
// the dataplane's tests compare real traffic against).
//
// Semantics (upstream Calico): a packet from workload A to workload B is checked on A's egress,
// then on B's ingress; an address that is not a workload is not checked on its side. Per
// direction: tiers in order; a tier applies when at least one of its policies selects the
// endpoint for the direction; in it, policies by order then name, rules in order, the first
// matching Allow/Deny decides, Pass leaves the tier, Log records and goes on. A tier that applies
// and does not decide ends with its defaultAction (Deny: "end of tier", or Pass). When no tier
// applied, or every applied tier passed, the endpoint's profiles decide in order (the first
// matching Allow/Deny); none deciding is a deny.

#include <optional>
#include <string>
#include <vector>

#include "felixd/policy/match.h"
#include "felixd/policy/model.h"

namespace calico::felixd::policy {

enum class Reason {
  kRule,              // a policy rule's Allow or Deny
  kEndOfTier,         // a tier applied and nothing in it decided (defaultAction Deny)
  kProfileRule,       // a profile rule's Allow or Deny
  kNoProfileAllowed,  // policies passed or none applied, and no profile decided: deny
};

struct DirectionVerdict {
  Direction direction = Direction::kEgress;
  std::string endpoint;  // "ns/name"
  bool allowed = false;
  Reason reason = Reason::kRule;
  bool policy_applied = false;  // some tier selected the endpoint in this direction
  std::string tier;             // kRule, kEndOfTier
  std::string policy;           // kRule: Policy::Id()
  int rule_index = -1;          // kRule, kProfileRule: index in the policy's (profile's) rules
  std::string rule_origin;      // "spec.ingress[0].from[1] TCP"
  std::string profile;          // kProfileRule
  std::vector<std::string> trace;  // Pass and Log steps on the way, in order

  // e.g. "egress of ns1/a: allowed by tier default policy ns1/knp.default.x rule 0 (spec.egress[0])"
  std::string Describe() const;
};

struct Verdict {
  bool allowed = false;
  std::optional<DirectionVerdict> egress;   // set when the source is a workload
  std::optional<DirectionVerdict> ingress;  // set when the destination is a workload and egress allowed
  // The step that decided a deny (the first denying direction), else the last allowing one;
  // nullptr when neither end is a workload (allowed: not ours to police).
  const DirectionVerdict* Deciding() const;
  std::string Describe() const;
};

// One direction of one endpoint.
DirectionVerdict EvaluateDirection(const Model& model, const Endpoint& endpoint, Direction direction,
                                   const PacketContext& ctx);
// The whole path: source's egress, then destination's ingress, endpoints resolved by address.
Verdict Explain(const Model& model, const Packet& packet);

}  // namespace calico::felixd::policy
