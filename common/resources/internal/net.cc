#include "common/resources/internal/net.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace calico::resources::internal {

std::optional<IpAddr> ParseIp(std::string_view text) {
  std::string s(text);
  IpAddr ip;
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

std::optional<Cidr> ParseCidrOrIp(std::string_view text) {
  size_t slash = text.find('/');
  std::optional<IpAddr> ip = ParseIp(text.substr(0, slash));
  if (!ip) return std::nullopt;
  Cidr cidr{*ip, ip->Bits()};
  if (slash == std::string_view::npos) return cidr;
  std::string_view len = text.substr(slash + 1);
  if (len.empty() || len.size() > 3) return std::nullopt;
  int n = 0;
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
  if (ec != std::errc() || end != len.data() + len.size() || n < 0 || n > ip->Bits()) {
    return std::nullopt;
  }
  if (len.size() > 1 && len[0] == '0') return std::nullopt;  // Go rejects "/08"
  cidr.len = n;
  return cidr;
}

std::string FormatIp(const IpAddr& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(ip.family == 4 ? AF_INET : AF_INET6, ip.bytes.data(), buf, sizeof(buf));
  return buf;
}

std::string FormatCidr(const Cidr& cidr) { return FormatIp(cidr.addr) + "/" + std::to_string(cidr.len); }

Cidr Masked(const Cidr& cidr) {
  Cidr out = cidr;
  for (int i = 0; i < out.addr.Bits() / 8; ++i) {
    int keep = std::clamp(cidr.len - i * 8, 0, 8);
    out.addr.bytes[i] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  return out;
}

bool Contains(const Cidr& outer, const IpAddr& ip) {
  if (outer.addr.family != ip.family) return false;
  Cidr probe{ip, outer.len};
  return Masked(probe).addr.bytes == Masked(outer).addr.bytes;
}

bool Overlaps(const Cidr& a, const Cidr& b) {
  if (a.addr.family != b.addr.family) return false;
  return a.len <= b.len ? Contains(a, b.addr) : Contains(b, a.addr);
}

}  // namespace calico::resources::internal
