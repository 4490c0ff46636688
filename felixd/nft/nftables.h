#pragma once
// felixd/nft/nftables.h — the narrow seam through which felixd programs its nftables table
// (`inet calico`), in our own value types rather than libnftnl's or nft syntax.
// Owns: nothing; implementations are MnlNftables (real: libnftnl + libmnl batches) and
// FakeNftables (tests).
// Never: touches another table; deletes and recreates the table (a restart adopts it: read,
// diff, apply the difference); applies half a delta — every Apply is one nftables transaction
// (NFNL_MSG_BATCH_BEGIN ... END), committed whole or not at all.
// Recognising our rules after a restart: each rule carries the comment RuleTag(rule) =
// "cali:<16 hex of its text's FNV-1a 64>" (upstream Felix tags iptables rules the same way);
// Read returns the tags, so drift (a rule edited, inserted, removed) shows as a tag mismatch.
// Errors: ErrnoError(<kernel errno>, "<NFT_MSG_* object>") — the fake uses the same codes.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "felixd/nft/rule.h"

namespace calico::felixd::nft {

inline constexpr char kTableName[] = "calico";  // family inet

// Keys of the sets and maps we use. Element keys are text in nft's syntax, canonicalised by
// CanonicalKey (elements.h): kIpv4 "10.65.0.3" (interval sets: "10.65.0.0/16"),
// kIfnameIpv4 "cali1234 . 10.65.0.3", kIpv4ProtoPort "10.65.0.3 . 6 . 8080", kPort "80" or
// (interval) "8000-9000", kIfname "cali1234".
enum class KeyType {
  kIpv4,
  kIpv6,
  kIfname,
  kIfnameIpv4,
  kIfnameIpv6,
  kIpv4ProtoPort,
  kIpv6ProtoPort,
  kPort,
  kDevgroup,  // a link group number (32 bits, host order): "305419896"
};
std::string_view KeyTypeName(KeyType type);  // "ipv4_addr", "ifname . ipv4_addr", ...

struct SetSpec {
  // Constructors (not an aggregate) so `SetSpec{name, key, interval, verdict_map}` stays
  // warning-free under -Wextra with the later members defaulted.
  SetSpec() = default;
  SetSpec(std::string name, KeyType key, bool interval = false, bool verdict_map = false,
          std::optional<KeyType> data = std::nullopt)
      : name(std::move(name)), key(key), interval(interval), verdict_map(verdict_map), data(data) {}
  std::string name;
  KeyType key = KeyType::kIpv4;
  bool interval = false;     // flags interval: prefixes / ranges
  bool verdict_map = false;  // `map { type <key> : verdict }`; elements carry a verdict
  // A data map `map { type <key> : <data> }` (not with verdict_map): each element carries a
  // value of this type, as text in the element's `verdict` field (canonicalised likewise).
  std::optional<KeyType> data;
  bool operator==(const SetSpec&) const = default;
};

// A set's contents: key → verdict ("" for plain sets; "jump c", "goto c", "drop", "accept"
// for verdict maps; the data value's text for data maps).
using Elements = std::map<std::string, std::string>;

enum class Hook { kNone, kForward, kInput, kOutput, kPrerouting, kPostrouting };
// nft chain types: `filter`, or `nat` (sees the first packet of each connection only; its
// masquerade/snat verdicts apply to the whole connection through conntrack).
enum class ChainType { kFilter, kNat };
inline constexpr int kPrioritySrcnat = 100;  // nft's `srcnat` at postrouting
struct BaseChain {
  // Constructors (not an aggregate) so `BaseChain{hook, priority, policy_accept}` stays
  // warning-free under -Wextra with `type` defaulted.
  BaseChain() = default;
  BaseChain(Hook hook, int priority, bool policy_accept, ChainType type = ChainType::kFilter)
      : hook(hook), priority(priority), policy_accept(policy_accept), type(type) {}
  Hook hook = Hook::kForward;
  int priority = 0;  // filter
  bool policy_accept = true;
  ChainType type = ChainType::kFilter;
  bool operator==(const BaseChain&) const = default;
};

struct Chain {
  std::string name;
  std::optional<BaseChain> base;  // absent: a regular chain (jump/goto target)
  std::vector<Rule> rules;
  bool operator==(const Chain&) const = default;
};

// One transaction. The implementation orders it so that references resolve: chains are added
// (empty) first, replaced chains are flushed, element deletes, chain deletes (flushed first),
// set deletes, set adds, element adds, and last the rules of replaced chains.
struct ElementChange {
  std::string set;
  std::string key;
  std::string verdict;  // maps only: the verdict, or a data map's value
  bool operator==(const ElementChange&) const = default;
};
struct Delta {
  bool add_table = false;                 // idempotent
  std::vector<SetSpec> add_sets;          // new sets (a changed spec: delete, then add)
  std::vector<Chain> put_chains;          // created when missing, else flushed and refilled
  std::vector<ElementChange> delete_elements;
  std::vector<ElementChange> add_elements;
  std::vector<std::string> delete_chains;
  std::vector<std::string> delete_sets;
  bool empty() const;
  size_t size() const;  // objects touched, for logs and metrics
};

// What Read finds in the kernel.
struct ChainState {
  std::optional<BaseChain> base;
  std::vector<std::string> rule_tags;  // RuleTag of each rule in order; "" for a rule without one
  bool operator==(const ChainState&) const = default;
};
struct SetState {
  SetSpec spec;
  Elements elements;
  bool operator==(const SetState&) const = default;
};
struct TableState {
  std::map<std::string, SetState> sets;
  std::map<std::string, ChainState> chains;
  bool operator==(const TableState&) const = default;
};

// All calls act on the namespace the implementation was opened in. Not thread-safe: felixd's
// event-loop thread is the only caller.
class Nftables {
 public:
  virtual ~Nftables() = default;
  // One transaction: all of `delta` or nothing (then the error names the first failing part).
  virtual absl::Status Apply(const Delta& delta) = 0;
  // The whole table `inet calico`; nullopt when it does not exist.
  virtual absl::StatusOr<std::optional<TableState>> Read() = 0;
};

}  // namespace calico::felixd::nft
