#include "felixd/nft/delta.h"

#include "absl/strings/str_cat.h"
#include "felixd/nft/elements.h"

namespace calico::felixd::nft {
namespace {

std::vector<std::string> Tags(const Chain& chain) {
  std::vector<std::string> tags;
  tags.reserve(chain.rules.size());
  for (const Rule& r : chain.rules) tags.push_back(RuleTag(r));
  return tags;
}

const char* HookName(Hook hook) {
  switch (hook) {
    case Hook::kForward:
      return "forward";
    case Hook::kInput:
      return "input";
    case Hook::kPrerouting:
      return "prerouting";
    case Hook::kOutput:
      return "output";
    case Hook::kPostrouting:
      return "postrouting";
    case Hook::kNone:
      break;
  }
  return "?";
}

std::string KeyText(KeyType type, const std::string& key) {
  // Interface names are strings to nft: quote them.
  if (type == KeyType::kIfname) return absl::StrCat("\"", key, "\"");
  if (type == KeyType::kIfnameIpv4 || type == KeyType::kIfnameIpv6) {
    size_t dot = key.find(" . ");
    return absl::StrCat("\"", key.substr(0, dot), "\"", key.substr(dot));
  }
  return key;
}

}  // namespace

bool Delta::empty() const { return size() == 0 && !add_table; }

size_t Delta::size() const {
  return add_sets.size() + put_chains.size() + delete_elements.size() + add_elements.size() +
         delete_chains.size() + delete_sets.size();
}

absl::Status Canonicalize(DesiredTable& table) {
  for (auto& [name, set] : table.sets) {
    Elements canonical;
    for (auto& [key, verdict] : set.elements) {
      auto c = CanonicalKey(set.spec.key, set.spec.interval, key);
      if (!c.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("set ", name, ": ", std::string(c.status().message())));
      }
      std::string value = verdict;
      if (set.spec.data) {
        auto v = CanonicalKey(*set.spec.data, false, verdict);
        if (!v.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("map ", name, ": ", std::string(v.status().message())));
        }
        value = *std::move(v);
      }
      canonical.emplace(*std::move(c), std::move(value));
    }
    set.elements = std::move(canonical);
  }
  return absl::OkStatus();
}

std::set<std::string> ReferencedSets(const Rule& rule) {
  std::set<std::string> out;
  for (const Expr& e : rule.exprs) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, AddrSetMatch> || std::is_same_v<T, PortSetMatch> ||
                        std::is_same_v<T, NamedPortSetMatch> ||
                        std::is_same_v<T, IfaceAddrSetMatch>) {
            out.insert(x.set);
          } else if constexpr (std::is_same_v<T, GroupVmap>) {
            out.insert(x.map);
          } else if constexpr (std::is_same_v<T, IfnameVmap>) {
            out.insert(x.map);
            if (!x.via.empty()) out.insert(x.via);
          }
        },
        e);
  }
  return out;
}

Delta ComputeDelta(const DesiredTable& desired, const std::optional<TableState>& actual) {
  static const TableState kEmpty;
  const TableState& have = actual ? *actual : kEmpty;
  Delta d;
  d.add_table = !actual.has_value();

  std::set<std::string> respec;  // sets deleted and re-added: their users must be refilled
  for (const auto& [name, set] : desired.sets) {
    auto it = have.sets.find(name);
    if (it == have.sets.end() || !(it->second.spec == set.spec)) {
      if (it != have.sets.end()) {
        d.delete_sets.push_back(name);
        respec.insert(name);
      }
      d.add_sets.push_back(set.spec);
      for (const auto& [key, verdict] : set.elements) d.add_elements.push_back({name, key, verdict});
      continue;
    }
    const Elements& now = it->second.elements;
    for (const auto& [key, verdict] : now) {
      auto want = set.elements.find(key);
      if (want == set.elements.end() || want->second != verdict) {
        d.delete_elements.push_back({name, key, verdict});
      }
    }
    for (const auto& [key, verdict] : set.elements) {
      auto got = now.find(key);
      if (got == now.end() || got->second != verdict) d.add_elements.push_back({name, key, verdict});
    }
  }
  for (const auto& [name, set] : have.sets) {
    if (!desired.sets.contains(name)) d.delete_sets.push_back(name);
  }

  for (const auto& [name, chain] : desired.chains) {
    auto it = have.chains.find(name);
    bool same = it != have.chains.end() && it->second.base == chain.base &&
                it->second.rule_tags == Tags(chain);
    if (same && !respec.empty()) {
      for (const Rule& r : chain.rules) {
        for (const std::string& s : ReferencedSets(r)) same = same && !respec.contains(s);
      }
    }
    if (!same) d.put_chains.push_back(chain);
  }
  for (const auto& [name, chain] : have.chains) {
    if (!desired.chains.contains(name)) d.delete_chains.push_back(name);
  }
  return d;
}

TableState ExpectedState(const DesiredTable& desired) {
  TableState out;
  for (const auto& [name, set] : desired.sets) out.sets[name] = SetState{set.spec, set.elements};
  for (const auto& [name, chain] : desired.chains) {
    out.chains[name] = ChainState{chain.base, Tags(chain)};
  }
  return out;
}

std::string ToNftScript(const DesiredTable& desired) {
  std::string out = absl::StrCat("add table inet ", kTableName, "\n");
  const std::string t = absl::StrCat(" inet ", kTableName, " ");
  for (const auto& [name, set] : desired.sets) {
    bool map = set.spec.verdict_map || set.spec.data;
    std::string data = set.spec.verdict_map ? " : verdict"
                       : set.spec.data  ? absl::StrCat(" : ", std::string(KeyTypeName(*set.spec.data)))
                                        : "";
    absl::StrAppend(&out, map ? "add map" : "add set", t, name, " { type ",
                    std::string(KeyTypeName(set.spec.key)), data, ";",
                    set.spec.interval ? " flags interval;" : "", " }\n");
  }
  for (const auto& [name, chain] : desired.chains) {
    absl::StrAppend(&out, "add chain", t, name);
    if (chain.base) {
      absl::StrAppend(&out, " { type ", chain.base->type == ChainType::kNat ? "nat" : "filter",
                      " hook ", HookName(chain.base->hook), " priority ",
                      chain.base->priority, "; policy ",
                      chain.base->policy_accept ? "accept" : "drop", "; }");
    }
    out += '\n';
  }
  for (const auto& [name, set] : desired.sets) {
    constexpr size_t kPerLine = 500;
    size_t n = 0;
    for (const auto& [key, verdict] : set.elements) {
      if (n % kPerLine == 0) absl::StrAppend(&out, n ? " }\n" : "", "add element", t, name, " { ");
      else out += ", ";
      absl::StrAppend(&out, KeyText(set.spec.key, key));
      if (set.spec.verdict_map) absl::StrAppend(&out, " : ", verdict);
      if (set.spec.data) absl::StrAppend(&out, " : ", KeyText(*set.spec.data, verdict));
      ++n;
    }
    if (n) out += " }\n";
  }
  for (const auto& [name, chain] : desired.chains) {
    for (const Rule& r : chain.rules) {
      absl::StrAppend(&out, "add rule", t, name, " ", r.ToString(), " comment \"", RuleTag(r),
                      "\"\n");
    }
  }
  return out;
}

}  // namespace calico::felixd::nft
