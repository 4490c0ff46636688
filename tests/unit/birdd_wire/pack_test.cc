// The UPDATE packer: as few ≤4096-octet messages as possible, byte-identical to Encode(), and a
// decode path that allocates per message, not per prefix. The 1M-prefix measurement is hidden
// ([.bench]); run it with `birdd_wire_unit_tests "[bench]"`.

#include <chrono>
#include <cstdio>

#include "alloc_counter.h"
#include "birdd/wire/framer.h"
#include "birdd/wire/pack.h"
#include "wire_test_util.h"

namespace calico::birdd::wire {
namespace {

using namespace testing;

PathAttributes CommonAttrs() {
  PathAttributes attrs;
  attrs.origin = Origin::kIgp;
  attrs.as_path = AsPath{{AsSegmentType::kAsSequence, {64512, 4200000001u}}};
  attrs.med = 0;
  attrs.communities = {64512u << 16 | 1};
  return attrs;
}

// n distinct IPv4 /24s (3 octets each on the wire) or IPv6 /48s.
std::vector<net::Prefix> Prefixes(int family, size_t n) {
  std::vector<net::Prefix> out(n);
  for (size_t i = 0; i < n; ++i) {
    net::Prefix& p = out[i];
    p.addr.family = family;
    if (family == 4) {
      uint32_t v = static_cast<uint32_t>(0x0a000000u + (i << 8));
      p.addr.bytes = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                      static_cast<uint8_t>(v >> 8), 0};
      p.len = 24;
    } else {
      p.addr.bytes[0] = 0x20;
      p.addr.bytes[1] = 0x01;
      p.addr.bytes[2] = 0x0d;
      p.addr.bytes[3] = static_cast<uint8_t>(0xb8 + (i >> 16));
      p.addr.bytes[4] = static_cast<uint8_t>(i >> 8);
      p.addr.bytes[5] = static_cast<uint8_t>(i);
      p.len = 48;
    }
  }
  return out;
}

// Splits a buffer of back-to-back messages; every one must be ≤ 4096 octets.
std::vector<std::span<const uint8_t>> Split(const std::vector<uint8_t>& stream) {
  std::vector<std::span<const uint8_t>> out;
  Framer framer;
  framer.Feed(stream);
  while (true) {
    Framer::Frame frame = framer.Next();
    if (frame.kind == Framer::Frame::Kind::kNeedMore) break;
    REQUIRE(frame.kind == Framer::Frame::Kind::kMessage);
    out.push_back(frame.message);
  }
  REQUIRE(framer.buffered() == 0);
  return out;
}

TEST_CASE("pack: IPv4 announcements fill messages and match Encode()", "[unit][wire][pack]") {
  const std::vector<net::Prefix> prefixes = Prefixes(4, 5000);
  const NextHop next_hop{Ip("192.0.2.1"), std::nullopt};
  std::vector<uint8_t> stream;
  absl::StatusOr<size_t> n = EncodeAnnouncements(CommonAttrs(), next_hop, prefixes, kNew, stream);
  REQUIRE(n.ok());
  auto messages = Split(stream);
  REQUIRE(messages.size() == *n);

  // Minimal count: every message but the last is full to within one prefix.
  PathAttributes attrs = CommonAttrs();
  attrs.next_hop = next_hop.address;
  Update probe;
  probe.attrs = attrs;
  const size_t fixed = EncodeOk(probe, kNew).size();
  const size_t per_message = (4096 - fixed) / 4;
  CHECK(*n == (prefixes.size() + per_message - 1) / per_message);

  std::vector<net::Prefix> got;
  size_t at = 0;
  for (auto m : messages) {
    CHECK(m.size() <= 4096);
    Update u = DecodeAs<Update>(std::vector<uint8_t>(m.begin(), m.end()), kNew);
    CHECK(u.attrs == attrs);
    // Byte-identical to encoding the same Update.
    Update same;
    same.attrs = attrs;
    same.nlri.assign(prefixes.begin() + at, prefixes.begin() + at + u.nlri.size());
    CHECK(EncodeOk(same, kNew) == std::vector<uint8_t>(m.begin(), m.end()));
    at += u.nlri.size();
    got.insert(got.end(), u.nlri.begin(), u.nlri.end());
  }
  CHECK(got == prefixes);
}

TEST_CASE("pack: IPv6 announcements go in MP_REACH_NLRI", "[unit][wire][pack]") {
  const std::vector<net::Prefix> prefixes = Prefixes(6, 3000);
  const NextHop next_hop{Ip("2001:db8::1"), Ip("fe80::1")};
  for (const SessionContext& session : {kOld, kNew}) {
    std::vector<uint8_t> stream;
    absl::StatusOr<size_t> n = EncodeAnnouncements(CommonAttrs(), next_hop, prefixes, session, stream);
    REQUIRE(n.ok());
    std::vector<net::Prefix> got;
    auto messages = Split(stream);
    CHECK(messages.size() == *n);
    for (size_t i = 0; i + 1 < messages.size(); ++i) {
      CHECK(messages[i].size() + 7 > 4096);  // full: no room for another /48
    }
    for (auto m : messages) {
      CHECK(m.size() <= 4096);
      Update u = DecodeAs<Update>(std::vector<uint8_t>(m.begin(), m.end()), session);
      CHECK(u.attrs == CommonAttrs());
      REQUIRE(u.mp_reach.has_value());
      CHECK(u.mp_reach->next_hop == next_hop);
      Update same;
      same.attrs = CommonAttrs();
      same.mp_reach = u.mp_reach;
      CHECK(EncodeOk(same, session) == std::vector<uint8_t>(m.begin(), m.end()));
      got.insert(got.end(), u.mp_reach->nlri.begin(), u.mp_reach->nlri.end());
    }
    CHECK(got == prefixes);
  }
  // A handful of prefixes: one short message with a one-octet attribute length.
  std::vector<uint8_t> small;
  REQUIRE(EncodeAnnouncements(CommonAttrs(), next_hop, std::span(prefixes).first(3), kNew, small)
              .ok());
  Update u = DecodeAs<Update>(small, kNew);
  CHECK(u.mp_reach->nlri.size() == 3);
  CHECK(small[23] == kAttrOptional);  // MP_REACH_NLRI first, no Extended Length
}

TEST_CASE("pack: withdrawals of both families", "[unit][wire][pack]") {
  std::vector<net::Prefix> mixed;
  for (const net::Prefix& p : Prefixes(4, 2000)) mixed.push_back(p);
  for (const net::Prefix& p : Prefixes(6, 2000)) mixed.push_back(p);
  std::rotate(mixed.begin(), mixed.begin() + 1500, mixed.end());
  std::vector<uint8_t> stream;
  absl::StatusOr<size_t> n = EncodeWithdrawals(mixed, stream);
  REQUIRE(n.ok());
  std::vector<net::Prefix> v4, v6;
  for (auto m : Split(stream)) {
    CHECK(m.size() <= 4096);
    Update u = DecodeAs<Update>(std::vector<uint8_t>(m.begin(), m.end()), kNew);
    CHECK(u.errors.empty());
    v4.insert(v4.end(), u.withdrawn.begin(), u.withdrawn.end());
    if (u.mp_unreach) v6.insert(v6.end(), u.mp_unreach->withdrawn.begin(), u.mp_unreach->withdrawn.end());
  }
  std::vector<net::Prefix> want4, want6;
  for (const net::Prefix& p : mixed) (p.addr.family == 4 ? want4 : want6).push_back(p);
  CHECK(v4 == want4);
  CHECK(v6 == want6);
  CHECK(*n == 2 + 4);  // 2000×4 octets in 4073-octet fields, 2000×7 in 4066-octet MP_UNREACHes
}

TEST_CASE("pack: bad input appends nothing", "[unit][wire][pack]") {
  std::vector<uint8_t> stream = {1, 2, 3};
  std::vector<net::Prefix> v4 = Prefixes(4, 3);
  CHECK_FALSE(EncodeAnnouncements(CommonAttrs(), NextHop{Ip("2001:db8::1"), std::nullopt}, v4,
                                  kNew, stream)
                  .ok());
  net::Prefix bad = v4[0];
  bad.len = 33;
  v4.push_back(bad);
  CHECK_FALSE(EncodeAnnouncements(CommonAttrs(), NextHop{Ip("10.0.0.1"), std::nullopt}, v4, kNew,
                                  stream)
                  .ok());
  CHECK_FALSE(EncodeWithdrawals(v4, stream).ok());
  PathAttributes huge = CommonAttrs();
  huge.communities.assign(1100, 1);
  CHECK_FALSE(EncodeAnnouncements(huge, NextHop{Ip("10.0.0.1"), std::nullopt},
                                  std::span(v4).first(3), kNew, stream)
                  .ok());
  CHECK(stream == std::vector<uint8_t>{1, 2, 3});
  CHECK(*EncodeAnnouncements(CommonAttrs(), NextHop{Ip("10.0.0.1"), std::nullopt}, {}, kNew, stream) == 0);
}

TEST_CASE("pack: a warm Update decodes without per-prefix allocations", "[unit][wire][pack]") {
  const std::vector<net::Prefix> v4 = Prefixes(4, 20000), v6 = Prefixes(6, 20000);
  std::vector<uint8_t> stream;
  REQUIRE(EncodeAnnouncements(CommonAttrs(), NextHop{Ip("192.0.2.1"), std::nullopt}, v4, kNew, stream).ok());
  REQUIRE(EncodeAnnouncements(CommonAttrs(), NextHop{Ip("2001:db8::1"), std::nullopt}, v6, kNew, stream).ok());
  auto messages = Split(stream);
  Update update;
  for (auto m : messages) REQUIRE_FALSE(DecodeUpdate(m, kNew, update).has_value());  // warm up
  size_t prefixes = 0;
  ScopedAllocCount allocs;
  for (auto m : messages) {
    REQUIRE_FALSE(DecodeUpdate(m, kNew, update).has_value());
    prefixes += update.nlri.size() + (update.mp_reach ? update.mp_reach->nlri.size() : 0);
  }
  size_t count = allocs.count();
  CHECK(prefixes == 40000);
  INFO(count << " allocations for " << messages.size() << " messages");
  CHECK(count <= messages.size() * 4);  // AS_PATH and its segment, communities: per message
}

TEST_CASE("pack: 1M IPv4 and 1M IPv6 prefixes, timed", "[.][bench][wire]") {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  for (int family : {4, 6}) {
    const std::vector<net::Prefix> prefixes = Prefixes(family, 1'000'000);
    const NextHop next_hop{family == 4 ? Ip("192.0.2.1") : Ip("2001:db8::1"), std::nullopt};
    std::vector<uint8_t> stream;
    size_t encode_allocs = 0;
    auto t0 = Clock::now();
    {
      ScopedAllocCount allocs;
      REQUIRE(EncodeAnnouncements(CommonAttrs(), next_hop, prefixes, kNew, stream).ok());
      encode_allocs = allocs.count();
    }
    auto t1 = Clock::now();
    Update update;
    size_t decoded = 0, messages = 0, decode_allocs = 0;
    {
      ScopedAllocCount allocs;
      Framer framer;
      framer.Feed(stream);
      while (true) {
        Framer::Frame frame = framer.Next();
        if (frame.kind != Framer::Frame::Kind::kMessage) break;
        REQUIRE_FALSE(DecodeUpdate(frame.message, kNew, update).has_value());
        decoded += family == 4 ? update.nlri.size() : update.mp_reach->nlri.size();
        ++messages;
      }
      decode_allocs = allocs.count();
    }
    auto t2 = Clock::now();
    REQUIRE(decoded == prefixes.size());
    std::printf(
        "IPv%d: 1M prefixes in %zu UPDATEs (%zu octets): encode %.1f ms (%zu allocations), "
        "frame+decode %.1f ms (%zu allocations)\n",
        family, messages, stream.size(), ms(t1 - t0), encode_allocs, ms(t2 - t1), decode_allocs);
  }
}

}  // namespace
}  // namespace calico::birdd::wire
