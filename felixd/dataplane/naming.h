#pragma once
// felixd/dataplane/naming.h — the names operators know from upstream Calico, so `ip link`,
// `calicoctl get wep` and existing runbooks keep working.

#include <string>
#include <string_view>

namespace calico::felixd {

inline constexpr char kHostVethPrefix[] = "cali";

// Kubernetes: "cali" + the first 11 hex digits of SHA-1("<namespace>.<pod>").
std::string HostVethName(std::string_view ns, std::string_view pod);
// Outside Kubernetes: "cali" + the first 11 characters of the container id.
std::string HostVethNameForContainer(std::string_view container_id);

// The WorkloadEndpoint name: node, orchestrator, workload and endpoint joined by '-', each with
// its own '-' doubled so the parts stay recoverable ("node1-k8s-my--pod-eth0").
std::string WorkloadEndpointName(std::string_view node, std::string_view orchestrator,
                                 std::string_view workload, std::string_view endpoint);

}  // namespace calico::felixd
