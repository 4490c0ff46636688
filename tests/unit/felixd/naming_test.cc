#include "felixd/dataplane/naming.h"

#include <catch2/catch.hpp>

namespace calico::felixd {
namespace {

TEST_CASE("host veth names are cali plus 11 hex digits of SHA-1 of namespace.pod") {
  // sha1("default.nginx") = c440f455693b69cdd48a37aa5ecd78038f50413d
  CHECK(HostVethName("default", "nginx") == "calic440f455693");
  CHECK(HostVethName("default", "nginx").size() == 15);
  CHECK(HostVethName("kube-system", "nginx") != HostVethName("default", "nginx"));
}

TEST_CASE("outside Kubernetes the veth name comes from the container id") {
  CHECK(HostVethNameForContainer("0123456789abcdef") == "cali0123456789a");
  CHECK(HostVethNameForContainer("abc") == "caliabc");
}

TEST_CASE("workload endpoint names double the dashes inside each part") {
  CHECK(WorkloadEndpointName("node1", "k8s", "mypod", "eth0") == "node1-k8s-mypod-eth0");
  CHECK(WorkloadEndpointName("node-1", "k8s", "my-pod", "eth0") == "node--1-k8s-my--pod-eth0");
}

}  // namespace
}  // namespace calico::felixd
