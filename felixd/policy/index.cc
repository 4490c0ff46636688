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

std::string EntityKey(const EntityView& e) {
  return e.endpoint ? "endpoint:" + e.endpoint->Id() : "set:" + e.network_set->Id();
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
    std::map<net::Prefix, int>& counts = idx.set_counts_[key];
    for (const EntityView& e : all) {
      if (!Matches(sel, e)) continue;
      idx.entity_sets_[EntityKey(e)].insert(key);
      for (const net::Prefix& p : AddressesOf(e)) {
        members.insert(p);
        ++counts[p];
      }
    }
  }
  idx.selectors_ = std::move(selectors);
  for (const auto& [name, protocol] : named) {
    std::string key = NamedPortKey(name, protocol);
    std::set<NamedPortMember>& members = idx.named_ports_[key];
    for (const auto& [_, e] : model.endpoints()) {
      for (int port : ResolveNamedPort(e, name, protocol)) {
        for (const net::Prefix& p : e.ips) {
          members.insert(NamedPortMember{p, port});
          ++idx.named_counts_[key][NamedPortMember{p, port}];
        }
      }
    }
    idx.named_keys_[key] = {name, protocol};
  }
  for (const EntityView& e : all) {
    idx.entities_[EntityKey(e)] = EntityRecord{AddressesOf(e), e.endpoint ? e.endpoint->ports : std::vector<NamedPort>()};
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

SelectionDelta SelectionIndex::UpdateEndpoint(const Model& model, const std::string& endpoint_id) {
  auto it = model.endpoints().find(endpoint_id);
  if (it == model.endpoints().end()) return UpdateEntity(model, "endpoint:" + endpoint_id, nullptr);
  EntityView view = ViewOf(model, it->second);
  return UpdateEntity(model, "endpoint:" + endpoint_id, &view);
}

SelectionDelta SelectionIndex::UpdateNetworkSet(const Model& model, const std::string& set_id) {
  auto it = model.network_sets().find(set_id);
  if (it == model.network_sets().end()) return UpdateEntity(model, "set:" + set_id, nullptr);
  EntityView view = ViewOf(model, it->second);
  return UpdateEntity(model, "set:" + set_id, &view);
}

SelectionDelta SelectionIndex::UpdateEntity(const Model& model, const std::string& ek, const EntityView* view) {
  SelectionDelta d;
  std::map<std::string, std::map<net::Prefix, int>> moved;  // net member transitions per set
  std::map<std::string, std::map<NamedPortMember, int>> named_moved;
  auto named_members = [&](const std::vector<NamedPort>& ports, const std::vector<net::Prefix>& addrs,
                           int step) {
    for (const auto& [key, np] : named_keys_) {
      for (const NamedPort& port : ports) {
        if (port.name != np.first || port.protocol != np.second) continue;
        for (const net::Prefix& p : addrs) {
          NamedPortMember m{p, port.port};
          int& c = named_counts_[key][m];
          c += step;
          if (c == 0) {
            named_counts_[key].erase(m);
            named_ports_[key].erase(m);
            --named_moved[key][m];
          } else if (c == 1 && step > 0) {
            named_ports_[key].insert(m);
            ++named_moved[key][m];
          }
        }
      }
    }
  };
  // Out with the old.
  if (auto it = entities_.find(ek); it != entities_.end()) {
    for (const std::string& key : entity_sets_[ek]) {
      for (const net::Prefix& p : it->second.addresses) {
        int& c = set_counts_[key][p];
        if (--c == 0) {
          set_counts_[key].erase(p);
          ip_sets_[key].erase(p);
          --moved[key][p];
        }
      }
    }
    entity_sets_.erase(ek);
    named_members(it->second.ports, it->second.addresses, -1);
    entities_.erase(it);
  }
  // In with the new.
  if (view) {
    const std::vector<net::Prefix>& addrs = AddressesOf(*view);
    for (const auto& [key, sel] : selectors_) {
      if (!Matches(sel, *view)) continue;
      entity_sets_[ek].insert(key);
      for (const net::Prefix& p : addrs) {
        if (++set_counts_[key][p] == 1) {
          ip_sets_[key].insert(p);
          ++moved[key][p];
        }
      }
    }
    std::vector<NamedPort> ports = view->endpoint ? view->endpoint->ports : std::vector<NamedPort>();
    named_members(ports, addrs, +1);
    entities_[ek] = EntityRecord{addrs, ports};
  }
  // An endpoint's own policy lists.
  if (ek.starts_with("endpoint:")) {
    std::string id = ek.substr(std::string("endpoint:").size());
    bool existed = endpoints_.count(id) > 0;
    EndpointPolicies before = PoliciesOf(id);
    EndpointPolicies after;
    for (Direction dir : {Direction::kIngress, Direction::kEgress}) {
      auto& selected = dir == Direction::kIngress ? selected_ingress_ : selected_egress_;
      for (const TierPolicies& tp : before.For(dir)) {
        for (const std::string& p : tp.policies) selected[p].erase(id);
      }
    }
    if (view) {
      after.profiles = view->endpoint->profiles;
      for (const Tier& tier : model.SortedTiers()) {
        std::vector<const Policy*> policies = model.PoliciesInTier(tier.name);
        for (Direction dir : {Direction::kIngress, Direction::kEgress}) {
          TierPolicies tp{tier.name, tier.default_action, {}};
          for (const Policy* p : policies) {
            if (!p->Applies(dir) || p->pre_dnat || p->do_not_track || !Matches(p->applies_to, *view)) continue;
            tp.policies.push_back(p->Id());
            (dir == Direction::kIngress ? selected_ingress_ : selected_egress_)[p->Id()].insert(id);
          }
          if (!tp.policies.empty()) (dir == Direction::kIngress ? after.ingress : after.egress).push_back(tp);
        }
      }
      endpoints_[id] = after;
    } else {
      endpoints_.erase(id);
    }
    // Policies whose selection changed: in one direction's list before or after but not both.
    std::set<std::string> reselected;
    for (Direction dir : {Direction::kIngress, Direction::kEgress}) {
      std::set<std::string> b, a;
      for (const TierPolicies& tp : before.For(dir)) b.insert(tp.policies.begin(), tp.policies.end());
      for (const TierPolicies& tp : after.For(dir)) a.insert(tp.policies.begin(), tp.policies.end());
      for (const std::string& p : SetDiff(a, b)) reselected.insert(p);
      for (const std::string& p : SetDiff(b, a)) reselected.insert(p);
    }
    d.policies_reselected.assign(reselected.begin(), reselected.end());
    if (existed != (view != nullptr) || !(before == after)) d.endpoints_changed.push_back(id);
  }
  for (const auto& [key, members] : moved) {
    IpSetDelta delta;
    for (const auto& [p, n] : members) {
      if (n > 0) delta.added.push_back(p);
      if (n < 0) delta.removed.push_back(p);
    }
    if (!delta.added.empty() || !delta.removed.empty()) d.sets_changed[key] = std::move(delta);
  }
  for (const auto& [key, members] : named_moved) {
    if (std::any_of(members.begin(), members.end(), [](const auto& m) { return m.second != 0; })) {
      d.named_ports_changed.push_back(key);
    }
  }
  return d;
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
