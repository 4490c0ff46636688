#include "common/net/ip.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace calico::net {

std::string IpAddress::ToString() const { return FormatIp(*this); }
std::string Prefix::ToString() const { return FormatCidr(*this); }

std::optional<IpAddress> ParseIp(std::string_view text) {
  std::string s(text);
  IpAddress ip;
  if (s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) != 1) return std::nullopt;
    ip.family = 4;
    return ip;
  }
  if (s.find('%') != std::string::npos) return std::nullopt;  // zones never belong in a resource
  if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) != 1) return std::nullopt;
  ip.family = 6;
  return ip;
}

std::optional<Prefix> ParseCidrOrIp(std::string_view text) {
  size_t slash = text.find('/');
  std::optional<IpAddress> ip = ParseIp(text.substr(0, slash));
  if (!ip) return std::nullopt;
  Prefix prefix{*ip, ip->Bits()};
  if (slash == std::string_view::npos) return prefix;
  std::string_view len = text.substr(slash + 1);
  if (len.empty() || len.size() > 3) return std::nullopt;
  int n = 0;
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
  if (ec != std::errc() || end != len.data() + len.size() || n < 0 || n > ip->Bits()) {
    return std::nullopt;
  }
  if (len.size() > 1 && len[0] == '0') return std::nullopt;  // Go rejects "/08"
  prefix.len = n;
  return prefix;
}

std::optional<Prefix> ParsePrefix(std::string_view text) {
  if (text.find('/') == std::string_view::npos) return std::nullopt;
  return ParseCidrOrIp(text);
}

std::string FormatIp(const IpAddress& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(ip.family == 4 ? AF_INET : AF_INET6, ip.bytes.data(), buf, sizeof(buf));
  return buf;
}

std::string FormatCidr(const Prefix& prefix) {
  return FormatIp(prefix.addr) + "/" + std::to_string(prefix.len);
}

Prefix Masked(const Prefix& prefix) {
  Prefix out = prefix;
  for (int i = 0; i < out.addr.Bits() / 8; ++i) {
    int keep = std::clamp(prefix.len - i * 8, 0, 8);
    out.addr.bytes[i] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  return out;
}

bool Contains(const Prefix& outer, const IpAddress& ip) {
  if (outer.addr.family != ip.family) return false;
  Prefix probe{ip, outer.len};
  return Masked(probe).addr.bytes == Masked(outer).addr.bytes;
}

bool Contains(const Prefix& outer, const Prefix& inner) {
  return inner.len >= outer.len && Contains(outer, inner.addr);
}

bool Overlaps(const Prefix& a, const Prefix& b) {
  if (a.addr.family != b.addr.family) return false;
  return a.len <= b.len ? Contains(a, b.addr) : Contains(b, a.addr);
}

Uint128 ToInteger(const IpAddress& ip) {
  Uint128 v = 0;
  for (int i = 0; i < ip.Bits() / 8; ++i) v = (v << 8) | ip.bytes[i];
  return v;
}

IpAddress FromInteger(int family, Uint128 value) {
  IpAddress ip;
  ip.family = family;
  for (int i = ip.Bits() / 8 - 1; i >= 0; --i) {
    ip.bytes[i] = static_cast<uint8_t>(value & 0xff);
    value >>= 8;
  }
  return ip;
}

IpAddress Add(const IpAddress& ip, Uint128 offset) {
  return FromInteger(ip.family, ToInteger(ip) + offset);
}

Uint128 Size(const Prefix& prefix) {
  int host_bits = prefix.addr.Bits() - prefix.len;
  if (host_bits >= 127) return Uint128(1) << 127;
  return Uint128(1) << host_bits;
}

}  // namespace calico::net
