// policy_probe: the traffic end of tests/integration/felixd_policy, run inside pod namespaces.
//
//   policy_probe serve tcp:80 tcp:5432 udp:53 ...
//       Echo servers on every address (IPv4 and IPv6) until killed. TCP: echoes what it reads
//       and closes at EOF. UDP: echoes each datagram from the address it was sent to.
//   policy_probe probe [--timeout-ms=500] [--source=IP] [--source6=IP] TARGET...
//       TARGET is tcp:IP:PORT, udp:IP:PORT or icmp:IP (IPv6 as tcp:[fd77::5]:80, icmp:fd77::5).
//       All targets run concurrently; one line per target, in order: "TARGET ok|blocked|refused|
//       error <why>". ok = the echo came back within the timeout; blocked = nothing came back
//       (dropped traffic); refused = a TCP RST or an ICMP unreachable (the packet got through).
//       --source / --source6 bind the sockets to that source address first (it must be on an
//       interface of the namespace). Exit 0 unless a target could not be parsed.
// Needs root for ICMP (raw sockets). No dependencies beyond libc.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

bool ParseAddr(const std::string& ip, int port, Addr* out) {
  std::string host = ip;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto* a4 = reinterpret_cast<sockaddr_in*>(&out->ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
  if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(port));
    out->len = sizeof(sockaddr_in);
    out->family = AF_INET;
    return true;
  }
  out->ss = {};
  if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    out->len = sizeof(sockaddr_in6);
    out->family = AF_INET6;
    return true;
  }
  return false;
}

// ---- serve ----

int Listen(int family, int type, int port) {
  int fd = socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  Addr a;
  if (family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    ParseAddr("::", port, &a);
  } else {
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    ParseAddr("0.0.0.0", port, &a);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&a.ss), a.len) != 0) {
    std::fprintf(stderr, "bind %s port %d: %s\n", family == AF_INET6 ? "v6" : "v4", port, std::strerror(errno));
    close(fd);
    return -1;
  }
  if (type == SOCK_STREAM && listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Echoes one datagram back from the address it was sent to (the reply must match the client's
// conntrack entry; a host with several addresses would otherwise pick another source).
void EchoDatagram(int fd, int family) {
  char buf[2048];
  char cbuf[256];
  sockaddr_storage peer{};
  iovec iov{buf, sizeof(buf)};
  msghdr msg{};
  msg.msg_name = &peer;
  msg.msg_namelen = sizeof(peer);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n < 0) return;
  char out_cbuf[256]{};
  msghdr reply{};
  iovec riov{buf, static_cast<size_t>(n)};
  reply.msg_name = &peer;
  reply.msg_namelen = msg.msg_namelen;
  reply.msg_iov = &riov;
  reply.msg_iovlen = 1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (family == AF_INET && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof(info));
      in_pktinfo out{};
      out.ipi_spec_dst = info.ipi_addr;
      reply.msg_control = out_cbuf;
      reply.msg_controllen = CMSG_SPACE(sizeof(out));
      cmsghdr* oc = CMSG_FIRSTHDR(&reply);
      oc->cmsg_level = IPPROTO_IP;
      oc->cmsg_type = IP_PKTINFO;
      oc->cmsg_len = CMSG_LEN(sizeof(out));
      std::memcpy(CMSG_DATA(oc), &out, sizeof(out));
    } else if (family == AF_INET6 && c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof(info));
      in6_pktinfo out{};
      out.ipi6_addr = info.ipi6_addr;
      reply.msg_control = out_cbuf;
      reply.msg_controllen = CMSG_SPACE(sizeof(out));
      cmsghdr* oc = CMSG_FIRSTHDR(&reply);
      oc->cmsg_level = IPPROTO_IPV6;
      oc->cmsg_type = IPV6_PKTINFO;
      oc->cmsg_len = CMSG_LEN(sizeof(out));
      std::memcpy(CMSG_DATA(oc), &out, sizeof(out));
    }
  }
  sendmsg(fd, &reply, MSG_DONTWAIT);
}

int Serve(const std::vector<std::string>& specs) {
  signal(SIGPIPE, SIG_IGN);
  struct Listener {
    int fd;
    int family;
    bool tcp;
  };
  std::vector<Listener> listeners;
  for (const std::string& spec : specs) {
    size_t colon = spec.find(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "bad spec %s (tcp:PORT or udp:PORT)\n", spec.c_str());
      return 2;
    }
    std::string proto = spec.substr(0, colon);
    int port = std::atoi(spec.c_str() + colon + 1);
    bool tcp = proto == "tcp";
    if (!tcp && proto != "udp") {
      std::fprintf(stderr, "bad protocol in %s\n", spec.c_str());
      return 2;
    }
    for (int family : {AF_INET, AF_INET6}) {
      int fd = Listen(family, tcp ? SOCK_STREAM : SOCK_DGRAM, port);
      // IPv6 may be absent in a namespace without v6 addresses; IPv4 must work.
      if (fd < 0 && family == AF_INET) return 1;
      if (fd >= 0) listeners.push_back({fd, family, tcp});
    }
  }
  std::printf("serving %zu sockets\n", listeners.size());
  std::fflush(stdout);
  std::vector<int> conns;
  while (true) {
    std::vector<pollfd> fds;
    for (const Listener& l : listeners) fds.push_back({l.fd, POLLIN, 0});
    for (int c : conns) fds.push_back({c, POLLIN, 0});
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    std::vector<int> keep;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (i < listeners.size()) {
        if (!(fds[i].revents & POLLIN)) continue;
        const Listener& l = listeners[i];
        if (l.tcp) {
          int c = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c >= 0) keep.push_back(c);
        } else {
          EchoDatagram(l.fd, l.family);
        }
        continue;
      }
      int c = fds[i].fd;
      if (!fds[i].revents) {
        keep.push_back(c);
        continue;
      }
      char buf[2048];
      ssize_t n = read(c, buf, sizeof(buf));
      if (n > 0) {
        (void)!write(c, buf, static_cast<size_t>(n));
        keep.push_back(c);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        keep.push_back(c);
      } else {
        close(c);
      }
    }
    conns = std::move(keep);
  }
}

// ---- probe ----

using Clock = std::chrono::steady_clock;

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

struct Options {
  int timeout_ms = 500;
  std::string source4, source6;
};

bool BindSource(int fd, int family, const Options& o, std::string* err) {
  const std::string& src = family == AF_INET6 ? o.source6 : o.source4;
  if (src.empty()) return true;
  Addr a;
  if (!ParseAddr(src, 0, &a) || a.family != family) {
    *err = "bad source " + src;
    return false;
  }
  if (family == AF_INET6) {
    // The address may be fresh: do not wait for DAD (the test adds it with nodad anyway).
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&a.ss), a.len) != 0) {
    *err = "bind " + src + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

// Waits for `events` on fd until the deadline; true when ready.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, MsLeft(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

std::string ProbeTcp(const Addr& dst, const Options& o, Clock::time_point deadline) {
  int fd = socket(dst.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("error socket: ") + std::strerror(errno);
  std::string err;
  if (!BindSource(fd, dst.family, o, &err)) {
    close(fd);
    return "error " + err;
  }
  std::string result = "blocked";
  if (connect(fd, reinterpret_cast<const sockaddr*>(&dst.ss), dst.len) != 0 && errno != EINPROGRESS) {
    result = errno == ECONNREFUSED ? "refused" : std::string("error connect: ") + std::strerror(errno);
  } else if (WaitFor(fd, POLLOUT, deadline)) {
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr == ECONNREFUSED) {
      result = "refused";
    } else if (soerr == ETIMEDOUT || soerr == EHOSTUNREACH || soerr == ENETUNREACH) {
      result = soerr == ETIMEDOUT ? "blocked" : "refused";
    } else if (soerr != 0) {
      result = std::string("error ") + std::strerror(soerr);
    } else {
      const char msg[] = "probe";
      if (write(fd, msg, sizeof(msg) - 1) == static_cast<ssize_t>(sizeof(msg) - 1) && WaitFor(fd, POLLIN, deadline)) {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof(buf));
        result = n > 0 ? "ok" : "blocked";
      }
    }
  }
  close(fd);
  return result;
}

std::string ProbeUdp(const Addr& dst, const Options& o, Clock::time_point deadline) {
  int fd = socket(dst.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("error socket: ") + std::strerror(errno);
  std::string err;
  if (!BindSource(fd, dst.family, o, &err)) {
    close(fd);
    return "error " + err;
  }
  std::string result = "blocked";
  if (connect(fd, reinterpret_cast<const sockaddr*>(&dst.ss), dst.len) != 0) {
    result = std::string("error connect: ") + std::strerror(errno);
  } else {
    const char msg[] = "probe";
    // Two sends, in case the first one is lost to neighbour resolution.
    for (int attempt = 0; attempt < 2 && result == "blocked"; ++attempt) {
      if (send(fd, msg, sizeof(msg) - 1, 0) < 0 && errno == ECONNREFUSED) {
        result = "refused";
        break;
      }
      Clock::time_point step = attempt == 0 ? Clock::now() + (deadline - Clock::now()) / 2 : deadline;
      if (WaitFor(fd, POLLIN, step)) {
        char buf[64];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) result = "ok";
        else if (n < 0 && errno == ECONNREFUSED) result = "refused";
      }
    }
  }
  close(fd);
  return result;
}

uint16_t Checksum(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(p[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

std::atomic<uint16_t> g_seq{1};

std::string ProbeIcmp(const Addr& dst, const Options& o, Clock::time_point deadline) {
  const bool v6 = dst.family == AF_INET6;
  int fd = socket(dst.family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, v6 ? static_cast<int>(IPPROTO_ICMPV6) : static_cast<int>(IPPROTO_ICMP));
  if (fd < 0) return std::string("error raw socket: ") + std::strerror(errno);
  std::string err;
  if (!BindSource(fd, dst.family, o, &err)) {
    close(fd);
    return "error " + err;
  }
  // Only packets from the target (raw sockets see every ICMP packet of the namespace).
  if (connect(fd, reinterpret_cast<const sockaddr*>(&dst.ss), dst.len) != 0) {
    close(fd);
    return std::string("error connect: ") + std::strerror(errno);
  }
  const uint16_t id = static_cast<uint16_t>(getpid() & 0xffff);
  std::string result = "blocked";
  for (int attempt = 0; attempt < 2 && result == "blocked"; ++attempt) {
    const uint16_t seq = g_seq++;
    uint8_t pkt[16]{};
    pkt[0] = v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
    pkt[4] = static_cast<uint8_t>(id >> 8);
    pkt[5] = static_cast<uint8_t>(id);
    pkt[6] = static_cast<uint8_t>(seq >> 8);
    pkt[7] = static_cast<uint8_t>(seq);
    std::memcpy(pkt + 8, "calprobe", 8);
    if (!v6) {
      uint16_t c = Checksum(pkt, sizeof(pkt));
      std::memcpy(pkt + 2, &c, 2);
    }  // ICMPv6: the kernel fills in the checksum
    if (send(fd, pkt, sizeof(pkt), 0) < 0) {
      result = std::string("error send: ") + std::strerror(errno);
      break;
    }
    Clock::time_point step = attempt == 0 ? Clock::now() + (deadline - Clock::now()) / 2 : deadline;
    while (result == "blocked" && WaitFor(fd, POLLIN, step)) {
      uint8_t buf[1500];
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) continue;
      const uint8_t* icmp = buf;
      ssize_t len = n;
      if (!v6) {  // IPv4 raw sockets deliver the IP header too
        size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;
        if (static_cast<ssize_t>(ihl) >= n) continue;
        icmp += ihl;
        len -= static_cast<ssize_t>(ihl);
      }
      if (len < 8) continue;
      const uint8_t reply_type = v6 ? ICMP6_ECHO_REPLY : ICMP_ECHOREPLY;
      const uint8_t unreach = v6 ? ICMP6_DST_UNREACH : ICMP_DEST_UNREACH;
      if (icmp[0] == reply_type && icmp[4] == pkt[4] && icmp[5] == pkt[5]) {
        result = "ok";
      } else if (icmp[0] == unreach) {
        result = "refused";
      }
    }
  }
  close(fd);
  return result;
}

std::string RunTarget(const std::string& target, const Options& o) {
  size_t colon = target.find(':');
  if (colon == std::string::npos) return "error bad target";
  std::string proto = target.substr(0, colon), rest = target.substr(colon + 1);
  Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(o.timeout_ms);
  Addr dst;
  if (proto == "icmp") {
    if (!ParseAddr(rest, 0, &dst)) return "error bad address " + rest;
    return ProbeIcmp(dst, o, deadline);
  }
  size_t last = rest.rfind(':');
  if (last == std::string::npos) return "error no port";
  if (!ParseAddr(rest.substr(0, last), std::atoi(rest.c_str() + last + 1), &dst)) {
    return "error bad address " + rest;
  }
  if (proto == "tcp") return ProbeTcp(dst, o, deadline);
  if (proto == "udp") return ProbeUdp(dst, o, deadline);
  return "error bad protocol " + proto;
}

int Probe(const std::vector<std::string>& args) {
  Options o;
  std::vector<std::string> targets;
  for (const std::string& a : args) {
    if (a.rfind("--timeout-ms=", 0) == 0) {
      o.timeout_ms = std::atoi(a.c_str() + 13);
    } else if (a.rfind("--source=", 0) == 0) {
      std::string s = a.substr(9);
      (s.find(':') != std::string::npos ? o.source6 : o.source4) = s;
    } else if (a.rfind("--source6=", 0) == 0) {
      o.source6 = a.substr(10);
    } else {
      targets.push_back(a);
    }
  }
  std::vector<std::string> results(targets.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < targets.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = RunTarget(targets[i], o); });
  }
  for (std::thread& t : threads) t.join();
  int rc = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    std::printf("%s %s\n", targets[i].c_str(), results[i].c_str());
    if (results[i].rfind("error bad", 0) == 0) rc = 2;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: policy_probe serve tcp:PORT udp:PORT ... | probe [--timeout-ms=N] "
                         "[--source=IP] TARGET...\n");
    return 2;
  }
  std::string mode = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (mode == "serve") return Serve(args);
  if (mode == "probe") return Probe(args);
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
