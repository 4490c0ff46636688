// birdd/wire: names for logs and test messages, and small queries on messages.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "birdd/wire/constants.h"
#include "birdd/wire/message.h"

namespace calico::birdd::wire {

std::string_view ToString(MessageType type) {
  switch (type) {
    case MessageType::kOpen: return "OPEN";
    case MessageType::kUpdate: return "UPDATE";
    case MessageType::kNotification: return "NOTIFICATION";
    case MessageType::kKeepalive: return "KEEPALIVE";
    case MessageType::kRouteRefresh: return "ROUTE-REFRESH";
  }
  return "unknown message type";
}

std::string_view ToString(ErrorAction action) {
  switch (action) {
    case ErrorAction::kNone: return "none";
    case ErrorAction::kAttributeDiscard: return "attribute-discard";
    case ErrorAction::kTreatAsWithdraw: return "treat-as-withdraw";
    case ErrorAction::kAfiSafiDisable: return "afi-safi-disable";
    case ErrorAction::kSessionReset: return "session-reset";
  }
  return "unknown action";
}

std::string_view AttrName(uint8_t type) {
  switch (static_cast<AttrType>(type)) {
    case AttrType::kOrigin: return "ORIGIN";
    case AttrType::kAsPath: return "AS_PATH";
    case AttrType::kNextHop: return "NEXT_HOP";
    case AttrType::kMultiExitDisc: return "MULTI_EXIT_DISC";
    case AttrType::kLocalPref: return "LOCAL_PREF";
    case AttrType::kAtomicAggregate: return "ATOMIC_AGGREGATE";
    case AttrType::kAggregator: return "AGGREGATOR";
    case AttrType::kCommunities: return "COMMUNITIES";
    case AttrType::kOriginatorId: return "ORIGINATOR_ID";
    case AttrType::kClusterList: return "CLUSTER_LIST";
    case AttrType::kMpReachNlri: return "MP_REACH_NLRI";
    case AttrType::kMpUnreachNlri: return "MP_UNREACH_NLRI";
    case AttrType::kExtendedCommunities: return "EXTENDED_COMMUNITIES";
    case AttrType::kAs4Path: return "AS4_PATH";
    case AttrType::kAs4Aggregator: return "AS4_AGGREGATOR";
    case AttrType::kLargeCommunities: return "LARGE_COMMUNITIES";
  }
  return "attribute";
}

namespace {

std::string_view CodeName(NotificationCode code) {
  switch (code) {
    case NotificationCode::kMessageHeaderError: return "Message Header Error";
    case NotificationCode::kOpenMessageError: return "OPEN Message Error";
    case NotificationCode::kUpdateMessageError: return "UPDATE Message Error";
    case NotificationCode::kHoldTimerExpired: return "Hold Timer Expired";
    case NotificationCode::kFsmError: return "Finite State Machine Error";
    case NotificationCode::kCease: return "Cease";
    case NotificationCode::kRouteRefreshMessageError: return "ROUTE-REFRESH Message Error";
  }
  return "";
}

std::string_view SubcodeName(NotificationCode code, uint8_t subcode) {
  switch (code) {
    case NotificationCode::kMessageHeaderError:
      switch (static_cast<HeaderSubcode>(subcode)) {
        case HeaderSubcode::kConnectionNotSynchronized: return "Connection Not Synchronized";
        case HeaderSubcode::kBadMessageLength: return "Bad Message Length";
        case HeaderSubcode::kBadMessageType: return "Bad Message Type";
      }
      break;
    case NotificationCode::kOpenMessageError:
      switch (static_cast<OpenSubcode>(subcode)) {
        case OpenSubcode::kUnspecific: return "Unspecific";
        case OpenSubcode::kUnsupportedVersionNumber: return "Unsupported Version Number";
        case OpenSubcode::kBadPeerAs: return "Bad Peer AS";
        case OpenSubcode::kBadBgpIdentifier: return "Bad BGP Identifier";
        case OpenSubcode::kUnsupportedOptionalParameter: return "Unsupported Optional Parameter";
        case OpenSubcode::kUnacceptableHoldTime: return "Unacceptable Hold Time";
        case OpenSubcode::kUnsupportedCapability: return "Unsupported Capability";
      }
      break;
    case NotificationCode::kUpdateMessageError:
      switch (static_cast<UpdateSubcode>(subcode)) {
        case UpdateSubcode::kMalformedAttributeList: return "Malformed Attribute List";
        case UpdateSubcode::kUnrecognizedWellKnownAttribute:
          return "Unrecognized Well-known Attribute";
        case UpdateSubcode::kMissingWellKnownAttribute: return "Missing Well-known Attribute";
        case UpdateSubcode::kAttributeFlagsError: return "Attribute Flags Error";
        case UpdateSubcode::kAttributeLengthError: return "Attribute Length Error";
        case UpdateSubcode::kInvalidOrigin: return "Invalid ORIGIN Attribute";
        case UpdateSubcode::kInvalidNextHop: return "Invalid NEXT_HOP Attribute";
        case UpdateSubcode::kOptionalAttributeError: return "Optional Attribute Error";
        case UpdateSubcode::kInvalidNetworkField: return "Invalid Network Field";
        case UpdateSubcode::kMalformedAsPath: return "Malformed AS_PATH";
      }
      break;
    case NotificationCode::kCease:
      switch (static_cast<CeaseSubcode>(subcode)) {
        case CeaseSubcode::kMaximumPrefixesReached: return "Maximum Number of Prefixes Reached";
        case CeaseSubcode::kAdministrativeShutdown: return "Administrative Shutdown";
        case CeaseSubcode::kPeerDeconfigured: return "Peer De-configured";
        case CeaseSubcode::kAdministrativeReset: return "Administrative Reset";
        case CeaseSubcode::kConnectionRejected: return "Connection Rejected";
        case CeaseSubcode::kOtherConfigurationChange: return "Other Configuration Change";
        case CeaseSubcode::kConnectionCollisionResolution:
          return "Connection Collision Resolution";
        case CeaseSubcode::kOutOfResources: return "Out of Resources";
        case CeaseSubcode::kHardReset: return "Hard Reset";
      }
      break;
    default:
      break;
  }
  return "";
}

}  // namespace

std::string DescribeNotification(NotificationCode code, uint8_t subcode) {
  std::string_view code_name = CodeName(code);
  std::string_view sub_name = SubcodeName(code, subcode);
  std::string out = code_name.empty() ? absl::StrCat("code ", static_cast<int>(code))
                                      : std::string(code_name);
  if (!sub_name.empty()) absl::StrAppend(&out, " / ", std::string(sub_name));
  absl::StrAppend(&out, " (", static_cast<int>(code), "/", static_cast<int>(subcode), ")");
  return out;
}

std::string Notification::ToString() const {
  std::string out = DescribeNotification(code, subcode);
  if (!data.empty()) {
    absl::StrAppend(&out, ", data");
    for (size_t i = 0; i < std::min<size_t>(data.size(), 32); ++i) {
      absl::StrAppend(&out, absl::StrFormat(" %02x", data[i]));
    }
    if (data.size() > 32) absl::StrAppend(&out, " ...");
  }
  return out;
}

std::string DecodeError::ToString() const {
  return absl::StrCat(std::string(wire::ToString(action)), ": ", notification.ToString(), ": ",
                      detail);
}

ErrorAction Update::action() const {
  ErrorAction worst = ErrorAction::kNone;
  for (const DecodeError& error : errors) worst = std::max(worst, error.action);
  return worst;
}

MessageType TypeOf(const Message& message) {
  return static_cast<MessageType>(message.index() + 1);  // variant order follows type codes
}

std::optional<AfiSafi> EndOfRib(const Update& update) {
  const PathAttributes empty;
  if (!update.withdrawn.empty() || !update.nlri.empty() || update.mp_reach ||
      !update.errors.empty() || !(update.attrs == empty)) {
    return std::nullopt;
  }
  if (!update.mp_unreach) return kIpv4Unicast;
  if (update.mp_unreach->withdrawn.empty()) return update.mp_unreach->afi_safi;
  return std::nullopt;
}

}  // namespace calico::birdd::wire
