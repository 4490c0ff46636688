#pragma once
// A test-only interpreter of a compiled table (nft::DesiredTable) over one packet, with
// nftables' semantics as far as felixd's vocabulary goes: base chain → jump/goto (a goto's
// return goes to the caller's caller) → return at a chain's end; verdict maps (and the
// two-level ifname → key → verdict dispatch when the layout uses it); meta mark statements;
// an address, named-port or ICMP match never matches a packet of the other family or protocol
// (nft's implicit dependencies), negated or not. Probes are new connections (ct state new).
// A rule naming a missing set or chain fails the test (the kernel would refuse the table).

#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "absl/strings/str_split.h"
#include "common/net/ip.h"
#include "felixd/nft/delta.h"
#include "felixd/policy/match.h"

namespace calico::felixd::policy_compiler::testing {

struct Probe {
  policy::Packet packet;
  std::string iif = "eth0";
  std::string oif = "eth0";
};

class Interpreter {
 public:
  // `link_groups`: each interface's link group (Dispatch::kByLinkGroup), as the compiler says.
  explicit Interpreter(const nft::DesiredTable& table,
                       const std::map<std::string, uint32_t>* link_groups = nullptr)
      : t_(table), groups_(link_groups) {}

  // true: accepted by the base chain `forward` (after `pre-dnat` and `prerouting`, when the table has them:
  // egress policy there; the packet's mark carries over, as in the kernel).
  bool Forward(const Probe& probe) { return Hook("forward", probe); }
  // Likewise through another base chain ("input": to the host, "output": from it).
  bool Hook(const std::string& base, const Probe& probe) {
    p_ = &probe;
    mark_ = 0;
    // Raw priority (-300) first: doNotTrack; its accept only ends that hook's chain.
    const char* raw = base == "output" ? "raw-output" : "raw-prerouting";
    if (t_.chains.contains(raw) && Run(raw, 0) == Result::kDrop) return false;
    // Hook order at prerouting: pre-dnat (priority -110), then prerouting (0).
    if (base != "output" && t_.chains.contains("pre-dnat") && Run("pre-dnat", 0) == Result::kDrop) {
      return false;
    }
    if (base != "output" && t_.chains.contains("prerouting") && Run("prerouting", 0) == Result::kDrop) {
      return false;
    }
    return Run(base, 0) != Result::kDrop;  // base chains: policy accept
  }

 private:
  enum class Result { kAccept, kDrop, kContinue };
  // One expression's outcome.
  enum class Step { kNoMatch, kNext, kNextRule, kReturn, kAccept, kDrop };

  const nft::DesiredSet& SetNamed(const std::string& name) {
    auto it = t_.sets.find(name);
    INFO("set " << name);
    REQUIRE(it != t_.sets.end());
    return it->second;
  }

  // kContinue: fell off the end of the chain, or returned.
  Result Run(const std::string& chain, int depth) {
    REQUIRE(depth < 32);
    auto it = t_.chains.find(chain);
    INFO("chain " << chain);
    REQUIRE(it != t_.chains.end());
    for (const nft::Rule& rule : it->second.rules) {
      for (const nft::Expr& e : rule.exprs) {
        Step s = std::visit([&](const auto& x) { return Eval(x, depth); }, e);
        if (s == Step::kNext) continue;
        if (s == Step::kNoMatch || s == Step::kNextRule) break;
        if (s == Step::kReturn) return Result::kContinue;
        return s == Step::kAccept ? Result::kAccept : Result::kDrop;
      }
    }
    return Result::kContinue;
  }

  // A verdict's effect on the chain that issued it.
  Step Apply(const std::string& v, int depth) {
    if (v == "accept") return Step::kAccept;
    if (v == "drop") return Step::kDrop;
    if (v == "return") return Step::kReturn;
    std::pair<std::string, std::string> kv = absl::StrSplit(v, ' ');
    REQUIRE((kv.first == "jump" || kv.first == "goto"));
    Result r = Run(kv.second, depth + 1);
    if (r == Result::kAccept) return Step::kAccept;
    if (r == Result::kDrop) return Step::kDrop;
    return kv.first == "goto" ? Step::kReturn : Step::kNextRule;
  }
  static Step If(bool b) { return b ? Step::kNext : Step::kNoMatch; }

  bool Family(int f) const { return p_->packet.src.family == f; }
  const net::IpAddress& Addr(nft::Dir d) const {
    return d == nft::Dir::kSource ? p_->packet.src : p_->packet.dst;
  }
  int Port(nft::Dir d) const { return d == nft::Dir::kSource ? p_->packet.src_port : p_->packet.dst_port; }
  bool HasPorts() const {
    int pr = p_->packet.protocol;
    return pr == 6 || pr == 17 || pr == 132 || pr == 136;
  }

  bool InAddrSet(const std::string& set, const net::IpAddress& ip) {
    for (const auto& [k, _] : SetNamed(set).elements) {
      std::optional<net::Prefix> pfx = net::ParseCidrOrIp(k);
      REQUIRE(pfx);
      if (net::Contains(*pfx, ip)) return true;
    }
    return false;
  }
  bool InPortSet(const std::string& set, int port) {
    for (const auto& [k, _] : SetNamed(set).elements) {
      std::pair<std::string, std::string> r = absl::StrSplit(k, '-');
      int lo = std::stoi(r.first), hi = r.second.empty() ? lo : std::stoi(r.second);
      if (port >= lo && port <= hi) return true;
    }
    return false;
  }

  // Matches: kNext or kNoMatch. Statements: kNext. Verdicts: what they do to this chain.
  Step Eval(const nft::IfnameMatch& m, int) {
    const std::string& n = m.input ? p_->iif : p_->oif;
    bool eq = m.prefix ? n.rfind(m.name, 0) == 0 : n == m.name;
    return If(eq != m.negate);
  }
  Step Eval(const nft::NfprotoMatch& m, int) { return If(Family(m.family)); }
  Step Eval(const nft::CtStateMatch& m, int) { return If(m.states & nft::kCtNew); }
  Step Eval(const nft::MarkMatch& m, int) { return If(((mark_ & m.mask) == m.value) != m.negate); }
  Step Eval(const nft::L4ProtoMatch& m, int) { return If((p_->packet.protocol == m.proto) != m.negate); }
  Step Eval(const nft::AddrSetMatch& m, int) {
    return If(Family(m.family) && InAddrSet(m.set, Addr(m.dir)) != m.negate);
  }
  Step Eval(const nft::PortMatch& m, int) {
    int port = Port(m.dir);
    return If(HasPorts() && (port >= m.lo && port <= m.hi) != m.negate);
  }
  Step Eval(const nft::PortSetMatch& m, int) {
    return If(HasPorts() && InPortSet(m.set, Port(m.dir)) != m.negate);
  }
  Step Eval(const nft::NamedPortSetMatch& m, int) {
    if (!Family(m.family) || !HasPorts()) return Step::kNoMatch;
    std::string key = net::FormatIp(Addr(m.dir)) + " . " + std::to_string(p_->packet.protocol) +
                      " . " + std::to_string(Port(m.dir));
    return If(SetNamed(m.set).elements.contains(key) != m.negate);
  }
  Step Eval(const nft::IfaceAddrSetMatch& m, int) {
    if (!Family(m.family)) return Step::kNoMatch;
    std::string key = p_->iif + " . " + net::FormatIp(p_->packet.src);
    return If(SetNamed(m.set).elements.contains(key) != m.negate);
  }
  Step Eval(const nft::IcmpMatch& m, int) {
    const policy::Packet& p = p_->packet;
    if (p.protocol != (m.family == 4 ? 1 : 58) || !p.icmp_type) return Step::kNoMatch;
    if ((*p.icmp_type == m.type) == m.negate) return Step::kNoMatch;
    if (m.code >= 0 && (!p.icmp_code || (*p.icmp_code == m.code) == m.negate)) return Step::kNoMatch;
    return Step::kNext;
  }
  Step Eval(const nft::MarkSet& m, int) {
    mark_ = (mark_ & ~m.clear) | m.set;
    return Step::kNext;
  }
  Step Eval(const nft::Log&, int) { return Step::kNext; }
  Step Eval(const nft::Counter&, int) { return Step::kNext; }
  // The kernel's masq expression NATs and returns NF_ACCEPT (nat chains only; policy has none).
  Step Eval(const nft::Masquerade&, int depth) { return Apply("accept", depth); }
  Step Eval(const nft::Notrack&, int) { return Step::kNext; }
  Step Eval(const nft::Verdict& v, int depth) { return Apply(v.ToString(), depth); }
  // iifgroup/oifgroup: the interface's link group is the key; no group (0) misses.
  Step Eval(const nft::GroupVmap& m, int depth) {
    const std::string& ifname = m.input ? p_->iif : p_->oif;
    uint32_t group = 0;
    if (groups_ != nullptr) {
      auto g = groups_->find(ifname);
      if (g != groups_->end()) group = g->second;
    }
    const nft::Elements& map = SetNamed(m.map).elements;
    auto it = map.find(std::to_string(group));
    if (it == map.end()) return Step::kNextRule;
    return Apply(it->second, depth);
  }
  // IfnameVmap (a template so that it follows felixd/nft's two-level `via` when it has one).
  template <typename Vmap>
  Step Eval(const Vmap& m, int depth) {
    std::string key = m.input ? p_->iif : p_->oif;
    if constexpr (requires { m.via; }) {
      if (!m.via.empty()) {
        const nft::Elements& via = SetNamed(m.via).elements;
        auto it = via.find(key);
        if (it == via.end()) return Step::kNextRule;
        key = it->second;
      }
    }
    const nft::Elements& map = SetNamed(m.map).elements;
    auto it = map.find(key);
    if (it == map.end()) return Step::kNextRule;  // a miss: the next rule
    return Apply(it->second, depth);
  }

  const nft::DesiredTable& t_;
  const std::map<std::string, uint32_t>* groups_ = nullptr;
  const Probe* p_ = nullptr;
  uint32_t mark_ = 0;
};

}  // namespace calico::felixd::policy_compiler::testing
