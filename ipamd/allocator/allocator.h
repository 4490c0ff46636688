#pragma once
// ipamd/allocator: Calico IPAM semantics over a Datastore — pools, affine blocks, handles,
// borrowing, dual stack. The one writer of /calico/ipam/v2/ (ipamd links it; calicoctl ipam
// uses it for reads and operator releases, which are CAS writes like any other).
// Invariants:
//  - An address is held by at most one handle: blocks are the CAS unit; every change of a block
//    is one compare-and-swap on its mod revision, retried (bounded) on Aborted, re-reading.
//  - No address is lost: a block write and the handle records it changes are one atomic
//    Datastore::Commit (assignment: block + handle create/update; release: block + handle
//    update/delete), so a block never holds an allocation its handle record lacks. Data left by
//    older versions, which wrote the block first and the handle second, may still have such
//    allocations (a crash between the two writes): Check() reports them and ReleaseByHandle
//    still frees them — it releases the blocks the record names and scans every block when the
//    record is missing, when a block holds a different count than the record says, or when a
//    block this process has cached holds the handle but is not named.
//  - A release quoting a stale sequence number is refused (FailedPrecondition).
//  - Affinities are claimed pending → block created → confirmed; pending counts as absent.
// Errors: InvalidArgument (bad request: unknown pool, malformed CIDR, address outside every
// pool), ResourceExhausted (no room; the message names the pools and the node), AlreadyExists
// (AssignIP of a used address), Unavailable (datastore), Aborted (retries exhausted).

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/datastore/datastore.h"
#include "common/net/ip.h"
#include "ipamd/allocator/block.h"

namespace calico::ipamd {

// The slice of an IPPool the allocator needs (read from IPPool resources by the caller or by
// LoadPools; kept as plain values so the allocator stays testable without resources).
struct Pool {
  std::string name;
  net::Prefix cidr;
  int block_size = 26;
  bool disabled = false;
  std::string node_selector = "all()";
  bool allow_workload = true;
  bool allow_tunnel = true;
  bool manual_assignment = false;  // assignmentMode: Manual — only AssignIP, never AutoAssign
};

// IPAMConfiguration "default" (upstream's defaults).
struct IpamConfig {
  bool strict_affinity = false;
  bool auto_allocate_blocks = true;
  int max_blocks_per_host = 0;  // 0: unlimited
};

enum class Use { kWorkload, kTunnel };

struct AutoAssignRequest {
  std::string handle_id;
  int num_v4 = 0;
  int num_v6 = 0;
  // Pool names or CIDRs to draw from (as the CNI config's ipv4_pools/ipv6_pools); empty: every
  // enabled, automatic pool of the family whose nodeSelector matches the node.
  std::vector<std::string> v4_pools;
  std::vector<std::string> v6_pools;
  std::map<std::string, std::string> attributes;  // secondary attributes: namespace, pod, ...
  std::string node;
  Use use = Use::kWorkload;
};

// Why an address came from where it did: "affine block 10.65.0.0/26 of node1",
// "claimed block 10.65.0.64/26 for node1", "borrowed from block 10.65.1.0/26 (affine to node2)".
struct Assigned {
  net::IpAddress ip;
  net::Prefix block;
  std::string how;
  // The block sequence number the allocation was made at: quote it in a ReleaseRequest so a
  // late release can never free a later owner's address.
  uint64_t sequence_number = 0;
};

struct AutoAssignResult {
  std::vector<Assigned> v4;
  std::vector<Assigned> v6;
};

struct ReleaseRequest {
  net::IpAddress ip;
  // When set, the release only happens if the address is still held by this handle / was
  // allocated at this sequence number (what the caller saw): never free a newer owner's address.
  std::optional<std::string> handle_id;
  std::optional<uint64_t> sequence_number;
};

// How the allocator learns the world: pools, IPAM config, node labels (for nodeSelector).
// ipamd wires these to the datastore's resources; tests give fixed values.
struct Environment {
  std::function<absl::StatusOr<std::vector<Pool>>()> pools;
  std::function<absl::StatusOr<IpamConfig>()> config;
  std::function<absl::StatusOr<std::map<std::string, std::string>>(const std::string& node)> node_labels;
  // IPReservation spec.reservedCIDRs: AutoAssign never hands these out.
  std::function<absl::StatusOr<std::vector<net::Prefix>>()> reservations;
};

struct AllocatorOptions {
  int max_cas_attempts = 10;  // per block write, before Aborted surfaces
};

class AllocatorState;

// Thread-safe: ipamd serves concurrent requests from one Allocator. Concurrent writes of one
// block from this process are coalesced into one Commit (group commit: the block plus one op
// per distinct handle), so N pods starting at once on a node cost about one write, not N
// conflicting ones. Caches the node's affine blocks
// and the last value of each block it wrote; the CAS makes a stale cache safe (Aborted or
// NotFound → re-read), and the slow paths (claim, borrow) re-read before deciding.
class Allocator {
 public:
  Allocator(datastore::Datastore& store, Environment env, AllocatorOptions options = {});
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // Both families or neither: if v6 cannot be satisfied after v4 was, the v4 addresses are
  // released before the error returns.
  absl::StatusOr<AutoAssignResult> AutoAssign(const AutoAssignRequest& request);
  // A specific address (must lie in a pool; an IPReservation does not block an explicit ask).
  // AlreadyExists if in use.
  absl::StatusOr<Assigned> AssignIP(const net::IpAddress& ip, const std::string& handle_id,
                                    const std::map<std::string, std::string>& attributes,
                                    const std::string& node);
  // Frees every address of the handle; returns them (empty if the handle has none: idempotent).
  absl::StatusOr<std::vector<net::IpAddress>> ReleaseByHandle(const std::string& handle_id);
  // Frees the given addresses; returns those that were allocated and are now free. Addresses
  // already free are skipped (idempotent); a handle/sequence mismatch is FailedPrecondition.
  absl::StatusOr<std::vector<net::IpAddress>> ReleaseIPs(const std::vector<ReleaseRequest>& requests);
  // Addresses held by a handle (NotFound if none).
  absl::StatusOr<std::vector<net::IpAddress>> GetHandle(const std::string& handle_id);
  // Every block (both families), sorted by CIDR.
  absl::StatusOr<std::vector<Block>> ListBlocks();
  // A deleted node: releases the affinities of its blocks (empty blocks are deleted; blocks that
  // still hold addresses lose their affinity and stay, so borrowed and live addresses survive).
  absl::Status ReleaseNodeAffinities(const std::string& node);

 private:
  datastore::Datastore& store_;
  Environment env_;
  AllocatorOptions options_;
  std::unique_ptr<AllocatorState> state_;  // caches and per-block write queues (allocator.cc)
};

}  // namespace calico::ipamd
