#pragma once
// birdd/wire: BGP messages as plain value types. Decoded ASNs are always 4-octet values: the
// decoder merges AS4_PATH/AS4_AGGREGATOR (RFC 6793 §4.2.3) and the encoder splits them again for
// a 2-octet session, so AS4_* never appear here. Identifiers (BGP ID, ORIGINATOR_ID, CLUSTER_LIST,
// aggregator address) are 32-bit values in host order.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "birdd/wire/constants.h"
#include "common/net/ip.h"

namespace calico::birdd::wire {

// What the codec needs to know about the session (RFC 6793 capability exchange). ADD-PATH
// (RFC 7911) is not supported, so NLRI never carry path identifiers.
struct SessionContext {
  bool four_octet_as = false;  // both sides advertised capability 65
};

struct AfiSafi {
  Afi afi = Afi::kIpv4;
  Safi safi = Safi::kUnicast;
  auto operator<=>(const AfiSafi&) const = default;
};
inline constexpr AfiSafi kIpv4Unicast{Afi::kIpv4, Safi::kUnicast};
inline constexpr AfiSafi kIpv6Unicast{Afi::kIpv6, Safi::kUnicast};

// ---- NOTIFICATION (RFC 4271 §4.5) ----------------------------------------------------------
struct Notification {
  NotificationCode code = NotificationCode::kCease;
  uint8_t subcode = 0;
  std::vector<uint8_t> data;

  Notification() = default;
  Notification(NotificationCode c, uint8_t s, std::vector<uint8_t> d = {})
      : code(c), subcode(s), data(std::move(d)) {}
  explicit Notification(HeaderSubcode s, std::vector<uint8_t> d = {})
      : Notification(NotificationCode::kMessageHeaderError, static_cast<uint8_t>(s), std::move(d)) {}
  explicit Notification(OpenSubcode s, std::vector<uint8_t> d = {})
      : Notification(NotificationCode::kOpenMessageError, static_cast<uint8_t>(s), std::move(d)) {}
  explicit Notification(UpdateSubcode s, std::vector<uint8_t> d = {})
      : Notification(NotificationCode::kUpdateMessageError, static_cast<uint8_t>(s), std::move(d)) {}
  explicit Notification(CeaseSubcode s, std::vector<uint8_t> d = {})
      : Notification(NotificationCode::kCease, static_cast<uint8_t>(s), std::move(d)) {}

  bool Is(HeaderSubcode s) const { return Matches(NotificationCode::kMessageHeaderError, s); }
  bool Is(OpenSubcode s) const { return Matches(NotificationCode::kOpenMessageError, s); }
  bool Is(UpdateSubcode s) const { return Matches(NotificationCode::kUpdateMessageError, s); }
  bool Is(CeaseSubcode s) const { return Matches(NotificationCode::kCease, s); }
  std::string ToString() const;  // "UPDATE Message Error / Malformed AS_PATH (3/11), data 02 05"
  bool operator==(const Notification&) const = default;

 private:
  template <typename E>
  bool Matches(NotificationCode c, E s) const {
    return code == c && subcode == static_cast<uint8_t>(s);
  }
};

// A malformed input, as protocol data (RFC 7606 §2). kSessionReset errors come back instead of a
// message; weaker ones ride along in Update::errors with their effect already applied.
struct DecodeError {
  Notification notification;
  ErrorAction action = ErrorAction::kSessionReset;
  std::string detail;  // "ORIGIN: length 2, want 1"; for logs, not for matching
  std::string ToString() const;
  bool operator==(const DecodeError&) const = default;
};

// ---- OPEN (RFC 4271 §4.2) and capabilities (RFC 5492) ----------------------------------------
struct GracefulRestart {  // RFC 4724 §3
  static constexpr uint8_t kRestartState = 0x8;     // R: the sender has restarted
  static constexpr uint8_t kNotification = 0x4;     // N: RFC 8538
  static constexpr uint8_t kForwardingState = 0x80;  // F, per family

  struct Family {
    AfiSafi afi_safi;
    uint8_t flags = 0;  // kForwardingState
    bool operator==(const Family&) const = default;
  };
  uint8_t flags = 0;          // the 4-bit Restart Flags field
  uint16_t restart_time = 0;  // seconds, 12 bits
  std::vector<Family> families;

  bool restarting() const { return flags & kRestartState; }
  bool operator==(const GracefulRestart&) const = default;
};

struct RawCapability {  // kept so callers can log it; never interpreted
  uint8_t code = 0;
  std::vector<uint8_t> value;
  bool operator==(const RawCapability&) const = default;
};

// Encoded in this order, one capability each, inside one Capabilities optional parameter.
struct Capabilities {
  std::vector<AfiSafi> multiprotocol;          // code 1, one per AFI/SAFI
  bool route_refresh = false;                  // code 2
  std::optional<GracefulRestart> graceful_restart;  // code 64
  std::optional<uint32_t> four_octet_as;       // code 65: the sender's real AS
  std::vector<RawCapability> unknown;          // anything else, in received order
  bool operator==(const Capabilities&) const = default;
};

struct Open {
  uint8_t version = kBgpVersion;
  // The 2-octet My Autonomous System field. Encode writes AS_TRANS for values above 65535.
  uint32_t my_as = 0;
  uint16_t hold_time = 0;
  uint32_t bgp_id = 0;
  Capabilities capabilities;

  // RFC 6793 §4.1: the peer's AS is the capability's when it sent one.
  uint32_t PeerAs() const { return capabilities.four_octet_as.value_or(my_as); }
  bool operator==(const Open&) const = default;
};

// ---- UPDATE (RFC 4271 §4.3, RFC 4760) --------------------------------------------------------
struct AsSegment {
  AsSegmentType type = AsSegmentType::kAsSequence;
  std::vector<uint32_t> asns;
  bool operator==(const AsSegment&) const = default;
};
using AsPath = std::vector<AsSegment>;

struct Aggregator {
  uint32_t as = 0;
  uint32_t address = 0;
  bool operator==(const Aggregator&) const = default;
};

struct LargeCommunity {  // RFC 8092 §2
  uint32_t global_admin = 0;
  uint32_t local_data1 = 0;
  uint32_t local_data2 = 0;
  auto operator<=>(const LargeCommunity&) const = default;
};

// An attribute this codec does not interpret: optional transitive ones are kept (and sent on
// with the Partial bit set, RFC 4271 §5); optional non-transitive ones are dropped on decode.
struct RawAttribute {
  uint8_t flags = 0;  // as received, without the Extended Length bit
  uint8_t type = 0;
  std::vector<uint8_t> value;
  bool operator==(const RawAttribute&) const = default;
};

struct PathAttributes {
  std::optional<Origin> origin;
  std::optional<AsPath> as_path;              // present-but-empty is valid (iBGP, locally originated)
  std::optional<net::IpAddress> next_hop;     // NEXT_HOP (IPv4 NLRI field only)
  std::optional<uint32_t> med;
  std::optional<uint32_t> local_pref;
  bool atomic_aggregate = false;
  std::optional<Aggregator> aggregator;
  std::vector<uint32_t> communities;          // RFC 1997
  std::optional<uint32_t> originator_id;      // RFC 4456
  std::vector<uint32_t> cluster_list;         // RFC 4456
  std::vector<LargeCommunity> large_communities;  // RFC 8092
  std::vector<RawAttribute> unknown;
  bool operator==(const PathAttributes&) const = default;
};

struct NextHop {  // MP_REACH_NLRI next hop (RFC 4760 §3; RFC 2545 §3 for IPv6 link-local)
  net::IpAddress address;
  std::optional<net::IpAddress> link_local;
  bool operator==(const NextHop&) const = default;
};

struct MpReach {
  AfiSafi afi_safi;
  NextHop next_hop;
  std::vector<net::Prefix> nlri;
  bool operator==(const MpReach&) const = default;
};

struct MpUnreach {
  AfiSafi afi_safi;
  std::vector<net::Prefix> withdrawn;
  bool operator==(const MpUnreach&) const = default;
};

struct Update {
  std::vector<net::Prefix> withdrawn;  // IPv4 Withdrawn Routes field
  PathAttributes attrs;
  std::vector<net::Prefix> nlri;  // IPv4 NLRI field
  std::optional<MpReach> mp_reach;      // IPv4/IPv6 unicast only; other AFI/SAFIs are skipped
  std::optional<MpUnreach> mp_unreach;
  // Decode only: non-fatal errors (attribute discard, treat-as-withdraw), already applied. After
  // treat-as-withdraw, every route of the message sits in withdrawn/mp_unreach and attrs is empty.
  std::vector<DecodeError> errors;

  ErrorAction action() const;  // the strongest of errors, kNone when clean
  bool operator==(const Update&) const = default;
};

struct Keepalive {
  bool operator==(const Keepalive&) const = default;
};

struct RouteRefresh {  // RFC 2918 §3
  AfiSafi afi_safi;
  uint8_t reserved = 0;  // RFC 7313 reuses it as a subtype; carried, not interpreted
  bool operator==(const RouteRefresh&) const = default;
};

using Message = std::variant<Open, Update, Notification, Keepalive, RouteRefresh>;

MessageType TypeOf(const Message& message);

// RFC 4724 §2: an UPDATE with nothing in it is the IPv4 End-of-RIB marker; one holding only an
// empty MP_UNREACH_NLRI is that family's.
std::optional<AfiSafi> EndOfRib(const Update& update);

}  // namespace calico::birdd::wire
