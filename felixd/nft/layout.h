#pragma once
// felixd/nft/layout.h — the shape of table `inet calico` (felixd/README.md "Policy table"). Pure.
// Per-packet cost does not grow with endpoints: dispatch is one verdict-map lookup per direction
// (iifname vmap @from-wep / oifname vmap @to-wep); endpoints whose ordered policy lists are equal
// share one group chain (fw-/tw-<hash>); a policy is one chain per direction shared by all.
// Verdicts: a policy chain never accepts. Allow sets kMarkAccept and returns, Pass sets
// kMarkPass and returns, Deny drops; so a packet between two local workloads runs the source's
// egress and then the destination's ingress, and `forward` accepts only after both.
// Fail closed: a cali* interface missing from the map is dropped; so is a source address the
// interface does not own (anti-spoofing, one concatenated iifname . saddr set).

#include <string>
#include <vector>

#include "felixd/nft/delta.h"

namespace calico::felixd::nft {

inline constexpr uint32_t kMarkAccept = 0x10000;
inline constexpr uint32_t kMarkPass = 0x20000;
inline constexpr uint32_t kMarkMask = kMarkAccept | kMarkPass;

inline constexpr char kFromWepMap[] = "from-wep";  // ifname : goto fw-<group>
inline constexpr char kToWepMap[] = "to-wep";      // ifname : goto tw-<group>
inline constexpr char kWepSrc4[] = "wep-src4";     // ifname . ipv4_addr: allowed sources
inline constexpr char kWepSrc6[] = "wep-src6";
inline constexpr char kWorkloadPrefix[] = "cali";

enum class EndpointToHost { kDrop, kAccept, kReturn };  // DefaultEndpointToHostAction

struct LayoutOptions {
  EndpointToHost endpoint_to_host = EndpointToHost::kDrop;
};

// Base chains (forward, input), the dispatch chains, maps and anti-spoofing sets, empty.
DesiredTable Skeleton(const LayoutOptions& options = {});

// The policies that apply to one endpoint in one direction, compiled to chain names.
struct TierChains {
  std::vector<std::string> policy_chains;  // in order; each Allow/Pass/Deny as above
  bool pass_at_end = false;                // tier defaultAction Pass (else end-of-tier drop)
  bool operator==(const TierChains&) const = default;
};
struct EndpointPolicies {
  std::vector<TierChains> tiers;            // tiers with at least one applying policy
  std::vector<std::string> profile_chains;  // evaluated after the tiers (if they pass)
  bool operator==(const EndpointPolicies&) const = default;
};

// "fw-" (egress, from the workload) or "tw-" (ingress) + 16 hex of the lists' hash.
std::string GroupChainName(bool ingress, const EndpointPolicies& policies);
Chain GroupChain(bool ingress, const EndpointPolicies& policies);

// Policy rule actions, for the policy model's rules.
inline MarkSet AllowMark() { return {0, kMarkAccept}; }
inline MarkSet PassMark() { return {0, kMarkPass}; }

// One workload endpoint: its group chains (added if missing), map entries and source addresses.
struct Endpoint {
  std::string ifname;
  std::vector<std::string> addresses;  // "10.65.0.3", "fd00::3"
  EndpointPolicies ingress, egress;
};
void AddEndpoint(DesiredTable& table, const Endpoint& endpoint);

}  // namespace calico::felixd::nft
