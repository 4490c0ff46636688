// LibnlNetlink against the real kernel, beyond the conformance suite: namespaces. Every
// mutation happens in TestNetns namespaces; the test's own namespace is only read.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/kernel/libnl_netlink.h"
#include "tests/support/netns/test_netns.h"

namespace calico::kernel {
namespace {

using ::calico::testing::TestNetns;

template <typename T>
T Require(absl::StatusOr<T> result, std::string_view what) {
  if (!result.ok()) FAIL(what << ": " << result.status().ToString());
  return std::move(result).value();
}
#define OK_OR_FAIL(expr) Require((expr), #expr)

void RequireOk(const absl::Status& status, std::string_view what) {
  if (!status.ok()) FAIL(what << ": " << status.ToString());
}
#define REQUIRE_OK(expr) RequireOk((expr), #expr)

NetnsRef ByFd(int fd) {
  NetnsRef ref;
  ref.fd = fd;
  return ref;
}

NetnsRef ByPath(std::string path) {
  NetnsRef ref;
  ref.path = std::move(path);
  return ref;
}

VethSpec Pair(std::string name, std::string peer, NetnsRef peer_netns = {}) {
  VethSpec spec;
  spec.name = std::move(name);
  spec.peer_name = std::move(peer);
  spec.peer_netns = std::move(peer_netns);
  return spec;
}

std::unique_ptr<LibnlNetlink> OpenIn(const TestNetns& ns) {
  return OK_OR_FAIL(LibnlNetlink::Open(ByPath(ns.path())));
}

// The namespace the calling thread is in (inode of /proc/thread-self/ns/net).
ino_t ThreadNetns() {
  struct stat st {};
  REQUIRE(stat("/proc/thread-self/ns/net", &st) == 0);
  return st.st_ino;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  std::string text = out.str();
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

MacAddress Mac(std::string_view text) {
  std::optional<MacAddress> mac = ParseMac(text);
  REQUIRE(mac.has_value());
  return *mac;
}

TEST_CASE("LibnlNetlink: a veth peer is born in the other namespace with its name, mac, mtu",
          "[integration][kernel]") {
  TestNetns host = OK_OR_FAIL(TestNetns::Create("host"));
  TestNetns pod = OK_OR_FAIL(TestNetns::Create("pod"));
  std::unique_ptr<LibnlNetlink> netlink = OpenIn(host);
  VethSpec spec;
  spec.name = "cali1234";
  spec.peer_name = "eth0";
  spec.peer_netns.path = pod.path();
  spec.mtu = 1400;
  spec.mac = Mac("ee:ee:ee:ee:ee:ee");
  spec.peer_mac = Mac("0a:58:0a:41:00:03");
  REQUIRE_OK(netlink->CreateVeth(spec));

  std::unique_ptr<LibnlNetlink> in_pod = OpenIn(pod);
  Link peer = OK_OR_FAIL(in_pod->GetLink("eth0"));
  CHECK(peer.kind == LinkKind::kVeth);
  CHECK(peer.mtu == 1400);
  CHECK(peer.mac == spec.peer_mac);
  // Cross-checked with iproute2 in that namespace.
  calico::testing::ExecResult shown = pod.Exec("ip -o link show dev eth0");
  INFO(shown.output);
  REQUIRE(shown.status == 0);
  CHECK(shown.output.find("mtu 1400") != std::string::npos);
  CHECK(shown.output.find("0a:58:0a:41:00:03") != std::string::npos);
  CHECK(host.Exec("ip link show dev eth0").status != 0);
  CHECK(netlink->GetLink("eth0").status().code() == absl::StatusCode::kNotFound);

  // The pod side is programmed through its own LibnlNetlink.
  REQUIRE_OK(in_pod->SetLinkUp("eth0", true));
  REQUIRE_OK(in_pod->ReplaceAddress(
      {.prefix = *net::ParsePrefix("10.65.0.3/32"), .ifindex = peer.index}));
  REQUIRE_OK(in_pod->ReplaceRoute(Route::Via("0.0.0.0/0", "169.254.1.1", "eth0", true)));
  calico::testing::ExecResult routes = pod.Exec("ip route show default");
  CHECK(routes.output.find("via 169.254.1.1 dev eth0") != std::string::npos);
}

TEST_CASE("LibnlNetlink: namespaces given by fd", "[integration][kernel]") {
  TestNetns host = OK_OR_FAIL(TestNetns::Create("host"));
  TestNetns pod = OK_OR_FAIL(TestNetns::Create("pod"));
  int host_fd = open(host.path().c_str(), O_RDONLY | O_CLOEXEC);
  int pod_fd = open(pod.path().c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(host_fd >= 0);
  REQUIRE(pod_fd >= 0);
  std::unique_ptr<LibnlNetlink> netlink = OK_OR_FAIL(LibnlNetlink::Open(ByFd(host_fd)));
  close(host_fd);  // Open keeps a duplicate
  REQUIRE_OK(netlink->CreateVeth(Pair("cali1", "eth0", ByFd(pod_fd))));
  close(pod_fd);
  CHECK(OK_OR_FAIL(netlink->GetLink("cali1")).kind == LinkKind::kVeth);
  CHECK(OK_OR_FAIL(OpenIn(pod)->GetLink("eth0")).kind == LinkKind::kVeth);
  REQUIRE_OK(netlink->WriteSysctl("net/ipv4/conf/cali1/proxy_arp", "1"));
  CHECK(host.Exec("cat /proc/sys/net/ipv4/conf/cali1/proxy_arp").output == "1\n");
}

TEST_CASE("LibnlNetlink: sysctls land in the namespace opened, not the caller's",
          "[integration][kernel]") {
  TestNetns ns = OK_OR_FAIL(TestNetns::Create("sysctl"));
  std::unique_ptr<LibnlNetlink> netlink = OpenIn(ns);
  // lo exists in both: a write there must not reach ours (which is only read).
  const std::string path = "net/ipv4/conf/lo/route_localnet";
  const std::string ours_before = ReadFile("/proc/sys/" + path);
  REQUIRE_FALSE(ours_before.empty());
  const std::string other = ours_before == "1" ? "0" : "1";
  REQUIRE_OK(netlink->WriteSysctl(path, other));
  CHECK(OK_OR_FAIL(netlink->ReadSysctl(path)) == other);
  CHECK(ns.Exec("cat /proc/sys/" + path).output == other + "\n");
  CHECK(ReadFile("/proc/sys/" + path) == ours_before);

  // A device that exists only there.
  REQUIRE_OK(netlink->CreateVeth(Pair("ct-sys", "ct-sysp")));
  REQUIRE_OK(netlink->WriteSysctl("net/ipv4/conf/ct-sys/proxy_arp", "1"));
  CHECK(ns.Exec("cat /proc/sys/net/ipv4/conf/ct-sys/proxy_arp").output == "1\n");
  CHECK(access("/proc/sys/net/ipv4/conf/ct-sys", F_OK) != 0);
  // Paths that would leave /proc/sys are refused.
  CHECK(netlink->ReadSysctl("../self/environ").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(netlink->ReadSysctl("/etc/passwd").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("LibnlNetlink: the calling thread is back in its namespace after every call",
          "[integration][kernel]") {
  const ino_t before = ThreadNetns();
  TestNetns ns = OK_OR_FAIL(TestNetns::Create("thread"));
  std::unique_ptr<LibnlNetlink> netlink = OpenIn(ns);
  CHECK(ThreadNetns() == before);
  CHECK(netlink->ReadSysctl("net/ipv4/conf/nope/proxy_arp").status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(ThreadNetns() == before);
  REQUIRE_OK(netlink->WriteSysctl("net/ipv4/conf/lo/proxy_arp", "1"));
  CHECK(ThreadNetns() == before);

  // Not a network namespace: setns fails, nothing moved.
  int uts = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
  REQUIRE(uts >= 0);
  absl::StatusOr<std::unique_ptr<LibnlNetlink>> wrong = LibnlNetlink::Open(ByFd(uts));
  close(uts);
  CHECK(wrong.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ThreadNetns() == before);
  CHECK(LibnlNetlink::Open(ByPath("/run/netns/cct-does-not-exist")).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("LibnlNetlink: this namespace opens read-only fine", "[integration][kernel]") {
  // Only reads: the test's own namespace is never written.
  std::unique_ptr<LibnlNetlink> netlink = OK_OR_FAIL(LibnlNetlink::Open());
  bool has_lo = false;
  for (const Link& link : OK_OR_FAIL(netlink->ListLinks())) {
    if (link.name == "lo") has_lo = link.kind == LinkKind::kLoopback;
  }
  CHECK(has_lo);
  CHECK(OK_OR_FAIL(netlink->GetLink("lo")).index == 1);
  OK_OR_FAIL(netlink->ListRoutes({.table = kMainTable}));
  OK_OR_FAIL(netlink->ListAddresses(0));
}

TEST_CASE("LibnlNetlink: the kernel's own routes read back like ours", "[integration][kernel]") {
  TestNetns ns = OK_OR_FAIL(TestNetns::Create("kroutes"));
  std::unique_ptr<LibnlNetlink> netlink = OpenIn(ns);
  REQUIRE_OK(netlink->CreateVeth(Pair("ct1", "ct1p")));
  REQUIRE_OK(netlink->SetLinkUp("ct1", true));
  const int index = OK_OR_FAIL(netlink->GetLink("ct1")).index;
  REQUIRE_OK(netlink->ReplaceAddress({.prefix = *net::ParsePrefix("10.1.0.1/24"), .ifindex = index}));
  std::vector<Route> kernel =
      OK_OR_FAIL(netlink->ListRoutes({.table = kMainTable, .protocol = kProtoKernel, .family = 4}));
  REQUIRE(kernel.size() == 1);
  Route expected;
  expected.dst = *net::ParsePrefix("10.1.0.0/24");
  expected.protocol = kProtoKernel;
  expected.scope = RouteScope::kLink;
  expected.hop.ifindex = index;
  expected.hop.ifname = "ct1";
  CHECK(kernel[0] == expected);
  // The local table (10.1.0.1 local, broadcast) is listed only when asked for, and holds no
  // route types of ours.
  for (const Route& r : OK_OR_FAIL(netlink->ListRoutes({.table = 0}))) CHECK(r.table != kLocalTable);
  CHECK(OK_OR_FAIL(netlink->ListRoutes({.table = kLocalTable})).empty());
}

TEST_CASE("LibnlNetlink: errors carry the kernel's errno and its reason", "[integration][kernel]") {
  TestNetns ns = OK_OR_FAIL(TestNetns::Create("errors"));
  std::unique_ptr<LibnlNetlink> netlink = OpenIn(ns);
  REQUIRE_OK(netlink->CreateVeth(Pair("ct1", "ct1p")));
  absl::Status down = netlink->ReplaceRoute(Route::Local("10.65.0.3/32", "ct1"));
  INFO(down.ToString());
  CHECK(down.message().find("RTM_NEWROUTE 10.65.0.3/32 dev ct1") != absl::string_view::npos);
  CHECK(down.message().find("(ENETDOWN)") != absl::string_view::npos);
  CHECK(down.message().find("; kernel: ") != absl::string_view::npos);  // extended ack
  absl::Status mtu = netlink->SetLinkMtu("ct1", -1);
  CHECK(mtu.code() == absl::StatusCode::kInvalidArgument);
  CHECK(netlink->SetLinkMtu("nope", -1).code() == absl::StatusCode::kNotFound);
  // The socket is still in step after errors.
  REQUIRE_OK(netlink->SetLinkUp("ct1", true));
  REQUIRE_OK(netlink->ReplaceRoute(Route::Local("10.65.0.3/32", "ct1")));
  CHECK(OK_OR_FAIL(netlink->ListRoutes({.protocol = kProtoBoot})).size() == 1);
}

net::IpAddress Ip(std::string_view text) {
  std::optional<net::IpAddress> ip = net::ParseIp(text);
  REQUIRE(ip.has_value());
  return *ip;
}

// One node of Felix's VXLAN mode, programmed only through the seam: underlay `eth0` with
// `node_ip`/24, vxlan.calico (VNI 4096, port 4789, learning off) with `tunnel_ip`/32, and the
// remote node's block via its tunnel IP onlink, its neighbour entry and its FDB entry.
void ProgramVxlanNode(Netlink& nl, std::string_view node_ip, std::string_view tunnel_ip,
                      std::string_view mac, std::string_view remote_node_ip,
                      std::string_view remote_tunnel_ip, std::string_view remote_mac,
                      std::string_view remote_block) {
  REQUIRE_OK(nl.SetLinkUp("lo", true));
  REQUIRE_OK(nl.SetLinkUp("eth0", true));
  const int eth0 = OK_OR_FAIL(nl.GetLink("eth0")).index;
  REQUIRE_OK(nl.ReplaceAddress({.prefix = {Ip(node_ip), 24}, .ifindex = eth0}));
  VxlanSpec spec;
  spec.name = "vxlan.calico";
  spec.vni = 4096;
  spec.local = Ip(node_ip);
  spec.parent = "eth0";
  spec.mac = Mac(mac);
  REQUIRE_OK(nl.CreateVxlan(spec));
  REQUIRE_OK(nl.SetLinkUp("vxlan.calico", true));
  const int vxlan = OK_OR_FAIL(nl.GetLink("vxlan.calico")).index;
  REQUIRE_OK(nl.ReplaceAddress({.prefix = {Ip(tunnel_ip), 32}, .ifindex = vxlan}));
  REQUIRE_OK(nl.ReplaceNeighbor(
      {.ifindex = vxlan, .ifname = "", .ip = Ip(remote_tunnel_ip), .mac = Mac(remote_mac)}));
  REQUIRE_OK(nl.AppendFdb({.ifindex = vxlan, .ifname = "", .mac = Mac(remote_mac),
                           .dst = Ip(remote_node_ip)}));
  REQUIRE_OK(nl.ReplaceRoute(
      Route::Via(remote_block, remote_tunnel_ip, "vxlan.calico", /*onlink=*/true)));
}

TEST_CASE("LibnlNetlink: Felix's VXLAN mode programmed through the seam carries a ping",
          "[integration][kernel]") {
  TestNetns a = OK_OR_FAIL(TestNetns::Create("vxlan-a"));
  TestNetns b = OK_OR_FAIL(TestNetns::Create("vxlan-b"));
  std::unique_ptr<LibnlNetlink> nl_a = OpenIn(a);
  std::unique_ptr<LibnlNetlink> nl_b = OpenIn(b);
  REQUIRE_OK(nl_a->CreateVeth(Pair("eth0", "eth0", ByPath(b.path()))));
  ProgramVxlanNode(*nl_a, "192.168.50.1", "10.65.0.0", "66:00:00:00:00:0a", "192.168.50.2",
                   "10.65.1.0", "66:00:00:00:00:0b", "10.65.1.0/26");
  ProgramVxlanNode(*nl_b, "192.168.50.2", "10.65.1.0", "66:00:00:00:00:0b", "192.168.50.1",
                   "10.65.0.0", "66:00:00:00:00:0a", "10.65.0.0/26");
  // A's tunnel address to B's: route via B's VTEP onlink → neighbour → FDB → UDP 4789 to B.
  ::calico::testing::ExecResult ping = a.Exec("ping -c 1 -W 2 -I 10.65.0.0 10.65.1.0");
  INFO(ping.output);
  CHECK(ping.status == 0);
  // What iproute2 makes of the entry AppendFdb wrote: `bridge fdb append` exactly.
  ::calico::testing::ExecResult fdb = a.Exec("bridge fdb show dev vxlan.calico");
  INFO(fdb.output);
  CHECK(fdb.output.find("66:00:00:00:00:0b dst 192.168.50.2 self permanent") != std::string::npos);
}

TEST_CASE("LibnlNetlink: the neighbours and FDB entries the kernel makes by itself",
          "[integration][kernel]") {
  TestNetns ns = OK_OR_FAIL(TestNetns::Create("vxlan-defaults"));
  std::unique_ptr<LibnlNetlink> nl = OpenIn(ns);
  VxlanSpec spec;
  spec.name = "vxlan.calico";
  spec.vni = 4096;
  REQUIRE_OK(nl->CreateVxlan(spec));
  REQUIRE_OK(nl->SetLinkUp("vxlan.calico", true));
  const int vxlan = OK_OR_FAIL(nl->GetLink("vxlan.calico")).index;
  // Without remote/group: no FDB entry at all.
  CHECK(OK_OR_FAIL(nl->ListFdb(vxlan)).empty());
  // An up device with IPv6 gets NOARP entries for its multicast groups (ff02::… → 33:33:…).
  // They may take a moment (MLD join); not permanent, so a reconciler keeps to permanent ones.
  bool saw_multicast = false;
  for (int i = 0; i < 20 && !saw_multicast; ++i) {
    for (const Neighbor& n : OK_OR_FAIL(nl->ListNeighbors(vxlan))) {
      CHECK_FALSE(n.permanent);
      CHECK(n.ifname == "vxlan.calico");
      saw_multicast |= n.ip.family == 6 && n.ip.bytes[0] == 0xff && n.mac[0] == 0x33;
    }
    if (!saw_multicast) usleep(50'000);
  }
  CHECK(saw_multicast);

  // A vxlan with a remote has the all-zero MAC → remote entry.
  ::calico::testing::ExecResult made =
      ns.Exec("ip link add vx-remote type vxlan id 5 dstport 4789 remote 192.168.9.9");
  REQUIRE(made.status == 0);
  const int remote = OK_OR_FAIL(nl->GetLink("vx-remote")).index;
  CHECK(OK_OR_FAIL(nl->ListFdb(remote)) ==
        std::vector<FdbEntry>{{.ifindex = remote, .ifname = "vx-remote", .mac = MacAddress{},
                               .dst = Ip("192.168.9.9")}});

  // A device without an FDB of its own (veth) lists its addresses, without dst, and an
  // "append" adds the MAC to them, ignoring the dst.
  REQUIRE_OK(nl->CreateVeth(Pair("ct1", "ct1p")));
  REQUIRE_OK(nl->SetLinkUp("ct1", true));
  const int veth = OK_OR_FAIL(nl->GetLink("ct1")).index;
  REQUIRE_OK(nl->AppendFdb({.ifindex = veth, .ifname = "", .mac = Mac("66:00:00:00:00:01"),
                            .dst = Ip("192.168.0.2")}));
  std::vector<FdbEntry> veth_fdb = OK_OR_FAIL(nl->ListFdb(veth));
  std::string listed;
  for (const FdbEntry& f : veth_fdb) absl::StrAppend(&listed, f.ToString(), "; ");
  INFO(listed);
  for (const FdbEntry& f : veth_fdb) CHECK_FALSE(f.dst.has_value());
  auto has = [&](std::string_view mac) {
    return std::any_of(veth_fdb.begin(), veth_fdb.end(),
                       [&](const FdbEntry& f) { return f.mac == Mac(mac); });
  };
  CHECK(has("66:00:00:00:00:01"));
  CHECK(has("33:33:00:00:00:01"));
  CHECK(has("01:00:5e:00:00:01"));
}

// Not run by default: `kernel_integration_tests "[bench]"`. The per-pod sequence: veth with
// its peer born in the pod's namespace, host side up, the pod's address, the host route to the
// pod; then the pod side up and its routes. Reports the first four calls on their own, and
// user vs system CPU (user time is what libnl and we add to the kernel's work).
TEST_CASE("LibnlNetlink bench: 50 pods, CreateVeth + address + routes", "[.][bench]") {
  constexpr int kPods = 50;
  TestNetns host = OK_OR_FAIL(TestNetns::Create("bhost"));
  std::vector<TestNetns> pods;
  for (int i = 0; i < kPods; ++i) pods.push_back(OK_OR_FAIL(TestNetns::Create("bpod")));
  std::unique_ptr<LibnlNetlink> netlink = OpenIn(host);
  using Clock = std::chrono::steady_clock;
  Clock::duration core{0};
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  const auto start = Clock::now();
  for (int i = 0; i < kPods; ++i) {
    const std::string name = absl::StrCat("cali", i);
    const std::string ip = absl::StrCat("10.65.0.", i + 1, "/32");
    std::unique_ptr<LibnlNetlink> pod = OpenIn(pods[i]);
    VethSpec spec = Pair(name, "eth0", ByPath(pods[i].path()));
    spec.mtu = 1440;
    spec.mac = Mac("ee:ee:ee:ee:ee:ee");
    spec.index = 1000 + i;  // fixed indexes: no lookup round trip
    spec.peer_index = 2;
    const auto core_start = Clock::now();
    REQUIRE_OK(netlink->CreateVeth(spec));
    REQUIRE_OK(netlink->SetLinkUp(name, true));  // a route via a down device is ENETDOWN
    REQUIRE_OK(pod->ReplaceAddress({.prefix = *net::ParsePrefix(ip), .ifindex = 2}));
    REQUIRE_OK(netlink->ReplaceRoute(Route::Local(ip, name)));
    core += Clock::now() - core_start;
    REQUIRE_OK(pod->SetLinkUp("eth0", true));
    REQUIRE_OK(pod->ReplaceRoute(Route::Local("169.254.1.1/32", "eth0")));
    REQUIRE_OK(pod->ReplaceRoute(Route::Via("0.0.0.0/0", "169.254.1.1", "eth0")));
  }
  const auto total = Clock::now() - start;
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  auto ms = [](Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count() / kPods;
  };
  auto cpu_ms = [](const timeval& a, const timeval& b) {
    return ((b.tv_sec - a.tv_sec) * 1e3 + (b.tv_usec - a.tv_usec) / 1e3) / kPods;
  };
  std::printf("bench: per pod %.3f ms wall (CreateVeth + up + address + route: %.3f ms), "
              "CPU user %.3f ms sys %.3f ms\n",
              ms(total), ms(core), cpu_ms(before.ru_utime, after.ru_utime),
              cpu_ms(before.ru_stime, after.ru_stime));
}

}  // namespace
}  // namespace calico::kernel
