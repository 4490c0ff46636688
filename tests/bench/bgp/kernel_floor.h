#pragma once
// tests/bench/bgp: the kernel's own floor for installing routes — RTM_NEWROUTEs packed many to
// a sendmsg buffer on a raw rtnetlink socket, no per-route ack (the kernel still reports
// errors), one ack at the very end. Nothing of ours in between: what any daemon's FIB writer
// is measured against.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net/ip.h"

namespace calico::birdd::bench {

struct FloorResult {
  int64_t elapsed_ns = 0;
  size_t errors = 0;
};

// Inserts `prefixes` via `gateway` on device `ifindex`, proto bird, main table, inside the
// namespace at `netns_path` (from a thread of its own).
absl::StatusOr<FloorResult> RawBatchedInsert(const std::string& netns_path,
                                             const std::vector<net::Prefix>& prefixes,
                                             const net::IpAddress& gateway, int ifindex);

}  // namespace calico::birdd::bench
