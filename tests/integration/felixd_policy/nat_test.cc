// NAT outgoing and felixd restarts end to end on one node (the cni harness's node: real ipamd +
// felixd over an embedded datastore, pods made by the real CNI plugin):
// - an "outside" namespace made by the test, joined to the node by a veth and with no route back
//   to the pod pool, sees a pod's traffic with the node's address while the pool has
//   natOutgoing, and with the pod's address once the pool's natOutgoing is patched off (felixd
//   follows pool changes live); pod-to-pod traffic is never masqueraded. Sources are counted by
//   nft counter rules in the receiving namespace's prerouting (before rp_filter could drop).
// - a SIGKILLed felixd started again adopts `table inet calico` and the link groups with zero
//   nftables transactions, and a ping between allowed pods across the restart loses nothing.
// Traffic stays inside namespaces this test made; everything made is removed by destructors.
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

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/integration/cni/node_harness.h"

namespace calico::cni::testing {
namespace {

using Labels = std::map<std::string, std::string>;
using ::calico::testing::ExecResult;
using ::calico::testing::TestNetns;

struct PodAddr {
  std::string v4, v6;
};

// Retries `pred` every 100 ms until it holds or `timeout` passed; returns its last value.
bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout =
                                                        std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

class NatCluster {
 public:
  NatCluster() = default;
  ~NatCluster() {
    procs_.clear();  // by pid, before the namespaces go
    outside_.reset();
  }

  Node& node() { return node_; }

  void Start() {
    absl::Status st = node_.Start();
    INFO(st.ToString());
    REQUIRE(st.ok());
  }

  const PodAddr& AddPod(const std::string& name, const std::string& ns, const Labels& labels) {
    node_.AddPodNetns(name);
    nlohmann::json conf = nlohmann::json::parse(node_.Conf());
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [k, v] : labels) list.push_back({{"key", k}, {"value", v}});
    conf["args"] = {{"cni", {{"labels", list}}}};
    PodSpec spec = Pod(name);
    spec.ns = ns;
    CniRun add = node_.Cni("ADD", spec, conf.dump());
    INFO(add.out << add.err);
    REQUIRE(add.exit_code == 0);
    std::vector<std::string> ips = ResultIps(add.out);
    REQUIRE(ips.size() == 2);
    pods_[name] = {ips[0], ips[1]};
    Spawn("serve-" + name, {POLICY_PROBE_BINARY, "serve", "tcp:80", "udp:53"},
          node_.PodNetns(name).path());
    return pods_[name];
  }
  const PodAddr& pod(const std::string& name) { return pods_.at(name); }

  Process& Spawn(const std::string& tag, std::vector<std::string> argv, const std::string& netns) {
    auto p = std::make_unique<Process>(std::move(argv), std::map<std::string, std::string>{},
                                       node_.dir() + "/" + tag + ".log", netns);
    p->Spawn();
    procs_.push_back(std::move(p));
    return *procs_.back();
  }

  // The outside network: a namespace joined to the node by natup0 (node, 192.168.240.1/24) —
  // natup0p (outside, 192.168.240.2/24). Outside has no route to the pod pool.
  TestNetns& MakeOutside() {
    absl::StatusOr<TestNetns> ns = TestNetns::Create("outside");
    REQUIRE(ns.ok());
    outside_ = std::make_unique<TestNetns>(std::move(*ns));
    ExecResult r = node_.Exec(absl::StrCat("ip link add natup0 type veth peer name natup0p netns ",
                                           outside_->name(),
                                           " && ip addr add 192.168.240.1/24 dev natup0 && "
                                           "ip link set natup0 up"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    r = outside_->Exec("ip link set lo up && ip addr add 192.168.240.2/24 dev natup0p && "
                       "ip link set natup0p up");
    INFO(r.output);
    REQUIRE(r.status == 0);
    Spawn("serve-outside", {POLICY_PROBE_BINARY, "serve", "tcp:80"}, outside_->path());
    return *outside_;
  }

  // calicoctl with arguments; REQUIREs success.
  std::string Ctl(const std::vector<std::string>& args) {
    CniRun r = node_.Calicoctl(args);
    INFO("calicoctl " << absl::StrJoin(args, " ") << " → " << r.out << r.err);
    REQUIRE(r.exit_code == 0);
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

  // policy_probe from a pod: target → result word.
  std::map<std::string, std::string> Probe(const std::string& src, const std::vector<std::string>& targets) {
    std::string cmd = absl::StrCat(POLICY_PROBE_BINARY, " probe --timeout-ms=500");
    for (const std::string& t : targets) absl::StrAppend(&cmd, " ", t);
    ExecResult r = node_.PodNetns(src).Exec(cmd);
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

  std::string Status() {
    return Ctl({"node", "workloads", "--felixd-socket=" + node_.dir() + "/dataplane.sock"});
  }

 private:
  Node node_;
  std::unique_ptr<TestNetns> outside_;
  std::map<std::string, PodAddr> pods_;
  std::vector<std::unique_ptr<Process>> procs_;
  int counter_ = 0;
};

// Source counters in a namespace: table ip natcount, prerouting (before routing and rp_filter),
// one counter per source address of `sources` and one for every other source.
void AddSourceCounters(const TestNetns& ns, const std::vector<std::string>& sources) {
  std::string cmd =
      "nft add table ip natcount && nft 'add chain ip natcount pre "
      "{ type filter hook prerouting priority -300; policy accept; }'";
  std::string others;
  for (const std::string& s : sources) {
    absl::StrAppend(&cmd, " && nft add rule ip natcount pre ip saddr ", s, " counter");
    absl::StrAppend(&others, others.empty() ? "" : ", ", s);
  }
  absl::StrAppend(&cmd, " && nft add rule ip natcount pre ip saddr != { ", others, " } counter");
  ExecResult r = ns.Exec(cmd);
  INFO(cmd << "\n→ " << r.output);
  REQUIRE(r.status == 0);
}

// Packets counted per source ("other" for the catch-all rule), from `nft list table ip natcount`.
std::map<std::string, long> ReadSourceCounters(const TestNetns& ns, std::string* listing = nullptr) {
  ExecResult r = ns.Exec("nft list table ip natcount");
  if (listing != nullptr) *listing = r.output;
  REQUIRE(r.status == 0);
  std::map<std::string, long> out;
  static const std::regex kLine(R"(ip saddr (!= )?(\{[^}]*\}|\S+) counter packets (\d+))");
  for (std::sregex_iterator it(r.output.begin(), r.output.end(), kLine), end; it != end; ++it) {
    std::string key = (*it)[1].matched ? "other" : (*it)[2].str();
    out[key] = std::stol((*it)[3].str());
  }
  return out;
}

// after - before, per source (rule counters are anonymous: `nft reset counters` does not apply).
std::map<std::string, long> Delta(std::map<std::string, long> after, const std::map<std::string, long>& before) {
  for (auto& [k, v] : after) {
    auto it = before.find(k);
    if (it != before.end()) v -= it->second;
  }
  return after;
}

TEST_CASE("NAT outgoing: pod to outside is masqueraded to the node's address, pod to pod is not, "
          "and felixd follows the pool's natOutgoing live") {
  NatCluster c;
  c.Start();
  const std::string a = c.AddPod("a", "default", {{"app", "a"}}).v4;
  const std::string b = c.AddPod("b", "default", {{"app", "b"}}).v4;
  TestNetns& outside = c.MakeOutside();
  AddSourceCounters(outside, {"192.168.240.1", a});
  AddSourceCounters(c.node().PodNetns("b"), {a});

  // The harness's default IPv4 pool is ipamd's default: natOutgoing on (upstream's default).
  std::string pool = c.Ctl({"get", "ippool", "default-ipv4-ippool", "-o", "json"});
  INFO(pool);
  REQUIRE(nlohmann::json::parse(pool)["spec"].value("natOutgoing", false));

  // Each phase: traffic from pod a to outside (ping + TCP through the probe) and the source
  // address outside saw.
  auto to_outside = [&](bool masquerade) {
    INFO("natOutgoing " << (masquerade ? "true" : "false"));
    std::map<std::string, long> seen;
    std::string listing, ping_out, tcp;
    bool ok = Eventually([&] {
      std::map<std::string, long> before = ReadSourceCounters(outside);
      ExecResult ping = c.node().PodNetns("a").Exec("ping -c 1 -W 1 192.168.240.2");
      ping_out = ping.output;
      tcp = c.Probe("a", {"tcp:192.168.240.2:80"})["tcp:192.168.240.2:80"];
      seen = Delta(ReadSourceCounters(outside, &listing), before);
      if (masquerade) {
        return ping.status == 0 && tcp == "ok" && seen["192.168.240.1"] >= 2 && seen[a] == 0;
      }
      // Outside has no route back to the pool: the pod's own source arrives, no reply returns.
      return ping.status != 0 && tcp == "blocked" && seen[a] >= 2 && seen["192.168.240.1"] == 0;
    });
    INFO("ping: " << ping_out << "\ntcp: " << tcp << "\noutside counters (totals):\n" << listing
                  << "\nnode: nft list table inet calico\n"
                  << c.node().Exec("nft list table inet calico").output);
    CHECK(ok);
    if (masquerade) {
      CHECK(seen["192.168.240.1"] >= 2);
      CHECK(seen[a] == 0);
      CHECK(tcp == "ok");
    } else {
      CHECK(seen[a] >= 2);
      CHECK(seen["192.168.240.1"] == 0);
      CHECK(tcp != "ok");
    }
    CHECK(seen.count("other") == 1);  // the listing parsed
    CHECK(seen["other"] == 0);
  };
  // Pod to pod on the node keeps the pod's source (both pods are in a natOutgoing pool).
  auto pod_to_pod = [&] {
    std::map<std::string, long> seen;
    std::string listing, tcp;
    bool ok = Eventually([&] {
      std::map<std::string, long> before = ReadSourceCounters(c.node().PodNetns("b"));
      ExecResult ping = c.node().PodNetns("a").Exec("ping -c 1 -W 1 " + b);
      tcp = c.Probe("a", {"tcp:" + b + ":80"})["tcp:" + b + ":80"];
      seen = Delta(ReadSourceCounters(c.node().PodNetns("b"), &listing), before);
      return ping.status == 0 && tcp == "ok" && seen[a] >= 2;
    });
    INFO("tcp: " << tcp << "\npod b counters (totals):\n" << listing);
    CHECK(ok);
    CHECK(seen[a] >= 2);
    CHECK(seen.count("other") == 1);  // the listing parsed
    CHECK(seen["other"] == 0);
  };

  to_outside(true);
  pod_to_pod();

  c.Ctl({"patch", "ippool", "default-ipv4-ippool", "-p", R"({"spec":{"natOutgoing":false}})"});
  to_outside(false);
  pod_to_pod();

  c.Ctl({"patch", "ippool", "default-ipv4-ippool", "-p", R"({"spec":{"natOutgoing":true}})"});
  to_outside(true);
  pod_to_pod();
}

// `nft list table` without anything that counts traffic.
std::string StripCounters(const std::string& listing) {
  static const std::regex kCounter(R"(counter packets \d+ bytes \d+)");
  return std::regex_replace(listing, kCounter, "counter");
}

// cali* link → its group ("default" or a number), from `ip -o -d link show`.
std::map<std::string, std::string> LinkGroups(Node& node) {
  ExecResult r = node.Exec("ip -o -d link show");
  std::map<std::string, std::string> out;
  static const std::regex kLink(R"(^\d+: (cali[^:@ ]+)[@:].* group (\S+))");
  for (const std::string& line : std::vector<std::string>(absl::StrSplit(r.output, '\n', absl::SkipEmpty()))) {
    std::smatch m;
    if (std::regex_search(line, m, kLink)) out[m[1].str()] = m[2].str();
  }
  return out;
}

// N from felixd's "policy: programmed, ... N transactions, ..." status line; -1 when absent.
long PolicyTransactions(const std::string& status, bool* programmed) {
  static const std::regex kPolicy(R"(policy: (programmed|NOT PROGRAMMED),.* (\d+) transactions,)");
  std::smatch m;
  if (!std::regex_search(status, m, kPolicy)) return -1;
  if (programmed != nullptr) *programmed = m[1].str() == "programmed";
  return std::stol(m[2].str());
}

TEST_CASE("felixd restart: adopts table inet calico and the link groups with zero transactions, "
          "and an allowed ping across the restart loses nothing") {
  NatCluster c;
  c.Start();
  c.Apply(R"(apiVersion: projectcalico.org/v3
kind: Profile
metadata:
  name: kns.prod
spec:
  ingress:
  - action: Allow
  egress:
  - action: Allow
  labelsToApply:
    pcns.projectcalico.org/name: prod
)");
  const std::string web = c.AddPod("web", "prod", {{"app", "web"}}).v4;
  c.AddPod("client", "prod", {{"app", "client"}});
  c.AddPod("other", "prod", {{"app", "other"}});
  c.Apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from-client
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - podSelector:
        matchLabels: {app: client}
)");
  const std::vector<std::string> targets = {"tcp:" + web + ":80", "udp:" + web + ":53",
                                            "icmp:" + web};
  // client → web allowed, other → web blocked.
  auto matrix_holds = [&](std::string* seen) {
    std::map<std::string, std::string> from_client = c.Probe("client", targets);
    std::map<std::string, std::string> from_other = c.Probe("other", targets);
    bool all = true;
    seen->clear();
    for (const std::string& t : targets) {
      all = all && from_client[t] == "ok" && from_other[t] == "blocked";
      absl::StrAppend(seen, "client ", t, " ", from_client[t], "; other ", t, " ", from_other[t], "\n");
    }
    return all;
  };
  std::string seen;
  {
    bool ok = Eventually([&] { return matrix_holds(&seen); });
    INFO(seen);
    REQUIRE(ok);
  }

  // The programmed state, once felixd stopped writing (two resync intervals without change).
  std::string table_before, status_before;
  std::map<std::string, std::string> groups_before;
  {
    std::string last;
    bool stable = Eventually(
        [&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(1000));
          std::string now = StripCounters(c.node().Exec("nft list table inet calico").output);
          bool same = now == last;
          last = now;
          return same;
        },
        std::chrono::milliseconds(8000));
    REQUIRE(stable);
    table_before = last;
    groups_before = LinkGroups(c.node());
    status_before = c.Status();
  }
  INFO("before restart:\n" << status_before);
  REQUIRE(groups_before.size() == 3);
  REQUIRE(table_before.find("table inet calico") != std::string::npos);

  // A ping between allowed pods across the kill and restart: 100 × 50 ms.
  Process& ping = c.Spawn("ping", {"/bin/sh", "-c", "exec ping -n -i 0.05 -c 100 -W 1 " + web},
                          c.node().PodNetns("client").path());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto t0 = std::chrono::steady_clock::now();
  c.node().felixd().Signal(SIGKILL);
  c.node().StartFelixd();
  absl::Status ready = c.node().WaitReady();
  INFO(ready.ToString());
  REQUIRE(ready.ok());
  std::string status_after;
  long tx = -1;
  {
    bool programmed = false;
    bool ok = Eventually([&] {
      status_after = c.Status();
      tx = PolicyTransactions(status_after, &programmed);
      return programmed;
    });
    INFO(status_after);
    REQUIRE(ok);
  }
  const auto restart_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  // The ping must span the whole restart for its loss count to mean anything.
  const bool ping_spanned_restart = !ping.Exited();
  // A resync interval (1 s) later: felixd's follow-up refresh did not write either.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  status_after = c.Status();
  tx = PolicyTransactions(status_after, nullptr);
  std::string table_after = StripCounters(c.node().Exec("nft list table inet calico").output);
  std::map<std::string, std::string> groups_after = LinkGroups(c.node());
  INFO("restart to programmed: " << restart_ms << " ms\nafter restart:\n" << status_after);
  INFO("table diff:\n" << LineDiff(table_before, table_after));
  CHECK(ping_spanned_restart);
  CHECK(tx == 0);
  CHECK(table_after == table_before);
  CHECK(groups_after == groups_before);

  {
    bool ok = Eventually([&] { return matrix_holds(&seen); });
    INFO(seen);
    CHECK(ok);
  }

  // The ping finishes 5 s after it started.
  bool done = Eventually([&] { return ping.Exited(); }, std::chrono::milliseconds(10000));
  std::string ping_log = ping.LogTail();
  INFO("ping:\n" << ping_log);
  REQUIRE(done);
  CHECK(ping_log.find("100 packets transmitted, 100 received, 0% packet loss") != std::string::npos);
}

}  // namespace
}  // namespace calico::cni::testing
