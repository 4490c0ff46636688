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
  const Dispatch dispatch = GENERATE(Dispatch::kByGroup, Dispatch::kByInterface, Dispatch::kByLinkGroup);
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
  if (dispatch == Dispatch::kByLinkGroup) {
    // felixd's default: nft lists it (operators can read the table at 3 a.m.).
    CHECK(listing.find("iifgroup vmap @from-grp") != std::string::npos);
    CHECK(listing.find("oifgroup vmap @to-grp") != std::string::npos);
    CHECK(listing.find("type devgroup : verdict") != std::string::npos);
    return;
  }
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

// Packets the `ip t c` counter rule for `saddr` has seen in `ns` (see CountSources).
int Packets(const TestNetns& ns, const std::string& saddr) {
  std::string listing = Sh(ns, "nft list chain ip t c");
  std::string needle = absl::StrCat("ip saddr ", saddr, " counter packets ");
  size_t at = listing.find(needle);
  INFO(listing);
  REQUIRE(at != std::string::npos);
  return std::stoi(listing.substr(at + needle.size()));
}

// An input-hook counter per source address in `ns`: what source a packet arrived with.
void CountSources(const TestNetns& ns, std::initializer_list<const char*> sources) {
  Sh(ns, "nft add table ip t && nft add chain ip t c '{ type filter hook input priority 0; }'");
  for (const char* s : sources) Sh(ns, absl::StrCat("nft add rule ip t c ip saddr ", s, " counter"));
}

TEST_CASE("MnlNftables: NAT outgoing masquerades pool traffic leaving the pools, not within them",
          "[integration][nft]") {
  // pod (10.231.0.2, pool 10.231.0.0/24 natOutgoing) -- node (router) -- outside (192.168.231.2,
  // no route back to the pools) and -- pool2 (10.232.0.2, pool 10.232.0.0/24, no natOutgoing).
  Env env = Make("nat-node");
  TestNetns pod = OK_OR_FAIL(TestNetns::Create("nat-pod"));
  TestNetns outside = OK_OR_FAIL(TestNetns::Create("nat-out"));
  TestNetns pool2 = OK_OR_FAIL(TestNetns::Create("nat-pool2"));
  struct Link {
    const TestNetns* ns;
    std::string veth, node_ip, ip;
    bool default_route;
  };
  Sh(env.ns, "sysctl -qw net.ipv4.ip_forward=1 && ip link set lo up");
  for (const Link& l : {Link{&pod, "podveth", "10.231.0.1", "10.231.0.2", true},
                        Link{&outside, "outveth", "192.168.231.1", "192.168.231.2", false},
                        Link{&pool2, "p2veth", "10.232.0.1", "10.232.0.2", true}}) {
    Sh(env.ns, absl::StrCat("ip link add ", l.veth, " type veth peer name eth0 netns ", l.ns->name(),
                            " && ip addr add ", l.node_ip, "/24 dev ", l.veth, " && ip link set ",
                            l.veth, " up"));
    Sh(*l.ns, absl::StrCat("ip link set lo up && ip addr add ", l.ip, "/24 dev eth0 && ip link set ",
                           "eth0 up", l.default_route ? absl::StrCat(" && ip route add default via ", l.node_ip) : ""));
  }
  CountSources(outside, {"192.168.231.1", "10.231.0.2"});
  CountSources(pool2, {"10.232.0.1", "10.231.0.2"});
  // Distinct ICMP ids: each ping is a new conntrack entry, NATed (or not) by the table of now.
  int id = 1000;
  auto ping = [&](const std::string& dst) {
    return pod.Exec(absl::StrCat("ping -c 1 -W 1 -e ", ++id, " ", dst, " >/dev/null 2>&1")).status;
  };

  // Without NAT the outside sees the pod's address and cannot answer.
  CHECK(ping("192.168.231.2") != 0);
  CHECK(Packets(outside, "10.231.0.2") == 1);
  CHECK(Packets(outside, "192.168.231.1") == 0);

  NatOutgoing pools{{"10.231.0.0/24"}, {}, {"10.231.0.0/24", "10.232.0.0/24"}, {}};
  DesiredTable t;
  AddNatOutgoing(t, pools);
  REQUIRE_OK(Canonicalize(t));
  Converge(*env.nft, t);
  std::string listing = Sh(env.ns, "nft list chain inet calico nat-postrouting");
  INFO(listing);
  CHECK(listing.find("type nat hook postrouting priority srcnat; policy accept;") !=
        std::string::npos);
  CHECK(listing.find("ip saddr @nat-pools4 ip daddr != @all-pools4 masquerade") !=
        std::string::npos);

  // Leaving the pools: masqueraded to the node's address on the way out, and answered.
  CHECK(ping("192.168.231.2") == 0);
  CHECK(Packets(outside, "192.168.231.1") == 1);
  CHECK(Packets(outside, "10.231.0.2") == 1);
  // To another pool: the pod's own address.
  CHECK(ping("10.232.0.2") == 0);
  CHECK(Packets(pool2, "10.231.0.2") == 1);
  CHECK(Packets(pool2, "10.232.0.1") == 0);

  // The pool loses natOutgoing: an element-only delta, and the outside sees the pod again.
  pools.nat_pools4.clear();
  DesiredTable u;
  AddNatOutgoing(u, pools);
  REQUIRE_OK(Canonicalize(u));
  Delta d = ComputeDelta(u, ReadTable(*env.nft));
  CHECK(d.put_chains.empty());
  CHECK(d.delete_elements == std::vector<ElementChange>{{kNatPools4, "10.231.0.0/24", ""}});
  CHECK(d.size() == 1);
  REQUIRE_OK(env.nft->Apply(d));
  CHECK(ComputeDelta(u, ReadTable(*env.nft)).empty());
  CHECK(ping("192.168.231.2") != 0);
  CHECK(Packets(outside, "10.231.0.2") == 2);
  CHECK(Packets(outside, "192.168.231.1") == 1);

  // The outside address becomes a pool (natOutgoing back on): traffic to it is not NATed.
  pools.nat_pools4 = {"10.231.0.0/24"};
  pools.all_pools4.push_back("192.168.231.0/24");
  DesiredTable w;
  AddNatOutgoing(w, pools);
  REQUIRE_OK(Canonicalize(w));
  Converge(*env.nft, w);
  CHECK(ping("192.168.231.2") != 0);
  CHECK(Packets(outside, "10.231.0.2") == 3);
  CHECK(Packets(outside, "192.168.231.1") == 1);

  // Next to the skeleton (forward chain and all), a fresh writer adopts it without writes.
  DesiredTable full = Skeleton();
  AddNatOutgoing(full, pools);
  REQUIRE_OK(Canonicalize(full));
  Converge(*env.nft, full);
  auto fresh = OK_OR_FAIL(MnlNftables::Open(env.ns.path()));
  CHECK(ComputeDelta(full, ReadTable(*fresh)).empty());
}

}  // namespace
}  // namespace calico::felixd::nft
