#include "felixd/nft/rule.h"

#include <cstdio>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace calico::felixd::nft {
namespace {

std::string Addr(int family, Dir dir) {
  return absl::StrCat(family == 6 ? "ip6 " : "ip ", dir == Dir::kSource ? "saddr" : "daddr");
}
std::string Port(Dir dir) { return dir == Dir::kSource ? "th sport" : "th dport"; }
const char* Neg(bool negate) { return negate ? "!= " : ""; }
std::string Hex(uint32_t v) { return absl::StrFormat("0x%08x", v); }

struct Printer {
  std::string operator()(const IfnameMatch& m) const {
    return absl::StrCat(m.input ? "iifname " : "oifname ", Neg(m.negate), "\"", m.name,
                        m.prefix ? "*" : "", "\"");
  }
  std::string operator()(const NfprotoMatch& m) const {
    return m.family == 6 ? "meta nfproto ipv6" : "meta nfproto ipv4";
  }
  std::string operator()(const CtStateMatch& m) const {
    std::string out = "ct state ";
    const char* sep = "";
    for (auto [bit, name] : {std::pair{kCtInvalid, "invalid"}, {kCtEstablished, "established"},
                             {kCtRelated, "related"}, {kCtNew, "new"}}) {
      if (m.states & bit) {
        absl::StrAppend(&out, sep, name);
        sep = ",";
      }
    }
    return out;
  }
  std::string operator()(const MarkMatch& m) const {
    return absl::StrCat("meta mark & ", Hex(m.mask), m.negate ? " != " : " == ", Hex(m.value));
  }
  std::string operator()(const L4ProtoMatch& m) const {
    return absl::StrCat("meta l4proto ", Neg(m.negate), m.proto);
  }
  std::string operator()(const AddrSetMatch& m) const {
    return absl::StrCat(Addr(m.family, m.dir), " ", Neg(m.negate), "@", m.set);
  }
  std::string operator()(const PortMatch& m) const {
    if (m.lo == m.hi) return absl::StrCat(Port(m.dir), " ", Neg(m.negate), m.lo);
    return absl::StrCat(Port(m.dir), " ", Neg(m.negate), m.lo, "-", m.hi);
  }
  std::string operator()(const PortSetMatch& m) const {
    return absl::StrCat(Port(m.dir), " ", Neg(m.negate), "@", m.set);
  }
  std::string operator()(const NamedPortSetMatch& m) const {
    return absl::StrCat(Addr(m.family, m.dir), " . meta l4proto . ", Port(m.dir), " ",
                        Neg(m.negate), "@", m.set);
  }
  std::string operator()(const IfaceAddrSetMatch& m) const {
    return absl::StrCat("iifname . ", Addr(m.family, Dir::kSource), " ", Neg(m.negate), "@",
                        m.set);
  }
  std::string operator()(const IcmpMatch& m) const {
    const char* icmp = m.family == 6 ? "icmpv6" : "icmp";
    std::string out = absl::StrCat(icmp, " type ", Neg(m.negate), m.type);
    if (m.code >= 0) absl::StrAppend(&out, " ", icmp, " code ", Neg(m.negate), m.code);
    return out;
  }
  std::string operator()(const MarkSet& s) const {
    std::string out = "meta mark set meta mark";
    if (s.clear) absl::StrAppend(&out, " & ", Hex(~s.clear));
    if (s.set) absl::StrAppend(&out, " | ", Hex(s.set));
    return out;
  }
  std::string operator()(const Log& s) const {
    return absl::StrCat("log prefix \"", s.prefix, "\"");
  }
  std::string operator()(const Counter&) const { return "counter"; }
  std::string operator()(const Masquerade&) const { return "masquerade"; }
  std::string operator()(const Notrack&) const { return "notrack"; }
  std::string operator()(const Verdict& v) const { return v.ToString(); }
  std::string operator()(const GroupVmap& v) const {
    return absl::StrCat(v.input ? "iifgroup" : "oifgroup", " vmap @", v.map);
  }
  std::string operator()(const IfnameVmap& v) const {
    return absl::StrCat(v.input ? "iifname" : "oifname", v.via.empty() ? "" : " map @", v.via,
                        " vmap @", v.map);
  }
};

}  // namespace

std::string Verdict::ToString() const {
  switch (kind) {
    case VerdictKind::kAccept:
      return "accept";
    case VerdictKind::kDrop:
      return "drop";
    case VerdictKind::kReturn:
      return "return";
    case VerdictKind::kJump:
      return absl::StrCat("jump ", chain);
    case VerdictKind::kGoto:
      return absl::StrCat("goto ", chain);
  }
  return "?";
}

std::string Rule::ToString() const {
  std::string out;
  for (const Expr& e : exprs) {
    if (!out.empty()) out += ' ';
    out += std::visit(Printer{}, e);
  }
  return out;
}

std::string RuleTag(const Rule& rule) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : rule.ToString()) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return absl::StrFormat("cali:%016x", h);
}

}  // namespace calico::felixd::nft
