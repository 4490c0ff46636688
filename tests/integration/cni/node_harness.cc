#include "tests/integration/cni/node_harness.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace calico::cni::testing {
namespace {

bool Inherited(std::string_view entry) {
  for (std::string_view prefix : {"DATASTORE_TYPE=", "CALICO_", "ETCD_", "NO_DEFAULT_POOLS=",
                                  "NODENAME=", "IPAMD_", "CNI_"}) {
    if (entry.substr(0, prefix.size()) == prefix) return false;
  }
  return true;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The child makes only system calls before execve, so vfork is safe; nothing the child touches
// is modified, which is what -Wclobbered cannot see.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wclobbered"
pid_t SpawnPlugin(bool fast, char** argv, char** envp, int in, int out, int err, int ns_fd) {
  pid_t pid = fast ? vfork() : fork();
  if (pid == 0) {
    if (in < 0 || out < 0 || err < 0) _exit(125);
    if (ns_fd >= 0 && setns(ns_fd, CLONE_NEWNET) != 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(argv[0], argv, envp);
    _exit(127);
  }
  return pid;
}
#pragma GCC diagnostic pop

}  // namespace

// ---- TempDir ----

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr && *base ? base : "/tmp", "/calico-cni-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

// ---- Process ----

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
                 std::string log, std::string netns_path)
    : argv_(std::move(argv)), env_(std::move(env)), log_(std::move(log)),
      netns_path_(std::move(netns_path)) {}

Process::~Process() {
  if (pid_ > 0) Signal(SIGKILL);
}

void Process::Spawn() {
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    if (Inherited(*e)) envs.emplace_back(*e);
  }
  for (const auto& [k, v] : env_) envs.push_back(k + "=" + v);
  std::vector<char*> argp, envp;
  for (std::string& s : argv_) argp.push_back(s.data());
  argp.push_back(nullptr);
  for (std::string& s : envs) envp.push_back(s.data());
  envp.push_back(nullptr);
  int ns_fd = netns_path_.empty() ? -1 : open(netns_path_.c_str(), O_RDONLY | O_CLOEXEC);
  std::string log = log_;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls: the parent may run gRPC threads.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (ns_fd >= 0 && setns(ns_fd, CLONE_NEWNET) != 0) _exit(126);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execve(argp[0], argp.data(), envp.data());
    _exit(127);
  }
  if (ns_fd >= 0) close(ns_fd);
  pid_ = pid;
}

bool Process::Exited() {
  if (pid_ <= 0) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return true;
  }
  return false;
}

int Process::Signal(int sig, absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (absl::Now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

std::string Process::LogTail(size_t max_bytes) const {
  std::string log = ReadFile(log_);
  return log.size() > max_bytes ? log.substr(log.size() - max_bytes) : log;
}

// ---- Node ----

Node::Node() : Node(Options{}) {}

Node::Node(Options options) : options_(std::move(options)) {
  absl::StatusOr<::calico::testing::TestNetns> ns = ::calico::testing::TestNetns::Create("node");
  if (!ns.ok()) throw std::runtime_error(std::string(ns.status().message()));
  ns_ = std::make_unique<::calico::testing::TestNetns>(std::move(*ns));
  // A host has an uplink with a default route; proxy ARP for 169.254.1.1 answers only when
  // the kernel has a route to it through another interface (as upstream Calico relies on too).
  Exec(absl::StrCat("ip link set lo up && ip addr add ", host_address(), "/32 dev lo && ",
                    "ip -6 addr add ", host_address6(), "/128 dev lo && "
                    "ip link add uplink0 mtu 1500 type veth peer name uplink0p && "
                    "ip link set uplink0 up && ip link set uplink0p up && "
                    "ip addr add 192.168.78.2/24 dev uplink0 && "
                    "ip route add default via 192.168.78.254 dev uplink0"));
  std::map<std::string, std::string> env = {{"CALICO_DATASTORE_PATH", dir() + "/calico.db"},
                                            {"DATASTORE_TYPE", "embedded"}};
  std::map<std::string, std::string> ipamd_env = env;
  ipamd_env["CALICO_IPV4POOL_CIDR"] = options_.ipv4_pool;
  ipamd_env["CALICO_IPV4POOL_BLOCK_SIZE"] = std::to_string(options_.ipv4_block_size);
  if (!options_.ipv6_pool.empty()) ipamd_env["CALICO_IPV6POOL_CIDR"] = options_.ipv6_pool;
  ipamd_ = std::make_unique<Process>(
      std::vector<std::string>{IPAMD_BINARY, "--node=" + options_.node_name,
                               "--socket=" + dir() + "/ipam.sock", "--http_listen=127.0.0.1:0",
                               "--leak_grace=1h"},
      ipamd_env, dir() + "/ipamd.log", ns_->path());
  felixd_ = std::make_unique<Process>(
      std::vector<std::string>{FELIXD_BINARY, "--node=" + options_.node_name,
                               "--socket=" + dir() + "/dataplane.sock",
                               "--http_listen=127.0.0.1:9099",
                               "--resync_interval=" + options_.resync_interval,
                               "--endpoint_to_host_action=" + options_.endpoint_to_host_action},
      env, dir() + "/felixd.log", ns_->path());
}

Node::~Node() {
  // Daemons first (they hold sockets in the namespace), then pods, then the node namespace.
  felixd_.reset();
  ipamd_.reset();
  pods_.clear();
  ns_.reset();
}

void Node::StartIpamd() { ipamd_->Spawn(); }

void Node::StartFelixd() { felixd_->Spawn(); }

absl::Status Node::Start() {
  StartIpamd();
  StartFelixd();
  return WaitReady();
}

absl::Status Node::WaitReady(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  PodSpec none;
  CniRun last;
  while (absl::Now() < deadline) {
    if (ipamd_->Exited()) return absl::InternalError("ipamd exited: " + ipamd_->LogTail());
    if (felixd_->Exited()) return absl::InternalError("felixd exited: " + felixd_->LogTail());
    last = Cni("STATUS", none, Conf("1.1.0"));
    if (last.exit_code == 0) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("daemons not ready: ", last.out, "\nipamd: ",
                                                  ipamd_->LogTail(), "\nfelixd: ", felixd_->LogTail()));
}

std::string Node::Conf(std::string_view cni_version, std::string_view ipam_type, bool ipv6) const {
  nlohmann::json conf = {
      {"cniVersion", cni_version},
      {"name", "k8s-pod-network"},
      {"type", "calico"},
      {"log_level", "info"},
      {"nodename", options_.node_name},
      {"ipamd_socket", dir() + "/ipam.sock"},
      {"felixd_socket", dir() + "/dataplane.sock"},
      {"ipam",
       {{"type", ipam_type},
        {"assign_ipv4", "true"},
        {"assign_ipv6", ipv6 && !options_.ipv6_pool.empty() ? "true" : "false"}}},
  };
  return conf.dump();
}

std::string Node::AddPodNetns(const std::string& name) {
  absl::StatusOr<::calico::testing::TestNetns> ns = ::calico::testing::TestNetns::Create(name);
  if (!ns.ok()) throw std::runtime_error(std::string(ns.status().message()));
  auto owned = std::make_unique<::calico::testing::TestNetns>(std::move(*ns));
  std::string path = owned->path();
  pods_[name] = std::move(owned);
  return path;
}

::calico::testing::TestNetns& Node::PodNetns(const std::string& name) { return *pods_.at(name); }

::calico::testing::ExecResult Node::Exec(const std::string& cmd) { return ns_->Exec(cmd); }

CniRun Node::Cni(std::string_view command, const PodSpec& pod, const std::string& conf,
                 const std::string& plugin, std::map<std::string, std::string> extra_env,
                 bool in_node) {
  std::map<std::string, std::string> env = {
      {"CNI_COMMAND", std::string(command)},
      {"CNI_PATH", std::string(CNI_PLUGIN_DIR) + ":/usr/lib/cni"},
  };
  if (!pod.name.empty() && command != "STATUS" && command != "VERSION") {
    env["CNI_CONTAINERID"] = pod.container_id.empty() ? "cid-" + pod.name : pod.container_id;
    env["CNI_IFNAME"] = pod.ifname;
    std::string netns = pod.netns;
    if (netns.empty() && pods_.count(pod.name)) netns = pods_.at(pod.name)->path();
    env["CNI_NETNS"] = netns;
    env["CNI_ARGS"] = absl::StrCat("IgnoreUnknown=1;K8S_POD_NAMESPACE=", pod.ns,
                                   ";K8S_POD_NAME=", pod.name);
  }
  for (auto& [k, v] : extra_env) {
    if (v.empty()) {
      env.erase(k);
    } else {
      env[k] = v;
    }
  }
  std::string binary = plugin.empty() ? std::string(CNI_PLUGIN_DIR) + "/calico" : plugin;
  // Per-call files, so calls may run concurrently (the benchmark's parallel ADDs).
  static std::atomic<int> counter{0};
  std::string base = absl::StrCat(dir(), "/cni.", counter++);
  std::string out_path = base + ".out", err_path = base + ".err", in_path = base + ".in";
  {
    std::ofstream in(in_path, std::ios::trunc);
    in << conf;
  }
  const int ns_fd = in_node ? open(ns_->path().c_str(), O_RDONLY | O_CLOEXEC) : -1;
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    if (Inherited(*e)) envs.emplace_back(*e);
  }
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& s : envs) envp.push_back(s.data());
  envp.push_back(nullptr);
  char* argv[] = {binary.data(), nullptr};
  // Opened here with O_CLOEXEC (concurrent calls must not leak them into each other's
  // children); dup2 in the child clears the flag on 0-2.
  int in = open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
  int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  // fast_spawn: vfork, not fork: the benchmark runs 200 of these from 200 threads, and fork's
  // copy of this process's page tables then cost more CPU than the plugins it measures. The
  // child only makes system calls before execve. (fork keeps the child's peak RSS its own.)
  pid_t pid = SpawnPlugin(fast_spawn_, argv, envp.data(), in, out, err, ns_fd);
  for (int fd : {in, out, err}) {
    if (fd >= 0) close(fd);
  }
  if (ns_fd >= 0) close(ns_fd);
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  CniRun run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.max_rss_kb = usage.ru_maxrss;
  run.out = ReadFile(out_path);
  run.err = ReadFile(err_path);
  for (const std::string& p : {in_path, out_path, err_path}) std::remove(p.c_str());
  return run;
}

CniRun Node::Calicoctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {CALICOCTL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string log = dir() + "/calicoctl.out";
  std::remove(log.c_str());
  Process p(argv, {{"CALICO_DATASTORE_PATH", dir() + "/calico.db"}, {"DATASTORE_TYPE", "embedded"}},
            log);
  p.Spawn();
  CniRun run;
  run.exit_code = p.Signal(0, absl::Seconds(60));
  run.out = ReadFile(log);
  return run;
}

std::vector<std::string> Node::Leftovers() {
  std::vector<std::string> out;
  ::calico::testing::ExecResult links = Exec("ip -o link show | grep -o 'cali[0-9a-f]*' || true");
  if (!links.output.empty()) out.push_back("links left: " + links.output);
  ::calico::testing::ExecResult routes =
      Exec("{ ip route show proto 80; ip -6 route show proto 80; } | grep -v '^blackhole' || true");
  if (!routes.output.empty()) out.push_back("routes left: " + routes.output);
  CniRun check = Calicoctl({"ipam", "check"});
  if (check.exit_code != 0 ||
      check.out.find("Found 0 IPs that are allocated in IPAM but not actually in use") ==
          std::string::npos) {
    out.push_back("ipam check: " + check.out);
  }
  CniRun show = Calicoctl({"ipam", "show"});
  if (show.out.find("IPS IN USE") != std::string::npos) {
    // Every pool row must show 0 in use: "| IP Pool | <cidr> | <total> | <used> (x%) | ...".
    std::istringstream lines(show.out);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.find("| IP Pool") == std::string::npos) continue;
      std::vector<std::string> cells = absl::StrSplit(line, '|');
      if (cells.size() < 5 || absl::StripAsciiWhitespace(cells[4]) != "0 (0%)") {
        out.push_back("addresses still allocated: " + line);
      }
    }
  }
  CniRun weps = Calicoctl({"get", "workloadendpoints", "-A", "-o", "json"});
  if (weps.out.find("\"WorkloadEndpoint\"") != std::string::npos) {
    out.push_back("WorkloadEndpoints left: " + weps.out);
  }
  return out;
}

std::string Node::KernelSnapshot() {
  // Link-local IPv6 state (DAD on the uplink finishing) changes by itself: left out.
  return Exec("ip -o link show | sed 's/ qlen.*//'; ip -o addr show | grep -v ' fe80::'; "
              "ip -4 route show table all; "
              "ip -6 route show table all | grep -v 'fe80\\|^multicast\\|^anycast'")
      .output;
}

std::string Node::StableKernelSnapshot() {
  std::string last = KernelSnapshot();
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::string now = KernelSnapshot();
    if (now == last) return now;
    last = now;
  }
  return last;
}

std::vector<std::string> ResultIps(const std::string& result_json) {
  std::vector<std::string> out;
  nlohmann::json j = nlohmann::json::parse(result_json, nullptr, false);
  if (j.is_discarded() || !j.contains("ips")) return out;
  for (const auto& ip : j["ips"]) {
    std::string a = ip.value("address", "");
    out.push_back(a.substr(0, a.find('/')));
  }
  return out;
}

std::string LineDiff(const std::string& before, const std::string& after) {
  std::vector<std::string> a = absl::StrSplit(before, '\n'), b = absl::StrSplit(after, '\n');
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::vector<std::string> only_a, only_b;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only_a));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(only_b));
  std::string out;
  for (const std::string& l : only_a) out += "- " + l + "\n";
  for (const std::string& l : only_b) out += "+ " + l + "\n";
  return out;
}

int ErrorCode(const std::string& error_json) {
  nlohmann::json j = nlohmann::json::parse(error_json, nullptr, false);
  return j.is_discarded() ? -1 : j.value("code", -1);
}

std::string ErrorMsg(const std::string& error_json) {
  nlohmann::json j = nlohmann::json::parse(error_json, nullptr, false);
  return j.is_discarded() ? "" : j.value("msg", "");
}

}  // namespace calico::cni::testing
