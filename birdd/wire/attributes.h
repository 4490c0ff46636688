#pragma once
// birdd/wire internal: the path attribute table (attributes.cc) — per type code, the expected
// flags, the RFC 7606 action for a malformed instance, a decoder and an encoder (BIRD's attrs.c).

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "birdd/wire/message.h"

namespace calico::birdd::wire::internal {

// Decodes the Path Attributes field into update.attrs / mp_reach / mp_unreach, recording
// attribute-discard and treat-as-withdraw errors in update.errors. Returns the error that resets
// the session, if any. `spare_reach` / `spare_unreach` lend their capacity to the MP NLRI lists.
std::optional<DecodeError> DecodeAttributes(std::span<const uint8_t> field,
                                            const SessionContext& session, Update& update,
                                            std::vector<net::Prefix>& spare_reach,
                                            std::vector<net::Prefix>& spare_unreach);

// Appends the Path Attributes field (without its length): MP_REACH_NLRI and MP_UNREACH_NLRI first
// (RFC 7606 §5.1), then ascending type code, unknown attributes merged in by their codes.
absl::Status EncodeAttributes(const PathAttributes& attrs, const MpReach* reach,
                              const MpUnreach* unreach, const SessionContext& session,
                              std::vector<uint8_t>& out);

// Flags, type and a 1- or 2-octet length (Extended Length only when the value exceeds 255).
void PutAttrHeader(std::vector<uint8_t>& out, uint8_t flags, AttrType type, size_t length);
inline size_t AttrHeaderSize(size_t length) { return length > 255 ? 4 : 3; }

// MP_REACH_NLRI up to its NLRI: AFI, SAFI, next hop length, next hop, reserved octet.
absl::Status ValidateMpNextHop(AfiSafi afi_safi, const NextHop& next_hop);
size_t MpReachFixedSize(const NextHop& next_hop);
void PutMpReachFixed(std::vector<uint8_t>& out, AfiSafi afi_safi, const NextHop& next_hop);

// 4 for IPv4 unicast, 6 for IPv6 unicast, 0 for AFI/SAFIs this codec does not carry.
int FamilyOf(AfiSafi afi_safi);

}  // namespace calico::birdd::wire::internal
