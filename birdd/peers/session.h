#pragma once
// birdd/peers/session.h — one BGP peer over TCP: the only place where sockets, the FSM and the
// codec meet. It connects (unless passive) or adopts the connection the listener hands it,
// sends and checks OPEN (peer AS, hold time, BGP identifier, capabilities), keeps the session
// alive with KEEPALIVEs, decodes UPDATEs for the RIB and tears down with the right
// NOTIFICATION. Runs entirely on its EventLoop's thread.

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "birdd/fsm/fsm.h"
#include "birdd/peers/event_loop.h"
#include "birdd/wire/framer.h"
#include "birdd/wire/message.h"
#include "common/net/ip.h"

namespace calico::birdd::peers {

struct PeerConfig {
  std::string name;                         // for logs and status: "Mesh_10_0_0_2"
  net::IpAddress peer_address;
  uint16_t peer_port = 179;
  std::optional<net::IpAddress> local_address;  // bind before connect (sourceAddress)
  uint32_t local_as = 64512;
  uint32_t peer_as = 64512;
  uint32_t router_id = 0;                   // our BGP identifier
  std::string password;                     // TCP-MD5 (RFC 2385); empty: none
  bool graceful_restart = true;
  absl::Duration restart_time = absl::Seconds(120);
  // Our OPEN says we restarted (RFC 4724 R bit): set while birdd still forwards on the routes
  // a previous run installed.
  bool restarting = false;
  int ttl_security = 0;  // GTSM (RFC 5082): send with TTL 255, accept only from this many hops; 0 off
  fsm::Config fsm;
};

// What a session reports upward (the daemon wires these to the RIB and the exporters).
struct SessionCallbacks {
  std::function<void()> established;
  std::function<void(const wire::Update&)> update;
  // `graceful`: the peer negotiated graceful restart, so its routes should be kept as stale.
  std::function<void(bool graceful)> down;
  std::function<void(wire::AfiSafi)> route_refresh;  // the peer asks for our routes again
};

class PeerSession {
 public:
  PeerSession(EventLoop& loop, PeerConfig config, SessionCallbacks callbacks);
  ~PeerSession();
  PeerSession(const PeerSession&) = delete;
  PeerSession& operator=(const PeerSession&) = delete;

  void Start();  // automatic start: connects (or listens when passive), retries with damping
  void Stop();   // Cease/administrative shutdown, no restart
  // An incoming TCP connection from this peer's address (the listener matched it):
  //  - no connection yet (Connect/Active): adopted;
  //  - ours in OpenSent/OpenConfirm: a collision (RFC 4271 6.8), resolved once the peer's BGP
  //    identifier is known (its OPEN): the connection initiated by the higher identifier stays,
  //    the other gets Cease/Connection Collision Resolution;
  //  - Established with graceful restart negotiated: the peer restarted without us noticing
  //    (RFC 4724 4.2): the old session ends as a graceful one and the new connection is taken;
  //  - otherwise closed.
  void Adopt(int fd);
  // Sends an encoded UPDATE (or any message) once Established; false otherwise.
  bool Send(const std::vector<uint8_t>& message);

  fsm::State state() const { return fsm_.state(); }
  const PeerConfig& config() const { return config_; }
  const std::optional<wire::Open>& peer_open() const { return peer_open_; }
  const wire::SessionContext& context() const { return context_; }
  absl::Time since() const { return since_; }
  // Our end of the TCP connection (the next hop we announce as "self"); set once connected.
  const std::optional<net::IpAddress>& local_endpoint() const { return local_endpoint_; }
  std::string last_error() const;
  // Whether the current connection is the one we initiated (collision resolution, tests).
  bool initiated_locally() const { return outgoing_; }  // "Hold timer expired", "Connection refused", ...

 private:
  void Apply(const std::vector<fsm::Action>& actions);
  void Fire(const fsm::Event& event);
  void Connect();
  void OnConnectable(uint32_t events);
  void OnReadable(uint32_t events);
  void Flush();
  void Close();
  void SendMessage(const wire::Message& message);
  void HandleMessage(std::span<const uint8_t> bytes);
  std::optional<wire::Notification> CheckOpen(const wire::Open& open) const;
  wire::Open MakeOpen() const;

  EventLoop& loop_;
  PeerConfig config_;
  SessionCallbacks callbacks_;
  fsm::Session fsm_;
  int fd_ = -1;
  bool connecting_ = false;
  wire::Framer framer_;
  std::vector<uint8_t> in_;
  std::vector<uint8_t> out_;
  size_t out_sent_ = 0;
  std::map<fsm::Timer, EventLoop::TimerId> timers_;
  std::optional<wire::Open> peer_open_;
  std::optional<net::IpAddress> local_endpoint_;
  // A NOTIFICATION was sent or received on this connection: the end is deliberate, so graceful
  // restart does not apply (RFC 4724 4.2) and the peer's routes go at once.
  bool notified_ = false;
  void RecordLocalEndpoint();
  void ApplyTtlSecurity(int fd);
  void AdoptNow(int fd);
  void ProcessInput();
  void OnPendingReadable(uint32_t events);
  void ClosePending();
  void ResolveCollision(int fd, uint32_t peer_id, std::vector<uint8_t> buffered);
  bool outgoing_ = false;  // fd_ is the connection we initiated
  // The peer's second connection during a collision, held until its OPEN arrives.
  int pending_fd_ = -1;
  std::vector<uint8_t> pending_in_;
  EventLoop::TimerId pending_timer_ = 0;
  std::vector<uint8_t> replay_;  // bytes read on the adopted pending connection, not yet framed
  wire::SessionContext context_;
  absl::Time since_ = absl::Now();
  std::string socket_error_;
  bool firing_ = false;
  std::vector<fsm::Event> queued_;
  const wire::Update* pending_update_ = nullptr;  // the UPDATE being handed to the FSM
};

}  // namespace calico::birdd::peers
