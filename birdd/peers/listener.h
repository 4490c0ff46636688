#pragma once
// birdd/peers/listener.h — the BGP port: accepts connections and hands each to the session
// configured for its source address (TCP-MD5 keys are set per peer on the listening socket);
// connections from unknown addresses are closed at once.

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "birdd/peers/event_loop.h"
#include "birdd/peers/session.h"

namespace calico::birdd::peers {

absl::Status SetMd5(int fd, const net::IpAddress& peer, const std::string& password);

class Listener {
 public:
  // Binds `address` (family decides v4/v6; "::" takes both) and `port` (0: any, see port()).
  static absl::StatusOr<std::unique_ptr<Listener>> Create(EventLoop& loop, const net::IpAddress& address,
                                                          uint16_t port);
  ~Listener();
  absl::Status AddPeer(PeerSession* session);  // keyed by its peer address
  void RemovePeer(const net::IpAddress& address);
  uint16_t port() const { return port_; }

 private:
  Listener(EventLoop& loop, int fd, uint16_t port, int family)
      : loop_(loop), fd_(fd), port_(port), family_(family) {}
  void OnAcceptable();
  EventLoop& loop_;
  int fd_;
  uint16_t port_;
  int family_;  // 4, or 6 (dual-stack: IPv4 peers arrive v4-mapped)
  std::map<net::IpAddress, PeerSession*> peers_;
};

}  // namespace calico::birdd::peers
