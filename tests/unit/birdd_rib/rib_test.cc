#include "birdd/rib/rib.h"

#include <malloc.h>

#include <catch2/catch.hpp>
#include <cstdio>

namespace calico::birdd::rib {
namespace {

net::Prefix P(std::string_view text) { return *net::ParsePrefix(text); }

Peer MakePeer(std::string_view address, uint32_t asn, bool ebgp, uint32_t router_id) {
  Peer p;
  p.address = *net::ParseIp(address);
  p.asn = asn;
  p.ebgp = ebgp;
  p.router_id = router_id;
  return p;
}

Path MakePath(std::string_view next_hop, std::vector<uint32_t> as_path, uint32_t local_pref = 100) {
  Path p;
  p.attrs.origin = wire::Origin::kIgp;
  wire::AsSegment seg;
  seg.type = wire::AsSegmentType::kAsSequence;
  seg.asns = std::move(as_path);
  p.attrs.as_path = wire::AsPath{};
  if (!seg.asns.empty()) p.attrs.as_path->push_back(seg);
  p.attrs.local_pref = local_pref;
  p.next_hop.address = *net::ParseIp(next_hop);
  return p;
}

TEST_CASE("rib: paths are interned, routes reported only when the selection changes") {
  Rib rib;
  PeerId a = rib.AddPeer(MakePeer("10.0.0.1", 64512, false, 1));
  PeerId b = rib.AddPeer(MakePeer("10.0.0.2", 64512, false, 2));
  PathId pa = rib.Intern(MakePath("10.0.0.1", {}));
  CHECK(rib.Intern(MakePath("10.0.0.1", {})) == pa);
  std::vector<net::Prefix> prefixes = {P("10.65.0.0/26"), P("10.65.0.64/26")};
  std::vector<net::Prefix> changed;
  CHECK(rib.Announce(a, prefixes, pa, &changed) == 2);
  CHECK(changed == prefixes);
  CHECK(rib.live_paths() == 1);

  // A worse path from b (lower LOCAL_PREF) changes nothing visible.
  PathId pb_low = rib.Intern(MakePath("10.0.0.2", {}, 50));
  changed.clear();
  CHECK(rib.Announce(b, prefixes, pb_low, &changed) == 0);
  CHECK(changed.empty());
  CHECK(rib.Lookup(prefixes[0])->peer == a);

  // b improves: it wins both prefixes.
  PathId pb_high = rib.Intern(MakePath("10.0.0.2", {}, 200));
  CHECK(rib.Announce(b, prefixes, pb_high) == 2);
  CHECK(rib.Lookup(prefixes[0])->peer == b);
  CHECK(rib.live_paths() == 2);  // pb_low is gone: nothing uses it any more

  // Withdrawing the best falls back to a; withdrawing a non-best changes nothing.
  CHECK(rib.Withdraw(b, std::span(prefixes).first(1)) == 1);
  CHECK(rib.Lookup(prefixes[0])->peer == a);
  CHECK(rib.Withdraw(a, std::span(prefixes).subspan(1)) == 0);
  CHECK(rib.Lookup(prefixes[1])->peer == b);
  CHECK(rib.Withdraw(a, std::vector<net::Prefix>{P("10.99.0.0/24")}) == 0);  // unknown: nothing
}

TEST_CASE("rib: equal paths from one neighbor AS form the ECMP set, and changes to it are reported") {
  Rib rib;
  PeerId a = rib.AddPeer(MakePeer("10.0.0.1", 65001, true, 1));
  PeerId b = rib.AddPeer(MakePeer("10.0.0.2", 65001, true, 2));
  PeerId c = rib.AddPeer(MakePeer("10.0.0.3", 65001, true, 3));
  std::vector<net::Prefix> one = {P("192.168.0.0/24")};
  rib.Announce(a, one, rib.Intern(MakePath("10.0.0.1", {65001})));
  std::vector<net::Prefix> changed;
  CHECK(rib.Announce(b, one, rib.Intern(MakePath("10.0.0.2", {65001})), &changed) == 1);
  std::optional<Selected> s = rib.Lookup(one[0]);
  CHECK(s->peer == a);  // lower router id
  REQUIRE(s->multipath.size() == 1);
  CHECK(s->multipath[0].first == b);
  // A longer path from c is a candidate but not part of the ECMP set: no change.
  CHECK(rib.Announce(c, one, rib.Intern(MakePath("10.0.0.3", {65001, 65002}))) == 0);
  // Taking b out of the ECMP set is a change.
  CHECK(rib.Withdraw(b, one) == 1);
  CHECK(rib.Lookup(one[0])->multipath.empty());
}

TEST_CASE("rib: a peer going down takes all its routes and paths with it") {
  Rib rib;
  PeerId a = rib.AddPeer(MakePeer("10.0.0.1", 64512, false, 1));
  PeerId b = rib.AddPeer(MakePeer("10.0.0.2", 64512, false, 2));
  std::vector<net::Prefix> v4 = {P("10.65.0.0/26"), P("10.65.1.0/26")};
  std::vector<net::Prefix> v6 = {P("fd00:1::/122")};
  rib.Announce(a, v4, rib.Intern(MakePath("10.0.0.1", {})));
  rib.Announce(a, v6, rib.Intern(MakePath("fd00::1", {})));
  rib.Announce(b, std::span(v4).first(1), rib.Intern(MakePath("10.0.0.2", {}, 50)));
  std::vector<net::Prefix> changed;
  CHECK(rib.WithdrawAll(a, &changed) == 3);
  CHECK(changed.size() == 3);
  CHECK(rib.prefixes() == 1);
  CHECK(rib.Lookup(v4[0])->peer == b);
  CHECK_FALSE(rib.Lookup(v6[0]).has_value());
  CHECK(rib.live_paths() == 1);
}

TEST_CASE("rib: graceful restart keeps stale routes until the sweep, and re-announced ones survive it") {
  Rib rib;
  PeerId a = rib.AddPeer(MakePeer("10.0.0.1", 64512, false, 1));
  std::vector<net::Prefix> prefixes = {P("10.65.0.0/26"), P("10.65.1.0/26"), P("10.65.2.0/26")};
  PathId path = rib.Intern(MakePath("10.0.0.1", {}));
  rib.Announce(a, prefixes, path);
  rib.MarkStale(a);
  CHECK(rib.prefixes() == 3);  // forwarding goes on during the restart
  // The peer comes back and re-announces two of them (same path: no visible change).
  CHECK(rib.Announce(a, std::span(prefixes).first(2), rib.Intern(MakePath("10.0.0.1", {}))) == 0);
  std::vector<net::Prefix> gone;
  CHECK(rib.SweepStale(a, &gone) == 1);
  CHECK(gone == std::vector<net::Prefix>{prefixes[2]});
  CHECK(rib.prefixes() == 2);
}

TEST_CASE("rib: locally originated routes win over learned ones", "[rib]") {
  Rib rib;
  Peer local;
  local.local = true;
  PeerId me = rib.AddPeer(local);
  PeerId a = rib.AddPeer(MakePeer("10.0.0.1", 64512, false, 1));
  std::vector<net::Prefix> block = {P("10.65.0.0/26")};
  rib.Announce(a, block, rib.Intern(MakePath("10.0.0.1", {}, 500)));
  CHECK(rib.Announce(me, block, rib.Intern(MakePath("0.0.0.0", {}))) == 1);
  CHECK(rib.Lookup(block[0])->peer == me);
}

TEST_CASE("rib: a peer's only route re-announced, replaced and refreshed after a restart") {
  Rib rib;
  PeerId a = rib.AddPeer(MakePeer("10.0.0.1", 65001, true, 1));
  std::vector<net::Prefix> ps = {P("10.65.0.0/26"), P("10.65.1.0/26")};
  PathId p1 = rib.Intern(MakePath("10.0.0.1", {65001}));
  CHECK(rib.Announce(a, ps, p1) == 2);
  CHECK(rib.Announce(a, ps, p1) == 0);  // the same again: nothing moved
  CHECK(rib.live_paths() == 1);
  PathId p2 = rib.Intern(MakePath("10.0.0.1", {65001, 65002}));
  std::vector<net::Prefix> changed;
  CHECK(rib.Announce(a, ps, p2, &changed) == 2);
  CHECK(changed == ps);
  CHECK(rib.Lookup(ps[0])->path == p2);
  CHECK(rib.live_paths() == 1);  // p1 went with its last route
  // Graceful restart: re-announced routes are fresh again, the rest is swept.
  rib.MarkStale(a);
  CHECK(rib.Announce(a, std::vector<net::Prefix>{ps[0]}, p2) == 0);
  changed.clear();
  CHECK(rib.SweepStale(a, &changed) == 1);
  CHECK(changed == std::vector<net::Prefix>{ps[1]});
  CHECK(rib.Lookup(ps[0]).has_value());
  CHECK(rib.prefixes() == 1);
}

// Memory per route, printed (the benchmark compares against BIRD 2): 1M IPv4 /24s from one peer
// sharing 1000 paths, as a full feed packs them.
TEST_CASE("rib: bytes per route for 1M IPv4 prefixes", "[.][bench]") {
  struct mallinfo2 before = mallinfo2();
  {
    Rib rib;
    PeerId a = rib.AddPeer(MakePeer("10.0.0.1", 65001, true, 1));
    std::vector<net::Prefix> batch;
    for (uint32_t i = 0; i < 1000000; ++i) {
      if (i % 1000 == 0 && !batch.empty()) {
        rib.Announce(a, batch, rib.Intern(MakePath("10.0.0.1", {65001, 65000 + i / 1000})));
        batch.clear();
      }
      net::Prefix p;
      p.addr.family = 4;
      uint32_t addr = (16u << 24) + (i << 8);
      p.addr.bytes = {static_cast<uint8_t>(addr >> 24), static_cast<uint8_t>(addr >> 16),
                      static_cast<uint8_t>(addr >> 8), 0};
      p.len = 24;
      batch.push_back(p);
    }
    rib.Announce(a, batch, rib.Intern(MakePath("10.0.0.1", {65001, 66000})));
    struct mallinfo2 after = mallinfo2();
    // Large tables are mmap'd by malloc: count those (hblkhd) as well as the heap.
    double per_route =
        static_cast<double>((after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd)) / 1e6;
    std::printf("rib: %zu prefixes, %zu paths, %.1f bytes per route\n", rib.prefixes(),
                rib.live_paths(), per_route);
    CHECK(rib.prefixes() == 1000000);
  }
}

}  // namespace
}  // namespace calico::birdd::rib
