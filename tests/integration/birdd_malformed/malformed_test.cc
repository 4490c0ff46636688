// RFC 7606 against real sessions: our speaker (the birdd_speaker library, on a thread inside test
// namespace A) peers with BIRD 2 (namespace B, over a veth: A 10.200.0.1/30, B .2) and with a
// scripted raw peer (this file: a blocking TCP socket in A, 10.200.9.2 -> 10.200.9.1 on lo) that
// opens a session by hand and sends hand-crafted malformed UPDATEs. One case per RFC 7606 action
// (treat-as-withdraw, attribute discard, session reset with the RFC 4271 §6 NOTIFICATION); in
// every case BIRD's session stays Established and the routes both ways stay. Also route refresh
// in both directions, and BIRD restarting with and without graceful restart (RFC 4724).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "birdd/kernel/fib.h"
#include "birdd/speaker/speaker.h"
#include "birdd/wire/decode.h"
#include "birdd/wire/encode.h"
#include "common/kernel/libnl_netlink.h"
#include "tests/support/bird/bird_peer.h"
#include "tests/support/netns/test_netns.h"

namespace calico::birdd {
namespace {

using ::calico::testing::BirdGracefulRestart;
using ::calico::testing::BirdNeighbor;
using ::calico::testing::BirdPeer;
using ::calico::testing::BirdPeerConfig;
using ::calico::testing::BirdReply;
using ::calico::testing::BirdRoute;
using ::calico::testing::TestNetns;
using Bytes = std::vector<uint8_t>;

constexpr uint32_t kOurAs = 65001;
constexpr uint32_t kBirdAs = 65002;
constexpr uint32_t kRawAs = 65003;
constexpr char kBirdAddress[] = "10.200.0.2";
constexpr char kRawAddress[] = "10.200.9.2";
constexpr char kOurLoopback[] = "10.200.9.1";
constexpr char kOurRoute[] = "10.65.0.0/26";   // originated by our speaker
constexpr char kBirdRoute[] = "10.10.2.0/24";  // a static route of BIRD's
const wire::SessionContext kFourOctet{true};   // both sides send capability 65

net::Prefix P(std::string_view text) { return *net::ParsePrefix(text); }

void Sh(const TestNetns& ns, const std::string& cmd) {
  ::calico::testing::ExecResult r = ns.Exec(cmd);
  if (r.status != 0) FAIL(ns.name() << ": `" << cmd << "`: " << r.output);
}

// ---- BGP messages assembled by hand (so they can be wrong) -----------------------------------

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Header + body; `length` overrides the header's length field.
Bytes Message(uint8_t type, const Bytes& body, std::optional<uint16_t> length = std::nullopt) {
  Bytes out(16, 0xff);
  uint16_t len = length.value_or(static_cast<uint16_t>(19 + body.size()));
  out.push_back(static_cast<uint8_t>(len >> 8));
  out.push_back(static_cast<uint8_t>(len));
  out.push_back(type);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Bytes Attr(uint8_t flags, uint8_t type, const Bytes& value) {
  return Cat({{flags, type, static_cast<uint8_t>(value.size())}, value});
}

Bytes Be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// ORIGIN IGP, AS_PATH [kRawAs] (4-octet session), NEXT_HOP the raw peer: a valid route.
Bytes GoodAttrs(uint8_t origin = 0) {
  return Cat({Attr(0x40, 1, {origin}), Attr(0x40, 2, Cat({{2, 1}, Be32(kRawAs)})),
              Attr(0x40, 3, {10, 200, 9, 2})});
}

// An NLRI entry: the length octet, then only the octets it covers.
Bytes Nlri(std::string_view prefix) {
  net::Prefix p = P(prefix);
  Bytes out = {static_cast<uint8_t>(p.len)};
  out.insert(out.end(), p.addr.bytes.begin(), p.addr.bytes.begin() + (p.len + 7) / 8);
  return out;
}

Bytes Update(const Bytes& withdrawn, const Bytes& attrs, const Bytes& nlri) {
  return Message(
      2, Cat({{static_cast<uint8_t>(withdrawn.size() >> 8), static_cast<uint8_t>(withdrawn.size())},
              withdrawn,
              {static_cast<uint8_t>(attrs.size() >> 8), static_cast<uint8_t>(attrs.size())},
              attrs,
              nlri}));
}

Bytes Announce(std::string_view prefix) { return Update({}, GoodAttrs(), Nlri(prefix)); }

// ---- the raw peer -----------------------------------------------------------------------------

// A socket that belongs to namespace `ns` (a socket keeps the namespace it was made in).
int SocketIn(const TestNetns& ns) {
  int fd = -1;
  std::thread t([&] {
    int nsfd = open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) return;
    close(nsfd);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  });
  t.join();
  return fd;
}

sockaddr_in V4(const char* ip, uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  inet_pton(AF_INET, ip, &sin.sin_addr);
  return sin;
}

// A BGP peer scripted by the test over a blocking socket: it says only what the test makes it
// say, and reports every message it gets.
class RawPeer {
 public:
  // Connects to our speaker and runs OPEN / KEEPALIVE by hand. Our speaker refuses connections
  // during its idle hold after a reset (it closes them), so this retries until `timeout`.
  static std::unique_ptr<RawPeer> Establish(const TestNetns& ns, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      auto peer = std::unique_ptr<RawPeer>(new RawPeer(SocketIn(ns)));
      if (peer->TryEstablish()) return peer;
      absl::SleepFor(absl::Milliseconds(200));
    }
    return nullptr;
  }
  ~RawPeer() {
    if (fd_ >= 0) close(fd_);
  }

  void Send(const Bytes& bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return;  // the reads that follow see the end
      at += static_cast<size_t>(n);
    }
    last_sent_ = absl::Now();
  }

  // The next message, or nullopt at the end of the stream (eof()) or after `timeout`. Sends a
  // KEEPALIVE now and then meanwhile, as a live peer would.
  std::optional<Bytes> Next(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (in_.size() >= 19) {
        size_t len = size_t{in_[16]} << 8 | in_[17];
        if (len >= 19 && in_.size() >= len) {
          Bytes message(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(len));
          in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(len));
          return message;
        }
      }
      if (eof_ || absl::Now() >= deadline) return std::nullopt;
      if (established_ && absl::Now() - last_sent_ > absl::Seconds(1)) Send(Message(4, {}));
      pollfd p{fd_, POLLIN, 0};
      int wait_ms = static_cast<int>(
          std::clamp<int64_t>(absl::ToInt64Milliseconds(deadline - absl::Now()), 0, 200));
      if (poll(&p, 1, wait_ms) <= 0) continue;
      uint8_t buf[4096];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      in_.insert(in_.end(), buf, buf + n);
    }
  }

  // Reads until a NOTIFICATION (skipping UPDATEs and KEEPALIVEs); nullopt at the end or timeout.
  std::optional<wire::Notification> WaitNotification(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (std::optional<Bytes> m = Next(deadline - absl::Now())) {
      if (wire::PeekType(*m) != wire::MessageType::kNotification) continue;
      wire::Decoded d = wire::Decode(*m, kFourOctet);
      if (auto* msg = std::get_if<wire::Message>(&d)) {
        if (auto* n = std::get_if<wire::Notification>(msg)) return *n;
      }
    }
    return std::nullopt;
  }

  // Reads for `duration`; the session must neither end nor carry a NOTIFICATION. Returns what
  // went wrong, or "" when the session stayed up.
  std::string StaysUp(absl::Duration duration) {
    const absl::Time until = absl::Now() + duration;
    while (absl::Now() < until) {
      std::optional<Bytes> m = Next(until - absl::Now());
      if (eof_) return "the connection closed";
      if (m && wire::PeekType(*m) == wire::MessageType::kNotification) {
        wire::Decoded d = wire::Decode(*m, kFourOctet);
        return "received a NOTIFICATION: " +
               (std::holds_alternative<wire::Message>(d)
                    ? std::get<wire::Notification>(std::get<wire::Message>(d)).ToString()
                    : std::string("(undecodable)"));
      }
    }
    return "";
  }

  // Prefixes announced in the UPDATEs that arrive until the IPv4 End-of-RIB, or `timeout`.
  std::set<std::string> AnnouncedUntilEndOfRib(absl::Duration timeout) {
    std::set<std::string> out;
    const absl::Time deadline = absl::Now() + timeout;
    while (std::optional<Bytes> m = Next(deadline - absl::Now())) {
      if (wire::PeekType(*m) != wire::MessageType::kUpdate) continue;
      wire::Decoded d = wire::Decode(*m, kFourOctet);
      const auto* msg = std::get_if<wire::Message>(&d);
      if (msg == nullptr) continue;
      const auto& u = std::get<wire::Update>(*msg);
      if (std::optional<wire::AfiSafi> eor = wire::EndOfRib(u); eor && *eor == wire::kIpv4Unicast) {
        break;
      }
      for (const net::Prefix& p : u.nlri) out.insert(p.ToString());
      if (u.mp_reach) {
        for (const net::Prefix& p : u.mp_reach->nlri) out.insert(p.ToString());
      }
    }
    return out;
  }

  bool eof() const { return eof_; }

 private:
  explicit RawPeer(int fd) : fd_(fd) {}

  bool TryEstablish() {
    if (fd_ < 0) return false;
    sockaddr_in local = V4(kRawAddress, 0);
    sockaddr_in remote = V4(kOurLoopback, 179);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
        connect(fd_, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
      return false;
    }
    wire::Open open;
    open.my_as = kRawAs;
    open.hold_time = 90;
    open.bgp_id = 0x0ac80902;
    open.capabilities.multiprotocol = {wire::kIpv4Unicast};
    open.capabilities.route_refresh = true;
    open.capabilities.four_octet_as = kRawAs;
    Bytes bytes;
    if (!wire::Encode(open, bytes).ok()) return false;
    Send(bytes);
    std::optional<Bytes> theirs = Next(absl::Seconds(3));
    if (!theirs || wire::PeekType(*theirs) != wire::MessageType::kOpen) return false;
    Send(Message(4, {}));
    std::optional<Bytes> keepalive = Next(absl::Seconds(3));
    if (!keepalive || wire::PeekType(*keepalive) != wire::MessageType::kKeepalive) return false;
    established_ = true;
    return true;
  }

  int fd_;
  Bytes in_;
  bool eof_ = false;
  bool established_ = false;
  absl::Time last_sent_ = absl::Now();
};

// ---- our speaker ------------------------------------------------------------------------------

struct RouteView {
  std::string from;  // the neighbor's address
  wire::PathAttributes attrs;
};

// Our speaker on a thread of its own inside namespace A, with BIRD (10.200.0.2, active) and the
// raw peer (10.200.9.2, passive) as neighbors and the real FIB of A as its kernel sink.
class OurSpeaker {
 public:
  explicit OurSpeaker(const TestNetns& ns) {
    std::promise<void> ready;
    thread_ = std::thread([this, path = ns.path(), &ready] {
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      setns(fd, CLONE_NEWNET);
      close(fd);
      loop_ = std::move(*peers::EventLoop::Create());
      netlink_ = std::move(*kernel::LibnlNetlink::Open());
      fib_ = std::make_unique<kernel_fib::Fib>(*netlink_);
      if (!fib_->RefreshInterfaces().ok()) errors_.push_back("fib: reading interfaces failed");
      listener_ = std::move(*peers::Listener::Create(*loop_, *net::ParseIp("::"), 179));
      speaker::SpeakerConfig c;
      c.local_as = kOurAs;
      c.router_id = 0x0ac80001;
      speaker_ = std::make_unique<speaker::Speaker>(
          *loop_, c, [this](const net::Prefix& p, const std::vector<net::IpAddress>& hops) {
            fib_->Set(p, hops);
            if (absl::Status s = fib_->Apply(); !s.ok())
              errors_.push_back(std::string(s.message()));
          });
      for (auto [address, asn, passive] :
           {std::tuple{kBirdAddress, kBirdAs, false}, std::tuple{kRawAddress, kRawAs, true}}) {
        speaker::NeighborConfig n;
        n.session.name = address;
        n.session.peer_address = *net::ParseIp(address);
        n.session.peer_as = asn;
        n.session.fsm.passive = passive;
        n.session.fsm.hold_time = absl::Seconds(passive ? 90 : 6);
        n.session.fsm.connect_retry_time = absl::Seconds(1);
        n.session.fsm.idle_hold_time = absl::Milliseconds(200);
        n.session.fsm.max_idle_hold_time = absl::Seconds(1);
        absl::Status added = speaker_->AddNeighbor(n, listener_.get());
        if (!added.ok()) errors_.push_back(std::string(added.message()));
      }
      ready.set_value();
      loop_->Run();
      speaker_.reset();  // torn down on the loop's thread, in its namespace
      listener_.reset();
      fib_.reset();
      netlink_.reset();
    });
    ready.get_future().wait();
  }
  ~OurSpeaker() {
    loop_->Stop();
    thread_.join();
  }

  // Runs `fn` on the speaker's thread and returns its result.
  template <typename Fn>
  auto Query(Fn fn) -> decltype(fn(std::declval<speaker::Speaker&>())) {
    std::promise<decltype(fn(std::declval<speaker::Speaker&>()))> result;
    loop_->Post([&] { result.set_value(fn(*speaker_)); });
    return result.get_future().get();
  }

  std::optional<RouteView> Route(std::string_view prefix) {
    return Query([p = P(prefix)](speaker::Speaker& s) -> std::optional<RouteView> {
      std::optional<rib::Selected> sel = s.rib().Lookup(p);
      if (!sel) return std::nullopt;
      RouteView v;
      v.from = s.rib().peer(sel->peer).local ? "local" : s.rib().peer(sel->peer).address.ToString();
      v.attrs = s.rib().path(sel->path).attrs;
      return v;
    });
  }

  // Waits until `prefix` is in our RIB from `from` (or, with from empty, absent).
  bool WaitRoute(std::string_view prefix, std::string_view from,
                 absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    do {
      std::optional<RouteView> r = Route(prefix);
      if (from.empty() ? !r.has_value() : (r.has_value() && r->from == from)) return true;
      absl::SleepFor(absl::Milliseconds(50));
    } while (absl::Now() < deadline);
    return false;
  }

  std::optional<speaker::NeighborStatus> Neighbor(std::string_view address) {
    return Query([a = *net::ParseIp(address)](
                     speaker::Speaker& s) -> std::optional<speaker::NeighborStatus> {
      for (const speaker::NeighborStatus& n : s.Status()) {
        if (n.address == a) return n;
      }
      return std::nullopt;
    });
  }

  void Post(std::function<void(speaker::Speaker&)> fn) {
    loop_->Post([this, fn] { fn(*speaker_); });
  }

  std::vector<std::string> errors_;  // written on the speaker's thread before `ready`

 private:
  std::unique_ptr<peers::EventLoop> loop_;
  std::unique_ptr<kernel::LibnlNetlink> netlink_;
  std::unique_ptr<kernel_fib::Fib> fib_;
  std::unique_ptr<peers::Listener> listener_;
  std::unique_ptr<speaker::Speaker> speaker_;
  std::thread thread_;
};

BirdPeerConfig BirdSide(BirdGracefulRestart gr, std::vector<std::string> routes,
                        std::string neighbor_config = "") {
  BirdPeerConfig c;
  c.router_id = kBirdAddress;
  c.asn = kBirdAs;
  BirdNeighbor n;
  n.name = "ours4";
  n.address = "10.200.0.1";
  n.asn = kOurAs;
  n.passive = true;  // we connect; no collision to resolve
  n.extra_config = std::move(neighbor_config);
  c.neighbors.push_back(n);
  c.static_routes_v4 = std::move(routes);
  c.graceful_restart = gr;
  return c;
}

// Namespaces, BIRD and our speaker, with routes both ways in place.
struct World {
  TestNetns a = std::move(*TestNetns::Create("birdd-mal-a"));
  TestNetns b = std::move(*TestNetns::Create("bird-mal-b"));
  std::unique_ptr<BirdPeer> bird;
  std::unique_ptr<OurSpeaker> ours;  // declared last: stops first, also when setup fails
  absl::Time bird_since;             // when our session with BIRD last changed state

  explicit World(BirdPeerConfig bird_config = BirdSide(BirdGracefulRestart::kAware, {kBirdRoute})) {
    Sh(a,
       absl::StrCat("ip link set lo up && ip addr add ", kOurLoopback, "/32 dev lo && ",
                    "ip addr add ", kRawAddress, "/32 dev lo && ",
                    "ip link add veth-a type veth peer name veth-b && ip link set veth-b netns ",
                    b.name(), " && ip addr add 10.200.0.1/30 dev veth-a && ip link set veth-a up"));
    Sh(b, "ip link set lo up && ip addr add 10.200.0.2/30 dev veth-b && ip link set veth-b up");
    absl::StatusOr<std::unique_ptr<BirdPeer>> started = BirdPeer::Start(b, bird_config);
    if (!started.ok()) FAIL("BIRD: " << started.status().message());
    bird = std::move(*started);
    ours = std::make_unique<OurSpeaker>(a);
    REQUIRE(ours->errors_.empty());
    if (!bird->WaitEstablished("ours4", absl::Seconds(15)).ok()) {
      FAIL("BIRD's session with us is not up: " << bird->LogTail());
    }
    ours->Post([](speaker::Speaker& s) { s.Originate(P(kOurRoute)); });
    REQUIRE(bird->WaitRoute(kOurRoute, absl::Seconds(10), "ours4").ok());
    REQUIRE(ours->WaitRoute(kBirdRoute, kBirdAddress));
    bird_since = ours->Neighbor(kBirdAddress)->since;
  }
  // BIRD's session never left Established and the routes both ways are where they were: ours
  // in BIRD's table, BIRD's in our RIB and in namespace A's kernel.
  void CheckBirdUnaffected() {
    CHECK(bird->ProtocolState("ours4").value_or("?") == "Established");
    std::optional<speaker::NeighborStatus> n = ours->Neighbor(kBirdAddress);
    REQUIRE(n.has_value());
    CHECK(n->state == fsm::State::kEstablished);
    CHECK(n->since == bird_since);
    absl::StatusOr<std::vector<BirdRoute>> theirs = bird->Routes(kOurRoute);
    REQUIRE(theirs.ok());
    REQUIRE(theirs->size() == 1);
    CHECK((*theirs)[0].protocol == "ours4");
    std::optional<RouteView> mine = ours->Route(kBirdRoute);
    REQUIRE(mine.has_value());
    CHECK(mine->from == kBirdAddress);
    CHECK_THAT(a.Exec("ip route show proto bird").output,
               Catch::Contains(absl::StrCat(kBirdRoute, " via ", kBirdAddress, " dev veth-a")));
  }
};

TEST_CASE(
    "RFC 7606 treat-as-withdraw: a malformed ORIGIN or NEXT_HOP withdraws the routes, "
    "the session stays up") {
  World w;
  std::unique_ptr<RawPeer> raw = RawPeer::Establish(w.a, absl::Seconds(10));
  REQUIRE(raw);
  raw->Send(Announce("10.20.1.0/24"));
  raw->Send(Announce("10.20.2.0/24"));
  raw->Send(Announce("10.20.4.0/24"));
  for (const char* p : {"10.20.1.0/24", "10.20.2.0/24", "10.20.4.0/24"}) {
    REQUIRE(w.ours->WaitRoute(p, kRawAddress));
    REQUIRE(w.bird->WaitRoute(p, absl::Seconds(10), "ours4").ok());  // passed on to BIRD
  }

  // ORIGIN 7 is undefined (RFC 7606 §7.1); a NEXT_HOP of 5 octets is malformed (§7.3).
  raw->Send(Update({}, GoodAttrs(7), Nlri("10.20.1.0/24")));
  raw->Send(Update({},
                   Cat({Attr(0x40, 1, {0}), Attr(0x40, 2, Cat({{2, 1}, Be32(kRawAs)})),
                        Attr(0x40, 3, {10, 200, 9, 2, 0})}),
                   Nlri("10.20.4.0/24")));
  CHECK(w.ours->WaitRoute("10.20.1.0/24", ""));
  CHECK(w.ours->WaitRoute("10.20.4.0/24", ""));
  CHECK(w.bird->WaitNoRoute("10.20.1.0/24", absl::Seconds(10)).ok());
  CHECK(w.bird->WaitNoRoute("10.20.4.0/24", absl::Seconds(10)).ok());
  CHECK(raw->StaysUp(absl::Seconds(1)) == "");
  CHECK(w.ours->Neighbor(kRawAddress)->state == fsm::State::kEstablished);
  // The raw peer's other route was in no malformed UPDATE.
  CHECK(w.ours->Route("10.20.2.0/24").has_value());
  CHECK(w.bird->Routes("10.20.2.0/24").value_or(std::vector<BirdRoute>{}).size() == 1);

  // The session still works: the prefix comes back with a well-formed UPDATE.
  raw->Send(Announce("10.20.1.0/24"));
  CHECK(w.ours->WaitRoute("10.20.1.0/24", kRawAddress));
  w.CheckBirdUnaffected();
}

TEST_CASE(
    "RFC 7606 attribute discard: a malformed ATOMIC_AGGREGATE or AGGREGATOR is dropped, "
    "the route kept") {
  World w;
  std::unique_ptr<RawPeer> raw = RawPeer::Establish(w.a, absl::Seconds(10));
  REQUIRE(raw);
  // ATOMIC_AGGREGATE must be empty and a 4-octet session's AGGREGATOR 8 octets (RFC 7606 §7.6,
  // §7.7); a valid COMMUNITIES rides along and must survive.
  raw->Send(Update({},
                   Cat({GoodAttrs(), Attr(0x40, 6, {1}), Attr(0xc0, 7, {0, 0, 0xfd, 0xeb, 10}),
                        Attr(0xc0, 8, Cat({Be32(65003u << 16 | 7)}))}),
                   Nlri("10.20.3.0/24")));
  REQUIRE(w.ours->WaitRoute("10.20.3.0/24", kRawAddress));
  std::optional<RouteView> r = w.ours->Route("10.20.3.0/24");
  REQUIRE(r.has_value());
  CHECK_FALSE(r->attrs.atomic_aggregate);
  CHECK_FALSE(r->attrs.aggregator.has_value());
  CHECK(r->attrs.communities == std::vector<uint32_t>{65003u << 16 | 7});
  CHECK(raw->StaysUp(absl::Seconds(1)) == "");

  // BIRD gets the route without the discarded attributes.
  REQUIRE(w.bird->WaitRoute("10.20.3.0/24", absl::Seconds(10), "ours4").ok());
  absl::StatusOr<BirdReply> detail = w.bird->Command("show route 10.20.3.0/24 all");
  REQUIRE(detail.ok());
  CHECK_THAT(detail->Text(), Catch::Contains("BGP.as_path: 65001 65003"));
  CHECK_THAT(detail->Text(), Catch::Contains("BGP.community: (65003,7)"));
  CHECK_THAT(detail->Text(), !Catch::Contains("BGP.aggregator"));
  CHECK_THAT(detail->Text(), !Catch::Contains("BGP.atomic_aggr"));
  w.CheckBirdUnaffected();
}

struct ResetCase {
  const char* name;
  Bytes message;
  wire::Notification want;
  bool check_data;  // RFC 4271 §6.1 defines the data of Bad Message Length: the length field
};

TEST_CASE(
    "RFC 7606 session reset: bad length, malformed NLRI, malformed MP_REACH get the right "
    "NOTIFICATION, BIRD's session is unaffected") {
  World w;
  const std::vector<ResetCase> cases = {
      // The framer's check: no message is longer than 4096 octets (RFC 4271 §4.1, §6.1).
      {"header length 4097", Message(4, {}, 4097),
       wire::Notification(wire::HeaderSubcode::kBadMessageLength, {0x10, 0x01}), true},
      // A KEEPALIVE is exactly 19 octets (RFC 4271 §6.1).
      {"KEEPALIVE of 20 octets", Message(4, {0}),
       wire::Notification(wire::HeaderSubcode::kBadMessageLength, {0x00, 0x14}), true},
      // A /33 in the IPv4 NLRI field (RFC 7606 §5.3: session reset; RFC 4271 §6.3 subcode).
      {"NLRI prefix length 33", Update({}, GoodAttrs(), {33, 10, 20, 5, 0, 0}),
       wire::Notification(wire::UpdateSubcode::kInvalidNetworkField), false},
      // MP_REACH_NLRI whose next hop overruns the attribute (RFC 7606 §7.11, §5.3).
      {"MP_REACH_NLRI with a bad length",
       Update({}, Cat({GoodAttrs(), Attr(0x80, 14, {0, 2, 1, 16, 0x20, 0x01})}), {}),
       wire::Notification(wire::UpdateSubcode::kOptionalAttributeError), false},
      // Withdrawn Routes Length past the end of the message (RFC 4271 §6.3, RFC 7606 §4).
      {"withdrawn routes length overrunning the message",
       Message(2, {0x01, 0x00, 24, 10, 20, 6, 0, 0}),
       wire::Notification(wire::UpdateSubcode::kMalformedAttributeList), false},
  };
  for (const ResetCase& c : cases) {
    INFO(c.name);
    std::unique_ptr<RawPeer> raw = RawPeer::Establish(w.a, absl::Seconds(10));
    REQUIRE(raw);
    raw->Send(Announce("10.20.5.0/24"));
    REQUIRE(w.ours->WaitRoute("10.20.5.0/24", kRawAddress));
    REQUIRE(w.bird->WaitRoute("10.20.5.0/24", absl::Seconds(10), "ours4").ok());

    raw->Send(c.message);
    std::optional<wire::Notification> got = raw->WaitNotification(absl::Seconds(5));
    REQUIRE(got.has_value());
    CHECK(got->code == c.want.code);
    CHECK(int{got->subcode} == int{c.want.subcode});
    if (c.check_data) CHECK(got->data == c.want.data);
    raw->Next(absl::Seconds(3));  // after the NOTIFICATION, the connection closes
    CHECK(raw->eof());
    // No graceful restart after a NOTIFICATION (RFC 4724 §4): the routes go at once.
    CHECK(w.ours->WaitRoute("10.20.5.0/24", "", absl::Seconds(5)));
    CHECK(w.bird->WaitNoRoute("10.20.5.0/24", absl::Seconds(10)).ok());
    w.CheckBirdUnaffected();
  }
}

// "Import updates:" of `show protocols all <name>`: the first count is the updates received.
int ImportUpdatesReceived(const BirdPeer& bird, std::string_view protocol) {
  absl::StatusOr<BirdReply> r = bird.Command("show protocols all " + std::string(protocol));
  if (!r.ok()) return -1;
  for (const auto& [code, text] : r->lines) {
    size_t at = text.find("Import updates:");
    if (at == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(text.substr(at + 15), ' ', absl::SkipEmpty());
    int n = -1;
    if (!fields.empty() && absl::SimpleAtoi(fields[0], &n)) return n;
  }
  return -1;
}

TEST_CASE(
    "route refresh: a ROUTE-REFRESH from a peer gets our routes again (RFC 2918), from "
    "the raw peer and from BIRD's `reload in`") {
  World w;
  std::unique_ptr<RawPeer> raw = RawPeer::Establish(w.a, absl::Seconds(10));
  REQUIRE(raw);
  const std::set<std::string> want = {kOurRoute, kBirdRoute};
  CHECK(raw->AnnouncedUntilEndOfRib(absl::Seconds(5)) == want);

  raw->Send(Message(5, {0, 1, 0, 1}));  // ROUTE-REFRESH IPv4 unicast
  CHECK(raw->AnnouncedUntilEndOfRib(absl::Seconds(5)) == want);
  CHECK(raw->StaysUp(absl::Milliseconds(500)) == "");

  // A family the OPENs did not negotiate (IPv4 multicast) is ignored: no UPDATE comes back.
  raw->Send(Message(5, {0, 1, 0, 2}));
  int updates = 0;
  for (absl::Time until = absl::Now() + absl::Milliseconds(700); absl::Now() < until;) {
    std::optional<Bytes> m = raw->Next(until - absl::Now());
    if (m && wire::PeekType(*m) == wire::MessageType::kUpdate) ++updates;
  }
  CHECK(updates == 0);
  CHECK_FALSE(raw->eof());

  // BIRD asks for our routes with a ROUTE-REFRESH (we announced the capability): the updates
  // it counts as received go up without the session restarting.
  const int before = ImportUpdatesReceived(*w.bird, "ours4");
  REQUIRE(before >= 1);
  absl::StatusOr<BirdReply> reload = w.bird->Command("reload in ours4");
  REQUIRE(reload.ok());
  int after = before;
  for (int i = 0; i < 100 && after <= before; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    after = ImportUpdatesReceived(*w.bird, "ours4");
  }
  CHECK(after > before);
  w.CheckBirdUnaffected();
}

TEST_CASE(
    "peer restart: BIRD killed without graceful restart loses its routes at once and "
    "they come back with it") {
  World w;  // BIRD's default: graceful restart aware, so it keeps no forwarding state
  w.bird->Kill();
  // The routes go at once, not after a restart time (RFC 4724 §4.2 applies only to the
  // families the peer said it preserves).
  CHECK(w.ours->WaitRoute(kBirdRoute, "", absl::Seconds(3)));
  CHECK(w.a.Exec("ip route show proto bird").output.find(kBirdRoute) == std::string::npos);

  REQUIRE(w.bird->Relaunch().ok());
  REQUIRE(w.bird->WaitEstablished("ours4", absl::Seconds(15)).ok());
  CHECK(w.ours->WaitRoute(kBirdRoute, kBirdAddress));
  CHECK(w.bird->WaitRoute(kOurRoute, absl::Seconds(10), "ours4").ok());
}

TEST_CASE(
    "peer restart: BIRD with graceful restart keeps its routes stale while it is away, "
    "after it is back, what it no longer sends is swept") {
  World w(BirdSide(BirdGracefulRestart::kOn, {kBirdRoute, "10.10.3.0/24"}));
  REQUIRE(w.ours->WaitRoute("10.10.3.0/24", kBirdAddress));
  w.bird->Kill();
  // Still forwarding on BIRD's routes while it is down.
  absl::SleepFor(absl::Seconds(2));
  CHECK(w.ours->Neighbor(kBirdAddress)->state != fsm::State::kEstablished);
  CHECK(w.ours->Route(kBirdRoute).has_value());
  CHECK_THAT(w.a.Exec("ip route show proto bird").output, Catch::Contains(kBirdRoute));

  // It comes back without 10.10.3.0/24: that one goes (End-of-RIB or the new OPEN's flags),
  // long before the restart time; the other is there throughout or back at once.
  REQUIRE(w.bird->Reconfigure(BirdSide(BirdGracefulRestart::kOn, {kBirdRoute})).ok());
  REQUIRE(w.bird->Relaunch().ok());
  REQUIRE(w.bird->WaitEstablished("ours4", absl::Seconds(15)).ok());
  CHECK(w.ours->WaitRoute("10.10.3.0/24", "", absl::Seconds(10)));
  CHECK(w.ours->WaitRoute(kBirdRoute, kBirdAddress));
  CHECK(w.bird->WaitRoute(kOurRoute, absl::Seconds(10), "ours4").ok());
}

TEST_CASE("peer restart: BIRD's routes are kept for the Restart Time it advertised, no longer") {
  // 3 s, where our own restart time is 120 s.
  World w(BirdSide(BirdGracefulRestart::kOn, {kBirdRoute}, "graceful restart time 3;"));
  const absl::Time killed = absl::Now();
  w.bird->Kill();
  absl::SleepFor(absl::Seconds(1));
  CHECK(w.ours->Route(kBirdRoute).has_value());  // stale, still forwarding
  REQUIRE(w.ours->WaitRoute(kBirdRoute, "", absl::Seconds(10)));
  const absl::Duration kept = absl::Now() - killed;
  CHECK(kept >= absl::Seconds(2.5));
  CHECK(kept < absl::Seconds(8));
  CHECK(w.a.Exec("ip route show proto bird").output.find(kBirdRoute) == std::string::npos);
}

}  // namespace
}  // namespace calico::birdd
