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
  kFailsafe,          // a host endpoint's failsafe port (FailsafeInbound/OutboundHostPorts)
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
  std::string failsafe;         // kFailsafe: "tcp:22"
  std::vector<std::string> trace;  // Pass and Log steps on the way, in order
  bool pre_dnat = false;           // kRule: decided by a preDNAT policy (before DNAT)
  bool untracked = false;          // kRule: decided by a doNotTrack policy (before conntrack)

  // e.g. "egress of ns1/a: allowed by tier default policy ns1/knp.default.x rule 0 (spec.egress[0])"
  std::string Describe() const;
};

// Host endpoints: an address in a HostEndpoint's expectedIPs is the host itself through that
// endpoint's interface, so a packet from it is the host endpoint's egress and a packet to it the
// host endpoint's ingress, as traffic of the host (the input/output path; forwarded traffic
// through a host endpoint is not explained). Failsafe ports allow first; then tiers and profiles
// as for workloads (no policy and no profile: deny). Traffic between a host and a workload on
// that host is not checked on the host's side (as upstream). Host endpoints felixd does not
// program (interfaceName empty: upstream finds the interface by expectedIPs) are not checked.
// preDNAT policies (Policy::ProgrammedPreDnat) run first on a host endpoint's ingress (named
// interface only): a failsafe port skips them, a Deny decides, an Allow or nothing deciding
// goes on to the normal policy; the packet is taken as seen before DNAT (Explain models no
// DNAT). doNotTrack policies are not modelled (felixd does not program them).
struct Verdict {
  bool allowed = false;
  std::optional<DirectionVerdict> egress;   // set when the source is a workload or host endpoint
  std::optional<DirectionVerdict> ingress;  // likewise the destination, when egress allowed
  // What the verdict leaves out (forwarded traffic's host endpoint policies: the interface a
  // packet uses is not known here), one sentence each; part of Describe().
  std::vector<std::string> notes;
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

// Whether felixd programs this host endpoint (a named interfaceName or "*"; not "").
bool ProgrammedHostEndpoint(const Endpoint& endpoint);

}  // namespace calico::felixd::policy
