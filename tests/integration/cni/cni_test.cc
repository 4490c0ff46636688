// The calico CNI plugin end to end on one node: real ipamd and felixd in a namespace standing in
// for the host, pods in namespaces of their own, the plugin exec'd as a runtime execs it.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "tests/integration/cni/node_harness.h"

namespace calico::cni::testing {
namespace {

std::string Join(const std::vector<std::string>& v) { return absl::StrJoin(v, "\n"); }

// Pings `target` from the pod's namespace; true when every one of `count` echoes came back.
bool Ping(Node& node, const std::string& pod, const std::string& target, int count = 1) {
  ::calico::testing::ExecResult r = node.PodNetns(pod).Exec(
      absl::StrCat("ping -q -c ", count, " -W 2 ", target));
  if (r.status != 0) UNSCOPED_INFO("ping " << target << " from " << pod << ": " << r.output);
  return r.status == 0;
}

TEST_CASE("dual-stack pods ping each other and the host, CHECK passes, DEL leaves nothing") {
  Node node;
  REQUIRE(node.Start().ok());
  node.AddPodNetns("pod-a");
  node.AddPodNetns("pod-b");
  CniRun a = node.Cni("ADD", Pod("pod-a"), node.Conf());
  REQUIRE(a.exit_code == 0);
  CniRun b = node.Cni("ADD", Pod("pod-b"), node.Conf());
  REQUIRE(b.exit_code == 0);
  std::vector<std::string> ips_a = ResultIps(a.out), ips_b = ResultIps(b.out);
  REQUIRE(ips_a.size() == 2);
  REQUIRE(ips_b.size() == 2);
  INFO(a.out);

  nlohmann::json result = nlohmann::json::parse(a.out);
  CHECK(result["cniVersion"] == "1.0.0");
  CHECK(result["interfaces"][0]["name"].get<std::string>().rfind("cali", 0) == 0);
  CHECK(result["interfaces"][1]["sandbox"] == node.PodNetns("pod-a").path());
  CHECK(result["ips"][0]["address"].get<std::string>().find("/32") != std::string::npos);

  CHECK(Ping(node, "pod-a", ips_b[0]));   // IPv4 pod to pod
  CHECK(Ping(node, "pod-a", ips_b[1]));   // IPv6 pod to pod
  CHECK(Ping(node, "pod-b", ips_a[0]));
  CHECK(Ping(node, "pod-a", node.host_address()));   // pod to host, IPv4
  CHECK(Ping(node, "pod-a", node.host_address6()));  // pod to host, IPv6

  std::string conf_with_prev = node.Conf();
  nlohmann::json with_prev = nlohmann::json::parse(conf_with_prev);
  with_prev["prevResult"] = result;
  CniRun check = node.Cni("CHECK", Pod("pod-a"), with_prev.dump());
  CHECK(check.exit_code == 0);
  INFO(check.out);

  // The same ADD again (a runtime retry) returns the same addresses.
  CniRun again = node.Cni("ADD", Pod("pod-a"), node.Conf());
  CHECK(again.exit_code == 0);
  CHECK(ResultIps(again.out) == ips_a);

  CHECK(node.Cni("DEL", Pod("pod-a"), node.Conf()).exit_code == 0);
  CHECK(node.Cni("DEL", Pod("pod-b"), node.Conf()).exit_code == 0);
  CHECK(node.Cni("DEL", Pod("pod-b"), node.Conf()).exit_code == 0);  // idempotent
  CHECK(Join(node.Leftovers()) == "");
}

TEST_CASE("labels from args.cni.labels land on the WorkloadEndpoint with its profile and interface") {
  Node node(Node::Options{.node_name = "node1", .ipv4_pool = "10.86.0.0/24", .ipv6_pool = ""});
  REQUIRE(node.Start().ok());
  node.AddPodNetns("lab-a");
  nlohmann::json conf = nlohmann::json::parse(node.Conf("1.0.0", "calico-ipam", false));
  conf["args"] = {{"cni", {{"labels", {{{"key", "app"}, {"value", "web"}}}}}}};
  CniRun add = node.Cni("ADD", Pod("lab-a"), conf.dump());
  REQUIRE(add.exit_code == 0);
  CniRun wep = node.Calicoctl({"get", "wep", "node1-k8s-lab--a-eth0", "-n", "default", "-o", "json"});
  INFO(wep.out);
  REQUIRE(wep.exit_code == 0);
  nlohmann::json j = nlohmann::json::parse(wep.out);
  CHECK(j["metadata"]["labels"]["app"] == "web");
  CHECK(j["metadata"]["labels"]["projectcalico.org/namespace"] == "default");
  CHECK(j["spec"]["profiles"][0] == "kns.default");
  CHECK(j["spec"]["interfaceName"] == nlohmann::json::parse(add.out)["interfaces"][0]["name"]);
  CHECK(j["spec"]["ipNetworks"][0] == nlohmann::json::parse(add.out)["ips"][0]["address"]);
  CHECK(node.Cni("DEL", Pod("lab-a"), conf.dump()).exit_code == 0);
}

TEST_CASE("CHECK fails with a clear message when the pod's route or address is removed") {
  Node node;
  REQUIRE(node.Start().ok());
  node.AddPodNetns("pod-c");
  CniRun add = node.Cni("ADD", Pod("pod-c"), node.Conf("1.0.0", "calico-ipam", false));
  REQUIRE(add.exit_code == 0);
  std::string ip = ResultIps(add.out)[0];
  nlohmann::json conf = nlohmann::json::parse(node.Conf("1.0.0", "calico-ipam", false));
  conf["prevResult"] = nlohmann::json::parse(add.out);
  REQUIRE(node.Cni("CHECK", Pod("pod-c"), conf.dump()).exit_code == 0);

  REQUIRE(node.PodNetns("pod-c").Exec("ip route del default").status == 0);
  CniRun check = node.Cni("CHECK", Pod("pod-c"), conf.dump());
  CHECK(check.exit_code != 0);
  CHECK_THAT(ErrorMsg(check.out), Catch::Contains("route 0.0.0.0/0 via 169.254.1.1"));
  CHECK_THAT(ErrorMsg(check.out), Catch::Contains("is missing"));

  REQUIRE(node.PodNetns("pod-c").Exec(absl::StrCat("ip addr del ", ip, "/32 dev eth0")).status == 0);
  check = node.Cni("CHECK", Pod("pod-c"), conf.dump());
  CHECK(check.exit_code != 0);
  CHECK_THAT(ErrorMsg(check.out), Catch::Contains(absl::StrCat("address ", ip, "/32 is missing on eth0")));

  CHECK(node.Cni("DEL", Pod("pod-c"), node.Conf()).exit_code == 0);
  CHECK(Join(node.Leftovers()) == "");
}

TEST_CASE("felixd repairs a host route deleted by hand within its resync interval") {
  Node node;
  REQUIRE(node.Start().ok());
  node.AddPodNetns("pod-r");
  CniRun add = node.Cni("ADD", Pod("pod-r"), node.Conf("1.0.0", "calico-ipam", false));
  REQUIRE(add.exit_code == 0);
  std::string ip = ResultIps(add.out)[0];
  REQUIRE(node.Exec(absl::StrCat("ip route del ", ip, "/32")).status == 0);
  bool back = false;
  for (int i = 0; i < 40 && !back; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    back = node.Exec(absl::StrCat("ip route show ", ip, "/32 proto 80")).output.find("cali") !=
           std::string::npos;
  }
  CHECK(back);
  CHECK(Ping(node, "pod-r", node.host_address()));
  CHECK(node.Cni("DEL", Pod("pod-r"), node.Conf()).exit_code == 0);
}

TEST_CASE("SIGKILL of felixd while pods ping loses no ping, and its restart changes nothing") {
  Node node;
  REQUIRE(node.Start().ok());
  node.AddPodNetns("pod-x");
  node.AddPodNetns("pod-y");
  REQUIRE(node.Cni("ADD", Pod("pod-x"), node.Conf()).exit_code == 0);
  CniRun y = node.Cni("ADD", Pod("pod-y"), node.Conf());
  REQUIRE(y.exit_code == 0);
  std::string target = ResultIps(y.out)[0];
  REQUIRE(Ping(node, "pod-x", target));
  std::string before = node.StableKernelSnapshot();

  ::calico::testing::ExecResult ping;
  std::thread pinger([&] {
    ping = node.PodNetns("pod-x").Exec(absl::StrCat("ping -q -c 60 -i 0.05 -W 1 ", target));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  CHECK(node.felixd().Signal(SIGKILL) == 128 + SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  node.StartFelixd();
  REQUIRE(node.WaitReady().ok());
  pinger.join();
  INFO(ping.output);
  CHECK(ping.status == 0);
  CHECK_THAT(ping.output, Catch::Contains("60 received") && Catch::Contains(" 0% packet loss"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a resync after the restart
  CHECK(LineDiff(before, node.StableKernelSnapshot()) == "");
}

// Kills a daemon at several points of an ADD; the runtime's DEL must then leave nothing.
void KillDuringAdd(bool kill_felixd) {
  Node node;
  REQUIRE(node.Start().ok());
  int failed_adds = 0;
  // An ADD takes ~5-10 ms here: the delays span before, during and after each daemon's part.
  const std::vector<int> delays = {0, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 15000};
  for (int delay_us : delays) {
    std::string pod = absl::StrCat("pod-k", delay_us);
    node.AddPodNetns(pod);
    CniRun add;
    std::thread adder([&] { add = node.Cni("ADD", Pod(pod), node.Conf()); });
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    Process& victim = kill_felixd ? node.felixd() : node.ipamd();
    victim.Signal(SIGKILL);
    adder.join();
    if (add.exit_code != 0) {
      ++failed_adds;
      INFO(add.out);
      CHECK((ErrorCode(add.out) == 11 || ErrorCode(add.out) == 999 || ErrorCode(add.out) == 3));
    }
    kill_felixd ? node.StartFelixd() : node.StartIpamd();
    REQUIRE(node.WaitReady().ok());
    CniRun del = node.Cni("DEL", Pod(pod), node.Conf());
    INFO(del.out);
    CHECK(del.exit_code == 0);
    INFO("after killing at " << delay_us << " us");
    CHECK(Join(node.Leftovers()) == "");
  }
  WARN(failed_adds << " of " << delays.size() << " ADDs were cut off by the kill");
}

TEST_CASE("SIGKILL of felixd in the middle of ADD: DEL leaves no address, veth or route") {
  KillDuringAdd(true);
}

TEST_CASE("SIGKILL of ipamd in the middle of ADD: DEL leaves no address, veth or route") {
  KillDuringAdd(false);
}

TEST_CASE("bad inputs get the right CNI error and leave nothing behind") {
  Node::Options small;
  small.ipv4_pool = "10.78.0.0/30";
  small.ipv4_block_size = 30;
  small.ipv6_pool = "";
  Node node(small);
  REQUIRE(node.Start().ok());
  node.AddPodNetns("pod-bad");
  const std::string conf = node.Conf("1.0.0", "calico-ipam", false);

  SECTION("malformed JSON") {
    CniRun r = node.Cni("ADD", Pod("pod-bad"), "{\"cniVersion\": ");
    CHECK(r.exit_code != 0);
    CHECK(ErrorCode(r.out) == 6);
  }
  SECTION("unknown cniVersion") {
    nlohmann::json j = nlohmann::json::parse(conf);
    j["cniVersion"] = "9.9.9";
    CniRun r = node.Cni("ADD", Pod("pod-bad"), j.dump());
    CHECK(ErrorCode(r.out) == 1);
    CHECK_THAT(ErrorMsg(r.out), Catch::Contains("9.9.9"));
  }
  SECTION("missing CNI_NETNS") {
    CniRun r = node.Cni("ADD", Pod("pod-bad"), conf, "", {{"CNI_NETNS", ""}});
    CHECK(ErrorCode(r.out) == 4);
    CHECK_THAT(ErrorMsg(r.out), Catch::Contains("CNI_NETNS"));
  }
  SECTION("a netns that does not exist") {
    CniRun r = node.Cni("ADD", Pod("pod-bad", "eth0", "/run/netns/cct-does-not-exist"), conf);
    CHECK(r.exit_code != 0);
    CHECK_THAT(ErrorMsg(r.out), Catch::Contains("/run/netns/cct-does-not-exist"));
  }
  SECTION("an interface name that is too long") {
    CniRun r = node.Cni("ADD", Pod("pod-bad", "eth0-far-too-long"), conf);
    CHECK(ErrorCode(r.out) == 4);
    CHECK_THAT(ErrorMsg(r.out), Catch::Contains("CNI_IFNAME"));
  }
  SECTION("the pool is full") {
    for (int i = 0; i < 4; ++i) {
      std::string pod = absl::StrCat("pod-full", i);
      node.AddPodNetns(pod);
      REQUIRE(node.Cni("ADD", Pod(pod), conf).exit_code == 0);
    }
    CniRun r = node.Cni("ADD", Pod("pod-bad"), conf);
    CHECK(r.exit_code != 0);
    CHECK_THAT(ErrorMsg(r.out), Catch::Contains("10.78.0.0/30"));
    CHECK(node.Exec("ip -o link show | grep -c cali").output == "4\n");
    for (int i = 0; i < 4; ++i) {
      REQUIRE(node.Cni("DEL", Pod(absl::StrCat("pod-full", i)), conf).exit_code == 0);
    }
  }
  SECTION("daemons not running") {
    node.felixd().Signal(SIGTERM);
    node.ipamd().Signal(SIGTERM);
    CniRun r = node.Cni("ADD", Pod("pod-bad"), conf);
    CHECK(ErrorCode(r.out) == 11);
    CHECK_THAT(ErrorMsg(r.out), Catch::Contains("is not reachable"));
    REQUIRE(node.Start().ok());
  }
  INFO("stderr is where the plugin logs; stdout is only JSON");
  CHECK(Join(node.Leftovers()) == "");
  CHECK(node.PodNetns("pod-bad").Exec("ip -o link show | grep -c eth0 || true").output == "0\n");
}

TEST_CASE("the reference bridge plugin with calico-ipam gives working pods") {
  Node node(Node::Options{.node_name = "node1", .ipv4_pool = "10.79.0.0/24", .ipv6_pool = ""});
  REQUIRE(node.Start().ok());
  node.AddPodNetns("br-a");
  node.AddPodNetns("br-b");
  nlohmann::json conf = {
      {"cniVersion", "1.0.0"},
      {"name", "bridge-net"},
      {"type", "bridge"},
      {"bridge", "cctbr0"},
      {"ipam",
       {{"type", "calico-ipam"}, {"assign_ipv4", "true"}, {"assign_ipv6", "false"}}},
      {"ipamd_socket", node.dir() + "/ipam.sock"},
      {"felixd_socket", node.dir() + "/dataplane.sock"},
  };
  // bridge programs the host it runs on: run it in the node's namespace, as on a host.
  auto run_in_node = [&](const std::string& command, const std::string& pod) {
    return node.Cni(command, Pod(pod), conf.dump(), "/usr/lib/cni/bridge", {}, true);
  };
  CniRun a = run_in_node("ADD", "br-a");
  INFO(a.out << a.err);
  REQUIRE(a.exit_code == 0);
  CniRun b = run_in_node("ADD", "br-b");
  REQUIRE(b.exit_code == 0);
  std::string ip_b = ResultIps(b.out)[0];
  CHECK(nlohmann::json::parse(b.out)["ips"][0]["address"].get<std::string>().find("/24") ==
        std::string::npos);  // the block's length (/26), not the pool's
  CHECK(Ping(node, "br-a", ip_b, 3));
  CHECK(run_in_node("DEL", "br-a").exit_code == 0);
  CHECK(run_in_node("DEL", "br-b").exit_code == 0);
  node.Exec("ip link del cctbr0");
  CHECK(Join(node.Leftovers()) == "");
}

}  // namespace
}  // namespace calico::cni::testing

namespace calico::cni::testing {
namespace {

TEST_CASE("calico delegates to another IPAM plugin (host-local) by the spec's rules") {
  Node node(Node::Options{.node_name = "node1", .ipv4_pool = "10.83.0.0/24", .ipv6_pool = ""});
  REQUIRE(node.Start().ok());
  node.AddPodNetns("hl-a");
  node.AddPodNetns("hl-b");
  nlohmann::json conf = nlohmann::json::parse(node.Conf("1.0.0", "host-local", false));
  conf["ipam"] = {{"type", "host-local"},
                  {"ranges", {{{{"subnet", "10.84.0.0/24"}}}}},
                  {"dataDir", node.dir() + "/host-local"}};
  CniRun a = node.Cni("ADD", Pod("hl-a"), conf.dump());
  INFO(a.out << a.err);
  REQUIRE(a.exit_code == 0);
  CniRun b = node.Cni("ADD", Pod("hl-b"), conf.dump());
  REQUIRE(b.exit_code == 0);
  std::string ip_b = ResultIps(b.out)[0];
  CHECK(ip_b.rfind("10.84.0.", 0) == 0);
  CHECK(nlohmann::json::parse(b.out)["ips"][0]["address"] == ip_b + "/32");
  CHECK(Ping(node, "hl-a", ip_b));
  CHECK(node.Cni("DEL", Pod("hl-a"), conf.dump()).exit_code == 0);
  CHECK(node.Cni("DEL", Pod("hl-b"), conf.dump()).exit_code == 0);
  // host-local's own store is empty again: both addresses went back.
  CHECK(node.Exec("ls " + node.dir() + "/host-local/bridge-net 2>/dev/null; ls " + node.dir() +
                  "/host-local/k8s-pod-network | grep -c '^10\\.' || true")
            .output == "0\n");
  CHECK(Join(node.Leftovers()) == "");
}

TEST_CASE("older configs get results in their own version's format") {
  Node node(Node::Options{.node_name = "node1", .ipv4_pool = "10.85.0.0/24", .ipv6_pool = ""});
  REQUIRE(node.Start().ok());
  for (std::string version : {"0.3.1", "0.4.0"}) {
    std::string pod = "old-" + version.substr(2, 1);
    node.AddPodNetns(pod);
    CniRun add = node.Cni("ADD", Pod(pod), node.Conf(version, "calico-ipam", false));
    INFO(version << ": " << add.out);
    REQUIRE(add.exit_code == 0);
    nlohmann::json j = nlohmann::json::parse(add.out);
    CHECK(j["cniVersion"] == version);
    CHECK(j["ips"][0]["version"] == "4");  // pre-1.0 results name the family
    CHECK(node.Cni("DEL", Pod(pod), node.Conf(version, "calico-ipam", false)).exit_code == 0);
  }
  // CHECK does not exist before 0.4.0.
  node.AddPodNetns("old-c");
  CniRun check = node.Cni("CHECK", Pod("old-c"), node.Conf("0.3.1", "calico-ipam", false));
  CHECK(ErrorCode(check.out) == 1);
}

TEST_CASE("stopping felixd flushes nothing, and operators can ask it about its workloads") {
  Node node;
  REQUIRE(node.Start().ok());
  node.AddPodNetns("pod-s");
  REQUIRE(node.Cni("ADD", Pod("pod-s"), node.Conf()).exit_code == 0);
  std::string before = node.StableKernelSnapshot();
  // /readiness and /metrics on felixd's loopback port inside the node (bash's /dev/tcp: no curl).
  auto http_get = [&](const std::string& path) {
    return node.Exec("bash -c 'exec 3<>/dev/tcp/127.0.0.1/9099 && printf \"GET " + path +
                     " HTTP/1.0\\r\\n\\r\\n\" >&3 && cat <&3'").output;
  };
  CHECK_THAT(http_get("/readiness"), Catch::StartsWith("HTTP/1.1 200"));
  std::string metrics = http_get("/metrics");
  CHECK_THAT(metrics, Catch::Contains("felixd_ready 1") && Catch::Contains("felixd_workloads 1"));
  CniRun workloads = node.Calicoctl({"node", "workloads", "--felixd-socket=" + node.dir() + "/dataplane.sock"});
  INFO(workloads.out);
  CHECK(workloads.exit_code == 0);
  CHECK_THAT(workloads.out, Catch::Contains("node1-k8s-pod--s-eth0") && Catch::Contains("programmed") &&
                                Catch::Contains("ready, 1 workloads"));
  CHECK(node.felixd().Signal(SIGTERM) == 0);
  CHECK(LineDiff(before, node.KernelSnapshot()) == "");
  CniRun down = node.Calicoctl({"node", "workloads", "--felixd-socket=" + node.dir() + "/dataplane.sock"});
  CHECK(down.exit_code == 1);
  CHECK_THAT(down.out, Catch::Contains("did not answer"));
}

}  // namespace
}  // namespace calico::cni::testing
