#include "felixd/nft/elements.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/net/ip.h"

namespace calico::felixd::nft {
namespace {

// nft's datatype ids (src/datatype.h) and concatenation width.
constexpr uint32_t kTypeIpv4 = 7, kTypeIpv6 = 8, kTypeProto = 12, kTypeService = 13,
                   kTypeDevgroup = 35, kTypeIfname = 41;
constexpr int kTypeBits = 6;

absl::Status Bad(KeyType type, std::string_view key, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("set key \"", std::string(key), "\" for type ",
                                                 std::string(KeyTypeName(type)), ": ",
                                                 std::string(why)));
}

std::vector<std::string> Fields(std::string_view key) {
  std::vector<std::string> out;
  for (absl::string_view f : absl::StrSplit(absl::string_view(key.data(), key.size()), " . ")) {
    out.emplace_back(f);
  }
  return out;
}

std::optional<uint32_t> ParseUint(std::string_view s, uint32_t max) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > max || s.empty()) return std::nullopt;
  return v;
}

std::optional<std::string> AddrBytes(std::string_view s, int family) {
  auto ip = net::ParseIp(s);
  if (!ip || ip->family != family) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(ip->bytes.data()), family == 4 ? 4 : 16);
}

std::string AddrText(std::string_view bytes) {
  net::IpAddress ip;
  ip.family = bytes.size() == 4 ? 4 : 6;
  std::copy(bytes.begin(), bytes.end(), ip.bytes.begin());
  return net::FormatIp(ip);
}

std::optional<std::string> IfnameBytes(std::string_view s) {
  if (s.empty() || s.size() > 15 || s.find('\0') != std::string_view::npos) return std::nullopt;
  std::string out(s);
  out.resize(16, '\0');
  return out;
}

std::string Be16(uint32_t v) { return std::string{char(v >> 8), char(v & 0xff)}; }
uint32_t FromBe16(std::string_view b) {
  return (uint32_t(uint8_t(b[0])) << 8) | uint8_t(b[1]);
}

// Increments a big-endian byte string; false on overflow (it was all ones).
bool Increment(std::string& bytes) {
  for (size_t i = bytes.size(); i-- > 0;) {
    if (++reinterpret_cast<unsigned char&>(bytes[i]) != 0) return true;
  }
  return false;
}
void Decrement(std::string& bytes) {
  for (size_t i = bytes.size(); i-- > 0;) {
    if (reinterpret_cast<unsigned char&>(bytes[i])-- != 0) return;
  }
}

// The prefix length if [lo, hi] is exactly one prefix, else -1.
int PrefixLength(std::string_view lo, std::string_view hi) {
  int bits = int(lo.size()) * 8;
  int len = 0;
  while (len < bits) {
    int byte = len / 8, bit = 7 - len % 8;
    if (((uint8_t(lo[byte]) >> bit) & 1) != ((uint8_t(hi[byte]) >> bit) & 1)) break;
    ++len;
  }
  for (int i = len; i < bits; ++i) {
    int byte = i / 8, bit = 7 - i % 8;
    if (((uint8_t(lo[byte]) >> bit) & 1) != 0 || ((uint8_t(hi[byte]) >> bit) & 1) != 1) return -1;
  }
  return len;
}

std::string RangeText(KeyType type, const std::string& lo, const std::string& hi) {
  if (type == KeyType::kPort) {
    uint32_t a = FromBe16(lo), b = FromBe16(hi);
    return a == b ? absl::StrCat(a) : absl::StrCat(a, "-", b);
  }
  int len = PrefixLength(lo, hi);
  if (len == int(lo.size()) * 8) return AddrText(lo);
  if (len >= 0) return absl::StrCat(AddrText(lo), "/", len);
  return absl::StrCat(AddrText(lo), "-", AddrText(hi));
}

}  // namespace

std::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kIpv4:
      return "ipv4_addr";
    case KeyType::kIpv6:
      return "ipv6_addr";
    case KeyType::kIfname:
      return "ifname";
    case KeyType::kIfnameIpv4:
      return "ifname . ipv4_addr";
    case KeyType::kIfnameIpv6:
      return "ifname . ipv6_addr";
    case KeyType::kIpv4ProtoPort:
      return "ipv4_addr . inet_proto . inet_service";
    case KeyType::kIpv6ProtoPort:
      return "ipv6_addr . inet_proto . inet_service";
    case KeyType::kPort:
      return "inet_service";
    case KeyType::kDevgroup:
      return "devgroup";
  }
  return "?";
}

int KeyLength(KeyType type) {
  switch (type) {
    case KeyType::kIpv4:
      return 4;
    case KeyType::kIpv6:
      return 16;
    case KeyType::kIfname:
      return 16;
    case KeyType::kIfnameIpv4:
      return 20;
    case KeyType::kIfnameIpv6:
      return 32;
    case KeyType::kIpv4ProtoPort:
      return 12;
    case KeyType::kIpv6ProtoPort:
      return 24;
    case KeyType::kPort:
      return 2;
    case KeyType::kDevgroup:
      return 4;
  }
  return 0;
}

uint32_t NftKeyType(KeyType type) {
  auto cat = [](std::initializer_list<uint32_t> ts) {
    uint32_t out = 0;
    for (uint32_t t : ts) out = (out << kTypeBits) | t;
    return out;
  };
  switch (type) {
    case KeyType::kIpv4:
      return kTypeIpv4;
    case KeyType::kIpv6:
      return kTypeIpv6;
    case KeyType::kIfname:
      return kTypeIfname;
    case KeyType::kIfnameIpv4:
      return cat({kTypeIfname, kTypeIpv4});
    case KeyType::kIfnameIpv6:
      return cat({kTypeIfname, kTypeIpv6});
    case KeyType::kIpv4ProtoPort:
      return cat({kTypeIpv4, kTypeProto, kTypeService});
    case KeyType::kIpv6ProtoPort:
      return cat({kTypeIpv6, kTypeProto, kTypeService});
    case KeyType::kPort:
      return kTypeService;
    case KeyType::kDevgroup:
      return kTypeDevgroup;
  }
  return 0;
}

std::optional<KeyType> KeyTypeFromNft(uint32_t nft_type, int length) {
  for (KeyType t : {KeyType::kIpv4, KeyType::kIpv6, KeyType::kIfname, KeyType::kIfnameIpv4,
                    KeyType::kIfnameIpv6, KeyType::kIpv4ProtoPort, KeyType::kIpv6ProtoPort,
                    KeyType::kPort, KeyType::kDevgroup}) {
    if (NftKeyType(t) == nft_type && KeyLength(t) == length) return t;
  }
  return std::nullopt;
}

absl::StatusOr<std::string> EncodeKey(KeyType type, std::string_view key) {
  std::vector<std::string> f = Fields(key);
  auto need = [&](size_t n) { return f.size() == n; };
  switch (type) {
    case KeyType::kIpv4:
    case KeyType::kIpv6: {
      auto b = need(1) ? AddrBytes(f[0], type == KeyType::kIpv4 ? 4 : 6) : std::nullopt;
      if (!b) return Bad(type, key, "not an address");
      return *b;
    }
    case KeyType::kIfname: {
      auto b = need(1) ? IfnameBytes(f[0]) : std::nullopt;
      if (!b) return Bad(type, key, "not an interface name");
      return *b;
    }
    case KeyType::kIfnameIpv4:
    case KeyType::kIfnameIpv6: {
      if (!need(2)) return Bad(type, key, "want <ifname> . <address>");
      auto n = IfnameBytes(f[0]);
      auto a = AddrBytes(f[1], type == KeyType::kIfnameIpv4 ? 4 : 6);
      if (!n || !a) return Bad(type, key, "want <ifname> . <address>");
      return *n + *a;
    }
    case KeyType::kIpv4ProtoPort:
    case KeyType::kIpv6ProtoPort: {
      if (!need(3)) return Bad(type, key, "want <address> . <protocol number> . <port>");
      auto a = AddrBytes(f[0], type == KeyType::kIpv4ProtoPort ? 4 : 6);
      auto proto = ParseUint(f[1], 255);
      auto port = ParseUint(f[2], 65535);
      if (!a || !proto || !port) return Bad(type, key, "want <address> . <protocol number> . <port>");
      std::string out = *a;
      out += std::string{char(*proto), 0, 0, 0};
      out += Be16(*port) + std::string(2, '\0');
      return out;
    }
    case KeyType::kPort: {
      auto port = need(1) ? ParseUint(f[0], 65535) : std::nullopt;
      if (!port) return Bad(type, key, "not a port");
      return Be16(*port);
    }
    case KeyType::kDevgroup: {
      auto v = need(1) ? ParseUint(f[0], 0xffffffffu) : std::nullopt;
      if (!v) return Bad(type, key, "not a 32-bit link group");
      uint32_t host = *v;  // the kernel compares IFLA_GROUP in host byte order
      return std::string(reinterpret_cast<const char*>(&host), 4);
    }
  }
  return Bad(type, key, "unknown key type");
}

std::string DecodeKey(KeyType type, std::string_view b) {
  if (int(b.size()) != KeyLength(type)) return absl::StrCat("<", b.size(), " bytes>");
  auto ifname = [](std::string_view n) { return std::string(n.substr(0, n.find('\0'))); };
  switch (type) {
    case KeyType::kIpv4:
    case KeyType::kIpv6:
      return AddrText(b);
    case KeyType::kIfname:
      return ifname(b);
    case KeyType::kIfnameIpv4:
    case KeyType::kIfnameIpv6:
      return absl::StrCat(ifname(b.substr(0, 16)), " . ", AddrText(b.substr(16)));
    case KeyType::kIpv4ProtoPort:
    case KeyType::kIpv6ProtoPort: {
      size_t a = type == KeyType::kIpv4ProtoPort ? 4 : 16;
      return absl::StrCat(AddrText(b.substr(0, a)), " . ", uint8_t(b[a]), " . ",
                          FromBe16(b.substr(a + 4, 2)));
    }
    case KeyType::kPort:
      return absl::StrCat(FromBe16(b));
    case KeyType::kDevgroup: {
      uint32_t host = 0;
      std::memcpy(&host, b.data(), 4);
      return absl::StrCat(host);
    }
  }
  return "?";
}

absl::StatusOr<std::pair<std::string, std::string>> IntervalRange(KeyType type,
                                                                  std::string_view key) {
  if (type == KeyType::kPort) {
    size_t dash = key.find('-');
    auto lo = ParseUint(key.substr(0, dash), 65535);
    auto hi = dash == std::string_view::npos ? lo : ParseUint(key.substr(dash + 1), 65535);
    if (!lo || !hi || *hi < *lo) return Bad(type, key, "not a port or port range");
    return std::pair{Be16(*lo), Be16(*hi)};
  }
  if (type != KeyType::kIpv4 && type != KeyType::kIpv6) {
    return Bad(type, key, "intervals are only supported for addresses and ports");
  }
  int family = type == KeyType::kIpv4 ? 4 : 6;
  size_t dash = key.find('-');
  if (dash != std::string_view::npos) {  // "a-b", as read back from a hand edit
    auto lo = AddrBytes(key.substr(0, dash), family), hi = AddrBytes(key.substr(dash + 1), family);
    if (!lo || !hi || *hi < *lo) return Bad(type, key, "not an address range");
    return std::pair{*lo, *hi};
  }
  auto prefix = net::ParseCidrOrIp(key);
  if (!prefix || prefix->addr.family != family) return Bad(type, key, "not a prefix");
  net::Prefix p = net::Masked(*prefix);
  size_t n = family == 4 ? 4 : 16;
  std::string lo(reinterpret_cast<const char*>(p.addr.bytes.data()), n);
  std::string hi = lo;
  for (int i = p.len; i < int(n) * 8; ++i) hi[i / 8] = char(uint8_t(hi[i / 8]) | (0x80 >> (i % 8)));
  return std::pair{lo, hi};
}

absl::StatusOr<std::string> CanonicalKey(KeyType type, bool interval, std::string_view key) {
  if (!interval) {
    auto bytes = EncodeKey(type, key);
    if (!bytes.ok()) return bytes.status();
    return DecodeKey(type, *bytes);
  }
  auto range = IntervalRange(type, key);
  if (!range.ok()) return range.status();
  return RangeText(type, range->first, range->second);
}

absl::StatusOr<IntervalBytes> EncodeInterval(KeyType type, std::string_view key) {
  auto range = IntervalRange(type, key);
  if (!range.ok()) return range.status();
  IntervalBytes out{range->first, range->second};
  if (!Increment(*out.end)) out.end.reset();
  return out;
}

std::vector<std::string> JoinIntervals(KeyType type,
                                       std::vector<std::pair<std::string, bool>> elements) {
  // Sorted by key, an end before a start at the same key (adjacent intervals).
  std::sort(elements.begin(), elements.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return a.second > b.second;
  });
  std::vector<std::string> out;
  std::optional<std::string> open;
  for (const auto& [key, is_end] : elements) {
    if (is_end) {
      if (!open) continue;  // nft's leading 0 end marker, or a stray end
      std::string last = key;
      Decrement(last);
      out.push_back(RangeText(type, *open, last));
      open.reset();
    } else {
      if (open) out.push_back(RangeText(type, *open, *open));  // a start without an end
      open = key;
    }
  }
  if (open) {
    std::string max(open->size(), '\xff');
    out.push_back(RangeText(type, *open, max));
  }
  return out;
}

}  // namespace calico::felixd::nft
