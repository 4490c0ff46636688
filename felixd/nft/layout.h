#pragma once
// felixd/nft/layout.h — the shape of table `inet calico` (felixd/README.md "Policy table"). Pure.
// Per-packet cost does not grow with endpoints: dispatch is one rule per direction; endpoints
// whose ordered policy lists are equal share one group chain (fw-/tw-<hash>); a policy is one
// chain per direction shared by all. Dispatch::kByInterface (default): one verdict map,
// `iifname vmap @from-wep` (ifname : goto fw-<hash>). Dispatch::kByGroup: two chained lookups,
// `iifname map @from-wep vmap @from-grp` — interface → group key in a data map, group key →
// `goto fw-<hash>` in a verdict map — so a pod joining an existing group adds data elements
// only, and the kernel's commit-time validation of the jump graph (every transaction adding a
// jump, a verdict element or a rule) walks each group once, not once per interface. Not the
// default because nft 1.0.6 (Debian 12) aborts listing anything once a table holds it (even
// `nft list tables`: netlink_parse_concat_expr: "consumed > 0"); the kernel state and our Read
// are fine.
// Verdicts: a policy chain never accepts. Allow sets kMarkAccept and returns, Pass sets
// kMarkPass and returns, Deny drops; so a packet between two local workloads runs the source's
// egress and then the destination's ingress, and `forward` accepts only after both.
// Fail closed: a cali* interface missing from the map is dropped; so is a source address the
// interface does not own (anti-spoofing, one concatenated iifname . saddr set).

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "felixd/nft/delta.h"

namespace calico::felixd::nft {

inline constexpr uint32_t kMarkAccept = 0x10000;
inline constexpr uint32_t kMarkPass = 0x20000;
inline constexpr uint32_t kMarkMask = kMarkAccept | kMarkPass;
// Set with notrack by a doNotTrack Allow at raw priority; input/forward/output/pre-dnat accept it.
inline constexpr uint32_t kMarkUntracked = 0x40000;

// kByGroup: ifname : GroupKey; kByInterface: ifname : goto fw-<group>.
inline constexpr char kFromWepMap[] = "from-wep";
inline constexpr char kToWepMap[] = "to-wep";
// kByGroup only: GroupKey : goto fw-/tw-<group>.
inline constexpr char kFromGroupMap[] = "from-grp";
inline constexpr char kToGroupMap[] = "to-grp";
inline constexpr char kWepSrc4[] = "wep-src4";     // ifname . ipv4_addr: allowed sources
inline constexpr char kWepSrc6[] = "wep-src6";
inline constexpr char kWorkloadPrefix[] = "cali";

enum class EndpointToHost { kDrop, kAccept, kReturn };  // DefaultEndpointToHostAction
// kByLinkGroup (felixd's default): `iifgroup vmap @from-grp` / `oifgroup vmap @to-grp` — the
// workload's host veth carries a link group number (IFLA_GROUP) naming its (ingress, egress)
// policy combination, and the maps hold one `goto` per combination. A pod joining an existing
// combination, or moving between two, changes its link's group (one netlink message) and no
// nftables element that jumps, so the kernel does not re-validate the table's jump graph; and
// unlike kByGroup, nft 1.0.6 lists it. The caller owns the numbers: Endpoint::link_group.
enum class Dispatch { kByInterface, kByGroup, kByLinkGroup };

// Where workload egress policy runs. kForwardAndInput: `forward` and `input` both jump from-wep
// (the kernel's commit-time validation then walks every egress group twice). kPrerouting: one
// base chain `prerouting` (filter, priority 0: after conntrack and DNAT, so policy sees what
// forward would) jumps from-wep for all traffic from workloads; forward and input keep only
// ingress and the endpoint-to-host action. Same verdicts; the walk is a third shorter.
enum class EgressHook { kForwardAndInput, kPrerouting };

// A failsafe port: `meta l4proto <proto> th dport <port> accept` for host endpoints.
struct FailsafePort {
  uint8_t proto = 6;
  uint16_t port = 0;
  bool operator==(const FailsafePort&) const = default;
};

struct LayoutOptions {
  // Constructors (not an aggregate) so `LayoutOptions{to_host, dispatch, egress}` stays
  // warning-free under -Wextra with the failsafe lists defaulted.
  LayoutOptions() = default;
  LayoutOptions(EndpointToHost to_host, Dispatch dispatch = Dispatch::kByInterface,
                EgressHook egress = EgressHook::kForwardAndInput)
      : endpoint_to_host(to_host), dispatch(dispatch), egress(egress) {}
  EndpointToHost endpoint_to_host = EndpointToHost::kDrop;
  Dispatch dispatch = Dispatch::kByInterface;
  EgressHook egress = EgressHook::kForwardAndInput;
  // Host endpoints' failsafe ports (the chains failsafe-in / failsafe-out); the policy
  // compiler fills these from the model (upstream's defaults unless configured).
  std::vector<FailsafePort> failsafe_in, failsafe_out;
};

// Base chains (forward, input), the dispatch chains, maps and anti-spoofing sets, empty.
DesiredTable Skeleton(const LayoutOptions& options = {});

// The policies that apply to one endpoint in one direction, compiled to chain names.
struct TierChains {
  std::vector<std::string> policy_chains;  // in order; each Allow/Pass/Deny as above
  bool pass_at_end = false;                // tier defaultAction Pass (else end-of-tier drop)
  // Some policy of the tier has a Pass rule. Neither this nor pass_at_end on the last tier:
  // nothing after it is reachable, so the group chain leaves the profiles out.
  bool may_pass = false;
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
// The group's key in from-grp/to-grp (kByGroup): the first 15 of the chain name's 16 hex digits
// (an `ifname`-typed value: 15 characters and a NUL).
std::string GroupKey(bool ingress, const EndpointPolicies& policies);

// Policy rule actions, for the policy model's rules.
inline MarkSet AllowMark() { return {0, kMarkAccept}; }
inline MarkSet PassMark() { return {0, kMarkPass}; }

// One workload endpoint: its group chains (added if missing), map entries and source addresses.
struct Endpoint {
  std::string ifname;
  std::vector<std::string> addresses;  // "10.65.0.3", "fd00::3"
  EndpointPolicies ingress, egress;
  uint32_t link_group = 0;  // kByLinkGroup: the number its link carries (>= kMinLinkGroup)
  // GroupChainName of ingress and egress when the caller has them (empty: computed).
  std::string ingress_chain, egress_chain;
};
// Link groups below this are left to the system (0 is every link's default; small numbers are
// what operators use by hand). A cali* link in an unknown group is dropped (fail closed).
inline constexpr uint32_t kMinLinkGroup = 0x10000;
// The preferred number for an (ingress, egress) combination: a hash, so a restarted felixd
// picks the same numbers; the caller probes upwards when two combinations collide.
uint32_t LinkGroupOf(const EndpointPolicies& ingress, const EndpointPolicies& egress);
// The same from the two GroupChainNames.
uint32_t LinkGroupOf(std::string_view ingress_chain, std::string_view egress_chain);
// Follows the table's dispatch (kByGroup when it has kFromGroupMap): kByGroup adds the group's
// chain and its from-grp/to-grp element when missing, and the interface's data elements.
void AddEndpoint(DesiredTable& table, const Endpoint& endpoint);

// Host endpoints (HostEndpoint of this node with interfaceName eth0, or "*"): the host's own traffic
// through that interface, and with applyOnForward policies the traffic forwarded through it.
//   chain input   ...; iifname != "cali*" jump from-hep    (after the workload rules)
//   chain output  (filter, hook output, priority 0, policy accept)
//                 ct state established,related accept; oifname != "cali*" jump to-hep
//   chain forward ct rules; iifname != "cali*" jump from-hep-fwd; (workload rules);
//                 oifname != "cali*" jump to-hep-fwd
//   chain from-hep / to-hep: clear the marks; ICMPv6 ND/MLD accepted; iifname/oifname vmap
//                 @hep-in / @hep-out (ifname : goto hi-/ho-<hash>); then, for an interface
//                 that is not a named host endpoint, iifname/oifname != "lo" goto hep-any-in /
//                 hep-any-out: empty (not ours: return) unless an all-interfaces ("*") host
//                 endpoint exists, then `goto hi-/ho-<its hash>`
//   chain from-hep-fwd / to-hep-fwd: clear the marks; vmap @hep-fwd-in / @hep-fwd-out
//                 (ifname : goto hfi-/hfo-<hash>, or `return` when no applyOnForward policy
//                 selects the endpoint that way: forwarded traffic allowed), then != "lo" goto
//                 hep-any-fwd-in / hep-any-fwd-out likewise
//                 (from-hep/to-hep first accept VXLAN and IP-in-IP from/to @hep-nodes4/6)
//   chain hi-/ho-<hash>: jump failsafe-in / failsafe-out (accepts), then the group chain's
//                 rules (tiers, then profiles; nothing allowing: drop)
//   chain hfi-/hfo-<hash>: the group chain's rules over applyOnForward policies, no profiles
// Traffic between the host and its own workloads crosses a cali* interface, never a host
// endpoint's, so host endpoint policy does not see it (as upstream).
inline constexpr char kHepInMap[] = "hep-in";
inline constexpr char kHepOutMap[] = "hep-out";
inline constexpr char kHepFwdInMap[] = "hep-fwd-in";
inline constexpr char kHepFwdOutMap[] = "hep-fwd-out";
inline constexpr char kFailsafeInChain[] = "failsafe-in";
inline constexpr char kFailsafeOutChain[] = "failsafe-out";
// Calico nodes' addresses (Node spec.bgp.ipv4Address/ipv6Address; the policy manager fills
// them): from-hep accepts VXLAN (udp 4789) and IP-in-IP from them, to-hep to them, before any
// host endpoint policy — node-to-node pod traffic is not host endpoint policy (as upstream).
inline constexpr char kHepNodes4[] = "hep-nodes4";
inline constexpr char kHepNodes6[] = "hep-nodes6";
// The all-interfaces host endpoint's entry chains (skeleton chains; SetAnyHostEndpoint fills them).
inline constexpr char kHepAnyIn[] = "hep-any-in";
inline constexpr char kHepAnyOut[] = "hep-any-out";
inline constexpr char kHepAnyFwdIn[] = "hep-any-fwd-in";
inline constexpr char kHepAnyFwdOut[] = "hep-any-fwd-out";
// The all-interfaces endpoint's preDNAT entry (pre-dnat's miss for a host interface).
inline constexpr char kHepAnyPreDnat[] = "hep-any-pre-dnat";
enum class HostPath { kIn, kOut, kFwdIn, kFwdOut };
std::string HostChainName(HostPath path, const EndpointPolicies& policies);
Chain HostChain(HostPath path, const EndpointPolicies& policies);
// preDNAT policies (upstream's GlobalNetworkPolicy preDNAT: true): before DNAT, so they see
// the original destination (a NodePort, a service address):
//   chain pre-dnat (filter, hook prerouting, priority -110: after conntrack -200, before
//                 dstnat -100, policy accept): iifname vmap @hep-pre-dnat
//                 (ifname : goto hpd-<hash> for a named host endpoint some preDNAT policy
//                 selects, `return` for one none selects); a miss on a host interface (not
//                 cali*, not lo): goto hep-any-pre-dnat — the all-interfaces endpoint's hpd-
//                 chain, or empty (accept)
//   chain hpd-<hash>: clear the marks; jump failsafe-in (accepts); per tier the policies'
//                 ingress chains, an Allow accepts (for this stage: normal policy still runs
//                 at input/forward), a Deny drops, a Pass or no decision goes on to the next
//                 tier; nothing deciding falls through (no default deny here, as upstream).
inline constexpr char kPreDnatChain[] = "pre-dnat";
inline constexpr char kHepPreDnatMap[] = "hep-pre-dnat";
inline constexpr int kPriorityPreDnat = -110;
std::string PreDnatChainName(const EndpointPolicies& policies);
Chain PreDnatChain(const EndpointPolicies& policies);
// doNotTrack policies (upstream's untracked policy: GlobalNetworkPolicy doNotTrack: true,
// applyOnForward: true; named host endpoints only, as upstream):
//   chain raw-prerouting / raw-output (filter, hook prerouting / output, priority -300 raw:
//                 before conntrack, policy accept): clear the untracked mark; iifname / oifname
//                 vmap @hep-untracked-in / -out (ifname : goto hui-/huo-<hash>)
//   chain hui-/huo-<hash>: clear the marks; jump failsafe-in / failsafe-out (accept, tracked);
//                 per tier the policies' ingress / egress chains: an Allow sets the untracked
//                 mark, notrack, accept; a Deny drops; a Pass or no decision goes on; nothing
//                 deciding falls through (tracked, normal processing; no default deny)
//   input, forward, output, pre-dnat start with: meta mark & untracked == untracked accept
// So an untracked Allow skips preDNAT and normal policy. Ingress runs for everything arriving
// on the interface (to the host or forwarded), egress for what the host sends out of it
// (forwarded traffic's egress is not looked at: the route is not known at raw prerouting).
inline constexpr char kRawPreroutingChain[] = "raw-prerouting";
inline constexpr char kRawOutputChain[] = "raw-output";
inline constexpr int kPriorityRaw = -300;
inline constexpr char kHepUntrackedInMap[] = "hep-untracked-in";
inline constexpr char kHepUntrackedOutMap[] = "hep-untracked-out";
std::string UntrackedChainName(bool ingress, const EndpointPolicies& policies);
Chain UntrackedChain(bool ingress, const EndpointPolicies& policies);
struct HostEndpoint {
  std::string ifname;
  EndpointPolicies in, out;  // every policy selecting it, and its profiles
  // preDNAT policies selecting it (tiers only); nullopt when none does.
  std::optional<EndpointPolicies> pre_dnat;
  // applyOnForward policies only (no profiles); nullopt when none selects it that way.
  std::optional<EndpointPolicies> fwd_in, fwd_out;
  // doNotTrack policies selecting it (tiers only); nullopt when none does. Named ones only.
  std::optional<EndpointPolicies> untracked_in, untracked_out;
};
// Its chains (added if missing) and its map elements; ifname "*" (all interfaces): its chains
// only — SetAnyHostEndpoint points the hep-any-* chains at them.
void AddHostEndpoint(DesiredTable& table, const HostEndpoint& endpoint);
// The hep-any-* chains: `goto` the all-interfaces endpoint's chains, or empty (nullptr).
std::vector<Chain> AnyHostEndpointChains(const HostEndpoint* endpoint);

// NAT outgoing (upstream Felix's cali-nat-outgoing): traffic from a pool with natOutgoing to
// an address outside every enabled pool is masqueraded; to any pool address it is not.
//   sets  nat-pools4/nat-pools6  ipv4/ipv6_addr, interval: CIDRs of the natOutgoing pools
//         all-pools4/all-pools6  likewise, every enabled pool
//   chain nat-postrouting (nat, hook postrouting, priority srcnat 100, policy accept)
//     ip saddr @nat-pools4 ip daddr != @all-pools4 masquerade
//     ip6 saddr @nat-pools6 ip6 daddr != @all-pools6 masquerade
// The sets and chain are added even when the lists are empty, so a pool change is an
// element-only delta. A pool inside another pool of the same list is dropped (the kernel
// refuses overlapping intervals in one set; the covering pool already matches it). A CIDR that
// does not parse is kept as given, so Canonicalize reports it.
inline constexpr char kNatPools4[] = "nat-pools4";
inline constexpr char kNatPools6[] = "nat-pools6";
inline constexpr char kAllPools4[] = "all-pools4";
inline constexpr char kAllPools6[] = "all-pools6";
inline constexpr char kNatChain[] = "nat-postrouting";
struct NatOutgoing {
  std::vector<std::string> nat_pools4, nat_pools6;  // "10.65.0.0/16": natOutgoing pools
  std::vector<std::string> all_pools4, all_pools6;  // every enabled pool
};
void AddNatOutgoing(DesiredTable& table, const NatOutgoing& pools);

// Egress in a table of its own (tests/bench/nft measures it; felixd does not use it yet): the
// kernel validates only the tables a transaction touched, so an ingress policy change no longer
// walks the egress groups and vice versa. With EgressHook::kPrerouting: what `prerouting`
// reaches (by jumps, gotos and verdict-map elements) goes to table kEgressTableName, what
// `forward`/`input` reach stays in kTableName; a chain both reach (a profile) is in both, and a
// set is in every table whose chains use it. An object nothing reaches stays in kTableName.
inline constexpr char kEgressTableName[] = "calico-egress";
struct DirectionSplit {
  std::set<std::string> egress_chains, ingress_chains, egress_sets, ingress_sets;
  DesiredTable egress, ingress;  // the two tables
};
DirectionSplit SplitByDirection(const DesiredTable& table);

}  // namespace calico::felixd::nft
