#pragma once
// ipamd/allocator/block.h — the IPAM data model, in upstream Calico's etcd layout and JSON, so
// an operator who knows Calico recognises every key and field:
//   /calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26       an allocation block (the CAS unit)
//   /calico/ipam/v2/host/<node>/ipv4/block/10.65.0.0-26      a node's affinity to a block
//   /calico/ipam/v2/handle/<handle id>                       a handle's refcounts per block
// Pure: JSON <-> structs and block arithmetic; no datastore, no clock.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net/ip.h"

namespace calico::ipamd {

inline constexpr std::string_view kIpamPrefix = "/calico/ipam/v2/";

// What an allocation is for; recorded in the block so `ipam check` and operators can tell.
struct AllocationAttributes {
  std::string handle_id;                       // "k8s-pod-network.<containerID>", "vxlan-tunnel-addr-<node>"
  std::map<std::string, std::string> secondary;  // namespace, pod, node, type, timestamp
  bool operator==(const AllocationAttributes&) const = default;
};

struct Block {
  net::Prefix cidr;
  std::optional<std::string> affinity;  // "host:<node>"; empty when unaffine (borrowable only)
  // One entry per ordinal: index into `attributes`, or nullopt when free.
  std::vector<std::optional<int>> allocations;
  // Free ordinals, FIFO: allocate from the front, release to the back, so the address free for
  // longest is reused first (a fresh block lists them in order).
  std::vector<int> unallocated;
  std::vector<AllocationAttributes> attributes;
  bool deleted = false;  // being released; treated as absent by allocation
  // Bumped on every write of the block. An allocation records the value it was made at, so a
  // release quoting an older value (a stale request) is refused rather than freeing a newer
  // owner's address.
  uint64_t sequence_number = 0;
  std::map<int, uint64_t> sequence_number_for_allocation;

  // A fresh, empty block for `cidr`.
  static Block Empty(const net::Prefix& cidr, std::optional<std::string> affinity);

  int NumAddresses() const { return static_cast<int>(allocations.size()); }
  int NumFree() const { return static_cast<int>(unallocated.size()); }
  bool Empty() const { return NumFree() == NumAddresses(); }
  std::optional<int> OrdinalOf(const net::IpAddress& ip) const;  // nullopt if outside
  net::IpAddress AddressOf(int ordinal) const;
  // Node of the affinity ("host:node1" → "node1"), or empty.
  std::string AffineNode() const;

  // Mutations (pure). The caller bumps `sequence_number` once per write of the block *before*
  // mutating, so every allocation made by that write records the block's new value.
  //
  // Takes up to `n` ordinals from the front of the FIFO, skipping addresses inside `reserved`
  // (they keep their place in the list). Returns the ordinals taken, in order.
  std::vector<int> AutoAssign(int n, const AllocationAttributes& attrs,
                              const std::vector<net::Prefix>& reserved);
  // A specific ordinal: AlreadyExists if allocated, OutOfRange if outside the block.
  absl::Status Assign(int ordinal, const AllocationAttributes& attrs);
  // Frees an allocated ordinal (a free one is left alone) and appends it to the FIFO; drops
  // attributes nothing refers to any more.
  void Release(int ordinal);
  // Free ordinals whose address is not reserved.
  int NumFreeUsable(const std::vector<net::Prefix>& reserved) const;
  // Allocated ordinals whose attributes carry `handle_id`, ascending.
  std::vector<int> OrdinalsOfHandle(std::string_view handle_id) const;
  // Attributes of an allocated ordinal, or nullptr when free.
  const AllocationAttributes* AttributesOf(int ordinal) const;
  // The block sequence number the ordinal was allocated at (0 for blocks written before
  // per-allocation numbers existed, as upstream).
  uint64_t SequenceNumberOf(int ordinal) const;

  bool operator==(const Block&) const = default;
};

enum class AffinityState { kPending, kConfirmed, kPendingDeletion };

struct BlockAffinity {
  AffinityState state = AffinityState::kPending;
  bool deleted = false;
  bool operator==(const BlockAffinity&) const = default;
};

struct Handle {
  std::string handle_id;
  std::map<std::string, int> blocks;  // block CIDR text → addresses this handle holds there
  bool deleted = false;
  bool operator==(const Handle&) const = default;
};

// Keys.
std::string BlockKey(const net::Prefix& cidr);                      // .../assignment/ipv4/block/10.65.0.0-26
std::string BlockPrefix(int family);                                // .../assignment/ipv4/block/
std::string AffinityKey(std::string_view node, const net::Prefix& cidr);
std::string AffinityPrefix(std::string_view node);                  // /calico/ipam/v2/host/<node>/
std::string HandleKey(std::string_view handle_id);
std::string HandlePrefix();
// Parses the CIDR out of a block or affinity key ("10.65.0.0-26" at the end).
std::optional<net::Prefix> CidrFromKey(std::string_view key);

// JSON as upstream stores it (field names: cidr, affinity, allocations, unallocated,
// attributes[{handle_id, secondary}], deleted, sequenceNumber, sequenceNumberForAllocation;
// affinity: state, deleted; handle: handleID, block, deleted).
std::string EncodeBlock(const Block& block);
absl::StatusOr<Block> DecodeBlock(std::string_view json);
std::string EncodeAffinity(const BlockAffinity& affinity);
absl::StatusOr<BlockAffinity> DecodeAffinity(std::string_view json);
std::string EncodeHandle(const Handle& handle);
absl::StatusOr<Handle> DecodeHandle(std::string_view json);

}  // namespace calico::ipamd
