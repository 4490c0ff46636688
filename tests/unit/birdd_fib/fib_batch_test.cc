// Fib at BGP scale: batched writes, failures kept pending, read-back adoption and strays; the
// FibWriter thread in front of it.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <mutex>

#include "birdd/kernel/fib.h"
#include "birdd/kernel/fib_writer.h"
#include "common/kernel/fake_netlink.h"

namespace calico::birdd::kernel_fib {
namespace {

net::Prefix P(std::string_view s) { return *net::ParsePrefix(s); }
net::IpAddress Ip(std::string_view s) { return *net::ParseIp(s); }

// eth1 10.200.0.1/24 and fd00:200::1/64, with their connected routes (FakeNetlink needs a
// covering route to accept a gateway).
struct Host {
  kernel::FakeNetlink nl;
  int eth1 = 0;
  Host() {
    kernel::Link l;
    l.name = "eth1";
    l.up = true;
    eth1 = nl.AddLinkByHand(l).index;
    for (auto [addr, net] : std::vector<std::pair<std::string, std::string>>{
             {"10.200.0.1/24", "10.200.0.0/24"}, {"fd00:200::1/64", "fd00:200::/64"}}) {
      REQUIRE(nl.ReplaceAddress({.prefix = P(addr), .ifindex = eth1, .nodad = true}).ok());
      kernel::Route connected = kernel::Route::Local(net, "eth1");
      connected.hop.ifindex = eth1;
      connected.protocol = kernel::kProtoKernel;
      if (connected.dst.addr.family == 6) connected.priority = kernel::kIpv6DefaultMetric;
      nl.PutRouteByHand(connected);
    }
  }
  size_t Bird() const {
    size_t n = 0;
    for (const kernel::Route& r : nl.Routes()) n += r.protocol == kernel::kProtoBird;
    return n;
  }
};

net::Prefix Nth(uint32_t i) {
  net::Prefix p;
  p.addr.family = 4;
  uint32_t a = (16u << 24) + (i << 8);
  p.addr.bytes = {static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16),
                  static_cast<uint8_t>(a >> 8), 0};
  p.len = 24;
  return p;
}

TEST_CASE("fib: thousands of routes, counted as installed, removed again") {
  Host h;
  Fib fib(h.nl);
  REQUIRE(fib.RefreshInterfaces().ok());
  for (uint32_t i = 0; i < 10000; ++i) fib.Set(Nth(i), {Ip("10.200.0.2")});
  fib.Set(P("fd00:65::/64"), {Ip("fd00:200::2")});
  CHECK(fib.pending() == 10001);
  REQUIRE(fib.Apply().ok());
  CHECK(fib.installed() == 10001);
  CHECK(fib.pending() == 0);
  CHECK(h.Bird() == 10001);
  // Setting the same again writes nothing.
  h.nl.ResetCalls();
  for (uint32_t i = 0; i < 10000; ++i) fib.Set(Nth(i), {Ip("10.200.0.2")});
  REQUIRE(fib.Apply().ok());
  CHECK(h.nl.Writes() == 0);
  for (uint32_t i = 0; i < 10000; i += 2) fib.Set(Nth(i), {});
  REQUIRE(fib.Apply().ok());
  CHECK(fib.installed() == 5001);
  CHECK(h.Bird() == 5001);
}

TEST_CASE("fib: a failed write stays pending and the next Apply retries it") {
  Host h;
  Fib fib(h.nl);
  REQUIRE(fib.RefreshInterfaces().ok());
  fib.Set(P("10.65.0.0/26"), {Ip("10.200.0.2")});
  fib.Set(P("10.65.1.0/26"), {Ip("10.200.0.2")});
  h.nl.FailNext(kernel::NetlinkOp::kRouteReplace, ENOBUFS);
  absl::Status s = fib.Apply();
  CHECK(s.code() == absl::StatusCode::kUnavailable);
  CHECK(fib.installed() == 1);
  CHECK(fib.pending() == 1);
  REQUIRE(fib.Apply().ok());
  CHECK(fib.installed() == 2);
  CHECK(h.Bird() == 2);

  // A failed delete too.
  fib.Set(P("10.65.0.0/26"), {});
  h.nl.FailNext(kernel::NetlinkOp::kRouteDelete, EBUSY);
  CHECK_FALSE(fib.Apply().ok());
  CHECK(h.Bird() == 2);
  REQUIRE(fib.Apply().ok());
  CHECK(h.Bird() == 1);
  CHECK(fib.installed() == 1);
}

TEST_CASE("fib: resync adopts what it wants, rewrites what drifted, deletes strays") {
  Host h;
  auto bird = [&](std::string_view dst, std::string_view gw, uint32_t metric = 0) {
    kernel::Route r = kernel::Route::Via(dst, gw, "eth1");
    r.hop.ifindex = h.eth1;
    r.protocol = kernel::kProtoBird;
    r.priority = metric;
    h.nl.PutRouteByHand(r);
  };
  bird("10.65.0.0/26", "10.200.0.2");       // wanted as it is
  bird("10.65.1.0/26", "10.200.0.3");       // wanted via another next hop
  bird("10.65.2.0/26", "10.200.0.2");       // not wanted any more (an earlier run's)
  bird("10.65.3.0/26", "10.200.0.2", 50);   // wanted, but at a metric we never write
  kernel::Route onlink = kernel::Route::Via("10.65.4.0/26", "10.200.0.2", "eth1", true);
  onlink.hop.ifindex = h.eth1;
  onlink.protocol = kernel::kProtoBird;
  h.nl.PutRouteByHand(onlink);              // wanted, but in a shape we never write
  Fib fib(h.nl);
  REQUIRE(fib.RefreshInterfaces().ok());
  for (std::string_view dst : {"10.65.0.0/26", "10.65.1.0/26", "10.65.3.0/26", "10.65.4.0/26"}) {
    fib.Set(P(dst), {Ip("10.200.0.2")});
  }
  h.nl.ResetCalls();
  REQUIRE(fib.Resync().ok());
  // 10.65.0.0 adopted untouched; 1, 3 (metric 0) and 4 written; 2 and 3 at metric 50 deleted.
  CHECK(h.nl.Calls(kernel::NetlinkOp::kRouteReplace) == 3);
  CHECK(h.nl.Calls(kernel::NetlinkOp::kRouteDelete) == 2);
  std::vector<kernel::Route> left;
  for (const kernel::Route& r : h.nl.Routes()) {
    if (r.protocol == kernel::kProtoBird) left.push_back(r);
  }
  REQUIRE(left.size() == 4);
  for (const kernel::Route& r : left) {
    CHECK(r.priority == 0);
    CHECK(r.hop.gateway == Ip("10.200.0.2"));
    CHECK_FALSE(r.hop.onlink);
  }
  CHECK(fib.installed() == 4);
  h.nl.ResetCalls();
  REQUIRE(fib.Resync().ok());
  CHECK(h.nl.Writes() == 0);
}

}  // namespace
}  // namespace calico::birdd::kernel_fib

namespace calico::birdd::kernel_fib {
namespace {

TEST_CASE("fib writer: sets from another thread land in the kernel and failures are retried") {
  Host h;
  Fib fib(h.nl);
  REQUIRE(fib.RefreshInterfaces().ok());
  std::mutex mu;
  std::condition_variable applied;
  std::vector<FibProgress> seen;
  FibWriter::Options options;
  options.retry_after = absl::Milliseconds(1);
  options.on_applied = [&](const FibProgress& p) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(p);
    applied.notify_all();
  };
  {
    FibWriter writer(fib, options);
    for (uint32_t i = 0; i < 3000; ++i) writer.Set(Nth(i), {Ip("10.200.0.2")});
    REQUIRE(writer.WaitIdle(absl::Seconds(10)));
    CHECK(h.Bird() == 3000);
    {
      std::lock_guard<std::mutex> lock(mu);
      REQUIRE_FALSE(seen.empty());
      CHECK(seen.back().installed == 3000);
      CHECK(seen.back().pending == 0);
    }
    // A failure: the writer retries by itself, without another Set.
    writer.Post([&](Fib&) { h.nl.FailNext(kernel::NetlinkOp::kRouteReplace, ENOBUFS); });
    writer.Set(P("10.65.0.0/26"), {Ip("10.200.0.2")});
    {
      std::unique_lock<std::mutex> lock(mu);
      CHECK(applied.wait_for(lock, std::chrono::seconds(10),
                             [&] { return seen.back().installed == 3001; }));
    }
    size_t counted = 0;
    writer.Post([&](Fib& f) { counted = f.installed(); });
    REQUIRE(writer.WaitIdle(absl::Seconds(10)));
    CHECK(counted == 3001);
  }
  std::lock_guard<std::mutex> lock(mu);
  bool failed_once = false;
  for (const FibProgress& p : seen) failed_once |= !p.last.ok();
  CHECK(failed_once);
}

}  // namespace
}  // namespace calico::birdd::kernel_fib
