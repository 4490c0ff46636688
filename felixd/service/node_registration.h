#pragma once
// felixd/service/node_registration.h — this node's Node resource, as upstream calico-node's
// start-up writes it: created when missing, with spec.bgp.ipv4Address (and ipv6Address) from
// --ip / --ip6 or detected on the host. birdd peers with that address and felixd's VXLAN uses
// it as the outer source, so a node nobody registered by hand still joins the cluster.
// An address already in the Node is kept unless --ip names one explicitly (an operator's
// choice is never overwritten by a guess). Writes are compare-and-swap (ipamd and other
// felixd code write the same Node).

#include <string>

#include "absl/status/statusor.h"
#include "common/datastore/datastore.h"
#include "common/kernel/netlink.h"

namespace calico::felixd {

struct NodeRegistration {
  std::string node;
  // "autodetect", "none", or an address with its prefix length ("10.0.0.5/24").
  std::string ip = "autodetect";
  std::string ip6 = "none";
  // How autodetect picks: "default-route" (the address of the device holding the family's
  // default route; first-found when there is none), "first-found" (the first global address on a device that is not a Calico or
  // container device, as upstream's default), "interface=REGEX", "cidr=CIDR".
  std::string method = "default-route";
};

// The address (with prefix length) of `family` that `method` picks. NotFound names what it
// looked at when nothing qualifies; InvalidArgument for a bad method.
absl::StatusOr<net::Prefix> DetectNodeAddress(kernel::Netlink& host, int family, const std::string& method);

struct RegistrationResult {
  bool created = false;
  bool updated = false;
  std::string ipv4;  // the Node's spec.bgp.ipv4Address afterwards
  std::string ipv6;
};

// Creates or completes the Node. Unavailable when the datastore is down (the caller retries).
absl::StatusOr<RegistrationResult> RegisterNode(datastore::Datastore& store, kernel::Netlink& host,
                                                const NodeRegistration& options);

}  // namespace calico::felixd
