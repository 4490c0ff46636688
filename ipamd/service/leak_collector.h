#pragma once
// ipamd/service/leak_collector.h — releases addresses nobody uses any more, and the affinities
// of deleted nodes, without ever freeing a live workload's address:
//  - A candidate is an allocation Check() reports as "allocated, not in use" (no
//    WorkloadEndpoint or Node tunnel address claims it). Each candidate is remembered by
//    (ip, handle, sequence number) with the time it was first seen; an allocation that changes
//    owner is a new candidate with a fresh clock.
//  - Only a candidate seen continuously for `grace` is released, and only after a fresh
//    re-check (in-use set and blocks re-read) still finds it; the release quotes the handle and
//    sequence number, so an address re-assigned in between is refused by the block's CAS.
//  - Scope: allocations of this ipamd's node (the "node" attribute, else the block's
//    affinity), plus those of deleted nodes (which have no ipamd left to collect them; several
//    ipamds may race on them, which the CAS makes harmless).
//  - A node counts as deleted when blocks are affine to it, no Node resource exists for it,
//    other Node resources do exist (a datastore without any Node resources is a standalone
//    setup, not a mass deletion), and that has held for `grace`. Its affinities are then
//    released (Allocator::ReleaseNodeAffinities keeps blocks that still hold addresses).

#include <functional>
#include <map>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/datastore/datastore.h"
#include "common/http/metrics.h"
#include "ipamd/allocator/allocator.h"
#include "ipamd/service/ipam_service.h"

namespace calico::ipamd::service {

struct LeakCollectorOptions {
  std::string node;  // this ipamd's node
  absl::Duration grace = absl::Minutes(15);
};

struct CollectResult {
  int candidates = 0;      // allocated-not-in-use in scope, any age
  int released = 0;        // addresses freed this pass
  int nodes_released = 0;  // deleted nodes whose affinities were released this pass
};

class LeakCollector {
 public:
  // All references must outlive the collector. `now` is injected so tests need not sleep.
  LeakCollector(Allocator& allocator, datastore::Datastore& store, InUseLoader load_in_use,
                LeakCollectorOptions options, std::function<absl::Time()> now,
                http::MetricsRegistry& metrics);

  // One pass. Not thread-safe: one loop calls it.
  absl::StatusOr<CollectResult> RunOnce();

 private:
  using Key = std::tuple<net::IpAddress, std::string, uint64_t>;  // ip, handle, sequence number

  bool InScope(const CheckReport::Allocation& a, const std::map<net::Prefix, Block>& blocks,
               const InUse& in_use) const;
  bool NodeDeleted(const std::string& node, const InUse& in_use) const;

  Allocator& allocator_;
  datastore::Datastore& store_;
  InUseLoader load_in_use_;
  const LeakCollectorOptions options_;
  std::function<absl::Time()> now_;
  std::map<Key, absl::Time> first_seen_;
  std::map<std::string, absl::Time> node_missing_since_;
  http::MetricFamily& released_;
  http::MetricFamily& candidates_;
  http::MetricFamily& passes_;
};

}  // namespace calico::ipamd::service
