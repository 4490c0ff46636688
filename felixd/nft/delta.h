#pragma once
// felixd/nft/delta.h — the desired table, and the delta from what the kernel holds to it. Pure.
// ComputeDelta is the whole drift/adoption story: a fresh felixd reads the table, computes the
// delta and applies only that (with nothing changed, an empty delta: no rule churn, no window);
// a flushed or edited table yields the delta that restores it.
// A chain is equal when its base-chain settings and its rule tags (RuleTag, in order) are; a set
// when its spec and canonical elements are. A set whose spec changed is deleted and re-added in
// the same transaction, with every desired chain that references it refilled.

#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "felixd/nft/nftables.h"

namespace calico::felixd::nft {

struct DesiredSet {
  SetSpec spec;
  Elements elements;  // canonical keys (CanonicalKey)
  bool operator==(const DesiredSet&) const = default;
};

struct DesiredTable {
  std::map<std::string, DesiredSet> sets;
  std::map<std::string, Chain> chains;
  bool operator==(const DesiredTable&) const = default;
};

// Rewrites every element key into its canonical form; InvalidArgument names the set and key.
absl::Status Canonicalize(DesiredTable& table);

// Sets and maps a rule refers to (by name).
std::set<std::string> ReferencedSets(const Rule& rule);

Delta ComputeDelta(const DesiredTable& desired, const std::optional<TableState>& actual);

// What a perfect Apply of `desired` leaves for Read to find.
TableState ExpectedState(const DesiredTable& desired);

// An `nft -f` script creating `desired` in an empty table: the full-rebuild reference of the
// benchmark, and a human-readable dump.
std::string ToNftScript(const DesiredTable& desired);

}  // namespace calico::felixd::nft
