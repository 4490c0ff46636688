#include "felixd/nft/mnl_nftables.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/errno_status.h"
#include "common/base/status_macros.h"
#include "felixd/nft/elements.h"

namespace calico::felixd::nft {
namespace {

constexpr int kReceiveTimeoutSeconds = 30;
constexpr size_t kMaxMessage = 64 * 1024;    // room reserved per batch message
constexpr size_t kElementsPerMessage = 256;  // keeps each NEWSETELEM well under kMaxMessage
constexpr int kRecvBuffer = 8 * 1024 * 1024;

template <typename Fn>
absl::Status InNetns(const std::string& path, Fn&& fn) {
  if (path.empty()) return fn();
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) return ErrnoError(errno, absl::StrCat("open ", path));
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int e = errno;
    close(target);
    return ErrnoError(e, "open /proc/thread-self/ns/net");
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int e = errno;
    close(target);
    close(self);
    return ErrnoError(e, absl::StrCat("setns ", path));
  }
  close(target);
  absl::Status status = fn();
  if (setns(self, CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "felixd/nft: cannot return to the original network namespace\n");
    std::abort();
  }
  close(self);
  return status;
}

// ---- Rule compilation ----

struct Compiler {
  nftnl_rule* rule;

  nftnl_expr* Add(const char* name) {
    nftnl_expr* e = nftnl_expr_alloc(name);
    nftnl_rule_add_expr(rule, e);
    return e;
  }
  void MetaLoad(uint32_t key, uint32_t dreg) {
    nftnl_expr* e = Add("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
  }
  void Payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
    nftnl_expr* e = Add("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
  }
  void Cmp(uint32_t op, const void* data, uint32_t len, uint32_t sreg = NFT_REG_1) {
    nftnl_expr* e = Add("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  }
  void Bitwise(uint32_t mask, uint32_t xor_value) {
    nftnl_expr* e = Add("bitwise");
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 4);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &xor_value, 4);
  }
  // dreg: NFT_REG_VERDICT for a verdict map, a data register for a data map, or none (-1).
  void Lookup(const std::string& set, uint32_t sreg, bool negate, bool verdict,
              int data_dreg = -1) {
    nftnl_expr* e = Add("lookup");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
    if (verdict) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
    if (data_dreg >= 0) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, uint32_t(data_dreg));
    if (negate) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  }
  void Nfproto(int family) {
    uint8_t p = family == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
    MetaLoad(NFT_META_NFPROTO, NFT_REG_1);
    Cmp(NFT_CMP_EQ, &p, 1);
  }
  void Addr(int family, Dir dir, uint32_t dreg) {
    uint32_t off = family == 6 ? (dir == Dir::kSource ? 8 : 24) : (dir == Dir::kSource ? 12 : 16);
    Payload(NFT_PAYLOAD_NETWORK_HEADER, off, family == 6 ? 16 : 4, dreg);
  }
  void PortLoad(Dir dir, uint32_t dreg) {
    Payload(NFT_PAYLOAD_TRANSPORT_HEADER, dir == Dir::kSource ? 0 : 2, 2, dreg);
  }
  static uint32_t Op(bool negate) { return negate ? NFT_CMP_NEQ : NFT_CMP_EQ; }

  void operator()(const IfnameMatch& m) {
    MetaLoad(m.input ? NFT_META_IIFNAME : NFT_META_OIFNAME, NFT_REG_1);
    char name[16] = {};
    std::memcpy(name, m.name.data(), std::min<size_t>(m.name.size(), 15));
    Cmp(Op(m.negate), name, m.prefix ? uint32_t(m.name.size()) : 16);
  }
  void operator()(const NfprotoMatch& m) { Nfproto(m.family); }
  void operator()(const CtStateMatch& m) {
    nftnl_expr* e = Add("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    Bitwise(m.states, 0);
    uint32_t zero = 0;
    Cmp(NFT_CMP_NEQ, &zero, 4);
  }
  void operator()(const MarkMatch& m) {
    MetaLoad(NFT_META_MARK, NFT_REG_1);
    Bitwise(m.mask, 0);
    Cmp(Op(m.negate), &m.value, 4);
  }
  void operator()(const L4ProtoMatch& m) {
    MetaLoad(NFT_META_L4PROTO, NFT_REG_1);
    Cmp(Op(m.negate), &m.proto, 1);
  }
  void operator()(const AddrSetMatch& m) {
    Nfproto(m.family);
    Addr(m.family, m.dir, NFT_REG_1);
    Lookup(m.set, NFT_REG_1, m.negate, false);
  }
  void operator()(const PortMatch& m) {
    PortLoad(m.dir, NFT_REG_1);
    uint8_t lo[2] = {uint8_t(m.lo >> 8), uint8_t(m.lo)};
    uint8_t hi[2] = {uint8_t(m.hi >> 8), uint8_t(m.hi)};
    if (m.lo == m.hi) {
      Cmp(Op(m.negate), lo, 2);
      return;
    }
    nftnl_expr* e = Add("range");
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_OP, m.negate ? NFT_RANGE_NEQ : NFT_RANGE_EQ);
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_FROM_DATA, lo, 2);
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_TO_DATA, hi, 2);
  }
  void operator()(const PortSetMatch& m) {
    PortLoad(m.dir, NFT_REG_1);
    Lookup(m.set, NFT_REG_1, m.negate, false);
  }
  void operator()(const NamedPortSetMatch& m) {
    // addr . l4proto . port: each field in its own 32-bit register (padded), as nft lays out
    // concatenations.
    Nfproto(m.family);
    uint32_t r = NFT_REG32_00;
    Addr(m.family, m.dir, r);
    r += m.family == 6 ? 4 : 1;
    MetaLoad(NFT_META_L4PROTO, r);
    PortLoad(m.dir, r + 1);
    Lookup(m.set, NFT_REG32_00, m.negate, false);
  }
  void operator()(const IfaceAddrSetMatch& m) {
    Nfproto(m.family);
    MetaLoad(NFT_META_IIFNAME, NFT_REG32_00);
    Addr(m.family, Dir::kSource, NFT_REG32_04);
    Lookup(m.set, NFT_REG32_00, m.negate, false);
  }
  void operator()(const IcmpMatch& m) {
    Nfproto(m.family);
    Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1);
    Cmp(Op(m.negate), &m.type, 1);
    if (m.code >= 0) {
      uint8_t code = uint8_t(m.code);
      Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 1, 1, NFT_REG_1);
      Cmp(Op(m.negate), &code, 1);
    }
  }
  void operator()(const MarkSet& s) {
    MetaLoad(NFT_META_MARK, NFT_REG_1);
    Bitwise(~(s.clear | s.set), s.set);
    nftnl_expr* e = Add("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
  }
  void operator()(const Log& s) {
    nftnl_expr* e = Add("log");
    nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, s.prefix.c_str());
  }
  void operator()(const Counter&) { Add("counter"); }
  void operator()(const Masquerade&) { Add("masq"); }
  void operator()(const Notrack&) { Add("notrack"); }
  void operator()(const Verdict& v) {
    nftnl_expr* e = Add("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    switch (v.kind) {
      case VerdictKind::kAccept:
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
        break;
      case VerdictKind::kDrop:
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
        break;
      case VerdictKind::kReturn:
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, uint32_t(NFT_RETURN));
        break;
      case VerdictKind::kJump:
      case VerdictKind::kGoto:
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT,
                           uint32_t(v.kind == VerdictKind::kJump ? NFT_JUMP : NFT_GOTO));
        nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, v.chain.c_str());
        break;
    }
  }
  void operator()(const GroupVmap& v) {
    MetaLoad(v.input ? NFT_META_IIFGROUP : NFT_META_OIFGROUP, NFT_REG_1);
    Lookup(v.map, NFT_REG_1, false, true);
  }
  void operator()(const IfnameVmap& v) {
    MetaLoad(v.input ? NFT_META_IIFNAME : NFT_META_OIFNAME, NFT_REG_1);
    if (!v.via.empty()) Lookup(v.via, NFT_REG_1, false, false, NFT_REG_1);
    Lookup(v.map, NFT_REG_1, false, true);
  }
};

// "jump c" → (NFT_JUMP, c); "drop" → (NF_DROP, "").
std::optional<std::pair<int32_t, std::string>> ParseVerdict(const std::string& v) {
  if (v == "accept") return std::pair{int32_t(NF_ACCEPT), std::string()};
  if (v == "drop") return std::pair{int32_t(NF_DROP), std::string()};
  if (v == "return") return std::pair{int32_t(NFT_RETURN), std::string()};
  if (v.rfind("jump ", 0) == 0) return std::pair{int32_t(NFT_JUMP), v.substr(5)};
  if (v.rfind("goto ", 0) == 0) return std::pair{int32_t(NFT_GOTO), v.substr(5)};
  return std::nullopt;
}

std::string FormatVerdict(int32_t code, const char* chain) {
  switch (code) {
    case NF_ACCEPT:
      return "accept";
    case NF_DROP:
      return "drop";
    case NFT_RETURN:
      return "return";
    case NFT_JUMP:
      return absl::StrCat("jump ", chain ? chain : "");
    case NFT_GOTO:
      return absl::StrCat("goto ", chain ? chain : "");
    default:
      return absl::StrCat("verdict ", code);
  }
}

// ---- Batch ----

class Batch {
 public:
  Batch(uint32_t& seq, const std::string& table) : table(table), seq_(seq) { buf_.resize(1 << 20); }
  const std::string& table;

  char* Next() {
    if (buf_.size() - len_ < kMaxMessage) buf_.resize(buf_.size() * 2 + kMaxMessage);
    return buf_.data() + len_;
  }
  uint32_t NextSeq() { return seq_++; }
  // Records a message built at Next() and what it was, for error messages.
  void Done(nlmsghdr* nlh, std::string what) {
    len_ += NLMSG_ALIGN(nlh->nlmsg_len);
    what_[nlh->nlmsg_seq] = std::move(what);
    last_ = nlh;
  }
  nlmsghdr* last() { return last_; }
  const char* data() const { return buf_.data(); }
  size_t size() const { return len_; }
  std::string What(uint32_t seq) const {
    auto it = what_.find(seq);
    return it == what_.end() ? "nftables transaction" : it->second;
  }

 private:
  std::vector<char> buf_;
  size_t len_ = 0;
  uint32_t& seq_;
  std::map<uint32_t, std::string> what_;
  nlmsghdr* last_ = nullptr;
};

template <typename T, void (*Free)(const T*)>
struct Owned {
  T* p;
  explicit Owned(T* p) : p(p) {}
  ~Owned() { Free(p); }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
};
using OwnedTable = Owned<nftnl_table, nftnl_table_free>;
using OwnedChain = Owned<nftnl_chain, nftnl_chain_free>;
using OwnedRule = Owned<nftnl_rule, nftnl_rule_free>;
using OwnedSet = Owned<nftnl_set, nftnl_set_free>;

nftnl_set* NewSet(const std::string& table, const std::string& name) {
  nftnl_set* s = nftnl_set_alloc();
  nftnl_set_set_str(s, NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s, NFTNL_SET_NAME, name.c_str());
  nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
  return s;
}

nftnl_chain* NewChain(const std::string& table, const std::string& name) {
  nftnl_chain* c = nftnl_chain_alloc();
  nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name.c_str());
  nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
  return c;
}

uint32_t HookNum(Hook hook) {
  switch (hook) {
    case Hook::kInput:
      return NF_INET_LOCAL_IN;
    case Hook::kOutput:
      return NF_INET_LOCAL_OUT;
    case Hook::kPrerouting:
      return NF_INET_PRE_ROUTING;
    case Hook::kPostrouting:
      return NF_INET_POST_ROUTING;
    case Hook::kForward:
    case Hook::kNone:
      break;
  }
  return NF_INET_FORWARD;
}

void AddChainMsg(Batch& b, const Chain& chain) {
  OwnedChain c(NewChain(b.table, chain.name));
  if (chain.base) {
    nftnl_chain_set_u32(c.p, NFTNL_CHAIN_HOOKNUM, HookNum(chain.base->hook));
    nftnl_chain_set_s32(c.p, NFTNL_CHAIN_PRIO, chain.base->priority);
    nftnl_chain_set_str(c.p, NFTNL_CHAIN_TYPE,
                        chain.base->type == ChainType::kNat ? "nat" : "filter");
    nftnl_chain_set_u32(c.p, NFTNL_CHAIN_POLICY, chain.base->policy_accept ? NF_ACCEPT : NF_DROP);
  }
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(b.Next(), NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE,
                                        b.NextSeq());
  nftnl_chain_nlmsg_build_payload(nlh, c.p);
  b.Done(nlh, absl::StrCat("NFT_MSG_NEWCHAIN ", chain.name));
}

void FlushChainMsg(Batch& b, const std::string& chain) {
  OwnedRule r(nftnl_rule_alloc());
  nftnl_rule_set_str(r.p, NFTNL_RULE_TABLE, b.table.c_str());
  nftnl_rule_set_str(r.p, NFTNL_RULE_CHAIN, chain.c_str());
  nftnl_rule_set_u32(r.p, NFTNL_RULE_FAMILY, NFPROTO_INET);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(b.Next(), NFT_MSG_DELRULE, NFPROTO_INET, 0, b.NextSeq());
  nftnl_rule_nlmsg_build_payload(nlh, r.p);
  b.Done(nlh, absl::StrCat("NFT_MSG_DELRULE (flush) ", chain));
}

void AddRuleMsg(Batch& b, const std::string& chain, const Rule& rule) {
  OwnedRule r(nftnl_rule_alloc());
  nftnl_rule_set_str(r.p, NFTNL_RULE_TABLE, b.table.c_str());
  nftnl_rule_set_str(r.p, NFTNL_RULE_CHAIN, chain.c_str());
  nftnl_rule_set_u32(r.p, NFTNL_RULE_FAMILY, NFPROTO_INET);
  Compiler compiler{r.p};
  for (const Expr& e : rule.exprs) std::visit(compiler, e);
  std::string tag = RuleTag(rule);
  nftnl_udata_buf* ud = nftnl_udata_buf_alloc(64);
  nftnl_udata_put_strz(ud, NFTNL_UDATA_RULE_COMMENT, tag.c_str());
  nftnl_rule_set_data(r.p, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
  nftnl_udata_buf_free(ud);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(b.Next(), NFT_MSG_NEWRULE, NFPROTO_INET,
                                        NLM_F_CREATE | NLM_F_APPEND, b.NextSeq());
  nftnl_rule_nlmsg_build_payload(nlh, r.p);
  b.Done(nlh, absl::StrCat("NFT_MSG_NEWRULE ", chain, " ", rule.ToString()));
}

// Elements of one set, in messages of up to kElementsPerMessage.
absl::Status ElementMsgs(Batch& b, const SetSpec& spec, const std::vector<const ElementChange*>& els,
                         bool add) {
  for (size_t i = 0; i < els.size(); i += kElementsPerMessage) {
    OwnedSet s(NewSet(b.table, spec.name));
    std::string first;
    for (size_t j = i; j < els.size() && j < i + kElementsPerMessage; ++j) {
      const ElementChange& e = *els[j];
      if (first.empty()) first = e.key;
      std::vector<std::pair<std::string, bool>> keys;  // bytes, interval end
      if (spec.interval) {
        ASSIGN_OR_RETURN(IntervalBytes iv, EncodeInterval(spec.key, e.key));
        keys.emplace_back(iv.start, false);
        if (iv.end) keys.emplace_back(*iv.end, true);
      } else {
        ASSIGN_OR_RETURN(std::string bytes, EncodeKey(spec.key, e.key));
        keys.emplace_back(bytes, false);
      }
      for (const auto& [bytes, is_end] : keys) {
        nftnl_set_elem* el = nftnl_set_elem_alloc();
        nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, bytes.data(), uint32_t(bytes.size()));
        if (is_end) nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
        if (spec.verdict_map && add) {
          auto v = ParseVerdict(e.verdict);
          if (!v) {
            nftnl_set_elem_free(el);
            return absl::InvalidArgumentError(
                absl::StrCat("map ", spec.name, " element ", e.key, ": verdict \"", e.verdict, "\""));
          }
          nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, uint32_t(v->first));
          if (!v->second.empty()) nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, v->second.c_str());
        }
        if (spec.data && add) {
          auto value = EncodeKey(*spec.data, e.verdict);
          if (!value.ok()) {
            nftnl_set_elem_free(el);
            return absl::InvalidArgumentError(absl::StrCat("map ", spec.name, " element ", e.key,
                                                           ": value \"", e.verdict, "\""));
          }
          nftnl_set_elem_set(el, NFTNL_SET_ELEM_DATA, value->data(), uint32_t(value->size()));
        }
        nftnl_set_elem_add(s.p, el);
      }
    }
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(b.Next(), add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
                                          NFPROTO_INET, add ? NLM_F_CREATE : 0, b.NextSeq());
    nftnl_set_elems_nlmsg_build_payload(nlh, s.p);
    size_t n = std::min(els.size() - i, kElementsPerMessage);
    b.Done(nlh, absl::StrCat(add ? "NFT_MSG_NEWSETELEM " : "NFT_MSG_DELSETELEM ", spec.name, " ",
                             first, n > 1 ? absl::StrCat(" (+", n - 1, " more)") : ""));
  }
  return absl::OkStatus();
}

std::optional<BaseChain> ChainBase(nftnl_chain* c) {
  if (!nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM)) return std::nullopt;
  BaseChain b;
  switch (nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM)) {
    case NF_INET_LOCAL_IN:
      b.hook = Hook::kInput;
      break;
    case NF_INET_LOCAL_OUT:
      b.hook = Hook::kOutput;
      break;
    case NF_INET_PRE_ROUTING:
      b.hook = Hook::kPrerouting;
      break;
    case NF_INET_POST_ROUTING:
      b.hook = Hook::kPostrouting;
      break;
    case NF_INET_FORWARD:
      b.hook = Hook::kForward;
      break;
    default:
      b.hook = Hook::kNone;
  }
  // felixd writes filter and nat chains only; another type (route) reads as hook kNone, so it
  // equals no desired chain and shows as drift, like an unknown hook.
  const char* type =
      nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE) ? nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE) : "filter";
  if (std::strcmp(type, "nat") == 0) b.type = ChainType::kNat;
  else if (std::strcmp(type, "filter") != 0) b.hook = Hook::kNone;
  b.priority = nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO);
  b.policy_accept = !nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY) ||
                    nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) == NF_ACCEPT;
  return b;
}

std::string RuleComment(nftnl_rule* r) {
  if (!nftnl_rule_is_set(r, NFTNL_RULE_USERDATA)) return "";
  uint32_t len = 0;
  const auto* data = static_cast<const uint8_t*>(nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len));
  for (uint32_t off = 0; off + 2 <= len;) {
    uint8_t type = data[off], l = data[off + 1];
    if (off + 2 + l > len) break;
    if (type == NFTNL_UDATA_RULE_COMMENT) {
      const char* s = reinterpret_cast<const char*>(data + off + 2);
      return std::string(s, strnlen(s, l));
    }
    off += 2 + l;
  }
  return "";
}

}  // namespace

MnlNftables::MnlNftables(mnl_socket* sock, std::string table)
    : table_(std::move(table)),
      sock_(sock),
      portid_(mnl_socket_get_portid(sock)),
      seq_(uint32_t(time(nullptr))) {}

MnlNftables::~MnlNftables() { mnl_socket_close(sock_); }

absl::StatusOr<std::unique_ptr<MnlNftables>> MnlNftables::Open(const std::string& netns_path,
                                                               const std::string& table) {
  mnl_socket* sock = nullptr;
  RETURN_IF_ERROR(InNetns(netns_path, [&]() -> absl::Status {
    sock = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (!sock) return ErrnoError(errno, "socket(NETLINK_NETFILTER)");
    if (mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) < 0) {
      int e = errno;
      mnl_socket_close(sock);
      sock = nullptr;
      return ErrnoError(e, "bind NETLINK_NETFILTER");
    }
    return absl::OkStatus();
  }));
  int fd = mnl_socket_get_fd(sock);
  timeval tv{kReceiveTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  // Failures of a large batch are all answered: room for them (best effort without CAP_NET_ADMIN).
  int rcv = kRecvBuffer;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  }
  int ext_ack = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &ext_ack, sizeof(ext_ack));
  return std::unique_ptr<MnlNftables>(new MnlNftables(sock, table));
}

absl::Status MnlNftables::Apply(const Delta& delta) {
  if (delta.empty()) return absl::OkStatus();
  // Specs of every set the delta touches, before building anything.
  std::map<std::string, SetSpec> specs;
  for (const SetSpec& s : delta.add_sets) specs[s.name] = s;
  for (const auto* list : {&delta.delete_elements, &delta.add_elements}) {
    for (const ElementChange& e : *list) {
      if (specs.contains(e.set)) continue;
      ASSIGN_OR_RETURN(specs[e.set], SpecOf(e.set));
    }
  }
  // A set deleted and re-added in this delta: its elements to delete are gone with it.
  std::set<std::string> deleted(delta.delete_sets.begin(), delta.delete_sets.end());

  Batch b(seq_, table_);
  uint32_t begin_seq = b.NextSeq();
  nlmsghdr* begin = nftnl_batch_begin(b.Next(), begin_seq);
  b.Done(begin, "NFNL_MSG_BATCH_BEGIN");
  if (delta.add_table) {
    OwnedTable t(nftnl_table_alloc());
    nftnl_table_set_str(t.p, NFTNL_TABLE_NAME, table_.c_str());
    nftnl_table_set_u32(t.p, NFTNL_TABLE_FAMILY, NFPROTO_INET);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(b.Next(), NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE,
                                          b.NextSeq());
    nftnl_table_nlmsg_build_payload(nlh, t.p);
    b.Done(nlh, absl::StrCat("NFT_MSG_NEWTABLE inet ", table_));
  }
  for (const Chain& c : delta.put_chains) AddChainMsg(b, c);
  for (const Chain& c : delta.put_chains) FlushChainMsg(b, c.name);

  auto group = [](const std::vector<ElementChange>& list) {
    std::map<std::string, std::vector<const ElementChange*>> by_set;
    for (const ElementChange& e : list) by_set[e.set].push_back(&e);
    return by_set;
  };
  for (const auto& [set, els] : group(delta.delete_elements)) {
    if (!deleted.contains(set)) RETURN_IF_ERROR(ElementMsgs(b, specs.at(set), els, false));
  }
  for (const std::string& c : delta.delete_chains) FlushChainMsg(b, c);
  for (const std::string& name : delta.delete_chains) {
    OwnedChain c(NewChain(table_, name));
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(b.Next(), NFT_MSG_DELCHAIN, NFPROTO_INET, 0, b.NextSeq());
    nftnl_chain_nlmsg_build_payload(nlh, c.p);
    b.Done(nlh, absl::StrCat("NFT_MSG_DELCHAIN ", name));
  }
  for (const std::string& name : delta.delete_sets) {
    OwnedSet s(NewSet(table_, name));
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(b.Next(), NFT_MSG_DELSET, NFPROTO_INET, 0, b.NextSeq());
    nftnl_set_nlmsg_build_payload(nlh, s.p);
    b.Done(nlh, absl::StrCat("NFT_MSG_DELSET ", name));
  }
  uint32_t set_id = 1;
  for (const SetSpec& spec : delta.add_sets) {
    OwnedSet s(NewSet(table_, spec.name));
    uint32_t flags = 0;
    if (spec.verdict_map || spec.data) flags |= NFT_SET_MAP;
    if (spec.interval) flags |= NFT_SET_INTERVAL;
    nftnl_set_set_u32(s.p, NFTNL_SET_FLAGS, flags);
    nftnl_set_set_u32(s.p, NFTNL_SET_KEY_TYPE, NftKeyType(spec.key));
    nftnl_set_set_u32(s.p, NFTNL_SET_KEY_LEN, uint32_t(KeyLength(spec.key)));
    if (spec.verdict_map) {
      nftnl_set_set_u32(s.p, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
      nftnl_set_set_u32(s.p, NFTNL_SET_DATA_LEN, 0);
    } else if (spec.data) {
      nftnl_set_set_u32(s.p, NFTNL_SET_DATA_TYPE, NftKeyType(*spec.data));
      nftnl_set_set_u32(s.p, NFTNL_SET_DATA_LEN, uint32_t(KeyLength(*spec.data)));
    }
    nftnl_set_set_u32(s.p, NFTNL_SET_ID, set_id++);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(b.Next(), NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE,
                                          b.NextSeq());
    nftnl_set_nlmsg_build_payload(nlh, s.p);
    b.Done(nlh, absl::StrCat("NFT_MSG_NEWSET ", spec.name));
  }
  for (const auto& [set, els] : group(delta.add_elements)) {
    RETURN_IF_ERROR(ElementMsgs(b, specs.at(set), els, true));
  }
  for (const Chain& c : delta.put_chains) {
    for (const Rule& r : c.rules) AddRuleMsg(b, c.name, r);
  }
  nlmsghdr* last = b.last();
  last->nlmsg_flags |= NLM_F_ACK;
  uint32_t last_seq = last->nlmsg_seq;
  nlmsghdr* end = nftnl_batch_end(b.Next(), b.NextSeq());
  b.Done(end, "NFNL_MSG_BATCH_END");
  last_batch_bytes_ = b.size();

  int fd = mnl_socket_get_fd(sock_);
  int sndbuf = 0;
  socklen_t sl = sizeof(sndbuf);
  getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl);
  if (size_t(sndbuf) < b.size() + 4096) {
    int want = int(b.size() + 4096);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want));
  }
  if (mnl_socket_sendto(sock_, b.data(), b.size()) < 0) {
    return ErrnoError(errno, absl::StrCat("sending an nftables batch of ", b.size(), " bytes"));
  }
  // Answers: an error for each failed message, then the ack of the last one (or an error on
  // BEGIN when the batch itself failed to commit).
  absl::Status first_error;
  std::vector<char> buf(64 * 1024);
  for (bool done = false; !done;) {
    ssize_t n = mnl_socket_recvfrom(sock_, buf.data(), buf.size());
    if (n < 0) return ErrnoError(errno, "nftables batch (receive)");
    auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
    int len = int(n);
    for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (err->error != 0 && first_error.ok()) {
        first_error = ErrnoError(-err->error, b.What(nlh->nlmsg_seq));
      }
      if (nlh->nlmsg_seq == last_seq || nlh->nlmsg_seq == begin_seq) done = true;
    }
  }
  if (!first_error.ok()) {
    specs_.clear();  // what we believed about sets may be wrong now
    return first_error;
  }
  for (const std::string& s : delta.delete_sets) specs_.erase(s);
  for (const SetSpec& s : delta.add_sets) specs_[s.name] = s;
  return absl::OkStatus();
}

namespace {

// The spec of a set as the kernel describes it; name "" when its key is none of ours (then it
// equals no desired spec, and a reconcile replaces it).
SetSpec SpecFromKernel(nftnl_set* s) {
  uint32_t flags = nftnl_set_get_u32(s, NFTNL_SET_FLAGS);
  auto key = KeyTypeFromNft(nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE),
                            int(nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN)));
  bool map = (flags & NFT_SET_MAP) != 0;
  bool verdict = map && nftnl_set_get_u32(s, NFTNL_SET_DATA_TYPE) == NFT_DATA_VERDICT;
  SetSpec spec{key ? nftnl_set_get_str(s, NFTNL_SET_NAME) : "", key.value_or(KeyType::kIpv4),
               (flags & NFT_SET_INTERVAL) != 0, verdict};
  if (map && !verdict) {
    spec.data = KeyTypeFromNft(nftnl_set_get_u32(s, NFTNL_SET_DATA_TYPE),
                               int(nftnl_set_get_u32(s, NFTNL_SET_DATA_LEN)));
    if (!spec.data) spec.name.clear();  // a data type felixd does not use: not ours to decode
  }
  return spec;
}

int Trampoline(const nlmsghdr* nlh, void* data) {
  return (*static_cast<std::function<int(const nlmsghdr*)>*>(data))(nlh);
}

}  // namespace

absl::Status MnlNftables::Talk(const char* request, size_t len, uint32_t seq, std::string_view what,
                               std::function<int(const nlmsghdr*)> on_msg) {
  if (mnl_socket_sendto(sock_, request, len) < 0) return ErrnoError(errno, what);
  std::vector<char> buf(256 * 1024);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock_, buf.data(), buf.size());
    if (n < 0) return ErrnoError(errno, absl::StrCat(std::string(what), " (receive)"));
    int ret = mnl_cb_run(buf.data(), size_t(n), seq, portid_, Trampoline, &on_msg);
    if (ret < 0) return ErrnoError(errno, what);
    if (ret == MNL_CB_STOP) return absl::OkStatus();
  }
}

absl::StatusOr<SetSpec> MnlNftables::SpecOf(const std::string& set) {
  auto it = specs_.find(set);
  if (it != specs_.end()) return it->second;
  char req[MNL_SOCKET_BUFFER_SIZE];
  uint32_t seq = seq_++;
  OwnedSet s(NewSet(table_, set));
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETSET, NFPROTO_INET, NLM_F_ACK, seq);
  nftnl_set_nlmsg_build_payload(nlh, s.p);
  std::optional<SetSpec> spec;
  RETURN_IF_ERROR(Talk(req, nlh->nlmsg_len, seq, absl::StrCat("NFT_MSG_GETSET ", set),
                       [&spec](const nlmsghdr* m) {
                         OwnedSet got(nftnl_set_alloc());
                         if (nftnl_set_nlmsg_parse(m, got.p) < 0) return MNL_CB_ERROR;
                         spec = SpecFromKernel(got.p);
                         return MNL_CB_OK;
                       }));
  if (!spec || spec->name.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("set ", set, " in table inet ", table_, " has a key type felixd does not use"));
  }
  specs_[set] = *spec;
  return *spec;
}

absl::StatusOr<std::optional<TableState>> MnlNftables::Read() {
  char req[MNL_SOCKET_BUFFER_SIZE];
  // The table itself.
  {
    uint32_t seq = seq_++;
    OwnedTable t(nftnl_table_alloc());
    nftnl_table_set_str(t.p, NFTNL_TABLE_NAME, table_.c_str());
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
    nftnl_table_nlmsg_build_payload(nlh, t.p);
    absl::Status st = Talk(req, nlh->nlmsg_len, seq, "NFT_MSG_GETTABLE",
                           [](const nlmsghdr*) { return MNL_CB_OK; });
    if (absl::IsNotFound(st)) return std::optional<TableState>();
    RETURN_IF_ERROR(st);
  }
  TableState out;
  // Sets.
  {
    uint32_t seq = seq_++;
    OwnedSet filter(nftnl_set_alloc());
    nftnl_set_set_str(filter.p, NFTNL_SET_TABLE, table_.c_str());
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETSET, NFPROTO_INET, NLM_F_DUMP, seq);
    nftnl_set_nlmsg_build_payload(nlh, filter.p);
    std::vector<std::pair<std::string, SetSpec>> sets;
    RETURN_IF_ERROR(Talk(req, nlh->nlmsg_len, seq, "NFT_MSG_GETSET (dump)", [&](const nlmsghdr* m) {
      OwnedSet s(nftnl_set_alloc());
      if (nftnl_set_nlmsg_parse(m, s.p) < 0) return MNL_CB_ERROR;
      if (std::strcmp(nftnl_set_get_str(s.p, NFTNL_SET_TABLE), table_.c_str()) != 0) return MNL_CB_OK;
      if (nftnl_set_get_u32(s.p, NFTNL_SET_FLAGS) & NFT_SET_ANONYMOUS) return MNL_CB_OK;
      sets.emplace_back(nftnl_set_get_str(s.p, NFTNL_SET_NAME), SpecFromKernel(s.p));
      return MNL_CB_OK;
    }));
    specs_.clear();
    for (auto& [name, spec] : sets) {
      SetState& state = out.sets[name];
      state.spec = spec;
      if (spec.name.empty()) continue;  // not ours to decode
      specs_[name] = spec;
      uint32_t eseq = seq_++;
      OwnedSet q(NewSet(table_, name));
      nlmsghdr* enlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP, eseq);
      nftnl_set_elems_nlmsg_build_payload(enlh, q.p);
      OwnedSet got(NewSet(table_, name));
      RETURN_IF_ERROR(Talk(req, enlh->nlmsg_len, eseq, absl::StrCat("NFT_MSG_GETSETELEM ", name),
                           [&](const nlmsghdr* m) {
                             return nftnl_set_elems_nlmsg_parse(m, got.p) < 0 ? MNL_CB_ERROR
                                                                              : MNL_CB_OK;
                           }));
      std::vector<std::pair<std::string, bool>> interval_keys;
      nftnl_set_elems_iter* it = nftnl_set_elems_iter_create(got.p);
      for (nftnl_set_elem* e = nftnl_set_elems_iter_next(it); e; e = nftnl_set_elems_iter_next(it)) {
        uint32_t klen = 0;
        const char* k = static_cast<const char*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &klen));
        std::string bytes = k ? std::string(k, klen) : std::string();
        if (spec.interval) {
          bool end = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
                     (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END);
          interval_keys.emplace_back(std::move(bytes), end);
          continue;
        }
        std::string verdict;
        if (spec.verdict_map && nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT)) {
          const char* chain = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN)
                                  ? nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN)
                                  : nullptr;
          verdict = FormatVerdict(int32_t(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT)), chain);
        }
        if (spec.data && nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA)) {
          uint32_t dlen = 0;
          const char* d = static_cast<const char*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &dlen));
          verdict = DecodeKey(*spec.data, std::string(d, dlen));
        }
        state.elements[DecodeKey(spec.key, bytes)] = verdict;
      }
      nftnl_set_elems_iter_destroy(it);
      if (spec.interval) {
        for (std::string& key : JoinIntervals(spec.key, std::move(interval_keys))) {
          state.elements[std::move(key)] = "";
        }
      }
    }
  }
  // Chains.
  {
    uint32_t seq = seq_++;
    OwnedChain filter(nftnl_chain_alloc());
    nftnl_chain_set_str(filter.p, NFTNL_CHAIN_TABLE, table_.c_str());
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETCHAIN, NFPROTO_INET, NLM_F_DUMP, seq);
    nftnl_chain_nlmsg_build_payload(nlh, filter.p);
    RETURN_IF_ERROR(Talk(req, nlh->nlmsg_len, seq, "NFT_MSG_GETCHAIN (dump)", [&](const nlmsghdr* m) {
      OwnedChain c(nftnl_chain_alloc());
      if (nftnl_chain_nlmsg_parse(m, c.p) < 0) return MNL_CB_ERROR;
      if (std::strcmp(nftnl_chain_get_str(c.p, NFTNL_CHAIN_TABLE), table_.c_str()) != 0 ||
          nftnl_chain_get_u32(c.p, NFTNL_CHAIN_FAMILY) != NFPROTO_INET) {
        return MNL_CB_OK;
      }
      out.chains[nftnl_chain_get_str(c.p, NFTNL_CHAIN_NAME)] = ChainState{ChainBase(c.p), {}};
      return MNL_CB_OK;
    }));
  }
  // Rules, in chain order.
  {
    uint32_t seq = seq_++;
    OwnedRule filter(nftnl_rule_alloc());
    nftnl_rule_set_str(filter.p, NFTNL_RULE_TABLE, table_.c_str());
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, seq);
    nftnl_rule_nlmsg_build_payload(nlh, filter.p);
    RETURN_IF_ERROR(Talk(req, nlh->nlmsg_len, seq, "NFT_MSG_GETRULE (dump)", [&](const nlmsghdr* m) {
      OwnedRule r(nftnl_rule_alloc());
      if (nftnl_rule_nlmsg_parse(m, r.p) < 0) return MNL_CB_ERROR;
      if (std::strcmp(nftnl_rule_get_str(r.p, NFTNL_RULE_TABLE), table_.c_str()) != 0 ||
          nftnl_rule_get_u32(r.p, NFTNL_RULE_FAMILY) != NFPROTO_INET) {
        return MNL_CB_OK;
      }
      out.chains[nftnl_rule_get_str(r.p, NFTNL_RULE_CHAIN)].rule_tags.push_back(RuleComment(r.p));
      return MNL_CB_OK;
    }));
  }
  return std::optional<TableState>(std::move(out));
}

}  // namespace calico::felixd::nft
