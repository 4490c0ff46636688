#pragma once
// ipamd/allocator/check.h — IPAM consistency, judged against what is really in use.
// Pure: the caller loads blocks, handles and the in-use set (LoadInUse in check_load.h reads
// WorkloadEndpoints and Node tunnel addresses from the datastore). Used by `calicoctl ipam
// check`, ipamd's Check RPC, and ipamd's leak collector (which re-checks before releasing).

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net/ip.h"
#include "ipamd/allocator/block.h"

namespace calico::ipamd {

// Who uses an address, by the datastore's account.
struct InUse {
  // address → "WorkloadEndpoint ns/name" or "Node node1 (vxlan tunnel)"
  std::map<net::IpAddress, std::string> ips;
  std::set<std::string> nodes;  // Node resources that exist
};

struct CheckReport {
  struct Allocation {
    net::IpAddress ip;
    net::Prefix block;
    std::string handle_id;
    std::map<std::string, std::string> attributes;
    uint64_t sequence_number = 0;  // quote it when releasing (stale-safe)
  };
  std::vector<Allocation> allocated_not_in_use;  // leak candidates
  struct Unallocated {
    net::IpAddress ip;
    std::string used_by;
  };
  std::vector<Unallocated> in_use_not_allocated;
  struct HandleMismatch {
    std::string handle_id;
    int handle_count = 0;  // what the handle record says
    int block_count = 0;   // what the blocks say
  };
  std::vector<HandleMismatch> handles_mismatched;  // incl. handles without any address
  struct InvalidBlock {
    net::Prefix block;
    std::string problem;  // "affine to node2, which does not exist", "ordinal 5 both free and allocated", ...
  };
  std::vector<InvalidBlock> invalid_blocks;

  bool Clean() const {
    return allocated_not_in_use.empty() && in_use_not_allocated.empty() && handles_mismatched.empty() &&
           invalid_blocks.empty();
  }
};

CheckReport Check(const std::vector<Block>& blocks, const std::vector<Handle>& handles, const InUse& in_use);

// The report as JSON (calicoctl ipam check -o report.json; ipam release --from-report reads it).
std::string ReportToJson(const CheckReport& report);
absl::StatusOr<CheckReport> ReportFromJson(std::string_view json);

}  // namespace calico::ipamd
