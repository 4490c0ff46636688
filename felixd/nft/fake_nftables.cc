#include "felixd/nft/fake_nftables.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/base/errno_status.h"
#include "common/base/status_macros.h"
#include "felixd/nft/delta.h"
#include "felixd/nft/elements.h"

namespace calico::felixd::nft {
namespace {

std::set<std::string> JumpTargets(const Rule& rule) {
  std::set<std::string> out;
  for (const Expr& e : rule.exprs) {
    if (const auto* v = std::get_if<Verdict>(&e)) {
      if (v->kind == VerdictKind::kJump || v->kind == VerdictKind::kGoto) out.insert(v->chain);
    }
  }
  return out;
}

// "jump c" / "goto c" → c; other verdicts → "".
std::string VerdictChain(const std::string& verdict) {
  for (std::string_view p : {"jump ", "goto "}) {
    if (verdict.rfind(p, 0) == 0) return verdict.substr(p.size());
  }
  return "";
}

bool ValidVerdict(const std::string& v) {
  return v == "accept" || v == "drop" || v == "return" || !VerdictChain(v).empty();
}

}  // namespace

absl::Status FakeNftables::Apply(const Delta& delta) {
  ++applies_;
  if (!fail_apply_.empty()) {
    int error = fail_apply_.front();
    fail_apply_.pop_front();
    return ErrnoError(error, "nftables transaction (injected)");
  }
  std::optional<Table> next = table_;
  if (delta.add_table && !next) next.emplace();
  if (!next) {
    if (delta.empty()) return absl::OkStatus();
    return ErrnoError(ENOENT, absl::StrCat("table inet ", kTableName));
  }
  RETURN_IF_ERROR(ApplyTo(*next, delta));
  table_ = std::move(next);
  written_ += delta.size();
  return absl::OkStatus();
}

absl::Status FakeNftables::ApplyTo(Table& t, const Delta& d) {
  auto chain_err = [](int e, std::string_view what, const std::string& name) {
    return ErrnoError(e, absl::StrCat(std::string(what), " chain ", name));
  };
  // Chains first (empty), then flushes.
  for (const Chain& c : d.put_chains) {
    auto it = t.chains.find(c.name);
    if (it == t.chains.end()) {
      t.chains[c.name] = StoredChain{c.base, {}};
    } else {
      if (it->second.base.has_value() != c.base.has_value() ||
          (c.base && (it->second.base->hook != c.base->hook ||
                      it->second.base->type != c.base->type))) {
        return chain_err(EOPNOTSUPP, "NFT_MSG_NEWCHAIN", c.name);
      }
      it->second.base = c.base;
      it->second.rules.clear();
    }
  }
  for (const ElementChange& e : d.delete_elements) {
    auto s = t.sets.find(e.set);
    if (s == t.sets.end()) return ErrnoError(ENOENT, absl::StrCat("NFT_MSG_DELSETELEM set ", e.set));
    auto key = CanonicalKey(s->second.spec.key, s->second.spec.interval, e.key);
    if (!key.ok() || s->second.elements.erase(*key) == 0) {
      return ErrnoError(ENOENT, absl::StrCat("NFT_MSG_DELSETELEM ", e.set, " ", e.key));
    }
  }
  auto chain_used = [&](const std::string& name) {
    for (const auto& [cn, c] : t.chains) {
      for (const StoredRule& r : c.rules) {
        if (JumpTargets(r.rule).contains(name)) return true;
      }
    }
    for (const auto& [sn, s] : t.sets) {
      for (const auto& [k, v] : s.elements) {
        if (VerdictChain(v) == name) return true;
      }
    }
    return false;
  };
  for (const std::string& name : d.delete_chains) {
    if (!t.chains.contains(name)) return chain_err(ENOENT, "NFT_MSG_DELCHAIN", name);
    t.chains[name].rules.clear();
  }
  for (const std::string& name : d.delete_chains) {
    if (chain_used(name)) return chain_err(EBUSY, "NFT_MSG_DELCHAIN", name);
    t.chains.erase(name);
  }
  for (const std::string& name : d.delete_sets) {
    if (!t.sets.contains(name)) return ErrnoError(ENOENT, absl::StrCat("NFT_MSG_DELSET ", name));
    for (const auto& [cn, c] : t.chains) {
      for (const StoredRule& r : c.rules) {
        if (ReferencedSets(r.rule).contains(name)) {
          return ErrnoError(EBUSY, absl::StrCat("NFT_MSG_DELSET ", name));
        }
      }
    }
    t.sets.erase(name);
  }
  for (const SetSpec& spec : d.add_sets) {
    auto it = t.sets.find(spec.name);
    if (it != t.sets.end() && !(it->second.spec == spec)) {
      return ErrnoError(EEXIST, absl::StrCat("NFT_MSG_NEWSET ", spec.name));
    }
    if (it == t.sets.end()) t.sets[spec.name] = StoredSet{spec, {}};
  }
  for (const ElementChange& e : d.add_elements) {
    auto s = t.sets.find(e.set);
    if (s == t.sets.end()) return ErrnoError(ENOENT, absl::StrCat("NFT_MSG_NEWSETELEM set ", e.set));
    const SetSpec& spec = s->second.spec;
    std::string what = absl::StrCat("NFT_MSG_NEWSETELEM ", e.set, " ", e.key);
    std::string data = spec.verdict_map ? e.verdict : "";
    auto key = CanonicalKey(spec.key, spec.interval, e.key);
    if (!key.ok()) return ErrnoError(EINVAL, what);
    if (spec.verdict_map) {
      if (!ValidVerdict(e.verdict)) return ErrnoError(EINVAL, what);
      std::string target = VerdictChain(e.verdict);
      if (!target.empty()) {
        auto c = t.chains.find(target);
        if (c == t.chains.end()) return ErrnoError(ENOENT, what);
        if (c->second.base) return ErrnoError(EOPNOTSUPP, what);
      }
    } else if (spec.data) {
      auto value = CanonicalKey(*spec.data, false, e.verdict);
      if (!value.ok()) return ErrnoError(EINVAL, what);
      data = *std::move(value);
    } else if (!e.verdict.empty()) {
      return ErrnoError(EINVAL, what);
    }
    Elements& els = s->second.elements;
    auto have = els.find(*key);
    if (have != els.end()) {
      if (have->second != data) return ErrnoError(EEXIST, what);
      continue;
    }
    if (spec.interval) {
      auto mine = IntervalRange(spec.key, *key);
      for (const auto& [k, v] : els) {
        auto other = IntervalRange(spec.key, k);
        if (mine.ok() && other.ok() && mine->first <= other->second &&
            other->first <= mine->second) {
          return ErrnoError(EEXIST, what);
        }
      }
    }
    els.emplace(*key, data);
  }
  for (const Chain& c : d.put_chains) {
    for (const Rule& r : c.rules) {
      std::string what = absl::StrCat("NFT_MSG_NEWRULE ", c.name, " ", r.ToString());
      for (const std::string& s : ReferencedSets(r)) {
        if (!t.sets.contains(s)) return ErrnoError(ENOENT, what);
      }
      // The kernel validates masquerade against the chain: a nat chain at postrouting.
      bool masq = false;
      for (const Expr& e : r.exprs) masq = masq || std::holds_alternative<Masquerade>(e);
      if (masq && c.base &&
          (c.base->type != ChainType::kNat || c.base->hook != Hook::kPostrouting)) {
        return ErrnoError(EOPNOTSUPP, what);
      }
      for (const std::string& target : JumpTargets(r)) {
        auto it = t.chains.find(target);
        if (it == t.chains.end()) return ErrnoError(ENOENT, what);
        if (it->second.base) return ErrnoError(EOPNOTSUPP, what);
      }
      t.chains[c.name].rules.push_back(StoredRule{r, RuleTag(r)});
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<TableState>> FakeNftables::Read() {
  if (!fail_read_.empty()) {
    int error = fail_read_.front();
    fail_read_.pop_front();
    return ErrnoError(error, "nftables dump (injected)");
  }
  if (!table_) return std::optional<TableState>();
  TableState out;
  for (const auto& [name, s] : table_->sets) out.sets[name] = SetState{s.spec, s.elements};
  for (const auto& [name, c] : table_->chains) {
    ChainState cs{c.base, {}};
    for (const StoredRule& r : c.rules) cs.rule_tags.push_back(r.tag);
    out.chains[name] = std::move(cs);
  }
  return std::optional<TableState>(std::move(out));
}

void FakeNftables::FlushChainByHand(const std::string& chain) {
  if (table_ && table_->chains.contains(chain)) table_->chains[chain].rules.clear();
}

void FakeNftables::AddRuleByHand(const std::string& chain, const Rule& rule, std::string tag) {
  if (table_ && table_->chains.contains(chain)) {
    table_->chains[chain].rules.push_back(StoredRule{rule, std::move(tag)});
  }
}

void FakeNftables::DeleteElementByHand(const std::string& set, const std::string& key) {
  if (table_ && table_->sets.contains(set)) table_->sets[set].elements.erase(key);
}

std::optional<std::vector<Rule>> FakeNftables::RulesOf(const std::string& chain) const {
  if (!table_ || !table_->chains.contains(chain)) return std::nullopt;
  std::vector<Rule> out;
  for (const StoredRule& r : table_->chains.at(chain).rules) out.push_back(r.rule);
  return out;
}

std::optional<Elements> FakeNftables::ElementsOf(const std::string& set) const {
  if (!table_ || !table_->sets.contains(set)) return std::nullopt;
  return table_->sets.at(set).elements;
}

}  // namespace calico::felixd::nft
