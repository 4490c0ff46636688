// birdd's speaker against Debian's BIRD 2: our speaker runs on its own thread inside test
// namespace A, BIRD inside namespace B, joined by a veth pair (A: 10.200.0.1/30, fd00:200::1;
// B: .2 and ::2). eBGP over IPv4 and IPv6, routes both ways, withdrawals, TCP-MD5, 4-octet AS.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <future>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "birdd/kernel/fib.h"
#include "birdd/speaker/speaker.h"
#include "common/kernel/libnl_netlink.h"
#include "tests/support/bird/bird_peer.h"
#include "tests/support/netns/test_netns.h"

namespace calico::birdd {
namespace {

using ::calico::testing::BirdNeighbor;
using ::calico::testing::BirdPeer;
using ::calico::testing::BirdPeerConfig;
using ::calico::testing::TestNetns;

void Sh(const TestNetns& ns, const std::string& cmd) {
  ::calico::testing::ExecResult r = ns.Exec(cmd);
  if (r.status != 0) FAIL(ns.name() << ": `" << cmd << "`: " << r.output);
}

struct Link {
  TestNetns a = std::move(*TestNetns::Create("birdd-a"));
  TestNetns b = std::move(*TestNetns::Create("bird-b"));
  Link() {
    Sh(a, absl::StrCat("ip link set lo up && ip link add veth-a type veth peer name veth-b && ",
                       "ip link set veth-b netns ", b.name(), " && ",
                       "ip addr add 10.200.0.1/30 dev veth-a && ",
                       "ip -6 addr add fd00:200::1/64 dev veth-a nodad && ip link set veth-a up"));
    Sh(b, "ip link set lo up && ip addr add 10.200.0.2/30 dev veth-b && "
          "ip -6 addr add fd00:200::2/64 dev veth-b nodad && ip link set veth-b up");
  }
};

// Our speaker on a thread of its own inside namespace `ns` (sockets belong to the namespace of
// the thread that creates them).
class OurSpeaker {
 public:
  OurSpeaker(const TestNetns& ns, uint32_t asn, std::string password) {
    std::promise<void> ready;
    thread_ = std::thread([this, path = ns.path(), asn, password, &ready] {
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      setns(fd, CLONE_NEWNET);
      close(fd);
      loop_ = std::move(*peers::EventLoop::Create());
      // The FIB in this namespace, as birdd installs its routes (proto bird).
      netlink_ = std::move(*kernel::LibnlNetlink::Open());
      fib_ = std::make_unique<kernel_fib::Fib>(*netlink_);
      if (!fib_->RefreshInterfaces().ok()) errors_.push_back("fib: reading interfaces failed");
      listener_ = std::move(*peers::Listener::Create(*loop_, *net::ParseIp("::"), 179));
      speaker::SpeakerConfig c;
      c.local_as = asn;
      c.router_id = 0x0ac80001;
      speaker_ = std::make_unique<speaker::Speaker>(*loop_, c,
          [this](const net::Prefix& p, const std::vector<net::IpAddress>& hops) {
            fib_->Set(p, hops);
            absl::Status applied = fib_->Apply();
            std::lock_guard<std::mutex> lock(mu_);
            if (!applied.ok()) errors_.push_back(std::string(applied.message()));
            if (hops.empty()) {
              kernel_.erase(p);
            } else {
              kernel_[p] = hops;
            }
          });
      for (const char* peer : {"10.200.0.2", "fd00:200::2"}) {
        speaker::NeighborConfig n;
        n.session.name = peer;
        n.session.peer_address = *net::ParseIp(peer);
        n.session.peer_as = 65002;
        n.session.password = password;
        n.session.fsm.hold_time = absl::Seconds(6);
        n.session.fsm.connect_retry_time = absl::Seconds(1);
        n.session.fsm.idle_hold_time = absl::Milliseconds(200);
        absl::Status added = speaker_->AddNeighbor(n, listener_.get());
        if (!added.ok()) errors_.push_back(std::string(added.message()));
      }
      ready.set_value();
      loop_->Run();
      // Torn down on the loop's thread, in its namespace.
      speaker_.reset();
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
  void Post(std::function<void(speaker::Speaker&)> fn) {
    loop_->Post([this, fn] { fn(*speaker_); });
  }
  std::optional<std::vector<net::IpAddress>> Kernel(const net::Prefix& p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = kernel_.find(p);
    if (it == kernel_.end()) return std::nullopt;
    return it->second;
  }
  bool WaitKernel(const net::Prefix& p, bool present) {
    for (int i = 0; i < 150; ++i) {
      if (Kernel(p).has_value() == present) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  std::unique_ptr<peers::EventLoop> loop_;
  std::unique_ptr<kernel::LibnlNetlink> netlink_;
  std::unique_ptr<kernel_fib::Fib> fib_;
  std::unique_ptr<peers::Listener> listener_;
  std::unique_ptr<speaker::Speaker> speaker_;
  std::thread thread_;
  std::mutex mu_;
  std::map<net::Prefix, std::vector<net::IpAddress>> kernel_;

 public:
  std::vector<std::string> errors_;  // AddNeighbor failures, checked by the test
};

BirdPeerConfig BirdSide(uint32_t our_asn, std::string password) {
  BirdPeerConfig c;
  c.router_id = "10.200.0.2";
  c.asn = 65002;
  for (auto [name, addr] : std::vector<std::pair<std::string, std::string>>{
           {"ours4", "10.200.0.1"}, {"ours6", "fd00:200::1"}}) {
    BirdNeighbor n;
    n.name = name;
    n.address = addr;
    n.asn = our_asn;
    n.passive = true;  // we connect; no collision to resolve
    n.password = password;
    c.neighbors.push_back(n);
  }
  c.static_routes_v4 = {"10.10.2.0/24"};
  c.static_routes_v6 = {"fd00:10:2::/64"};
  return c;
}

void RunInterop(uint32_t our_asn, const std::string& password) {
  Link link;
  absl::StatusOr<std::unique_ptr<BirdPeer>> bird = BirdPeer::Start(link.b, BirdSide(our_asn, password));
  REQUIRE(bird.ok());
  OurSpeaker ours(link.a, our_asn, password);
  REQUIRE(ours.errors_.empty());
  if (!(*bird)->WaitEstablished("ours4", absl::Seconds(15)).ok()) {
    FAIL("ours4 not established; A: " << link.a.Exec("nstat -az | grep -i md5").output
         << " B: " << link.b.Exec("nstat -az | grep -i md5").output
         << (*bird)->Command("show protocols all ours4")->Text());
  }
  REQUIRE((*bird)->WaitEstablished("ours6", absl::Seconds(15)).ok());

  // BIRD's routes reach our kernel sink with BIRD's next hops.
  REQUIRE(ours.WaitKernel(*net::ParsePrefix("10.10.2.0/24"), true));
  CHECK(ours.Kernel(*net::ParsePrefix("10.10.2.0/24"))->front() == *net::ParseIp("10.200.0.2"));
  REQUIRE(ours.WaitKernel(*net::ParsePrefix("fd00:10:2::/64"), true));
  CHECK(ours.Kernel(*net::ParsePrefix("fd00:10:2::/64"))->front() == *net::ParseIp("fd00:200::2"));
  // ... and into namespace A's kernel as `proto bird`, device resolved.
  CHECK_THAT(link.a.Exec("ip route show proto bird").output,
             Catch::Contains("10.10.2.0/24 via 10.200.0.2 dev veth-a"));
  CHECK_THAT(link.a.Exec("ip -6 route show proto bird").output,
             Catch::Contains("fd00:10:2::/64 via fd00:200::2 dev veth-a"));

  // Ours reach BIRD, with our AS in the path and us as next hop.
  ours.Post([](speaker::Speaker& s) {
    s.Originate(*net::ParsePrefix("10.65.0.0/26"));
    s.Originate(*net::ParsePrefix("fd00:65::/122"));
  });
  absl::StatusOr<::calico::testing::BirdRoute> v4 = (*bird)->WaitRoute("10.65.0.0/26", absl::Seconds(10));
  REQUIRE(v4.ok());
  REQUIRE_FALSE(v4->next_hops.empty());
  CHECK(v4->next_hops[0].address == "10.200.0.1");
  absl::StatusOr<::calico::testing::BirdReply> detail = (*bird)->Command("show route 10.65.0.0/26 all");
  REQUIRE(detail.ok());
  CHECK_THAT(detail->Text(), Catch::Contains(absl::StrCat("BGP.as_path: ", our_asn)));
  absl::StatusOr<::calico::testing::BirdRoute> v6 = (*bird)->WaitRoute("fd00:65::/122", absl::Seconds(10));
  REQUIRE(v6.ok());
  CHECK(v6->next_hops[0].address == "fd00:200::1");

  // A withdrawal on either side goes through.
  ours.Post([](speaker::Speaker& s) { s.Withdraw(*net::ParsePrefix("10.65.0.0/26")); });
  CHECK((*bird)->WaitNoRoute("10.65.0.0/26", absl::Seconds(10)).ok());
  REQUIRE((*bird)->Disable("ours4").ok());
  CHECK(ours.WaitKernel(*net::ParsePrefix("10.10.2.0/24"), false));
  CHECK(link.a.Exec("ip route show proto bird").output.find("10.10.2.0/24") == std::string::npos);
}

TEST_CASE("interop with BIRD 2: eBGP over IPv4 and IPv6, routes and withdrawals both ways") {
  RunInterop(65001, "");
}

TEST_CASE("interop with BIRD 2: a 4-octet AS") { RunInterop(4200000001u, ""); }

TEST_CASE("interop with BIRD 2: a TCP-MD5 password") { RunInterop(65001, "calico-md5"); }

}  // namespace
}  // namespace calico::birdd
