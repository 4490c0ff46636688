#pragma once
// felixd/policy: Calico and Kubernetes network policy normalised into plain value types (this
// file), the evaluator that explains a packet's verdict (explain.h) and the selection index the
// nftables backend programs from (index.h). Pure: no kernel, no datastore, no clock, no I/O.
// Owns: the policy semantics, as upstream Calico defines them (felixd/README.md "Policy model").
// Never touches: the kernel or the datastore; resources arrive already validated and defaulted.
// Invariants:
//  - The model depends only on the set of resources applied, not on their order (Apply and
//    Remove are per object; namespaces and service accounts are derived on lookup).
//  - Explain and the index share one matcher (match.h), so what is explained is what is
//    programmed.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/net/ip.h"
#include "common/resources/resource.h"
#include "common/resources/selector/selector.h"

namespace calico::felixd::policy {

using resources::Labels;
using Selector = resources::selector::Selector;

enum class Action { kAllow, kDeny, kPass, kLog };
enum class Direction { kIngress, kEgress };
enum class TierDefault { kDeny, kPass };
std::string_view ToString(Action action);        // "Allow"
std::string_view ToString(Direction direction);  // "ingress"

// IP protocol numbers (upstream's names map to these).
inline constexpr int kProtoIcmp = 1;
inline constexpr int kProtoTcp = 6;
inline constexpr int kProtoUdp = 17;
inline constexpr int kProtoIcmpV6 = 58;
inline constexpr int kProtoSctp = 132;
inline constexpr int kProtoUdpLite = 136;
// "TCP" → 6 ... ; nullopt for an unknown name.
std::optional<int> ProtocolNumber(std::string_view name);

// Upstream's automatic labels.
inline constexpr std::string_view kLabelNamespace = "projectcalico.org/namespace";
inline constexpr std::string_view kLabelOrchestrator = "projectcalico.org/orchestrator";
inline constexpr std::string_view kLabelServiceAccount = "projectcalico.org/serviceaccount";
inline constexpr std::string_view kLabelName = "projectcalico.org/name";   // on namespaces and SAs
inline constexpr std::string_view kLabelK8sNamespaceName = "kubernetes.io/metadata.name";
// labelsToApply prefixes of the kns.<ns> and ksa.<ns>.<sa> profiles (upstream's convention).
inline constexpr std::string_view kNamespaceLabelPrefix = "pcns.";
inline constexpr std::string_view kServiceAccountLabelPrefix = "pcsa.";
inline constexpr std::string_view kNamespaceProfilePrefix = "kns.";
inline constexpr std::string_view kServiceAccountProfilePrefix = "ksa.";

struct PortRange {
  int first = 0;
  int last = 0;  // inclusive
  bool operator==(const PortRange&) const = default;
};

// A rule's ports or notPorts: numbers and ranges, and named ports (resolved per endpoint).
struct Ports {
  std::vector<PortRange> ranges;
  std::vector<std::string> names;
  bool empty() const { return ranges.empty() && names.empty(); }
};

struct Icmp {
  int type = 0;
  std::optional<int> code;  // nullopt: any code
};

// Where the entity part of a rule's selector may look.
enum class Scope {
  kAll,                // any namespace and non-namespaced entities (GlobalNetworkPolicy default)
  kNamespace,          // entities of one namespace (a NetworkPolicy's own namespace)
  kNamespaceSelector,  // namespaced entities whose namespace's labels match
  kGlobal,             // non-namespaced entities only (namespaceSelector: global())
};

// The positive selector of one rule side (or a policy's "applies to"): upstream ANDs the
// selector, the namespace (or namespaceSelector) and serviceAccounts into one selector and
// programs one IP set for it. Matches workload endpoints and network sets.
struct EntitySelector {
  std::optional<Selector> selector;  // on the entity's labels; nullopt means all()
  Scope scope = Scope::kAll;
  std::string ns;                              // for kNamespace
  std::optional<Selector> namespace_selector;  // for kNamespaceSelector
  // serviceAccounts: endpoints only, whose service account is one of `sa_names` (when
  // non-empty) and whose service account's labels match `sa_selector` (when set).
  bool service_accounts = false;
  std::vector<std::string> sa_names;
  std::optional<Selector> sa_selector;

  // Canonical text; equal keys select the same entities (the IP set's identity).
  std::string Key() const;
};

struct RuleSide {
  std::vector<net::Prefix> nets;
  std::vector<net::Prefix> not_nets;
  std::optional<EntitySelector> selector;  // set when the rule constrains the entity
  std::optional<Selector> not_selector;    // label selector over all entities
  Ports ports;
  Ports not_ports;
};

struct Rule {
  Action action = Action::kAllow;
  std::optional<int> ip_version;  // 4 or 6
  std::optional<int> protocol;
  std::optional<int> not_protocol;
  std::optional<Icmp> icmp;
  std::optional<Icmp> not_icmp;
  RuleSide source;
  RuleSide destination;
  // Non-empty: the rule has a criterion this dataplane does not evaluate (http, services); such a
  // rule never matches.
  std::string unsupported;
  // Where the rule came from, for explanations: "spec.ingress[1]", or for Kubernetes policies
  // "spec.ingress[0].from[1] TCP".
  std::string origin;
};

enum class PolicyKind { kNetworkPolicy, kGlobalNetworkPolicy, kKubernetesNetworkPolicy };

struct Policy {
  PolicyKind kind = PolicyKind::kNetworkPolicy;
  std::string ns;    // empty for GlobalNetworkPolicy
  std::string name;  // as stored; Kubernetes policies become "knp.default.<name>"
  std::string tier = "default";
  std::optional<double> order;  // nullopt sorts last
  EntitySelector applies_to;    // which workload endpoints it selects
  bool ingress = false;         // spec.types (defaulted as upstream)
  bool egress = false;
  std::vector<Rule> ingress_rules;
  std::vector<Rule> egress_rules;
  bool apply_on_forward = false;  // GlobalNetworkPolicy only; host endpoints
  bool pre_dnat = false;
  bool do_not_track = false;

  // "ns/name" for namespaced policies, "name" for global ones; policies of equal order sort by it.
  std::string Id() const;
  const std::vector<Rule>& Rules(Direction d) const {
    return d == Direction::kIngress ? ingress_rules : egress_rules;
  }
  bool Applies(Direction d) const { return d == Direction::kIngress ? ingress : egress; }
  // A preDNAT policy felixd programs (upstream's validation): a GlobalNetworkPolicy with
  // applyOnForward, ingress only, not also doNotTrack. Its ingress rules run at prerouting
  // before DNAT for the host endpoints it selects (felixd/README.md "Policy table").
  bool ProgrammedPreDnat() const {
    return pre_dnat && !do_not_track && kind == PolicyKind::kGlobalNetworkPolicy &&
           apply_on_forward && !egress && egress_rules.empty();
  }
  // doNotTrack as upstream validates it: a GlobalNetworkPolicy with applyOnForward, not preDNAT.
  bool ProgrammedDoNotTrack() const {
    return do_not_track && !pre_dnat && kind == PolicyKind::kGlobalNetworkPolicy && apply_on_forward;
  }
};

struct Tier {
  std::string name;
  std::optional<double> order;  // nullopt sorts last
  TierDefault default_action = TierDefault::kDeny;
};

struct NamedPort {
  std::string name;
  int protocol = kProtoTcp;
  int port = 0;
};

// A WorkloadEndpoint, or (host == true) a HostEndpoint: the host's own traffic through
// `interface` (interfaceName; "*" means all of the host's interfaces), `ips` its expectedIPs
// (what selectors see of the host as a peer), not namespaced.
struct Endpoint {
  std::string ns;
  std::string name;
  std::string node;
  std::string interface;  // host-side interface (cali...), or the host endpoint's interfaceName
  std::vector<net::Prefix> ips;
  bool host = false;
  // metadata.labels plus the implicit projectcalico.org/{namespace,orchestrator,serviceaccount}.
  Labels labels;
  std::string service_account;
  std::vector<NamedPort> ports;
  std::vector<std::string> profiles;

  // "ns/name" for workloads; "hep:name" for host endpoints (never contains a '/', so the two
  // cannot collide).
  std::string Id() const { return host ? std::string(kHostEndpointIdPrefix) + name : ns + "/" + name; }
  static constexpr std::string_view kHostEndpointIdPrefix = "hep:";
};

// Failsafe ports (upstream FailsafeInboundHostPorts / FailsafeOutboundHostPorts): traffic to
// these destination ports is always allowed into (inbound) or out of (outbound) the host
// through a host endpoint, whatever the policy says.
struct FailsafePort {
  int protocol = kProtoTcp;
  int port = 0;
  bool operator==(const FailsafePort&) const = default;
};
struct Failsafe {
  std::vector<FailsafePort> inbound;
  std::vector<FailsafePort> outbound;
  bool operator==(const Failsafe&) const = default;
};
// Upstream's defaults: in tcp:22, udp:68, tcp:179, tcp:2379, tcp:2380, tcp:5473, tcp:6443,
// tcp:6666, tcp:6667; out udp:53, udp:67, tcp:179, tcp:2379, tcp:2380, tcp:5473, tcp:6443,
// tcp:6666, tcp:6667.
Failsafe DefaultFailsafe();
// "tcp:22,udp:68,179" (no protocol: tcp, as upstream), or "none" / "" / "[]" for no ports.
// InvalidArgument naming the entry for anything else (upstream's "proto:cidr:port" form is not
// supported and says so).
absl::StatusOr<std::vector<FailsafePort>> ParseFailsafePorts(std::string_view text);
std::string FormatFailsafePorts(const std::vector<FailsafePort>& ports);

struct NetworkSet {  // NetworkSet (ns set) or GlobalNetworkSet (ns empty)
  std::string ns;
  std::string name;
  std::vector<net::Prefix> nets;
  Labels labels;
  std::string Id() const { return ns.empty() ? name : ns + "/" + name; }
};

struct Profile {
  std::string name;
  std::vector<Rule> ingress_rules;
  std::vector<Rule> egress_rules;
  Labels labels_to_apply;
  const std::vector<Rule>& Rules(Direction d) const {
    return d == Direction::kIngress ? ingress_rules : egress_rules;
  }
};

// The whole policy-relevant state. Keyed by Id(); std::map so iteration is deterministic.
class Model {
 public:
  // Adds or replaces what a resource describes: NetworkPolicy, GlobalNetworkPolicy, Kubernetes
  // NetworkPolicy, Tier, Profile, NetworkSet, GlobalNetworkSet, WorkloadEndpoint, HostEndpoint.
  // Other kinds are
  // ignored (OK). InvalidArgument (naming the object) if it cannot be converted; the model is
  // then unchanged.
  absl::Status Apply(const resources::Resource& resource);
  // Removes the object of that kind and key; absent is fine.
  void Remove(const resources::KindInfo& kind, std::string_view ns, std::string_view name);

  void Put(Endpoint e) { endpoints_[e.Id()] = std::move(e); }
  void Put(Policy p) { policies_[p.Id()] = std::move(p); }
  void Put(Tier t) { tiers_[t.name] = std::move(t); }
  void Put(NetworkSet s) { network_sets_[s.Id()] = std::move(s); }
  void Put(Profile p) { profiles_[p.name] = std::move(p); }

  const std::map<std::string, Endpoint>& endpoints() const { return endpoints_; }
  const std::map<std::string, Policy>& policies() const { return policies_; }
  const std::map<std::string, NetworkSet>& network_sets() const { return network_sets_; }
  const std::map<std::string, Profile>& profiles() const { return profiles_; }
  const std::map<std::string, Tier>& stored_tiers() const { return tiers_; }

  // A tier by name: as stored, else the implicit "default" tier (order 1000000, Deny), else a
  // tier with no order and defaultAction Deny (a policy naming a missing tier sorts last).
  Tier TierNamed(const std::string& name) const;
  // Every tier that is stored or named by a policy, in evaluation order (order, then name).
  std::vector<Tier> SortedTiers() const;
  // The policies of a tier, in evaluation order (order, then Id()).
  std::vector<const Policy*> PoliciesInTier(const std::string& tier) const;

  // A profile by name; kns.<ns> and ksa.<ns>.<sa> that are not stored are synthesised as
  // upstream's controllers write them (kns: allow all both ways; ksa: no rules). nullopt for
  // another missing profile.
  std::optional<Profile> ProfileNamed(const std::string& name) const;
  // Whether ProfileNamed would find one (without building it).
  bool HasProfile(const std::string& name) const;
  // Labels of a namespace: kns.<ns>'s labelsToApply `pcns.*` without the prefix, plus
  // projectcalico.org/name and kubernetes.io/metadata.name = <ns>.
  Labels NamespaceLabels(const std::string& ns) const;
  // Labels of a service account: ksa.<ns>.<sa>'s `pcsa.*` without the prefix, plus
  // projectcalico.org/name = <sa>.
  Labels ServiceAccountLabels(const std::string& ns, const std::string& sa) const;
  // An endpoint's labels for selectors: its own, then its profiles' labelsToApply (own win).
  Labels EffectiveLabels(const Endpoint& endpoint) const;

  // The workload endpoint owning an address (first by Id() if several claim it).
  const Endpoint* EndpointByIp(const net::IpAddress& ip) const;
  // The host endpoint listing an address in its expectedIPs (first by Id()).
  const Endpoint* HostEndpointByIp(const net::IpAddress& ip) const;

  // Failsafe ports (felixd configuration, not a resource): what Explain and the table allow.
  void SetFailsafe(Failsafe failsafe) { failsafe_ = std::move(failsafe); }
  const Failsafe& failsafe() const { return failsafe_; }

 private:
  std::map<std::string, Endpoint> endpoints_;
  std::map<std::string, Policy> policies_;
  std::map<std::string, Tier> tiers_;
  std::map<std::string, NetworkSet> network_sets_;
  std::map<std::string, Profile> profiles_;
  Failsafe failsafe_ = DefaultFailsafe();
};

// Policy order: order (nullopt last), then Id().
bool PolicyBefore(const Policy& a, const Policy& b);

}  // namespace calico::felixd::policy
