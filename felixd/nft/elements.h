#pragma once
// felixd/nft/elements.h — set element keys between our text form and the kernel's bytes.
// Pure. Shared by MnlNftables (encode for netlink, decode read-backs) and FakeNftables
// (canonical keys), so both agree on what "the same element" is.
// Canonical text: addresses as FormatIp; interval sets hold prefixes ("10.65.0.0/16", a full
// prefix as the bare address) or port ranges ("8000-9000", one port as "80"); a range that is no
// prefix (only a hand edit makes one) reads back as "a-b"; concatenations join with " . ";
// protocols are numbers.
// Kernel layout: each field of a concatenation is padded to 4 bytes; ifname is 16 bytes,
// NUL-padded; ports and addresses in network byte order; an interval [a, b] is a start element
// a and an end element b+1 flagged NFT_SET_ELEM_INTERVAL_END (none when b is the maximum).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "felixd/nft/nftables.h"

namespace calico::felixd::nft {

int KeyLength(KeyType type);        // bytes in the kernel
uint32_t NftKeyType(KeyType type);  // nft's datatype id (concatenations: 6 bits per field)
std::optional<KeyType> KeyTypeFromNft(uint32_t nft_type, int length);

// The canonical form of `key` for a set of `type`, or InvalidArgument naming the key.
absl::StatusOr<std::string> CanonicalKey(KeyType type, bool interval, std::string_view key);

// Bytes of a non-interval key.
absl::StatusOr<std::string> EncodeKey(KeyType type, std::string_view key);
std::string DecodeKey(KeyType type, std::string_view bytes);

// An interval key: the start bytes and, unless the range runs to the maximum, the end bytes
// (one past the last).
struct IntervalBytes {
  std::string start;
  std::optional<std::string> end;
};
absl::StatusOr<IntervalBytes> EncodeInterval(KeyType type, std::string_view key);
// Start and end elements as the kernel dumps them (bytes, is-end flag), in any order → keys.
std::vector<std::string> JoinIntervals(KeyType type,
                                       std::vector<std::pair<std::string, bool>> elements);

// The inclusive range of an interval key, as big-endian byte strings of equal length.
absl::StatusOr<std::pair<std::string, std::string>> IntervalRange(KeyType type,
                                                                  std::string_view key);

}  // namespace calico::felixd::nft
