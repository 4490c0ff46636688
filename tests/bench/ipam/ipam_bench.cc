// IPAM benchmark: AutoAssign(1 IPv4) + ReleaseByHandle cycles, against SQLite and etcd, beside
// the raw rate of single-key CAS writes (Datastore::Update with the expected revision, back to
// back, one key per client) measured by this binary in the same run.
//
// Rows per backend:
//   raw-cas   N clients, each its own connection and key.
//   ipam      1 client; 8 clients on ONE node (one Allocator and connection, as one ipamd
//             serving 8 concurrent CNI calls: the block's group commit is what is measured);
//             8 clients on 8 nodes (8 Allocators, 8 connections: 8 ipamds).
// writes/op counts datastore write calls (Create/Update/Delete/Commit: one transaction each)
// per cycle: the fast path is one Commit on assign (block + handle create) and one on release
// (block + handle delete). revs/op is the store revision's growth per cycle: SQLite gives each
// op of a Commit its own revision (4 per cycle), etcd one per Commit (2 per cycle).
//
// Usage: ipam_bench [--seconds=N]. Numbers on a shared 2-vCPU machine are noisy: compare ratios.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/status_macros.h"
#include "common/datastore/config.h"
#include "common/datastore/datastore.h"
#include "common/datastore/etcd/etcd_datastore.h"
#include "common/datastore/sqlite/sqlite_datastore.h"
#include "common/log/log.h"
#include "ipamd/allocator/allocator.h"
#include "tests/support/etcd/etcd_server.h"

namespace calico::ipamd {
namespace {

using datastore::Datastore;
using datastore::Revision;
using Connector = std::function<absl::StatusOr<std::unique_ptr<Datastore>>()>;

// Counts write calls (each is one transaction on either backend) into a shared counter.
class CountingStore : public Datastore {
 public:
  CountingStore(std::unique_ptr<Datastore> inner, std::atomic<int64_t>& writes)
      : inner_(std::move(inner)), writes_(writes) {}
  absl::StatusOr<datastore::Entry> Get(std::string_view key) override { return inner_->Get(key); }
  absl::StatusOr<datastore::ListResult> List(std::string_view prefix) override {
    return inner_->List(prefix);
  }
  absl::StatusOr<Revision> Create(std::string_view key, std::string_view value,
                                  const datastore::CreateOptions& options) override {
    ++writes_;
    return inner_->Create(key, value, options);
  }
  absl::StatusOr<Revision> Update(std::string_view key, std::string_view value,
                                  Revision expected) override {
    ++writes_;
    return inner_->Update(key, value, expected);
  }
  absl::StatusOr<Revision> Delete(std::string_view key, Revision expected) override {
    ++writes_;
    return inner_->Delete(key, expected);
  }
  absl::StatusOr<std::vector<Revision>> Commit(const std::vector<datastore::TxnOp>& ops) override {
    ++writes_;
    return inner_->Commit(ops);
  }
  absl::StatusOr<std::unique_ptr<datastore::Watch>> WatchPrefix(std::string_view prefix,
                                                                Revision after) override {
    return inner_->WatchPrefix(prefix, after);
  }
  absl::Status Compact(Revision revision) override { return inner_->Compact(revision); }
  absl::StatusOr<Revision> CurrentRevision() override { return inner_->CurrentRevision(); }
  std::string Describe() const override { return inner_->Describe(); }

 private:
  std::unique_ptr<Datastore> inner_;
  std::atomic<int64_t>& writes_;
};

struct Stats {
  size_t count = 0;
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double writes_per_op = 0;
  double revisions_per_op = 0;
};

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

Stats Summarise(std::vector<std::vector<int64_t>> per_client, absl::Duration elapsed) {
  std::vector<int64_t> all;
  for (auto& v : per_client) all.insert(all.end(), v.begin(), v.end());
  Stats s;
  s.count = all.size();
  s.per_second = static_cast<double>(all.size()) / absl::ToDoubleSeconds(elapsed);
  if (all.empty()) return s;
  std::sort(all.begin(), all.end());
  auto at = [&](double q) {
    return static_cast<double>(all[static_cast<size_t>(q * static_cast<double>(all.size() - 1) + 0.5)]) / 1e6;
  };
  s.p50_ms = at(0.5);
  s.p99_ms = at(0.99);
  return s;
}

// Runs `op(client)` back to back on `clients` threads for `duration`.
absl::StatusOr<Stats> Drive(int clients, absl::Duration duration,
                            const std::function<absl::Status(int client, size_t seq)>& op) {
  std::vector<std::vector<int64_t>> latencies(clients);
  std::vector<absl::Status> errors(clients);
  const absl::Time begin = absl::Now();
  const absl::Time end = begin + duration;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      latencies[c].reserve(1 << 16);
      for (size_t seq = 0; absl::Now() < end; ++seq) {
        const int64_t t0 = NowNs();
        absl::Status s = op(c, seq);
        if (!s.ok()) {
          errors[c] = s;
          return;
        }
        latencies[c].push_back(NowNs() - t0);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const absl::Duration elapsed = absl::Now() - begin;
  for (const absl::Status& e : errors) RETURN_IF_ERROR(e);
  return Summarise(std::move(latencies), elapsed);
}

absl::StatusOr<Stats> RawCas(const Connector& connect, const std::string& prefix, int clients,
                             absl::Duration duration) {
  std::vector<std::unique_ptr<Datastore>> stores;
  std::vector<Revision> revs;
  for (int c = 0; c < clients; ++c) {
    ASSIGN_OR_RETURN(std::unique_ptr<Datastore> s, connect());
    ASSIGN_OR_RETURN(Revision r, s->Create(absl::StrCat(prefix, "k", c), "0"));
    stores.push_back(std::move(s));
    revs.push_back(r);
  }
  ASSIGN_OR_RETURN(Stats s, Drive(clients, duration, [&](int c, size_t seq) -> absl::Status {
    ASSIGN_OR_RETURN(revs[c], stores[c]->Update(absl::StrCat(prefix, "k", c),
                                                absl::StrCat(seq), revs[c]));
    return absl::OkStatus();
  }));
  s.writes_per_op = 1;
  s.revisions_per_op = 1;
  return s;
}

struct IpamRun {
  Stats cycle;
  double assign_p50_ms = 0;
  double release_p50_ms = 0;
};

// `nodes` == clients: one allocator per client; `nodes` == 1: one shared allocator.
absl::StatusOr<IpamRun> Ipam(const Connector& connect, const std::string& tag, int clients,
                             int nodes, absl::Duration duration) {
  Environment env;
  env.pools = []() -> absl::StatusOr<std::vector<Pool>> {
    Pool p;
    p.name = "bench";
    p.cidr = *net::ParsePrefix("10.0.0.0/8");
    p.block_size = 26;
    return std::vector<Pool>{p};
  };
  std::vector<std::unique_ptr<Datastore>> stores;
  std::vector<std::unique_ptr<Allocator>> allocators;
  std::atomic<int64_t> writes{0};
  for (int n = 0; n < nodes; ++n) {
    ASSIGN_OR_RETURN(std::unique_ptr<Datastore> s, connect());
    stores.push_back(std::make_unique<CountingStore>(std::move(s), writes));
    allocators.push_back(std::make_unique<Allocator>(*stores.back(), env));
  }
  auto node_of = [&](int c) { return nodes == 1 ? 0 : c; };
  auto request = [&](int c, size_t seq) {
    AutoAssignRequest r;
    r.handle_id = absl::StrCat("k8s-pod-network.", tag, "-c", c, "-", seq);
    r.node = absl::StrCat(tag, "-node", node_of(c));
    r.num_v4 = 1;
    r.attributes = {{"namespace", "bench"}, {"pod", absl::StrCat("pod-", c, "-", seq)}};
    return r;
  };
  // Warm-up: claim each node's block (the slow path) outside the measurement.
  for (int c = 0; c < clients; ++c) {
    Allocator& a = *allocators[node_of(c)];
    RETURN_IF_ERROR(a.AutoAssign(request(c, 1u << 30)).status());
    RETURN_IF_ERROR(a.ReleaseByHandle(request(c, 1u << 30).handle_id).status());
  }
  ASSIGN_OR_RETURN(Revision rev0, stores[0]->CurrentRevision());
  const int64_t writes0 = writes.load();
  std::vector<std::vector<int64_t>> assign_ns(clients), release_ns(clients);
  ASSIGN_OR_RETURN(Stats cycle, Drive(clients, duration, [&](int c, size_t seq) -> absl::Status {
    Allocator& a = *allocators[node_of(c)];
    AutoAssignRequest r = request(c, seq);
    const int64_t t0 = NowNs();
    ASSIGN_OR_RETURN(AutoAssignResult got, a.AutoAssign(r));
    const int64_t t1 = NowNs();
    ASSIGN_OR_RETURN(std::vector<net::IpAddress> freed, a.ReleaseByHandle(r.handle_id));
    assign_ns[c].push_back(t1 - t0);
    release_ns[c].push_back(NowNs() - t1);
    if (freed.size() != 1 || got.v4.size() != 1 || freed[0] != got.v4[0].ip) {
      return absl::InternalError("released something other than what was assigned");
    }
    return absl::OkStatus();
  }));
  ASSIGN_OR_RETURN(Revision rev1, stores[0]->CurrentRevision());
  const double cycles = static_cast<double>(std::max<size_t>(cycle.count, 1));
  cycle.writes_per_op = static_cast<double>(writes.load() - writes0) / cycles;
  cycle.revisions_per_op = static_cast<double>(rev1 - rev0) / cycles;
  IpamRun run;
  run.cycle = cycle;
  run.assign_p50_ms = Summarise(std::move(assign_ns), absl::Seconds(1)).p50_ms;
  run.release_p50_ms = Summarise(std::move(release_ns), absl::Seconds(1)).p50_ms;
  return run;
}

void Header() {
  std::printf("%-7s %-22s %8s %9s %9s %9s %10s %8s %10s %10s %8s\n", "backend", "what", "ops",
              "ops/s", "p50ms", "p99ms", "writes/op", "revs/op", "assign50", "release50", "x raw");
}

int Main(int argc, char** argv) {
  absl::Duration duration = absl::Seconds(3);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    int seconds = 0;
    if (arg.rfind("--seconds=", 0) == 0 && absl::SimpleAtoi(arg.substr(10), &seconds) &&
        seconds > 0) {
      duration = absl::Seconds(seconds);
    } else {
      std::fprintf(stderr, "usage: ipam_bench [--seconds=N]\n");
      return 2;
    }
  }
  log::SetLevel(log::Level::kWarn);
  std::string dir = (std::filesystem::temp_directory_path() /
                     absl::StrCat("ipam-bench-", getpid())).string();
  std::filesystem::create_directories(dir);
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_dir{dir};

  std::printf("ipam benchmark: %s per row; cycle = AutoAssign(1 IPv4) + ReleaseByHandle\n",
              absl::FormatDuration(duration).c_str());
  Header();
  int failures = 0;
  auto bench = [&](const char* backend, const Connector& connect) {
    for (int clients : {1, 8}) {
      absl::StatusOr<Stats> raw =
          RawCas(connect, absl::StrCat("/bench/raw", clients, "/"), clients, duration);
      if (!raw.ok()) {
        std::printf("%-7s raw-cas x%d FAILED: %s\n", backend, clients, raw.status().ToString().c_str());
        ++failures;
        continue;
      }
      std::printf("%-7s %-22s %8zu %9.0f %9.3f %9.3f %10.1f %8.1f %10s %10s %8s\n", backend,
                  absl::StrCat("raw-cas x", clients).c_str(), raw->count, raw->per_second,
                  raw->p50_ms, raw->p99_ms, raw->writes_per_op, raw->revisions_per_op, "", "", "");
      std::vector<std::pair<std::string, int>> shapes =
          clients == 1 ? std::vector<std::pair<std::string, int>>{{"ipam x1", 1}}
                       : std::vector<std::pair<std::string, int>>{{"ipam x8, 1 node", 1},
                                                                  {"ipam x8, 8 nodes", 8}};
      for (const auto& [label, nodes] : shapes) {
        absl::StatusOr<IpamRun> r =
            Ipam(connect, absl::StrCat(backend, clients, "n", nodes), clients, nodes, duration);
        if (!r.ok()) {
          std::printf("%-7s %-22s FAILED: %s\n", backend, label.c_str(), r.status().ToString().c_str());
          ++failures;
          continue;
        }
        std::printf("%-7s %-22s %8zu %9.0f %9.3f %9.3f %10.2f %8.2f %10.3f %10.3f %7.2fx\n",
                    backend, label.c_str(), r->cycle.count, r->cycle.per_second, r->cycle.p50_ms,
                    r->cycle.p99_ms, r->cycle.writes_per_op, r->cycle.revisions_per_op,
                    r->assign_p50_ms, r->release_p50_ms,
                    raw->per_second > 0 ? r->cycle.per_second / raw->per_second : 0.0);
      }
      std::fflush(stdout);
    }
  };

  datastore::Config sqlite_config;
  sqlite_config.type = datastore::BackendType::kEmbedded;
  sqlite_config.sqlite_path = dir + "/calico.db";
  bench("sqlite", [&] { return datastore::OpenSqlite(sqlite_config); });

  absl::StatusOr<std::unique_ptr<calico::testing::EtcdServer>> server =
      calico::testing::EtcdServer::Start();
  if (!server.ok()) {
    std::printf("etcd: cannot start: %s\n", server.status().ToString().c_str());
    return 1;
  }
  datastore::Config etcd_config;
  etcd_config.type = datastore::BackendType::kEtcdV3;
  etcd_config.etcd_endpoints = {(*server)->ClientUrl()};
  bench("etcd", [&] { return datastore::OpenEtcd(etcd_config); });

  std::printf(
      "\nx raw = IPAM cycles/s over raw CAS writes/s at the same client count. A cycle is 2\n"
      "writes on the fast path (assign: one Commit of block + handle create; release: one Commit\n"
      "of block + handle delete) and no reads, so 0.5x is the ceiling for cycles if a 2-key\n"
      "Commit costs what a 1-key CAS does; writes/op shows what each cycle really cost (group\n"
      "commit lowers it when clients of one node share a block).\n");
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace calico::ipamd

int main(int argc, char** argv) { return calico::ipamd::Main(argc, argv); }
