#pragma once
// tests/integration/cni: one node in a box — a network namespace made by the test standing in
// for the host, with the real ipamd and felixd running inside it over an embedded datastore in
// a temp dir, pods as further namespaces, and the real `calico` plugin exec'd as a runtime
// would. Everything it makes (namespaces, processes, files) is removed by its destructors, also
// when a REQUIRE fails; processes are stopped by pid only.

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tests/support/netns/test_netns.h"

namespace calico::cni::testing {

// A private directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process, optionally inside a network namespace; SIGKILLed and reaped by the
// destructor, and killed by the kernel if the test process dies (PR_SET_PDEATHSIG).
class Process {
 public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env, std::string log,
          std::string netns_path = "");
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  void Spawn();
  int Signal(int sig, absl::Duration timeout = absl::Seconds(10));  // exit status, -1 on timeout
  bool Exited();  // reaps if it has exited
  pid_t pid() const { return pid_; }
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  std::vector<std::string> argv_;
  std::map<std::string, std::string> env_;
  std::string log_;
  std::string netns_path_;
  pid_t pid_ = -1;
};

struct CniRun {
  std::string out;  // stdout: the result or error JSON
  std::string err;  // stderr: the plugin's log lines
  int exit_code = -1;
  long max_rss_kb = 0;
};

struct PodSpec {
  std::string name;
  std::string ns = "default";
  std::string container_id;  // default: "cid-<name>"
  std::string ifname = "eth0";
  std::string netns;         // default: the pod's own TestNetns
};

inline PodSpec Pod(std::string name, std::string ifname = "eth0", std::string netns = "") {
  PodSpec p;
  p.name = std::move(name);
  p.ifname = std::move(ifname);
  p.netns = std::move(netns);
  return p;
}

class Node {
 public:
  struct Options {
    std::string node_name = "node1";
    std::string ipv4_pool = "10.77.0.0/24";
    std::string ipv6_pool = "fd77::/120";  // empty: IPv4 only
    int ipv4_block_size = 26;
    std::string resync_interval = "1s";
    // As the Helm chart's default (felixd's own default is Drop).
    std::string endpoint_to_host_action = "Accept";
  };
  Node();
  explicit Node(Options options);
  ~Node();

  // Starts ipamd and felixd in the node's namespace and waits until both answer (CNI STATUS).
  absl::Status Start();
  void StartIpamd();
  void StartFelixd();
  Process& ipamd() { return *ipamd_; }
  Process& felixd() { return *felixd_; }
  absl::Status WaitReady(absl::Duration timeout = absl::Seconds(30));

  // The network config a runtime would pass (cniVersion 1.0.0 unless given).
  std::string Conf(std::string_view cni_version = "1.0.0", std::string_view ipam_type = "calico-ipam",
                   bool ipv6 = true) const;
  // Execs a plugin (default `calico`) like a runtime: config on stdin, CNI_* environment.
  // `in_node`: inside the node's namespace (plugins that program the host themselves, such as
  // the reference bridge and ptp). `out` (optional) receives the child's resource usage.
  CniRun Cni(std::string_view command, const PodSpec& pod, const std::string& conf,
             const std::string& plugin = "", std::map<std::string, std::string> extra_env = {},
             bool in_node = false);

  // A pod namespace (removed with the Node); returns its path.
  std::string AddPodNetns(const std::string& name);
  ::calico::testing::TestNetns& PodNetns(const std::string& name);
  ::calico::testing::TestNetns& ns() { return *ns_; }
  // Runs a shell command inside the node's namespace: {status, output}.
  ::calico::testing::ExecResult Exec(const std::string& cmd);
  // calicoctl with this node's datastore.
  CniRun Calicoctl(const std::vector<std::string>& args);
  // What a clean node has none of, as sentences: cali links, felixd routes other than block
  // blackholes, allocated addresses (per `calicoctl ipam check`), WorkloadEndpoints.
  std::vector<std::string> Leftovers();
  // Links, addresses and routes of the node namespace, for before/after comparisons.
  std::string KernelSnapshot();
  // A snapshot that stayed the same for half a second (felixd's follow-up syncs done).
  std::string StableKernelSnapshot();

  const std::string& dir() const { return dir_.path(); }
  // Spawn plugins with vfork (cheap from a many-threaded process; the child's reported peak
  // RSS then includes this process's) instead of fork.
  void set_fast_spawn(bool fast) { fast_spawn_ = fast; }
  const Options& options() const { return options_; }
  std::string host_address() const { return "192.168.77.1"; }
  std::string host_address6() const { return "fd78::1"; }

 private:
  Options options_;
  TempDir dir_;
  std::unique_ptr<::calico::testing::TestNetns> ns_;
  std::map<std::string, std::unique_ptr<::calico::testing::TestNetns>> pods_;
  std::unique_ptr<Process> ipamd_;
  std::unique_ptr<Process> felixd_;
  bool fast_spawn_ = false;
};

// The pod's addresses from a 1.0.0 ADD result ("10.77.0.1" without the prefix length).
std::vector<std::string> ResultIps(const std::string& result_json);
int ErrorCode(const std::string& error_json);
// Lines only in `before` ("- ...") and only in `after` ("+ ..."); empty when equal as sets.
std::string LineDiff(const std::string& before, const std::string& after);
std::string ErrorMsg(const std::string& error_json);

}  // namespace calico::cni::testing
