#include "birdd/peers/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/errno_status.h"
#include "common/log/log.h"

namespace calico::birdd::peers {
namespace {

net::IpAddress FromSockaddr(const sockaddr_storage& addr) {
  net::IpAddress ip;
  if (addr.ss_family == AF_INET) {
    ip.family = 4;
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, 4);
    return ip;
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&addr);
  // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
  if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
    ip.family = 4;
    std::memcpy(ip.bytes.data(), reinterpret_cast<const uint8_t*>(&sin6->sin6_addr) + 12, 4);
    return ip;
  }
  ip.family = 6;
  std::memcpy(ip.bytes.data(), &sin6->sin6_addr, 16);
  return ip;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Create(EventLoop& loop,
                                                           const net::IpAddress& address,
                                                           uint16_t port) {
  int family = address.family == 4 ? AF_INET : AF_INET6;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Our SYN-ACKs leave with TTL 255 so that a peer with GTSM (ttlSecurity, RFC 5082) accepts
  // them; each accepted session sets its own minimum TTL. (An IPv6 socket also carries IPv4.)
  int ttl = 255;
  setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl);
  sockaddr_storage addr{};
  socklen_t len;
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&addr);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, address.bytes.data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&addr);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, address.bytes.data(), 16);
    len = sizeof(sockaddr_in6);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return ErrnoError(e, absl::StrCat("listen on ", address.ToString(), " port ", port));
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  uint16_t actual = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                            : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  std::unique_ptr<Listener> l(new Listener(loop, fd, actual, address.family));
  Listener* self = l.get();
  if (absl::Status s = loop.Watch(fd, true, false, [self](uint32_t) { self->OnAcceptable(); }); !s.ok()) {
    return s;
  }
  return l;
}

Listener::~Listener() {
  loop_.Unwatch(fd_);
  close(fd_);
}

absl::Status Listener::AddPeer(PeerSession* session) {
  const PeerConfig& c = session->config();
  if (!c.password.empty()) {
    // The kernel checks an incoming SYN against the listening socket's key for its source.
    // On a dual-stack socket an IPv4 peer's key is for its v4-mapped address.
    net::IpAddress key_address = c.peer_address;
    if (family_ == 6 && key_address.family == 4) {
      net::IpAddress mapped;
      mapped.family = 6;
      mapped.bytes[10] = 0xff;
      mapped.bytes[11] = 0xff;
      std::copy(c.peer_address.bytes.begin(), c.peer_address.bytes.begin() + 4, mapped.bytes.begin() + 12);
      key_address = mapped;
    }
    absl::Status s = SetMd5(fd_, key_address, c.password);
    if (!s.ok()) return s;
  }
  peers_[c.peer_address] = session;
  return absl::OkStatus();
}

void Listener::RemovePeer(const net::IpAddress& address) { peers_.erase(address); }

void Listener::OnAcceptable() {
  while (true) {
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&from), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    net::IpAddress ip = FromSockaddr(from);
    auto it = peers_.find(ip);
    if (it == peers_.end()) {
      log::Warn("unknown_peer_connection", {{"from", ip.ToString()}});
      close(fd);
      continue;
    }
    it->second->Adopt(fd);
  }
}

}  // namespace calico::birdd::peers
