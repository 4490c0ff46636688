// MnlNftables against the real kernel (root), each test in TestNetns namespaces of its own: the
// skeleton, element deltas of every key type, chain replace as one transaction, drift restore,
// adoption by a fresh writer without rule churn, and real traffic through a "node" namespace.
// The host's own nftables are never touched.

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "felixd/nft/delta.h"
#include "felixd/nft/layout.h"
#include "felixd/nft/mnl_nftables.h"
#include "tests/support/netns/test_netns.h"

namespace calico::felixd::nft {
namespace {

using ::calico::testing::ExecResult;
using ::calico::testing::TestNetns;

template <typename T>
T Require(absl::StatusOr<T> result, std::string_view what) {
  if (!result.ok()) FAIL(what << ": " << result.status().ToString());
  return std::move(result).value();
}
#define OK_OR_FAIL(expr) Require((expr), #expr)
#define REQUIRE_OK(expr)                                                        \
  do {                                                                          \
    absl::Status s_ = (expr);                                                   \
    if (!s_.ok()) FAIL(#expr << ": " << s_.ToString());                         \
  } while (0)

struct Env {
  TestNetns ns;
  std::unique_ptr<MnlNftables> nft;
};

Env Make(std::string_view tag) {
  if (!::calico::testing::IsRoot()) FAIL("needs root");
  TestNetns ns = OK_OR_FAIL(TestNetns::Create(tag));
  auto nft = OK_OR_FAIL(MnlNftables::Open(ns.path()));
  return Env{std::move(ns), std::move(nft)};
}

TableState ReadTable(Nftables& nft) {
  auto state = OK_OR_FAIL(nft.Read());
  REQUIRE(state.has_value());
  return *state;
}

// Applies ComputeDelta(desired, kernel) and checks the kernel then holds exactly `desired`.
void Converge(Nftables& nft, const DesiredTable& desired) {
  auto actual = OK_OR_FAIL(nft.Read());
  REQUIRE_OK(nft.Apply(ComputeDelta(desired, actual)));
  TableState after = ReadTable(nft);
  CHECK(after == ExpectedState(desired));
  CHECK(ComputeDelta(desired, after).empty());
}

std::string Sh(const TestNetns& ns, std::string_view cmd) {
  ExecResult r = ns.Exec(cmd);
  INFO(cmd << " -> " << r.output);
  REQUIRE(r.status == 0);
  return r.output;
}

DesiredTable PolicyTable() {
  DesiredTable t = Skeleton();
  t.sets["sel-web"] = {SetSpec{"sel-web", KeyType::kIpv4, false, false}, {{"10.65.0.1", ""}}};
  t.sets["net-a"] = {SetSpec{"net-a", KeyType::kIpv4, true, false},
                     {{"192.168.0.0/16", ""}, {"172.16.5.0/24", ""}, {"10.9.9.9", ""}}};
  t.sets["net6"] = {SetSpec{"net6", KeyType::kIpv6, true, false}, {{"fd00::/64", ""}}};
  t.sets["ports"] = {SetSpec{"ports", KeyType::kPort, true, false}, {{"80", ""}, {"8000-9000", ""}}};
  t.sets["np-http"] = {SetSpec{"np-http", KeyType::kIpv4ProtoPort, false, false},
                       {{"10.65.0.2 . 6 . 8080", ""}}};
  Chain pi{"po-web-i", std::nullopt, {}};
  pi.rules.push_back(Rule().Add(AddrSetMatch{4, Dir::kSource, "sel-web", false})
                         .Add(L4ProtoMatch{6, false})
                         .Add(PortSetMatch{Dir::kDest, "ports", false})
                         .Add(AllowMark())
                         .Add(Return()));
  pi.rules.push_back(Rule().Add(AddrSetMatch{4, Dir::kSource, "net-a", true})
                         .Add(L4ProtoMatch{17, false})
                         .Add(PortMatch{Dir::kDest, 53, 54, false})
                         .Add(Drop()));
  pi.rules.push_back(Rule().Add(NamedPortSetMatch{4, Dir::kDest, "np-http", false})
                         .Add(Log{"calico-allow "})
                         .Add(Counter{})
                         .Add(AllowMark())
                         .Add(Return()));
  pi.rules.push_back(Rule().Add(L4ProtoMatch{1, false})
                         .Add(IcmpMatch{4, 8, 0, false})
                         .Add(PassMark())
                         .Add(Return()));
  pi.rules.push_back(Rule().Add(AddrSetMatch{6, Dir::kSource, "net6", false}).Add(AllowMark()).Add(Return()));
  t.chains[pi.name] = pi;
  Chain pe{"po-web-e", std::nullopt, {Rule().Add(AllowMark()).Add(Return())}};
  t.chains[pe.name] = pe;
  EndpointPolicies in{{TierChains{{"po-web-i"}, false}}, {}};
  EndpointPolicies out{{TierChains{{"po-web-e"}, false}}, {}};
  AddEndpoint(t, Endpoint{"cali1111", {"10.65.0.1"}, in, out});
  AddEndpoint(t, Endpoint{"cali2222", {"10.65.0.2", "fd00::2"}, in, out});
  REQUIRE_OK(Canonicalize(t));
  return t;
}

TEST_CASE("MnlNftables creates the skeleton in one transaction and reads it back",
          "[integration][nft]") {
  const Dispatch dispatch = GENERATE(Dispatch::kByGroup, Dispatch::kByInterface);
  Env env = Make("nft-skel");
  CHECK(!OK_OR_FAIL(env.nft->Read()).has_value());
  DesiredTable t = Skeleton(LayoutOptions{EndpointToHost::kDrop, dispatch});
  Converge(*env.nft, t);
  if (dispatch == Dispatch::kByGroup) {
    // nft 1.0.6 aborts printing the chained lookups (layout.h); its maps list fine.
    std::string maps = Sh(env.ns, "nft list map inet calico from-wep; nft list map inet calico from-grp");
    CHECK(maps.find("type ifname : ifname") != std::string::npos);
    CHECK(maps.find("type ifname : verdict") != std::string::npos);
    CHECK(ReadTable(*env.nft).chains.at("from-wep").rule_tags[5] ==
          RuleTag(Rule().Add(IfnameVmap{true, kFromGroupMap, kFromWepMap})));
    return;
  }
  std::string listing = Sh(env.ns, "nft list table inet calico");
  CHECK(listing.find("iifname vmap @from-wep") != std::string::npos);
  CHECK(listing.find("iifname . ip saddr != @wep-src4 drop") != std::string::npos);
  CHECK(listing.find("type filter hook forward priority filter; policy accept;") !=
        std::string::npos);
}

TEST_CASE("MnlNftables programs sets of every key type, rules, and element deltas",
          "[integration][nft]") {
  Env env = Make("nft-elem");
  DesiredTable t = PolicyTable();
  Converge(*env.nft, t);
  // The kernel's own rendering of what we compiled parses back in nft syntax.
  std::string listing = Sh(env.ns, "nft list chain inet calico po-web-i");
  INFO(listing);
  CHECK(listing.find("ip saddr @sel-web") != std::string::npos);
  CHECK(listing.find("dport @ports") != std::string::npos);  // nft: "tcp dport"
  CHECK(listing.find("ip saddr != @net-a") != std::string::npos);
  CHECK(listing.find("ip daddr . meta l4proto . th dport @np-http") != std::string::npos);
  CHECK(listing.find("comment \"cali:") != std::string::npos);
  std::string net = Sh(env.ns, "nft list set inet calico net-a");
  CHECK(net.find("192.168.0.0/16") != std::string::npos);

  // One pod joins a selector, one leaves a net, a port range changes; a map entry moves.
  t.sets["sel-web"].elements["10.65.0.7"] = "";
  t.sets["net-a"].elements.erase("172.16.5.0/24");
  t.sets["ports"].elements.erase("8000-9000");
  t.sets["ports"].elements["8000-8999"] = "";
  t.sets[kToWepMap].elements["cali1111"] = "drop";
  Delta d = ComputeDelta(t, ReadTable(*env.nft));
  CHECK(d.put_chains.empty());
  CHECK(d.add_elements.size() == 3);
  CHECK(d.delete_elements.size() == 3);
  Converge(*env.nft, t);
  // A set whose spec changes is replaced along with the chains that use it.
  t.sets["sel-web"].spec.interval = true;
  d = ComputeDelta(t, ReadTable(*env.nft));
  CHECK(d.delete_sets == std::vector<std::string>{"sel-web"});
  CHECK(d.put_chains.size() == 1);
  Converge(*env.nft, t);
}

TEST_CASE("MnlNftables replaces a chain atomically and applies nothing of a failing delta",
          "[integration][nft]") {
  Env env = Make("nft-atomic");
  DesiredTable t = PolicyTable();
  Converge(*env.nft, t);
  TableState before = ReadTable(*env.nft);

  Delta bad;
  bad.add_elements.push_back({"sel-web", "10.65.0.99", ""});
  bad.put_chains.push_back(Chain{"po-web-i", std::nullopt, {Rule().Add(Jump("no-such-chain"))}});
  absl::Status s = env.nft->Apply(bad);
  CHECK(absl::IsNotFound(s));
  CHECK(s.message().find("no-such-chain") != std::string_view::npos);
  CHECK(ReadTable(*env.nft) == before);

  t.chains["po-web-i"].rules = {Rule().Add(AddrSetMatch{4, Dir::kSource, "sel-web", false}).Add(Drop())};
  Converge(*env.nft, t);
  CHECK(ReadTable(*env.nft).chains.at("po-web-i").rule_tags.size() == 1);
}

TEST_CASE("MnlNftables: drift is restored by the next delta", "[integration][nft]") {
  Env env = Make("nft-drift");
  DesiredTable t = PolicyTable();
  Converge(*env.nft, t);
  Sh(env.ns, "nft flush chain inet calico po-web-i");
  Sh(env.ns, "nft delete element inet calico sel-web '{ 10.65.0.1 }'");
  Sh(env.ns, "nft add element inet calico wep-src4 '{ \"cali1111\" . 10.0.0.66 }'");
  Sh(env.ns, "nft insert rule inet calico forward accept");
  Sh(env.ns, "nft add chain inet calico stray");
  Delta d = ComputeDelta(t, ReadTable(*env.nft));
  CHECK(d.put_chains.size() == 2);  // po-web-i, forward
  CHECK(d.delete_chains == std::vector<std::string>{"stray"});
  Converge(*env.nft, t);

  Sh(env.ns, "nft delete table inet calico");
  Converge(*env.nft, t);
}

TEST_CASE("MnlNftables: a fresh writer adopts the table without touching a rule",
          "[integration][nft]") {
  Env env = Make("nft-adopt");
  DesiredTable t = PolicyTable();
  Converge(*env.nft, t);
  std::string handles = Sh(env.ns, "nft -a list table inet calico");
  auto fresh = OK_OR_FAIL(MnlNftables::Open(env.ns.path()));
  Delta d = ComputeDelta(t, OK_OR_FAIL(fresh->Read()));
  CHECK(d.empty());
  REQUIRE_OK(fresh->Apply(d));
  CHECK(Sh(env.ns, "nft -a list table inet calico") == handles);
}

TEST_CASE("MnlNftables: a writer opened on another table leaves inet calico alone",
          "[integration][nft]") {
  Env env = Make("nft-other");
  DesiredTable t = PolicyTable();
  Converge(*env.nft, t);
  TableState calico = ReadTable(*env.nft);
  auto other = OK_OR_FAIL(MnlNftables::Open(env.ns.path(), "calico-egress"));
  CHECK(!OK_OR_FAIL(other->Read()).has_value());
  // (kByInterface: nft 1.0.6 aborts even `nft list tables` once a table holds kByGroup's rule.)
  DesiredTable e = Skeleton(LayoutOptions{EndpointToHost::kDrop, Dispatch::kByInterface,
                                          EgressHook::kPrerouting});
  e.chains.erase("forward");
  e.chains.erase("input");
  e.chains.erase("to-wep");
  REQUIRE_OK(Canonicalize(e));
  REQUIRE_OK(other->Apply(ComputeDelta(e, std::nullopt)));
  CHECK(ComputeDelta(e, OK_OR_FAIL(other->Read())).empty());
  CHECK(Sh(env.ns, "nft list tables").find("table inet calico-egress") != std::string::npos);
  CHECK(ReadTable(*env.nft) == calico);
  Sh(env.ns, "nft delete table inet calico-egress");
  CHECK(ReadTable(*env.nft) == calico);
}

// pod-a (10.65.0.1) -- caliaaaa [node] calibbbb -- pod-b (10.65.0.2), routed by the node.
TEST_CASE("MnlNftables: a selector set change flips a ping from dropped to allowed",
          "[integration][nft]") {
  const Dispatch dispatch = GENERATE(Dispatch::kByGroup, Dispatch::kByInterface);
  const EgressHook egress = GENERATE(EgressHook::kForwardAndInput, EgressHook::kPrerouting);
  Env env = Make("nft-node");
  TestNetns a = OK_OR_FAIL(TestNetns::Create("nft-pa"));
  TestNetns b = OK_OR_FAIL(TestNetns::Create("nft-pb"));
  struct Pod {
    const TestNetns* ns;
    std::string veth, ip;
  };
  for (const Pod& p : {Pod{&a, "caliaaaa", "10.65.0.1"}, Pod{&b, "calibbbb", "10.65.0.2"}}) {
    Sh(env.ns, absl::StrCat("ip link add ", p.veth, " type veth peer name eth0 netns ", p.ns->name()));
    Sh(env.ns, absl::StrCat("ip link set ", p.veth, " up && sysctl -qw net.ipv4.conf.", p.veth,
                            ".proxy_arp=1 net.ipv4.neigh.", p.veth, ".proxy_delay=0 && ip route add ", p.ip,
                            "/32 dev ", p.veth));
    Sh(*p.ns, absl::StrCat("ip link set lo up && ip link set eth0 up && ip addr add ", p.ip,
                           "/32 dev eth0 && ip route add 169.254.1.1 dev eth0 scope link && ",
                           "ip route add default via 169.254.1.1 dev eth0"));
  }
  // Proxy ARP answers for 169.254.1.1 only when the node routes it elsewhere (a default route on
  // a real node).
  Sh(env.ns, "sysctl -qw net.ipv4.ip_forward=1 && ip link set lo up && ip route add 169.254.1.1/32 dev lo");
  Sh(env.ns, "ip addr add 10.99.0.1/32 dev lo");  // the node's own address (input path)

  DesiredTable t = Skeleton(LayoutOptions{EndpointToHost::kAccept, dispatch, egress});
  t.sets["sel-client"] = {SetSpec{"sel-client", KeyType::kIpv4, false, false}, {}};
  t.chains["po-allow-client-i"] = Chain{
      "po-allow-client-i", std::nullopt,
      {Rule().Add(AddrSetMatch{4, Dir::kSource, "sel-client", false}).Add(AllowMark()).Add(Return())}};
  t.chains["pro-all"] = Chain{"pro-all", std::nullopt, {Rule().Add(AllowMark()).Add(Return())}};
  EndpointPolicies open{{}, {"pro-all"}};
  EndpointPolicies guarded{{TierChains{{"po-allow-client-i"}, false}}, {"pro-all"}};
  AddEndpoint(t, Endpoint{"caliaaaa", {"10.65.0.1"}, open, open});
  AddEndpoint(t, Endpoint{"calibbbb", {"10.65.0.2"}, guarded, open});
  Converge(*env.nft, t);

  const std::string ping = "ping -c 1 -W 1 10.65.0.2 >/dev/null 2>&1";
  CHECK(a.Exec(ping).status != 0);  // pod-b's ingress policy selects nobody yet
  t.sets["sel-client"].elements["10.65.0.1"] = "";
  Delta d = ComputeDelta(t, ReadTable(*env.nft));
  CHECK(d.size() == 1);
  REQUIRE_OK(env.nft->Apply(d));
  CHECK(a.Exec(ping).status == 0);
  if (dispatch == Dispatch::kByGroup) {
    // pod-b moves to an existing group (pod-a's, no ingress policy) and back: one data element
    // of to-wep changes its value each time; no chain, no verdict element.
    t.sets["sel-client"].elements.clear();
    Converge(*env.nft, t);
    CHECK(a.Exec(ping).status != 0);
    t.sets[kToWepMap].elements["calibbbb"] = GroupKey(true, open);
    d = ComputeDelta(t, ReadTable(*env.nft));
    CHECK(d.put_chains.empty());
    CHECK(d.add_elements == std::vector<ElementChange>{{kToWepMap, "calibbbb", GroupKey(true, open)}});
    CHECK(d.delete_elements.size() == 1);
    REQUIRE_OK(env.nft->Apply(d));
    CHECK(a.Exec(ping).status == 0);
    t.sets[kToWepMap].elements["calibbbb"] = GroupKey(true, guarded);
    Converge(*env.nft, t);
    CHECK(a.Exec(ping).status != 0);
    t.sets["sel-client"].elements["10.65.0.1"] = "";
    Converge(*env.nft, t);
    CHECK(a.Exec(ping).status == 0);
  }
  // Workload to host: egress policy, then DefaultEndpointToHostAction (Accept here).
  const std::string ping_host = "ping -c 1 -W 1 10.99.0.1 >/dev/null 2>&1";
  CHECK(a.Exec(ping_host).status == 0);
  EndpointPolicies deny{{TierChains{{}, false}}, {}};  // a tier with no allow: end-of-tier drop
  AddEndpoint(t, Endpoint{"caliaaaa", {"10.65.0.1"}, open, deny});
  Converge(*env.nft, t);
  CHECK(a.Exec(ping_host).status != 0);
  CHECK(a.Exec(ping).status != 0);
  AddEndpoint(t, Endpoint{"caliaaaa", {"10.65.0.1"}, open, open});
  Converge(*env.nft, t);
  CHECK(a.Exec(ping_host).status == 0);
  // Spoofed source from pod-a: dropped even though pod-b would allow it.
  Sh(a, "ip addr add 10.65.0.9/32 dev eth0");
  t.sets["sel-client"].elements["10.65.0.9"] = "";
  Converge(*env.nft, t);
  CHECK(a.Exec("ping -c 1 -W 1 -I 10.65.0.9 10.65.0.2 >/dev/null 2>&1").status != 0);
  // An interface felixd does not know: fail closed.
  t.sets[kFromWepMap].elements.erase("caliaaaa");
  Converge(*env.nft, t);
  CHECK(a.Exec(ping).status != 0);
}

}  // namespace
}  // namespace calico::felixd::nft
