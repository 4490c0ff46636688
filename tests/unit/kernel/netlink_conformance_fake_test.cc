// The Netlink conformance suite against FakeNetlink: the fake shows the kernel behaviour the
// same suite checks against LibnlNetlink in tests/integration/kernel.

#include <memory>

#include "common/kernel/fake_netlink.h"
#include "tests/support/kernel/netlink_conformance.h"

namespace calico::kernel {
namespace {

class FakeHarness : public testing::Harness {
 public:
  Netlink& netlink() override { return fake_; }
  // The fake models one namespace: the peer side is recorded, not inspected.
  NetnsRef PeerNetns() override {
    NetnsRef peer;
    peer.path = "/var/run/netns/conformance-peer";
    return peer;
  }

 private:
  FakeNetlink fake_;
};

CALICO_NETLINK_CONFORMANCE_TESTS("FakeNetlink conformance", "[unit][fake][conformance]",
                                 std::make_unique<FakeHarness>())

}  // namespace
}  // namespace calico::kernel
