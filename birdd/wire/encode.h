#pragma once
// birdd/wire: messages → bytes. Each Encode appends one complete message (header included) to
// `out`, or returns InvalidArgument naming the field and rule and leaves `out` as it was.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "birdd/wire/message.h"

namespace calico::birdd::wire {

absl::Status Encode(const Open& open, std::vector<uint8_t>& out);
// On a 2-octet session, 4-octet ASes go out as AS_TRANS with AS4_PATH / AS4_AGGREGATOR beside
// (RFC 6793 §4.2.2). Unknown optional transitive attributes are sent with the Partial bit set.
absl::Status Encode(const Update& update, const SessionContext& session, std::vector<uint8_t>& out);
absl::Status Encode(const Notification& notification, std::vector<uint8_t>& out);
absl::Status Encode(const Keepalive& keepalive, std::vector<uint8_t>& out);
absl::Status Encode(const RouteRefresh& route_refresh, std::vector<uint8_t>& out);
absl::Status Encode(const Message& message, const SessionContext& session,
                    std::vector<uint8_t>& out);
absl::StatusOr<std::vector<uint8_t>> Encode(const Message& message, const SessionContext& session);

}  // namespace calico::birdd::wire
