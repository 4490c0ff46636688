// Golden vectors (tests/data/bgp/*.hex): each decodes to the expected struct and re-encodes to
// the same bytes.

#include "birdd/wire/decode.h"
#include "birdd/wire/encode.h"
#include "birdd/wire/pack.h"
#include "wire_test_util.h"

namespace calico::birdd::wire {
namespace {

using namespace testing;

template <typename T>
void RequireReencodes(const T& message, const std::vector<uint8_t>& golden,
                      const SessionContext& session) {
  std::vector<uint8_t> again = EncodeOk(message, session);
  CHECK(ToHex(again) == ToHex(golden));
}

TEST_CASE("golden KEEPALIVE", "[unit][wire][golden]") {
  std::vector<uint8_t> bytes = HexFile("keepalive.hex");
  DecodeAs<Keepalive>(bytes, kNew);
  RequireReencodes(Keepalive{}, bytes, kNew);
}

TEST_CASE("golden OPEN with MP, route refresh, graceful restart and 4-octet AS", "[unit][wire][golden]") {
  std::vector<uint8_t> bytes = HexFile("open_capabilities.hex");
  Open open = DecodeAs<Open>(bytes, kOld);  // OPEN does not depend on the session
  Open want;
  want.my_as = kAsTrans;
  want.hold_time = 90;
  want.bgp_id = Id("10.0.0.1");
  want.capabilities.multiprotocol = {kIpv4Unicast, kIpv6Unicast};
  want.capabilities.route_refresh = true;
  want.capabilities.graceful_restart =
      GracefulRestart{GracefulRestart::kRestartState,
                      120,
                      {{kIpv4Unicast, GracefulRestart::kForwardingState}, {kIpv6Unicast, 0}}};
  want.capabilities.four_octet_as = 4200000000u;
  CHECK(open == want);
  CHECK(open.PeerAs() == 4200000000u);
  CHECK(open.capabilities.graceful_restart->restarting());
  RequireReencodes(open, bytes, kOld);

  // The encoder writes AS_TRANS itself for a 4-octet My AS.
  Open mine = want;
  mine.my_as = 4200000000u;
  RequireReencodes(mine, bytes, kOld);
}

TEST_CASE("golden UPDATE with IPv4 NLRI and every common attribute", "[unit][wire][golden]") {
  std::vector<uint8_t> bytes = HexFile("update_ipv4.hex");
  Update update = DecodeAs<Update>(bytes, kNew);
  Update want;
  want.attrs.origin = Origin::kIgp;
  want.attrs.as_path = AsPath{{AsSegmentType::kAsSequence, {65001, 4200000001u}}};
  want.attrs.next_hop = Ip("192.0.2.1");
  want.attrs.med = 100;
  want.attrs.local_pref = 200;
  want.attrs.communities = {65001u << 16 | 100};
  want.attrs.large_communities = {{4200000001u, 1, 2}};
  want.attrs.unknown = {{0xe0, 99, {0xaa, 0xbb, 0xcc}}};
  want.nlri = {P("10.65.0.0/26"), P("10.65.1.0/24"), P("192.168.0.0/16")};
  CHECK(update == want);
  CHECK(update.action() == ErrorAction::kNone);
  RequireReencodes(update, bytes, kNew);
}

TEST_CASE("golden UPDATE with IPv6 in MP_REACH_NLRI and a link-local next hop", "[unit][wire][golden]") {
  std::vector<uint8_t> bytes = HexFile("update_mp_reach_ipv6.hex");
  Update update = DecodeAs<Update>(bytes, kNew);
  Update want;
  want.attrs.origin = Origin::kIgp;
  want.attrs.as_path = AsPath{{AsSegmentType::kAsSequence, {64512}}};
  want.mp_reach = MpReach{kIpv6Unicast,
                          NextHop{Ip("2001:db8::1"), Ip("fe80::1")},
                          {P("2001:db8:1::/48"), P("2001:db8:2:3::/64")}};
  CHECK(update == want);
  RequireReencodes(update, bytes, kNew);
}

TEST_CASE("golden UPDATE from a 2-octet speaker carries AS4_PATH and AS4_AGGREGATOR", "[unit][wire][golden]") {
  std::vector<uint8_t> bytes = HexFile("update_as4_old_speaker.hex");
  Update update = DecodeAs<Update>(bytes, kOld);
  Update want;
  want.attrs.origin = Origin::kIgp;
  want.attrs.as_path = AsPath{{AsSegmentType::kAsSequence, {65010, 4200000001u, 65002}}};
  want.attrs.next_hop = Ip("192.0.2.1");
  want.attrs.aggregator = Aggregator{4200000001u, Id("10.0.0.9")};
  want.nlri = {P("10.0.0.0/8")};
  CHECK(update == want);  // merged (RFC 6793 §4.2.3): no AS_TRANS left, no AS4_* exposed
  RequireReencodes(update, bytes, kOld);
}

TEST_CASE("golden UPDATE withdrawing IPv4 and IPv6 prefixes", "[unit][wire][golden]") {
  std::vector<uint8_t> bytes = HexFile("update_withdraw.hex");
  Update update = DecodeAs<Update>(bytes, kNew);
  Update want;
  want.withdrawn = {P("10.65.1.0/24")};
  want.mp_unreach = MpUnreach{kIpv6Unicast, {P("2001:db8:1::/48")}};
  CHECK(update == want);
  CHECK_FALSE(EndOfRib(update).has_value());
  RequireReencodes(update, bytes, kNew);
}

TEST_CASE("golden End-of-RIB for IPv6 unicast", "[unit][wire][golden]") {
  std::vector<uint8_t> bytes = HexFile("end_of_rib_ipv6.hex");
  Update update = DecodeAs<Update>(bytes, kNew);
  REQUIRE(EndOfRib(update) == kIpv6Unicast);
  std::vector<uint8_t> out;
  REQUIRE(EncodeEndOfRib(kIpv6Unicast, out).ok());
  CHECK(ToHex(out) == ToHex(bytes));
}

TEST_CASE("golden NOTIFICATION Cease with a shutdown communication", "[unit][wire][golden]") {
  std::vector<uint8_t> bytes = HexFile("notification_cease.hex");
  Notification n = DecodeAs<Notification>(bytes, kNew);
  CHECK(n.Is(CeaseSubcode::kAdministrativeShutdown));
  REQUIRE(n.data.size() == 12);
  CHECK(n.data[0] == 11);  // RFC 8203: length, then UTF-8
  CHECK(std::string(n.data.begin() + 1, n.data.end()) == "maintenance");
  CHECK(n.ToString().starts_with("Cease / Administrative Shutdown (6/2), data 0b 6d"));
  RequireReencodes(n, bytes, kNew);
}

TEST_CASE("golden ROUTE-REFRESH", "[unit][wire][golden]") {
  std::vector<uint8_t> bytes = HexFile("route_refresh.hex");
  RouteRefresh rr = DecodeAs<RouteRefresh>(bytes, kNew);
  CHECK(rr == RouteRefresh{kIpv6Unicast, 0});
  RequireReencodes(rr, bytes, kNew);
}

}  // namespace
}  // namespace calico::birdd::wire
