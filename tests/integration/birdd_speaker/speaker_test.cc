// Several of our speakers on loopback addresses (127.0.0.x), one event loop: a full iBGP mesh,
// a route reflector with two clients, and an eBGP pair — routes, withdrawals and what reaches
// each speaker's kernel sink.
#include "birdd/speaker/speaker.h"

#include <catch2/catch.hpp>

namespace calico::birdd::speaker {
namespace {

net::IpAddress Ip(std::string_view s) { return *net::ParseIp(s); }
net::Prefix P(std::string_view s) { return *net::ParsePrefix(s); }

struct Node {
  std::string address;
  std::unique_ptr<peers::Listener> listener;
  std::unique_ptr<Speaker> speaker;
  std::map<net::Prefix, std::vector<net::IpAddress>> kernel;  // what it would install
};

struct Lab {
  std::unique_ptr<peers::EventLoop> loop = std::move(*peers::EventLoop::Create());
  std::map<std::string, Node> nodes;

  Node& Add(const std::string& name, const std::string& address, uint32_t asn, uint32_t router_id,
            std::optional<uint32_t> cluster_id = std::nullopt) {
    Node& n = nodes[name];
    n.address = address;
    n.listener = std::move(*peers::Listener::Create(*loop, Ip(address), 0));
    SpeakerConfig c;
    c.local_as = asn;
    c.router_id = router_id;
    c.cluster_id = cluster_id;
    Node* raw = &n;
    n.speaker = std::make_unique<Speaker>(*loop, c, [raw](const net::Prefix& p, const std::vector<net::IpAddress>& hops) {
      if (hops.empty()) {
        raw->kernel.erase(p);
      } else {
        raw->kernel[p] = hops;
      }
    });
    return n;
  }
  // `from` peers with `to`; the side with the higher address waits (as Calico's mesh does).
  void Peer(const std::string& from, const std::string& to, uint32_t to_as, bool rr_client = false) {
    Node& a = nodes[from];
    Node& b = nodes[to];
    NeighborConfig n;
    n.session.name = from + "->" + to;
    n.session.peer_address = Ip(b.address);
    n.session.peer_port = b.listener->port();
    n.session.local_address = Ip(a.address);
    n.session.peer_as = to_as;
    n.session.fsm.hold_time = absl::Seconds(9);
    n.session.fsm.connect_retry_time = absl::Milliseconds(200);
    n.session.fsm.idle_hold_time = absl::Milliseconds(100);
    n.session.fsm.passive = a.address > b.address;
    n.session.restart_time = absl::Seconds(2);
    n.rr_client = rr_client;
    REQUIRE(a.speaker->AddNeighbor(n, a.listener.get()).ok());
  }
  bool AllEstablished() {
    for (auto& [name, n] : nodes) {
      for (const NeighborStatus& s : n.speaker->Status()) {
        if (s.state != fsm::State::kEstablished) return false;
      }
    }
    return true;
  }
  bool Run(const std::function<bool()>& done) { return loop->RunUntil(done, absl::Seconds(10)); }
};

TEST_CASE("speaker: a three-node iBGP mesh learns each block once, from its owner, and forgets it") {
  Lab lab;
  lab.Add("a", "127.0.0.11", 64512, 11);
  lab.Add("b", "127.0.0.12", 64512, 12);
  lab.Add("c", "127.0.0.13", 64512, 13);
  for (auto [x, y] : std::vector<std::pair<std::string, std::string>>{
           {"a", "b"}, {"a", "c"}, {"b", "a"}, {"b", "c"}, {"c", "a"}, {"c", "b"}}) {
    lab.Peer(x, y, 64512);
  }
  REQUIRE(lab.Run([&] { return lab.AllEstablished(); }));
  lab.nodes["a"].speaker->Originate(P("10.65.0.0/26"));
  REQUIRE(lab.Run([&] {
    return lab.nodes["b"].kernel.count(P("10.65.0.0/26")) && lab.nodes["c"].kernel.count(P("10.65.0.0/26"));
  }));
  CHECK(lab.nodes["b"].kernel[P("10.65.0.0/26")] == std::vector<net::IpAddress>{Ip("127.0.0.11")});
  CHECK(lab.nodes["c"].kernel[P("10.65.0.0/26")] == std::vector<net::IpAddress>{Ip("127.0.0.11")});
  CHECK(lab.nodes["a"].kernel.empty());  // its own block is not installed from BGP
  // Split horizon: b never passes a's route on to c, so c holds exactly one candidate.
  lab.loop->RunUntil([] { return false; }, absl::Milliseconds(200));
  CHECK(lab.nodes["c"].speaker->rib().Lookup(P("10.65.0.0/26"))->multipath.empty());
  lab.nodes["a"].speaker->Withdraw(P("10.65.0.0/26"));
  CHECK(lab.Run([&] { return lab.nodes["b"].kernel.empty() && lab.nodes["c"].kernel.empty(); }));
}

TEST_CASE("speaker: a route reflector passes a client's route to the other client, next hop kept") {
  Lab lab;
  lab.Add("rr", "127.0.0.21", 64512, 21, /*cluster_id=*/0x01020304);
  lab.Add("x", "127.0.0.22", 64512, 22);
  lab.Add("y", "127.0.0.23", 64512, 23);
  lab.Peer("rr", "x", 64512, /*rr_client=*/true);
  lab.Peer("rr", "y", 64512, /*rr_client=*/true);
  lab.Peer("x", "rr", 64512);
  lab.Peer("y", "rr", 64512);
  REQUIRE(lab.Run([&] { return lab.AllEstablished(); }));
  lab.nodes["x"].speaker->Originate(P("10.66.0.0/26"));
  REQUIRE(lab.Run([&] { return lab.nodes["y"].kernel.count(P("10.66.0.0/26")) > 0; }));
  CHECK(lab.nodes["y"].kernel[P("10.66.0.0/26")] == std::vector<net::IpAddress>{Ip("127.0.0.22")});
  std::optional<rib::Selected> sel = lab.nodes["y"].speaker->rib().Lookup(P("10.66.0.0/26"));
  const wire::PathAttributes& attrs = lab.nodes["y"].speaker->rib().path(sel->path).attrs;
  CHECK(attrs.originator_id == 22u);
  CHECK(attrs.cluster_list == std::vector<uint32_t>{0x01020304});
}

TEST_CASE("speaker: eBGP prepends the AS, and a peer's own AS in a path is a loop") {
  Lab lab;
  lab.Add("a", "127.0.0.31", 64512, 31);
  lab.Add("e", "127.0.0.32", 65001, 32);
  lab.Peer("a", "e", 65001);
  lab.Peer("e", "a", 64512);
  REQUIRE(lab.Run([&] { return lab.AllEstablished(); }));
  lab.nodes["e"].speaker->Originate(P("192.168.50.0/24"));
  REQUIRE(lab.Run([&] { return lab.nodes["a"].kernel.count(P("192.168.50.0/24")) > 0; }));
  std::optional<rib::Selected> sel = lab.nodes["a"].speaker->rib().Lookup(P("192.168.50.0/24"));
  const wire::PathAttributes& attrs = lab.nodes["a"].speaker->rib().path(sel->path).attrs;
  REQUIRE(attrs.as_path.has_value());
  REQUIRE(attrs.as_path->size() == 1);
  CHECK(attrs.as_path->front().asns == std::vector<uint32_t>{65001});
  CHECK_FALSE(attrs.local_pref.has_value());
  // a's own block goes to e with AS 64512 prepended; e would drop it if it came back.
  lab.nodes["a"].speaker->Originate(P("10.65.0.0/26"));
  REQUIRE(lab.Run([&] { return lab.nodes["e"].kernel.count(P("10.65.0.0/26")) > 0; }));
  CHECK(lab.nodes["a"].speaker->rib().Lookup(P("10.65.0.0/26"))->peer == 0);  // still local
}

}  // namespace
}  // namespace calico::birdd::speaker
