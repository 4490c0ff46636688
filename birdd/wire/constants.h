#pragma once
// birdd/wire: BGP-4 protocol numbers as named enums (IANA registries; RFC sections cited).
// Enums have fixed underlying types, so an unknown value read off the wire is still representable.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace calico::birdd::wire {

inline constexpr size_t kMarkerSize = 16;
inline constexpr size_t kHeaderSize = 19;        // RFC 4271 §4.1: marker, length, type
inline constexpr size_t kMaxMessageSize = 4096;  // RFC 4271 §4.1 (RFC 8654 extended: unsupported)
inline constexpr uint8_t kBgpVersion = 4;
inline constexpr uint16_t kAsTrans = 23456;  // RFC 6793 §9

// RFC 4271 §4.1, RFC 2918 §3.
enum class MessageType : uint8_t {
  kOpen = 1,
  kUpdate = 2,
  kNotification = 3,
  kKeepalive = 4,
  kRouteRefresh = 5,
};

// Path attribute type codes (RFC 4271 §5, 1997, 4456, 4760, 6793, 8092).
enum class AttrType : uint8_t {
  kOrigin = 1,
  kAsPath = 2,
  kNextHop = 3,
  kMultiExitDisc = 4,
  kLocalPref = 5,
  kAtomicAggregate = 6,
  kAggregator = 7,
  kCommunities = 8,
  kOriginatorId = 9,
  kClusterList = 10,
  kMpReachNlri = 14,
  kMpUnreachNlri = 15,
  kExtendedCommunities = 16,  // not decoded: kept raw like any unknown optional transitive
  kAs4Path = 17,
  kAs4Aggregator = 18,
  kLargeCommunities = 32,
};

// Attribute Flags octet, RFC 4271 §4.3. The low four bits are unused (sent 0, ignored).
inline constexpr uint8_t kAttrOptional = 0x80;
inline constexpr uint8_t kAttrTransitive = 0x40;
inline constexpr uint8_t kAttrPartial = 0x20;
inline constexpr uint8_t kAttrExtendedLength = 0x10;

enum class Origin : uint8_t { kIgp = 0, kEgp = 1, kIncomplete = 2 };  // RFC 4271 §5.1.1

// RFC 4271 §4.3 (sets, sequences), RFC 5065 §3 (confederation segments).
enum class AsSegmentType : uint8_t {
  kAsSet = 1,
  kAsSequence = 2,
  kAsConfedSequence = 3,
  kAsConfedSet = 4,
};

// RFC 4271 §4.5; 7 from RFC 7313.
enum class NotificationCode : uint8_t {
  kMessageHeaderError = 1,
  kOpenMessageError = 2,
  kUpdateMessageError = 3,
  kHoldTimerExpired = 4,
  kFsmError = 5,
  kCease = 6,
  kRouteRefreshMessageError = 7,
};
enum class HeaderSubcode : uint8_t {  // RFC 4271 §6.1
  kConnectionNotSynchronized = 1,
  kBadMessageLength = 2,
  kBadMessageType = 3,
};
enum class OpenSubcode : uint8_t {  // RFC 4271 §6.2; 7 from RFC 5492
  kUnspecific = 0,
  kUnsupportedVersionNumber = 1,
  kBadPeerAs = 2,
  kBadBgpIdentifier = 3,
  kUnsupportedOptionalParameter = 4,
  kUnacceptableHoldTime = 6,
  kUnsupportedCapability = 7,
};
enum class UpdateSubcode : uint8_t {  // RFC 4271 §6.3
  kMalformedAttributeList = 1,
  kUnrecognizedWellKnownAttribute = 2,
  kMissingWellKnownAttribute = 3,
  kAttributeFlagsError = 4,
  kAttributeLengthError = 5,
  kInvalidOrigin = 6,
  kInvalidNextHop = 8,
  kOptionalAttributeError = 9,
  kInvalidNetworkField = 10,
  kMalformedAsPath = 11,
};
enum class FsmSubcode : uint8_t {  // RFC 6608
  kUnspecific = 0,
  kUnexpectedMessageInOpenSent = 1,
  kUnexpectedMessageInOpenConfirm = 2,
  kUnexpectedMessageInEstablished = 3,
};
enum class CeaseSubcode : uint8_t {  // RFC 4486; 9 from RFC 8538
  kMaximumPrefixesReached = 1,
  kAdministrativeShutdown = 2,
  kPeerDeconfigured = 3,
  kAdministrativeReset = 4,
  kConnectionRejected = 5,
  kOtherConfigurationChange = 6,
  kConnectionCollisionResolution = 7,
  kOutOfResources = 8,
  kHardReset = 9,
};

// OPEN optional parameter types (RFC 4271 §4.2; 1 is deprecated by RFC 5492).
enum class OptParamType : uint8_t { kCapabilities = 2 };

// Capability codes (IANA). Only MP, RR, GR and 4-octet AS are decoded; the rest stay raw.
enum class CapabilityCode : uint8_t {
  kMultiprotocol = 1,        // RFC 4760 §8
  kRouteRefresh = 2,         // RFC 2918 §2
  kExtendedNextHop = 5,      // RFC 8950
  kExtendedMessage = 6,      // RFC 8654
  kGracefulRestart = 64,     // RFC 4724 §3
  kFourOctetAs = 65,         // RFC 6793 §3
  kAddPath = 69,             // RFC 7911 (not supported)
  kEnhancedRouteRefresh = 70,  // RFC 7313
  kLongLivedGracefulRestart = 71,
  kFqdn = 73,
};

enum class Afi : uint16_t { kIpv4 = 1, kIpv6 = 2 };
enum class Safi : uint8_t { kUnicast = 1, kMulticast = 2 };

// RFC 7606 §2, ordered by severity so the strongest of several errors wins.
enum class ErrorAction : uint8_t {
  kNone = 0,
  kAttributeDiscard = 1,  // the attribute is dropped, the UPDATE processed without it
  kTreatAsWithdraw = 2,   // every route in the UPDATE is withdrawn
  kAfiSafiDisable = 3,    // RFC 4760 §7: drop the AFI/SAFI (not produced by this decoder)
  kSessionReset = 4,      // send the NOTIFICATION and close
};

std::string_view ToString(MessageType type);
std::string_view ToString(ErrorAction action);
std::string_view AttrName(uint8_t type);  // "AS_PATH", or "attribute" for unknown codes
// "UPDATE Message Error / Malformed AS_PATH" for logs and test failure messages.
std::string DescribeNotification(NotificationCode code, uint8_t subcode);

}  // namespace calico::birdd::wire
