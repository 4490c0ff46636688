// Two of our own sessions talking BGP over loopback on one event loop: OPEN, KEEPALIVE,
// UPDATE, NOTIFICATION on the wire, TCP-MD5, and the state each side ends up in.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "birdd/peers/listener.h"
#include "birdd/wire/encode.h"
#include "birdd/peers/session.h"
#include "birdd/wire/pack.h"

namespace calico::birdd::peers {
namespace {

struct Pair {
  std::unique_ptr<EventLoop> loop = std::move(*EventLoop::Create());
  std::unique_ptr<Listener> listener;
  std::unique_ptr<PeerSession> active, passive;
  std::vector<net::Prefix> received;
  int passive_downs = 0;
  bool passive_down_graceful = false;

  Pair(std::string active_password = "", std::string passive_password = "", uint32_t passive_expects_as = 64512) {
    net::IpAddress lo = *net::ParseIp("127.0.0.1");
    listener = std::move(*Listener::Create(*loop, lo, 0));
    PeerConfig a;
    a.name = "active";
    a.peer_address = lo;
    a.peer_port = listener->port();
    a.local_as = 64512;
    a.peer_as = 64512;
    a.router_id = 0x0a000001;
    a.password = active_password;
    a.fsm.hold_time = absl::Seconds(9);
    a.fsm.connect_retry_time = absl::Milliseconds(300);
    a.fsm.idle_hold_time = absl::Milliseconds(100);
    PeerConfig b = a;
    b.name = "passive";
    b.router_id = 0x0a000002;
    b.peer_as = passive_expects_as;
    b.password = passive_password;
    b.fsm.passive = true;
    active = std::make_unique<PeerSession>(*loop, a, SessionCallbacks{});
    SessionCallbacks cb;
    cb.update = [this](const wire::Update& u) {
      received.insert(received.end(), u.nlri.begin(), u.nlri.end());
      if (u.mp_reach) received.insert(received.end(), u.mp_reach->nlri.begin(), u.mp_reach->nlri.end());
    };
    cb.down = [this](bool graceful) {
      ++passive_downs;
      passive_down_graceful = graceful;
    };
    passive = std::make_unique<PeerSession>(*loop, b, cb);
    REQUIRE(listener->AddPeer(passive.get()).ok());
  }
  bool BothEstablished() {
    return active->state() == fsm::State::kEstablished && passive->state() == fsm::State::kEstablished;
  }
};

TEST_CASE("peers: two sessions establish, carry an UPDATE, and a stop takes the other side down") {
  Pair p;
  p.passive->Start();
  p.active->Start();
  REQUIRE(p.loop->RunUntil([&] { return p.BothEstablished(); }, absl::Seconds(10)));
  REQUIRE(p.passive->peer_open().has_value());
  CHECK(p.passive->peer_open()->bgp_id == 0x0a000001);
  CHECK(p.passive->context().four_octet_as);
  CHECK(p.passive->peer_open()->capabilities.graceful_restart.has_value());

  wire::PathAttributes attrs;
  attrs.origin = wire::Origin::kIgp;
  attrs.as_path = wire::AsPath{};
  attrs.local_pref = 100;
  wire::NextHop nh;
  nh.address = *net::ParseIp("10.0.0.1");
  std::vector<net::Prefix> blocks = {*net::ParsePrefix("10.65.0.0/26"), *net::ParsePrefix("10.65.0.64/26")};
  std::vector<uint8_t> bytes;
  REQUIRE(wire::EncodeAnnouncements(attrs, nh, blocks, p.active->context(), bytes).ok());
  REQUIRE(p.active->Send(bytes));
  REQUIRE(p.loop->RunUntil([&] { return p.received.size() == 2; }, absl::Seconds(5)));
  CHECK(p.received == blocks);

  p.active->Stop();
  REQUIRE(p.loop->RunUntil([&] { return p.passive->state() != fsm::State::kEstablished; },
                           absl::Seconds(5)));
  CHECK(p.passive_downs == 1);
  // A Cease is a deliberate end: graceful restart does not apply (RFC 4724 4.2).
  CHECK_FALSE(p.passive_down_graceful);
  CHECK_THAT(p.passive->last_error(), Catch::Contains("Cease"));
}

TEST_CASE("peers: a wrong peer AS is refused with NOTIFICATION Bad Peer AS") {
  Pair p("", "", 65000);  // the passive side expects AS 65000, the active one is 64512
  p.passive->Start();
  p.active->Start();
  p.loop->RunUntil([&] { return !p.active->last_error().empty(); }, absl::Seconds(5));
  CHECK_FALSE(p.BothEstablished());
  CHECK_THAT(p.active->last_error(), Catch::Contains("Bad Peer AS"));
}

TEST_CASE("peers: TCP-MD5 with the same password establishes, a different one never does") {
  {
    Pair p("s3cret", "s3cret");
    p.passive->Start();
    p.active->Start();
    CHECK(p.loop->RunUntil([&] { return p.BothEstablished(); }, absl::Seconds(10)));
  }
  {
    Pair p("s3cret", "other");
    p.passive->Start();
    p.active->Start();
    CHECK_FALSE(p.loop->RunUntil([&] { return p.BothEstablished(); }, absl::Seconds(2)));
    CHECK(p.active->state() != fsm::State::kEstablished);
  }
}

TEST_CASE("peers: a peer that goes away is retried and the session comes back") {
  Pair p;
  p.passive->Start();
  p.active->Start();
  REQUIRE(p.loop->RunUntil([&] { return p.BothEstablished(); }, absl::Seconds(10)));
  // The passive side restarts (e.g. birdd on the other node was restarted).
  p.passive->Stop();
  p.passive->Start();
  REQUIRE(p.loop->RunUntil([&] { return p.active->state() != fsm::State::kEstablished; },
                           absl::Seconds(5)));
  CHECK(p.loop->RunUntil([&] { return p.BothEstablished(); }, absl::Seconds(10)));
}

}  // namespace
}  // namespace calico::birdd::peers

namespace calico::birdd::peers {
namespace {

TEST_CASE("peers: a connection lost without a NOTIFICATION is a graceful restart for the other side") {
  Pair p;
  p.passive->Start();
  p.active->Start();
  REQUIRE(p.loop->RunUntil([&] { return p.BothEstablished(); }, absl::Seconds(10)));
  p.active.reset();  // the process dies: its socket closes, nothing is sent
  REQUIRE(p.loop->RunUntil([&] { return p.passive_downs == 1; }, absl::Seconds(5)));
  CHECK(p.passive_down_graceful);
}


TEST_CASE("peers: both sides connect at once and end with one stable connection") {
  // Two speakers, each with its own listener (127.0.0.1 and 127.0.0.2), both active.
  for (int round = 0; round < 5; ++round) {
    std::unique_ptr<EventLoop> loop = std::move(*EventLoop::Create());
    net::IpAddress a_ip = *net::ParseIp("127.0.0.1");
    net::IpAddress b_ip = *net::ParseIp("127.0.0.2");
    std::unique_ptr<Listener> la = std::move(*Listener::Create(*loop, a_ip, 0));
    std::unique_ptr<Listener> lb = std::move(*Listener::Create(*loop, b_ip, 0));
    int downs = 0;
    SessionCallbacks cb;
    cb.down = [&](bool) { ++downs; };
    PeerConfig a;
    a.name = "a";
    a.peer_address = b_ip;
    a.peer_port = lb->port();
    a.local_address = a_ip;
    a.router_id = 0x0a000001;
    a.fsm.hold_time = absl::Seconds(9);
    a.fsm.connect_retry_time = absl::Seconds(5);  // a lost race would show as a long wait
    a.fsm.idle_hold_time = absl::Seconds(5);
    PeerConfig b = a;
    b.name = "b";
    b.peer_address = a_ip;
    b.peer_port = la->port();
    b.local_address = b_ip;
    b.router_id = 0x0a000002;
    PeerSession sa(*loop, a, cb);
    PeerSession sb(*loop, b, cb);
    REQUIRE(la->AddPeer(&sa).ok());
    REQUIRE(lb->AddPeer(&sb).ok());
    sa.Start();
    sb.Start();
    auto up = [&] { return sa.state() == fsm::State::kEstablished && sb.state() == fsm::State::kEstablished; };
    REQUIRE(loop->RunUntil(up, absl::Seconds(3)));
    // One connection is left: initiated by one side, accepted by the other.
    CHECK(sb.initiated_locally() != sa.initiated_locally());
    CHECK(downs == 0);
    loop->RunUntil([] { return false; }, absl::Milliseconds(500));
    CHECK(up());
    la->RemovePeer(b_ip);
    lb->RemovePeer(a_ip);
  }
}

TEST_CASE("peers: a new connection from an Established graceful-restart peer is its restart") {
  Pair p;
  p.passive->Start();
  p.active->Start();
  REQUIRE(p.loop->RunUntil([&] { return p.BothEstablished(); }, absl::Seconds(10)));
  // The peer came back (its old socket never closed, as after a power loss): a fresh TCP
  // connection from its address.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(p.listener->port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  bool took = p.loop->RunUntil([&] { return p.passive_downs == 1 && p.passive->state() == fsm::State::kOpenSent; },
                               absl::Seconds(5));
  close(fd);
  REQUIRE(took);
  CHECK(p.passive_down_graceful);  // the old session's routes are kept (stale)
}


// A hand-driven peer for collision cases: blocking sockets, messages from birdd/wire.
struct RawPeer {
  static int Listen(uint16_t* port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 4) != 0) return -1;
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    *port = ntohs(a.sin_port);
    return fd;
  }
  static int Connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
    return fd;
  }
  static void SendOpen(int fd, uint32_t bgp_id) {
    wire::Open open;
    open.my_as = 64512;
    open.hold_time = 9;
    open.bgp_id = bgp_id;
    open.capabilities.multiprotocol = {wire::kIpv4Unicast};
    open.capabilities.four_octet_as = 64512;
    std::vector<uint8_t> bytes;
    REQUIRE(wire::Encode(wire::Message(open), wire::SessionContext{}, bytes).ok());
    REQUIRE(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  }
  // Message types read until EOF or `timeout` (1 OPEN, 3 NOTIFICATION with its code/subcode).
  static std::vector<std::string> Read(int fd, EventLoop& loop, absl::Duration timeout) {
    std::vector<std::string> out;
    std::vector<uint8_t> in;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    bool eof = false;
    loop.RunUntil([&] {
      uint8_t buf[4096];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n == 0) eof = true;
      if (n > 0) in.insert(in.end(), buf, buf + n);
      return eof;
    }, timeout);
    for (size_t at = 0; at + 19 <= in.size();) {
      size_t len = (size_t{in[at + 16]} << 8) | in[at + 17];
      if (len < 19 || at + len > in.size()) break;
      uint8_t type = in[at + 18];
      out.push_back(type == 3 ? absl::StrCat("NOTIFICATION ", in[at + 19], "/", in[at + 20]) : absl::StrCat("type ", type));
      at += len;
    }
    if (eof) out.push_back("EOF");
    return out;
  }
};

TEST_CASE("peers: a collision in OpenSent keeps the connection initiated by the higher BGP identifier") {
  for (uint32_t peer_id : {0x0a000009u, 0x01000000u}) {  // higher, then lower than ours (10.0.0.1)
    std::unique_ptr<EventLoop> loop = std::move(*EventLoop::Create());
    uint16_t raw_port = 0;
    int raw_listener = RawPeer::Listen(&raw_port);
    REQUIRE(raw_listener >= 0);
    std::unique_ptr<Listener> ours = std::move(*Listener::Create(*loop, *net::ParseIp("127.0.0.1"), 0));
    PeerConfig c;
    c.name = "ours";
    c.peer_address = *net::ParseIp("127.0.0.1");
    c.peer_port = raw_port;
    c.router_id = 0x0a000001;
    c.fsm.hold_time = absl::Seconds(9);
    PeerSession s(*loop, c, SessionCallbacks{});
    REQUIRE(ours->AddPeer(&s).ok());
    s.Start();
    // Our connection reaches the raw peer, which sends nothing yet: we sit in OpenSent.
    REQUIRE(loop->RunUntil([&] { return s.state() == fsm::State::kOpenSent; }, absl::Seconds(3)));
    int first = accept4(raw_listener, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(first >= 0);
    // The peer's own connection arrives, with its OPEN.
    int second = RawPeer::Connect(ours->port());
    REQUIRE(second >= 0);
    RawPeer::SendOpen(second, peer_id);
    const bool peer_wins = peer_id > c.router_id;
    std::vector<std::string> loser = RawPeer::Read(peer_wins ? first : second, *loop, absl::Seconds(3));
    INFO("peer id " << peer_id);
    // The losing connection: Cease (6) / Connection Collision Resolution (7), then closed.
    REQUIRE(!loser.empty());
    CHECK(loser.back() == "EOF");
    CHECK(std::find(loser.begin(), loser.end(), "NOTIFICATION 6/7") != loser.end());
    CHECK(s.initiated_locally() == !peer_wins);
    CHECK(s.state() == (peer_wins ? fsm::State::kOpenConfirm : fsm::State::kOpenSent));
    if (peer_wins) {
      // Our OPEN went out on the surviving connection; the peer's OPEN was taken from it.
      std::vector<std::string> winner = RawPeer::Read(second, *loop, absl::Milliseconds(300));
      REQUIRE(!winner.empty());
      CHECK(winner[0] == "type 1");
    }
    ours->RemovePeer(c.peer_address);
    close(first);
    close(second);
    close(raw_listener);
  }
}

}  // namespace
}  // namespace calico::birdd::peers
