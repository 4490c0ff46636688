#pragma once
// felixd/nft/rule.h — one nftables rule as a value: a conjunction of matches, then statements
// and at most one verdict, in the order nft would print them. Only the vocabulary Calico policy
// needs, so the real writer can compile it straight to libnftnl expressions (no nft parser and
// no libnftables cache in the per-change path) and ToString renders the same rule in nft syntax
// (for `nft -f`, logs, and the tag that identifies it in the kernel).
// Invariants: a port or ICMP match needs an L4Proto match earlier in the rule (as `th dport`
// does in nft); address matches carry their family and imply `meta nfproto`.

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace calico::felixd::nft {

enum class Dir { kSource, kDest };

// iifname/oifname equal to `name`, or starting with it when `prefix` ("cali*").
struct IfnameMatch {
  bool input = true;
  std::string name;
  bool prefix = false;
  bool negate = false;
  bool operator==(const IfnameMatch&) const = default;
};
struct NfprotoMatch {  // meta nfproto ipv4|ipv6
  int family = 4;
  bool operator==(const NfprotoMatch&) const = default;
};
// ct state: bits of NF_CT_STATE_* (invalid 1, established 2, related 4, new 8).
inline constexpr uint32_t kCtInvalid = 1, kCtEstablished = 2, kCtRelated = 4, kCtNew = 8;
struct CtStateMatch {
  uint32_t states = kCtEstablished | kCtRelated;
  bool operator==(const CtStateMatch&) const = default;
};
struct MarkMatch {  // meta mark & mask == value (!= when negate)
  uint32_t mask = 0;
  uint32_t value = 0;
  bool negate = false;
  bool operator==(const MarkMatch&) const = default;
};
struct L4ProtoMatch {  // meta l4proto N
  uint8_t proto = 6;
  bool negate = false;
  bool operator==(const L4ProtoMatch&) const = default;
};
// ip saddr @set (family 6: ip6), `!=` when negate.
struct AddrSetMatch {
  int family = 4;
  Dir dir = Dir::kSource;
  std::string set;
  bool negate = false;
  bool operator==(const AddrSetMatch&) const = default;
};
// th dport lo-hi (lo == hi: a single port).
struct PortMatch {
  Dir dir = Dir::kDest;
  uint16_t lo = 0, hi = 0;
  bool negate = false;
  bool operator==(const PortMatch&) const = default;
};
struct PortSetMatch {  // th dport @set (a kPort set)
  Dir dir = Dir::kDest;
  std::string set;
  bool negate = false;
  bool operator==(const PortSetMatch&) const = default;
};
// Named ports: ip daddr . meta l4proto . th dport @set (a kIpv4ProtoPort/kIpv6ProtoPort set).
struct NamedPortSetMatch {
  int family = 4;
  Dir dir = Dir::kDest;
  std::string set;
  bool negate = false;
  bool operator==(const NamedPortSetMatch&) const = default;
};
// Anti-spoofing: iifname . ip saddr @set (a kIfnameIpv4/kIfnameIpv6 set).
struct IfaceAddrSetMatch {
  int family = 4;
  std::string set;
  bool negate = false;
  bool operator==(const IfaceAddrSetMatch&) const = default;
};
// icmp type T [code C] (family 6: icmpv6); needs the L4Proto match (1 or 58) before it.
struct IcmpMatch {
  int family = 4;
  uint8_t type = 0;
  int code = -1;  // -1: any
  bool negate = false;
  bool operator==(const IcmpMatch&) const = default;
};

// Statements.
struct MarkSet {  // meta mark set meta mark & ~clear | set
  uint32_t clear = 0;
  uint32_t set = 0;
  bool operator==(const MarkSet&) const = default;
};
struct Log {
  std::string prefix;
  bool operator==(const Log&) const = default;
};
struct Counter {
  bool operator==(const Counter&) const = default;
};
// `masquerade`: source NAT to the address of the outgoing interface (a nat chain at
// postrouting only; the kernel rejects it elsewhere). Ends the rule's evaluation like a verdict.
struct Masquerade {
  bool operator==(const Masquerade&) const = default;
};
// `notrack`: the packet skips connection tracking (hooks prerouting and output only, the
// kernel rejects it elsewhere; effective before conntrack, at raw priority -300).
struct Notrack {
  bool operator==(const Notrack&) const = default;
};

// Verdicts.
enum class VerdictKind { kAccept, kDrop, kReturn, kJump, kGoto };
struct Verdict {
  VerdictKind kind = VerdictKind::kAccept;
  std::string chain;  // jump/goto
  bool operator==(const Verdict&) const = default;
  std::string ToString() const;  // "accept", "jump fw-1a2b"
};
// iifname/oifname vmap @map: the verdict comes from the map; a miss continues with the next rule.
// With `via` (a data map ifname : <key of map>), two chained lookups in one rule: the interface's
// value in @via is the key looked up in @map ("iifname map @via vmap @map"; nft 1.0's parser
// cannot read that back, its printer shows it). A miss in either continues with the next rule.
struct IfnameVmap {
  IfnameVmap() = default;  // constructors keep `IfnameVmap{input, map}` warning-free
  IfnameVmap(bool input, std::string map, std::string via = "")
      : input(input), map(std::move(map)), via(std::move(via)) {}
  bool input = true;
  std::string map;
  std::string via;
  bool operator==(const IfnameVmap&) const = default;
};

// iifgroup/oifgroup vmap @map: dispatch by the interface's link group (IFLA_GROUP, `ip link set
// dev X group N`), a kDevgroup-keyed verdict map; a miss continues with the next rule.
struct GroupVmap {
  GroupVmap() = default;
  GroupVmap(bool input, std::string map) : input(input), map(std::move(map)) {}
  bool input = true;
  std::string map;
  bool operator==(const GroupVmap&) const = default;
};

using Expr = std::variant<IfnameMatch, NfprotoMatch, CtStateMatch, MarkMatch, L4ProtoMatch,
                          AddrSetMatch, PortMatch, PortSetMatch, NamedPortSetMatch,
                          IfaceAddrSetMatch, IcmpMatch, MarkSet, Log, Counter, Masquerade, Notrack,
                          Verdict, IfnameVmap, GroupVmap>;

struct Rule {
  std::vector<Expr> exprs;
  bool operator==(const Rule&) const = default;

  // Builders, so rules read like nft: Rule().Match(...).Then(Verdict{...}).
  Rule& Add(Expr e) {
    exprs.push_back(std::move(e));
    return *this;
  }
  // nft syntax without the comment: `ip saddr @s1 meta l4proto 6 th dport 80 accept`.
  std::string ToString() const;
};

// "cali:" + 16 hex digits of FNV-1a 64 of ToString(): stable across processes and builds, so a
// restarted felixd recognises its own rules.
std::string RuleTag(const Rule& rule);

// Shorthands.
inline Verdict Accept() { return {VerdictKind::kAccept, ""}; }
inline Verdict Drop() { return {VerdictKind::kDrop, ""}; }
inline Verdict Return() { return {VerdictKind::kReturn, ""}; }
inline Verdict Jump(std::string chain) { return {VerdictKind::kJump, std::move(chain)}; }
inline Verdict Goto(std::string chain) { return {VerdictKind::kGoto, std::move(chain)}; }

}  // namespace calico::felixd::nft
