#pragma once
// The selection index: what the nftables backend programs, computed from the model with the
// same matcher Explain uses.
//  - per policy and direction, the workload endpoints it applies to;
//  - per endpoint and direction, its tiers with their ordered policies (endpoints with equal
//    lists can share chains), and its profiles;
//  - per rule selector (EntitySelector::Key(), notSelectors as Scope::kAll selectors), the member
//    addresses: endpoint addresses and network set nets;
//  - per named port (name, protocol), the (address, port) members.
// Diff() between two indexes says what changed, so a single change programs only its delta.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "felixd/policy/match.h"
#include "felixd/policy/model.h"

namespace calico::felixd::policy {

struct TierPolicies {
  std::string tier;
  TierDefault default_action = TierDefault::kDeny;
  std::vector<std::string> policies;  // Policy::Id(), in evaluation order
  bool operator==(const TierPolicies&) const = default;
};

struct EndpointPolicies {
  std::vector<TierPolicies> ingress;  // only tiers with at least one policy selecting the endpoint
  std::vector<TierPolicies> egress;
  std::vector<std::string> profiles;
  const std::vector<TierPolicies>& For(Direction d) const {
    return d == Direction::kIngress ? ingress : egress;
  }
  bool operator==(const EndpointPolicies&) const = default;
};

struct NamedPortMember {
  net::Prefix address;
  int port = 0;
  auto operator<=>(const NamedPortMember&) const = default;
};

using IpSet = std::set<net::Prefix>;

struct NamedPortDelta {
  std::vector<NamedPortMember> added;
  std::vector<NamedPortMember> removed;
};

struct IpSetDelta {
  std::vector<net::Prefix> added;
  std::vector<net::Prefix> removed;
};

struct SelectionDelta {
  std::vector<std::string> endpoints_changed;  // added, removed, or policy lists changed
  std::vector<std::string> policies_reselected;  // their endpoint sets changed
  std::vector<std::string> sets_added;           // new selector keys (all members new)
  std::vector<std::string> sets_removed;
  std::map<std::string, IpSetDelta> sets_changed;  // existing sets whose members changed
  std::vector<std::string> named_ports_changed;    // "name/protocol"
  // UpdateEndpoint/UpdateNetworkSet only: the members that moved, per key of
  // named_ports_changed, so a consumer need not diff a set every endpoint may be in (a port name
  // every pod has). Absent (Diff, UpdatePolicy): diff the whole set.
  std::map<std::string, NamedPortDelta> named_port_moves;
  bool empty() const;
};

class SelectionIndex {
 public:
  static SelectionIndex Build(const Model& model);

  // Endpoint ids a policy applies to in a direction (empty for an unknown policy).
  const std::set<std::string>& Selected(const std::string& policy_id, Direction direction) const;
  // An endpoint's policies (empty for an unknown endpoint).
  const EndpointPolicies& PoliciesOf(const std::string& endpoint_id) const;
  // Members of a rule selector's set, by EntitySelector::Key() (empty when unknown).
  const IpSet& Members(const std::string& selector_key) const;
  const std::set<NamedPortMember>& NamedPortMembers(const std::string& name, int protocol) const;

  const std::map<std::string, EndpointPolicies>& endpoints() const { return endpoints_; }
  const std::map<std::string, IpSet>& ip_sets() const { return ip_sets_; }
  // Selector keys each policy's rules use (what must exist before its chain).
  const std::map<std::string, std::set<std::string>>& policy_sets() const { return policy_sets_; }
  const std::map<std::string, std::set<NamedPortMember>>& named_port_sets() const { return named_ports_; }

  // Incremental: after the model's endpoint (network set) with this id was added, changed or
  // removed, recomputes only that entity (its policy lists, its set and named-port memberships:
  // O(policies + sets)) and returns what changed, as Diff(before, Build(model)) would. An
  // endpoint's change never changes another endpoint's lists. Policy, profile (namespace
  // labels) and tier changes: Build() again and Diff().
  SelectionDelta UpdateEndpoint(const Model& model, const std::string& endpoint_id);
  SelectionDelta UpdateNetworkSet(const Model& model, const std::string& set_id);
  // After one policy was added, changed (rules, selector, order, tier) or removed in `model`:
  // re-selects that policy over the cached entity views (O(entities)), patches the policy into
  // the lists of the endpoints it selected before or after, adds its new rule sets and drops
  // those no other policy uses. Same result as Diff(before, Build(model)). Profile and tier
  // changes still need Build().
  SelectionDelta UpdatePolicy(const Model& model, const std::string& policy_id);

 private:
  struct EntityRecord {
    std::vector<net::Prefix> addresses;
    std::vector<NamedPort> ports;
  };
  SelectionDelta UpdateEntity(const Model& model, const std::string& entity_key, const EntityView* view);
  // An endpoint's tiers of policies from the ordered cache below.
  EndpointPolicies ComputeLists(const Model& model, const EntityView& view);
  void AddSelector(const std::string& key, const EntitySelector& selector);
  // Calls f(entity key, view) for every view `selector` could match, in key order: a
  // namespaced selector (a NetworkPolicy's own namespace) walks only that namespace's range of
  // views_, so a new policy costs its namespace's endpoints, not the node's.
  template <typename F>
  void ForCandidates(const EntitySelector& selector, F&& f) const;
  void AddNamedPort(const Model& model, const std::string& key, const std::string& name, int protocol);

  // Policies in evaluation order per tier (tiers in order), kept by Build and UpdatePolicy so an
  // endpoint's lists cost one match per policy, not a sort of every policy.
  struct PolicyKey {
    double order;  // +inf when unset
    std::string id;
    auto operator<=>(const PolicyKey&) const = default;
  };
  struct TierEntry {
    std::string name;
    double order;  // +inf when unset
    TierDefault default_action = TierDefault::kDeny;
    std::vector<PolicyKey> policies;  // sorted
  };
  std::vector<TierEntry> tiers_;                       // sorted by (order, name)
  std::map<std::string, std::pair<std::string, PolicyKey>> policy_tier_;  // id → (tier, its key)
  // Entity key → its view (model's objects). A B-tree: a new or changed policy's selector is
  // matched against every view, and walking 10k views of a std::map cost more than matching them.
  absl::btree_map<std::string, EntityView> views_;
  std::map<std::string, std::set<std::string>> policy_named_;  // policy id → named-port keys
  // policy id → what its selection depends on (selector key, types, preDNAT, doNotTrack), as of
  // its last UpdatePolicy; absent after Build (the first update then matches every entity).
  std::map<std::string, std::string> selection_keys_;

  // Bookkeeping for UpdateEndpoint/UpdateNetworkSet.
  std::map<std::string, EntitySelector> selectors_;               // key → selector, keys in use
  std::map<std::string, std::map<net::Prefix, int>> set_counts_;  // entities contributing each member
  std::map<std::string, std::set<std::string>> entity_sets_;      // entity key → set keys it is in
  std::map<std::string, EntityRecord> entities_;
  std::map<std::string, std::pair<std::string, int>> named_keys_;  // "name/protocol" → (name, protocol)
  std::map<std::string, std::map<NamedPortMember, int>> named_counts_;

  std::map<std::string, std::set<std::string>> selected_ingress_;
  std::map<std::string, std::set<std::string>> selected_egress_;
  std::map<std::string, EndpointPolicies> endpoints_;
  std::map<std::string, IpSet> ip_sets_;
  std::map<std::string, std::set<std::string>> policy_sets_;
  std::map<std::string, std::set<NamedPortMember>> named_ports_;  // "name/protocol"
};

// The key of a notSelector's set (a label selector over all entities).
std::string NotSelectorKey(const Selector& not_selector);

SelectionDelta Diff(const SelectionIndex& before, const SelectionIndex& after);

}  // namespace calico::felixd::policy
