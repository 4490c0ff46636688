#pragma once
// felixd/policy_compiler: policy::Model + policy::SelectionIndex → the desired nftables table
// `inet calico` (felixd/nft layout), whole or as the minimal delta of one change. Pure: no kernel,
// no I/O; the caller applies the result through nft::Nftables.
// Owns: the translation of policy rules into nft::Rule values, and the names of the chains and
// sets it makes (policy chains pi-/pe-, profile chains ri-/re-, selector sets s4-/s6-, named-port
// sets p4-/p6-, static net and port sets n4-/n6-/pt-; all <16 hex of FNV-1a 64>, so a restarted
// felixd finds the same names).
// Invariants:
//  - The compiled table's verdict for a packet equals policy::Explain's (the oracle test in
//    tests/unit/felixd_policy_compiler interprets the nft::Rule values).
//  - Update() after any sequence of changes leaves desired() equal to Build() of the end state
//    (path independence) up to the numbering of link groups, and its delta touches only what
//    changed: set elements, map elements, chains of changed policies, a group chain when a new
//    policy list appears.
//  - Link groups (Dispatch::kByLinkGroup) keep their numbers where they can: when every endpoint
//    of a group moves to one policy list nobody has yet (a new policy over an app's pods), the
//    group takes the new chains under its number, so no interface is rewritten and all of them
//    switch in one transaction; Build() with a hint keeps the numbers interfaces carry.
//  - A set exists exactly while a chain references it (its rules as compiled: a rule needing a
//    member of an empty selector or named-port set is left out of the table, and comes back with
//    the set's first member); a group chain while an endpoint uses it.

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "felixd/nft/delta.h"
#include "felixd/nft/layout.h"
#include "felixd/policy/index.h"
#include "felixd/policy/model.h"

namespace calico::felixd::policy_compiler {

struct Options {
  nft::LayoutOptions layout;
  std::string node;  // only endpoints on this node; empty: every endpoint of the model
  std::string log_prefix = "calico-packet: ";
};

// Names.
std::string PolicyChainName(const std::string& policy_id, policy::Direction direction);
std::string ProfileChainName(const std::string& profile, policy::Direction direction);
std::string SelectorSetName(const std::string& selector_key, int family);
std::string NamedPortSetName(const std::string& name, int protocol, int family);

// One rule list compiled: the nft rules in order and the static sets (nets, port lists) they use.
// A policy rule becomes zero or more nft rules with the same action: a disjunction (IPv4 and IPv6
// sets, port ranges or named ports, ICMP or not) is one nft rule per alternative.
struct CompiledRules {
  std::vector<nft::Rule> rules;
  std::map<std::string, nft::DesiredSet> static_sets;
  std::map<std::string, std::string> selector_sets;  // set name → EntitySelector key
  std::map<std::string, std::pair<std::string, int>> named_port_sets;  // → (port name, protocol)
};
CompiledRules CompileRules(const std::vector<policy::Rule>& rules, const Options& options = {});

// What changed besides what the SelectionDelta says: policies and profiles whose rules (or
// existence) changed. Tier changes show in the delta (endpoints whose lists changed).
struct Changed {
  std::vector<std::string> policies;  // Policy::Id()
  std::vector<std::string> profiles;
};

// The preDNAT policies selecting a host endpoint, as tiers of ingress chains; nullopt: none.
std::optional<nft::EndpointPolicies> PreDnatPolicies(const policy::Model& model,
                                                     const policy::Endpoint& host);
// The doNotTrack policies selecting a named host endpoint in a direction; nullopt: none (or "*").
std::optional<nft::EndpointPolicies> UntrackedPolicies(const policy::Model& model,
                                                       const policy::Endpoint& host,
                                                       policy::Direction direction);

class Compiler {
 public:
  explicit Compiler(Options options = {}) : options_(std::move(options)) {}

  // The whole table from scratch; resets the incremental state to it. `group_hint` (interface →
  // the link group it carries now: the kernel's, or link_groups() before a rebuild) keeps those
  // numbers, so adopting a table rewrites no interface.
  const nft::DesiredTable& Build(const policy::Model& model, const policy::SelectionIndex& index,
                                 const std::map<std::string, uint32_t>* group_hint = nullptr);

  // After one change was applied to `model` and brought into `index` (`delta` as returned by
  // SelectionIndex::UpdateEndpoint/UpdateNetworkSet, or Diff(before, Build(model))): the nft
  // delta from the previous desired table to the new one, which desired() then is.
  nft::Delta Update(const policy::Model& model, const policy::SelectionIndex& index,
                    const policy::SelectionDelta& delta, const Changed& changed = {});

  const nft::DesiredTable& desired() const { return table_; }
  // Dispatch::kByLinkGroup: the link group each local endpoint's host interface must carry
  // (interface name → group); empty under the other dispatch layouts.
  const std::map<std::string, uint32_t>& link_groups() const { return link_groups_; }
  // The interfaces whose group Update changed (new, renumbered) since the last call: the ones
  // to write. A group taking over new chains under its number changes none.
  std::set<std::string> TakeLinkGroupChanges() { return std::exchange(link_changes_, {}); }

 private:
  struct EndpointState {
    std::vector<nft::ElementChange> elements;  // dispatch and anti-spoofing elements
    std::vector<std::string> chains;           // group chains it uses
    std::vector<std::string> profiles;         // profile names (their chains)
    std::string combo;                         // kByLinkGroup: its (ingress, egress) chains
    std::string ifname;
    bool host = false;  // a host endpoint (its chains and hep-* elements)
    std::optional<nft::HostEndpoint> any;  // an all-interfaces ("*") host endpoint
  };
  struct ElementRef {  // endpoints may share an element (a group's map entry)
    std::string value;
    int count = 0;
  };
  struct DynamicSet {
    bool named_port = false;
    std::string key;  // selector key, or named port name
    int protocol = 0;
    int family = 4;
    // What the elements were made from (this family only), so a refresh formats only changes.
    policy::IpSet ips;
    std::set<policy::NamedPortMember> ports;
  };

  void RenderEndpoint(const policy::Model& model, const policy::SelectionIndex& index,
                      const std::string& id, nft::Delta& delta);
  // The endpoint `id` if this compiler programs it (local, with an interface), else null.
  const policy::Endpoint* Programmed(const policy::Model& model, const std::string& id) const;
  // Its policy lists (tiers, then profiles) in both directions, and their group chains' names.
  struct EndpointLists {
    nft::EndpointPolicies ingress, egress;
    std::string ingress_chain, egress_chain;
  };
  std::shared_ptr<const EndpointLists> Lists(const policy::Model& model, const policy::SelectionIndex& index,
                                             const std::string& id, const policy::Endpoint& e);
  // Before `endpoints` are rendered: the link groups all of whose endpoints move to one new
  // policy list (transfers_).
  void PlanGroupTransfers(const policy::Model& model, const policy::SelectionIndex& index,
                          const std::set<std::string>& endpoints);
  bool MayPass(const std::string& policy_chain) const { return pass_chains_.contains(policy_chain); }
  void RenderPolicy(const policy::Model& model, const policy::SelectionIndex& index,
                    const std::string& id, nft::Delta& delta);
  void RenderProfile(const policy::Model& model, const policy::SelectionIndex& index,
                     const std::string& name, nft::Delta& delta);
  void PutChain(nft::Chain chain, const CompiledRules* sources, const policy::SelectionIndex& index,
                nft::Delta& delta);
  void DeleteChain(const std::string& name, nft::Delta& delta);
  // `full` without the rules that need a member of an empty selector or named-port set.
  nft::Chain Elide(const nft::Chain& full) const;
  void SetUsers(const nft::Chain& chain, int by);
  void RefSets(const nft::Chain& chain, int by);
  void SetElements(const std::string& set, nft::Elements elements, nft::Delta& delta);
  // Brings a selector or named-port set to the index's members: the named port's `moves` when
  // the caller has them, else a diff of the whole set.
  void RefreshDynamicSet(const std::string& name, const policy::SelectionIndex& index,
                         nft::Delta& delta, const policy::NamedPortDelta* moves = nullptr);
  nft::Elements DynamicElements(DynamicSet& set, const policy::SelectionIndex& index) const;
  void CollectGarbage(nft::Delta& delta);
  // The hep-any-* chains after the endpoints changed.
  void RenderAnyHostEndpoint(const policy::SelectionIndex& index, nft::Delta& delta);
  // Link group numbers: one per (ingress, egress) combination in use, the hash's preferred
  // number unless another combination holds it (then the next free one).
  uint32_t AcquireGroup(const std::string& combo, uint32_t preferred);
  void ReleaseGroup(const std::string& combo);

  Options options_;
  nft::DesiredTable table_;
  std::map<std::string, EndpointState> endpoints_;
  std::set<std::string> host_endpoints_;  // ids of endpoints_ that are host endpoints (few)
  std::map<std::string, nft::HostEndpoint> any_;  // rendered all-interfaces host endpoints by id
  std::map<std::string, int> group_refs_;    // group chain → endpoints using it
  std::map<std::pair<std::string, std::string>, ElementRef> element_refs_;  // (set, key)
  std::map<std::string, int> profile_refs_;  // profile → endpoints naming it
  std::map<std::string, int> set_refs_;      // set → rules referencing it
  std::set<std::string> unreferenced_;       // sets whose count fell to 0 since CollectGarbage
  std::map<std::string, DynamicSet> dynamic_sets_;  // by set name
  // Policy and profile chains as compiled (table_ holds them elided), and which of them use
  // each dynamic set, so a set's first member or last one re-renders exactly those.
  std::map<std::string, nft::Chain> full_chains_;
  std::map<std::string, std::set<std::string>> set_users_;
  std::set<std::string> skeleton_sets_;
  std::map<std::string, std::pair<uint32_t, int>> combos_;  // combo → (group, endpoints)
  std::map<uint32_t, std::string> group_owner_;
  std::map<std::string, uint32_t> transfers_;  // this Update: new combo → the group it takes over
  // The last few lists computed, by what they were computed from (the index's entry, the
  // profiles): the endpoints one policy (de)selects mostly share theirs, so they are named and
  // hashed once, not per endpoint.
  struct ListsSource {
    policy::EndpointPolicies entry;
    std::vector<std::string> profiles;
    std::shared_ptr<const EndpointLists> lists;
  };
  std::vector<ListsSource> lists_cache_;
  size_t lists_cache_next_ = 0;
  // Policy chains with a Pass rule (TierChains::may_pass), and this Update's policies whose
  // chain gained or lost one: the group chains of every endpoint they select change.
  std::set<std::string> pass_chains_;
  std::vector<std::pair<std::string, policy::Direction>> pass_flips_;
  const std::map<std::string, uint32_t>* group_hint_ = nullptr;  // during Build
  std::map<std::string, uint32_t> link_groups_;             // ifname → group
  std::set<std::string> link_changes_;                      // see TakeLinkGroupChanges
};

}  // namespace calico::felixd::policy_compiler
