#pragma once
// felixd/dataplane/plumber.h — the kernel work of one workload interface: a veth whose peer is
// created directly inside the workload's netns, the peer's addresses and routes via the
// link-local gateways, and the host side's MAC and sysctls. The host /32 routes are not here:
// they belong to the EndpointManager's route table, which reconciles them.
// Owns: nothing between calls. Never: touches another interface than the one it is given.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/kernel/netlink.h"
#include "common/net/ip.h"

namespace calico::felixd {

// Opens the Netlink seam in a namespace (self when the ref is empty). The real one opens
// LibnlNetlink; tests hand out fakes.
using NetlinkOpener =
    std::function<absl::StatusOr<std::unique_ptr<kernel::Netlink>>(const kernel::NetnsRef&)>;

inline constexpr char kIpv4Gateway[] = "169.254.1.1";
inline constexpr char kIpv6Gateway[] = "fe80::ecee:eeff:feee:eeee";  // EUI-64 of the host MAC
inline constexpr kernel::MacAddress kHostSideMac = {0xee, 0xee, 0xee, 0xee, 0xee, 0xee};

struct PlumbSpec {
  std::string host_ifname;          // "cali..."
  std::string netns;                // path of the workload's network namespace
  std::string ifname = "eth0";      // inside the workload
  std::vector<net::Prefix> ips;     // /32 and /128
  int mtu = 1500;
};

struct PlumbResult {
  int host_ifindex = 0;
  std::string container_mac;
};

// The sysctls of a workload's host-side interface, as (path, value): what Plumb writes and what
// a resync verifies.
std::vector<std::pair<std::string, std::string>> HostSideSysctls(std::string_view host_ifname,
                                                                  bool ipv4, bool ipv6);

class Plumber {
 public:
  explicit Plumber(NetlinkOpener open) : open_(std::move(open)) {}

  // Creates and configures the interface pair. On any failure it removes the veth it made, so
  // nothing is left behind, and returns the error naming the step. An existing host veth of
  // the same name (a workload's earlier sandbox) is replaced.
  absl::StatusOr<PlumbResult> Plumb(const PlumbSpec& spec);
  // Removes the host veth (its peer goes with it). Already gone is success; returns whether
  // there was something to remove.
  absl::StatusOr<bool> Unplumb(std::string_view host_ifname);
  // Every difference between the kernel and `spec` (host side, workload side), as sentences;
  // empty when healthy.
  absl::StatusOr<std::vector<std::string>> Check(const PlumbSpec& spec);

 private:
  absl::Status ConfigureWorkloadSide(kernel::Netlink& pod, const PlumbSpec& spec,
                                     PlumbResult& result);
  NetlinkOpener open_;
};

}  // namespace calico::felixd
