// The Netlink conformance suite against LibnlNetlink: each case in two fresh namespaces (the
// one under test and the one veth peers go to), so the host's network is never touched.

#include <memory>
#include <optional>

#include "common/kernel/libnl_netlink.h"
#include "tests/support/kernel/netlink_conformance.h"
#include "tests/support/netns/test_netns.h"

namespace calico::kernel {
namespace {

using ::calico::testing::TestNetns;

NetnsRef ByPath(std::string path) {
  NetnsRef ref;
  ref.path = std::move(path);
  return ref;
}

template <typename T>
T Require(absl::StatusOr<T> result, const char* what) {
  if (!result.ok()) FAIL(what << ": " << result.status().ToString());
  return std::move(result).value();
}

class KernelHarness : public testing::Harness {
 public:
  KernelHarness()
      : main_(Require(TestNetns::Create("main"), "TestNetns::Create")),
        peer_(Require(TestNetns::Create("peer"), "TestNetns::Create")),
        netlink_(Require(LibnlNetlink::Open(ByPath(main_.path())), "LibnlNetlink::Open")) {
    // As in every pod and on every host (and in FakeNetlink): lo is up. Without it (nor any
    // address) the local table does not exist yet, and the kernel refuses IPv4 on-link
    // gateways ("Nexthop has invalid gateway": the gateway's address type is looked up there).
    for (const TestNetns* ns : {&main_, &peer_}) {
      ::calico::testing::ExecResult up = ns->Exec("ip link set lo up");
      if (up.status != 0) FAIL("ip link set lo up in " << ns->name() << ": " << up.output);
    }
  }

  Netlink& netlink() override { return *netlink_; }
  NetnsRef PeerNetns() override { return ByPath(peer_.path()); }
  bool InspectsPeer() const override { return true; }
  std::unique_ptr<Netlink> OpenPeer() override {
    return Require(LibnlNetlink::Open(ByPath(peer_.path())), "LibnlNetlink::Open peer");
  }

 private:
  TestNetns main_;
  TestNetns peer_;
  std::unique_ptr<LibnlNetlink> netlink_;
};

CALICO_NETLINK_CONFORMANCE_TESTS("LibnlNetlink conformance", "[integration][kernel][conformance]",
                                 std::make_unique<KernelHarness>())

}  // namespace
}  // namespace calico::kernel
