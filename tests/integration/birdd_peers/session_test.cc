// Two of our own sessions talking BGP over loopback on one event loop: OPEN, KEEPALIVE,
// UPDATE, NOTIFICATION on the wire, TCP-MD5, and the state each side ends up in.
#include <catch2/catch.hpp>

#include "birdd/peers/listener.h"
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

}  // namespace
}  // namespace calico::birdd::peers
