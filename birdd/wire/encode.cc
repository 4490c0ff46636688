#include "birdd/wire/encode.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "birdd/wire/attributes.h"
#include "birdd/wire/buffer.h"
#include "birdd/wire/nlri.h"

namespace calico::birdd::wire {
namespace {

using internal::Writer;

// Writes marker, a length placeholder and the type; returns where the message starts.
size_t BeginMessage(std::vector<uint8_t>& out, MessageType type) {
  size_t start = out.size();
  out.resize(start + kHeaderSize, 0xff);
  out[start + 16] = 0;
  out[start + 17] = 0;
  out[start + 18] = static_cast<uint8_t>(type);
  return start;
}

// Patches the length, or rolls `out` back when the message is too large.
absl::Status FinishMessage(std::vector<uint8_t>& out, size_t start, MessageType type) {
  size_t length = out.size() - start;
  if (length > kMaxMessageSize) {
    out.resize(start);
    return absl::InvalidArgumentError(absl::StrCat(std::string(ToString(type)), ": ", length,
                                                   " octets exceed the 4096-octet maximum "
                                                   "(RFC 4271 §4.1)"));
  }
  Writer(out).Patch16(start + 16, static_cast<uint16_t>(length));
  return absl::OkStatus();
}

absl::Status Rollback(std::vector<uint8_t>& out, size_t start, absl::Status status) {
  out.resize(start);
  return status;
}

// One capability: code, length, value.
void PutCapability(std::vector<uint8_t>& buf, CapabilityCode code, std::span<const uint8_t> v) {
  buf.push_back(static_cast<uint8_t>(code));
  buf.push_back(static_cast<uint8_t>(v.size()));
  buf.insert(buf.end(), v.begin(), v.end());
}

absl::Status EncodeCapabilities(const Capabilities& caps, std::vector<std::vector<uint8_t>>& out) {
  auto add = [&out](CapabilityCode code, std::span<const uint8_t> value) {
    std::vector<uint8_t>& cap = out.emplace_back();
    PutCapability(cap, code, value);
  };
  for (const AfiSafi& mp : caps.multiprotocol) {
    uint16_t afi = static_cast<uint16_t>(mp.afi);
    uint8_t v[4] = {static_cast<uint8_t>(afi >> 8), static_cast<uint8_t>(afi), 0,
                    static_cast<uint8_t>(mp.safi)};
    add(CapabilityCode::kMultiprotocol, v);
  }
  if (caps.route_refresh) add(CapabilityCode::kRouteRefresh, {});
  if (caps.graceful_restart) {
    const GracefulRestart& gr = *caps.graceful_restart;
    if (gr.flags > 0xf || gr.restart_time > 0xfff || gr.families.size() > 62) {
      return absl::InvalidArgumentError(absl::StrCat(
          "OPEN graceful restart: flags ", gr.flags, " (4 bits), restart time ", gr.restart_time,
          " (12 bits), ", gr.families.size(), " families (62 fit) (RFC 4724 §3)"));
    }
    std::vector<uint8_t> v;
    v.push_back(static_cast<uint8_t>(gr.flags << 4 | gr.restart_time >> 8));
    v.push_back(static_cast<uint8_t>(gr.restart_time));
    for (const GracefulRestart::Family& f : gr.families) {
      uint16_t afi = static_cast<uint16_t>(f.afi_safi.afi);
      v.insert(v.end(), {static_cast<uint8_t>(afi >> 8), static_cast<uint8_t>(afi),
                         static_cast<uint8_t>(f.afi_safi.safi), f.flags});
    }
    add(CapabilityCode::kGracefulRestart, v);
  }
  if (caps.four_octet_as) {
    uint32_t as = *caps.four_octet_as;
    uint8_t v[4] = {static_cast<uint8_t>(as >> 24), static_cast<uint8_t>(as >> 16),
                    static_cast<uint8_t>(as >> 8), static_cast<uint8_t>(as)};
    add(CapabilityCode::kFourOctetAs, v);
  }
  for (const RawCapability& raw : caps.unknown) {
    switch (static_cast<CapabilityCode>(raw.code)) {
      case CapabilityCode::kMultiprotocol:
      case CapabilityCode::kRouteRefresh:
      case CapabilityCode::kGracefulRestart:
      case CapabilityCode::kFourOctetAs:
        return absl::InvalidArgumentError(absl::StrCat(
            "OPEN: capability ", raw.code, " is decoded by this codec and must not be given raw"));
      default:
        break;
    }
    if (raw.value.size() > 253) {
      return absl::InvalidArgumentError(absl::StrCat("OPEN: capability ", raw.code, " of ",
                                                     raw.value.size(), " octets (253 fit)"));
    }
    add(static_cast<CapabilityCode>(raw.code), raw.value);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Encode(const Open& open, std::vector<uint8_t>& out) {
  std::vector<std::vector<uint8_t>> caps;
  if (absl::Status s = EncodeCapabilities(open.capabilities, caps); !s.ok()) return s;
  // One Capabilities optional parameter holds them all (RFC 5492 §4). Splitting them over several
  // parameters would not help: their headers count against the same 255 octets.
  size_t caps_size = 0;
  for (const std::vector<uint8_t>& cap : caps) caps_size += cap.size();
  if (caps_size > 253) {
    return absl::InvalidArgumentError(absl::StrCat(
        "OPEN: capabilities of ", caps_size,
        " octets exceed the 253 an optional parameter holds (RFC 9072 is not supported)"));
  }
  std::vector<uint8_t> params;
  if (!caps.empty()) {
    params.push_back(static_cast<uint8_t>(OptParamType::kCapabilities));
    params.push_back(static_cast<uint8_t>(caps_size));
    for (const std::vector<uint8_t>& cap : caps) params.insert(params.end(), cap.begin(), cap.end());
  }
  size_t start = BeginMessage(out, MessageType::kOpen);
  Writer w(out);
  w.U8(open.version);
  w.U16(open.my_as > 0xffff ? kAsTrans : static_cast<uint16_t>(open.my_as));  // RFC 6793 §4.1
  w.U16(open.hold_time);
  w.U32(open.bgp_id);
  w.U8(static_cast<uint8_t>(params.size()));
  w.Bytes(params);
  return FinishMessage(out, start, MessageType::kOpen);
}

absl::Status Encode(const Update& update, const SessionContext& session, std::vector<uint8_t>& out) {
  size_t start = BeginMessage(out, MessageType::kUpdate);
  Writer w(out);
  size_t withdrawn_at = w.size();
  w.U16(0);
  for (const net::Prefix& prefix : update.withdrawn) {
    if (!internal::ValidPrefix(prefix, 4)) {
      return Rollback(out, start, absl::InvalidArgumentError(absl::StrCat(
                                      "UPDATE withdrawn route ", prefix.ToString(),
                                      ": not IPv4 (IPv6 goes in MP_UNREACH_NLRI)")));
    }
    internal::EncodePrefix(prefix, out);
  }
  size_t withdrawn_len = w.size() - withdrawn_at - 2;
  size_t attrs_at = w.size();
  w.U16(0);
  absl::Status s = internal::EncodeAttributes(
      update.attrs, update.mp_reach ? &*update.mp_reach : nullptr,
      update.mp_unreach ? &*update.mp_unreach : nullptr, session, out);
  if (!s.ok()) return Rollback(out, start, s);
  size_t attrs_len = w.size() - attrs_at - 2;
  for (const net::Prefix& prefix : update.nlri) {
    if (!internal::ValidPrefix(prefix, 4)) {
      return Rollback(out, start, absl::InvalidArgumentError(absl::StrCat(
                                      "UPDATE NLRI ", prefix.ToString(),
                                      ": not IPv4 (IPv6 goes in MP_REACH_NLRI)")));
    }
    internal::EncodePrefix(prefix, out);
  }
  if (withdrawn_len > 0xffff || attrs_len > 0xffff) {
    return FinishMessage(out, start, MessageType::kUpdate);  // too large either way
  }
  w.Patch16(withdrawn_at, static_cast<uint16_t>(withdrawn_len));
  w.Patch16(attrs_at, static_cast<uint16_t>(attrs_len));
  return FinishMessage(out, start, MessageType::kUpdate);
}

absl::Status Encode(const Notification& notification, std::vector<uint8_t>& out) {
  size_t start = BeginMessage(out, MessageType::kNotification);
  Writer w(out);
  w.U8(static_cast<uint8_t>(notification.code));
  w.U8(notification.subcode);
  w.Bytes(notification.data);
  return FinishMessage(out, start, MessageType::kNotification);
}

absl::Status Encode(const Keepalive&, std::vector<uint8_t>& out) {
  size_t start = BeginMessage(out, MessageType::kKeepalive);
  return FinishMessage(out, start, MessageType::kKeepalive);
}

absl::Status Encode(const RouteRefresh& route_refresh, std::vector<uint8_t>& out) {
  size_t start = BeginMessage(out, MessageType::kRouteRefresh);
  Writer w(out);
  w.U16(static_cast<uint16_t>(route_refresh.afi_safi.afi));
  w.U8(route_refresh.reserved);
  w.U8(static_cast<uint8_t>(route_refresh.afi_safi.safi));
  return FinishMessage(out, start, MessageType::kRouteRefresh);
}

absl::Status Encode(const Message& message, const SessionContext& session,
                    std::vector<uint8_t>& out) {
  return std::visit(
      [&](const auto& m) -> absl::Status {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Update>) {
          return Encode(m, session, out);
        } else {
          return Encode(m, out);
        }
      },
      message);
}

absl::StatusOr<std::vector<uint8_t>> Encode(const Message& message, const SessionContext& session) {
  std::vector<uint8_t> out;
  if (absl::Status s = Encode(message, session, out); !s.ok()) return s;
  return out;
}

}  // namespace calico::birdd::wire
