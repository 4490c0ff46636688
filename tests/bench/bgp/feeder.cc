#include "tests/bench/bgp/feeder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "birdd/wire/decode.h"
#include "birdd/wire/encode.h"
#include "birdd/wire/framer.h"
#include "birdd/wire/pack.h"

namespace calico::birdd::bench {

int64_t MonoNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::vector<net::Prefix> BenchPrefixes(int prefixes) {
  std::vector<net::Prefix> out;
  out.reserve(static_cast<size_t>(prefixes));
  for (uint32_t i = 0; i < static_cast<uint32_t>(prefixes); ++i) {
    net::Prefix p;
    p.addr.family = 4;
    uint32_t addr = (16u << 24) + (i << 8);
    p.addr.bytes[0] = static_cast<uint8_t>(addr >> 24);
    p.addr.bytes[1] = static_cast<uint8_t>(addr >> 16);
    p.addr.bytes[2] = static_cast<uint8_t>(addr >> 8);
    p.len = 24;
    out.push_back(p);
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> BuildUpdates(int prefixes, int per_update,
                                                  const net::IpAddress& next_hop) {
  std::vector<net::Prefix> all = BenchPrefixes(prefixes);
  wire::SessionContext session;
  session.four_octet_as = true;
  wire::NextHop nh;
  nh.address = next_hop;
  std::vector<uint8_t> out;
  out.reserve(static_cast<size_t>(prefixes) * 4 + static_cast<size_t>(prefixes / per_update + 1) * 64);
  for (size_t at = 0, k = 0; at < all.size(); at += static_cast<size_t>(per_update), ++k) {
    wire::PathAttributes attrs;
    attrs.origin = wire::Origin::kIgp;
    wire::AsSegment seg;
    seg.type = wire::AsSegmentType::kAsSequence;
    seg.asns = {65001, static_cast<uint32_t>(100000 + k)};
    attrs.as_path = wire::AsPath{seg};
    size_t n = std::min(all.size() - at, static_cast<size_t>(per_update));
    absl::StatusOr<size_t> packed = wire::EncodeAnnouncements(
        attrs, nh, std::span<const net::Prefix>(all.data() + at, n), session, out);
    if (!packed.ok()) return packed.status();
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Feeder>> Feeder::Start(FeederConfig config) {
  if (config.updates == nullptr) return absl::InvalidArgumentError("feeder without updates");
  std::unique_ptr<Feeder> f(new Feeder(std::move(config)));
  f->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (f->wake_fd_ < 0) return absl::InternalError("eventfd");
  std::mutex ready_mu;
  std::condition_variable ready_cv;
  bool ready = false;
  std::string error;
  // The socket belongs to the namespace of the thread that opens it.
  f->thread_ = std::thread([&, raw = f.get()] {
    int ns = open(raw->config_.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    int fd = -1;
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
      error = absl::StrCat("setns ", raw->config_.netns_path, ": ", std::strerror(errno));
    } else {
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_port = htons(179);
      std::memcpy(&sin.sin_addr, raw->config_.address.bytes.data(), 4);
      if (bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 || listen(fd, 4) != 0) {
        error = absl::StrCat("bind/listen ", raw->config_.address.ToString(), ":179: ",
                             std::strerror(errno));
        close(fd);
        fd = -1;
      }
    }
    if (ns >= 0) close(ns);
    raw->listen_fd_ = fd;
    {
      std::lock_guard<std::mutex> lock(ready_mu);
      ready = true;
    }
    ready_cv.notify_all();
    if (fd >= 0) raw->Run();
  });
  {
    std::unique_lock<std::mutex> lock(ready_mu);
    ready_cv.wait(lock, [&] { return ready; });
  }
  if (!error.empty()) return absl::InternalError(error);
  return f;
}

Feeder::~Feeder() {
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Feeder::Fail(std::string what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (error_.empty()) error_ = std::move(what);
  cv_.notify_all();
}

std::string Feeder::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

std::optional<int64_t> Feeder::WaitEstablished(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
               [&] { return established_ns_.has_value() || !error_.empty(); });
  return established_ns_;
}

std::optional<int64_t> Feeder::WaitSent(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
               [&] { return sent_ns_.has_value() || !error_.empty(); });
  return sent_ns_;
}

void Feeder::Run() {
  // Waits until `fd` has something for `events`; false once we are told to stop.
  auto wait = [&](int fd, short events, int timeout_ms) -> int {
    pollfd fds[2] = {{fd, events, 0}, {wake_fd_, POLLIN, 0}};
    int n = poll(fds, 2, timeout_ms);
    if (n < 0 && errno == EINTR) return 0;
    if (fds[1].revents) return -1;
    return n;
  };
  int rc = 0;
  while ((rc = wait(listen_fd_, POLLIN, 1000)) == 0) {
  }
  if (rc < 0) return;
  int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return Fail(absl::StrCat("accept: ", std::strerror(errno)));
  auto send_all = [&](const uint8_t* data, size_t size) -> bool {
    while (size > 0) {
      ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        Fail(absl::StrCat("send: ", std::strerror(errno)));
        return false;
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  };
  wire::Open open;
  open.my_as = config_.asn;
  open.hold_time = 240;
  open.bgp_id = (uint32_t{config_.address.bytes[0]} << 24) | (uint32_t{config_.address.bytes[1]} << 16) |
                (uint32_t{config_.address.bytes[2]} << 8) | config_.address.bytes[3];
  open.capabilities.multiprotocol = {wire::kIpv4Unicast};
  open.capabilities.route_refresh = true;
  open.capabilities.four_octet_as = config_.asn;
  std::vector<uint8_t> hello;
  (void)wire::Encode(open, hello);
  std::vector<uint8_t> keepalive;
  (void)wire::Encode(wire::Keepalive{}, keepalive);
  if (!send_all(hello.data(), hello.size())) {
    close(fd);
    return;
  }
  wire::Framer framer;
  wire::SessionContext session;
  session.four_octet_as = true;
  bool got_open = false, established = false;
  std::vector<uint8_t> in(65536);
  while (!established) {
    if ((rc = wait(fd, POLLIN, 1000)) < 0) break;
    if (rc == 0) continue;
    ssize_t n = recv(fd, in.data(), in.size(), 0);
    if (n <= 0) {
      Fail(n == 0 ? "peer closed during the handshake" : std::strerror(errno));
      break;
    }
    framer.Feed(std::span<const uint8_t>(in.data(), static_cast<size_t>(n)));
    for (;;) {
      wire::Framer::Frame frame = framer.Next();
      if (frame.kind == wire::Framer::Frame::Kind::kNeedMore) break;
      if (frame.kind == wire::Framer::Frame::Kind::kError) {
        Fail("bad framing from the peer");
        break;
      }
      wire::MessageType type = wire::PeekType(frame.message);
      if (type == wire::MessageType::kOpen) {
        got_open = true;
        if (!send_all(keepalive.data(), keepalive.size())) break;
      } else if (type == wire::MessageType::kKeepalive && got_open) {
        established = true;
      } else if (type == wire::MessageType::kNotification) {
        wire::Decoded d = wire::Decode(frame.message, session);
        const auto* m = std::get_if<wire::Message>(&d);
        const auto* note = m ? std::get_if<wire::Notification>(m) : nullptr;
        Fail(absl::StrCat("NOTIFICATION from the peer: ", note ? note->ToString() : "?"));
        break;
      }
    }
    if (!error().empty()) break;
  }
  if (established) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      established_ns_ = MonoNs();
    }
    cv_.notify_all();
    if (send_all(config_.updates->data(), config_.updates->size())) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        sent_ns_ = MonoNs();
      }
      cv_.notify_all();
    }
    // Keep the session up: drain what the peer sends, KEEPALIVE every 10 s (hold time 240).
    int64_t last_keepalive = MonoNs();
    while ((rc = wait(fd, POLLIN, 1000)) >= 0) {
      if (rc > 0) {
        ssize_t n = recv(fd, in.data(), in.size(), 0);
        if (n == 0 || (n < 0 && errno != EINTR)) break;
      }
      if (MonoNs() - last_keepalive > 10'000'000'000) {
        if (!send_all(keepalive.data(), keepalive.size())) break;
        last_keepalive = MonoNs();
      }
    }
  }
  close(fd);
}

}  // namespace calico::birdd::bench
