#include "birdd/wire/decode.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "birdd/wire/attributes.h"
#include "birdd/wire/buffer.h"
#include "birdd/wire/nlri.h"

namespace calico::birdd::wire {
namespace {

using internal::Reader;

constexpr size_t kMinOpen = 29;          // RFC 4271 §4.2
constexpr size_t kMinUpdate = 23;        // RFC 4271 §4.3
constexpr size_t kMinNotification = 21;  // RFC 4271 §4.5
constexpr size_t kRouteRefreshSize = 23; // RFC 2918 §3

DecodeError Reset(Notification notification, std::string detail) {
  return DecodeError{std::move(notification), ErrorAction::kSessionReset, std::move(detail)};
}

DecodeError BadLength(uint16_t length, std::string detail) {
  // RFC 4271 §6.1: the data is the erroneous Length field.
  return Reset(Notification(HeaderSubcode::kBadMessageLength,
                            {static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length)}),
               std::move(detail));
}

// Marker, length field against the bytes given and the 19..4096 range, then the type's own
// length rule (RFC 4271 §6.1). Returns the body on success.
std::variant<std::span<const uint8_t>, DecodeError> CheckHeader(std::span<const uint8_t> message,
                                                                MessageType& type) {
  if (message.size() < kHeaderSize) {
    return Reset(Notification(HeaderSubcode::kBadMessageLength),
                 absl::StrCat("message of ", message.size(), " octets is shorter than a header"));
  }
  if (!std::all_of(message.begin(), message.begin() + kMarkerSize,
                   [](uint8_t b) { return b == 0xff; })) {
    return Reset(Notification(HeaderSubcode::kConnectionNotSynchronized),
                 "marker is not all ones");
  }
  const uint16_t length = Reader::Load16(&message[16]);
  if (length < kHeaderSize || length > kMaxMessageSize || length != message.size()) {
    return BadLength(length, absl::StrCat("length field ", length, " (message of ",
                                          message.size(), " octets; valid 19..4096)"));
  }
  type = static_cast<MessageType>(message[18]);
  bool length_ok = true;
  switch (type) {
    case MessageType::kOpen:
      length_ok = length >= kMinOpen;
      break;
    case MessageType::kUpdate:
      length_ok = length >= kMinUpdate;
      break;
    case MessageType::kNotification:
      length_ok = length >= kMinNotification;
      break;
    case MessageType::kKeepalive:
      length_ok = length == kHeaderSize;
      break;
    case MessageType::kRouteRefresh:
      length_ok = length == kRouteRefreshSize;
      break;
    default:
      return Reset(Notification(HeaderSubcode::kBadMessageType, {message[18]}),
                   absl::StrCat("message type ", message[18]));
  }
  if (!length_ok) {
    return BadLength(length, absl::StrCat(std::string(ToString(type)), " of length ", length));
  }
  return message.subspan(kHeaderSize);
}

// ---- OPEN ------------------------------------------------------------------------------------

DecodeError OpenError(OpenSubcode subcode, std::string detail, std::vector<uint8_t> data = {}) {
  return Reset(Notification(subcode, std::move(data)), absl::StrCat("OPEN: ", detail));
}

std::optional<DecodeError> DecodeCapability(uint8_t code, std::span<const uint8_t> value,
                                            Capabilities& caps) {
  auto bad = [&](std::string_view want) {
    // RFC 5492 defines no subcode for a malformed capability; RFC 4271 §6.2 says Unspecific.
    return OpenError(OpenSubcode::kUnspecific,
                     absl::StrCat("capability ", code, " of length ", value.size(), ", want ",
                                  std::string(want)));
  };
  switch (static_cast<CapabilityCode>(code)) {
    case CapabilityCode::kMultiprotocol:  // RFC 4760 §8: AFI, reserved, SAFI
      if (value.size() != 4) return bad("4");
      caps.multiprotocol.push_back(
          AfiSafi{static_cast<Afi>(Reader::Load16(value.data())), static_cast<Safi>(value[3])});
      return std::nullopt;
    case CapabilityCode::kRouteRefresh:  // RFC 2918 §2
      if (!value.empty()) return bad("0");
      caps.route_refresh = true;
      return std::nullopt;
    case CapabilityCode::kGracefulRestart: {  // RFC 4724 §3
      if (value.size() < 2 || (value.size() - 2) % 4 != 0) return bad("2 + 4n");
      if (caps.graceful_restart) return std::nullopt;  // the first one counts
      GracefulRestart& gr = caps.graceful_restart.emplace();
      gr.flags = value[0] >> 4;
      gr.restart_time = static_cast<uint16_t>((value[0] & 0x0f) << 8 | value[1]);
      for (size_t at = 2; at < value.size(); at += 4) {
        gr.families.push_back(GracefulRestart::Family{
            AfiSafi{static_cast<Afi>(Reader::Load16(&value[at])), static_cast<Safi>(value[at + 2])},
            value[at + 3]});
      }
      return std::nullopt;
    }
    case CapabilityCode::kFourOctetAs:  // RFC 6793 §3
      if (value.size() != 4) return bad("4");
      if (!caps.four_octet_as) caps.four_octet_as = Reader::Load32(value.data());
      return std::nullopt;
    default:
      caps.unknown.push_back(RawCapability{code, std::vector<uint8_t>(value.begin(), value.end())});
      return std::nullopt;
  }
}

Decoded DecodeOpen(std::span<const uint8_t> body) {
  Reader r(body);
  Open open;
  uint8_t version = 0, opt_len = 0;
  uint16_t my_as = 0;
  r.U8(version);  // body length ≥ 10 was checked with the header
  r.U16(my_as);
  r.U16(open.hold_time);
  r.U32(open.bgp_id);
  r.U8(opt_len);
  open.version = version;
  open.my_as = my_as;
  if (version != kBgpVersion) {
    // RFC 4271 §6.2: the data is the largest version we support.
    return OpenError(OpenSubcode::kUnsupportedVersionNumber, absl::StrCat("version ", version),
                     {0, kBgpVersion});
  }
  if (open.hold_time == 1 || open.hold_time == 2) {
    return OpenError(OpenSubcode::kUnacceptableHoldTime,
                     absl::StrCat("hold time ", open.hold_time, " (0 or at least 3)"));
  }
  if (open.bgp_id == 0) {  // RFC 6286 §2.2: a non-zero 32-bit value
    return OpenError(OpenSubcode::kBadBgpIdentifier, "BGP Identifier 0");
  }
  if (opt_len == 255 && !r.empty() && r.rest()[0] == 255) {
    return OpenError(OpenSubcode::kUnsupportedOptionalParameter,
                     "RFC 9072 extended optional parameters are not supported");
  }
  if (r.remaining() != opt_len) {
    return OpenError(OpenSubcode::kUnspecific,
                     absl::StrCat("optional parameters length ", opt_len, " but ", r.remaining(),
                                  " octets follow"));
  }
  while (!r.empty()) {
    uint8_t type = 0, len = 0;
    std::span<const uint8_t> value;
    if (!r.U8(type) || !r.U8(len) || !r.Bytes(len, value)) {
      return OpenError(OpenSubcode::kUnspecific, "optional parameter overruns its field");
    }
    if (type != static_cast<uint8_t>(OptParamType::kCapabilities)) {
      return OpenError(OpenSubcode::kUnsupportedOptionalParameter,
                       absl::StrCat("optional parameter type ", type));
    }
    Reader caps(value);
    while (!caps.empty()) {
      uint8_t code = 0, cap_len = 0;
      std::span<const uint8_t> cap_value;
      if (!caps.U8(code) || !caps.U8(cap_len) || !caps.Bytes(cap_len, cap_value)) {
        return OpenError(OpenSubcode::kUnspecific, "capability overruns its parameter");
      }
      if (auto error = DecodeCapability(code, cap_value, open.capabilities)) return *error;
    }
  }
  return Message(std::move(open));
}

// ---- UPDATE ----------------------------------------------------------------------------------

void ClearKeepingCapacity(PathAttributes& attrs) {
  attrs.origin.reset();
  attrs.as_path.reset();
  attrs.next_hop.reset();
  attrs.med.reset();
  attrs.local_pref.reset();
  attrs.atomic_aggregate = false;
  attrs.aggregator.reset();
  attrs.communities.clear();
  attrs.originator_id.reset();
  attrs.cluster_list.clear();
  attrs.large_communities.clear();
  attrs.unknown.clear();
}

// RFC 7606 §2: every route of the UPDATE is handled as withdrawn. With IPv4 and IPv6 unicast
// the only families carried, the result always fits the withdrawn field plus one MP_UNREACH.
void ConvertToWithdraw(Update& update) {
  update.withdrawn.insert(update.withdrawn.end(), update.nlri.begin(), update.nlri.end());
  update.nlri.clear();
  if (update.mp_reach) {
    MpReach& reach = *update.mp_reach;
    if (reach.afi_safi == kIpv4Unicast) {
      update.withdrawn.insert(update.withdrawn.end(), reach.nlri.begin(), reach.nlri.end());
    } else if (!update.mp_unreach) {
      update.mp_unreach.emplace();
      update.mp_unreach->afi_safi = reach.afi_safi;
      update.mp_unreach->withdrawn = std::move(reach.nlri);
    } else {
      MpUnreach& unreach = *update.mp_unreach;
      if (unreach.afi_safi != reach.afi_safi) {  // an IPv4 MP_UNREACH beside an IPv6 MP_REACH
        update.withdrawn.insert(update.withdrawn.end(), unreach.withdrawn.begin(),
                                unreach.withdrawn.end());
        unreach.withdrawn.clear();
        unreach.afi_safi = reach.afi_safi;
      }
      unreach.withdrawn.insert(unreach.withdrawn.end(), reach.nlri.begin(), reach.nlri.end());
    }
    update.mp_reach.reset();
  }
  ClearKeepingCapacity(update.attrs);
}

void MissingAttribute(Update& update, AttrType type) {
  // RFC 7606 §3: treat-as-withdraw; RFC 4271 §6.3: the data is the missing type code.
  update.errors.push_back(DecodeError{
      Notification(UpdateSubcode::kMissingWellKnownAttribute, {static_cast<uint8_t>(type)}),
      ErrorAction::kTreatAsWithdraw,
      absl::StrCat("missing well-known attribute ", std::string(AttrName(static_cast<uint8_t>(type))))});
}

std::optional<DecodeError> DecodeUpdateBody(std::span<const uint8_t> body,
                                            const SessionContext& session, Update& out) {
  std::vector<net::Prefix> spare_reach, spare_unreach;
  if (out.mp_reach) spare_reach = std::move(out.mp_reach->nlri);
  if (out.mp_unreach) spare_unreach = std::move(out.mp_unreach->withdrawn);
  out.withdrawn.clear();
  out.nlri.clear();
  out.mp_reach.reset();
  out.mp_unreach.reset();
  out.errors.clear();
  ClearKeepingCapacity(out.attrs);

  Reader r(body);
  uint16_t withdrawn_len = 0, attrs_len = 0;
  std::span<const uint8_t> withdrawn, attrs;
  if (!r.U16(withdrawn_len) || !r.Bytes(withdrawn_len, withdrawn) || !r.U16(attrs_len) ||
      !r.Bytes(attrs_len, attrs)) {
    // RFC 4271 §6.3: the NLRI cannot be located, so the session resets.
    return Reset(Notification(UpdateSubcode::kMalformedAttributeList),
                 absl::StrCat("UPDATE: withdrawn routes length ", withdrawn_len,
                              " and path attributes length ", attrs_len, " exceed the message"));
  }
  if (!internal::DecodePrefixes(withdrawn, 4, out.withdrawn)) {
    return Reset(Notification(UpdateSubcode::kInvalidNetworkField),
                 "UPDATE: malformed Withdrawn Routes (RFC 7606 §5.3)");
  }
  if (!internal::DecodePrefixes(r.rest(), 4, out.nlri)) {
    return Reset(Notification(UpdateSubcode::kInvalidNetworkField),
                 "UPDATE: malformed NLRI (RFC 7606 §5.3)");
  }
  if (auto error = internal::DecodeAttributes(attrs, session, out, spare_reach, spare_unreach)) {
    return error;
  }
  const bool announces = !out.nlri.empty() || (out.mp_reach && !out.mp_reach->nlri.empty());
  if (announces && out.action() < ErrorAction::kTreatAsWithdraw) {
    if (!out.attrs.origin) MissingAttribute(out, AttrType::kOrigin);
    if (!out.attrs.as_path) MissingAttribute(out, AttrType::kAsPath);
    // RFC 4760 §3: NEXT_HOP only goes with routes in the NLRI field.
    if (!out.attrs.next_hop && !out.nlri.empty()) MissingAttribute(out, AttrType::kNextHop);
  }
  if (out.action() == ErrorAction::kTreatAsWithdraw) ConvertToWithdraw(out);
  return std::nullopt;
}

Decoded DecodeNotification(std::span<const uint8_t> body) {
  Notification n(static_cast<NotificationCode>(body[0]), body[1],
                 std::vector<uint8_t>(body.begin() + 2, body.end()));
  return Message(std::move(n));
}

Decoded DecodeRouteRefresh(std::span<const uint8_t> body) {
  RouteRefresh rr;
  rr.afi_safi = AfiSafi{static_cast<Afi>(Reader::Load16(body.data())), static_cast<Safi>(body[3])};
  rr.reserved = body[2];
  return Message(rr);
}

}  // namespace

Decoded Decode(std::span<const uint8_t> message, const SessionContext& session) {
  MessageType type{};
  auto checked = CheckHeader(message, type);
  if (auto* error = std::get_if<DecodeError>(&checked)) return std::move(*error);
  std::span<const uint8_t> body = std::get<std::span<const uint8_t>>(checked);
  switch (type) {
    case MessageType::kOpen:
      return DecodeOpen(body);
    case MessageType::kUpdate: {
      Update update;
      if (auto error = DecodeUpdateBody(body, session, update)) return std::move(*error);
      return Message(std::move(update));
    }
    case MessageType::kNotification:
      return DecodeNotification(body);
    case MessageType::kKeepalive:
      return Message(Keepalive{});
    case MessageType::kRouteRefresh:
      return DecodeRouteRefresh(body);
  }
  return Reset(Notification(HeaderSubcode::kBadMessageType), "unreachable");
}

std::optional<DecodeError> DecodeUpdate(std::span<const uint8_t> message,
                                        const SessionContext& session, Update& out) {
  MessageType type{};
  auto checked = CheckHeader(message, type);
  if (auto* error = std::get_if<DecodeError>(&checked)) return std::move(*error);
  if (type != MessageType::kUpdate) {
    return Reset(Notification(HeaderSubcode::kBadMessageType, {static_cast<uint8_t>(type)}),
                 absl::StrCat("DecodeUpdate given a ", std::string(ToString(type))));
  }
  return DecodeUpdateBody(std::get<std::span<const uint8_t>>(checked), session, out);
}

}  // namespace calico::birdd::wire
