#pragma once
// felixd/nft/fake_nftables.h — a stateful in-memory table `inet calico` for unit tests, with the
// kernel behaviour our writer relies on: Apply is all-or-nothing; deleting a missing element,
// chain or set fails ENOENT; deleting a chain a rule or map element still jumps to, or a set a
// rule still uses, fails EBUSY; a rule or map element naming a missing set or chain fails
// ENOENT, a jump to a base chain EOPNOTSUPP; adding an element that exists is a no-op unless
// its verdict differs or its interval overlaps another (EEXIST); adding a set that exists with
// another spec fails EEXIST; changing a base chain's hook or type fails EOPNOTSUPP, and so does
// masquerade in a base chain that is not nat at postrouting. Not modelled: packets, expression
// validation beyond references.

#include <deque>
#include <optional>

#include "felixd/nft/nftables.h"

namespace calico::felixd::nft {

class FakeNftables : public Nftables {
 public:
  // Nftables
  absl::Status Apply(const Delta& delta) override;
  absl::StatusOr<std::optional<TableState>> Read() override;

  // ---- Test controls ----
  void FailNextApply(int error) { fail_apply_.push_back(error); }
  void FailNextRead(int error) { fail_read_.push_back(error); }
  int applies() const { return applies_; }        // Apply calls, failed ones included
  size_t objects_written() const { return written_; }  // Delta::size() of successful applies

  // ---- "By hand", like `nft` from a shell. Not counted, never failed. ----
  bool HasTable() const { return table_.has_value(); }
  void DeleteTableByHand() { table_.reset(); }
  void FlushChainByHand(const std::string& chain);
  void AddRuleByHand(const std::string& chain, const Rule& rule, std::string tag = "");
  void DeleteElementByHand(const std::string& set, const std::string& key);
  std::optional<std::vector<Rule>> RulesOf(const std::string& chain) const;
  std::optional<Elements> ElementsOf(const std::string& set) const;

 private:
  struct StoredRule {
    Rule rule;
    std::string tag;
  };
  struct StoredChain {
    std::optional<BaseChain> base;
    std::vector<StoredRule> rules;
  };
  struct StoredSet {
    SetSpec spec;
    Elements elements;
  };
  struct Table {
    std::map<std::string, StoredSet> sets;
    std::map<std::string, StoredChain> chains;
  };

  static absl::Status ApplyTo(Table& t, const Delta& delta);

  std::optional<Table> table_;
  std::deque<int> fail_apply_, fail_read_;
  int applies_ = 0;
  size_t written_ = 0;
};

}  // namespace calico::felixd::nft
