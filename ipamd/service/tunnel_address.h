#pragma once
// ipamd/service/tunnel_address.h — this node's VXLAN tunnel addresses (as upstream's
// allocate-tunnel-addrs), per family: while an enabled pool of the family with vxlanMode Always
// or CrossSubnet selects the node, the handle "vxlan-tunnel-addr-<node>" (IPv6:
// "vxlan-v6-tunnel-addr-<node>") holds one address from such a pool and the Node's
// spec.ipv4VXLANTunnelAddr (ipv6VXLANTunnelAddr) names it; when no pool uses VXLAN any more,
// the field is cleared and the address released. felixd reads the field to configure vxlan.calico.
// Nothing is left half-done: an address whose Node write fails is released again, and a Node
// naming an address its handle does not hold (a restored backup, a hand edit) gets a fresh one.
// Not thread-safe: the daemon's loop calls it.

#include <string>

#include "absl/status/statusor.h"
#include "common/datastore/datastore.h"
#include "ipamd/allocator/allocator.h"

namespace calico::ipamd::service {

// "vxlan-tunnel-addr-<node>", IPv6 "vxlan-v6-tunnel-addr-<node>".
std::string VxlanTunnelHandle(std::string_view node, int family = 4);

struct TunnelResult {
  std::string address;  // the Node's ipv4VXLANTunnelAddr after the pass; empty: none
  bool changed = false;  // an address was assigned, replaced or released this pass
};

// One reconcile pass. NotFound when there is no Node resource of that name (the address lives
// on it: whoever registers the node — calicoctl, the chart's start-up — creates it first).
absl::StatusOr<TunnelResult> EnsureVxlanTunnelAddress(Allocator& allocator, datastore::Datastore& store,
                                                      const std::string& node, int family = 4);

}  // namespace calico::ipamd::service
