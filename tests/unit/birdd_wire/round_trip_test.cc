// Round trips (encode → decode → equal) for every message and attribute, on 2-octet and 4-octet
// AS sessions, and the RFC 6793 §4.2.3 rules a NEW speaker applies to an OLD one's UPDATEs.

#include "birdd/wire/as_path.h"
#include "birdd/wire/decode.h"
#include "birdd/wire/encode.h"
#include "common/base/status_macros.h"
#include "wire_test_util.h"

namespace calico::birdd::wire {
namespace {

using namespace testing;

template <typename T>
T RoundTrip(const T& message, const SessionContext& session) {
  std::vector<uint8_t> bytes = EncodeOk(message, session);
  return DecodeAs<T>(bytes, session);
}

Open FullOpen() {
  Open open;
  open.my_as = 64512;
  open.hold_time = 240;
  open.bgp_id = Id("192.0.2.7");
  open.capabilities.multiprotocol = {kIpv4Unicast, kIpv6Unicast};
  open.capabilities.route_refresh = true;
  open.capabilities.graceful_restart = GracefulRestart{
      GracefulRestart::kRestartState | GracefulRestart::kNotification,
      4095,
      {{kIpv4Unicast, GracefulRestart::kForwardingState}, {kIpv6Unicast, 0}}};
  open.capabilities.four_octet_as = 64512;
  open.capabilities.unknown = {{73, {3, 'n', 'o', 'd', 0}}, {70, {}}};
  return open;
}

// Every attribute this codec knows, plus an unknown optional transitive one; the ASNs fit
// two octets, so both session kinds carry them without AS4_*.
Update FullUpdate() {
  Update u;
  u.withdrawn = {P("10.1.0.0/16"), P("0.0.0.0/0"), P("10.2.3.4/32")};
  u.attrs.origin = Origin::kIncomplete;
  u.attrs.as_path = AsPath{{AsSegmentType::kAsConfedSequence, {65100, 65101}},
                           {AsSegmentType::kAsSequence, {65001, 65002}},
                           {AsSegmentType::kAsSet, {65003, 65004}}};
  u.attrs.next_hop = Ip("192.0.2.1");
  u.attrs.med = 0xfffffffe;
  u.attrs.local_pref = 100;
  u.attrs.atomic_aggregate = true;
  u.attrs.aggregator = Aggregator{65001, Id("10.0.0.1")};
  u.attrs.communities = {0xffff0001, 65001u << 16 | 7};
  u.attrs.originator_id = Id("10.0.0.2");
  u.attrs.cluster_list = {Id("10.0.0.3"), Id("10.0.0.4")};
  u.attrs.large_communities = {{64512, 1, 2}, {64512, 3, 4}};
  u.attrs.unknown = {{kAttrOptional | kAttrTransitive | kAttrPartial, 16,
                      {0, 2, 0xfd, 0xe9, 0, 0, 0, 1}}};  // an extended community, kept raw
  u.nlri = {P("10.65.0.0/26"), P("192.168.0.0/24")};
  u.mp_reach = MpReach{kIpv6Unicast, NextHop{Ip("2001:db8::1"), Ip("fe80::1")},
                       {P("2001:db8::/32"), P("::/0"), P("2001:db8:1:2:3:4:5:6/128")}};
  u.mp_unreach = MpUnreach{kIpv4Unicast, {P("172.16.0.0/12")}};
  return u;
}

TEST_CASE("OPEN round-trips with every capability", "[unit][wire][roundtrip]") {
  Open open = FullOpen();
  CHECK(RoundTrip(open, kOld) == open);
  CHECK(RoundTrip(open, kNew) == open);
  Open bare;
  bare.my_as = 1;
  bare.bgp_id = 1;
  CHECK(RoundTrip(bare, kNew) == bare);
}

TEST_CASE("OPEN from a 4-octet AS writes AS_TRANS in My AS", "[unit][wire][roundtrip]") {
  Open open = FullOpen();
  open.my_as = 4200000000u;
  open.capabilities.four_octet_as = 4200000000u;
  Open decoded = RoundTrip(open, kNew);
  CHECK(decoded.my_as == kAsTrans);
  CHECK(decoded.PeerAs() == 4200000000u);
}

TEST_CASE("OPEN capabilities beyond one optional parameter are refused", "[unit][wire][roundtrip]") {
  Open open = FullOpen();
  open.capabilities.unknown.push_back({200, std::vector<uint8_t>(220, 1)});
  std::vector<uint8_t> out = {7};
  absl::Status s = Encode(open, out);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(out == std::vector<uint8_t>{7});
  open.capabilities.unknown.back().value.resize(253 - 41 - 2);  // exactly full
  CHECK(RoundTrip(open, kNew) == open);
}

TEST_CASE("UPDATE round-trips with every attribute on both session kinds", "[unit][wire][roundtrip]") {
  Update update = FullUpdate();
  CHECK(RoundTrip(update, kNew) == update);
  CHECK(RoundTrip(update, kOld) == update);
}

TEST_CASE("UPDATE with 4-octet ASes round-trips through a 2-octet session", "[unit][wire][roundtrip][as4]") {
  Update update = FullUpdate();
  update.attrs.as_path = AsPath{{AsSegmentType::kAsConfedSequence, {65100}},
                                {AsSegmentType::kAsSequence, {4200000001u, 65002, 4200000002u}},
                                {AsSegmentType::kAsSet, {65003, 4200000003u}}};
  update.attrs.aggregator = Aggregator{4200000001u, Id("10.0.0.1")};
  std::vector<uint8_t> bytes = EncodeOk(update, kOld);
  // The wire holds AS_TRANS (5ba0) in AS_PATH and AGGREGATOR, AS4_PATH (c0 11) and
  // AS4_AGGREGATOR (c0 12 08).
  std::string hex = ToHex(bytes);
  CHECK(hex.find("02035ba0fdea5ba0") != std::string::npos);  // AS_SEQUENCE AS_TRANS 65002 AS_TRANS
  CHECK(hex.find("c01208fa56ea01") != std::string::npos);
  CHECK(hex.find("c011") != std::string::npos);
  Update decoded = DecodeAs<Update>(bytes, kOld);
  CHECK(decoded == update);
  CHECK(RoundTrip(update, kNew) == update);
}

TEST_CASE("UPDATE round-trips an empty AS_PATH and minimal messages", "[unit][wire][roundtrip]") {
  Update ibgp;
  ibgp.attrs.origin = Origin::kIgp;
  ibgp.attrs.as_path = AsPath{};  // locally originated, iBGP
  ibgp.attrs.next_hop = Ip("10.0.0.1");
  ibgp.attrs.local_pref = 100;
  ibgp.nlri = {P("10.65.0.0/26")};
  CHECK(RoundTrip(ibgp, kOld) == ibgp);
  Update empty;
  CHECK(RoundTrip(empty, kNew) == empty);
  CHECK(EndOfRib(empty) == kIpv4Unicast);
  Update v4_mp;
  v4_mp.attrs.origin = Origin::kEgp;
  v4_mp.attrs.as_path = AsPath{{AsSegmentType::kAsSequence, {1}}};
  v4_mp.mp_reach = MpReach{kIpv4Unicast, NextHop{Ip("10.0.0.1"), std::nullopt}, {P("10.9.0.0/16")}};
  CHECK(RoundTrip(v4_mp, kNew) == v4_mp);
}

TEST_CASE("attributes longer than 255 octets use the Extended Length flag", "[unit][wire][roundtrip]") {
  Update update;
  update.attrs.origin = Origin::kIgp;
  update.attrs.as_path = AsPath{{AsSegmentType::kAsSequence, std::vector<uint32_t>(300, 65001)}};
  update.attrs.next_hop = Ip("10.0.0.1");
  for (uint32_t i = 0; i < 70; ++i) update.attrs.communities.push_back(65001u << 16 | i);
  update.nlri = {P("10.0.0.0/8")};
  std::vector<uint8_t> bytes = EncodeOk(update, kNew);
  // ORIGIN (4 octets) then AS_PATH: extended, 300 ASes in two segments (255 + 45).
  const size_t as_path_at = 19 + 2 + 2 + 4;
  CHECK(bytes[as_path_at] == (kAttrTransitive | kAttrExtendedLength));
  CHECK(bytes[as_path_at + 2] * 256 + bytes[as_path_at + 3] == 2 + 255 * 4 + 2 + 45 * 4);
  Update decoded = DecodeAs<Update>(bytes, kNew);
  CHECK(decoded.attrs.communities == update.attrs.communities);
  CHECK(AsPathLength(*decoded.attrs.as_path) == 300);
  CHECK(decoded.attrs.as_path->size() == 2);
  // A short attribute keeps the one-octet length.
  CHECK(bytes[19 + 2 + 2] == kAttrTransitive);
}

TEST_CASE("unknown optional transitive attributes pass on with the Partial bit", "[unit][wire][roundtrip]") {
  Update update;
  update.attrs.unknown = {{kAttrOptional | kAttrTransitive, 200, {1, 2, 3}},
                          {kAttrOptional | kAttrTransitive, 40, {}}};
  Update decoded = RoundTrip(update, kNew);
  REQUIRE(decoded.attrs.unknown.size() == 2);
  // Encoded by type code: 40 before 200.
  CHECK(decoded.attrs.unknown[0] == RawAttribute{0xe0, 40, {}});
  CHECK(decoded.attrs.unknown[1] == RawAttribute{0xe0, 200, {1, 2, 3}});
}

TEST_CASE("unknown optional non-transitive attributes are dropped on decode", "[unit][wire][roundtrip]") {
  Update update = DecodeAs<Update>(UpdateMsg("80 c8 02 0102   c0 c9 01 07"), kNew);
  CHECK(update.attrs.unknown == std::vector<RawAttribute>{{0xc0, 0xc9, {7}}});
  CHECK(update.action() == ErrorAction::kNone);
}

TEST_CASE("NOTIFICATION, KEEPALIVE and ROUTE-REFRESH round-trip", "[unit][wire][roundtrip]") {
  Notification n(UpdateSubcode::kMalformedAsPath);
  CHECK(RoundTrip(n, kNew) == n);
  Notification with_data(NotificationCode::kCease, 200, std::vector<uint8_t>(4075, 7));
  CHECK(RoundTrip(with_data, kOld) == with_data);
  CHECK(RoundTrip(Keepalive{}, kNew) == Keepalive{});
  RouteRefresh rr{kIpv4Unicast, 0};
  CHECK(RoundTrip(rr, kOld) == rr);
  RouteRefresh unusual{AfiSafi{static_cast<Afi>(25), static_cast<Safi>(70)}, 1};
  CHECK(RoundTrip(unusual, kOld) == unusual);
  wire::Message m = n;
  CHECK(TypeOf(m) == MessageType::kNotification);
}

TEST_CASE("the Message variant encodes like the typed overloads", "[unit][wire][roundtrip]") {
  wire::Message m = FullUpdate();
  auto bytes = Encode(m, kOld);
  REQUIRE(bytes.ok());
  CHECK(*bytes == EncodeOk(FullUpdate(), kOld));
}

TEST_CASE("DecodeUpdate reuses an Update without leaking the previous message", "[unit][wire][roundtrip]") {
  Update full = FullUpdate();
  Update small;
  small.mp_unreach = MpUnreach{kIpv6Unicast, {P("2001:db8::/48")}};
  std::vector<uint8_t> a = EncodeOk(full, kNew), b = EncodeOk(small, kNew);
  Update out;
  for (int i = 0; i < 3; ++i) {
    REQUIRE_FALSE(DecodeUpdate(a, kNew, out).has_value());
    CHECK(out == full);
    REQUIRE_FALSE(DecodeUpdate(b, kNew, out).has_value());
    CHECK(out == small);
  }
}

// ---- RFC 6793 §4.2.3: a NEW speaker receiving from an OLD one ----------------------------------

constexpr std::string_view kOrigin = "40 01 01 00 ";
constexpr std::string_view kNextHop = "40 03 04 c0000201 ";

TEST_CASE("AS4_PATH: leading ASes an OLD speaker prepended are kept", "[unit][wire][as4]") {
  // AS_PATH 65010 65001 23456 65002; AS4_PATH 65001 4200000001 65002.
  Update u = DecodeAs<Update>(
      UpdateMsg(std::string(kOrigin) + "40 02 0a 02 04 fdf2 fde9 5ba0 fdea" + std::string(kNextHop) +
                    "c0 11 0e 02 03 0000fde9 fa56ea01 0000fdea",
                "08 0a"),
      kOld);
  CHECK(u.attrs.as_path ==
        AsPath{{AsSegmentType::kAsSequence, {65010, 65001, 4200000001u, 65002}}});
  CHECK(u.action() == ErrorAction::kNone);
}

TEST_CASE("AS4_PATH longer than AS_PATH is ignored", "[unit][wire][as4]") {
  Update u = DecodeAs<Update>(
      UpdateMsg(std::string(kOrigin) + "40 02 04 02 01 5ba0" + std::string(kNextHop) +
                    "c0 11 0a 02 02 fa56ea01 0000fdea",
                "08 0a"),
      kOld);
  CHECK(u.attrs.as_path == AsPath{{AsSegmentType::kAsSequence, {kAsTrans}}});
}

TEST_CASE("AS4_* are ignored when AGGREGATOR names a real 2-octet AS", "[unit][wire][as4]") {
  Update u = DecodeAs<Update>(
      UpdateMsg(std::string(kOrigin) + "40 02 04 02 01 5ba0" + std::string(kNextHop) +
                    "c0 07 06 fde9 0a000009  c0 11 06 02 01 fa56ea01  c0 12 08 fa56ea01 0a000009",
                "08 0a"),
      kOld);
  CHECK(u.attrs.as_path == AsPath{{AsSegmentType::kAsSequence, {kAsTrans}}});
  CHECK(u.attrs.aggregator == Aggregator{65001, Id("10.0.0.9")});
}

TEST_CASE("AS4_PATH merge counts an AS_SET as one AS", "[unit][wire][as4]") {
  AsPath as_path{{AsSegmentType::kAsSequence, {65010, kAsTrans}},
                 {AsSegmentType::kAsSet, {65020, 65021}}};
  AsPath as4_path{{AsSegmentType::kAsSequence, {4200000001u}},
                  {AsSegmentType::kAsSet, {65020, 65021}}};
  CHECK(AsPathLength(as_path) == 3);
  CHECK(MergeAs4Path(as_path, as4_path) ==
        AsPath{{AsSegmentType::kAsSequence, {65010, 4200000001u}},
               {AsSegmentType::kAsSet, {65020, 65021}}});
  // A whole leading set is taken when one AS is missing.
  AsPath set_first{{AsSegmentType::kAsSet, {1, 2}}, {AsSegmentType::kAsSequence, {kAsTrans}}};
  CHECK(MergeAs4Path(set_first, {{AsSegmentType::kAsSequence, {4200000001u}}}) ==
        AsPath{{AsSegmentType::kAsSet, {1, 2}}, {AsSegmentType::kAsSequence, {4200000001u}}});
}

TEST_CASE("AS4_PATH merge keeps leading confederation segments", "[unit][wire][as4]") {
  AsPath as_path{{AsSegmentType::kAsConfedSequence, {65100}},
                 {AsSegmentType::kAsSequence, {65010, kAsTrans}}};
  AsPath as4_path{{AsSegmentType::kAsSequence, {65010, 4200000001u}}};
  CHECK(MergeAs4Path(as_path, as4_path) ==
        AsPath{{AsSegmentType::kAsConfedSequence, {65100}},
               {AsSegmentType::kAsSequence, {65010, 4200000001u}}});
}

TEST_CASE("AS4_PATH confederation segments are dropped with a note", "[unit][wire][as4]") {
  // AS4_PATH: AS_CONFED_SEQUENCE 65100, AS_SEQUENCE 4200000001.
  Update u = DecodeAs<Update>(
      UpdateMsg(std::string(kOrigin) + "40 02 06 02 02 fdf2 5ba0" + std::string(kNextHop) +
                    "c0 11 0c 03 01 0000fe4c 02 01 fa56ea01",
                "08 0a"),
      kOld);
  CHECK(u.attrs.as_path == AsPath{{AsSegmentType::kAsSequence, {65010, 4200000001u}}});
  REQUIRE(u.errors.size() == 1);
  CHECK(u.errors[0].action == ErrorAction::kAttributeDiscard);
}

TEST_CASE("AS4_PATH and AS4_AGGREGATOR from a 4-octet speaker are discarded", "[unit][wire][as4]") {
  Update u = DecodeAs<Update>(
      UpdateMsg(std::string(kOrigin) + "40 02 06 02 01 fa56ea01" + std::string(kNextHop) +
                    "c0 11 06 02 01 0000fde9  c0 12 08 0000fde9 0a000009",
                "08 0a"),
      kNew);
  CHECK(u.attrs.as_path == AsPath{{AsSegmentType::kAsSequence, {4200000001u}}});
  CHECK_FALSE(u.attrs.aggregator.has_value());
  CHECK(u.errors.size() == 2);
  CHECK(u.action() == ErrorAction::kAttributeDiscard);
  CHECK(u.nlri == std::vector<net::Prefix>{P("10.0.0.0/8")});
}

}  // namespace
}  // namespace calico::birdd::wire

namespace calico::birdd::wire {
namespace {

using namespace testing;

// Encode failures name the field and leave the output untouched.
template <typename T>
void RefusedToEncode(const T& message, std::string_view mentions) {
  std::vector<uint8_t> out = {42};
  absl::Status s;
  if constexpr (std::is_same_v<T, Update>) {
    s = Encode(message, kOld, out);
  } else {
    s = Encode(message, out);
  }
  INFO(s.ToString());
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(ToStd(s.message()).find(mentions) != std::string::npos);
  CHECK(out == std::vector<uint8_t>{42});
}

TEST_CASE("encode refuses what cannot go on the wire", "[unit][wire][roundtrip]") {
  Open open = FullOpen();
  open.capabilities.graceful_restart->restart_time = 4096;
  RefusedToEncode(open, "restart time 4096");
  open = FullOpen();
  open.capabilities.unknown.push_back({65, {0, 0, 0, 1}});
  RefusedToEncode(open, "capability 65");

  Update u = FullUpdate();
  u.attrs.next_hop = Ip("2001:db8::1");
  RefusedToEncode(u, "NEXT_HOP 2001:db8::1");
  u = FullUpdate();
  u.nlri.push_back(P("2001:db8::/32"));
  RefusedToEncode(u, "NLRI 2001:db8::/32");
  u = FullUpdate();
  u.withdrawn.push_back(P("2001:db8::/32"));
  RefusedToEncode(u, "withdrawn route 2001:db8::/32");
  u = FullUpdate();
  u.mp_reach->nlri.push_back(P("10.0.0.0/8"));
  RefusedToEncode(u, "MP_REACH_NLRI: prefix 10.0.0.0/8");
  u = FullUpdate();
  u.mp_reach->next_hop.address = Ip("10.0.0.1");
  RefusedToEncode(u, "next hop 10.0.0.1");
  u = FullUpdate();
  u.attrs.unknown.push_back({0xc0, 8, {0, 0, 0, 1}});
  RefusedToEncode(u, "type 8 (COMMUNITIES)");
  u = FullUpdate();
  u.attrs.as_path->push_back({AsSegmentType::kAsSet, std::vector<uint32_t>(256, 1)});
  RefusedToEncode(u, "a set of 256 ASes");
  u = FullUpdate();
  u.attrs.as_path->push_back({AsSegmentType::kAsSequence, {}});
  RefusedToEncode(u, "empty segment");
  u = FullUpdate();
  u.attrs.communities.assign(1100, 1);
  RefusedToEncode(u, "exceed the 4096-octet maximum");
  RefusedToEncode(Notification(NotificationCode::kCease, 0, std::vector<uint8_t>(4078, 0)),
                  "NOTIFICATION: 4099 octets");
}

}  // namespace
}  // namespace calico::birdd::wire
