#pragma once
// common/net: IP address and prefix value types — parse, canonical text, containment and the
// offset arithmetic IPAM needs. No syscalls (inet_pton/ntop are pure library calls).

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace calico::net {

struct IpAddress {
  int family = 4;                   // 4 or 6
  std::array<uint8_t, 16> bytes{};  // IPv4 uses the first 4

  int Bits() const { return family == 4 ? 32 : 128; }
  std::string ToString() const;
  auto operator<=>(const IpAddress&) const = default;
};

struct Prefix {
  IpAddress addr;
  int len = 0;

  std::string ToString() const;
  auto operator<=>(const Prefix&) const = default;
};

std::optional<IpAddress> ParseIp(std::string_view text);
// "10.0.0.0/8" only.
std::optional<Prefix> ParsePrefix(std::string_view text);
// "10.0.0.0/8", or a bare address meaning a full-length prefix (upstream's ParseCIDROrIP).
std::optional<Prefix> ParseCidrOrIp(std::string_view text);
// Canonical text: Go's net.IP.String() (dotted quad; RFC 5952 for IPv6).
std::string FormatIp(const IpAddress& ip);
std::string FormatCidr(const Prefix& prefix);
// Host bits cleared.
Prefix Masked(const Prefix& prefix);
bool Contains(const Prefix& outer, const IpAddress& ip);
bool Contains(const Prefix& outer, const Prefix& inner);
bool Overlaps(const Prefix& a, const Prefix& b);

// Offset arithmetic (wraps silently beyond the family's width: callers stay inside a prefix).
using Uint128 = unsigned __int128;
Uint128 ToInteger(const IpAddress& ip);
IpAddress FromInteger(int family, Uint128 value);
IpAddress Add(const IpAddress& ip, Uint128 offset);
// Number of addresses in the prefix, saturating at 2^127 for the largest IPv6 prefixes.
Uint128 Size(const Prefix& prefix);

}  // namespace calico::net
