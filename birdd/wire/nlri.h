#pragma once
// birdd/wire internal: the <length, prefix> NLRI encoding (RFC 4271 §4.3, RFC 4760 §5) shared
// by the Withdrawn Routes and NLRI fields and the MP attributes. No ADD-PATH identifiers.

#include <cstdint>
#include <span>
#include <vector>

#include "birdd/wire/buffer.h"
#include "common/net/ip.h"

namespace calico::birdd::wire::internal {

inline int FamilyBits(int family) { return family == 4 ? 32 : 128; }

// Appends the prefixes in `bytes` to `out`, host bits cleared. False when a length exceeds the
// family's width or a prefix runs past the end (RFC 7606 §5.3: the NLRI is unusable).
inline bool DecodePrefixes(std::span<const uint8_t> bytes, int family, std::vector<net::Prefix>& out) {
  const int max_bits = FamilyBits(family);
  const uint8_t* p = bytes.data();
  const uint8_t* end = p + bytes.size();
  while (p < end) {
    int len = *p++;
    if (len > max_bits) return false;
    size_t n = (static_cast<size_t>(len) + 7) / 8;
    if (static_cast<size_t>(end - p) < n) return false;
    net::Prefix& prefix = out.emplace_back();
    prefix.addr.family = family;
    prefix.len = len;
    if (n > 0) {
      std::memcpy(prefix.addr.bytes.data(), p, n);
      if (len % 8) prefix.addr.bytes[n - 1] &= static_cast<uint8_t>(0xff00 >> (len % 8));
    }
    p += n;
  }
  return true;
}

inline size_t EncodedPrefixSize(const net::Prefix& prefix) {
  return 1 + (static_cast<size_t>(prefix.len) + 7) / 8;
}

inline bool ValidPrefix(const net::Prefix& prefix, int family) {
  return prefix.addr.family == family && prefix.len >= 0 && prefix.len <= FamilyBits(family);
}

// Caller has checked ValidPrefix. Host bits are cleared on the wire.
inline void EncodePrefix(const net::Prefix& prefix, std::vector<uint8_t>& out) {
  size_t n = (static_cast<size_t>(prefix.len) + 7) / 8;
  size_t at = out.size();
  out.resize(at + 1 + n);
  out[at] = static_cast<uint8_t>(prefix.len);
  if (n > 0) {
    std::memcpy(&out[at + 1], prefix.addr.bytes.data(), n);
    if (prefix.len % 8) out[at + n] &= static_cast<uint8_t>(0xff00 >> (prefix.len % 8));
  }
}

}  // namespace calico::birdd::wire::internal
