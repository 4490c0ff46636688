#pragma once
// common/kernel/route_table.h — the reconciling driver for "routes of protocol P in table T"
// (felixd's workload routes, later birdd's Loc-RIB). Owns exactly the routes carrying its
// protocol in its table: a freshly restarted daemon recognises them by that pair alone, adopts
// the ones it still wants without rewriting them, and removes the rest. Never touches a route of
// another protocol unless it wants that route's key itself (a desired key is ours).
// Single-threaded; SetDesired/Remove are cheap and do no I/O, Apply/Resync write the delta.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/kernel/netlink.h"
#include "common/reconcile/delta_tracker.h"

namespace calico::kernel {

// Whether the kernel's copy (`actual`, as read back: ifindex and ifname filled) already is the
// route we want; a device named only by `ifname` in `desired` matches by name.
bool RouteSatisfies(const Route& desired, const Route& actual);

class RouteTable {
 public:
  RouteTable(Netlink& netlink, uint8_t protocol, uint32_t table);

  // Replaces everything `owner` (e.g. an interface name, a BGP peer) wants. Each route gets this
  // table's protocol and table. When two owners want the same key, the smallest owner name wins
  // (deterministic, whatever the order of updates); the other takes over if the winner leaves.
  void SetDesired(std::string_view owner, std::vector<Route> routes);
  void Remove(std::string_view owner);

  // Writes only the delta: replaces missing/changed routes, then deletes unwanted ones (make
  // before break). A failed key stays pending and is retried by the next Apply; the returned
  // Status is the first failure, with the number of others.
  absl::Status Apply();
  // Reads back this protocol's routes in this table, turns any drift (changed or deleted by hand,
  // strays left by an earlier run) into pending work, and applies it.
  absl::Status Resync();

  bool InSync() const { return routes_.InSync(); }
  // Whether every route `owner` wants is in the kernel as wanted (another owner's failures,
  // still pending, do not count).
  bool OwnerInSync(std::string_view owner) const;
  size_t PendingCount() const { return routes_.PendingUpdates() + routes_.PendingDeletions(); }
  uint8_t protocol() const { return protocol_; }
  uint32_t table() const { return table_; }

 private:
  struct Satisfies {
    bool operator()(const Route& desired, const Route& actual) const {
      return RouteSatisfies(desired, actual);
    }
  };
  // Re-derives the desired route for `key` from its claimants.
  void Recompute(const RouteKey& key);

  Netlink& netlink_;
  uint8_t protocol_;
  uint32_t table_;
  std::map<std::string, std::map<RouteKey, Route>, std::less<>> owners_;
  std::map<RouteKey, std::set<std::string, std::less<>>> claimants_;
  reconcile::DeltaTracker<RouteKey, Route, Satisfies> routes_;
};

}  // namespace calico::kernel
