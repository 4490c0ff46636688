#include "birdd/peers/session.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "birdd/wire/decode.h"
#include "birdd/wire/encode.h"
#include "common/log/log.h"

#ifndef IPV6_MINHOPCOUNT
#define IPV6_MINHOPCOUNT 73  // linux/in6.h; glibc's netinet/in.h lacks it
#endif

namespace calico::birdd::peers {
namespace {

socklen_t ToSockaddr(const net::IpAddress& ip, uint16_t port, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof out);
  if (ip.family == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, ip.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  std::memcpy(&sin6->sin6_addr, ip.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

}  // namespace

// TCP-MD5 (RFC 2385): the key is per peer address, set on the socket before connect/listen.
absl::Status SetMd5(int fd, const net::IpAddress& peer, const std::string& password) {
  tcp_md5sig sig{};
  sockaddr_storage addr;
  ToSockaddr(peer, 0, addr);
  std::memcpy(&sig.tcpm_addr, &addr, sizeof addr);
  if (password.size() > TCP_MD5SIG_MAXKEYLEN) {
    return absl::InvalidArgumentError("BGP password longer than 80 bytes");
  }
  sig.tcpm_keylen = static_cast<uint16_t>(password.size());
  std::memcpy(sig.tcpm_key, password.data(), password.size());
  if (setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof sig) != 0) {
    return absl::InternalError(absl::StrCat("TCP_MD5SIG: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

PeerSession::PeerSession(EventLoop& loop, PeerConfig config, SessionCallbacks callbacks)
    : loop_(loop), config_(std::move(config)), callbacks_(std::move(callbacks)), fsm_(config_.fsm) {}

PeerSession::~PeerSession() {
  for (auto& [timer, id] : timers_) loop_.CancelTimer(id);
  ClosePending();
  Close();
}

std::string PeerSession::last_error() const {
  if (!socket_error_.empty()) return socket_error_;
  if (fsm_.last_error()) return fsm_.last_error()->ToString();
  return "";
}

void PeerSession::Start() { Fire(fsm::Event::Of(fsm::EventType::kAutomaticStart)); }
void PeerSession::Stop() { Fire(fsm::Event::Of(fsm::EventType::kManualStop)); }

void PeerSession::Fire(const fsm::Event& event) {
  fsm::Event e = event;
  e.now = absl::Now();
  if (firing_) {
    queued_.push_back(e);
    return;
  }
  firing_ = true;
  fsm::State before = fsm_.state();
  Apply(fsm_.Step(e));
  while (!queued_.empty()) {
    fsm::Event next = queued_.front();
    queued_.erase(queued_.begin());
    Apply(fsm_.Step(next));
  }
  firing_ = false;
  if (fsm_.state() != before) {
    since_ = absl::Now();
    log::Info("peer_state", {{"peer", config_.name},
                             {"from", std::string(fsm::StateName(before))},
                             {"to", std::string(fsm::StateName(fsm_.state()))}});
  }
}

void PeerSession::Apply(const std::vector<fsm::Action>& actions) {
  for (const fsm::Action& a : actions) {
    switch (a.type) {
      case fsm::ActionType::kConnect:
        Connect();
        break;
      case fsm::ActionType::kListen:
        break;  // the listener hands us the peer's connection through Adopt()
      case fsm::ActionType::kDropConnection:
        Flush();
        Close();
        break;
      case fsm::ActionType::kSendOpen:
        SendMessage(MakeOpen());
        break;
      case fsm::ActionType::kSendKeepalive:
        SendMessage(wire::Keepalive{});
        break;
      case fsm::ActionType::kSendNotification:
        notified_ = true;
        SendMessage(*a.notification);
        break;
      case fsm::ActionType::kStartTimer: {
        if (auto it = timers_.find(a.timer); it != timers_.end()) loop_.CancelTimer(it->second);
        fsm::Timer t = a.timer;
        timers_[t] = loop_.AddTimer(a.duration, [this, t] {
          timers_.erase(t);
          Fire(fsm::Event::TimerFired(t));
        });
        break;
      }
      case fsm::ActionType::kStopTimer:
        if (auto it = timers_.find(a.timer); it != timers_.end()) {
          loop_.CancelTimer(it->second);
          timers_.erase(it);
        }
        break;
      case fsm::ActionType::kEstablished:
        socket_error_.clear();
        if (callbacks_.established) callbacks_.established();
        break;
      case fsm::ActionType::kProcessUpdate:
        if (pending_update_ != nullptr && callbacks_.update) callbacks_.update(*pending_update_);
        break;
      case fsm::ActionType::kReleaseResources: {
        bool was_up = peer_open_.has_value() && fsm_.state() == fsm::State::kIdle;
        // RFC 4724 §4.2: only the families listed in the peer's capability are kept; one that
        // lists none (BIRD's "graceful restart aware") preserves no forwarding state.
        bool graceful = config_.graceful_restart && peer_open_ && !notified_ &&
                        peer_open_->capabilities.graceful_restart.has_value() &&
                        !peer_open_->capabilities.graceful_restart->families.empty();
        if (was_up && callbacks_.down) callbacks_.down(graceful);
        peer_open_.reset();
        break;
      }
    }
  }
}

void PeerSession::Connect() {
  Close();
  int family = config_.peer_address.family == 4 ? AF_INET : AF_INET6;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    socket_error_ = absl::StrCat("socket: ", std::strerror(errno));
    loop_.Post([this] { Fire(fsm::Event::Of(fsm::EventType::kTcpConnectionFails)); });
    return;
  }
  fd_ = fd;
  outgoing_ = true;
  if (!config_.password.empty()) {
    if (absl::Status s = SetMd5(fd, config_.peer_address, config_.password); !s.ok()) {
      socket_error_ = std::string(s.message());
    }
  }
  ApplyTtlSecurity(fd);
  if (config_.local_address) {
    sockaddr_storage local;
    socklen_t len = ToSockaddr(*config_.local_address, 0, local);
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), len) != 0) {
      socket_error_ = absl::StrCat("bind ", config_.local_address->ToString(), ": ", std::strerror(errno));
    }
  }
  sockaddr_storage peer;
  socklen_t len = ToSockaddr(config_.peer_address, config_.peer_port, peer);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&peer), len);
  if (rc != 0 && errno != EINPROGRESS) {
    socket_error_ = absl::StrCat("connect: ", std::strerror(errno));
    Close();
    loop_.Post([this] { Fire(fsm::Event::Of(fsm::EventType::kTcpConnectionFails)); });
    return;
  }
  connecting_ = true;
  (void)loop_.Watch(fd, false, true, [this](uint32_t events) { OnConnectable(events); });
}

void PeerSession::OnConnectable(uint32_t) {
  int error = 0;
  socklen_t len = sizeof error;
  getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len);
  connecting_ = false;
  if (error != 0) {
    socket_error_ = absl::StrCat("connect: ", std::strerror(error));
    Close();
    Fire(fsm::Event::Of(fsm::EventType::kTcpConnectionFails));
    return;
  }
  int fd = fd_;
  loop_.Unwatch(fd);
  (void)loop_.Watch(fd, true, false, [this](uint32_t events) { OnReadable(events); });
  RecordLocalEndpoint();
  Fire(fsm::Event::Of(fsm::EventType::kTcpConnectionUp));
}

void PeerSession::ApplyTtlSecurity(int fd) {
  if (config_.ttl_security <= 0) return;
  int ttl = 255;
  int min = 256 - std::min(config_.ttl_security, 255);
  // An IPv6 socket may carry an IPv4 peer (v4-mapped): set both levels, one of them applies.
  bool ok = false;
  ok |= setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) == 0 &&
        setsockopt(fd, IPPROTO_IP, IP_MINTTL, &min, sizeof min) == 0;
  if (config_.peer_address.family == 6) {
    ok |= setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl) == 0 &&
          setsockopt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, &min, sizeof min) == 0;
  }
  if (!ok) socket_error_ = absl::StrCat("ttlSecurity: ", std::strerror(errno));
}

void PeerSession::RecordLocalEndpoint() {
  notified_ = false;  // a new connection
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) return;
  net::IpAddress ip;
  if (local.ss_family == AF_INET) {
    ip.family = 4;
    std::memcpy(ip.bytes.data(), &reinterpret_cast<sockaddr_in*>(&local)->sin_addr, 4);
  } else {
    const auto* sin6 = reinterpret_cast<sockaddr_in6*>(&local);
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      ip.family = 4;
      std::memcpy(ip.bytes.data(), reinterpret_cast<const uint8_t*>(&sin6->sin6_addr) + 12, 4);
    } else {
      ip.family = 6;
      std::memcpy(ip.bytes.data(), &sin6->sin6_addr, 16);
    }
  }
  local_endpoint_ = ip;
}

void PeerSession::Adopt(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  switch (fsm_.state()) {
    case fsm::State::kConnect:
    case fsm::State::kActive:
      AdoptNow(fd);
      return;
    case fsm::State::kOpenConfirm:
      ResolveCollision(fd, peer_open_->bgp_id, {});
      return;
    case fsm::State::kOpenSent:
      if (pending_fd_ >= 0) break;  // one contender at a time
      pending_fd_ = fd;
      pending_in_.clear();
      (void)loop_.Watch(fd, true, false, [this](uint32_t events) { OnPendingReadable(events); });
      pending_timer_ = loop_.AddTimer(config_.fsm.large_hold_time, [this] {
        pending_timer_ = 0;
        ClosePending();
      });
      return;
    case fsm::State::kEstablished: {
      const bool graceful = config_.graceful_restart && peer_open_ && peer_open_->capabilities.graceful_restart &&
                            !peer_open_->capabilities.graceful_restart->families.empty();
      if (!graceful) break;
      log::Info("peer_reconnected", {{"peer", config_.name}, {"graceful_restart", "true"}});
      socket_error_ = "the peer reconnected (graceful restart)";
      Close();
      Fire(fsm::Event::Of(fsm::EventType::kTcpConnectionFails));
      Fire(fsm::Event::Of(fsm::EventType::kAutomaticStart));
      if (fsm_.state() == fsm::State::kConnect || fsm_.state() == fsm::State::kActive) {
        AdoptNow(fd);
        return;
      }
      break;
    }
    case fsm::State::kIdle:
      break;
  }
  close(fd);
}

void PeerSession::AdoptNow(int fd) {
  Close();  // our own connect attempt, if any
  fd_ = fd;
  outgoing_ = false;
  ApplyTtlSecurity(fd);
  (void)loop_.Watch(fd, true, false, [this](uint32_t events) { OnReadable(events); });
  RecordLocalEndpoint();
  Fire(fsm::Event::Of(fsm::EventType::kTcpConnectionUp));
}

void PeerSession::ClosePending() {
  if (pending_fd_ < 0) return;
  if (pending_timer_ != 0) loop_.CancelTimer(pending_timer_);
  pending_timer_ = 0;
  loop_.Unwatch(pending_fd_);
  close(pending_fd_);
  pending_fd_ = -1;
  pending_in_.clear();
}

// Reads the contending connection until its first message: an OPEN settles the collision;
// anything else (or a closed connection) drops the contender.
void PeerSession::OnPendingReadable(uint32_t) {
  uint8_t buf[4096];
  ssize_t n = recv(pending_fd_, buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    ClosePending();
    return;
  }
  pending_in_.insert(pending_in_.end(), buf, buf + n);
  if (pending_in_.size() < 19) return;
  size_t len = (size_t{pending_in_[16]} << 8) | pending_in_[17];
  if (len < 19 || len > wire::kMaxMessageSize || pending_in_[18] != 1 /* OPEN */) {
    ClosePending();
    return;
  }
  if (pending_in_.size() < len) return;
  wire::Decoded decoded = wire::Decode(std::span<const uint8_t>(pending_in_.data(), len), context_);
  const auto* message = std::get_if<wire::Message>(&decoded);
  const auto* open = message != nullptr ? std::get_if<wire::Open>(message) : nullptr;
  if (open == nullptr) {
    ClosePending();
    return;
  }
  const uint32_t peer_id = open->bgp_id;
  int fd = pending_fd_;
  std::vector<uint8_t> buffered = std::move(pending_in_);
  loop_.Unwatch(fd);
  if (pending_timer_ != 0) loop_.CancelTimer(pending_timer_);
  pending_timer_ = 0;
  pending_fd_ = -1;
  pending_in_.clear();
  if (fsm_.state() != fsm::State::kOpenSent && fsm_.state() != fsm::State::kOpenConfirm) {
    // Ours got to Established (or failed) meanwhile: a collision with an Established
    // session keeps the session (RFC 4271 6.8).
    wire::Notification cease(wire::CeaseSubcode::kConnectionCollisionResolution);
    std::vector<uint8_t> bytes;
    if (wire::Encode(cease, context_, bytes).ok()) (void)send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    close(fd);
    return;
  }
  ResolveCollision(fd, peer_id, std::move(buffered));
}

void PeerSession::ResolveCollision(int fd, uint32_t peer_id, std::vector<uint8_t> buffered) {
  // The connection initiated by the speaker with the higher BGP identifier survives.
  const bool keep_ours = config_.router_id > peer_id;
  const bool keep_existing = keep_ours == outgoing_;
  log::Info("connection_collision", {{"peer", config_.name}, {"kept", keep_existing ? "existing" : "new"}});
  if (keep_existing) {
    wire::Notification cease(wire::CeaseSubcode::kConnectionCollisionResolution);
    std::vector<uint8_t> bytes;
    if (wire::Encode(cease, context_, bytes).ok()) (void)send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    close(fd);
    return;
  }
  Fire(fsm::Event::Of(fsm::EventType::kOpenCollisionDump));  // Cease on the existing one
  notified_ = false;  // that NOTIFICATION ended the old connection, not this session
  Fire(fsm::Event::Of(fsm::EventType::kAutomaticStart));
  if (fsm_.state() != fsm::State::kConnect && fsm_.state() != fsm::State::kActive) {
    close(fd);
    return;
  }
  AdoptNow(fd);
  if (!buffered.empty()) {
    replay_ = std::move(buffered);  // the peer's OPEN, already read
    framer_.Feed(std::span<const uint8_t>(replay_.data(), replay_.size()));
    ProcessInput();
  }
}

void PeerSession::Close() {
  if (fd_ < 0) return;
  loop_.Unwatch(fd_);
  close(fd_);
  fd_ = -1;
  connecting_ = false;
  framer_ = wire::Framer();
  out_.clear();
  out_sent_ = 0;
}

void PeerSession::SendMessage(const wire::Message& message) {
  if (fd_ < 0 || connecting_) return;
  absl::Status s = wire::Encode(message, context_, out_);
  if (!s.ok()) {
    log::Error("encode_failed", {{"peer", config_.name}, {"error", std::string(s.message())}});
    return;
  }
  Flush();
}

bool PeerSession::Send(const std::vector<uint8_t>& message) {
  if (fsm_.state() != fsm::State::kEstablished || fd_ < 0) return false;
  out_.insert(out_.end(), message.begin(), message.end());
  Flush();
  return true;
}

void PeerSession::Flush() {
  if (fd_ < 0) return;
  while (out_sent_ < out_.size()) {
    ssize_t n = send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return;  // the read side reports the failure
    }
    out_sent_ += static_cast<size_t>(n);
  }
  if (out_sent_ == out_.size()) {
    out_.clear();
    out_sent_ = 0;
  }
  (void)loop_.Modify(fd_, true, !out_.empty());
}

void PeerSession::OnReadable(uint32_t events) {
  if (events & EPOLLOUT) Flush();
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))) return;
  in_.resize(65536);
  ssize_t n = recv(fd_, in_.data(), in_.size(), 0);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    socket_error_ = n == 0 ? "connection closed by the peer"
                           : absl::StrCat("recv: ", std::strerror(errno));
    Close();
    Fire(fsm::Event::Of(fsm::EventType::kTcpConnectionFails));
    return;
  }
  framer_.Feed(std::span<const uint8_t>(in_.data(), static_cast<size_t>(n)));
  ProcessInput();
}

void PeerSession::ProcessInput() {
  while (fd_ >= 0) {
    wire::Framer::Frame frame = framer_.Next();
    if (frame.kind == wire::Framer::Frame::Kind::kNeedMore) break;
    if (frame.kind == wire::Framer::Frame::Kind::kError) {
      Fire(fsm::Event::Error(fsm::EventType::kBgpHeaderErr, frame.error->notification));
      break;
    }
    HandleMessage(frame.message);
  }
}

void PeerSession::HandleMessage(std::span<const uint8_t> bytes) {
  wire::Decoded decoded = wire::Decode(bytes, context_);
  if (auto* error = std::get_if<wire::DecodeError>(&decoded)) {
    log::Warn("bad_message", {{"peer", config_.name}, {"error", error->ToString()}});
    fsm::EventType type = fsm::EventType::kBgpHeaderErr;
    if (error->notification.code == wire::NotificationCode::kOpenMessageError) {
      type = fsm::EventType::kBgpOpenMsgErr;
    } else if (error->notification.code == wire::NotificationCode::kUpdateMessageError) {
      type = fsm::EventType::kUpdateMsgErr;
    }
    Fire(fsm::Event::Error(type, error->notification));
    return;
  }
  const wire::Message& message = std::get<wire::Message>(decoded);
  if (const auto* open = std::get_if<wire::Open>(&message)) {
    if (std::optional<wire::Notification> bad = CheckOpen(*open)) {
      Fire(fsm::Event::Error(fsm::EventType::kBgpOpenMsgErr, *bad));
      return;
    }
    peer_open_ = *open;
    context_.four_octet_as = open->capabilities.four_octet_as.has_value();
    Fire(fsm::Event::Open(absl::Seconds(open->hold_time)));
  } else if (std::holds_alternative<wire::Keepalive>(message)) {
    Fire(fsm::Event::Of(fsm::EventType::kKeepAliveMsg));
  } else if (const auto* update = std::get_if<wire::Update>(&message)) {
    for (const wire::DecodeError& e : update->errors) {
      log::Warn("update_error_handled", {{"peer", config_.name}, {"error", e.ToString()}});
    }
    pending_update_ = update;
    Fire(fsm::Event::Of(fsm::EventType::kUpdateMsg));
    pending_update_ = nullptr;
  } else if (const auto* note = std::get_if<wire::Notification>(&message)) {
    notified_ = true;
    socket_error_ = absl::StrCat("received ", note->ToString());
    bool version = note->code == wire::NotificationCode::kOpenMessageError &&
                   note->subcode == static_cast<uint8_t>(wire::OpenSubcode::kUnsupportedVersionNumber);
    Fire(fsm::Event::Of(version ? fsm::EventType::kNotifMsgVerErr : fsm::EventType::kNotifMsg));
  } else if (const auto* refresh = std::get_if<wire::RouteRefresh>(&message)) {
    if (fsm_.state() == fsm::State::kEstablished && callbacks_.route_refresh) {
      callbacks_.route_refresh(refresh->afi_safi);
    }
  }
}

std::optional<wire::Notification> PeerSession::CheckOpen(const wire::Open& open) const {
  if (open.PeerAs() != config_.peer_as) {
    return wire::Notification(wire::OpenSubcode::kBadPeerAs);
  }
  if (open.bgp_id == config_.router_id && config_.peer_as == config_.local_as) {
    return wire::Notification(wire::OpenSubcode::kBadBgpIdentifier);  // RFC 6286: iBGP ids differ
  }
  return std::nullopt;
}

wire::Open PeerSession::MakeOpen() const {
  wire::Open open;
  open.my_as = config_.local_as;
  open.hold_time = static_cast<uint16_t>(absl::ToInt64Seconds(config_.fsm.hold_time));
  open.bgp_id = config_.router_id;
  open.capabilities.multiprotocol = {wire::kIpv4Unicast, wire::kIpv6Unicast};
  open.capabilities.route_refresh = true;
  open.capabilities.four_octet_as = config_.local_as;
  if (config_.graceful_restart) {
    wire::GracefulRestart gr;
    gr.restart_time = static_cast<uint16_t>(std::min<int64_t>(4095, absl::ToInt64Seconds(config_.restart_time)));
    if (config_.restarting) gr.flags |= wire::GracefulRestart::kRestartState;
    for (wire::AfiSafi f : {wire::kIpv4Unicast, wire::kIpv6Unicast}) {
      wire::GracefulRestart::Family fam;
      fam.afi_safi = f;
      fam.flags = wire::GracefulRestart::kForwardingState;
      gr.families.push_back(fam);
    }
    open.capabilities.graceful_restart = gr;
  }
  return open;
}

}  // namespace calico::birdd::peers
