#include "felixd/policy/index.h"

#include <algorithm>

#include "felixd/policy/match.h"

namespace calico::felixd::policy {
namespace {

std::string NamedPortKey(const std::string& name, int protocol) {
  return name + "/" + std::to_string(protocol);
}

void CollectSides(const Rule& rule, std::map<std::string, EntitySelector>& selectors,
                  std::set<std::pair<std::string, int>>& named, std::set<std::string>& keys) {
  for (const RuleSide* side : {&rule.source, &rule.destination}) {
    if (side->selector) {
      std::string key = side->selector->Key();
      selectors.emplace(key, *side->selector);
      keys.insert(key);
    }
    if (side->not_selector) {
      EntitySelector es;
      es.selector = side->not_selector;
      std::string key = es.Key();
      selectors.emplace(key, es);
      keys.insert(key);
    }
    for (const Ports* ports : {&side->ports, &side->not_ports}) {
      for (const std::string& name : ports->names) {
        // Named ports need a protocol (validation); without one, TCP as upstream's default.
        named.emplace(name, rule.protocol.value_or(kProtoTcp));
      }
    }
  }
}

template <typename T>
std::vector<T> SetDiff(const std::set<T>& a, const std::set<T>& b) {
  std::vector<T> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace

std::string NotSelectorKey(const Selector& not_selector) {
  EntitySelector es;
  es.selector = not_selector;
  return es.Key();
}

SelectionIndex SelectionIndex::Build(const Model& model) {
  SelectionIndex idx;
  std::vector<EntityView> endpoints, all;
  for (const auto& [_, e] : model.endpoints()) endpoints.push_back(ViewOf(model, e));
  all = endpoints;
  for (const auto& [_, s] : model.network_sets()) all.push_back(ViewOf(model, s));

  // Policies → endpoints, and endpoints → ordered tiers of policies.
  for (const auto& [id, _] : model.endpoints()) idx.endpoints_[id].profiles = model.endpoints().at(id).profiles;
  std::map<std::string, EntitySelector> selectors;
  std::set<std::pair<std::string, int>> named;
  for (const Tier& tier : model.SortedTiers()) {
    std::vector<const Policy*> policies = model.PoliciesInTier(tier.name);
    for (const Policy* p : policies) {
      std::set<std::string>& keys = idx.policy_sets_[p->Id()];
      for (const Rule& r : p->ingress_rules) CollectSides(r, selectors, named, keys);
      for (const Rule& r : p->egress_rules) CollectSides(r, selectors, named, keys);
      idx.selected_ingress_[p->Id()];
      idx.selected_egress_[p->Id()];
    }
    for (const EntityView& e : endpoints) {
      EndpointPolicies& ep = idx.endpoints_[e.Id()];
      for (Direction d : {Direction::kIngress, Direction::kEgress}) {
        TierPolicies tp{tier.name, tier.default_action, {}};
        for (const Policy* p : policies) {
          // preDNAT and doNotTrack policies apply to host endpoints only.
          if (!p->Applies(d) || p->pre_dnat || p->do_not_track || !Matches(p->applies_to, e)) continue;
          tp.policies.push_back(p->Id());
          (d == Direction::kIngress ? idx.selected_ingress_ : idx.selected_egress_)[p->Id()].insert(e.Id());
        }
        if (!tp.policies.empty()) {
          (d == Direction::kIngress ? ep.ingress : ep.egress).push_back(std::move(tp));
        }
      }
    }
  }
  // Profiles' rules use sets too.
  for (const auto& [_, e] : model.endpoints()) {
    for (const std::string& name : e.profiles) {
      std::optional<Profile> p = model.ProfileNamed(name);
      if (!p) continue;
      std::set<std::string>& keys = idx.policy_sets_["profile:" + name];
      for (const Rule& r : p->ingress_rules) CollectSides(r, selectors, named, keys);
      for (const Rule& r : p->egress_rules) CollectSides(r, selectors, named, keys);
    }
  }
  for (const auto& [key, sel] : selectors) {
    IpSet& members = idx.ip_sets_[key];
    for (const EntityView& e : all) {
      if (!Matches(sel, e)) continue;
      for (const net::Prefix& p : AddressesOf(e)) members.insert(p);
    }
  }
  for (const auto& [name, protocol] : named) {
    std::set<NamedPortMember>& members = idx.named_ports_[NamedPortKey(name, protocol)];
    for (const auto& [_, e] : model.endpoints()) {
      for (int port : ResolveNamedPort(e, name, protocol)) {
        for (const net::Prefix& p : e.ips) members.insert(NamedPortMember{p, port});
      }
    }
  }
  return idx;
}

const std::set<std::string>& SelectionIndex::Selected(const std::string& policy_id, Direction d) const {
  static const std::set<std::string> kNone;
  const auto& m = d == Direction::kIngress ? selected_ingress_ : selected_egress_;
  auto it = m.find(policy_id);
  return it == m.end() ? kNone : it->second;
}

const EndpointPolicies& SelectionIndex::PoliciesOf(const std::string& endpoint_id) const {
  static const EndpointPolicies kNone;
  auto it = endpoints_.find(endpoint_id);
  return it == endpoints_.end() ? kNone : it->second;
}

const IpSet& SelectionIndex::Members(const std::string& key) const {
  static const IpSet kNone;
  auto it = ip_sets_.find(key);
  return it == ip_sets_.end() ? kNone : it->second;
}

const std::set<NamedPortMember>& SelectionIndex::NamedPortMembers(const std::string& name, int protocol) const {
  static const std::set<NamedPortMember> kNone;
  auto it = named_ports_.find(NamedPortKey(name, protocol));
  return it == named_ports_.end() ? kNone : it->second;
}

bool SelectionDelta::empty() const {
  return endpoints_changed.empty() && policies_reselected.empty() && sets_added.empty() &&
         sets_removed.empty() && sets_changed.empty() && named_ports_changed.empty();
}

SelectionDelta Diff(const SelectionIndex& before, const SelectionIndex& after) {
  SelectionDelta d;
  std::set<std::string> eps;
  for (const auto& [id, _] : before.endpoints()) eps.insert(id);
  for (const auto& [id, _] : after.endpoints()) eps.insert(id);
  for (const std::string& id : eps) {
    bool in_b = before.endpoints().count(id), in_a = after.endpoints().count(id);
    if (in_b != in_a || !(before.PoliciesOf(id) == after.PoliciesOf(id))) d.endpoints_changed.push_back(id);
  }
  std::set<std::string> pols;
  for (const auto& [id, _] : before.policy_sets()) pols.insert(id);
  for (const auto& [id, _] : after.policy_sets()) pols.insert(id);
  for (const std::string& id : pols) {
    if (id.starts_with("profile:")) continue;
    for (Direction dir : {Direction::kIngress, Direction::kEgress}) {
      if (before.Selected(id, dir) != after.Selected(id, dir)) {
        d.policies_reselected.push_back(id);
        break;
      }
    }
  }
  for (const auto& [key, members] : after.ip_sets()) {
    auto it = before.ip_sets().find(key);
    if (it == before.ip_sets().end()) {
      d.sets_added.push_back(key);
      continue;
    }
    IpSetDelta delta{SetDiff(members, it->second), SetDiff(it->second, members)};
    if (!delta.added.empty() || !delta.removed.empty()) d.sets_changed[key] = std::move(delta);
  }
  for (const auto& [key, _] : before.ip_sets()) {
    if (!after.ip_sets().count(key)) d.sets_removed.push_back(key);
  }
  std::set<std::string> nps;
  for (const auto& [k, _] : before.named_port_sets()) nps.insert(k);
  for (const auto& [k, _] : after.named_port_sets()) nps.insert(k);
  for (const std::string& k : nps) {
    auto b = before.named_port_sets().find(k), a = after.named_port_sets().find(k);
    bool same = b != before.named_port_sets().end() && a != after.named_port_sets().end() && b->second == a->second;
    if (!same) d.named_ports_changed.push_back(k);
  }
  return d;
}

}  // namespace calico::felixd::policy
