#include "common/kernel/libnl_netlink.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/socket.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/base/errno_status.h"
#include "common/base/status_macros.h"

namespace calico::kernel {

struct LibnlNetlink::Outcome {
  int error = 0;       // errno; 0: acked / dump complete
  std::string detail;  // "kernel: <extended ack>" or "libnl: <local failure>"
};

namespace {

// A dump that keeps being interrupted by concurrent changes is reported as EAGAIN after this.
constexpr int kDumpAttempts = 5;
// A kernel that never answers is a bug; a stuck daemon would be worse than an error.
constexpr int kReceiveTimeoutSeconds = 30;

// ---- Namespaces ----

// Runs `fn` with the calling thread in the network namespace `netns_fd` (< 0: where it is) and
// moves the thread back before returning. A thread that cannot get back aborts the process.
template <typename Fn>
absl::Status InNetns(int netns_fd, Fn&& fn) {
  if (netns_fd < 0) {
    fn();
    return absl::OkStatus();
  }
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return ErrnoError(errno, "open /proc/thread-self/ns/net");
  if (setns(netns_fd, CLONE_NEWNET) != 0) {
    int error = errno;
    close(self);
    return ErrnoError(error, "setns to the target network namespace");
  }
  fn();
  if (setns(self, CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "calico::kernel: cannot return to the original network namespace: %s\n",
                 strerrorname_np(errno));
    std::abort();
  }
  close(self);
  return absl::OkStatus();
}

// ---- Errors ----

// libnl turns errnos into its own codes (nl_syserr2nlerr); only local failures (send/receive,
// memory) take this way back: the kernel's errno comes from the ack itself.
int NlErrorToErrno(int nl_error) {
  switch (nl_error < 0 ? -nl_error : nl_error) {
    case NLE_NOMEM:
      return ENOMEM;
    case NLE_AGAIN:
      return EAGAIN;
    case NLE_INTR:
      return EINTR;
    case NLE_BAD_SOCK:
      return EBADF;
    case NLE_NOACCESS:
      return EACCES;
    case NLE_PERM:
      return EPERM;
    case NLE_BUSY:
      return EBUSY;
    case NLE_INVAL:
      return EINVAL;
    case NLE_RANGE:
      return ERANGE;
    case NLE_MSGSIZE:
      return EMSGSIZE;
    case NLE_OPNOTSUPP:
      return EOPNOTSUPP;
    case NLE_AF_NOSUPPORT:
      return EAFNOSUPPORT;
    case NLE_PROTO_MISMATCH:
      return EPROTONOSUPPORT;
    case NLE_NOADDR:
      return EADDRNOTAVAIL;
    case NLE_MSG_OVERFLOW:
      return ENOBUFS;
    case NLE_DUMP_INTR:
      return EAGAIN;
    default:
      return EIO;
  }
}

// The NLMSGERR_ATTR_MSG text of an ack or NLMSG_DONE whose TLVs start at `tlvs`.
std::string ExtAckText(const nlmsghdr* hdr, const char* tlvs) {
  if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const char* end = reinterpret_cast<const char*>(hdr) + hdr->nlmsg_len;
  if (tlvs >= end) return "";
  auto* attrs = reinterpret_cast<nlattr*>(const_cast<char*>(tlvs));
  nlattr* msg = nla_find(attrs, static_cast<int>(end - tlvs), NLMSGERR_ATTR_MSG);
  if (msg == nullptr || nla_len(msg) <= 0) return "";
  std::string text(static_cast<const char*>(nla_data(msg)), static_cast<size_t>(nla_len(msg)));
  text.erase(std::find(text.begin(), text.end(), '\0'), text.end());
  return text;
}

// ---- One exchange: the callbacks see this state ----

struct ExchangeState {
  uint32_t seq = 0;
  bool done = false;
  bool interrupted = false;
  int error = 0;
  std::string kernel_message;
  const std::function<void(nl_msg*)>* on_reply = nullptr;
};

ExchangeState& State(void* arg) { return *static_cast<ExchangeState*>(arg); }

// Stale answers (of an exchange abandoned halfway) are skipped rather than mistaken for ours.
int OnSeqCheck(nl_msg* msg, void* arg) {
  return nlmsg_hdr(msg)->nlmsg_seq == State(arg).seq ? NL_OK : NL_SKIP;
}

int OnValid(nl_msg* msg, void* arg) {
  ExchangeState& state = State(arg);
  if (state.on_reply != nullptr && *state.on_reply) (*state.on_reply)(msg);
  return NL_OK;
}

int OnAck(nl_msg*, void* arg) {
  State(arg).done = true;
  return NL_STOP;
}

int OnDumpInterrupted(nl_msg*, void* arg) {
  State(arg).interrupted = true;
  return NL_OK;
}

// NLMSG_DONE carries the dump's own result (e.g. ENOENT for a table that does not exist).
int OnFinish(nl_msg* msg, void* arg) {
  ExchangeState& state = State(arg);
  const nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
    int result = 0;
    std::memcpy(&result, NLMSG_DATA(hdr), sizeof(result));
    if (result < 0) {
      state.error = -result;
      state.kernel_message =
          ExtAckText(hdr, static_cast<const char*>(NLMSG_DATA(hdr)) + NLMSG_ALIGN(sizeof(int)));
    }
  }
  state.done = true;
  return NL_STOP;
}

// The kernel's errno, which libnl would fold into an NLE_* code.
int OnError(sockaddr_nl*, nlmsgerr* err, void* arg) {
  ExchangeState& state = State(arg);
  const auto* hdr =
      reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(err) - NLMSG_HDRLEN);
  if (hdr->nlmsg_seq != state.seq) return NL_SKIP;
  state.error = -err->error;
  state.done = true;
  const size_t payload = (hdr->nlmsg_flags & NLM_F_CAPPED)
                             ? sizeof(nlmsgerr)
                             : sizeof(int) + static_cast<size_t>(err->msg.nlmsg_len);
  state.kernel_message = ExtAckText(hdr, reinterpret_cast<const char*>(err) + NLMSG_ALIGN(payload));
  return NL_STOP;
}

// ---- Values ----

// IFNAMSIZ is 16 including the NUL; '/' and whitespace are rejected by dev_valid_name().
bool ValidIfName(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(),
                      [](char c) { return c == '/' || c == ':' || c == ' ' || c == '\t'; });
}

int AfOf(int family) { return family == 6 ? AF_INET6 : AF_INET; }
int AddressBytes(int family) { return family == 6 ? 16 : 4; }

std::optional<net::IpAddress> IpFromAttr(const nlattr* attr, int family) {
  if (attr == nullptr || nla_len(attr) != AddressBytes(family)) return std::nullopt;
  net::IpAddress ip;
  ip.family = family;
  std::memcpy(ip.bytes.data(), nla_data(attr), static_cast<size_t>(AddressBytes(family)));
  return ip;
}

int PutIp(nl_msg* msg, int type, const net::IpAddress& ip) {
  return nla_put(msg, type, AddressBytes(ip.family), ip.bytes.data());
}

// A message under construction; freed unless handed to an exchange.
struct MsgDeleter {
  void operator()(nl_msg* msg) const { nlmsg_free(msg); }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgDeleter>;

struct LinkDeleter {
  void operator()(rtnl_link* link) const { rtnl_link_put(link); }
};

LinkKind KindOf(const char* kind, unsigned flags) {
  if (flags & IFF_LOOPBACK) return LinkKind::kLoopback;
  if (kind == nullptr) return LinkKind::kOther;
  std::string_view k(kind);
  if (k == "veth") return LinkKind::kVeth;
  if (k == "vxlan") return LinkKind::kVxlan;
  if (k == "bridge") return LinkKind::kBridge;
  if (k == "tun") return LinkKind::kTun;
  if (k == "ipip") return LinkKind::kIpip;
  return LinkKind::kOther;
}

Link ToLink(rtnl_link* l) {
  Link link;
  const char* name = rtnl_link_get_name(l);
  link.name = name != nullptr ? name : "";
  link.index = rtnl_link_get_ifindex(l);
  link.mtu = static_cast<int>(rtnl_link_get_mtu(l));
  link.group = rtnl_link_get_group(l);
  const unsigned flags = rtnl_link_get_flags(l);
  link.up = (flags & IFF_UP) != 0;
  link.kind = KindOf(rtnl_link_get_type(l), flags);
  nl_addr* addr = rtnl_link_get_addr(l);
  // Loopback's all-zero "address" is not a MAC.
  if (addr != nullptr && nl_addr_get_len(addr) == 6 && link.kind != LinkKind::kLoopback) {
    MacAddress mac;
    std::memcpy(mac.data(), nl_addr_get_binary_addr(addr), mac.size());
    link.mac = mac;
  }
  return link;
}

// nl_msg_parse's callback: the message is a link (RTM_NEWLINK).
void CollectLink(nl_object* obj, void* arg) {
  static_cast<std::vector<Link>*>(arg)->push_back(ToLink(reinterpret_cast<rtnl_link*>(obj)));
}

// IFLA_LINKINFO → IFLA_INFO_DATA of a vxlan link message, as VxlanInfo.
std::optional<VxlanInfo> ParseVxlanInfo(nlmsghdr* hdr) {
  nlattr* linkinfo = nlmsg_find_attr(hdr, sizeof(ifinfomsg), IFLA_LINKINFO);
  if (linkinfo == nullptr) return std::nullopt;
  nlattr* info[IFLA_INFO_MAX + 1];
  if (nla_parse_nested(info, IFLA_INFO_MAX, linkinfo, nullptr) < 0 ||
      info[IFLA_INFO_DATA] == nullptr) {
    return std::nullopt;
  }
  nlattr* vx[IFLA_VXLAN_MAX + 1];
  if (nla_parse_nested(vx, IFLA_VXLAN_MAX, info[IFLA_INFO_DATA], nullptr) < 0) return std::nullopt;
  VxlanInfo vxlan;
  if (vx[IFLA_VXLAN_ID] != nullptr) vxlan.vni = nla_get_u32(vx[IFLA_VXLAN_ID]);
  if (vx[IFLA_VXLAN_PORT] != nullptr) vxlan.port = ntohs(nla_get_u16(vx[IFLA_VXLAN_PORT]));
  // Sent only when set (vxlan_fill_info skips the any address).
  if (vx[IFLA_VXLAN_LOCAL] != nullptr) vxlan.local = IpFromAttr(vx[IFLA_VXLAN_LOCAL], 4);
  if (vx[IFLA_VXLAN_LOCAL6] != nullptr) vxlan.local = IpFromAttr(vx[IFLA_VXLAN_LOCAL6], 6);
  if (vx[IFLA_VXLAN_LINK] != nullptr) {
    vxlan.parent_index = static_cast<int>(nla_get_u32(vx[IFLA_VXLAN_LINK]));
  }
  if (vx[IFLA_VXLAN_LEARNING] != nullptr) vxlan.learning = nla_get_u8(vx[IFLA_VXLAN_LEARNING]) != 0;
  return vxlan;
}

// Links of RTM_NEWLINK messages, counting those libnl could not parse (rather than dropping a
// link silently: a driver would take it for absent).
struct LinkCollector {
  std::vector<Link> links;
  int unparsed = 0;
  void operator()(nl_msg* msg) {
    if (nlmsg_hdr(msg)->nlmsg_type != RTM_NEWLINK) return;
    const size_t before = links.size();
    if (nl_msg_parse(msg, CollectLink, &links) < 0) {
      ++unparsed;
    } else if (links.size() == before + 1 && links.back().kind == LinkKind::kVxlan) {
      links.back().vxlan = ParseVxlanInfo(nlmsg_hdr(msg));
    }
  }
  void Reset() {
    links.clear();
    unparsed = 0;
  }
};

void SetLinkAddr(rtnl_link* link, const MacAddress& mac) {
  nl_addr* addr = nl_addr_build(AF_LLC, mac.data(), mac.size());
  if (addr == nullptr) return;
  rtnl_link_set_addr(link, addr);  // takes its own reference
  nl_addr_put(addr);
}

// RTM_GETLINK for `name`: the reply without statistics is all we read.
MsgPtr BuildGetLink(std::string_view name) {
  MsgPtr msg(nlmsg_alloc_simple(RTM_GETLINK, 0));
  if (!msg) return nullptr;
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  const std::string n(name);
  if (nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
      nla_put_string(msg.get(), IFLA_IFNAME, n.c_str()) < 0 ||
      nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS) < 0) {
    return nullptr;
  }
  return msg;
}

MsgPtr BuildLinkDump() {
  MsgPtr msg(nlmsg_alloc_simple(RTM_GETLINK, 0));
  if (!msg) return nullptr;
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  if (nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
      nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS) < 0) {
    return nullptr;
  }
  return msg;
}

// Index and name of a link message, without building a libnl object.
std::optional<std::pair<int, std::string>> IndexAndName(nl_msg* msg) {
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_type != RTM_NEWLINK || hdr->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) {
    return std::nullopt;
  }
  const auto* ifi = static_cast<const ifinfomsg*>(nlmsg_data(hdr));
  std::string name;
  if (nlattr* attr = nlmsg_find_attr(hdr, sizeof(ifinfomsg), IFLA_IFNAME)) {
    name.assign(static_cast<const char*>(nla_data(attr)), static_cast<size_t>(nla_len(attr)));
    name.erase(std::find(name.begin(), name.end(), '\0'), name.end());
  }
  return std::make_pair(ifi->ifi_index, std::move(name));
}

// ---- Routes ----

std::optional<RouteType> TypeOf(uint8_t rtm_type) {
  switch (rtm_type) {
    case RTN_UNICAST:
      return RouteType::kUnicast;
    case RTN_BLACKHOLE:
      return RouteType::kBlackhole;
    case RTN_UNREACHABLE:
      return RouteType::kUnreachable;
    case RTN_PROHIBIT:
      return RouteType::kProhibit;
    default:
      return std::nullopt;  // local, broadcast, multicast, anycast, throw, nat: not ours to hold
  }
}

uint8_t RtmType(RouteType type) {
  switch (type) {
    case RouteType::kBlackhole:
      return RTN_BLACKHOLE;
    case RouteType::kUnreachable:
      return RTN_UNREACHABLE;
    case RouteType::kProhibit:
      return RTN_PROHIBIT;
    case RouteType::kUnicast:
      break;
  }
  return RTN_UNICAST;
}

bool HasDevice(const NextHop& hop) { return hop.ifindex != 0 || !hop.ifname.empty(); }

// The kernel keeps no scope for IPv6 routes (it always reports universe); like FakeNetlink we
// report the scope iproute2 gives the IPv4 equivalent, so read-backs match what callers ask for.
RouteScope Ipv6Scope(const Route& route) {
  return route.type == RouteType::kUnicast && route.multipath.empty() && !route.hop.gateway
             ? RouteScope::kLink
             : RouteScope::kUniverse;
}

// One RTM_NEWROUTE of a dump as our Route; nullopt when the filter or our types exclude it.
std::optional<Route> ParseRoute(nl_msg* msg, const RouteFilter& filter) {
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_type != RTM_NEWROUTE || hdr->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) {
    return std::nullopt;
  }
  const auto* rtm = static_cast<const rtmsg*>(nlmsg_data(hdr));
  const int family = rtm->rtm_family == AF_INET ? 4 : rtm->rtm_family == AF_INET6 ? 6 : 0;
  if (family == 0 || (filter.family != 0 && family != filter.family)) return std::nullopt;
  if (rtm->rtm_flags & RTM_F_CLONED) return std::nullopt;  // route cache / exceptions
  if (filter.protocol != kProtoUnspec && rtm->rtm_protocol != filter.protocol) return std::nullopt;
  std::optional<RouteType> type = TypeOf(rtm->rtm_type);
  if (!type) return std::nullopt;
  // Source-specific routes ("from ...") have no place in our Route.
  if (rtm->rtm_src_len != 0) return std::nullopt;

  nlattr* tb[RTA_MAX + 1];
  if (nlmsg_parse(hdr, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) return std::nullopt;
  const uint32_t table = tb[RTA_TABLE] != nullptr ? nla_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
  if (filter.table != 0 ? table != filter.table : table == kLocalTable) return std::nullopt;

  Route route;
  route.dst.addr.family = family;
  route.dst.len = rtm->rtm_dst_len;
  if (tb[RTA_DST] != nullptr) {
    std::optional<net::IpAddress> dst = IpFromAttr(tb[RTA_DST], family);
    if (!dst) return std::nullopt;
    route.dst.addr = *dst;
  }
  route.table = table;
  route.protocol = rtm->rtm_protocol;
  route.type = *type;
  route.scope = static_cast<RouteScope>(rtm->rtm_scope);
  route.priority = tb[RTA_PRIORITY] != nullptr ? nla_get_u32(tb[RTA_PRIORITY]) : 0;

  // Blackhole-like routes have no next hop (IPv6 reports "dev lo" for them: not a hop of ours).
  if (route.type == RouteType::kUnicast) {
    if (tb[RTA_MULTIPATH] != nullptr) {
      const char* pos = static_cast<const char*>(nla_data(tb[RTA_MULTIPATH]));
      int remaining = nla_len(tb[RTA_MULTIPATH]);
      while (remaining >= static_cast<int>(sizeof(rtnexthop))) {
        const auto* nh = reinterpret_cast<const rtnexthop*>(pos);
        if (nh->rtnh_len < sizeof(rtnexthop) || nh->rtnh_len > remaining) break;
        NextHop hop;
        hop.ifindex = nh->rtnh_ifindex;
        hop.onlink = (nh->rtnh_flags & RTNH_F_ONLINK) != 0;
        hop.weight = nh->rtnh_hops + 1;
        nlattr* ntb[RTA_MAX + 1];
        const int attrs_len = nh->rtnh_len - static_cast<int>(RTNH_ALIGN(sizeof(rtnexthop)));
        if (attrs_len > 0 &&
            nla_parse(ntb, RTA_MAX,
                      reinterpret_cast<nlattr*>(const_cast<char*>(pos) +
                                                RTNH_ALIGN(sizeof(rtnexthop))),
                      attrs_len, nullptr) == 0) {
          hop.gateway = IpFromAttr(ntb[RTA_GATEWAY], family);
        }
        route.multipath.push_back(std::move(hop));
        const int step = static_cast<int>(RTNH_ALIGN(nh->rtnh_len));
        pos += step;
        remaining -= step;
      }
    } else {
      if (tb[RTA_OIF] != nullptr) route.hop.ifindex = static_cast<int>(nla_get_u32(tb[RTA_OIF]));
      route.hop.gateway = IpFromAttr(tb[RTA_GATEWAY], family);
      route.hop.onlink = (rtm->rtm_flags & RTNH_F_ONLINK) != 0;
    }
  }
  if (family == 6) route.scope = Ipv6Scope(route);
  return route;
}

// What ReplaceRoute refuses before asking (the same answers FakeNetlink gives): 0 if none.
int CheckRoute(const Route& route) {
  const net::Prefix& dst = route.dst;
  // Host bits set: IPv4 says EINVAL, IPv6 would mask them and store another key than asked.
  if ((dst.addr.family != 4 && dst.addr.family != 6) || dst.len < 0 || dst.len > dst.addr.Bits() ||
      net::Masked(dst) != dst) {
    return EINVAL;
  }
  auto gateway_ok = [&](const NextHop& hop) {
    return !hop.gateway || hop.gateway->family == dst.addr.family;
  };
  if (route.type != RouteType::kUnicast) {
    return HasDevice(route.hop) || route.hop.gateway || !route.multipath.empty() ? EINVAL : 0;
  }
  if (!route.multipath.empty()) {
    if (HasDevice(route.hop) || route.hop.gateway) return EINVAL;
    for (const NextHop& hop : route.multipath) {
      if (!HasDevice(hop) || !gateway_ok(hop) || hop.weight < 1 || hop.weight > 256) return EINVAL;
    }
    return 0;
  }
  // A gateway alone is fine (the kernel looks the device up); neither is not a route.
  if (!HasDevice(route.hop) && !route.hop.gateway) return EINVAL;
  return gateway_ok(route.hop) ? 0 : EINVAL;
}

// RTM_NEWROUTE / RTM_DELROUTE header and key attributes.
MsgPtr BuildRouteMsg(int type, int flags, int family, const net::Prefix& dst, uint32_t table,
                     uint8_t protocol, uint8_t scope, uint8_t rtm_type, unsigned rtm_flags,
                     uint32_t priority) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) return nullptr;
  rtmsg rtm{};
  rtm.rtm_family = static_cast<uint8_t>(AfOf(family));
  rtm.rtm_dst_len = static_cast<uint8_t>(dst.len);
  rtm.rtm_table = table < 256 ? static_cast<uint8_t>(table)
                                : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  rtm.rtm_protocol = protocol;
  rtm.rtm_scope = scope;
  rtm.rtm_type = rtm_type;
  rtm.rtm_flags = rtm_flags;
  if (nlmsg_append(msg.get(), &rtm, sizeof(rtm), NLMSG_ALIGNTO) < 0 ||
      nla_put_u32(msg.get(), RTA_TABLE, table) < 0 ||
      (dst.len > 0 && PutIp(msg.get(), RTA_DST, dst.addr) < 0) ||
      (priority != 0 && nla_put_u32(msg.get(), RTA_PRIORITY, priority) < 0)) {
    return nullptr;
  }
  return msg;
}

char* MsgTail(nl_msg* msg) {
  nlmsghdr* hdr = nlmsg_hdr(msg);
  return reinterpret_cast<char*>(hdr) + NLMSG_ALIGN(hdr->nlmsg_len);
}

bool PutMultipath(nl_msg* msg, const std::vector<NextHop>& hops) {
  nlattr* nest = nla_nest_start(msg, RTA_MULTIPATH);
  if (nest == nullptr) return false;
  for (const NextHop& hop : hops) {
    auto* nh = static_cast<rtnexthop*>(nlmsg_reserve(msg, sizeof(rtnexthop), NLMSG_ALIGNTO));
    if (nh == nullptr) return false;
    nh->rtnh_flags = hop.onlink ? RTNH_F_ONLINK : 0;
    nh->rtnh_hops = static_cast<unsigned char>(hop.weight - 1);
    nh->rtnh_ifindex = hop.ifindex;
    if (hop.gateway && PutIp(msg, RTA_GATEWAY, *hop.gateway) < 0) return false;
    nh->rtnh_len = static_cast<unsigned short>(MsgTail(msg) - reinterpret_cast<char*>(nh));
  }
  return nla_nest_end(msg, nest) == 0;
}


// ---- Batched route requests ----

// Requests per sendmsg: well under the default socket send buffer (~208 KiB), and few enough
// that even all of them failing fits the receive buffer set in Connect.
constexpr size_t kBatchBytes = 32 * 1024;
constexpr int kReceiveBufferBytes = 4 * 1024 * 1024;

// One request appended to a buffer of packed requests, in the layout libnl gives the same
// message (BuildRouteMsg and friends); offsets, not pointers, because the buffer may grow.
class RawRequest {
 public:
  RawRequest(std::vector<uint8_t>& buf, uint16_t type, uint16_t flags, uint32_t seq, uint32_t port)
      : buf_(buf), start_(buf.size()) {
    buf_.resize(start_ + NLMSG_HDRLEN, 0);
    nlmsghdr* h = reinterpret_cast<nlmsghdr*>(&buf_[start_]);
    h->nlmsg_type = type;
    h->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    h->nlmsg_seq = seq;
    h->nlmsg_pid = port;
  }
  void Append(const void* data, size_t len) {
    size_t at = buf_.size();
    buf_.resize(at + NLMSG_ALIGN(len), 0);
    std::memcpy(&buf_[at], data, len);
  }
  void Attr(int type, const void* data, size_t len) {
    size_t at = Begin(type);
    buf_.resize(at + NLA_HDRLEN + NLA_ALIGN(len), 0);
    std::memcpy(&buf_[at + NLA_HDRLEN], data, len);
    reinterpret_cast<nlattr*>(&buf_[at])->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  }
  void U32(int type, uint32_t value) { Attr(type, &value, sizeof value); }
  void Ip(int type, const net::IpAddress& ip) {
    Attr(type, ip.bytes.data(), static_cast<size_t>(AddressBytes(ip.family)));
  }
  // An attribute whose payload follows (a nest); End() sets its length.
  size_t Begin(int type) {
    size_t at = buf_.size();
    buf_.resize(at + NLA_HDRLEN, 0);
    reinterpret_cast<nlattr*>(&buf_[at])->nla_type = static_cast<uint16_t>(type);
    return at;
  }
  void End(size_t at) {
    reinterpret_cast<nlattr*>(&buf_[at])->nla_len = static_cast<uint16_t>(buf_.size() - at);
  }
  size_t size() const { return buf_.size(); }
  void Finish() {
    reinterpret_cast<nlmsghdr*>(&buf_[start_])->nlmsg_len = static_cast<uint32_t>(buf_.size() - start_);
  }

 private:
  std::vector<uint8_t>& buf_;
  size_t start_;
};

void AppendRouteHeader(RawRequest& m, int family, const net::Prefix& dst, uint32_t table,
                       uint8_t protocol, uint8_t scope, uint8_t rtm_type, unsigned rtm_flags,
                       uint32_t priority) {
  rtmsg rtm{};
  rtm.rtm_family = static_cast<uint8_t>(AfOf(family));
  rtm.rtm_dst_len = static_cast<uint8_t>(dst.len);
  rtm.rtm_table = table < 256 ? static_cast<uint8_t>(table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  rtm.rtm_protocol = protocol;
  rtm.rtm_scope = scope;
  rtm.rtm_type = rtm_type;
  rtm.rtm_flags = rtm_flags;
  m.Append(&rtm, sizeof rtm);
  m.U32(RTA_TABLE, table);
  if (dst.len > 0) m.Ip(RTA_DST, dst.addr);
  if (priority != 0) m.U32(RTA_PRIORITY, priority);
}

// What ReplaceRoute sends for `route`, whose devices are resolved to indexes.
void AppendNewRoute(std::vector<uint8_t>& buf, uint32_t seq, uint32_t port, const Route& route) {
  RawRequest m(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, seq, port);
  const unsigned rtm_flags = route.multipath.empty() && route.hop.onlink ? RTNH_F_ONLINK : 0;
  AppendRouteHeader(m, route.dst.addr.family, route.dst, route.table, route.protocol,
                    static_cast<uint8_t>(route.scope), RtmType(route.type), rtm_flags,
                    route.Key().priority);
  if (route.type == RouteType::kUnicast) {
    if (!route.multipath.empty()) {
      size_t nest = m.Begin(RTA_MULTIPATH);
      for (const NextHop& hop : route.multipath) {
        size_t at = m.size();
        rtnexthop nh{};
        nh.rtnh_flags = hop.onlink ? RTNH_F_ONLINK : 0;
        nh.rtnh_hops = static_cast<unsigned char>(hop.weight - 1);
        nh.rtnh_ifindex = hop.ifindex;
        m.Append(&nh, sizeof nh);
        if (hop.gateway) m.Ip(RTA_GATEWAY, *hop.gateway);
        rtnexthop len{};
        len.rtnh_len = static_cast<unsigned short>(m.size() - at);
        std::memcpy(&buf[at], &len.rtnh_len, sizeof len.rtnh_len);
      }
      m.End(nest);
    } else {
      // No device: the kernel picks it from the gateway (RTA_OIF 0 would be ENETUNREACH).
      if (route.hop.ifindex != 0) m.U32(RTA_OIF, static_cast<uint32_t>(route.hop.ifindex));
      if (route.hop.gateway) m.Ip(RTA_GATEWAY, *route.hop.gateway);
    }
  }
  m.Finish();
}

bool ValidKey(const RouteKey& key) {
  const net::Prefix& dst = key.dst;
  return (dst.addr.family == 4 || dst.addr.family == 6) && dst.len >= 0 &&
         dst.len <= dst.addr.Bits() && net::Masked(dst) == dst;
}

// ---- Addresses ----

MsgPtr BuildAddressMsg(int type, int flags, const Address& address) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) return nullptr;
  const uint32_t ifa_flags = address.nodad ? IFA_F_NODAD : 0;
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<uint8_t>(AfOf(address.prefix.addr.family));
  ifa.ifa_prefixlen = static_cast<uint8_t>(address.prefix.len);
  ifa.ifa_flags = static_cast<uint8_t>(ifa_flags);
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(address.ifindex);
  if (nlmsg_append(msg.get(), &ifa, sizeof(ifa), NLMSG_ALIGNTO) < 0 ||
      PutIp(msg.get(), IFA_LOCAL, address.prefix.addr) < 0 ||
      PutIp(msg.get(), IFA_ADDRESS, address.prefix.addr) < 0 ||
      (type == RTM_NEWADDR && nla_put_u32(msg.get(), IFA_FLAGS, ifa_flags) < 0)) {
    return nullptr;
  }
  return msg;
}

std::optional<Address> ParseAddress(nl_msg* msg) {
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_type != RTM_NEWADDR || hdr->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) {
    return std::nullopt;
  }
  const auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(hdr));
  const int family = ifa->ifa_family == AF_INET ? 4 : ifa->ifa_family == AF_INET6 ? 6 : 0;
  if (family == 0) return std::nullopt;
  nlattr* tb[IFA_MAX + 1];
  if (nlmsg_parse(hdr, sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return std::nullopt;
  // IFA_LOCAL is the address itself where there is a peer (IPv4 always sends it).
  std::optional<net::IpAddress> ip =
      IpFromAttr(tb[IFA_LOCAL] != nullptr ? tb[IFA_LOCAL] : tb[IFA_ADDRESS], family);
  if (!ip) return std::nullopt;
  const uint32_t flags = tb[IFA_FLAGS] != nullptr ? nla_get_u32(tb[IFA_FLAGS]) : ifa->ifa_flags;
  Address address;
  address.prefix = net::Prefix{*ip, ifa->ifa_prefixlen};
  address.ifindex = static_cast<int>(ifa->ifa_index);
  address.nodad = (flags & IFA_F_NODAD) != 0;
  return address;
}

// ---- Neighbours and FDB ----

// RTM_NEWNEIGH / RTM_DELNEIGH for (family, device): NDA_DST and NDA_LLADDR when given.
MsgPtr BuildNeighMsg(int type, int flags, uint8_t family, int ifindex, uint16_t state,
                     uint8_t ntf_flags, const std::optional<net::IpAddress>& dst,
                     const MacAddress* mac) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) return nullptr;
  ndmsg ndm{};
  ndm.ndm_family = family;
  ndm.ndm_ifindex = ifindex;
  ndm.ndm_state = state;
  ndm.ndm_flags = ntf_flags;
  if (nlmsg_append(msg.get(), &ndm, sizeof(ndm), NLMSG_ALIGNTO) < 0 ||
      (dst && PutIp(msg.get(), NDA_DST, *dst) < 0) ||
      (mac != nullptr && nla_put(msg.get(), NDA_LLADDR, 6, mac->data()) < 0)) {
    return nullptr;
  }
  return msg;
}

// The header and attributes of an RTM_NEWNEIGH of `family` (AF_UNSPEC: IPv4 or IPv6).
const ndmsg* NeighHeader(nl_msg* msg, int family, nlattr* (&tb)[NDA_MAX + 1]) {
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_type != RTM_NEWNEIGH || hdr->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) {
    return nullptr;
  }
  const auto* ndm = static_cast<const ndmsg*>(nlmsg_data(hdr));
  if (family == AF_UNSPEC ? ndm->ndm_family != AF_INET && ndm->ndm_family != AF_INET6
                          : ndm->ndm_family != family) {
    return nullptr;
  }
  if (nlmsg_parse(hdr, sizeof(ndmsg), tb, NDA_MAX, nullptr) < 0) return nullptr;
  return ndm;
}

std::optional<MacAddress> MacFromAttr(const nlattr* attr) {
  if (attr == nullptr || nla_len(attr) != 6) return std::nullopt;
  MacAddress mac;
  std::memcpy(mac.data(), nla_data(attr), mac.size());
  return mac;
}

// One ARP/NDP entry; nullopt for other families and entries without a MAC (incomplete).
std::optional<Neighbor> ParseNeighbor(nl_msg* msg) {
  nlattr* tb[NDA_MAX + 1];
  const ndmsg* ndm = NeighHeader(msg, AF_UNSPEC, tb);
  if (ndm == nullptr) return std::nullopt;
  const int family = ndm->ndm_family == AF_INET ? 4 : 6;
  std::optional<net::IpAddress> ip = IpFromAttr(tb[NDA_DST], family);
  std::optional<MacAddress> mac = MacFromAttr(tb[NDA_LLADDR]);
  if (!ip || !mac) return std::nullopt;
  Neighbor neighbor;
  neighbor.ifindex = ndm->ndm_ifindex;
  neighbor.ip = *ip;
  neighbor.mac = *mac;
  neighbor.permanent = (ndm->ndm_state & NUD_PERMANENT) != 0;
  return neighbor;
}

std::optional<FdbEntry> ParseFdb(nl_msg* msg) {
  nlattr* tb[NDA_MAX + 1];
  const ndmsg* ndm = NeighHeader(msg, AF_BRIDGE, tb);
  if (ndm == nullptr) return std::nullopt;
  std::optional<MacAddress> mac = MacFromAttr(tb[NDA_LLADDR]);
  if (!mac) return std::nullopt;
  FdbEntry entry;
  entry.ifindex = ndm->ndm_ifindex;
  entry.mac = *mac;
  if (tb[NDA_DST] != nullptr) {
    entry.dst = IpFromAttr(tb[NDA_DST], nla_len(tb[NDA_DST]) == 16 ? 6 : 4);
  }
  return entry;
}

// ---- Sysctls ----

// A path under /proc/sys: relative, no "..", no empty components.
bool ValidSysctlPath(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.back() == '/') return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

// ---- Lifecycle ----

absl::StatusOr<std::unique_ptr<LibnlNetlink>> LibnlNetlink::Open(const NetnsRef& netns) {
  int fd = -1;
  if (netns.fd >= 0) {
    fd = fcntl(netns.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return ErrnoError(errno, absl::StrCat("dup network namespace fd ", netns.fd));
  } else if (!netns.path.empty()) {
    fd = open(netns.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, absl::StrCat("open network namespace ", netns.path));
  }
  std::unique_ptr<LibnlNetlink> netlink(new LibnlNetlink(fd));
  netlink->cb_ = nl_cb_alloc(NL_CB_DEFAULT);
  if (netlink->cb_ == nullptr) return ErrnoError(ENOMEM, "nl_cb_alloc");
  absl::Status connected = netlink->Connect();
  if (!connected.ok()) {
    return Annotate(connected, netns.fd >= 0         ? absl::StrCat("network namespace fd ", netns.fd)
                               : !netns.path.empty() ? "network namespace " + netns.path
                                                     : std::string("this network namespace"));
  }
  return netlink;
}

LibnlNetlink::~LibnlNetlink() {
  if (sock_ != nullptr) nl_socket_free(sock_);
  if (cb_ != nullptr) nl_cb_put(cb_);
  if (netns_fd_ >= 0) close(netns_fd_);
}

absl::Status LibnlNetlink::Connect() {
  if (sock_ != nullptr) {
    nl_socket_free(sock_);
    sock_ = nullptr;
  }
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr) return ErrnoError(ENOMEM, "nl_socket_alloc");
  int err = 0;
  // The socket belongs to the namespace it is created in, whatever the thread does later.
  absl::Status moved = InNetns(netns_fd_, [&] { err = nl_connect(sock, NETLINK_ROUTE); });
  if (!moved.ok() || err < 0) {
    nl_socket_free(sock);
    if (!moved.ok()) return moved;
    return ErrnoError(NlErrorToErrno(err), absl::StrCat("connect rtnetlink socket: libnl: ",
                                                        nl_geterror(err)));
  }
  // We ask for acks ourselves (not for dumps), and match answers by sequence number.
  nl_socket_disable_auto_ack(sock);
  const int fd = nl_socket_get_fd(sock);
  const int one = 1;
  // Best effort, all of them (older kernels lack some): the kernel's reason text on errors,
  // acks without a copy of our request, and kernel-side filtering of dumps.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
  // Room for the failures of a whole batch (each answer costs far more than its size).
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kReceiveBufferBytes, sizeof(kReceiveBufferBytes));
  timeval timeout{.tv_sec = kReceiveTimeoutSeconds, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sock_ = sock;
  return absl::OkStatus();
}

// ---- Exchanges ----

LibnlNetlink::Outcome LibnlNetlink::Exchange(nl_msg* raw, bool dump, const OnReply& on_reply,
                                             bool* interrupted) {
  MsgPtr msg(raw);
  Outcome outcome;
  if (!msg) return Outcome{ENOMEM, "libnl: cannot build the request"};
  if (sock_ == nullptr) {
    absl::Status connected = Connect();
    if (!connected.ok()) {
      return Outcome{EIO, absl::StrCat("reconnecting: ", ToStd(connected.message()))};
    }
  }
  nlmsghdr* hdr = nlmsg_hdr(msg.get());
  hdr->nlmsg_flags |= dump ? NLM_F_DUMP : NLM_F_ACK;
  nl_complete_msg(sock_, msg.get());  // port, sequence number, NLM_F_REQUEST
  ExchangeState state;
  state.seq = hdr->nlmsg_seq;
  state.on_reply = &on_reply;
  nl_cb_set(cb_, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, OnSeqCheck, &state);
  nl_cb_set(cb_, NL_CB_VALID, NL_CB_CUSTOM, OnValid, &state);
  nl_cb_set(cb_, NL_CB_ACK, NL_CB_CUSTOM, OnAck, &state);
  nl_cb_set(cb_, NL_CB_FINISH, NL_CB_CUSTOM, OnFinish, &state);
  nl_cb_set(cb_, NL_CB_DUMP_INTR, NL_CB_CUSTOM, OnDumpInterrupted, &state);
  nl_cb_err(cb_, NL_CB_CUSTOM, OnError, &state);

  int err = nl_send(sock_, msg.get());
  while (err >= 0 && !state.done) err = nl_recvmsgs(sock_, cb_);
  if (!state.done) {
    // Send or receive failed: what is left of the answer would confuse the next exchange.
    nl_socket_free(sock_);
    sock_ = nullptr;
    return Outcome{NlErrorToErrno(err), absl::StrCat("libnl: ", nl_geterror(err))};
  }
  if (interrupted != nullptr) *interrupted = state.interrupted;
  outcome.error = state.error;
  if (!state.kernel_message.empty()) outcome.detail = "kernel: " + state.kernel_message;
  return outcome;
}

LibnlNetlink::Outcome LibnlNetlink::Request(nl_msg* msg, const OnReply& on_reply) {
  return Exchange(msg, /*dump=*/false, on_reply, nullptr);
}

LibnlNetlink::Outcome LibnlNetlink::Dump(const std::function<nl_msg*()>& build,
                                         const OnReply& on_reply,
                                         const std::function<void()>& reset) {
  for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
    bool interrupted = false;
    Outcome outcome = Exchange(build(), /*dump=*/true, on_reply, &interrupted);
    if (outcome.error != 0 || !interrupted) return outcome;
    reset();
  }
  return Outcome{EAGAIN, "dump interrupted by concurrent changes, every attempt"};
}

absl::Status LibnlNetlink::ToStatus(const Outcome& outcome, std::string_view context) const {
  if (outcome.error == 0) return absl::OkStatus();
  absl::Status status = ErrnoError(outcome.error, context);
  if (outcome.detail.empty()) return status;
  return absl::Status(status.code(), absl::StrCat(status.message(), "; ", outcome.detail));
}

absl::StatusOr<int> LibnlNetlink::ResolveIndex(std::string_view name, std::string_view context) {
  if (!ValidIfName(name)) return ErrnoError(ENODEV, context);
  int index = 0;
  Outcome outcome = Request(BuildGetLink(name).release(), [&index](nl_msg* msg) {
    if (auto link = IndexAndName(msg)) index = link->first;
  });
  if (outcome.error == 0 && index == 0) outcome.error = ENODEV;
  RETURN_IF_ERROR(ToStatus(outcome, context));
  return index;
}

// ---- Links ----

absl::StatusOr<std::vector<Link>> LibnlNetlink::ListLinks() {
  LinkCollector collector;
  Outcome outcome = Dump([] { return BuildLinkDump().release(); },
                         [&collector](nl_msg* msg) { collector(msg); },
                         [&collector] { collector.Reset(); });
  if (outcome.error == 0 && collector.unparsed > 0) {
    outcome = Outcome{EBADMSG, absl::StrCat("libnl: ", collector.unparsed, " links unparsed")};
  }
  RETURN_IF_ERROR(ToStatus(outcome, "RTM_GETLINK dump"));
  return std::move(collector.links);
}

absl::StatusOr<Link> LibnlNetlink::GetLink(std::string_view name) {
  const std::string context = absl::StrCat("RTM_GETLINK ", ToAbsl(name));
  if (!ValidIfName(name)) return ErrnoError(ENODEV, context);
  LinkCollector collector;
  Outcome outcome =
      Request(BuildGetLink(name).release(), [&collector](nl_msg* msg) { collector(msg); });
  if (outcome.error == 0 && collector.unparsed > 0) {
    outcome = Outcome{EBADMSG, "libnl: link unparsed"};
  } else if (outcome.error == 0 && collector.links.empty()) {
    outcome.error = ENODEV;
  }
  RETURN_IF_ERROR(ToStatus(outcome, context));
  return collector.links.front();
}

absl::Status LibnlNetlink::CreateVeth(const VethSpec& spec) {
  const std::string context =
      absl::StrCat("RTM_NEWLINK veth ", spec.name, " peer ", spec.peer_name);
  // libnl would truncate a long name silently; the kernel's answer for it is EINVAL.
  if (!ValidIfName(spec.name) || !ValidIfName(spec.peer_name)) return ErrnoError(EINVAL, context);

  int peer_fd = spec.peer_netns.fd;
  int opened = -1;
  if (peer_fd < 0 && !spec.peer_netns.path.empty()) {
    opened = open(spec.peer_netns.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (opened < 0) return ErrnoError(errno, absl::StrCat(context, " netns ", spec.peer_netns.path));
    peer_fd = opened;
  }

  std::unique_ptr<rtnl_link, LinkDeleter> link(rtnl_link_veth_alloc());
  nl_msg* msg = nullptr;
  int built = -NLE_NOMEM;
  if (link) {
    rtnl_link_set_name(link.get(), spec.name.c_str());
    if (spec.mtu != 0) rtnl_link_set_mtu(link.get(), static_cast<unsigned>(spec.mtu));
    if (spec.mac) SetLinkAddr(link.get(), *spec.mac);
    if (spec.index != 0) rtnl_link_set_ifindex(link.get(), spec.index);
    // libnl 3.7: get_peer takes a reference of its own.
    std::unique_ptr<rtnl_link, LinkDeleter> peer(rtnl_link_veth_get_peer(link.get()));
    rtnl_link_set_name(peer.get(), spec.peer_name.c_str());
    if (spec.mtu != 0) rtnl_link_set_mtu(peer.get(), static_cast<unsigned>(spec.mtu));
    if (spec.peer_mac) SetLinkAddr(peer.get(), *spec.peer_mac);
    if (spec.peer_index != 0) rtnl_link_set_ifindex(peer.get(), spec.peer_index);
    // IFLA_NET_NS_FD: the peer is born there (rtnl_link_veth_add would send a pid instead).
    if (peer_fd >= 0) rtnl_link_set_ns_fd(peer.get(), peer_fd);
    built = rtnl_link_build_add_request(link.get(), NLM_F_CREATE | NLM_F_EXCL, &msg);
  }
  Outcome outcome = built < 0 ? Outcome{NlErrorToErrno(built), absl::StrCat("libnl: ",
                                                                            nl_geterror(built))}
                              : Request(msg);
  if (opened >= 0) close(opened);
  return ToStatus(outcome, context);
}

absl::Status LibnlNetlink::CreateIpipTunnel(std::string_view name) {
  const std::string context = absl::StrCat("RTM_NEWLINK ipip ", ToAbsl(name));
  if (!ValidIfName(std::string(name))) return ErrnoError(EINVAL, context);
  std::unique_ptr<rtnl_link, LinkDeleter> link(rtnl_link_alloc());
  nl_msg* msg = nullptr;
  int built = -NLE_NOMEM;
  if (link) {
    rtnl_link_set_name(link.get(), std::string(name).c_str());
    built = rtnl_link_set_type(link.get(), "ipip");
    if (built >= 0) built = rtnl_link_build_add_request(link.get(), NLM_F_CREATE | NLM_F_EXCL, &msg);
  }
  Outcome outcome = built < 0 ? Outcome{NlErrorToErrno(built), absl::StrCat("libnl: ", nl_geterror(built))}
                              : Request(msg);
  // The kernel answers an unknown link kind with EOPNOTSUPP once loading rtnl-link-ipip failed.
  if (outcome.error == EOPNOTSUPP) {
    return absl::FailedPreconditionError(absl::StrCat(
        context, ": the kernel has no ipip module (it does not know link kind \"ipip\"); "
                 "IP-in-IP needs it: modprobe ipip, or use VXLAN or native routing"));
  }
  return ToStatus(outcome, context);
}

absl::Status LibnlNetlink::CreateVxlan(const VxlanSpec& spec) {
  const std::string context = absl::StrCat("RTM_NEWLINK vxlan ", spec.name);
  if (!ValidIfName(spec.name)) return ErrnoError(EINVAL, context);
  // IFLA_VXLAN_ID's policy: "VXLAN ID must be lower than 16777216" (ERANGE).
  if (spec.vni >= (1u << 24)) return ErrnoError(ERANGE, context);
  int parent = 0;
  if (!spec.parent.empty()) {
    ASSIGN_OR_RETURN(parent, ResolveIndex(spec.parent, context));
  }
  MsgPtr msg(nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL));
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  bool ok = msg && nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) == 0 &&
            nla_put_string(msg.get(), IFLA_IFNAME, spec.name.c_str()) == 0 &&
            (spec.mtu == 0 || nla_put_u32(msg.get(), IFLA_MTU, static_cast<uint32_t>(spec.mtu)) == 0) &&
            (!spec.mac || nla_put(msg.get(), IFLA_ADDRESS, 6, spec.mac->data()) == 0);
  nlattr* linkinfo = ok ? nla_nest_start(msg.get(), IFLA_LINKINFO) : nullptr;
  ok = linkinfo != nullptr && nla_put_string(msg.get(), IFLA_INFO_KIND, "vxlan") == 0;
  nlattr* data = ok ? nla_nest_start(msg.get(), IFLA_INFO_DATA) : nullptr;
  ok = data != nullptr && nla_put_u32(msg.get(), IFLA_VXLAN_ID, spec.vni) == 0 &&
       nla_put_u16(msg.get(), IFLA_VXLAN_PORT, htons(spec.port)) == 0 &&
       nla_put_u8(msg.get(), IFLA_VXLAN_LEARNING, spec.learning ? 1 : 0) == 0 &&
       (!spec.local || PutIp(msg.get(), spec.local->family == 6 ? IFLA_VXLAN_LOCAL6
                                                                : IFLA_VXLAN_LOCAL,
                             *spec.local) == 0) &&
       (parent == 0 || nla_put_u32(msg.get(), IFLA_VXLAN_LINK, static_cast<uint32_t>(parent)) == 0) &&
       nla_nest_end(msg.get(), data) == 0 && nla_nest_end(msg.get(), linkinfo) == 0;
  if (!ok) msg.reset();
  return ToStatus(Request(msg.release()), context);
}

absl::Status LibnlNetlink::DeleteLink(std::string_view name) {
  const std::string context = absl::StrCat("RTM_DELLINK ", ToAbsl(name));
  if (!ValidIfName(name)) return absl::OkStatus();  // no such device can exist
  MsgPtr msg(nlmsg_alloc_simple(RTM_DELLINK, 0));
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  const std::string n(name);
  if (msg && (nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
              nla_put_string(msg.get(), IFLA_IFNAME, n.c_str()) < 0)) {
    msg.reset();
  }
  Outcome outcome = Request(msg.release());
  if (outcome.error == ENODEV) return absl::OkStatus();  // already gone: our API's success
  return ToStatus(outcome, context);
}

absl::Status LibnlNetlink::SetLink(std::string_view name, const std::string& context,
                                   unsigned flags, unsigned change,
                                   std::optional<uint32_t> mtu, const MacAddress* mac,
                                   std::optional<uint32_t> group) {
  if (!ValidIfName(name)) return ErrnoError(ENODEV, context);
  MsgPtr msg(nlmsg_alloc_simple(RTM_SETLINK, 0));
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_flags = flags;
  ifi.ifi_change = change;
  const std::string n(name);
  if (msg && (nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
              nla_put_string(msg.get(), IFLA_IFNAME, n.c_str()) < 0 ||
              (mtu && nla_put_u32(msg.get(), IFLA_MTU, *mtu) < 0) ||
              (mac != nullptr && nla_put(msg.get(), IFLA_ADDRESS, 6, mac->data()) < 0) ||
              (group && nla_put_u32(msg.get(), IFLA_GROUP, *group) < 0))) {
    msg.reset();
  }
  return ToStatus(Request(msg.release()), context);
}

absl::Status LibnlNetlink::SetLinkUp(std::string_view name, bool up) {
  return SetLink(name, absl::StrCat("RTM_SETLINK ", ToAbsl(name), up ? " up" : " down"),
                 up ? IFF_UP : 0, IFF_UP, std::nullopt, nullptr);
}

absl::Status LibnlNetlink::SetLinkMtu(std::string_view name, int mtu) {
  // The kernel checks the range (after finding the device): a negative MTU is a huge unsigned.
  return SetLink(name, absl::StrCat("RTM_SETLINK ", ToAbsl(name), " mtu ", mtu), 0, 0,
                 static_cast<uint32_t>(mtu), nullptr);
}

absl::Status LibnlNetlink::SetLinkGroup(std::string_view name, uint32_t group) {
  return SetLink(name, absl::StrCat("RTM_SETLINK ", ToAbsl(name), " group ", group), 0, 0,
                 std::nullopt, nullptr, group);
}

absl::Status LibnlNetlink::SetLinkMac(std::string_view name, const MacAddress& mac) {
  return SetLink(name,
                 absl::StrCat("RTM_SETLINK ", ToAbsl(name), " address ", FormatMac(mac)), 0, 0,
                 std::nullopt, &mac);
}

// ---- Addresses ----

absl::StatusOr<std::vector<Address>> LibnlNetlink::ListAddresses(int ifindex) {
  std::vector<Address> addresses;
  Outcome outcome = Dump(
      [ifindex] {
        MsgPtr msg(nlmsg_alloc_simple(RTM_GETADDR, 0));
        ifaddrmsg ifa{};
        ifa.ifa_family = AF_UNSPEC;
        ifa.ifa_index = static_cast<uint32_t>(ifindex);  // filtered by the kernel (strict check)
        if (msg && nlmsg_append(msg.get(), &ifa, sizeof(ifa), NLMSG_ALIGNTO) < 0) msg.reset();
        return msg.release();
      },
      [&addresses, ifindex](nl_msg* msg) {
        std::optional<Address> address = ParseAddress(msg);
        if (address && (ifindex == 0 || address->ifindex == ifindex)) {
          addresses.push_back(*address);
        }
      },
      [&addresses] { addresses.clear(); });
  // A device that does not exist has no addresses (the kernel's filter says ENODEV).
  if (ifindex != 0 && outcome.error == ENODEV) return std::vector<Address>{};
  RETURN_IF_ERROR(ToStatus(outcome, "RTM_GETADDR dump"));
  return addresses;
}

absl::Status LibnlNetlink::ReplaceAddress(const Address& address) {
  const std::string context =
      absl::StrCat("RTM_NEWADDR ", net::FormatCidr(address.prefix), " dev #", address.ifindex);
  const net::Prefix& p = address.prefix;
  if ((p.addr.family != 4 && p.addr.family != 6) || p.len < 0 || p.len > p.addr.Bits()) {
    return ErrnoError(EINVAL, context);
  }
  return ToStatus(
      Request(BuildAddressMsg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, address).release()),
      context);
}

absl::Status LibnlNetlink::DeleteAddress(const Address& address) {
  const std::string context =
      absl::StrCat("RTM_DELADDR ", net::FormatCidr(address.prefix), " dev #", address.ifindex);
  const net::Prefix& p = address.prefix;
  if ((p.addr.family != 4 && p.addr.family != 6) || p.len < 0 || p.len > p.addr.Bits()) {
    return ErrnoError(EINVAL, context);
  }
  Outcome outcome = Request(BuildAddressMsg(RTM_DELADDR, 0, address).release());
  // Not there, or its device is gone: already deleted.
  if (outcome.error == EADDRNOTAVAIL || outcome.error == ENODEV) return absl::OkStatus();
  return ToStatus(outcome, context);
}

// ---- Neighbours and FDB ----

absl::StatusOr<std::map<int, std::string>> LibnlNetlink::LinkNamesByIndex() {
  std::map<int, std::string> names;
  Outcome outcome = Dump([] { return BuildLinkDump().release(); },
                         [&names](nl_msg* msg) {
                           if (auto link = IndexAndName(msg)) names[link->first] = link->second;
                         },
                         [&names] { names.clear(); });
  RETURN_IF_ERROR(ToStatus(outcome, "RTM_GETLINK dump"));
  return names;
}

absl::StatusOr<int> LibnlNetlink::DeviceIndex(int ifindex, std::string_view ifname,
                                              std::string_view context) {
  if (ifindex != 0) return ifindex;
  return ResolveIndex(ifname, context);
}

absl::StatusOr<std::vector<Neighbor>> LibnlNetlink::ListNeighbors(int ifindex) {
  std::vector<Neighbor> neighbors;
  Outcome outcome = Dump(
      [ifindex] {
        // Strict checking wants the device as NDA_IFINDEX (ndm_ifindex must be 0). AF_UNSPEC
        // dumps every family's table (the bridge FDB too: ParseNeighbor skips it).
        MsgPtr msg = BuildNeighMsg(RTM_GETNEIGH, 0, AF_UNSPEC, 0, 0, 0, std::nullopt, nullptr);
        if (msg && ifindex != 0 &&
            nla_put_u32(msg.get(), NDA_IFINDEX, static_cast<uint32_t>(ifindex)) < 0) {
          msg.reset();
        }
        return msg.release();
      },
      [&neighbors, ifindex](nl_msg* msg) {
        std::optional<Neighbor> n = ParseNeighbor(msg);
        if (n && (ifindex == 0 || n->ifindex == ifindex)) neighbors.push_back(*n);
      },
      [&neighbors] { neighbors.clear(); });
  if (ifindex != 0 && outcome.error == ENODEV) return std::vector<Neighbor>{};
  RETURN_IF_ERROR(ToStatus(outcome, "RTM_GETNEIGH dump"));
  if (!neighbors.empty()) {
    ASSIGN_OR_RETURN(auto names, LinkNamesByIndex());
    for (Neighbor& n : neighbors) n.ifname = names[n.ifindex];
  }
  return neighbors;
}

absl::Status LibnlNetlink::ReplaceNeighbor(const Neighbor& neighbor) {
  const std::string context = absl::StrCat("RTM_NEWNEIGH ", neighbor.ToString());
  ASSIGN_OR_RETURN(int index, DeviceIndex(neighbor.ifindex, neighbor.ifname, context));
  MsgPtr msg = BuildNeighMsg(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE,
                             static_cast<uint8_t>(AfOf(neighbor.ip.family)), index,
                             neighbor.permanent ? NUD_PERMANENT : NUD_REACHABLE, 0, neighbor.ip,
                             &neighbor.mac);
  return ToStatus(Request(msg.release()), context);
}

absl::Status LibnlNetlink::DeleteNeighbor(const Neighbor& neighbor) {
  const std::string context = absl::StrCat("RTM_DELNEIGH ", neighbor.ToString());
  absl::StatusOr<int> index = DeviceIndex(neighbor.ifindex, neighbor.ifname, context);
  if (absl::IsNotFound(index.status())) return absl::OkStatus();  // gone with its device
  RETURN_IF_ERROR(index.status());
  MsgPtr msg = BuildNeighMsg(RTM_DELNEIGH, 0, static_cast<uint8_t>(AfOf(neighbor.ip.family)),
                             *index, 0, 0, neighbor.ip, nullptr);
  Outcome outcome = Request(msg.release());
  if (outcome.error == ENOENT || outcome.error == ENODEV) return absl::OkStatus();
  return ToStatus(outcome, context);
}

absl::StatusOr<std::vector<FdbEntry>> LibnlNetlink::ListFdb(int ifindex) {
  std::vector<FdbEntry> entries;
  Outcome outcome = Dump(
      [ifindex] {
        // rtnl_fdb_dump takes the device from ndm_ifindex ("brport").
        return BuildNeighMsg(RTM_GETNEIGH, 0, AF_BRIDGE, ifindex, 0, 0, std::nullopt, nullptr)
            .release();
      },
      [&entries, ifindex](nl_msg* msg) {
        std::optional<FdbEntry> f = ParseFdb(msg);
        if (f && (ifindex == 0 || f->ifindex == ifindex)) entries.push_back(*f);
      },
      [&entries] { entries.clear(); });
  if (ifindex != 0 && outcome.error == ENODEV) return std::vector<FdbEntry>{};
  RETURN_IF_ERROR(ToStatus(outcome, "RTM_GETNEIGH bridge dump"));
  if (!entries.empty()) {
    ASSIGN_OR_RETURN(auto names, LinkNamesByIndex());
    for (FdbEntry& f : entries) f.ifname = names[f.ifindex];
  }
  return entries;
}

absl::Status LibnlNetlink::AddFdb(const FdbEntry& entry, int flags, const std::string& context) {
  if (!entry.dst) return ErrnoError(EINVAL, context);
  ASSIGN_OR_RETURN(int index, DeviceIndex(entry.ifindex, entry.ifname, context));
  MsgPtr msg = BuildNeighMsg(RTM_NEWNEIGH, NLM_F_CREATE | flags, AF_BRIDGE, index, NUD_PERMANENT,
                             NTF_SELF, entry.dst, &entry.mac);
  return ToStatus(Request(msg.release()), context);
}

absl::Status LibnlNetlink::AppendFdb(const FdbEntry& entry) {
  return AddFdb(entry, NLM_F_APPEND,
                absl::StrCat("RTM_NEWNEIGH bridge append ", entry.ToString()));
}

absl::Status LibnlNetlink::ReplaceFdb(const FdbEntry& entry) {
  return AddFdb(entry, NLM_F_REPLACE,
                absl::StrCat("RTM_NEWNEIGH bridge replace ", entry.ToString()));
}

absl::Status LibnlNetlink::DeleteFdb(const FdbEntry& entry) {
  const std::string context = absl::StrCat("RTM_DELNEIGH bridge ", entry.ToString());
  absl::StatusOr<int> index = DeviceIndex(entry.ifindex, entry.ifname, context);
  if (absl::IsNotFound(index.status())) return absl::OkStatus();
  RETURN_IF_ERROR(index.status());
  MsgPtr msg = BuildNeighMsg(RTM_DELNEIGH, 0, AF_BRIDGE, *index, 0, NTF_SELF, entry.dst,
                             &entry.mac);
  Outcome outcome = Request(msg.release());
  if (outcome.error == ENOENT || outcome.error == ENODEV) return absl::OkStatus();
  return ToStatus(outcome, context);
}

// ---- Routes ----

absl::StatusOr<std::vector<Route>> LibnlNetlink::ListRoutes(const RouteFilter& filter) {
  const std::string context = absl::StrCat("RTM_GETROUTE dump table ", filter.table);
  std::vector<Route> routes;
  Outcome outcome = Dump(
      [&filter] {
        // With NETLINK_GET_STRICT_CHK the kernel filters by table and protocol itself.
        const int family = filter.family == 4 ? AF_INET : filter.family == 6 ? AF_INET6 : AF_UNSPEC;
        MsgPtr msg(nlmsg_alloc_simple(RTM_GETROUTE, 0));
        rtmsg rtm{};
        rtm.rtm_family = static_cast<uint8_t>(family);
        rtm.rtm_table = filter.table < 256 ? static_cast<uint8_t>(filter.table)
                                             : static_cast<uint8_t>(RT_TABLE_UNSPEC);
        rtm.rtm_protocol = filter.protocol;
        if (msg && (nlmsg_append(msg.get(), &rtm, sizeof(rtm), NLMSG_ALIGNTO) < 0 ||
                    (filter.table != 0 && nla_put_u32(msg.get(), RTA_TABLE, filter.table) < 0))) {
          msg.reset();
        }
        return msg.release();
      },
      [&routes, &filter](nl_msg* msg) {
        if (std::optional<Route> route = ParseRoute(msg, filter)) routes.push_back(*route);
      },
      [&routes] { routes.clear(); });
  // A table that does not exist (yet) holds no routes.
  if (outcome.error == ENOENT && filter.table != 0) return std::vector<Route>{};
  RETURN_IF_ERROR(ToStatus(outcome, context));

  // Read-backs name their devices too: one link dump, only when some route has a hop.
  auto has_hop = [](const Route& r) { return r.hop.ifindex != 0 || !r.multipath.empty(); };
  if (std::any_of(routes.begin(), routes.end(), has_hop)) {
    std::map<int, std::string> names;
    Outcome links = Dump([] { return BuildLinkDump().release(); },
                         [&names](nl_msg* msg) {
                           if (auto link = IndexAndName(msg)) names[link->first] = link->second;
                         },
                         [&names] { names.clear(); });
    RETURN_IF_ERROR(ToStatus(links, "RTM_GETLINK dump"));
    auto fill = [&names](NextHop& hop) {
      auto it = names.find(hop.ifindex);
      if (it != names.end()) hop.ifname = it->second;
    };
    for (Route& route : routes) {
      if (route.hop.ifindex != 0) fill(route.hop);
      for (NextHop& hop : route.multipath) fill(hop);
    }
  }
  return routes;
}

absl::Status LibnlNetlink::ReplaceRoute(const Route& route) {
  const std::string context = absl::StrCat("RTM_NEWROUTE ", route.ToString());
  if (int error = CheckRoute(route); error != 0) return ErrnoError(error, context);
  // Devices named only by name cost one RTM_GETLINK each.
  Route resolved = route;
  auto resolve = [&](NextHop& hop) -> absl::Status {
    if (hop.ifindex != 0 || hop.ifname.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(hop.ifindex, ResolveIndex(hop.ifname, context));
    return absl::OkStatus();
  };
  if (route.type == RouteType::kUnicast) {
    if (resolved.multipath.empty()) RETURN_IF_ERROR(resolve(resolved.hop));
    for (NextHop& hop : resolved.multipath) RETURN_IF_ERROR(resolve(hop));
  }
  const int family = route.dst.addr.family;
  const unsigned rtm_flags =
      resolved.multipath.empty() && resolved.hop.onlink ? RTNH_F_ONLINK : 0;
  MsgPtr msg = BuildRouteMsg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, family, route.dst,
                             route.table, route.protocol, static_cast<uint8_t>(route.scope),
                             RtmType(route.type), rtm_flags, route.Key().priority);
  if (msg && route.type == RouteType::kUnicast) {
    bool ok = true;
    if (!resolved.multipath.empty()) {
      ok = PutMultipath(msg.get(), resolved.multipath);
    } else {
      // No device: the kernel picks it from the gateway (RTA_OIF 0 would be ENETUNREACH).
      ok = (resolved.hop.ifindex == 0 ||
            nla_put_u32(msg.get(), RTA_OIF, static_cast<uint32_t>(resolved.hop.ifindex)) == 0) &&
           (!resolved.hop.gateway || PutIp(msg.get(), RTA_GATEWAY, *resolved.hop.gateway) == 0);
    }
    if (!ok) msg.reset();
  }
  return ToStatus(Request(msg.release()), context);
}

absl::Status LibnlNetlink::DeleteRoute(const RouteKey& key, uint8_t protocol) {
  const std::string context = absl::StrCat("RTM_DELROUTE ", key.ToString());
  const net::Prefix& dst = key.dst;
  if ((dst.addr.family != 4 && dst.addr.family != 6) || dst.len < 0 || dst.len > dst.addr.Bits() ||
      net::Masked(dst) != dst) {
    return ErrnoError(EINVAL, context);
  }
  // rtm_protocol: the kernel deletes only a route of that protocol (0: any); scope "nowhere"
  // and type unspec match any. IPv6 metric 0 is stored as 1024, so keys carry 1024.
  RouteKey normalised = key;
  if (dst.addr.family == 6 && normalised.priority == 0) normalised.priority = kIpv6DefaultMetric;
  MsgPtr msg = BuildRouteMsg(RTM_DELROUTE, 0, dst.addr.family, dst, key.table, protocol,
                             RT_SCOPE_NOWHERE, RTN_UNSPEC, 0, normalised.priority);
  Outcome outcome = Request(msg.release());
  // ESRCH: no such route, or not of this protocol; both are "not ours to delete any more".
  if (outcome.error == ESRCH || outcome.error == ENOENT) return absl::OkStatus();
  return ToStatus(outcome, context);
}

// ---- Batched routes ----

struct LibnlNetlink::Batch {
  std::vector<uint8_t> out;    // the packed requests
  std::vector<size_t> items;   // request k (sequence number first_seq + k) is items[k]
  uint32_t first_seq = 0;
  size_t last = 0;             // offset of the last request
  std::vector<uint8_t> in = std::vector<uint8_t>(64 * 1024);
};

void LibnlNetlink::FlushBatch(Batch& batch, std::vector<absl::Status>& results,
                              const std::function<std::string(size_t)>& context, bool deleting) {
  if (batch.items.empty()) return;
  const size_t count = batch.items.size();
  std::vector<bool> answered(count, false);
  auto record = [&](size_t k, int error, std::string detail) {
    answered[k] = true;
    if (error == 0 || (deleting && (error == ESRCH || error == ENOENT))) return;
    results[batch.items[k]] = ToStatus(Outcome{error, std::move(detail)}, context(batch.items[k]));
  };
  auto fail_unanswered = [&](int error, const std::string& detail) {
    for (size_t k = 0; k < count; ++k) {
      if (!answered[k]) record(k, error, detail);
    }
  };
  reinterpret_cast<nlmsghdr*>(&batch.out[batch.last])->nlmsg_flags |= NLM_F_ACK;
  const int fd = nl_socket_get_fd(sock_);
  ssize_t sent;
  do {
    sent = send(fd, batch.out.data(), batch.out.size(), 0);
  } while (sent < 0 && errno == EINTR);
  bool acked = false;
  bool overflow = false;
  if (sent < 0) {
    fail_unanswered(errno, "sendmsg of a batch");
  } else {
    // rtnetlink handles the requests inside sendmsg: every answer is queued by now, in order.
    while (!acked) {
      ssize_t n = recv(fd, batch.in.data(), batch.in.size(), overflow ? MSG_DONTWAIT : 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {  // answers were dropped; read what is left, then give up
          overflow = true;
          continue;
        }
        break;
      }
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(batch.in.data()); NLMSG_OK(h, len);
           h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_type != NLMSG_ERROR) continue;
        const uint32_t k = h->nlmsg_seq - batch.first_seq;
        if (k >= count) continue;  // an answer to an exchange abandoned earlier
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        const size_t payload = (h->nlmsg_flags & NLM_F_CAPPED)
                                   ? sizeof(nlmsgerr)
                                   : sizeof(int) + static_cast<size_t>(err->msg.nlmsg_len);
        std::string text = err->error == 0 ? "" : ExtAckText(h, reinterpret_cast<const char*>(err) + NLMSG_ALIGN(payload));
        record(k, -err->error, text.empty() ? "" : "kernel: " + text);
        if (k == count - 1) acked = true;
      }
    }
    if (!acked) {
      fail_unanswered(overflow ? ENOBUFS : errno,
                      overflow ? "answers lost to a full socket buffer" : "reading a batch's answers");
    }
  }
  if (sent < 0 || (!acked && !overflow)) {
    // The socket's state is unknown: start afresh next time.
    nl_socket_free(sock_);
    sock_ = nullptr;
  }
  batch.out.clear();
  batch.items.clear();
}

std::vector<absl::Status> LibnlNetlink::ReplaceRoutes(std::span<const Route> routes) {
  std::vector<absl::Status> results(routes.size());
  auto context = [&](size_t i) { return absl::StrCat("RTM_NEWROUTE ", routes[i].ToString()); };
  // Devices named only by name first (one RTM_GETLINK per name), so that no other exchange
  // falls between the requests of a batch.
  std::map<std::string, int, std::less<>> indexes;  // successes only: a failure is per route
  std::map<size_t, Route> resolved;
  for (size_t i = 0; i < routes.size(); ++i) {
    const Route& route = routes[i];
    if (int error = CheckRoute(route); error != 0) {
      results[i] = ErrnoError(error, context(i));
      continue;
    }
    auto unresolved = [](const NextHop& hop) { return hop.ifindex == 0 && !hop.ifname.empty(); };
    if (route.type != RouteType::kUnicast ||
        (!unresolved(route.hop) && std::none_of(route.multipath.begin(), route.multipath.end(), unresolved))) {
      continue;
    }
    Route copy = route;
    absl::Status failed;
    auto resolve = [&](NextHop& hop) {
      if (!unresolved(hop) || !failed.ok()) return;
      if (auto it = indexes.find(hop.ifname); it != indexes.end()) {
        hop.ifindex = it->second;
        return;
      }
      absl::StatusOr<int> index = ResolveIndex(hop.ifname, context(i));
      if (index.ok()) {
        hop.ifindex = indexes[hop.ifname] = *index;
      } else {
        failed = index.status();
      }
    };
    if (copy.multipath.empty()) resolve(copy.hop);
    for (NextHop& hop : copy.multipath) resolve(hop);
    if (failed.ok()) {
      resolved.emplace(i, std::move(copy));
    } else {
      results[i] = failed;
    }
  }
  if (sock_ == nullptr) {
    if (absl::Status s = Connect(); !s.ok()) {
      for (size_t i = 0; i < routes.size(); ++i) {
        if (results[i].ok()) results[i] = Annotate(s, context(i));
      }
      return results;
    }
  }
  Batch batch;
  batch.out.reserve(kBatchBytes + 1024);
  const uint32_t port = nl_socket_get_local_port(sock_);
  for (size_t i = 0; i < routes.size(); ++i) {
    if (!results[i].ok()) continue;
    auto r = resolved.find(i);
    const Route& route = r == resolved.end() ? routes[i] : r->second;
    const uint32_t seq = nl_socket_use_seq(sock_);
    if (batch.items.empty()) batch.first_seq = seq;
    batch.last = batch.out.size();
    AppendNewRoute(batch.out, seq, port, route);
    batch.items.push_back(i);
    if (batch.out.size() >= kBatchBytes) {
      FlushBatch(batch, results, context, /*deleting=*/false);
      if (sock_ == nullptr && !Connect().ok()) break;
    }
  }
  if (sock_ != nullptr) FlushBatch(batch, results, context, /*deleting=*/false);
  for (size_t k = 0; k < batch.items.size(); ++k) {
    results[batch.items[k]] = ErrnoError(EIO, context(batch.items[k]) + ": rtnetlink socket lost");
  }
  return results;
}

std::vector<absl::Status> LibnlNetlink::DeleteRoutes(std::span<const RouteKey> keys,
                                                     uint8_t protocol) {
  std::vector<absl::Status> results(keys.size());
  auto context = [&](size_t i) { return absl::StrCat("RTM_DELROUTE ", keys[i].ToString()); };
  if (sock_ == nullptr) {
    if (absl::Status s = Connect(); !s.ok()) {
      for (size_t i = 0; i < keys.size(); ++i) results[i] = Annotate(s, context(i));
      return results;
    }
  }
  Batch batch;
  batch.out.reserve(kBatchBytes + 1024);
  const uint32_t port = nl_socket_get_local_port(sock_);
  for (size_t i = 0; i < keys.size(); ++i) {
    const RouteKey& key = keys[i];
    if (!ValidKey(key)) {
      results[i] = ErrnoError(EINVAL, context(i));
      continue;
    }
    uint32_t priority = key.priority;
    if (key.dst.addr.family == 6 && priority == 0) priority = kIpv6DefaultMetric;
    const uint32_t seq = nl_socket_use_seq(sock_);
    if (batch.items.empty()) batch.first_seq = seq;
    batch.last = batch.out.size();
    RawRequest m(batch.out, RTM_DELROUTE, 0, seq, port);
    AppendRouteHeader(m, key.dst.addr.family, key.dst, key.table, protocol, RT_SCOPE_NOWHERE,
                      RTN_UNSPEC, 0, priority);
    m.Finish();
    batch.items.push_back(i);
    if (batch.out.size() >= kBatchBytes) {
      FlushBatch(batch, results, context, /*deleting=*/true);
      if (sock_ == nullptr && !Connect().ok()) break;
    }
  }
  if (sock_ != nullptr) FlushBatch(batch, results, context, /*deleting=*/true);
  for (size_t k = 0; k < batch.items.size(); ++k) {
    results[batch.items[k]] = ErrnoError(EIO, context(batch.items[k]) + ": rtnetlink socket lost");
  }
  return results;
}

// ---- Sysctls ----

absl::StatusOr<int> LibnlNetlink::OpenSysctl(std::string_view path, int flags,
                                             const std::string& context) {
  if (!ValidSysctlPath(path)) return ErrnoError(EINVAL, context);
  const std::string full = absl::StrCat("/proc/sys/", ToAbsl(path));
  int fd = -1;
  int error = 0;
  // /proc/sys/net resolves against the opener's namespace and stays bound to it once open.
  RETURN_IF_ERROR(InNetns(netns_fd_, [&] {
    fd = open(full.c_str(), flags | O_CLOEXEC);
    error = errno;
  }));
  if (fd < 0) return ErrnoError(error, context);
  return fd;
}

absl::StatusOr<std::string> LibnlNetlink::ReadSysctl(std::string_view path) {
  const std::string context = absl::StrCat("read /proc/sys/", ToAbsl(path));
  ASSIGN_OR_RETURN(int fd, OpenSysctl(path, O_RDONLY, context));
  std::string value;
  char buf[512];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      close(fd);
      return ErrnoError(error, context);
    }
    if (n == 0) break;
    value.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
  return value;
}

absl::Status LibnlNetlink::WriteSysctl(std::string_view path, std::string_view value) {
  const std::string context =
      absl::StrCat("write /proc/sys/", ToAbsl(path), " = ", ToAbsl(value));
  ASSIGN_OR_RETURN(int fd, OpenSysctl(path, O_WRONLY, context));
  ssize_t n;
  do {
    n = write(fd, value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  int error = n < 0 ? errno : (static_cast<size_t>(n) != value.size() ? EIO : 0);
  close(fd);
  if (error != 0) return ErrnoError(error, context);
  return absl::OkStatus();
}

}  // namespace calico::kernel
