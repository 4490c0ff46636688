#pragma once
// Minimal IP/CIDR value types for resource validation: parse, canonical text, containment.
// Private to common/resources (common/net owns the project-wide types; this keeps resources
// free of a dependency it only needs for a handful of checks).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace calico::resources::internal {

struct IpAddr {
  int family = 4;  // 4 or 6
  std::array<uint8_t, 16> bytes{};  // IPv4 uses the first 4
  int Bits() const { return family == 4 ? 32 : 128; }
};

struct Cidr {
  IpAddr addr;
  int len = 0;
};

std::optional<IpAddr> ParseIp(std::string_view text);
// "10.0.0.0/8", or a bare address meaning a full-length prefix (upstream's ParseCIDROrIP).
std::optional<Cidr> ParseCidrOrIp(std::string_view text);
// Canonical text: Go's net.IP.String() (dotted quad; RFC 5952 for IPv6).
std::string FormatIp(const IpAddr& ip);
std::string FormatCidr(const Cidr& cidr);
Cidr Masked(const Cidr& cidr);
bool Contains(const Cidr& outer, const IpAddr& ip);
bool Overlaps(const Cidr& a, const Cidr& b);

}  // namespace calico::resources::internal
