// One malformed input per error rule: RFC 4271 §6.1-6.3 for headers and OPEN, RFC 7606 (and
// RFC 6793 §6, RFC 8092 §5) for UPDATEs. Each asserts the action and the NOTIFICATION.

#include "birdd/wire/decode.h"
#include "wire_test_util.h"

namespace calico::birdd::wire {
namespace {

using namespace testing;

// Well-formed pieces to build UPDATEs around the attribute under test.
const std::string kOrigin = "40 01 01 00 ";
const std::string kAsPath2 = "40 02 04 02 01 fde9 ";      // 2-octet: AS_SEQUENCE 65001
const std::string kAsPath4 = "40 02 06 02 01 0000fde9 ";  // 4-octet
const std::string kNextHop = "40 03 04 c0000201 ";
const std::string kNlri = "08 0a  10 c0a8";  // 10.0.0.0/8, 192.168.0.0/16
const std::string kMandatory4 = kOrigin + kAsPath4 + kNextHop;
const std::string kMandatory2 = kOrigin + kAsPath2 + kNextHop;

// Decodes an UPDATE that must survive with exactly one error of this action and subcode.
Update OneError(const std::vector<uint8_t>& bytes, const SessionContext& session,
                ErrorAction action, UpdateSubcode subcode) {
  Update u = DecodeAs<Update>(bytes, session);
  REQUIRE(u.errors.size() == 1);
  INFO(u.errors[0].ToString());
  CHECK(u.errors[0].action == action);
  CHECK(u.errors[0].notification.Is(subcode));
  CHECK(u.action() == action);
  return u;
}

// Treat-as-withdraw: every announced route now sits with the withdrawals, attributes are gone.
void RequireWithdrawn(const Update& u, std::vector<net::Prefix> want) {
  CHECK(u.nlri.empty());
  CHECK_FALSE(u.mp_reach.has_value());
  CHECK(u.withdrawn == want);
  CHECK(u.attrs == PathAttributes{});
}

Update TreatAsWithdraw(const std::string& attrs, const SessionContext& session,
                       UpdateSubcode subcode) {
  Update u = OneError(UpdateMsg(attrs, kNlri), session, ErrorAction::kTreatAsWithdraw, subcode);
  RequireWithdrawn(u, {P("10.0.0.0/8"), P("192.168.0.0/16")});
  return u;
}

Update AttributeDiscard(const std::string& attrs, const SessionContext& session,
                        UpdateSubcode subcode) {
  Update u = OneError(UpdateMsg(attrs, kNlri), session, ErrorAction::kAttributeDiscard, subcode);
  CHECK(u.nlri == std::vector<net::Prefix>{P("10.0.0.0/8"), P("192.168.0.0/16")});
  CHECK(u.attrs.origin == Origin::kIgp);
  return u;
}

DecodeError SessionReset(const std::vector<uint8_t>& bytes, const SessionContext& session,
                         UpdateSubcode subcode) {
  DecodeError e = DecodeFails(bytes, session);
  INFO(e.ToString());
  CHECK(e.notification.Is(subcode));
  return e;
}

// ---- Message header (RFC 4271 §6.1) -----------------------------------------------------------

TEST_CASE("header: a marker that is not all ones", "[unit][wire][malformed]") {
  std::vector<uint8_t> bytes = HexFile("keepalive.hex");
  bytes[3] = 0xfe;
  CHECK(DecodeFails(bytes, kNew).notification.Is(HeaderSubcode::kConnectionNotSynchronized));
}

TEST_CASE("header: length outside 19..4096 or not the bytes given", "[unit][wire][malformed]") {
  std::vector<uint8_t> bytes = HexFile("keepalive.hex");
  bytes[17] = 18;
  DecodeError e = DecodeFails(bytes, kNew);
  CHECK(e.notification == Notification(HeaderSubcode::kBadMessageLength, {0x00, 0x12}));
  std::vector<uint8_t> big = MessageBytes(MessageType::kNotification, std::vector<uint8_t>(4078, 0));
  CHECK(DecodeFails(big, kNew).notification ==
        Notification(HeaderSubcode::kBadMessageLength, {0x10, 0x01}));
  std::vector<uint8_t> longer = HexFile("keepalive.hex");
  longer.push_back(0);
  CHECK(DecodeFails(longer, kNew).notification.Is(HeaderSubcode::kBadMessageLength));
  CHECK(DecodeFails(Hex("ffff"), kNew).notification.Is(HeaderSubcode::kBadMessageLength));
}

TEST_CASE("header: per-type minimum and exact lengths", "[unit][wire][malformed]") {
  struct Case {
    MessageType type;
    size_t body;
  };
  for (Case c : {Case{MessageType::kKeepalive, 1}, Case{MessageType::kOpen, 9},
                 Case{MessageType::kUpdate, 3}, Case{MessageType::kNotification, 1},
                 Case{MessageType::kRouteRefresh, 3}, Case{MessageType::kRouteRefresh, 5}}) {
    INFO(ToString(c.type) << " body " << c.body);
    std::vector<uint8_t> bytes = MessageBytes(c.type, std::vector<uint8_t>(c.body, 0));
    DecodeError e = DecodeFails(bytes, kNew);
    CHECK(e.notification ==
          Notification(HeaderSubcode::kBadMessageLength, {0, static_cast<uint8_t>(19 + c.body)}));
  }
}

TEST_CASE("header: an unknown message type", "[unit][wire][malformed]") {
  DecodeError e = DecodeFails(MessageBytes(static_cast<MessageType>(9), {}), kNew);
  CHECK(e.notification == Notification(HeaderSubcode::kBadMessageType, {9}));
}

// ---- OPEN (RFC 4271 §6.2) ----------------------------------------------------------------------

std::vector<uint8_t> OpenMsg(std::string_view fields, std::string_view params = "") {
  std::vector<uint8_t> p = Hex(params);
  std::vector<uint8_t> body = Hex(fields);
  body.push_back(static_cast<uint8_t>(p.size()));
  body.insert(body.end(), p.begin(), p.end());
  return MessageBytes(MessageType::kOpen, body);
}

TEST_CASE("OPEN: unsupported version", "[unit][wire][malformed]") {
  DecodeError e = DecodeFails(OpenMsg("03 fde9 005a 0a000001"), kNew);
  CHECK(e.notification == Notification(OpenSubcode::kUnsupportedVersionNumber, {0, 4}));
}

TEST_CASE("OPEN: hold time 1 or 2 is unacceptable, 0 and 3 are fine", "[unit][wire][malformed]") {
  CHECK(DecodeFails(OpenMsg("04 fde9 0001 0a000001"), kNew)
            .notification.Is(OpenSubcode::kUnacceptableHoldTime));
  CHECK(DecodeFails(OpenMsg("04 fde9 0002 0a000001"), kNew)
            .notification.Is(OpenSubcode::kUnacceptableHoldTime));
  CHECK(DecodeAs<Open>(OpenMsg("04 fde9 0000 0a000001"), kNew).hold_time == 0);
  CHECK(DecodeAs<Open>(OpenMsg("04 fde9 0003 0a000001"), kNew).hold_time == 3);
}

TEST_CASE("OPEN: BGP Identifier 0", "[unit][wire][malformed]") {
  CHECK(DecodeFails(OpenMsg("04 fde9 005a 00000000"), kNew)
            .notification.Is(OpenSubcode::kBadBgpIdentifier));
}

TEST_CASE("OPEN: an optional parameter other than Capabilities", "[unit][wire][malformed]") {
  CHECK(DecodeFails(OpenMsg("04 fde9 005a 0a000001", "01 02 0000"), kNew)
            .notification.Is(OpenSubcode::kUnsupportedOptionalParameter));
  // RFC 9072's extended form starts with type 255: not spoken, refused the same way.
  std::vector<uint8_t> extended =
      MessageBytes(MessageType::kOpen, Hex("04 fde9 005a 0a000001 ff ff 0008 02 0006 41 04 0000fde9"));
  CHECK(DecodeFails(extended, kNew).notification.Is(OpenSubcode::kUnsupportedOptionalParameter));
}

TEST_CASE("OPEN: inconsistent parameter and capability lengths", "[unit][wire][malformed]") {
  // Parameters length says 4, 5 octets follow.
  std::vector<uint8_t> bytes = OpenMsg("04 fde9 005a 0a000001", "02 03 02 00 00");
  bytes[28] = 4;
  CHECK(DecodeFails(bytes, kNew).notification.Is(OpenSubcode::kUnspecific));
  CHECK(DecodeFails(OpenMsg("04 fde9 005a 0a000001", "02 05 02 00"), kNew)
            .notification.Is(OpenSubcode::kUnspecific));
  CHECK(DecodeFails(OpenMsg("04 fde9 005a 0a000001", "02 04 41 04 0000"), kNew)
            .notification.Is(OpenSubcode::kUnspecific));
}

TEST_CASE("OPEN: malformed known capabilities", "[unit][wire][malformed]") {
  for (std::string_view cap : {"01 03 000101", "02 01 00", "40 03 000000", "40 05 0078000101",
                               "41 02 fde9"}) {
    INFO(cap);
    std::vector<uint8_t> value = Hex(cap);
    std::string param = "02 " + ToHex({static_cast<uint8_t>(value.size())}) + std::string(cap);
    CHECK(DecodeFails(OpenMsg("04 fde9 005a 0a000001", param), kNew)
              .notification.Is(OpenSubcode::kUnspecific));
  }
}

TEST_CASE("OPEN: unknown capabilities are kept raw", "[unit][wire][malformed]") {
  Open open = DecodeAs<Open>(OpenMsg("04 fde9 005a 0a000001", "02 06 45 04 00010103  02 02 80 00"),
                             kNew);
  CHECK(open.capabilities.unknown == std::vector<RawCapability>{{69, {0, 1, 1, 3}}, {128, {}}});
}

// ---- UPDATE framing (RFC 4271 §6.3, RFC 7606 §4, §5.3) -----------------------------------------

TEST_CASE("UPDATE: withdrawn or attribute lengths overrunning the message reset", "[unit][wire][malformed]") {
  std::vector<uint8_t> bytes = UpdateMsg(kMandatory4, kNlri);
  std::vector<uint8_t> w = bytes;
  w[19] = 0x10;  // withdrawn routes length 4096
  SessionReset(w, kNew, UpdateSubcode::kMalformedAttributeList);
  std::vector<uint8_t> a = bytes;
  a[22] = static_cast<uint8_t>(a[22] + 10);  // total attribute length past the end
  SessionReset(a, kNew, UpdateSubcode::kMalformedAttributeList);
}

TEST_CASE("UPDATE: malformed NLRI or withdrawn routes reset the session", "[unit][wire][malformed]") {
  SessionReset(UpdateMsg(kMandatory4, "21 0a000000 00"), kNew, UpdateSubcode::kInvalidNetworkField);
  SessionReset(UpdateMsg(kMandatory4, "18 0a00"), kNew, UpdateSubcode::kInvalidNetworkField);
  SessionReset(UpdateMsg("", "", "20 0a00"), kNew, UpdateSubcode::kInvalidNetworkField);
}

TEST_CASE("UPDATE: an attribute overrunning the attributes field is treat-as-withdraw", "[unit][wire][malformed]") {
  // RFC 7606 §4: the Total Attribute Length still locates the NLRI.
  TreatAsWithdraw(kMandatory4 + "c0 08 08 fde90064", kNew, UpdateSubcode::kMalformedAttributeList);
  // Fewer octets than an attribute header remain.
  TreatAsWithdraw(kMandatory4 + "c0 08", kNew, UpdateSubcode::kMalformedAttributeList);
  TreatAsWithdraw(kMandatory4 + "d0 08 00", kNew, UpdateSubcode::kMalformedAttributeList);
}

// ---- Path attributes (RFC 7606 §7) --------------------------------------------------------------

TEST_CASE("ORIGIN: bad length or undefined value is treat-as-withdraw (RFC 7606 §7.1)", "[unit][wire][malformed]") {
  Update u = TreatAsWithdraw("40 01 02 0000 " + kAsPath4 + kNextHop, kNew,
                             UpdateSubcode::kAttributeLengthError);
  CHECK(u.errors[0].notification.data == Hex("40 01 02 0000"));  // the erroneous attribute
  TreatAsWithdraw("40 01 01 03 " + kAsPath4 + kNextHop, kNew, UpdateSubcode::kInvalidOrigin);
}

TEST_CASE("AS_PATH: malformed segments are treat-as-withdraw (RFC 7606 §7.2)", "[unit][wire][malformed]") {
  for (std::string_view as_path : {"40 02 06 05 01 0000fde9",     // undefined segment type
                                   "40 02 02 02 00",              // empty segment
                                   "40 02 06 02 02 0000fde9",     // segment overruns
                                   "40 02 07 02 01 0000fde9 02",  // a lone trailing octet
                                   "40 02 05 02 01 0000fd"}) {    // truncated AS
    INFO(as_path);
    TreatAsWithdraw(kOrigin + std::string(as_path) + " " + kNextHop, kNew,
                    UpdateSubcode::kMalformedAsPath);
  }
  // A 2-octet path read on a 4-octet session does not fit.
  TreatAsWithdraw(kOrigin + "40 02 06 02 02 fde9 fdea " + kNextHop, kNew,
                  UpdateSubcode::kMalformedAsPath);
}

TEST_CASE("NEXT_HOP, MED, LOCAL_PREF, ORIGINATOR_ID of the wrong length are treat-as-withdraw", "[unit][wire][malformed]") {
  TreatAsWithdraw(kOrigin + kAsPath4 + "40 03 05 c000020100", kNew,
                  UpdateSubcode::kAttributeLengthError);                               // §7.3
  TreatAsWithdraw(kMandatory4 + "80 04 03 000064", kNew, UpdateSubcode::kAttributeLengthError);  // §7.4
  TreatAsWithdraw(kMandatory4 + "40 05 02 0064", kNew, UpdateSubcode::kAttributeLengthError);    // §7.5
  TreatAsWithdraw(kMandatory4 + "80 09 05 0a00000100", kNew,
                  UpdateSubcode::kAttributeLengthError);                               // §7.9
}

TEST_CASE("COMMUNITIES, CLUSTER_LIST, LARGE_COMMUNITIES not a non-zero multiple are treat-as-withdraw", "[unit][wire][malformed]") {
  TreatAsWithdraw(kMandatory4 + "c0 08 05 fde9006400", kNew, UpdateSubcode::kAttributeLengthError);
  TreatAsWithdraw(kMandatory4 + "c0 08 00", kNew, UpdateSubcode::kAttributeLengthError);   // §7.8
  TreatAsWithdraw(kMandatory4 + "80 0a 06 0a0000010a00", kNew,
                  UpdateSubcode::kAttributeLengthError);                                   // §7.10
  TreatAsWithdraw(kMandatory4 + "c0 20 0d 00000001 00000002 00000003 04", kNew,
                  UpdateSubcode::kAttributeLengthError);                                   // RFC 8092
}

TEST_CASE("ATOMIC_AGGREGATE and AGGREGATOR of the wrong length are discarded", "[unit][wire][malformed]") {
  Update u = AttributeDiscard(kMandatory4 + "40 06 01 00", kNew,
                              UpdateSubcode::kAttributeLengthError);  // §7.6
  CHECK_FALSE(u.attrs.atomic_aggregate);
  // §7.7: 6 octets on a 2-octet session, 8 on a 4-octet one.
  u = AttributeDiscard(kMandatory4 + "c0 07 06 fde9 0a000001", kNew,
                       UpdateSubcode::kAttributeLengthError);
  CHECK_FALSE(u.attrs.aggregator.has_value());
  AttributeDiscard(kMandatory2 + "c0 07 08 0000fde9 0a000001", kOld,
                   UpdateSubcode::kAttributeLengthError);
}

TEST_CASE("AS4_PATH and AS4_AGGREGATOR malformed are discarded (RFC 6793 §6)", "[unit][wire][malformed]") {
  Update u = AttributeDiscard(kMandatory2 + "c0 11 05 02 01 fa56ea", kOld,
                              UpdateSubcode::kAttributeLengthError);
  CHECK(u.attrs.as_path == AsPath{{AsSegmentType::kAsSequence, {65001}}});
  AttributeDiscard(kMandatory2 + "c0 11 08 02 02 fa56ea01 0000", kOld,
                   UpdateSubcode::kMalformedAsPath);
  AttributeDiscard(kMandatory2 + "c0 12 06 fa56 0a000001", kOld,
                   UpdateSubcode::kAttributeLengthError);
}

TEST_CASE("MP_REACH_NLRI / MP_UNREACH_NLRI malformed reset the session (RFC 7606 §7.11)", "[unit][wire][malformed]") {
  // IPv6 next hop of 5 octets: the NLRI cannot be located.
  DecodeError e = SessionReset(UpdateMsg("80 0e 11 0002 01 05 2001db8000 00 30 20010db80001 " +
                                         kOrigin + kAsPath4),
                               kNew, UpdateSubcode::kOptionalAttributeError);
  CHECK(e.notification.data.size() == 20);  // the attribute itself
  // IPv4 unicast with a 16-octet next hop (RFC 8950 is not negotiated).
  SessionReset(UpdateMsg("80 0e 17 0001 01 10 20010db8000000000000000000000001 00 08 0a " +
                         kOrigin + kAsPath4),
               kNew, UpdateSubcode::kOptionalAttributeError);
  // NLRI overruns; prefix length beyond 128.
  SessionReset(UpdateMsg("80 0e 18 0002 01 10 20010db8000000000000000000000001 00 30 2001 " +
                         kOrigin + kAsPath4),
               kNew, UpdateSubcode::kOptionalAttributeError);
  SessionReset(UpdateMsg("80 0f 05 0002 01 81 00"), kNew, UpdateSubcode::kOptionalAttributeError);
  SessionReset(UpdateMsg("80 0f 02 0002"), kNew, UpdateSubcode::kOptionalAttributeError);
  SessionReset(UpdateMsg("80 0e 04 0002 01 10"), kNew, UpdateSubcode::kOptionalAttributeError);
}

TEST_CASE("MP attributes of other AFI/SAFIs are skipped", "[unit][wire][malformed]") {
  // IPv4 multicast (SAFI 2): never advertised by us, so never parsed.
  Update u = DecodeAs<Update>(UpdateMsg("80 0e 0b 0001 02 04 0a000001 00 08 0a " + kOrigin +
                                        kAsPath4),
                              kNew);
  CHECK_FALSE(u.mp_reach.has_value());
  CHECK(u.errors.empty());
}

TEST_CASE("repeated attributes: all but the first discarded, MP repeats reset", "[unit][wire][malformed]") {
  Update u = OneError(UpdateMsg(kMandatory4 + "40 01 01 02", kNlri), kNew,
                      ErrorAction::kAttributeDiscard, UpdateSubcode::kMalformedAttributeList);
  CHECK(u.attrs.origin == Origin::kIgp);
  CHECK(u.nlri.size() == 2);
  SessionReset(UpdateMsg("80 0f 03 000201  80 0f 03 000201"), kNew,
               UpdateSubcode::kMalformedAttributeList);
}

TEST_CASE("missing well-known attributes with NLRI are treat-as-withdraw", "[unit][wire][malformed]") {
  Update u = TreatAsWithdraw(kAsPath4 + kNextHop, kNew, UpdateSubcode::kMissingWellKnownAttribute);
  CHECK(u.errors[0].notification.data == std::vector<uint8_t>{1});  // ORIGIN's type code
  u = TreatAsWithdraw(kOrigin + kNextHop, kNew, UpdateSubcode::kMissingWellKnownAttribute);
  CHECK(u.errors[0].notification.data == std::vector<uint8_t>{2});
  u = TreatAsWithdraw(kOrigin + kAsPath4, kNew, UpdateSubcode::kMissingWellKnownAttribute);
  CHECK(u.errors[0].notification.data == std::vector<uint8_t>{3});
}

TEST_CASE("missing attributes with only MP_REACH withdraw its routes", "[unit][wire][malformed]") {
  // No AS_PATH; NEXT_HOP is not needed with MP_REACH_NLRI alone (RFC 4760 §3).
  Update u = OneError(UpdateMsg("80 0e 1c 0002 01 10 20010db8000000000000000000000001 00 "
                                "30 20010db80001 " + kOrigin),
                      kNew, ErrorAction::kTreatAsWithdraw,
                      UpdateSubcode::kMissingWellKnownAttribute);
  CHECK_FALSE(u.mp_reach.has_value());
  REQUIRE(u.mp_unreach.has_value());
  CHECK(u.mp_unreach->afi_safi == kIpv6Unicast);
  CHECK(u.mp_unreach->withdrawn == std::vector<net::Prefix>{P("2001:db8:1::/48")});
  // With ORIGIN and AS_PATH it is fine.
  Update ok = DecodeAs<Update>(UpdateMsg("80 0e 1c 0002 01 10 20010db8000000000000000000000001 00 "
                                         "30 20010db80001 " + kOrigin + kAsPath4),
                               kNew);
  CHECK(ok.errors.empty());
}

TEST_CASE("treat-as-withdraw folds IPv6 MP_REACH and IPv4 MP_UNREACH into withdrawals", "[unit][wire][malformed]") {
  Update u = DecodeAs<Update>(
      UpdateMsg("80 0e 1c 0002 01 10 20010db8000000000000000000000001 00 30 20010db80001 "
                "80 0f 05 0001 01 08 0b " + kOrigin + "40 02 02 02 00 " + kNextHop,
                "08 0a", "10 ac10"),
      kNew);
  CHECK(u.action() == ErrorAction::kTreatAsWithdraw);
  CHECK(u.withdrawn == std::vector<net::Prefix>{P("172.16.0.0/16"), P("10.0.0.0/8"),
                                                P("11.0.0.0/8")});
  REQUIRE(u.mp_unreach.has_value());
  CHECK(u.mp_unreach->afi_safi == kIpv6Unicast);
  CHECK(u.mp_unreach->withdrawn == std::vector<net::Prefix>{P("2001:db8:1::/48")});
}

TEST_CASE("no NLRI: missing attributes are no error", "[unit][wire][malformed]") {
  Update u = DecodeAs<Update>(UpdateMsg(kNextHop, "", "08 0a"), kNew);
  CHECK(u.errors.empty());
  CHECK(u.withdrawn == std::vector<net::Prefix>{P("10.0.0.0/8")});
}

TEST_CASE("attribute flags in conflict follow each attribute's rule", "[unit][wire][malformed]") {
  // RFC 7606 §3: ORIGIN marked optional → treat-as-withdraw.
  Update u = TreatAsWithdraw("c0 01 01 00 " + kAsPath4 + kNextHop, kNew,
                             UpdateSubcode::kAttributeFlagsError);
  CHECK(u.errors[0].notification.data == Hex("c0 01 01 00"));
  // AGGREGATOR not transitive → attribute discard, as for its malformed case.
  AttributeDiscard(kMandatory4 + "80 07 08 0000fde9 0a000001", kNew,
                   UpdateSubcode::kAttributeFlagsError);
  // MP_REACH_NLRI marked transitive → session reset.
  SessionReset(UpdateMsg("c0 0e 1c 0002 01 10 20010db8000000000000000000000001 00 30 20010db80001 " +
                         kOrigin + kAsPath4),
               kNew, UpdateSubcode::kAttributeFlagsError);
  // The Partial bit and the unused low bits do not matter.
  Update fine = DecodeAs<Update>(UpdateMsg("6f 01 01 00 " + kAsPath4 + kNextHop, kNlri), kNew);
  CHECK(fine.errors.empty());
}

TEST_CASE("an unrecognized well-known attribute resets the session", "[unit][wire][malformed]") {
  DecodeError e = SessionReset(UpdateMsg(kMandatory4 + "40 63 01 00", kNlri), kNew,
                               UpdateSubcode::kUnrecognizedWellKnownAttribute);
  CHECK(e.notification.data == Hex("40 63 01 00"));
}

TEST_CASE("the strongest action wins when errors pile up", "[unit][wire][malformed]") {
  Update u = DecodeAs<Update>(
      UpdateMsg(kMandatory4 + "40 06 01 00  40 05 02 0064", kNlri), kNew);
  REQUIRE(u.errors.size() == 2);
  CHECK(u.errors[0].action == ErrorAction::kAttributeDiscard);
  CHECK(u.errors[1].action == ErrorAction::kTreatAsWithdraw);
  CHECK(u.action() == ErrorAction::kTreatAsWithdraw);
  RequireWithdrawn(u, {P("10.0.0.0/8"), P("192.168.0.0/16")});
}

TEST_CASE("DecodeUpdate refuses other message types", "[unit][wire][malformed]") {
  Update out;
  auto error = DecodeUpdate(HexFile("keepalive.hex"), kNew, out);
  REQUIRE(error.has_value());
  CHECK(error->notification.Is(HeaderSubcode::kBadMessageType));
}

}  // namespace
}  // namespace calico::birdd::wire
