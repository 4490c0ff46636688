#pragma once
// birdd/wire: many prefixes sharing attributes → as few UPDATEs (≤4096 octets) as possible.
// The attributes are encoded once per call; each message then costs a header and the prefixes.
// Output is byte-identical to Encode() of the equivalent Update, appended to one buffer ready
// for the socket. On error nothing is appended.

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "birdd/wire/message.h"

namespace calico::birdd::wire {

// All prefixes must be of next_hop.address's family. IPv4: the NLRI field, with NEXT_HOP set to
// next_hop.address (attrs.next_hop is ignored). IPv6: MP_REACH_NLRI with next_hop (global and
// optional link-local). Returns the number of messages appended.
absl::StatusOr<size_t> EncodeAnnouncements(const PathAttributes& attrs, const NextHop& next_hop,
                                           std::span<const net::Prefix> prefixes,
                                           const SessionContext& session,
                                           std::vector<uint8_t>& out);

// IPv4 prefixes in the Withdrawn Routes field, IPv6 ones in MP_UNREACH_NLRI; mixed is fine.
absl::StatusOr<size_t> EncodeWithdrawals(std::span<const net::Prefix> prefixes,
                                         std::vector<uint8_t>& out);

// RFC 4724 §2: the End-of-RIB marker of a family.
absl::Status EncodeEndOfRib(AfiSafi afi_safi, std::vector<uint8_t>& out);

}  // namespace calico::birdd::wire
