// CNI benchmark: 200 pods, ADD then DEL, through our `calico` plugin (ipamd + felixd) and, in
// the same run on the same machine, the reference `ptp` + `host-local` plugins, beside the
// kernel work alone (felixd's Plumber plus the host route, from this one process over
// netlink). Everything runs inside namespaces made here. Prints p50/p99 per operation, totals,
// the ratios the targets are stated in, and the plugin's peak RSS.
//
// Usage: cni_bench [--pods=N] [--only-all-at-once]   (root; Debian's containernetworking-plugins in /usr/lib/cni)

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/kernel/libnl_netlink.h"
#include "felixd/dataplane/plumber.h"
#include "nlohmann/json.hpp"
#include "tests/integration/cni/node_harness.h"

namespace calico::cni::testing {
namespace {

struct Stats {
  std::vector<double> ms;  // per operation
  double total_ms = 0;
  int failures = 0;
  std::vector<long> rss_kb;
  double P(double q) const {
    if (ms.empty()) return 0;
    std::vector<double> s = ms;
    std::sort(s.begin(), s.end());
    return s[std::min(s.size() - 1, static_cast<size_t>(q * static_cast<double>(s.size())))];
  }
  long RssP50() const {
    if (rss_kb.empty()) return 0;
    std::vector<long> s = rss_kb;
    std::sort(s.begin(), s.end());
    return s[s.size() / 2];
  }
};

void Print(const char* what, const Stats& s) {
  std::printf("  %-34s p50 %7.2f ms  p99 %7.2f ms  total %8.1f ms  failures %d\n", what, s.P(0.5),
              s.P(0.99), s.total_ms, s.failures);
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// Runs op(i) for i in [0, n) on `threads` threads; per-op latency and wall-clock total.
template <typename Op>
Stats Drive(int n, int threads, Op op) {
  Stats stats;
  std::mutex mu;
  std::atomic<int> next{0};
  absl::Time begin = absl::Now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        absl::Time t0 = absl::Now();
        CniRun r = op(i);
        double ms = Ms(absl::Now() - t0);
        std::lock_guard<std::mutex> lock(mu);
        stats.ms.push_back(ms);
        if (r.max_rss_kb > 0) stats.rss_kb.push_back(r.max_rss_kb);
        if (r.exit_code != 0) {
          if (stats.failures++ == 0) std::fprintf(stderr, "failure: %s %s\n", r.out.c_str(), r.err.c_str());
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  stats.total_ms = Ms(absl::Now() - begin);
  return stats;
}

// `only_all_at_once`: just the all-at-once ADD/DEL (for profiling that phase).
int Main(int pods, bool only_all_at_once) {
  Node::Options options;
  options.ipv4_pool = "10.80.0.0/16";
  options.ipv6_pool = "";
  options.resync_interval = "10s";
  Node node(options);
  if (absl::Status s = node.Start(); !s.ok()) {
    std::fprintf(stderr, "start: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("creating %d pod namespaces...\n", pods);
  std::vector<std::string> names;
  for (int i = 0; i < pods; ++i) {
    names.push_back(absl::StrCat("bp", i));
    node.AddPodNetns(names.back());
  }
  const std::string calico_conf = node.Conf("1.0.0", "calico-ipam", false);
  nlohmann::json ref = {{"cniVersion", "1.0.0"},
                        {"name", "ref"},
                        {"type", "ptp"},
                        {"ipam",
                         {{"type", "host-local"},
                          {"ranges", {{{{"subnet", "10.81.0.0/16"}}}}},
                          {"dataDir", node.dir() + "/host-local"}}}};
  const std::string ref_conf = ref.dump();

  if (only_all_at_once) {
    node.set_fast_spawn(true);
    std::printf("ADD of %d pods all at once...\n", pods);
    std::fflush(stdout);
    Stats add = Drive(pods, pods, [&](int i) { return node.Cni("ADD", Pod(names[i]), calico_conf); });
    Stats del = Drive(pods, pods, [&](int i) { return node.Cni("DEL", Pod(names[i]), calico_conf); });
    Print("calico ADD, all at once", add);
    Print("calico DEL, all at once", del);
    return add.failures + del.failures == 0 ? 0 : 1;
  }
  // 1. The kernel work alone: the same wiring felixd does, from this process.
  Stats kernel;
  {
    felixd::NetlinkOpener open = [&](const kernel::NetnsRef& ref)
        -> absl::StatusOr<std::unique_ptr<kernel::Netlink>> {
      kernel::NetnsRef where = ref.IsSelf() ? kernel::NetnsRef{.fd = -1, .path = node.ns().path()} : ref;
      absl::StatusOr<std::unique_ptr<kernel::LibnlNetlink>> nl = kernel::LibnlNetlink::Open(where);
      if (!nl.ok()) return nl.status();
      return std::unique_ptr<kernel::Netlink>(std::move(*nl));
    };
    felixd::Plumber plumber(open);
    std::unique_ptr<kernel::Netlink> host = *open({});
    absl::Time begin = absl::Now();
    for (int i = 0; i < pods; ++i) {
      absl::Time t0 = absl::Now();
      felixd::PlumbSpec spec;
      spec.host_ifname = absl::StrCat("calibench", i);
      spec.netns = node.PodNetns(names[i]).path();
      std::string ip = absl::StrCat("10.82.", i / 250, ".", i % 250 + 1);
      spec.ips = {*net::ParsePrefix(ip + "/32")};
      absl::StatusOr<felixd::PlumbResult> r = plumber.Plumb(spec);
      kernel::Route route = kernel::Route::Local(ip + "/32", spec.host_ifname);
      route.protocol = 80;
      absl::Status routed = r.ok() ? host->ReplaceRoute(route) : r.status();
      kernel.ms.push_back(Ms(absl::Now() - t0));
      if (!routed.ok()) {
        if (kernel.failures++ == 0) std::fprintf(stderr, "kernel: %s\n", std::string(routed.message()).c_str());
      }
    }
    kernel.total_ms = Ms(absl::Now() - begin);
    for (int i = 0; i < pods; ++i) (void)plumber.Unplumb(absl::StrCat("calibench", i));
  }

  auto calico = [&](const char* command) {
    return [&, command](int i) { return node.Cni(command, Pod(names[i]), calico_conf); };
  };
  auto reference = [&](const char* command) {
    return [&, command](int i) {
      return node.Cni(command, Pod(names[i]), ref_conf, "/usr/lib/cni/ptp", {}, true);
    };
  };
  // What any exec costs from this harness, for reading the numbers below.
  Stats exec_true = Drive(pods, 1, [&](int) {
    return node.Cni("VERSION", Pod(""), "{}", "/bin/true");
  });
  Stats exec_version = Drive(pods, 1, [&](int) {
    return node.Cni("VERSION", Pod(""), "{\"cniVersion\":\"1.0.0\"}");
  });
  std::printf("running %d pods: sequential, then 8 in parallel, then all at once...\n", pods);
  Stats calico_add = Drive(pods, 1, calico("ADD"));
  // felixd's own account of the last sequential ADD (lookup/kernel/route/record times).
  std::string felixd_log = node.felixd().LogTail(2000);
  size_t at = felixd_log.rfind("event=workload_set_up");
  std::string last_setup = at == std::string::npos ? "" : felixd_log.substr(at, felixd_log.find('\n', at) - at);
  Stats calico_del = Drive(pods, 1, calico("DEL"));
  // Parallel phases spawn with vfork: fork from 8-200 threads cost more than the plugins.
  node.set_fast_spawn(true);
  Stats calico_add8 = Drive(pods, 8, calico("ADD"));
  Stats calico_del8 = Drive(pods, 8, calico("DEL"));
  Stats calico_add_all = Drive(pods, pods, calico("ADD"));
  Stats calico_del_all = Drive(pods, pods, calico("DEL"));
  node.set_fast_spawn(false);
  Stats ref_add = Drive(pods, 1, reference("ADD"));
  Stats ref_del = Drive(pods, 1, reference("DEL"));
  node.set_fast_spawn(true);
  Stats ref_add8 = Drive(pods, 8, reference("ADD"));
  Stats ref_del8 = Drive(pods, 8, reference("DEL"));
  std::vector<std::string> leftovers = node.Leftovers();

  std::printf("\n%d pods, IPv4, one node (2 vCPU shared machine: compare ratios)\n", pods);
  Print("exec /bin/true (harness cost)", exec_true);
  Print("exec calico VERSION", exec_version);
  Print("kernel work only (1 process)", kernel);
  Print("calico ADD, sequential", calico_add);
  Print("calico DEL, sequential", calico_del);
  Print("calico ADD, 8 parallel", calico_add8);
  Print("calico DEL, 8 parallel", calico_del8);
  Print("calico ADD, all at once", calico_add_all);
  Print("calico DEL, all at once", calico_del_all);
  Print("ptp+host-local ADD, sequential", ref_add);
  Print("ptp+host-local DEL, sequential", ref_del);
  Print("ptp+host-local ADD, 8 parallel", ref_add8);
  Print("ptp+host-local DEL, 8 parallel", ref_del8);
  double vs_ref = calico_add.P(0.5) / ref_add.P(0.5);
  double vs_kernel = calico_add.P(0.5) / kernel.P(0.5);
  std::printf("\nratios (target):\n");
  std::printf("  calico p50 ADD / reference p50 ADD   %.3f  (<= 0.25) %s\n", vs_ref,
              vs_ref <= 0.25 ? "met" : "NOT MET");
  std::printf("  calico p50 ADD / kernel work p50     %.2f   (<= 3)    %s\n", vs_kernel,
              vs_kernel <= 3 ? "met" : "NOT MET");
  std::printf("  %d ADDs all at once, total           %.0f ms (< 1000) %s\n", pods,
              calico_add_all.total_ms, calico_add_all.total_ms < 1000 ? "met" : "NOT MET");
  std::printf("  8-parallel ADD total: calico %.0f ms, reference %.0f ms (ratio %.3f)\n",
              calico_add8.total_ms, ref_add8.total_ms, calico_add8.total_ms / ref_add8.total_ms);
  std::printf("felixd, last sequential ADD: %s\n", last_setup.c_str());
  std::printf("plugin peak RSS (p50, sequential runs): calico %ld KiB, ptp %ld KiB\n", calico_add.RssP50(),
              ref_add.RssP50());
  std::printf("leftovers after all DELs: %s\n", leftovers.empty() ? "none" : leftovers[0].c_str());
  int failures = kernel.failures + calico_add.failures + calico_del.failures + calico_add8.failures +
                 calico_del8.failures + calico_add_all.failures + calico_del_all.failures +
                 ref_add.failures + ref_del.failures + ref_add8.failures + ref_del8.failures;
  return failures == 0 && leftovers.empty() ? 0 : 1;
}

}  // namespace
}  // namespace calico::cni::testing

int main(int argc, char** argv) {
  int pods = 200;
  bool only_all_at_once = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--pods=", 7) == 0) pods = std::atoi(argv[i] + 7);
    if (std::strcmp(argv[i], "--only-all-at-once") == 0) only_all_at_once = true;
  }
  return calico::cni::testing::Main(pods, only_all_at_once);
}
