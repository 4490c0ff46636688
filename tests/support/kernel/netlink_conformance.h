#pragma once
// tests/support/kernel/netlink_conformance.h — the behaviour of netlink.h, executable: every
// case runs against FakeNetlink in the unit tests and against LibnlNetlink in a fresh TestNetns
// in the integration tests, so the fake cannot drift from the kernel it stands in for.
//
// Plug an implementation in with a Harness and one macro line in a Catch2 v2 test file:
//
//   #include "tests/support/kernel/netlink_conformance.h"
//   class MyHarness : public calico::kernel::testing::Harness { ... };
//   CALICO_NETLINK_CONFORMANCE_TESTS("LibnlNetlink", "[integration][kernel]",
//                                    std::make_unique<MyHarness>())
//
// and link the CMake target `calico_netlink_conformance`. Every case builds a fresh harness (a
// fresh namespace holding only "lo"), so cases are independent and can run in parallel.
// Cases compare only what the kernel decides the same way every time: no automatic indexes or
// MACs, no routes or addresses the kernel adds by itself (fe80::/64, local table, proto kernel).

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "common/kernel/netlink.h"

namespace calico::kernel::testing {

class Harness {  // one namespace under test
 public:
  virtual ~Harness() = default;
  // The namespace under test: fresh, holding only "lo".
  virtual Netlink& netlink() = 0;
  // A second namespace, where veth peers go.
  virtual NetnsRef PeerNetns() = 0;
  // Capability: the peer namespace can be inspected (a real kernel). FakeNetlink models one
  // namespace only, so peer-side checks are skipped for it.
  virtual bool InspectsPeer() const { return false; }
  // The peer namespace opened through the same implementation (only when InspectsPeer()).
  virtual std::unique_ptr<Netlink> OpenPeer() { return nullptr; }
};

// The cases; each takes a fresh harness. Use the macro rather than calling them directly.
namespace cases {
void VethWithPeerElsewhere(Harness& harness);
void VethErrors(Harness& harness);
void VethPairInOneNamespace(Harness& harness);
void LinkSettings(Harness& harness);
void AddressReplaceAndDelete(Harness& harness);
void AddressIdentity(Harness& harness);
void RouteViaDevice(Harness& harness);
void RouteViaGateway(Harness& harness);
void RejectRoutes(Harness& harness);
void Multipath(Harness& harness);
void ReplaceTakesOverAnotherProtocol(Harness& harness);
void DeleteHonoursProtocol(Harness& harness);
void MissingDevice(Harness& harness);
void DownDevice(Harness& harness);
void Ipv6Metric(Harness& harness);
void Ipv4DeleteWithoutMetric(Harness& harness);
void ListRoutesFilters(Harness& harness);
void DeleteLinkRemovesItsState(Harness& harness);
void Sysctls(Harness& harness);
void IpipTunnel(Harness& harness);
void BatchedRoutes(Harness& harness);
void BatchedRoutesAtScale(Harness& harness);
void VxlanDevice(Harness& harness);
void Neighbors(Harness& harness);
void Fdb(Harness& harness);
}  // namespace cases

// Readable text for failure output (every field, unlike Route::ToString).
std::string Describe(const Route& route);
std::string Describe(const Link& link);
std::string Describe(const Address& address);
std::string Describe(const Neighbor& neighbor);
std::string Describe(const FdbEntry& entry);

}  // namespace calico::kernel::testing

namespace Catch {
template <>
struct StringMaker<calico::kernel::Route> {
  static std::string convert(const calico::kernel::Route& r) {
    return calico::kernel::testing::Describe(r);
  }
};
template <>
struct StringMaker<calico::kernel::Link> {
  static std::string convert(const calico::kernel::Link& l) {
    return calico::kernel::testing::Describe(l);
  }
};
template <>
struct StringMaker<calico::kernel::Address> {
  static std::string convert(const calico::kernel::Address& a) {
    return calico::kernel::testing::Describe(a);
  }
};
template <>
struct StringMaker<calico::kernel::Neighbor> {
  static std::string convert(const calico::kernel::Neighbor& n) {
    return calico::kernel::testing::Describe(n);
  }
};
template <>
struct StringMaker<calico::kernel::FdbEntry> {
  static std::string convert(const calico::kernel::FdbEntry& f) {
    return calico::kernel::testing::Describe(f);
  }
};
}  // namespace Catch

#define CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr, name, fn) \
  TEST_CASE(prefix ": " name, tags) {                                               \
    auto calico_harness_ = (make_harness_expr);                                     \
    ::calico::kernel::testing::cases::fn(*calico_harness_);                         \
  }

// Expands to Catch2 v2 TEST_CASEs named "<prefix>: ..." each with `tags`, creating its harness
// with `make_harness_expr` (a std::unique_ptr to a Harness; a fresh namespace per case).
#define CALICO_NETLINK_CONFORMANCE_TESTS(prefix, tags, make_harness_expr)                        \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "ipip tunnel, or an error naming the missing module",         \
                                   IpipTunnel)                                                   \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "veth with its peer in another namespace",                    \
                                   VethWithPeerElsewhere)                                        \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "veth AlreadyExists, long names, taken index", VethErrors)    \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "veth pair in one namespace goes together",                   \
                                   VethPairInOneNamespace)                                       \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "link up, mtu, mac and their errors", LinkSettings)           \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "address replace is idempotent, delete of absent is ok",      \
                                   AddressReplaceAndDelete)                                      \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "address identity: IPv4 per prefix length, IPv6 per address", \
                                   AddressIdentity)                                              \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "route via a device, read back in full", RouteViaDevice)      \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "route via a gateway, onlink or covered", RouteViaGateway)    \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "blackhole, unreachable, prohibit and malformed routes",      \
                                   RejectRoutes)                                                 \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "multipath routes with weights", Multipath)                   \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "replace takes over the key from another protocol",           \
                                   ReplaceTakesOverAnotherProtocol)                              \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "delete leaves another protocol's route alone",               \
                                   DeleteHonoursProtocol)                                        \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "missing device is ENODEV", MissingDevice)                    \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "down device is ENETDOWN and flushes its routes",             \
                                   DownDevice)                                                   \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "IPv6 metric 0 reads back as 1024", Ipv6Metric)               \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "IPv4 delete with metric 0 takes the lowest metric",          \
                                   Ipv4DeleteWithoutMetric)                                      \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "ListRoutes filters by table, protocol and family",           \
                                   ListRoutesFilters)                                            \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "deleting a link removes its routes, addresses, sysctls",     \
                                   DeleteLinkRemovesItsState)                                    \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "per-interface sysctls", Sysctls)                             \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "batched replace and delete answer route by route",           \
                                   BatchedRoutes)                                                \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "batches of thousands, failures spread over sendmsgs",        \
                                   BatchedRoutesAtScale)                                         \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "vxlan device: read back, AlreadyExists, errors",             \
                                   VxlanDevice)                                                  \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "neighbours: replace, list, delete, flushed on down",         \
                                   Neighbors)                                                    \
  CALICO_NETLINK_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                              \
                                   "vxlan FDB: append, replace, delete, errors", Fdb)
