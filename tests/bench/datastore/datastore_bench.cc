// Datastore benchmark: both backends, 1 and 8 writers, each writer its own client and key.
//  - put-if-revision: Update(key, value, last revision) back to back: latency p50/p99, ops/s.
//  - watch delivery: one more client watches the whole run's prefix; for every event, the time
//    from the start of the Update that wrote it to its arrival from Watch::Next.
// Then `etcdctl check perf` (etcd's own Go client) against the same etcd, and our 8-writer etcd
// throughput as a ratio to what it reports. The default load is "l" (500 clients, plain puts,
// rate-limited at 8,000 writes/s — above what this machine sustains, so the number is the
// real capacity); "s" is capped at 150 writes/s and would make any ratio meaningless.
//
// Usage: datastore_bench [--seconds=N] [--skip-etcdctl] [--etcdctl-load=s|m|l|xl]
// Numbers on a shared 2-vCPU machine are noisy: compare ratios, not absolutes.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/status_macros.h"
#include "common/datastore/config.h"
#include "common/datastore/datastore.h"
#include "common/datastore/etcd/etcd_datastore.h"
#include "common/datastore/sqlite/sqlite_datastore.h"
#include "tests/support/etcd/etcd_server.h"

extern char** environ;

namespace calico::datastore {
namespace {

using Connector = std::function<absl::StatusOr<std::unique_ptr<Datastore>>()>;

// Start times are published per (writer, sequence) for the watcher; a fixed capacity keeps it
// lock-free. 8 writers at well under 100k ops/s for a few seconds stay far below it.
constexpr size_t kMaxOpsPerWriter = 1 << 20;

struct Percentiles {
  size_t count = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

Percentiles Summarise(std::vector<int64_t> samples_ns) {
  Percentiles p;
  p.count = samples_ns.size();
  if (samples_ns.empty()) return p;
  std::sort(samples_ns.begin(), samples_ns.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(samples_ns.size() - 1) + 0.5);
    return static_cast<double>(samples_ns[i]) / 1e6;
  };
  p.p50_ms = at(0.50);
  p.p99_ms = at(0.99);
  return p;
}

struct RunResult {
  Percentiles cas;
  double cas_per_second = 0;
  Percentiles watch;
  size_t watch_missing = 0;  // writes whose event did not arrive within the drain time
};

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

absl::StatusOr<RunResult> Run(const Connector& connect, const std::string& prefix, int writers,
                              absl::Duration duration) {
  // Clients and keys first, so connection set-up is not measured.
  std::vector<std::unique_ptr<Datastore>> clients;
  std::vector<Revision> revisions;
  for (int i = 0; i < writers; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<Datastore> client, connect());
    ASSIGN_OR_RETURN(Revision rev, client->Create(absl::StrCat(prefix, "w", i), "init"));
    clients.push_back(std::move(client));
    revisions.push_back(rev);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Datastore> watcher_client, connect());
  ASSIGN_OR_RETURN(Revision start_rev, watcher_client->CurrentRevision());
  ASSIGN_OR_RETURN(std::unique_ptr<Watch> watch, watcher_client->WatchPrefix(prefix, start_rev));

  std::vector<std::unique_ptr<std::atomic<int64_t>[]>> starts;
  for (int i = 0; i < writers; ++i) {
    starts.emplace_back(new std::atomic<int64_t>[kMaxOpsPerWriter]);
  }
  std::vector<std::vector<int64_t>> latencies(writers);
  std::vector<absl::Status> errors(writers);
  std::atomic<size_t> total_writes{0};
  std::atomic<bool> writers_done{false};

  std::vector<int64_t> delivery;
  absl::Status watch_error;
  std::thread watcher([&] {
    size_t seen = 0;
    absl::Time drain_deadline = absl::InfiniteFuture();
    while (true) {
      if (writers_done.load() && drain_deadline == absl::InfiniteFuture()) {
        drain_deadline = absl::Now() + absl::Seconds(3);
      }
      if (writers_done.load() && seen >= total_writes.load()) break;
      if (absl::Now() > drain_deadline) break;
      absl::StatusOr<std::vector<Event>> batch = watch->Next(absl::Milliseconds(50));
      const int64_t now = NowNs();
      if (!batch.ok()) {
        watch_error = batch.status();
        break;
      }
      for (const Event& e : *batch) {
        // Values are "<writer>:<sequence>".
        const size_t colon = e.value.find(':');
        int w = 0;
        size_t seq = 0;
        if (colon == std::string::npos ||
            !absl::SimpleAtoi(absl::string_view(e.value).substr(0, colon), &w) ||
            !absl::SimpleAtoi(absl::string_view(e.value).substr(colon + 1), &seq) || w < 0 ||
            w >= writers || seq >= kMaxOpsPerWriter) {
          continue;
        }
        delivery.push_back(now - starts[w][seq].load(std::memory_order_acquire));
        ++seen;
      }
    }
  });

  const absl::Time begin = absl::Now();
  const absl::Time end = begin + duration;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      const std::string key = absl::StrCat(prefix, "w", w);
      Revision rev = revisions[w];
      latencies[w].reserve(100000);
      for (size_t seq = 0; seq < kMaxOpsPerWriter && absl::Now() < end; ++seq) {
        const int64_t t0 = NowNs();
        starts[w][seq].store(t0, std::memory_order_release);
        absl::StatusOr<Revision> next = clients[w]->Update(key, absl::StrCat(w, ":", seq), rev);
        if (!next.ok()) {
          errors[w] = next.status();
          return;
        }
        latencies[w].push_back(NowNs() - t0);
        rev = *next;
        total_writes.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const absl::Duration elapsed = absl::Now() - begin;
  writers_done = true;
  watcher.join();
  watch->Cancel();

  for (const absl::Status& e : errors) {
    if (!e.ok()) return Annotate(e, "writer");
  }
  if (!watch_error.ok()) return Annotate(watch_error, "watcher");
  std::vector<int64_t> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  RunResult result;
  result.cas = Summarise(std::move(all));
  result.cas_per_second = static_cast<double>(result.cas.count) / absl::ToDoubleSeconds(elapsed);
  result.watch = Summarise(std::move(delivery));
  result.watch_missing = total_writes.load() - result.watch.count;
  return result;
}

void PrintHeader() {
  std::printf("%-8s %7s %9s %10s %10s %10s %12s %12s %8s\n", "backend", "writers", "cas_ops",
              "cas_ops/s", "cas_p50ms", "cas_p99ms", "watch_p50ms", "watch_p99ms", "missing");
}

void PrintRow(const char* backend, int writers, const RunResult& r) {
  std::printf("%-8s %7d %9zu %10.0f %10.3f %10.3f %12.3f %12.3f %8zu\n", backend, writers,
              r.cas.count, r.cas_per_second, r.cas.p50_ms, r.cas.p99_ms, r.watch.p50_ms,
              r.watch.p99_ms, r.watch_missing);
  std::fflush(stdout);
}

// Runs `etcdctl check perf --load=<load>` against `url`; returns its output. Killed by pid after
// `timeout` (it normally takes ~60 s).
absl::StatusOr<std::string> RunCheckPerf(const std::string& url, const std::string& load,
                                         const std::string& out_path, absl::Duration timeout) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> args = {"/usr/bin/etcdctl", "--endpoints=" + url, "check", "perf",
                                   "--load=" + load};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Only ETCDCTL_API=3 from us; no ETCDCTL_* of the caller's shell (e.g. TLS flags).
  std::vector<std::string> env_storage = {"ETCDCTL_API=3"};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).substr(0, 7) != "ETCDCTL") env_storage.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return absl::InternalError(absl::StrCat("spawning etcdctl: ", std::strerror(rc)));
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return absl::DeadlineExceededError("etcdctl check perf did not finish in time");
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::ifstream in(out_path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int Main(int argc, char** argv) {
  absl::Duration duration = absl::Seconds(3);
  bool skip_etcdctl = false;
  std::string etcdctl_load = "l";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    int seconds = 0;
    if (arg.rfind("--seconds=", 0) == 0 && absl::SimpleAtoi(arg.substr(10), &seconds) &&
        seconds > 0) {
      duration = absl::Seconds(seconds);
    } else if (arg == "--skip-etcdctl") {
      skip_etcdctl = true;
    } else if (arg.rfind("--etcdctl-load=", 0) == 0 &&
               (arg.substr(15) == "s" || arg.substr(15) == "m" || arg.substr(15) == "l" ||
                arg.substr(15) == "xl")) {
      etcdctl_load = arg.substr(15);
    } else {
      std::fprintf(stderr, "usage: %s [--seconds=N] [--skip-etcdctl] [--etcdctl-load=s|m|l|xl]\n",
                   argv[0]);
      return 2;
    }
  }

  char dir_template[] = "/tmp/calico-bench-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = dir_template;
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_dir{dir};

  std::printf("datastore benchmark: %s per measurement; each writer its own client and key\n",
              absl::FormatDuration(duration).c_str());
  PrintHeader();
  int failures = 0;
  double etcd_8_writers = 0;

  Config sqlite_config;
  sqlite_config.type = BackendType::kEmbedded;
  sqlite_config.sqlite_path = dir + "/calico.db";
  Connector sqlite = [&] { return OpenSqlite(sqlite_config); };
  for (int writers : {1, 8}) {
    absl::StatusOr<RunResult> r =
        Run(sqlite, absl::StrCat("/bench/", writers, "/"), writers, duration);
    if (r.ok()) {
      PrintRow("sqlite", writers, *r);
    } else {
      std::printf("sqlite   %7d FAILED: %s\n", writers, r.status().ToString().c_str());
      ++failures;
    }
  }

  absl::StatusOr<std::unique_ptr<calico::testing::EtcdServer>> server =
      calico::testing::EtcdServer::Start();
  if (!server.ok()) {
    std::printf("etcd: cannot start: %s\n", server.status().ToString().c_str());
    return 1;
  }
  Config etcd_config;
  etcd_config.type = BackendType::kEtcdV3;
  etcd_config.etcd_endpoints = {(*server)->ClientUrl()};
  Connector etcd = [&] { return OpenEtcd(etcd_config); };
  for (int writers : {1, 8}) {
    absl::StatusOr<RunResult> r =
        Run(etcd, absl::StrCat("/bench/", writers, "/"), writers, duration);
    if (r.ok()) {
      PrintRow("etcd", writers, *r);
      if (writers == 8) etcd_8_writers = r->cas_per_second;
    } else {
      std::printf("etcd     %7d FAILED: %s\n", writers, r.status().ToString().c_str());
      ++failures;
    }
  }

  if (!skip_etcdctl) {
    std::printf("\netcdctl check perf --load=%s against the same etcd (~60 s)...\n",
                etcdctl_load.c_str());
    std::fflush(stdout);
    absl::StatusOr<std::string> output = RunCheckPerf(
        (*server)->ClientUrl(), etcdctl_load, dir + "/check-perf.txt", absl::Seconds(180));
    if (!output.ok()) {
      std::printf("etcdctl check perf: %s\n", output.status().ToString().c_str());
      ++failures;
    } else {
      // "PASS: Throughput is 151 writes/s" or "FAIL: Throughput too low: 90 writes/s"
      std::smatch match;
      static const std::regex kThroughput(R"((PASS|FAIL): Throughput[^0-9]*([0-9]+) writes/s)");
      if (std::regex_search(*output, match, kThroughput)) {
        const double reference = std::stod(match[2]);
        std::printf("etcdctl: %s\n", match[0].str().c_str());
        std::printf(
            "etcd put-if-revision, 8 writers: %.0f writes/s = %.2fx etcdctl check perf "
            "--load=%s (plain puts; PASS/FAIL is its own verdict against that load's bar)\n",
            etcd_8_writers, reference > 0 ? etcd_8_writers / reference : 0.0,
            etcdctl_load.c_str());
      } else {
        std::printf("etcdctl check perf: no throughput line in its output:\n%s\n", output->c_str());
        ++failures;
      }
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace calico::datastore

int main(int argc, char** argv) { return calico::datastore::Main(argc, argv); }
