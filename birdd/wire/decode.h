#pragma once
// birdd/wire: bytes → messages. Total functions: any input yields a Message or a DecodeError
// carrying the NOTIFICATION to send and the RFC 7606 action; nothing is read out of bounds.

#include <cstdint>
#include <optional>
#include <span>
#include <variant>

#include "birdd/wire/message.h"

namespace calico::birdd::wire {

using Decoded = std::variant<Message, DecodeError>;

// One complete message, header included (what Framer::Next yields). RFC 4271 §6.1-6.3 checks:
// marker, length (19..4096 and the per-type minimum), type, OPEN fields (version 4, hold time not
// 1 or 2, non-zero BGP Identifier, only the Capabilities optional parameter), UPDATE per RFC
// 7606. Bad Peer AS and capability negotiation are left to the caller.
Decoded Decode(std::span<const uint8_t> message, const SessionContext& session);

// The UPDATE hot path: decodes into `out`, reusing the capacity of its prefix vectors so that a
// warm Update costs no allocation per prefix. Returns the session-reset error, if any; weaker
// errors are in out.errors with their effect applied (see Update::errors).
std::optional<DecodeError> DecodeUpdate(std::span<const uint8_t> message,
                                        const SessionContext& session, Update& out);

// The type octet of a message the Framer accepted (no other checks).
inline MessageType PeekType(std::span<const uint8_t> message) {
  return message.size() > 18 ? static_cast<MessageType>(message[18]) : MessageType{0};
}

}  // namespace calico::birdd::wire
