#include "tests/bench/bgp/kernel_floor.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/bench/bgp/feeder.h"

namespace calico::birdd::bench {
namespace {

constexpr size_t kBatchBytes = 128 * 1024;

void PutAttr(std::vector<uint8_t>& buf, uint16_t type, const void* data, size_t len) {
  size_t at = buf.size();
  buf.resize(at + RTA_ALIGN(RTA_LENGTH(len)), 0);
  auto* rta = reinterpret_cast<rtattr*>(&buf[at]);
  rta->rta_type = type;
  rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(rta), data, len);
}

// Reads what the kernel queued: error messages (counted) and the ack of `last_seq` (then
// `acked`). Without `block` it stops when nothing is queued, else once acked. False on a
// socket failure.
bool Drain(int fd, bool block, uint32_t last_seq, size_t& errors, bool& acked) {
  std::vector<uint8_t> buf(65536);
  while (!(block && acked)) {
    ssize_t n = recv(fd, buf.data(), buf.size(), block ? 0 : MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN && !block;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, static_cast<size_t>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      if (err->error != 0) ++errors;
      if (h->nlmsg_seq == last_seq) acked = true;
    }
  }
  return true;
}

FloorResult Insert(int fd, const std::vector<net::Prefix>& prefixes, const net::IpAddress& gateway,
                   int ifindex, std::string& error) {
  FloorResult result;
  std::vector<uint8_t> buf;
  buf.reserve(kBatchBytes + 256);
  uint32_t seq = 0;
  const uint32_t last_seq = static_cast<uint32_t>(prefixes.size());
  bool acked = false;
  int64_t start = MonoNs();
  auto flush = [&]() {
    if (buf.empty()) return true;
    ssize_t n = send(fd, buf.data(), buf.size(), 0);
    buf.clear();
    if (n < 0) {
      error = absl::StrCat("sendmsg: ", std::strerror(errno));
      return false;
    }
    return Drain(fd, false, last_seq, result.errors, acked);
  };
  for (size_t i = 0; i < prefixes.size(); ++i) {
    const net::Prefix& p = prefixes[i];
    size_t at = buf.size();
    buf.resize(at + NLMSG_LENGTH(sizeof(rtmsg)), 0);
    auto* h = reinterpret_cast<nlmsghdr*>(&buf[at]);
    h->nlmsg_type = RTM_NEWROUTE;
    const bool last = i + 1 == prefixes.size();
    h->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE |
                                           (last ? NLM_F_ACK : 0));
    h->nlmsg_seq = ++seq;
    auto* rtm = static_cast<rtmsg*>(NLMSG_DATA(h));
    rtm->rtm_family = AF_INET;
    rtm->rtm_dst_len = static_cast<uint8_t>(p.len);
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = 12;  // bird
    rtm->rtm_scope = RT_SCOPE_UNIVERSE;
    rtm->rtm_type = RTN_UNICAST;
    uint32_t oif = static_cast<uint32_t>(ifindex);
    PutAttr(buf, RTA_DST, p.addr.bytes.data(), 4);
    PutAttr(buf, RTA_GATEWAY, gateway.bytes.data(), 4);
    PutAttr(buf, RTA_OIF, &oif, sizeof oif);
    reinterpret_cast<nlmsghdr*>(&buf[at])->nlmsg_len = static_cast<uint32_t>(buf.size() - at);
    if (buf.size() >= kBatchBytes && !flush()) return result;
  }
  if (!flush()) return result;
  if (!Drain(fd, true, last_seq, result.errors, acked)) error = absl::StrCat("recv: ", std::strerror(errno));
  result.elapsed_ns = MonoNs() - start;
  return result;
}

}  // namespace

absl::StatusOr<FloorResult> RawBatchedInsert(const std::string& netns_path,
                                             const std::vector<net::Prefix>& prefixes,
                                             const net::IpAddress& gateway, int ifindex) {
  FloorResult result;
  std::string error;
  // The socket belongs to the namespace of the thread that opens it.
  std::thread([&] {
    int ns = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
      error = absl::StrCat("setns ", netns_path, ": ", std::strerror(errno));
      if (ns >= 0) close(ns);
      return;
    }
    close(ns);
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
      error = absl::StrCat("socket: ", std::strerror(errno));
      return;
    }
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    int size = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    result = Insert(fd, prefixes, gateway, ifindex, error);
    close(fd);
  }).join();
  if (!error.empty()) return absl::InternalError(error);
  return result;
}

}  // namespace calico::birdd::bench
