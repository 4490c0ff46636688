// Host endpoints end to end on one node (the cni harness's node: real ipamd + felixd over an
// embedded datastore; its namespace is the "host"). A "peer" namespace made by this test is
// joined to the host by a veth, hepup0 (host, 192.168.241.1/24) — hepup0p (peer,
// 192.168.241.2/24, a route to the pod pool via the host). policy_probe servers run in the host
// namespace, the peer and a pod. Checked with real TCP/UDP:
// - a HostEndpoint for hepup0 with no policy: into the host only the failsafe ports (tcp:22,
//   udp:68), out of it only outbound failsafe ports (udp:53, tcp:179); upstream's default deny;
// - a GlobalNetworkPolicy selecting it opens what its rules say, nothing more;
// - forwarded traffic peer → pod is not host endpoint policy until an applyOnForward policy
//   selects the endpoint; then it is policed by that policy (and still by the pod's);
// - the pod ↔ its own host is never host endpoint policy; VXLAN from an address a Node resource
//   has passes the host endpoint, from another one it does not;
// - `calicoctl policy explain` agrees for host traffic (failsafe, deny, allow);
// - a SIGKILLed felixd adopts the table with the host endpoint with zero transactions;
// - deleting the HostEndpoint opens the host again; an interfaceName "*" endpoint then polices
//   hepup0 likewise, never loopback or the pod's traffic to its host; one without
//   interfaceName polices the interface its expectedIP appears on (within a refresh);
// - preDNAT: a Deny drops what normal policy allows, matches the destination before a DNAT
//   rule of the test's own table (tcp 18080 → 8080), failsafe ports come first; restart adopts.
// Everything made is removed by destructors (namespaces by name, processes by pid).
#include <signal.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/integration/cni/node_harness.h"

namespace calico::cni::testing {
namespace {

using ::calico::testing::ExecResult;
using ::calico::testing::TestNetns;

constexpr char kHost[] = "192.168.241.1";
constexpr char kPeer[] = "192.168.241.2";
// Probe targets: "tcp:80" → "tcp:<host or peer>:80".
std::string ToHost(const std::string& t) { return absl::StrCat(t.substr(0, 3), ":", kHost, t.substr(3)); }
std::string ToPeer(const std::string& t) { return absl::StrCat(t.substr(0, 3), ":", kPeer, t.substr(3)); }

class HepCluster {
 public:
  ~HepCluster() {
    procs_.clear();  // by pid, before the namespaces go
    peer_.reset();
  }
  Node& node() { return node_; }

  void Start() {
    absl::Status st = node_.Start();
    INFO(st.ToString());
    REQUIRE(st.ok());
  }

  std::string AddPod(const std::string& name) {
    node_.AddPodNetns(name);
    CniRun add = node_.Cni("ADD", Pod(name), node_.Conf());
    INFO(add.out << add.err);
    REQUIRE(add.exit_code == 0);
    std::vector<std::string> ips = ResultIps(add.out);
    REQUIRE(!ips.empty());
    Spawn("serve-" + name, {POLICY_PROBE_BINARY, "serve", "tcp:80", "udp:53"}, node_.PodNetns(name).path());
    return ips[0];
  }

  Process& Spawn(const std::string& tag, std::vector<std::string> argv, const std::string& netns) {
    auto p = std::make_unique<Process>(std::move(argv), std::map<std::string, std::string>{},
                                       node_.dir() + "/" + tag + ".log", netns);
    p->Spawn();
    procs_.push_back(std::move(p));
    return *procs_.back();
  }

  // The peer: its own namespace, a veth to the host, a route to the pod pool via the host.
  void MakePeer() {
    absl::StatusOr<TestNetns> ns = TestNetns::Create("hep-peer");
    REQUIRE(ns.ok());
    peer_ = std::make_unique<TestNetns>(std::move(*ns));
    ExecResult r = node_.Exec(absl::StrCat("ip link add hepup0 type veth peer name hepup0p netns ",
                                           peer_->name(), " && ip addr add ", kHost,
                                           "/24 dev hepup0 && ip link set hepup0 up"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    r = peer_->Exec(absl::StrCat("ip link set lo up && ip addr add ", kPeer,
                                 "/24 dev hepup0p && ip link set hepup0p up && ip route add ",
                                 node_.options().ipv4_pool, " via ", kHost));
    INFO(r.output);
    REQUIRE(r.status == 0);
    Spawn("serve-peer", {POLICY_PROBE_BINARY, "serve", "tcp:80", "tcp:179", "tcp:8080", "udp:53"},
          peer_->path());
    Spawn("serve-host", {POLICY_PROBE_BINARY, "serve", "tcp:22", "tcp:80", "tcp:8080", "udp:53", "udp:68",
                         "udp:4789"},
          node_.ns().path());
  }
  TestNetns& peer() { return *peer_; }

  std::string Ctl(const std::vector<std::string>& args, int want_exit = 0) {
    CniRun r = node_.Calicoctl(args);
    INFO("calicoctl " << absl::StrJoin(args, " ") << " → " << r.out << r.err);
    REQUIRE(r.exit_code == want_exit);
    return r.out;
  }
  void Apply(const std::string& yaml) {
    std::string path = absl::StrCat(node_.dir(), "/res-", counter_++, ".yaml");
    {
      std::ofstream f(path);
      f << yaml;
    }
    Ctl({"apply", "-f", path});
  }

  // policy_probe in a namespace: target → result word (ok, blocked, refused, error ...).
  std::map<std::string, std::string> Probe(const TestNetns& from, const std::vector<std::string>& targets) {
    std::string cmd = absl::StrCat(POLICY_PROBE_BINARY, " probe --timeout-ms=500");
    for (const std::string& t : targets) absl::StrAppend(&cmd, " ", t);
    ExecResult r = from.Exec(cmd);
    std::map<std::string, std::string> out;
    for (const std::string& line : std::vector<std::string>(absl::StrSplit(r.output, '\n', absl::SkipEmpty()))) {
      size_t sp = line.find(' ');
      if (sp != std::string::npos) out[line.substr(0, sp)] = line.substr(sp + 1);
    }
    for (const std::string& t : targets) {
      if (!out.count(t)) out[t] = "error (no output) " + r.output;
    }
    return out;
  }

  // Waits (≤ `wait`) until every (namespace, target) shows what is expected; CHECKs each.
  struct Want {
    const TestNetns* from;
    std::string from_name;
    std::string target;
    std::string result;  // ok | blocked
  };
  void CheckMatrix(const std::string& scenario, const std::vector<Want>& wants,
                   std::chrono::seconds wait = std::chrono::seconds(5)) {
    std::map<std::string, std::string> seen;
    auto holds = [&] {
      bool all = true;
      for (const Want& w : wants) {
        std::string got = Probe(*w.from, {w.target})[w.target];
        seen[w.from_name + " " + w.target] = got;
        all = all && got == w.result;
      }
      return all;
    };
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (!holds() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    for (const Want& w : wants) {
      INFO(scenario << ": " << w.from_name << " → " << w.target << "\nnft list table inet calico:\n"
                    << node_.Exec("nft list table inet calico").output);
      CHECK(seen[w.from_name + " " + w.target] == w.result);
    }
  }

  // calicoctl policy explain against this node's felixd: (exit code: 0 allowed, 3 denied; output).
  std::pair<int, std::string> Explain(const std::string& src, const std::string& dst, const std::string& proto,
                                      int port) {
    CniRun r = node_.Calicoctl({"policy", "explain", "--source=" + src, "--destination=" + dst,
                                "--protocol=" + proto, absl::StrCat("--port=", port),
                                "--felixd-socket=" + node_.dir() + "/dataplane.sock"});
    return {r.exit_code, r.out + r.err};
  }

  std::string Status() {
    return Ctl({"node", "workloads", "--felixd-socket=" + node_.dir() + "/dataplane.sock"});
  }

 private:
  Node node_;
  std::unique_ptr<TestNetns> peer_;
  std::vector<std::unique_ptr<Process>> procs_;
  int counter_ = 0;
};

// N from felixd's "policy: programmed, ... N transactions," status line; -1 when absent.
long PolicyTransactions(const std::string& status) {
  static const std::regex kPolicy(R"(policy: programmed,.* (\d+) transactions,)");
  std::smatch m;
  if (!std::regex_search(status, m, kPolicy)) return -1;
  return std::stol(m[1].str());
}

constexpr char kHostEndpoint[] = R"(apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: node1-hepup0
  labels: {role: edge}
spec:
  node: node1
  interfaceName: hepup0
  expectedIPs: [192.168.241.1]
)";

TEST_CASE("host endpoint: failsafe ports and default deny for the host, policy opens what it "
          "says, applyOnForward polices forwarded traffic, own workloads unaffected") {
  HepCluster c;
  c.Start();
  const std::string pod = c.AddPod("a");
  c.MakePeer();
  TestNetns& peer = c.peer();
  TestNetns& host = c.node().ns();
  TestNetns& pod_ns = c.node().PodNetns("a");
  auto in = ToHost;
  auto out = ToPeer;
  const std::string to_pod80 = "tcp:" + pod + ":80", to_pod53 = "udp:" + pod + ":53";

  // No host endpoint: nothing of this is policed.
  c.CheckMatrix("no host endpoint",
                {{&peer, "peer", in("tcp:80"), "ok"}, {&peer, "peer", in("tcp:8080"), "ok"},
                 {&peer, "peer", in("udp:53"), "ok"}, {&host, "host", out("tcp:80"), "ok"},
                 {&peer, "peer", to_pod80, "ok"}, {&peer, "peer", to_pod53, "ok"}});

  c.Apply(kHostEndpoint);
  // Default deny for the host through hepup0, failsafe ports open; forwarded traffic and the pod
  // ↔ its own host untouched.
  const std::vector<HepCluster::Want> default_deny = {
      {&peer, "peer", in("tcp:22"), "ok"},      // failsafe in
      {&peer, "peer", in("udp:68"), "ok"},      // failsafe in
      {&peer, "peer", in("tcp:80"), "blocked"},
      {&peer, "peer", in("tcp:8080"), "blocked"},
      {&peer, "peer", in("udp:53"), "blocked"},  // 53 is an outbound failsafe port only
      {&host, "host", out("udp:53"), "ok"},      // failsafe out
      {&host, "host", out("tcp:179"), "ok"},     // failsafe out
      {&host, "host", out("tcp:80"), "blocked"},
      {&peer, "peer", to_pod80, "ok"},           // forwarded: no applyOnForward policy
      {&peer, "peer", to_pod53, "ok"},
      {&pod_ns, "pod", in("tcp:8080"), "ok"},    // pod → own host: not host endpoint policy
      {&host, "host", "tcp:" + pod + ":80", "ok"},  // host → own pod
  };
  c.CheckMatrix("host endpoint, no policy", default_deny);

  // VXLAN from a Calico node passes the host endpoint (node-to-node pod traffic is not host
  // endpoint policy); from an address no Node has, it does not.
  c.CheckMatrix("VXLAN, peer not a node", {{&peer, "peer", in("udp:4789"), "blocked"}});
  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: peer-node
spec:
  bgp: {ipv4Address: 192.168.241.2/24}
)");
  c.CheckMatrix("VXLAN, peer is a node",
                {{&peer, "peer", in("udp:4789"), "ok"}, {&peer, "peer", in("tcp:8080"), "blocked"}});

  // The explainer agrees (exit 0 allowed, 3 denied).
  auto explain = [&](const std::string& src, const std::string& dst, const std::string& proto, int port) {
    return c.Explain(src, dst, proto, port);
  };
  {
    auto [code, text] = explain(kPeer, kHost, "TCP", 22);
    INFO(text);
    CHECK(code == 0);
    CHECK(text.find("failsafe") != std::string::npos);
    std::tie(code, text) = explain(kPeer, kHost, "TCP", 8080);
    INFO(text);
    CHECK(code == 3);
    CHECK(text.find("hep:node1-hepup0") != std::string::npos);
  }

  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: edge
spec:
  selector: role == 'edge'
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80]}
  egress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80]}
)");
  c.CheckMatrix("policy edge (host traffic only)",
                {{&peer, "peer", in("tcp:80"), "ok"},
                 {&peer, "peer", in("tcp:8080"), "blocked"},
                 {&peer, "peer", in("tcp:22"), "ok"},
                 {&peer, "peer", in("udp:53"), "blocked"},
                 {&host, "host", out("tcp:80"), "ok"},
                 {&host, "host", out("tcp:8080"), "blocked"},
                 {&peer, "peer", to_pod80, "ok"},
                 {&peer, "peer", to_pod53, "ok"},
                 {&pod_ns, "pod", in("tcp:8080"), "ok"}});
  {
    auto [code, text] = explain(kPeer, kHost, "TCP", 80);
    INFO(text);
    CHECK(code == 0);
    std::tie(code, text) = explain(kPeer, kHost, "TCP", 8080);
    INFO(text);
    CHECK(code == 3);
  }

  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: edge-forward
spec:
  selector: role == 'edge'
  applyOnForward: true
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80]}
)");
  c.CheckMatrix("applyOnForward ingress policy",
                {{&peer, "peer", to_pod80, "ok"},
                 {&peer, "peer", to_pod53, "blocked"},  // forwarded in via hepup0: policed now
                 {&pod_ns, "pod", out("tcp:8080"), "ok"},  // forwarded out: no egress AOF policy
                 {&peer, "peer", in("tcp:22"), "ok"},
                 {&peer, "peer", in("tcp:8080"), "blocked"},
                 {&pod_ns, "pod", in("tcp:8080"), "ok"}});

  // felixd SIGKILLed and started again: adopts the table, host endpoint included, writing
  // nothing; the same verdicts.
  std::string before = c.node().Exec("nft -s list table inet calico").output;
  c.node().felixd().Signal(SIGKILL);
  c.node().StartFelixd();
  absl::Status ready = c.node().WaitReady();
  INFO(ready.ToString());
  REQUIRE(ready.ok());
  std::string status;
  long tx = -1;
  for (int i = 0; i < 50 && tx < 0; ++i) {
    status = c.Status();
    tx = PolicyTransactions(status);
    if (tx < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a refresh later, still nothing
  status = c.Status();
  INFO(status << "\ntable diff:\n" << LineDiff(before, c.node().Exec("nft -s list table inet calico").output));
  CHECK(PolicyTransactions(status) == 0);
  CHECK(c.node().Exec("nft -s list table inet calico").output == before);
  c.CheckMatrix("after restart",
                {{&peer, "peer", to_pod53, "blocked"}, {&peer, "peer", in("tcp:22"), "ok"},
                 {&peer, "peer", in("tcp:8080"), "blocked"}, {&peer, "peer", in("tcp:80"), "ok"}});

  // Deleted: the host is open again, forwarded traffic too.
  c.Ctl({"delete", "hostendpoint", "node1-hepup0"});
  c.CheckMatrix("host endpoint deleted",
                {{&peer, "peer", in("tcp:8080"), "ok"}, {&peer, "peer", in("udp:53"), "ok"},
                 {&host, "host", out("tcp:8080"), "ok"}, {&peer, "peer", to_pod53, "ok"}});

  // interfaceName "*": every host interface but loopback and the workloads' is the endpoint.
  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: node1-all
  labels: {role: edge}
spec:
  node: node1
  interfaceName: "*"
)");
  c.CheckMatrix("all-interfaces host endpoint",
                {{&peer, "peer", in("tcp:80"), "ok"},        // policy edge
                 {&peer, "peer", in("tcp:8080"), "blocked"},
                 {&peer, "peer", in("tcp:22"), "ok"},        // failsafe
                 {&host, "host", out("tcp:8080"), "blocked"},
                 {&host, "host", "tcp:127.0.0.1:8080", "ok"},  // loopback: not an endpoint
                 {&peer, "peer", to_pod80, "ok"},            // edge-forward applies to "*" too
                 {&peer, "peer", to_pod53, "blocked"},
                 {&pod_ns, "pod", in("tcp:8080"), "ok"}});   // pod → own host
  c.Ctl({"delete", "hostendpoint", "node1-all"});
  c.CheckMatrix("all-interfaces host endpoint deleted",
                {{&peer, "peer", in("tcp:8080"), "ok"}, {&host, "host", out("tcp:8080"), "ok"}});

  // No interfaceName: the interface carrying one of its expectedIPs is the endpoint. None does
  // yet (not policed, and said so); the address appears on hepup0 and a refresh later (felixd's
  // --policy_refresh_interval, 10 s) hepup0 is policed as if named.
  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: node1-byip
  labels: {role: edge}
spec:
  node: node1
  expectedIPs: [192.168.241.3]
)");
  c.CheckMatrix("expectedIPs on no interface", {{&peer, "peer", in("tcp:8080"), "ok"}});
  CHECK(c.Status().find("no interface of this node carries one of its expectedIPs") != std::string::npos);
  REQUIRE(c.node().Exec("ip addr add 192.168.241.3/24 dev hepup0").status == 0);
  c.CheckMatrix("host endpoint found by expectedIPs",
                {{&peer, "peer", in("tcp:80"), "ok"},  // policy edge
                 {&peer, "peer", in("tcp:8080"), "blocked"},
                 {&peer, "peer", in("tcp:22"), "ok"},  // failsafe
                 {&host, "host", out("tcp:8080"), "blocked"},
                 {&pod_ns, "pod", in("tcp:8080"), "ok"}},
                std::chrono::seconds(15));
  c.Ctl({"delete", "hostendpoint", "node1-byip"});
  c.CheckMatrix("host endpoint found by expectedIPs deleted", {{&peer, "peer", in("tcp:8080"), "ok"}});
}

TEST_CASE("host endpoint: preDNAT policy runs before normal policy and sees the pre-DNAT "
          "destination, failsafe first, restart writes nothing") {
  HepCluster c;
  c.Start();
  c.MakePeer();
  TestNetns& peer = c.peer();
  auto in = ToHost;
  // The test's own DNAT (a table it owns, removed with the node's namespace): tcp 18080 to the
  // host's 8080, at dstnat (-100), after felixd's pre-dnat chain (-110).
  ExecResult r = c.node().Exec(
      "nft add table ip hep-test-dnat && nft add chain ip hep-test-dnat pre '{ type nat hook "
      "prerouting priority -100; }' && nft add rule ip hep-test-dnat pre tcp dport 18080 dnat "
      "to 192.168.241.1:8080");
  INFO(r.output);
  REQUIRE(r.status == 0);
  c.Apply(kHostEndpoint);
  // Normal policy: 80 and 8080 into the host.
  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: edge-in}
spec:
  selector: role == 'edge'
  types: [Ingress]
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [80, 8080]}}
)");
  c.CheckMatrix("normal policy only", {{&peer, "peer", in("tcp:80"), "ok"},
                                       {&peer, "peer", in("tcp:8080"), "ok"},
                                       {&peer, "peer", in("tcp:18080"), "ok"},  // DNAT to 8080
                                       {&peer, "peer", in("udp:53"), "blocked"}});
  // preDNAT: deny the peer's TCP 80 (normal policy allows it) and the pre-DNAT port 18080 (its
  // post-DNAT port, 8080, stays allowed); deny everything else from the peer's net — except
  // the failsafe ports, which come first; an Allow only lets the packet on to normal policy.
  const char* edge_pre = R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: edge-pre}
spec:
  selector: role == 'edge'
  preDNAT: true
  applyOnForward: true
  ingress:
  - {action: Deny, protocol: TCP, source: {nets: [192.168.241.2/32]}, destination: {ports: [80, 18080]}}
  - {action: Allow, protocol: TCP, destination: {ports: [8080]}}
  - {action: Allow, protocol: UDP, destination: {ports: [53]}}
  - {action: Deny, source: {nets: [192.168.241.0/24]}}
)";
  c.Apply(edge_pre);
  c.CheckMatrix("preDNAT", {{&peer, "peer", in("tcp:80"), "blocked"},     // preDNAT Deny before an Allow
                            {&peer, "peer", in("tcp:18080"), "blocked"},  // original destination port
                            {&peer, "peer", in("tcp:8080"), "ok"},
                            {&peer, "peer", in("udp:53"), "blocked"},     // preDNAT Allow, normal policy denies
                            {&peer, "peer", in("tcp:22"), "ok"}});        // failsafe before the Deny
  std::string table = c.node().Exec("nft list chain inet calico pre-dnat").output;
  INFO(table);
  CHECK(std::regex_search(table, std::regex("hook prerouting priority (-110|dstnat - 10)")));
  {
    auto [code, text] = c.Explain(kPeer, kHost, "TCP", 80);
    INFO(text);
    CHECK(code == 3);
    CHECK(text.find("preDNAT") != std::string::npos);
  }

  // SIGKILLed and started again: the table, pre-dnat included, adopted with zero transactions.
  std::string before = c.node().Exec("nft -s list table inet calico").output;
  c.node().felixd().Signal(SIGKILL);
  c.node().StartFelixd();
  absl::Status ready = c.node().WaitReady();
  INFO(ready.ToString());
  REQUIRE(ready.ok());
  std::string status;
  long tx = -1;
  for (int i = 0; i < 50 && tx < 0; ++i) {
    status = c.Status();
    tx = PolicyTransactions(status);
    if (tx < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  status = c.Status();
  INFO(status);
  CHECK(PolicyTransactions(status) == 0);
  CHECK(c.node().Exec("nft -s list table inet calico").output == before);

  // The preDNAT policy deleted: normal policy alone again.
  c.Ctl({"delete", "globalnetworkpolicy", "edge-pre"});
  c.CheckMatrix("preDNAT deleted", {{&peer, "peer", in("tcp:80"), "ok"},
                                    {&peer, "peer", in("tcp:18080"), "ok"}});

  // The same on an all-interfaces ("*") host endpoint instead of the named one.
  c.Ctl({"delete", "hostendpoint", "node1-hepup0"});
  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: node1-all
  labels: {role: edge}
spec:
  node: node1
  interfaceName: "*"
  expectedIPs: [192.168.241.1]
)");
  c.Apply(edge_pre);
  c.CheckMatrix("preDNAT on \"*\"", {{&peer, "peer", in("tcp:80"), "blocked"},
                                      {&peer, "peer", in("tcp:18080"), "blocked"},
                                      {&peer, "peer", in("tcp:8080"), "ok"},
                                      {&peer, "peer", in("udp:53"), "blocked"},
                                      {&peer, "peer", in("tcp:22"), "ok"}});
  std::string any = c.node().Exec("nft list chain inet calico hep-any-pre-dnat").output;
  INFO(any);
  CHECK(any.find("goto hpd-") != std::string::npos);
}

TEST_CASE("host endpoint: doNotTrack policy decides before conntrack — its Allow skips normal "
          "policy untracked, its Deny drops, failsafe first, deletion restores normal policy") {
  HepCluster c;
  c.Start();
  c.MakePeer();
  TestNetns& peer = c.peer();
  TestNetns& host = c.node().ns();
  auto in = ToHost;
  auto out = ToPeer;
  // The test's own observer (a table it owns, removed with the node's namespace): packets to
  // 8080 that conntrack did not track, counted after felixd's input chain.
  ExecResult r = c.node().Exec(
      "nft add table inet dnt-test && nft add chain inet dnt-test in '{ type filter hook input "
      "priority 10; }' && nft add rule inet dnt-test in tcp dport 8080 ct state untracked counter");
  INFO(r.output);
  REQUIRE(r.status == 0);
  c.Apply(kHostEndpoint);
  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: edge-in}
spec:
  selector: role == 'edge'
  types: [Ingress]
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [80]}}
)");
  c.CheckMatrix("normal policy only", {{&peer, "peer", in("tcp:80"), "ok"},
                                       {&peer, "peer", in("tcp:8080"), "blocked"},
                                       {&peer, "peer", in("udp:53"), "blocked"},
                                       {&host, "host", out("tcp:80"), "blocked"}});  // no egress policy
  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: edge-dnt}
spec:
  selector: role == 'edge'
  doNotTrack: true
  applyOnForward: true
  types: [Ingress, Egress]
  ingress:
  - {action: Deny, protocol: TCP, source: {nets: [192.168.241.2/32]}, destination: {ports: [80]}}
  - {action: Allow, protocol: TCP, destination: {ports: [8080]}}
  - {action: Allow, protocol: TCP, source: {ports: [80]}}
  egress:
  - {action: Allow, protocol: TCP, source: {ports: [8080]}}
  - {action: Allow, protocol: TCP, destination: {ports: [80]}}
)");
  // Untracked traffic needs both directions allowed: the replies have no conntrack entry.
  c.CheckMatrix("doNotTrack", {{&peer, "peer", in("tcp:80"), "blocked"},   // untracked Deny before normal Allow
                               {&peer, "peer", in("tcp:8080"), "ok"},      // untracked Allow over normal deny
                               {&peer, "peer", in("udp:53"), "blocked"},   // no decision: normal policy
                               {&peer, "peer", in("tcp:22"), "ok"},        // failsafe before the Deny
                               {&host, "host", out("tcp:80"), "ok"}});     // untracked out and back
  std::string counted = c.node().Exec("nft list chain inet dnt-test in").output;
  INFO(counted);
  std::smatch m;
  REQUIRE(std::regex_search(counted, m, std::regex("packets (\\d+)")));
  CHECK(std::stol(m[1].str()) > 0);  // conntrack never saw the 8080 connection
  std::string raw = c.node().Exec("nft list chain inet calico raw-prerouting").output;
  INFO(raw);
  CHECK(std::regex_search(raw, std::regex("hook prerouting priority (-300|raw)")));
  {
    auto [code, text] = c.Explain(kPeer, kHost, "TCP", 8080);
    INFO(text);
    CHECK(code == 0);
    CHECK(text.find("doNotTrack") != std::string::npos);
  }
  c.Ctl({"delete", "globalnetworkpolicy", "edge-dnt"});
  c.CheckMatrix("doNotTrack deleted", {{&peer, "peer", in("tcp:80"), "ok"},
                                       {&peer, "peer", in("tcp:8080"), "blocked"},
                                       {&host, "host", out("tcp:80"), "blocked"}});
  CHECK(c.node().Exec("nft list map inet calico hep-untracked-in").output.find("hepup0") == std::string::npos);
}

}  // namespace
}  // namespace calico::cni::testing
