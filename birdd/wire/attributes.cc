#include "birdd/wire/attributes.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "birdd/wire/as_path.h"
#include "birdd/wire/buffer.h"
#include "birdd/wire/nlri.h"

namespace calico::birdd::wire::internal {
namespace {

constexpr uint8_t kWellKnown = kAttrTransitive;  // O=0 T=1 (RFC 4271 §5)
constexpr uint8_t kOptional = kAttrOptional;
constexpr uint8_t kOptionalTransitive = kAttrOptional | kAttrTransitive;
// A NOTIFICATION carries at most 4096 - 21 octets of data (RFC 4271 §4.5).
constexpr size_t kMaxNotificationData = kMaxMessageSize - kHeaderSize - 2;

// A malformed attribute, as its decoder sees it; the table row supplies the action.
struct Bad {
  UpdateSubcode subcode;
  std::string detail;
};
using AttrResult = std::optional<Bad>;

struct DecodeState {
  const SessionContext& session;
  Update& update;
  std::vector<net::Prefix>& spare_reach;
  std::vector<net::Prefix>& spare_unreach;
  std::optional<AsPath> as4_path;             // RFC 6793: merged once all attributes are read
  std::optional<Aggregator> as4_aggregator;
  bool saw_aggregator = false;

  void Note(ErrorAction action, UpdateSubcode subcode, std::string detail) {
    update.errors.push_back(DecodeError{Notification(subcode), action, std::move(detail)});
  }
};

struct EncodeState {
  const PathAttributes& attrs;
  const MpReach* reach;
  const MpUnreach* unreach;
  const SessionContext& session;
  std::vector<uint8_t>& out;
};

struct AttrRow {
  AttrType type;
  std::string_view name;
  uint8_t flags;           // the Optional and Transitive bits this type must carry
  ErrorAction malformed;   // RFC 7606 §7, RFC 6793 §6, RFC 8092 §5
  AttrResult (*decode)(DecodeState& st, std::span<const uint8_t> value);
  absl::Status (*encode)(EncodeState& st);
};

std::string LengthDetail(size_t got, std::string_view want) {
  return absl::StrCat("length ", got, ", want ", std::string(want));
}

AttrResult WantLength(std::span<const uint8_t> value, size_t want) {
  if (value.size() == want) return std::nullopt;
  return Bad{UpdateSubcode::kAttributeLengthError, LengthDetail(value.size(), std::to_string(want))};
}

// Non-zero multiple of `unit` (RFC 7606 §7.8, §7.10; RFC 8092 §5).
AttrResult WantMultiple(std::span<const uint8_t> value, size_t unit) {
  if (!value.empty() && value.size() % unit == 0) return std::nullopt;
  return Bad{UpdateSubcode::kAttributeLengthError,
             LengthDetail(value.size(), absl::StrCat("a non-zero multiple of ", unit))};
}

// RFC 7606 §7.2 (AS_PATH) and RFC 6793 §6 (AS4_PATH): a segment is malformed when its header
// does not fit, its type is not one of the four defined, its length is zero, or it overruns.
bool ParseAsPath(std::span<const uint8_t> value, size_t width, AsPath& out, std::string& why) {
  Reader r(value);
  while (!r.empty()) {
    uint8_t type = 0, count = 0;
    if (!r.U8(type) || !r.U8(count)) {
      why = "a lone octet after the last segment";
      return false;
    }
    if (type < 1 || type > 4) {
      why = absl::StrCat("segment type ", type);
      return false;
    }
    if (count == 0) {
      why = "empty segment";
      return false;
    }
    std::span<const uint8_t> asns;
    if (!r.Bytes(size_t{count} * width, asns)) {
      why = absl::StrCat("segment of ", count, " ASes overruns the attribute");
      return false;
    }
    AsSegment& segment = out.emplace_back();
    segment.type = static_cast<AsSegmentType>(type);
    segment.asns.resize(count);
    for (size_t i = 0; i < count; ++i) {
      segment.asns[i] = width == 4 ? Reader::Load32(&asns[i * 4]) : Reader::Load16(&asns[i * 2]);
    }
  }
  return true;
}

// ---- decoders --------------------------------------------------------------------------------

AttrResult DecodeOrigin(DecodeState& st, std::span<const uint8_t> value) {
  if (auto bad = WantLength(value, 1)) return bad;
  if (value[0] > 2) return Bad{UpdateSubcode::kInvalidOrigin, absl::StrCat("value ", value[0])};
  st.update.attrs.origin = static_cast<Origin>(value[0]);
  return std::nullopt;
}

AttrResult DecodeAsPath(DecodeState& st, std::span<const uint8_t> value) {
  AsPath path;
  std::string why;
  if (!ParseAsPath(value, st.session.four_octet_as ? 4 : 2, path, why)) {
    return Bad{UpdateSubcode::kMalformedAsPath, std::move(why)};
  }
  st.update.attrs.as_path = std::move(path);
  return std::nullopt;
}

AttrResult DecodeNextHop(DecodeState& st, std::span<const uint8_t> value) {
  if (auto bad = WantLength(value, 4)) return bad;
  net::IpAddress& ip = st.update.attrs.next_hop.emplace();
  ip.family = 4;
  std::memcpy(ip.bytes.data(), value.data(), 4);
  return std::nullopt;
}

AttrResult DecodeMed(DecodeState& st, std::span<const uint8_t> value) {
  if (auto bad = WantLength(value, 4)) return bad;
  st.update.attrs.med = Reader::Load32(value.data());
  return std::nullopt;
}

AttrResult DecodeLocalPref(DecodeState& st, std::span<const uint8_t> value) {
  if (auto bad = WantLength(value, 4)) return bad;
  st.update.attrs.local_pref = Reader::Load32(value.data());
  return std::nullopt;
}

AttrResult DecodeAtomicAggregate(DecodeState& st, std::span<const uint8_t> value) {
  if (auto bad = WantLength(value, 0)) return bad;
  st.update.attrs.atomic_aggregate = true;
  return std::nullopt;
}

AttrResult DecodeAggregator(DecodeState& st, std::span<const uint8_t> value) {
  const bool four = st.session.four_octet_as;
  if (auto bad = WantLength(value, four ? 8 : 6)) return bad;
  Aggregator& aggregator = st.update.attrs.aggregator.emplace();
  aggregator.as = four ? Reader::Load32(value.data()) : Reader::Load16(value.data());
  aggregator.address = Reader::Load32(value.data() + (four ? 4 : 2));
  st.saw_aggregator = true;
  return std::nullopt;
}

AttrResult DecodeCommunities(DecodeState& st, std::span<const uint8_t> value) {
  if (auto bad = WantMultiple(value, 4)) return bad;
  auto& out = st.update.attrs.communities;
  out.resize(value.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) out[i] = Reader::Load32(&value[i * 4]);
  return std::nullopt;
}

AttrResult DecodeOriginatorId(DecodeState& st, std::span<const uint8_t> value) {
  if (auto bad = WantLength(value, 4)) return bad;
  st.update.attrs.originator_id = Reader::Load32(value.data());
  return std::nullopt;
}

AttrResult DecodeClusterList(DecodeState& st, std::span<const uint8_t> value) {
  if (auto bad = WantMultiple(value, 4)) return bad;
  auto& out = st.update.attrs.cluster_list;
  out.resize(value.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) out[i] = Reader::Load32(&value[i * 4]);
  return std::nullopt;
}

AttrResult DecodeLargeCommunities(DecodeState& st, std::span<const uint8_t> value) {
  if (auto bad = WantMultiple(value, 12)) return bad;
  auto& out = st.update.attrs.large_communities;
  out.resize(value.size() / 12);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint8_t* p = &value[i * 12];
    out[i] = LargeCommunity{Reader::Load32(p), Reader::Load32(p + 4), Reader::Load32(p + 8)};
  }
  return std::nullopt;
}

Bad MpBad(std::string detail) {
  return Bad{UpdateSubcode::kOptionalAttributeError, std::move(detail)};  // RFC 4760 §7
}

AttrResult DecodeMpReach(DecodeState& st, std::span<const uint8_t> value) {
  Reader r(value);
  uint16_t afi = 0;
  uint8_t safi = 0, nh_len = 0, reserved = 0;
  std::span<const uint8_t> nh;
  if (!r.U16(afi) || !r.U8(safi) || !r.U8(nh_len)) return MpBad("shorter than its fixed part");
  if (!r.Bytes(nh_len, nh) || !r.U8(reserved)) {
    return MpBad(absl::StrCat("next hop length ", nh_len, " overruns the attribute"));
  }
  AfiSafi afi_safi{static_cast<Afi>(afi), static_cast<Safi>(safi)};
  const int family = FamilyOf(afi_safi);
  if (family == 0) return std::nullopt;  // an AFI/SAFI we never advertise: ignored, not an error
  NextHop next_hop;
  next_hop.address.family = family;
  if (family == 4) {
    if (nh_len != 4) return MpBad(absl::StrCat("IPv4 next hop length ", nh_len, ", want 4"));
    std::memcpy(next_hop.address.bytes.data(), nh.data(), 4);
  } else {
    // RFC 2545 §3: a global address, optionally followed by a link-local one.
    if (nh_len != 16 && nh_len != 32) {
      return MpBad(absl::StrCat("IPv6 next hop length ", nh_len, ", want 16 or 32"));
    }
    std::memcpy(next_hop.address.bytes.data(), nh.data(), 16);
    if (nh_len == 32) {
      net::IpAddress& ll = next_hop.link_local.emplace();
      ll.family = 6;
      std::memcpy(ll.bytes.data(), nh.data() + 16, 16);
    }
  }
  MpReach& reach = st.update.mp_reach.emplace();
  reach.afi_safi = afi_safi;
  reach.next_hop = next_hop;
  reach.nlri = std::move(st.spare_reach);
  reach.nlri.clear();
  if (!DecodePrefixes(r.rest(), family, reach.nlri)) return MpBad("malformed NLRI");
  return std::nullopt;
}

AttrResult DecodeMpUnreach(DecodeState& st, std::span<const uint8_t> value) {
  Reader r(value);
  uint16_t afi = 0;
  uint8_t safi = 0;
  if (!r.U16(afi) || !r.U8(safi)) return MpBad("shorter than its fixed part");
  AfiSafi afi_safi{static_cast<Afi>(afi), static_cast<Safi>(safi)};
  const int family = FamilyOf(afi_safi);
  if (family == 0) return std::nullopt;
  MpUnreach& unreach = st.update.mp_unreach.emplace();
  unreach.afi_safi = afi_safi;
  unreach.withdrawn = std::move(st.spare_unreach);
  unreach.withdrawn.clear();
  if (!DecodePrefixes(r.rest(), family, unreach.withdrawn)) return MpBad("malformed withdrawn NLRI");
  return std::nullopt;
}

constexpr std::string_view kAs4FromNewSpeaker =
    "received from a 4-octet-AS speaker: discarded (RFC 6793 §6)";

AttrResult DecodeAs4Path(DecodeState& st, std::span<const uint8_t> value) {
  if (st.session.four_octet_as) {
    st.Note(ErrorAction::kAttributeDiscard, UpdateSubcode::kOptionalAttributeError,
            absl::StrCat("AS4_PATH ", std::string(kAs4FromNewSpeaker)));
    return std::nullopt;
  }
  if (value.size() < 6) {  // RFC 6793 §6: too small to carry one AS
    return Bad{UpdateSubcode::kAttributeLengthError, LengthDetail(value.size(), "at least 6")};
  }
  AsPath path;
  std::string why;
  if (!ParseAsPath(value, 4, path, why)) return Bad{UpdateSubcode::kMalformedAsPath, why};
  // RFC 6793 §6: confederation segments must not appear; drop them and carry on.
  size_t before = path.size();
  std::erase_if(path, [](const AsSegment& s) {
    return s.type == AsSegmentType::kAsConfedSequence || s.type == AsSegmentType::kAsConfedSet;
  });
  if (path.size() != before) {
    st.Note(ErrorAction::kAttributeDiscard, UpdateSubcode::kMalformedAsPath,
            "AS4_PATH: confederation segments discarded (RFC 6793 §6)");
  }
  st.as4_path = std::move(path);
  return std::nullopt;
}

AttrResult DecodeAs4Aggregator(DecodeState& st, std::span<const uint8_t> value) {
  if (st.session.four_octet_as) {
    st.Note(ErrorAction::kAttributeDiscard, UpdateSubcode::kOptionalAttributeError,
            absl::StrCat("AS4_AGGREGATOR ", std::string(kAs4FromNewSpeaker)));
    return std::nullopt;
  }
  if (auto bad = WantLength(value, 8)) return bad;
  st.as4_aggregator = Aggregator{Reader::Load32(value.data()), Reader::Load32(value.data() + 4)};
  return std::nullopt;
}

// ---- encoders --------------------------------------------------------------------------------

absl::Status TooLong(std::string_view name, size_t length) {
  return absl::InvalidArgumentError(absl::StrCat("UPDATE ", std::string(name), ": ", length,
                                                 " octets exceed an attribute's 65535"));
}

absl::Status PutFixed32(EncodeState& st, uint8_t flags, AttrType type, std::optional<uint32_t> v) {
  if (!v) return absl::OkStatus();
  PutAttrHeader(st.out, flags, type, 4);
  Writer(st.out).U32(*v);
  return absl::OkStatus();
}

absl::Status PutList32(EncodeState& st, uint8_t flags, AttrType type,
                       const std::vector<uint32_t>& values) {
  if (values.empty()) return absl::OkStatus();
  size_t length = values.size() * 4;
  if (length > 0xffff) return TooLong(AttrName(static_cast<uint8_t>(type)), length);
  PutAttrHeader(st.out, flags, type, length);
  Writer w(st.out);
  for (uint32_t v : values) w.U32(v);
  return absl::OkStatus();
}

// Segments longer than 255 ASes go out as several segments; a set cannot be split.
absl::Status PutAsPath(EncodeState& st, uint8_t flags, AttrType type, const AsPath& path,
                       size_t width, bool skip_confed) {
  const std::string_view name = AttrName(static_cast<uint8_t>(type));
  size_t length = 0;
  for (const AsSegment& segment : path) {
    const bool confed = segment.type == AsSegmentType::kAsConfedSequence ||
                        segment.type == AsSegmentType::kAsConfedSet;
    if (skip_confed && confed) continue;
    const uint8_t code = static_cast<uint8_t>(segment.type);
    if (code < 1 || code > 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("UPDATE ", std::string(name), ": segment type ", code, " is undefined"));
    }
    if (segment.asns.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "UPDATE ", std::string(name), ": empty segment (malformed, RFC 7606 §7.2)"));
    }
    const bool set = segment.type == AsSegmentType::kAsSet ||
                     segment.type == AsSegmentType::kAsConfedSet;
    if (set && segment.asns.size() > 255) {
      return absl::InvalidArgumentError(absl::StrCat("UPDATE ", std::string(name), ": a set of ",
                                                     segment.asns.size(),
                                                     " ASes exceeds a segment's 255"));
    }
    size_t pieces = (segment.asns.size() + 254) / 255;
    length += pieces * 2 + segment.asns.size() * width;
  }
  if (length > 0xffff) return TooLong(name, length);
  PutAttrHeader(st.out, flags, type, length);
  Writer w(st.out);
  for (const AsSegment& segment : path) {
    const bool confed = segment.type == AsSegmentType::kAsConfedSequence ||
                        segment.type == AsSegmentType::kAsConfedSet;
    if (skip_confed && confed) continue;
    for (size_t at = 0; at < segment.asns.size(); at += 255) {
      size_t n = std::min<size_t>(255, segment.asns.size() - at);
      w.U8(static_cast<uint8_t>(segment.type));
      w.U8(static_cast<uint8_t>(n));
      for (size_t i = at; i < at + n; ++i) {
        uint32_t asn = segment.asns[i];
        if (width == 4) {
          w.U32(asn);
        } else {
          w.U16(asn > 0xffff ? kAsTrans : static_cast<uint16_t>(asn));  // RFC 6793 §4.2.2
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status EncodeOrigin(EncodeState& st) {
  if (!st.attrs.origin) return absl::OkStatus();
  PutAttrHeader(st.out, kWellKnown, AttrType::kOrigin, 1);
  st.out.push_back(static_cast<uint8_t>(*st.attrs.origin));
  return absl::OkStatus();
}

absl::Status EncodeAsPath(EncodeState& st) {
  if (!st.attrs.as_path) return absl::OkStatus();
  return PutAsPath(st, kWellKnown, AttrType::kAsPath, *st.attrs.as_path,
                   st.session.four_octet_as ? 4 : 2, /*skip_confed=*/false);
}

absl::Status EncodeNextHop(EncodeState& st) {
  if (!st.attrs.next_hop) return absl::OkStatus();
  if (st.attrs.next_hop->family != 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UPDATE NEXT_HOP ", st.attrs.next_hop->ToString(),
        ": must be IPv4 (an IPv6 next hop goes in MP_REACH_NLRI)"));
  }
  PutAttrHeader(st.out, kWellKnown, AttrType::kNextHop, 4);
  Writer(st.out).Bytes(std::span<const uint8_t>(st.attrs.next_hop->bytes.data(), 4));
  return absl::OkStatus();
}

absl::Status EncodeMed(EncodeState& st) {
  return PutFixed32(st, kOptional, AttrType::kMultiExitDisc, st.attrs.med);
}
absl::Status EncodeLocalPref(EncodeState& st) {
  return PutFixed32(st, kWellKnown, AttrType::kLocalPref, st.attrs.local_pref);
}
absl::Status EncodeAtomicAggregate(EncodeState& st) {
  if (st.attrs.atomic_aggregate) PutAttrHeader(st.out, kWellKnown, AttrType::kAtomicAggregate, 0);
  return absl::OkStatus();
}

absl::Status EncodeAggregator(EncodeState& st) {
  if (!st.attrs.aggregator) return absl::OkStatus();
  const Aggregator& a = *st.attrs.aggregator;
  Writer w(st.out);
  if (st.session.four_octet_as) {
    PutAttrHeader(st.out, kOptionalTransitive, AttrType::kAggregator, 8);
    w.U32(a.as);
  } else {
    PutAttrHeader(st.out, kOptionalTransitive, AttrType::kAggregator, 6);
    w.U16(a.as > 0xffff ? kAsTrans : static_cast<uint16_t>(a.as));
  }
  w.U32(a.address);
  return absl::OkStatus();
}

absl::Status EncodeCommunities(EncodeState& st) {
  return PutList32(st, kOptionalTransitive, AttrType::kCommunities, st.attrs.communities);
}
absl::Status EncodeOriginatorId(EncodeState& st) {
  return PutFixed32(st, kOptional, AttrType::kOriginatorId, st.attrs.originator_id);
}
absl::Status EncodeClusterList(EncodeState& st) {
  return PutList32(st, kOptional, AttrType::kClusterList, st.attrs.cluster_list);
}

absl::Status CheckPrefixes(std::string_view what, const std::vector<net::Prefix>& prefixes,
                           int family, size_t& length) {
  for (const net::Prefix& prefix : prefixes) {
    if (!ValidPrefix(prefix, family)) {
      return absl::InvalidArgumentError(absl::StrCat("UPDATE ", std::string(what), ": prefix ",
                                                     prefix.ToString(), " is not IPv", family));
    }
    length += EncodedPrefixSize(prefix);
  }
  return absl::OkStatus();
}

absl::Status EncodeMpReach(EncodeState& st) {
  if (!st.reach) return absl::OkStatus();
  const MpReach& reach = *st.reach;
  if (absl::Status s = ValidateMpNextHop(reach.afi_safi, reach.next_hop); !s.ok()) return s;
  size_t length = MpReachFixedSize(reach.next_hop);
  if (absl::Status s = CheckPrefixes("MP_REACH_NLRI", reach.nlri, FamilyOf(reach.afi_safi), length);
      !s.ok()) {
    return s;
  }
  if (length > 0xffff) return TooLong("MP_REACH_NLRI", length);
  PutAttrHeader(st.out, kOptional, AttrType::kMpReachNlri, length);
  PutMpReachFixed(st.out, reach.afi_safi, reach.next_hop);
  for (const net::Prefix& prefix : reach.nlri) EncodePrefix(prefix, st.out);
  return absl::OkStatus();
}

absl::Status EncodeMpUnreach(EncodeState& st) {
  if (!st.unreach) return absl::OkStatus();
  const MpUnreach& unreach = *st.unreach;
  const int family = FamilyOf(unreach.afi_safi);
  if (family == 0) {
    return absl::InvalidArgumentError("UPDATE MP_UNREACH_NLRI: only IPv4/IPv6 unicast supported");
  }
  size_t length = 3;
  if (absl::Status s = CheckPrefixes("MP_UNREACH_NLRI", unreach.withdrawn, family, length);
      !s.ok()) {
    return s;
  }
  if (length > 0xffff) return TooLong("MP_UNREACH_NLRI", length);
  PutAttrHeader(st.out, kOptional, AttrType::kMpUnreachNlri, length);
  Writer w(st.out);
  w.U16(static_cast<uint16_t>(unreach.afi_safi.afi));
  w.U8(static_cast<uint8_t>(unreach.afi_safi.safi));
  for (const net::Prefix& prefix : unreach.withdrawn) EncodePrefix(prefix, st.out);
  return absl::OkStatus();
}

// RFC 6793 §4.2.2: to an OLD speaker, a path with 4-octet ASes also goes out as AS4_PATH (without
// confederation segments), and an AGGREGATOR with a 4-octet AS as AS4_AGGREGATOR.
absl::Status EncodeAs4Path(EncodeState& st) {
  if (st.session.four_octet_as || !st.attrs.as_path || !NeedsAs4(*st.attrs.as_path)) {
    return absl::OkStatus();
  }
  return PutAsPath(st, kOptionalTransitive, AttrType::kAs4Path, *st.attrs.as_path, 4,
                   /*skip_confed=*/true);
}

absl::Status EncodeAs4Aggregator(EncodeState& st) {
  if (st.session.four_octet_as || !st.attrs.aggregator || st.attrs.aggregator->as <= 0xffff) {
    return absl::OkStatus();
  }
  PutAttrHeader(st.out, kOptionalTransitive, AttrType::kAs4Aggregator, 8);
  Writer w(st.out);
  w.U32(st.attrs.aggregator->as);
  w.U32(st.attrs.aggregator->address);
  return absl::OkStatus();
}

absl::Status EncodeLargeCommunities(EncodeState& st) {
  const auto& values = st.attrs.large_communities;
  if (values.empty()) return absl::OkStatus();
  size_t length = values.size() * 12;
  if (length > 0xffff) return TooLong("LARGE_COMMUNITIES", length);
  PutAttrHeader(st.out, kOptionalTransitive, AttrType::kLargeCommunities, length);
  Writer w(st.out);
  for (const LargeCommunity& c : values) {
    w.U32(c.global_admin);
    w.U32(c.local_data1);
    w.U32(c.local_data2);
  }
  return absl::OkStatus();
}

using enum ErrorAction;

// The table, in encode order: MP attributes first (RFC 7606 §5.1), then ascending type code.
constexpr AttrRow kRows[] = {
    {AttrType::kMpReachNlri, "MP_REACH_NLRI", kOptional, kSessionReset, DecodeMpReach,
     EncodeMpReach},  // RFC 7606 §7.11
    {AttrType::kMpUnreachNlri, "MP_UNREACH_NLRI", kOptional, kSessionReset, DecodeMpUnreach,
     EncodeMpUnreach},
    {AttrType::kOrigin, "ORIGIN", kWellKnown, kTreatAsWithdraw, DecodeOrigin, EncodeOrigin},
    {AttrType::kAsPath, "AS_PATH", kWellKnown, kTreatAsWithdraw, DecodeAsPath, EncodeAsPath},
    {AttrType::kNextHop, "NEXT_HOP", kWellKnown, kTreatAsWithdraw, DecodeNextHop, EncodeNextHop},
    {AttrType::kMultiExitDisc, "MULTI_EXIT_DISC", kOptional, kTreatAsWithdraw, DecodeMed,
     EncodeMed},
    {AttrType::kLocalPref, "LOCAL_PREF", kWellKnown, kTreatAsWithdraw, DecodeLocalPref,
     EncodeLocalPref},
    {AttrType::kAtomicAggregate, "ATOMIC_AGGREGATE", kWellKnown, kAttributeDiscard,
     DecodeAtomicAggregate, EncodeAtomicAggregate},
    {AttrType::kAggregator, "AGGREGATOR", kOptionalTransitive, kAttributeDiscard,
     DecodeAggregator, EncodeAggregator},
    {AttrType::kCommunities, "COMMUNITIES", kOptionalTransitive, kTreatAsWithdraw,
     DecodeCommunities, EncodeCommunities},
    {AttrType::kOriginatorId, "ORIGINATOR_ID", kOptional, kTreatAsWithdraw, DecodeOriginatorId,
     EncodeOriginatorId},
    {AttrType::kClusterList, "CLUSTER_LIST", kOptional, kTreatAsWithdraw, DecodeClusterList,
     EncodeClusterList},
    {AttrType::kAs4Path, "AS4_PATH", kOptionalTransitive, kAttributeDiscard, DecodeAs4Path,
     EncodeAs4Path},
    {AttrType::kAs4Aggregator, "AS4_AGGREGATOR", kOptionalTransitive, kAttributeDiscard,
     DecodeAs4Aggregator, EncodeAs4Aggregator},
    {AttrType::kLargeCommunities, "LARGE_COMMUNITIES", kOptionalTransitive, kTreatAsWithdraw,
     DecodeLargeCommunities, EncodeLargeCommunities},
};

constexpr std::array<const AttrRow*, 256> MakeIndex() {
  std::array<const AttrRow*, 256> index{};
  for (const AttrRow& row : kRows) index[static_cast<uint8_t>(row.type)] = &row;
  return index;
}
constexpr std::array<const AttrRow*, 256> kIndex = MakeIndex();

std::vector<uint8_t> Truncated(std::span<const uint8_t> bytes) {
  return std::vector<uint8_t>(bytes.begin(),
                              bytes.begin() + std::min(bytes.size(), kMaxNotificationData));
}

DecodeError AttrError(ErrorAction action, UpdateSubcode subcode, std::string_view name,
                      std::string detail, std::span<const uint8_t> whole) {
  // RFC 4271 §6.3: these subcodes carry the erroneous attribute (type, length and value).
  bool with_data = subcode != UpdateSubcode::kMalformedAsPath &&
                   subcode != UpdateSubcode::kMalformedAttributeList;
  return DecodeError{Notification(subcode, with_data ? Truncated(whole) : std::vector<uint8_t>{}),
                     action, absl::StrCat(std::string(name), ": ", detail)};
}

// RFC 6793 §4.2.3, for an UPDATE from an OLD speaker.
void ApplyAs4(DecodeState& st) {
  PathAttributes& attrs = st.update.attrs;
  if (attrs.aggregator && attrs.aggregator->as != kAsTrans) return;  // AS4_* both ignored
  if (attrs.aggregator && st.as4_aggregator) attrs.aggregator = *st.as4_aggregator;
  if (st.as4_path && attrs.as_path) attrs.as_path = MergeAs4Path(*attrs.as_path, *st.as4_path);
}

}  // namespace

int FamilyOf(AfiSafi afi_safi) {
  if (afi_safi == kIpv4Unicast) return 4;
  if (afi_safi == kIpv6Unicast) return 6;
  return 0;
}

void PutAttrHeader(std::vector<uint8_t>& out, uint8_t flags, AttrType type, size_t length) {
  flags &= static_cast<uint8_t>(kAttrOptional | kAttrTransitive | kAttrPartial);
  if (length > 255) {
    uint8_t b[4] = {static_cast<uint8_t>(flags | kAttrExtendedLength), static_cast<uint8_t>(type),
                    static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length)};
    out.insert(out.end(), b, b + 4);
  } else {
    uint8_t b[3] = {flags, static_cast<uint8_t>(type), static_cast<uint8_t>(length)};
    out.insert(out.end(), b, b + 3);
  }
}

absl::Status ValidateMpNextHop(AfiSafi afi_safi, const NextHop& next_hop) {
  const int family = FamilyOf(afi_safi);
  if (family == 0) {
    return absl::InvalidArgumentError("UPDATE MP_REACH_NLRI: only IPv4/IPv6 unicast supported");
  }
  if (next_hop.address.family != family ||
      (next_hop.link_local && (family != 6 || next_hop.link_local->family != 6))) {
    return absl::InvalidArgumentError(absl::StrCat("UPDATE MP_REACH_NLRI: next hop ",
                                                   next_hop.address.ToString(),
                                                   " does not match IPv", family));
  }
  return absl::OkStatus();
}

size_t MpReachFixedSize(const NextHop& next_hop) {
  size_t nh = next_hop.address.family == 4 ? 4 : (next_hop.link_local ? 32 : 16);
  return 2 + 1 + 1 + nh + 1;
}

void PutMpReachFixed(std::vector<uint8_t>& out, AfiSafi afi_safi, const NextHop& next_hop) {
  Writer w(out);
  w.U16(static_cast<uint16_t>(afi_safi.afi));
  w.U8(static_cast<uint8_t>(afi_safi.safi));
  if (next_hop.address.family == 4) {
    w.U8(4);
    w.Bytes(std::span<const uint8_t>(next_hop.address.bytes.data(), 4));
  } else {
    w.U8(next_hop.link_local ? 32 : 16);
    w.Bytes(next_hop.address.bytes);
    if (next_hop.link_local) w.Bytes(next_hop.link_local->bytes);
  }
  w.U8(0);  // reserved (RFC 4760 §3)
}

std::optional<DecodeError> DecodeAttributes(std::span<const uint8_t> field,
                                            const SessionContext& session, Update& update,
                                            std::vector<net::Prefix>& spare_reach,
                                            std::vector<net::Prefix>& spare_unreach) {
  DecodeState st{session, update, spare_reach, spare_unreach, std::nullopt, std::nullopt, false};
  std::bitset<256> seen;
  Reader r(field);
  while (!r.empty()) {
    const size_t start = r.position();
    uint8_t flags = 0, type = 0;
    size_t length = 0;
    bool header_ok = r.U8(flags) && r.U8(type);
    if (header_ok && (flags & kAttrExtendedLength)) {
      uint16_t l = 0;
      header_ok = r.U16(l);
      length = l;
    } else if (header_ok) {
      uint8_t l = 0;
      header_ok = r.U8(l);
      length = l;
    }
    std::span<const uint8_t> value;
    if (!header_ok || !r.Bytes(length, value)) {
      // RFC 7606 §4: the Total Attribute Length still locates the NLRI, so treat-as-withdraw.
      update.errors.push_back(DecodeError{
          Notification(UpdateSubcode::kMalformedAttributeList), ErrorAction::kTreatAsWithdraw,
          header_ok ? absl::StrCat(std::string(AttrName(type)), " (type ", type, "): length ",
                                   length, " overruns the path attributes by ",
                                   length - r.remaining(), " octets")
                    : "path attributes end inside an attribute header"});
      break;
    }
    const std::span<const uint8_t> whole = field.subspan(start, r.position() - start);
    const AttrRow* row = kIndex[type];

    if (seen[type]) {
      // RFC 7606 §3: keep the first; a repeated MP attribute resets the session.
      if (row && (row->type == AttrType::kMpReachNlri || row->type == AttrType::kMpUnreachNlri)) {
        return DecodeError{Notification(UpdateSubcode::kMalformedAttributeList),
                           ErrorAction::kSessionReset,
                           absl::StrCat(std::string(row->name), " appears more than once")};
      }
      update.errors.push_back(DecodeError{
          Notification(UpdateSubcode::kMalformedAttributeList), ErrorAction::kAttributeDiscard,
          absl::StrCat(std::string(AttrName(type)), " (type ", type,
                       ") repeated: all but the first discarded")});
      continue;
    }
    seen.set(type);

    if (!row) {
      if (!(flags & kAttrOptional)) {  // RFC 4271 §6.3: unrecognized well-known
        return DecodeError{
            Notification(UpdateSubcode::kUnrecognizedWellKnownAttribute, Truncated(whole)),
            ErrorAction::kSessionReset, absl::StrCat("unrecognized well-known attribute ", type)};
      }
      if (flags & kAttrTransitive) {  // kept; the non-transitive ones are quietly dropped
        update.attrs.unknown.push_back(
            RawAttribute{static_cast<uint8_t>(flags & (kAttrOptional | kAttrTransitive |
                                                       kAttrPartial)),
                         type, std::vector<uint8_t>(value.begin(), value.end())});
      }
      continue;
    }

    const uint8_t ot = flags & (kAttrOptional | kAttrTransitive);
    if (ot != row->flags) {
      // RFC 7606 §3: wrong Optional/Transitive bits make the attribute malformed.
      DecodeError error = AttrError(row->malformed, UpdateSubcode::kAttributeFlagsError, row->name,
                                    absl::StrFormat("flags 0x%02x, want 0x%02x", ot, row->flags),
                                    whole);
      if (error.action == ErrorAction::kSessionReset) return error;
      update.errors.push_back(std::move(error));
      continue;
    }
    if (AttrResult bad = row->decode(st, value)) {
      DecodeError error = AttrError(row->malformed, bad->subcode, row->name, bad->detail, whole);
      if (error.action == ErrorAction::kSessionReset) return error;
      update.errors.push_back(std::move(error));
    }
  }
  if (!session.four_octet_as) ApplyAs4(st);
  return std::nullopt;
}

absl::Status EncodeAttributes(const PathAttributes& attrs, const MpReach* reach,
                              const MpUnreach* unreach, const SessionContext& session,
                              std::vector<uint8_t>& out) {
  for (const RawAttribute& raw : attrs.unknown) {
    if (kIndex[raw.type]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "UPDATE: attribute type ", raw.type, " (", std::string(AttrName(raw.type)),
          ") is known and must not be given as raw"));
    }
    if (raw.value.size() > 0xffff) return TooLong(AttrName(raw.type), raw.value.size());
  }
  // Raw attributes with type codes in (low, high], ascending (equal codes in the order given).
  auto put_unknown = [&](int low, int high) {
    int floor = low;
    while (true) {
      int next = 256;
      for (const RawAttribute& raw : attrs.unknown) {
        if (raw.type > floor && raw.type <= high) next = std::min<int>(next, raw.type);
      }
      if (next == 256) return;
      floor = next;
      for (const RawAttribute& raw : attrs.unknown) {
        if (raw.type != next) continue;
        uint8_t flags = raw.flags;
        // RFC 4271 §5: an unrecognized optional transitive attribute is passed on marked Partial.
        if ((flags & kAttrOptional) && (flags & kAttrTransitive)) flags |= kAttrPartial;
        PutAttrHeader(out, flags, static_cast<AttrType>(raw.type), raw.value.size());
        out.insert(out.end(), raw.value.begin(), raw.value.end());
      }
    }
  };
  EncodeState st{attrs, reach, unreach, session, out};
  int last = 0;
  for (const AttrRow& row : kRows) {
    int type = static_cast<uint8_t>(row.type);
    if (row.type != AttrType::kMpReachNlri && row.type != AttrType::kMpUnreachNlri) {
      put_unknown(last, type);
      last = type;
    }
    if (absl::Status s = row.encode(st); !s.ok()) return s;
  }
  put_unknown(last, 255);
  return absl::OkStatus();
}

}  // namespace calico::birdd::wire::internal
