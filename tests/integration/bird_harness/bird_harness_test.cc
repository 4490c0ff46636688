// The BirdPeer harness proven against itself: two BIRD 2 daemons in two TestNetns namespaces
// joined by a veth pair (A: 10.200.0.1/30, fd00:200::1/64 on veth-a; B: .2 and ::2 on veth-b),
// AS 65001 and AS 65002. Nothing outside those namespaces is touched.

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/support/bird/bird_peer.h"
#include "tests/support/netns/test_netns.h"

namespace calico::testing {
namespace {

template <typename T>
T Require(absl::StatusOr<T> result, std::string_view what) {
  if (!result.ok()) FAIL(what << ": " << result.status().ToString());
  return std::move(result).value();
}
#define OK_OR_FAIL(expr) Require((expr), #expr)

void RequireOk(const absl::Status& status, std::string_view what) {
  if (!status.ok()) FAIL(what << ": " << status.ToString());
}
#define REQUIRE_OK(expr) RequireOk((expr), #expr)

void Sh(const TestNetns& ns, const std::string& cmd) {
  const ExecResult r = ns.Exec(cmd);
  if (r.status != 0) FAIL(ns.name() << ": `" << cmd << "`: exit " << r.status << ": " << r.output);
}

// Two namespaces and the veth pair between them. Declare BirdPeers after the Link: locals die
// in reverse order, so the peers stop before their namespaces go.
struct Link {
  TestNetns a = OK_OR_FAIL(TestNetns::Create("bird-a"));
  TestNetns b = OK_OR_FAIL(TestNetns::Create("bird-b"));

  Link() {
    // The pair is made in A and its B end moved into B; nodad: the addresses work at once.
    Sh(a, absl::StrCat("ip link set lo up && ip link add veth-a type veth peer name veth-b && ",
                       "ip link set veth-b netns ", b.name(), " && ",
                       "ip addr add 10.200.0.1/30 dev veth-a && ",
                       "ip -6 addr add fd00:200::1/64 dev veth-a nodad && ip link set veth-a up"));
    Sh(b, absl::StrCat("ip link set lo up && ip addr add 10.200.0.2/30 dev veth-b && ",
                       "ip -6 addr add fd00:200::2/64 dev veth-b nodad && ip link set veth-b up"));
  }
};

BirdNeighbor Neighbor(std::string name, std::string address, uint32_t asn) {
  BirdNeighbor n;
  n.name = std::move(name);
  n.address = std::move(address);
  n.asn = asn;
  return n;
}

// A announces 10.10.1.0/24 and fd00:10:1::/64 to B (neighbors "b4", "b6"); B announces
// 10.10.2.0/24 and fd00:10:2::/64 to A (neighbors "a4", "a6").
BirdPeerConfig ConfigA() {
  BirdPeerConfig c;
  c.router_id = "10.200.0.1";
  c.asn = 65001;
  c.neighbors = {Neighbor("b4", "10.200.0.2", 65002), Neighbor("b6", "fd00:200::2", 65002)};
  c.static_routes_v4 = {"10.10.1.0/24"};
  c.static_routes_v6 = {"fd00:10:1::/64"};
  return c;
}

BirdPeerConfig ConfigB() {
  BirdPeerConfig c;
  c.router_id = "10.200.0.2";
  c.asn = 65002;
  c.neighbors = {Neighbor("a4", "10.200.0.1", 65001), Neighbor("a6", "fd00:200::1", 65001)};
  c.static_routes_v4 = {"10.10.2.0/24"};
  c.static_routes_v6 = {"fd00:10:2::/64"};
  return c;
}

// The namespace's count of TCP segments dropped for a bad MD5 signature (RFC 2385).
int64_t Md5Failures(const TestNetns& ns) {
  const ExecResult r = ns.Exec("nstat -asz TcpExtTCPMD5Failure");
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t n = 0;
    if (words.size() >= 2 && words[0] == "TcpExtTCPMD5Failure" && absl::SimpleAtoi(words[1], &n)) {
      return n;
    }
  }
  FAIL("no TcpExtTCPMD5Failure in `nstat` output: " << r.output);
  return -1;
}

// Polls `shell` in `ns` until its output contains `needle`.
bool EventuallyContains(const TestNetns& ns, const std::string& shell, const std::string& needle,
                        absl::Duration timeout = absl::Seconds(3)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (ns.Exec(shell).output.find(needle) != std::string::npos) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

bool ProcessGone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

std::vector<std::string> OurTempDirs() {
  std::vector<std::string> found;
  const std::string prefix = absl::StrCat("calico-bird-", getpid(), "-");
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::temp_directory_path(ec), ec)) {
    if (entry.path().filename().string().rfind(prefix, 0) == 0) found.push_back(entry.path());
  }
  return found;
}

TEST_CASE(
    "eBGP sessions establish over IPv4 and IPv6 and static routes arrive with the "
    "peer as next hop") {
  Link link;
  BirdPeerConfig b_config = ConfigB();
  b_config.import_to_kernel = true;
  auto a = OK_OR_FAIL(BirdPeer::Start(link.a, ConfigA()));
  auto b = OK_OR_FAIL(BirdPeer::Start(link.b, b_config));
  for (const char* name : {"b4", "b6"}) REQUIRE_OK(a->WaitEstablished(name));
  for (const char* name : {"a4", "a6"}) REQUIRE_OK(b->WaitEstablished(name));
  CHECK(OK_OR_FAIL(a->ProtocolState("static4")) == "up");

  const BirdRoute v4 = OK_OR_FAIL(b->WaitRoute("10.10.1.0/24", absl::Seconds(5)));
  CHECK(v4.table == "master4");
  CHECK(v4.type == "unicast");
  CHECK(v4.protocol == "a4");
  CHECK(v4.primary);
  CHECK(v4.bgp_path == "AS65001i");
  REQUIRE(v4.next_hops.size() == 1);
  CHECK(v4.next_hop() == "10.200.0.1");
  CHECK(v4.next_hops[0].interface == "veth-b");

  const BirdRoute v6 = OK_OR_FAIL(b->WaitRoute("fd00:10:1::/64", absl::Seconds(5)));
  CHECK(v6.table == "master6");
  CHECK(v6.protocol == "a6");
  CHECK(v6.next_hop() == "fd00:200::1");

  // B's own static route: unreachable, no next hop; A's routes only from A's sessions.
  const std::vector<BirdRoute> own = OK_OR_FAIL(b->Routes("10.10.2.0/24"));
  REQUIRE(own.size() == 1);
  CHECK(own[0].type == "unreachable");
  CHECK(own[0].protocol == "static4");
  CHECK(own[0].next_hops.empty());
  REQUIRE_OK(a->WaitRoute("10.10.2.0/24", absl::Seconds(5), "b4").status());
  CHECK(OK_OR_FAIL(b->Routes()).size() == 4);
  CHECK(OK_OR_FAIL(b->RouteCount()) == 4);
  CHECK(OK_OR_FAIL(b->RouteCount("protocol a4")) == 1);
  CHECK(OK_OR_FAIL(b->Routes("10.99.0.0/16")).empty());

  // import_to_kernel: B installs what it learned (as proto bird), A (without it) does not.
  CHECK(EventuallyContains(link.b, "ip route show 10.10.1.0/24",
                           "via 10.200.0.1 dev veth-b proto bird"));
  CHECK(EventuallyContains(link.b, "ip -6 route show fd00:10:1::/64",
                           "via fd00:200::1 dev veth-b proto bird"));
  CHECK(link.a.Exec("ip route show 10.10.2.0/24").output.empty());
}

TEST_CASE("TCP-MD5: the same password on both sides establishes, a wrong one never does") {
  Link link;
  BirdPeerConfig a_config = ConfigA();
  BirdPeerConfig b_config = ConfigB();
  a_config.neighbors.resize(1);  // IPv4 only
  b_config.neighbors.resize(1);
  a_config.neighbors[0].password = "s3cret";
  b_config.neighbors[0].password = "s3cret";
  auto a = OK_OR_FAIL(BirdPeer::Start(link.a, a_config));
  auto b = OK_OR_FAIL(BirdPeer::Start(link.b, b_config));
  REQUIRE_OK(b->WaitEstablished("a4"));
  REQUIRE_OK(b->WaitRoute("10.10.1.0/24", absl::Seconds(5)).status());

  // A wrong password on A: the reconfiguration restarts the session (B hears a Cease), and
  // then each side's kernel drops the other's signed SYNs, silently for BIRD: no error, the
  // session just cycles between Connect and Active. Only the kernel's counter tells.
  const int64_t failures_before = Md5Failures(link.b);
  a_config.neighbors[0].password = "wrong";
  REQUIRE_OK(a->Reconfigure(a_config));
  REQUIRE_OK(b->WaitNotEstablished("a4", absl::Seconds(3)));
  REQUIRE_OK(b->WaitNoRoute("10.10.1.0/24", absl::Seconds(3)));
  const absl::Time until = absl::Now() + absl::Milliseconds(2500);
  while (absl::Now() < until) {
    REQUIRE(OK_OR_FAIL(a->ProtocolState("b4")) != "Established");
    REQUIRE(OK_OR_FAIL(b->ProtocolState("a4")) != "Established");
    absl::SleepFor(absl::Milliseconds(100));
  }
  CHECK(Md5Failures(link.b) > failures_before);
  const BirdProtocolStatus stuck = OK_OR_FAIL(b->Protocol("a4"));
  CHECK(stuck.state == "start");
  CHECK((stuck.bgp_state == "Connect" || stuck.bgp_state == "Active"));

  a_config.neighbors[0].password = "s3cret";
  REQUIRE_OK(a->Reconfigure(a_config));
  REQUIRE_OK(b->WaitEstablished("a4", absl::Seconds(5)));
  REQUIRE_OK(b->WaitRoute("10.10.1.0/24", absl::Seconds(5)).status());
}

TEST_CASE(
    "Disabling the protocol on A withdraws A's route in B and enabling it announces it "
    "again") {
  Link link;
  auto a = OK_OR_FAIL(BirdPeer::Start(link.a, ConfigA()));
  auto b = OK_OR_FAIL(BirdPeer::Start(link.b, ConfigB()));
  REQUIRE_OK(b->WaitRoute("10.10.1.0/24", absl::Seconds(5), "a4").status());
  REQUIRE_OK(b->WaitRoute("fd00:10:1::/64", absl::Seconds(5), "a6").status());

  REQUIRE_OK(a->Disable("b4"));
  REQUIRE_OK(b->WaitNoRoute("10.10.1.0/24", absl::Seconds(3)));
  const BirdProtocolStatus disabled = OK_OR_FAIL(a->Protocol("b4"));
  CHECK(disabled.state == "down");
  CHECK(disabled.bgp_state == "Down");
  const BirdProtocolStatus b_side = OK_OR_FAIL(b->Protocol("a4"));
  CHECK(b_side.bgp_state != "Established");
  CHECK(b_side.last_error == "Received: Administrative shutdown");
  CHECK(OK_OR_FAIL(b->ProtocolState("a6")) == "Established");  // the other session stays
  CHECK(OK_OR_FAIL(b->Routes("fd00:10:1::/64")).size() == 1);

  REQUIRE_OK(a->Enable("b4"));
  REQUIRE_OK(b->WaitRoute("10.10.1.0/24", absl::Seconds(5), "a4").status());
  REQUIRE_OK(b->WaitEstablished("a4"));

  REQUIRE_OK(a->RestartProtocol("b4"));
  REQUIRE_OK(b->WaitEstablished("a4", absl::Seconds(5)));
  REQUIRE_OK(b->WaitRoute("10.10.1.0/24", absl::Seconds(5), "a4").status());
  CHECK(absl::IsNotFound(a->Disable("nope")));
}

TEST_CASE(
    "A crash of A (SIGKILL) takes B's session out of Established and a relaunch brings "
    "it back") {
  Link link;
  BirdPeerConfig a_config = ConfigA();
  a_config.neighbors.resize(1);  // IPv4 only
  BirdPeerConfig b_config = ConfigB();
  b_config.neighbors.resize(1);
  bool graceful = false;
  SECTION("graceful restart aware (BIRD's default): B drops A's routes at once") {}
  SECTION("graceful restart on at A: B keeps A's routes while A restarts") {
    graceful = true;
    a_config.graceful_restart = BirdGracefulRestart::kOn;
  }
  auto a = OK_OR_FAIL(BirdPeer::Start(link.a, a_config));
  auto b = OK_OR_FAIL(BirdPeer::Start(link.b, b_config));
  REQUIRE_OK(b->WaitEstablished("a4"));
  REQUIRE_OK(b->WaitRoute("10.10.1.0/24", absl::Seconds(5), "a4").status());
  const pid_t old_pid = a->pid();

  a->Kill();
  CHECK(!a->running());
  CHECK(ProcessGone(old_pid));
  // The kernel closes the dead process's socket: B notices at once, not after the hold time.
  REQUIRE_OK(b->WaitNotEstablished("a4", absl::Seconds(2)));
  const BirdProtocolStatus down = OK_OR_FAIL(b->Protocol("a4"));
  CHECK(down.last_error.rfind("Socket: ", 0) == 0);
  if (graceful) {
    absl::SleepFor(absl::Milliseconds(500));
    const std::vector<BirdRoute> kept = OK_OR_FAIL(b->Routes("10.10.1.0/24"));
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].protocol == "a4");
  } else {
    REQUIRE_OK(b->WaitNoRoute("10.10.1.0/24", absl::Seconds(2)));
  }
  CHECK(absl::IsFailedPrecondition(a->Command("show status").status()));

  REQUIRE_OK(a->Relaunch());
  CHECK(a->pid() != old_pid);
  REQUIRE_OK(b->WaitEstablished("a4", absl::Seconds(5)));
  REQUIRE_OK(b->WaitRoute("10.10.1.0/24", absl::Seconds(5), "a4").status());
}

TEST_CASE("A config bird rejects fails Start with bird's message and leaves nothing behind") {
  TestNetns ns = OK_OR_FAIL(TestNetns::Create("bird-bad"));
  BirdPeerConfig config = ConfigA();
  config.extra_config = "protocol bgp broken { local as 1; neighbor 10.0.0.1 as 2; hold time 1; }";
  absl::StatusOr<std::unique_ptr<BirdPeer>> peer = BirdPeer::Start(ns, config);
  REQUIRE(absl::IsInvalidArgument(peer.status()));
  CHECK_THAT(std::string(peer.status().message()), Catch::Contains("bird.conf.new:"));
  CHECK(OurTempDirs().empty());

  config = ConfigA();
  config.neighbors[0].name = "kernel4";  // clashes with the fixed protocols
  CHECK(absl::IsInvalidArgument(BirdPeer::Start(ns, config).status()));
  config = ConfigA();
  config.neighbors[0].password = "a\"b";
  CHECK(absl::IsInvalidArgument(BirdPeer::Start(ns, config).status()));
  config = ConfigA();
  config.static_routes_v4 = {"fd00::/64"};
  CHECK(absl::IsInvalidArgument(BirdPeer::Start(ns, config).status()));
  CHECK(OurTempDirs().empty());
}

TEST_CASE(
    "Peers, their temp dirs and the namespaces are gone after a test that failed "
    "half-way") {
  std::vector<pid_t> pids;
  std::vector<std::string> paths;
  auto failing_test = [&] {
    Link link;
    auto a = OK_OR_FAIL(BirdPeer::Start(link.a, ConfigA()));
    auto b = OK_OR_FAIL(BirdPeer::Start(link.b, ConfigB()));
    pids = {a->pid(), b->pid()};
    paths = {a->dir(), b->dir(), link.a.path(), link.b.path()};
    throw std::runtime_error("a failed REQUIRE");
  };
  REQUIRE_THROWS(failing_test());
  REQUIRE(pids.size() == 2);
  for (pid_t pid : pids) CHECK(ProcessGone(pid));
  for (const std::string& path : paths) CHECK(!std::filesystem::exists(path));
  CHECK(OurTempDirs().empty());
}

TEST_CASE("show route output parses into prefix, next hops, protocol and selection") {
  BirdReply reply;
  reply.code = 0;
  reply.lines = {
      {1007, "Table master4:"},
      {1007, "10.0.0.0/24          unicast [direct1 12:00:00.000] * (240)"},
      {1007, "\tdev eth0"},
      {1007, "10.10.1.0/24         unicast [a4 12:00:01.000] * (100) [AS65001i]"},
      {1007, "\tvia 10.200.0.1 on veth-b weight 1"},
      {1007, "\tvia 10.200.0.5 on veth-c weight 1"},
      {1008, "\tType: BGP univ"},
      {1012, "\tBGP.as_path: 65001"},
      {1007, "                     unicast [c4 12:00:02.000 from 10.200.0.9] (100) [AS65003i]"},
      {1007, "\tvia 10.200.0.9 on veth-c"},
      {1007, ""},
      {1007, "Table master6:"},
      {1007, "fd00:10:2::/64       unreachable [static6 12:00:00.000] * (200)"},
      {0, ""},
  };
  const std::vector<BirdRoute> routes = ParseBirdRoutes(reply);
  REQUIRE(routes.size() == 4);
  CHECK(routes[0].prefix == "10.0.0.0/24");
  REQUIRE(routes[0].next_hops.size() == 1);
  CHECK(routes[0].next_hops[0].address.empty());
  CHECK(routes[0].next_hops[0].interface == "eth0");
  CHECK(routes[1].protocol == "a4");
  CHECK(routes[1].primary);
  CHECK(routes[1].bgp_path == "AS65001i");
  REQUIRE(routes[1].next_hops.size() == 2);
  CHECK(routes[1].next_hops[1].address == "10.200.0.5");
  CHECK(routes[2].prefix == "10.10.1.0/24");
  CHECK(routes[2].protocol == "c4");
  CHECK(!routes[2].primary);
  CHECK(routes[2].next_hop() == "10.200.0.9");
  CHECK(routes[3].table == "master6");
  CHECK(routes[3].type == "unreachable");
  CHECK(routes[3].next_hops.empty());
}

}  // namespace
}  // namespace calico::testing
