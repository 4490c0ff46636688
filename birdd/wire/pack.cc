#include "birdd/wire/pack.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "birdd/wire/attributes.h"
#include "birdd/wire/buffer.h"
#include "birdd/wire/encode.h"
#include "birdd/wire/nlri.h"

namespace calico::birdd::wire {
namespace {

using internal::Writer;

constexpr size_t kLengthOffset = 16;

size_t BeginUpdate(std::vector<uint8_t>& out) {
  size_t start = out.size();
  out.resize(start + kHeaderSize, 0xff);
  out[start + 18] = static_cast<uint8_t>(MessageType::kUpdate);
  return start;
}

void FinishUpdate(std::vector<uint8_t>& out, size_t start) {
  Writer(out).Patch16(start + kLengthOffset, static_cast<uint16_t>(out.size() - start));
}

absl::Status BadPrefix(const net::Prefix& prefix, int family) {
  return absl::InvalidArgumentError(
      absl::StrCat("prefix ", prefix.ToString(), ": not a valid IPv", family, " prefix"));
}

// Prefixes from `at` whose encodings fit in `budget` octets; returns one past the last.
size_t FitPrefixes(std::span<const net::Prefix> prefixes, size_t at, size_t budget,
                   size_t& used) {
  used = 0;
  while (at < prefixes.size()) {
    size_t n = internal::EncodedPrefixSize(prefixes[at]);
    if (used + n > budget) break;
    used += n;
    ++at;
  }
  return at;
}

absl::StatusOr<size_t> AnnounceIpv4(const PathAttributes& attrs, const NextHop& next_hop,
                                    std::span<const net::Prefix> prefixes,
                                    const SessionContext& session, std::vector<uint8_t>& out) {
  PathAttributes with_next_hop = attrs;
  with_next_hop.next_hop = next_hop.address;
  std::vector<uint8_t> encoded;
  if (absl::Status s = internal::EncodeAttributes(with_next_hop, nullptr, nullptr, session, encoded);
      !s.ok()) {
    return s;
  }
  const size_t fixed = kHeaderSize + 2 + 2 + encoded.size();
  if (fixed + 5 > kMaxMessageSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UPDATE: path attributes of ", encoded.size(), " octets leave no room for NLRI"));
  }
  size_t messages = 0;
  for (size_t at = 0; at < prefixes.size();) {
    size_t used = 0;
    size_t end = FitPrefixes(prefixes, at, kMaxMessageSize - fixed, used);
    size_t start = BeginUpdate(out);
    Writer w(out);
    w.U16(0);
    w.U16(static_cast<uint16_t>(encoded.size()));
    w.Bytes(encoded);
    for (; at < end; ++at) internal::EncodePrefix(prefixes[at], out);
    FinishUpdate(out, start);
    ++messages;
  }
  return messages;
}

absl::StatusOr<size_t> AnnounceIpv6(const PathAttributes& attrs, const NextHop& next_hop,
                                    std::span<const net::Prefix> prefixes,
                                    const SessionContext& session, std::vector<uint8_t>& out) {
  if (absl::Status s = internal::ValidateMpNextHop(kIpv6Unicast, next_hop); !s.ok()) return s;
  PathAttributes without_next_hop = attrs;
  without_next_hop.next_hop.reset();  // RFC 4760 §3: NEXT_HOP only goes with the NLRI field
  std::vector<uint8_t> encoded;
  if (absl::Status s =
          internal::EncodeAttributes(without_next_hop, nullptr, nullptr, session, encoded);
      !s.ok()) {
    return s;
  }
  const size_t mp_fixed = internal::MpReachFixedSize(next_hop);
  // Budgeted with the 4-octet extended attribute header; a short message uses 3.
  const size_t fixed = kHeaderSize + 2 + 2 + 4 + mp_fixed + encoded.size();
  if (fixed + 17 > kMaxMessageSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UPDATE: path attributes of ", encoded.size(), " octets leave no room for NLRI"));
  }
  size_t messages = 0;
  for (size_t at = 0; at < prefixes.size();) {
    size_t used = 0;
    size_t end = FitPrefixes(prefixes, at, kMaxMessageSize - fixed, used);
    const size_t mp_length = mp_fixed + used;
    size_t start = BeginUpdate(out);
    Writer w(out);
    w.U16(0);
    w.U16(static_cast<uint16_t>(internal::AttrHeaderSize(mp_length) + mp_length + encoded.size()));
    internal::PutAttrHeader(out, kAttrOptional, AttrType::kMpReachNlri, mp_length);
    internal::PutMpReachFixed(out, kIpv6Unicast, next_hop);
    for (; at < end; ++at) internal::EncodePrefix(prefixes[at], out);
    w.Bytes(encoded);
    FinishUpdate(out, start);
    ++messages;
  }
  return messages;
}

size_t WithdrawIpv4(std::span<const net::Prefix> prefixes, std::vector<uint8_t>& out) {
  size_t messages = 0;
  const size_t fixed = kHeaderSize + 2 + 2;
  size_t at = 0;
  auto next_v4 = [&](size_t i) {
    while (i < prefixes.size() && prefixes[i].addr.family != 4) ++i;
    return i;
  };
  at = next_v4(at);
  while (at < prefixes.size()) {
    size_t start = BeginUpdate(out);
    size_t len_at = out.size();
    Writer w(out);
    w.U16(0);
    size_t used = 0;
    while (at < prefixes.size()) {
      size_t n = internal::EncodedPrefixSize(prefixes[at]);
      if (fixed + used + n > kMaxMessageSize) break;
      internal::EncodePrefix(prefixes[at], out);
      used += n;
      at = next_v4(at + 1);
    }
    w.Patch16(len_at, static_cast<uint16_t>(used));
    w.U16(0);  // no path attributes
    FinishUpdate(out, start);
    ++messages;
  }
  return messages;
}

size_t WithdrawIpv6(std::span<const net::Prefix> prefixes, std::vector<uint8_t>& out) {
  size_t messages = 0;
  const size_t fixed = kHeaderSize + 2 + 2 + 4 + 3;
  auto next_v6 = [&](size_t i) {
    while (i < prefixes.size() && prefixes[i].addr.family != 6) ++i;
    return i;
  };
  size_t at = next_v6(0);
  while (at < prefixes.size()) {
    // Measure first: the attribute header size depends on the length.
    size_t used = 0;
    size_t end = at;
    while (end < prefixes.size()) {
      size_t n = internal::EncodedPrefixSize(prefixes[end]);
      if (fixed + used + n > kMaxMessageSize) break;
      used += n;
      end = next_v6(end + 1);
    }
    const size_t mp_length = 3 + used;
    size_t start = BeginUpdate(out);
    Writer w(out);
    w.U16(0);
    w.U16(static_cast<uint16_t>(internal::AttrHeaderSize(mp_length) + mp_length));
    internal::PutAttrHeader(out, kAttrOptional, AttrType::kMpUnreachNlri, mp_length);
    w.U16(static_cast<uint16_t>(Afi::kIpv6));
    w.U8(static_cast<uint8_t>(Safi::kUnicast));
    for (; at < end; at = next_v6(at + 1)) internal::EncodePrefix(prefixes[at], out);
    FinishUpdate(out, start);
    ++messages;
  }
  return messages;
}

}  // namespace

absl::StatusOr<size_t> EncodeAnnouncements(const PathAttributes& attrs, const NextHop& next_hop,
                                           std::span<const net::Prefix> prefixes,
                                           const SessionContext& session,
                                           std::vector<uint8_t>& out) {
  const int family = next_hop.address.family;
  if (family != 4 && family != 6) {
    return absl::InvalidArgumentError(absl::StrCat("next hop family ", family));
  }
  for (const net::Prefix& prefix : prefixes) {
    if (!internal::ValidPrefix(prefix, family)) return BadPrefix(prefix, family);
  }
  if (prefixes.empty()) return 0;
  const size_t rollback = out.size();
  absl::StatusOr<size_t> n = family == 4 ? AnnounceIpv4(attrs, next_hop, prefixes, session, out)
                                         : AnnounceIpv6(attrs, next_hop, prefixes, session, out);
  if (!n.ok()) out.resize(rollback);
  return n;
}

absl::StatusOr<size_t> EncodeWithdrawals(std::span<const net::Prefix> prefixes,
                                         std::vector<uint8_t>& out) {
  for (const net::Prefix& prefix : prefixes) {
    const int family = prefix.addr.family;
    if ((family != 4 && family != 6) || !internal::ValidPrefix(prefix, family)) {
      return BadPrefix(prefix, family);
    }
  }
  return WithdrawIpv4(prefixes, out) + WithdrawIpv6(prefixes, out);
}

absl::Status EncodeEndOfRib(AfiSafi afi_safi, std::vector<uint8_t>& out) {
  Update update;
  if (afi_safi != kIpv4Unicast) update.mp_unreach = MpUnreach{afi_safi, {}};
  return Encode(update, SessionContext{}, out);
}

}  // namespace calico::birdd::wire
