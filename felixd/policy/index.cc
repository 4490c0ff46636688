#include "felixd/policy/index.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
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
  constexpr double kLast = std::numeric_limits<double>::infinity();
  for (const Tier& tier : model.SortedTiers()) {
    std::vector<const Policy*> policies = model.PoliciesInTier(tier.name);
    TierEntry& entry = idx.tiers_.emplace_back();
    entry.name = tier.name;
    entry.order = tier.order.value_or(kLast);
    entry.default_action = tier.default_action;
    for (const Policy* p : policies) {
      const std::string id = p->Id();
      std::set<std::string>& keys = idx.policy_sets_[id];
      std::set<std::pair<std::string, int>> own_named;
      for (const Rule& r : p->ingress_rules) CollectSides(r, selectors, own_named, keys);
      for (const Rule& r : p->egress_rules) CollectSides(r, selectors, own_named, keys);
      std::set<std::string>& named_keys = idx.policy_named_[id];
      for (const auto& [name, protocol] : own_named) named_keys.insert(NamedPortKey(name, protocol));
      named.insert(own_named.begin(), own_named.end());
      idx.selected_ingress_[id];
      idx.selected_egress_[id];
      entry.policies.push_back(PolicyKey{p->order.value_or(kLast), id});
      idx.policy_tier_[id] = {tier.name, entry.policies.back()};
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
      std::set<std::pair<std::string, int>> own_named;
      for (const Rule& r : p->ingress_rules) CollectSides(r, selectors, own_named, keys);
      for (const Rule& r : p->egress_rules) CollectSides(r, selectors, own_named, keys);
      std::set<std::string>& named_keys = idx.policy_named_["profile:" + name];
      for (const auto& [n, protocol] : own_named) named_keys.insert(NamedPortKey(n, protocol));
      named.insert(own_named.begin(), own_named.end());
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
    idx.views_[EntityKey(e)] = e;
  }
  return idx;
}

EndpointPolicies SelectionIndex::ComputeLists(const Model& model, const EntityView& view) {
  EndpointPolicies out;
  out.profiles = view.endpoint->profiles;
  std::vector<const Policy*> policies;
  for (const TierEntry& tier : tiers_) {
    policies.clear();
    for (const PolicyKey& k : tier.policies) {
      auto it = model.policies().find(k.id);
      // preDNAT and doNotTrack policies apply to host endpoints only.
      if (it == model.policies().end() || it->second.pre_dnat || it->second.do_not_track) continue;
      if (Matches(it->second.applies_to, view)) policies.push_back(&it->second);
    }
    if (policies.empty()) continue;
    for (Direction dir : {Direction::kIngress, Direction::kEgress}) {
      TierPolicies tp{tier.name, tier.default_action, {}};
      for (const Policy* p : policies) {
        if (p->Applies(dir)) tp.policies.push_back(p->Id());
      }
      if (!tp.policies.empty()) (dir == Direction::kIngress ? out.ingress : out.egress).push_back(std::move(tp));
    }
  }
  return out;
}

template <typename F>
void SelectionIndex::ForCandidates(const EntitySelector& selector, F&& f) const {
  if (selector.scope != Scope::kNamespace) {
    for (const auto& [ek, view] : views_) f(ek, view);
    return;
  }
  // EntityKey: "endpoint:<ns>/<name>", "set:<ns>/<name>"; host endpoints ("endpoint:hep:...")
  // and global sets have no namespace and never match a namespaced selector.
  for (const char* kind : {"endpoint:", "set:"}) {
    const std::string prefix = absl::StrCat(kind, selector.ns, "/");
    for (auto it = views_.lower_bound(prefix); it != views_.end() && it->first.starts_with(prefix); ++it) {
      f(it->first, it->second);
    }
  }
}

void SelectionIndex::AddSelector(const std::string& key, const EntitySelector& selector) {
  selectors_.emplace(key, selector);
  IpSet& members = ip_sets_[key];
  std::map<net::Prefix, int>& counts = set_counts_[key];
  ForCandidates(selector, [&](const std::string& ek, const EntityView& view) {
    if (!Matches(selector, view)) return;
    entity_sets_[ek].insert(key);
    for (const net::Prefix& p : AddressesOf(view)) {
      members.insert(p);
      ++counts[p];
    }
  });
}

void SelectionIndex::AddNamedPort(const Model& model, const std::string& key, const std::string& name,
                                  int protocol) {
  std::set<NamedPortMember>& members = named_ports_[key];
  for (const auto& [_, e] : model.endpoints()) {
    for (int port : ResolveNamedPort(e, name, protocol)) {
      for (const net::Prefix& p : e.ips) {
        members.insert(NamedPortMember{p, port});
        ++named_counts_[key][NamedPortMember{p, port}];
      }
    }
  }
  named_keys_[key] = {name, protocol};
}

SelectionDelta SelectionIndex::UpdatePolicy(const Model& model, const std::string& id) {
  constexpr double kLast = std::numeric_limits<double>::infinity();
  SelectionDelta d;
  auto found = model.policies().find(id);
  const Policy* p = found == model.policies().end() ? nullptr : &found->second;

  // Its place in the ordered cache.
  if (auto t = policy_tier_.find(id); t != policy_tier_.end()) {
    for (auto it = tiers_.begin(); it != tiers_.end(); ++it) {
      if (it->name != t->second.first) continue;
      std::erase_if(it->policies, [&](const PolicyKey& k) { return k.id == id; });
      // A tier only policies named goes with its last policy; a stored one stays.
      if (it->policies.empty() && !model.stored_tiers().count(it->name)) tiers_.erase(it);
      break;
    }
  }
  if (p != nullptr) {
    auto it = std::find_if(tiers_.begin(), tiers_.end(), [&](const TierEntry& e) { return e.name == p->tier; });
    if (it == tiers_.end()) {
      Tier tier = model.TierNamed(p->tier);
      TierEntry entry{tier.name, tier.order.value_or(kLast), tier.default_action, {}};
      auto pos = std::find_if(tiers_.begin(), tiers_.end(), [&](const TierEntry& e) {
        return std::tie(entry.order, entry.name) < std::tie(e.order, e.name);
      });
      it = tiers_.insert(pos, std::move(entry));
    }
    PolicyKey key{p->order.value_or(kLast), id};
    it->policies.insert(std::lower_bound(it->policies.begin(), it->policies.end(), key), key);
  }

  // Which endpoints it selects now. A change that kept the selector and types (new rules, a
  // new order) keeps the selection: no need to match every entity again.
  std::set<std::string> now_in, now_eg;
  std::string selection_key;
  if (p != nullptr) {
    selection_key = absl::StrCat(p->applies_to.Key(), "|", p->ingress, p->egress, p->pre_dnat, p->do_not_track);
  }
  auto cached = selection_keys_.find(id);
  if (p != nullptr && cached != selection_keys_.end() && cached->second == selection_key) {
    now_in = Selected(id, Direction::kIngress);
    now_eg = Selected(id, Direction::kEgress);
  } else if (p != nullptr && !p->pre_dnat && !p->do_not_track) {
    ForCandidates(p->applies_to, [&](const std::string&, const EntityView& view) {
      if (view.endpoint == nullptr || !Matches(p->applies_to, view)) return;
      const std::string eid = view.endpoint->Id();
      if (p->ingress) now_in.insert(eid);
      if (p->egress) now_eg.insert(eid);
    });
  }
  if (p != nullptr) {
    selection_keys_[id] = selection_key;
  } else {
    selection_keys_.erase(id);
  }
  const std::set<std::string> was_in = Selected(id, Direction::kIngress), was_eg = Selected(id, Direction::kEgress);
  if (p != nullptr) {
    selected_ingress_[id] = now_in;
    selected_egress_[id] = now_eg;
  } else {
    selected_ingress_.erase(id);
    selected_egress_.erase(id);
  }
  if (now_in != was_in || now_eg != was_eg) d.policies_reselected.push_back(id);

  // The lists of the endpoints it selected before or selects now: patched, not recomputed.
  std::set<std::string> affected(was_in.begin(), was_in.end());
  affected.insert(was_eg.begin(), was_eg.end());
  affected.insert(now_in.begin(), now_in.end());
  affected.insert(now_eg.begin(), now_eg.end());
  auto tier_rank = [&](const std::string& name) {
    for (size_t i = 0; i < tiers_.size(); ++i) {
      if (tiers_[i].name == name) return i;
    }
    return tiers_.size();
  };
  // Keys as the cache holds them: a policy removed from the model but not yet from the index
  // (a batch updates policies one by one) still sorts where it was.
  auto sort_key = [&](const std::string& pid) {
    auto t = policy_tier_.find(pid);
    return t != policy_tier_.end() ? t->second.second : PolicyKey{kLast, pid};
  };
  for (const std::string& eid : affected) {
    auto ep = endpoints_.find(eid);
    if (ep == endpoints_.end()) continue;
    EndpointPolicies before = ep->second;
    for (Direction dir : {Direction::kIngress, Direction::kEgress}) {
      std::vector<TierPolicies>& lists = dir == Direction::kIngress ? ep->second.ingress : ep->second.egress;
      for (TierPolicies& tp : lists) std::erase(tp.policies, id);
      std::erase_if(lists, [](const TierPolicies& tp) { return tp.policies.empty(); });
      if (!(dir == Direction::kIngress ? now_in : now_eg).count(eid)) continue;
      auto tp = std::find_if(lists.begin(), lists.end(), [&](const TierPolicies& t) { return t.tier == p->tier; });
      if (tp == lists.end()) {
        size_t rank = tier_rank(p->tier);
        auto pos = std::find_if(lists.begin(), lists.end(), [&](const TierPolicies& t) { return tier_rank(t.tier) > rank; });
        tp = lists.insert(pos, TierPolicies{p->tier, tiers_[rank].default_action, {}});
      }
      PolicyKey key{p->order.value_or(kLast), id};
      auto pos = std::find_if(tp->policies.begin(), tp->policies.end(),
                              [&](const std::string& other) { return key < sort_key(other); });
      tp->policies.insert(pos, id);
    }
    if (!(before == ep->second)) d.endpoints_changed.push_back(eid);
  }

  if (p != nullptr) {
    policy_tier_[id] = {p->tier, PolicyKey{p->order.value_or(kLast), id}};
  } else {
    policy_tier_.erase(id);
  }

  // Rule sets: new keys get their members; keys nothing uses any more go.
  std::map<std::string, EntitySelector> selectors;
  std::set<std::pair<std::string, int>> named;
  std::set<std::string> now_keys;
  if (p != nullptr) {
    for (const Rule& r : p->ingress_rules) CollectSides(r, selectors, named, now_keys);
    for (const Rule& r : p->egress_rules) CollectSides(r, selectors, named, now_keys);
  }
  std::set<std::string> was_keys = policy_sets_.count(id) ? policy_sets_[id] : std::set<std::string>{};
  std::set<std::string> was_named = policy_named_.count(id) ? policy_named_[id] : std::set<std::string>{};
  std::set<std::string> now_named;
  for (const auto& [name, protocol] : named) now_named.insert(NamedPortKey(name, protocol));
  if (p != nullptr) {
    policy_sets_[id] = now_keys;
    policy_named_[id] = now_named;
  } else {
    policy_sets_.erase(id);
    policy_named_.erase(id);
  }
  std::set<std::string> added, removed;
  for (const std::string& key : SetDiff(now_keys, was_keys)) {
    if (selectors_.count(key)) continue;  // another policy's set already
    AddSelector(key, selectors.at(key));
    added.insert(key);
  }
  for (const std::string& key : SetDiff(was_keys, now_keys)) {
    bool used = std::any_of(policy_sets_.begin(), policy_sets_.end(),
                            [&](const auto& e) { return e.second.count(key) > 0; });
    if (used) continue;
    selectors_.erase(key);
    ip_sets_.erase(key);
    set_counts_.erase(key);
    for (auto& [_, keys] : entity_sets_) keys.erase(key);
    removed.insert(key);
  }
  d.sets_added.assign(added.begin(), added.end());
  d.sets_removed.assign(removed.begin(), removed.end());
  std::set<std::string> named_changed;
  for (const auto& [name, protocol] : named) {
    std::string key = NamedPortKey(name, protocol);
    if (named_keys_.count(key)) continue;
    AddNamedPort(model, key, name, protocol);
    named_changed.insert(key);
  }
  for (const std::string& key : SetDiff(was_named, now_named)) {
    bool used = std::any_of(policy_named_.begin(), policy_named_.end(),
                            [&](const auto& e) { return e.second.count(key) > 0; });
    if (used) continue;
    named_keys_.erase(key);
    named_ports_.erase(key);
    named_counts_.erase(key);
    named_changed.insert(key);
  }
  d.named_ports_changed.assign(named_changed.begin(), named_changed.end());
  return d;
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
    views_[ek] = *view;
  } else {
    views_.erase(ek);
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
      after = ComputeLists(model, *view);
      for (Direction dir : {Direction::kIngress, Direction::kEgress}) {
        auto& selected = dir == Direction::kIngress ? selected_ingress_ : selected_egress_;
        for (const TierPolicies& tp : after.For(dir)) {
          for (const std::string& p : tp.policies) selected[p].insert(id);
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
    NamedPortDelta moves;
    for (const auto& [m, n] : members) {
      if (n > 0) moves.added.push_back(m);
      if (n < 0) moves.removed.push_back(m);
    }
    if (moves.added.empty() && moves.removed.empty()) continue;
    d.named_ports_changed.push_back(key);
    d.named_port_moves[key] = std::move(moves);
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
