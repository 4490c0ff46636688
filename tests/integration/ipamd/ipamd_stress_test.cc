// The stress test: 4 ipamd processes as 4 nodes on one 3-member etcd cluster, 8
// concurrent gRPC clients doing assign/release cycles, one ipamd SIGKILLed and restarted
// mid-run, one etcd member killed and restarted. Afterwards: no address held by two handles,
// every live handle has its addresses, and Check() — and `calicoctl ipam check`, the binary —
// is clean once leak collection has run.
//
// IPAMD_STRESS_CYCLES overrides the cycles per client (default below, see kDefaultCycles).

#include <grpcpp/client_context.h>
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "calico/ipam/v1/ipam.grpc.pb.h"
#include "common/datastore/config.h"
#include "common/resources/client/client.h"
#include "ipamd/allocator/block.h"
#include "ipamd/allocator/check.h"
#include "ipamd/allocator/check_load.h"
#include "ipamd/service/default_pools.h"
#include "ipamd/service/ipam_service.h"
#include "tests/integration/ipamd/ipamd_process.h"
#include "tests/support/etcd/etcd_server.h"

namespace calico::ipamd::testing {
namespace {

namespace pb = ::calico::ipam::v1;
using ::calico::testing::EtcdCluster;

constexpr int kNodes = 4;
constexpr int kClients = 8;
constexpr int kDefaultCycles = 500;
constexpr int kKeepPerClient = 2;  // handles each client leaves live, with a WorkloadEndpoint

int Cycles() {
  const char* env = std::getenv("IPAMD_STRESS_CYCLES");
  int n = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &n) && n > 0) return n;
  return kDefaultCycles;
}

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::ABORTED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// Addresses currently held by some client, by the clients' own account: a second handle
// getting a held address is the bug this test exists to catch.
struct Ledger {
  std::mutex mu;
  std::map<std::string, std::string> held;  // ip -> handle
  std::vector<std::string> violations;

  void Take(const std::string& ip, const std::string& handle) {
    std::lock_guard<std::mutex> lock(mu);
    auto [it, inserted] = held.emplace(ip, handle);
    if (!inserted && it->second != handle) {
      violations.push_back(absl::StrCat(ip, " given to ", handle, " while held by ", it->second));
    }
  }
  void Drop(const std::string& ip) {
    std::lock_guard<std::mutex> lock(mu);
    held.erase(ip);
  }
};

struct ClientStats {
  int cycles = 0;
  int retries = 0;
  std::vector<std::string> errors;
  std::map<std::string, std::vector<std::string>> kept;  // handle -> ips
};

// One client of one ipamd: assign, release, repeat; retries what a restart or failover can
// cause, with the same handle (so a retried assign may hold two addresses; release frees all).
void RunClient(int id, const std::string& socket, int cycles, Ledger& ledger,
               std::atomic<int>& done_cycles, ClientStats& stats) {
  auto stub = pb::Ipam::NewStub(FastReconnectChannel(socket));
  auto call = [&](auto&& rpc) -> grpc::Status {
    absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (true) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
      grpc::Status s = rpc(ctx);
      if (s.ok() || !Retryable(s.error_code()) || absl::Now() > give_up) return s;
      ++stats.retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  for (int k = 0; k < cycles + kKeepPerClient; ++k) {
    std::string handle = absl::StrCat("k8s-pod-network.c", id, "-", k);
    pb::AutoAssignRequest req;
    req.set_handle_id(handle);
    req.set_num_v4(1);
    (*req.mutable_attributes())["pod"] = absl::StrCat("p", id, "-", k);
    (*req.mutable_attributes())["namespace"] = "stress";
    pb::AutoAssignResponse resp;
    grpc::Status s = call([&](grpc::ClientContext& ctx) {
      resp.Clear();
      return stub->AutoAssign(&ctx, req, &resp);
    });
    if (!s.ok()) {
      stats.errors.push_back(absl::StrCat(handle, " AutoAssign: ", s.error_message()));
      continue;
    }
    for (const auto& a : resp.v4()) ledger.Take(a.ip(), handle);
    if (k >= cycles) {  // the last few stay live
      pb::GetHandleRequest get;
      get.set_handle_id(handle);
      pb::GetHandleResponse got;
      s = call([&](grpc::ClientContext& ctx) { return stub->GetHandle(&ctx, get, &got); });
      if (!s.ok()) stats.errors.push_back(absl::StrCat(handle, " GetHandle: ", s.error_message()));
      stats.kept[handle].assign(got.ips().begin(), got.ips().end());
      continue;
    }
    pb::ReleaseByHandleRequest rel;
    rel.set_handle_id(handle);
    pb::ReleaseByHandleResponse released;
    s = call([&](grpc::ClientContext& ctx) { return stub->ReleaseByHandle(&ctx, rel, &released); });
    if (!s.ok()) {
      stats.errors.push_back(absl::StrCat(handle, " ReleaseByHandle: ", s.error_message()));
      continue;
    }
    // Drop what we were given (a retried release may report an empty list the second time).
    for (const auto& a : resp.v4()) ledger.Drop(a.ip());
    ++stats.cycles;
    ++done_cycles;
  }
}

std::unique_ptr<datastore::Datastore> OpenCluster(const std::vector<std::string>& urls) {
  datastore::Config config;
  config.type = datastore::BackendType::kEtcdV3;
  config.etcd_endpoints = urls;
  auto store = datastore::Open(config);
  REQUIRE(store.ok());
  return std::move(store).value();
}

void CreateWorkload(resources::Client& client, const std::string& node, const std::string& pod,
                    const std::string& ip) {
  resources::Json object = {
      {"apiVersion", "projectcalico.org/v3"},
      {"kind", "WorkloadEndpoint"},
      {"metadata", {{"name", node + "-k8s-" + pod + "-eth0"}, {"namespace", "stress"}}},
      {"spec",
       {{"orchestrator", "k8s"},
        {"node", node},
        {"pod", pod},
        {"endpoint", "eth0"},
        {"containerID", "c" + pod},
        {"interfaceName", "cali0000000" + std::to_string(pod.size() % 10)},
        {"ipNetworks", {ip + "/32"}}}}};
  auto r = resources::FromObject(object);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  auto made = client.Create(*r);
  INFO(made.status().ToString());
  REQUIRE(made.ok());
}

TEST_CASE("stress: 4 ipamds, 8 clients, SIGKILLed ipamd and etcd member, then a clean check",
          "[integration][ipamd][stress]") {
  const int cycles = Cycles();
  auto cluster_or = EtcdCluster::Start(3);
  INFO(cluster_or.status().ToString());
  REQUIRE(cluster_or.ok());
  EtcdCluster& cluster = **cluster_or;
  const std::vector<std::string> urls = cluster.ClientUrls();
  auto store = OpenCluster(urls);
  resources::Client client(*store);

  // The cluster as a registered one: Node resources for the 4 nodes, one pool of 4096
  // addresses in /26 blocks (64 blocks: room for affine blocks of all nodes and borrowing).
  for (int n = 0; n < kNodes; ++n) {
    auto node = resources::FromObject({{"apiVersion", "projectcalico.org/v3"},
                                       {"kind", "Node"},
                                       {"metadata", {{"name", absl::StrCat("node-", n)}}},
                                       {"spec", resources::Json::object()}});
    REQUIRE(node.ok());
    REQUIRE(client.Create(*node).ok());
  }
  service::DefaultPoolSpec pool{"stress-pool", "10.96.0.0/20", 26,     "Never",
                                "Never",       false,          "all()"};
  REQUIRE(client.Create(*service::PoolResource(pool)).ok());

  ScratchDir dir;
  std::map<std::string, std::string> env = {{"DATASTORE_TYPE", "etcdv3"},
                                            {"ETCD_ENDPOINTS", absl::StrJoin(urls, ",")},
                                            {"NO_DEFAULT_POOLS", "true"}};
  // During the run leak collection is off: clients hold addresses without WorkloadEndpoints
  // for a moment, which a tiny grace would (rightly) call leaks.
  std::vector<std::string> quiet = {"--http-listen=127.0.0.1:0", "--log-level=warn",
                                    "--collect-leaks=false"};
  std::vector<std::unique_ptr<IpamdProcess>> ipamds;
  for (int n = 0; n < kNodes; ++n) {
    ipamds.push_back(
        std::make_unique<IpamdProcess>(absl::StrCat("node-", n), dir.path(), quiet, env));
    absl::Status s = ipamds.back()->Start();
    INFO(s.ToString());
    REQUIRE(s.ok());
  }

  Ledger ledger;
  std::atomic<int> done{0};
  std::vector<ClientStats> stats(kClients);
  const absl::Time t0 = absl::Now();
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back(
        [&, c] { RunClient(c, ipamds[c % kNodes]->socket(), cycles, ledger, done, stats[c]); });
  }

  // The faults, at a third and two thirds of the run.
  const int total = cycles * kClients;
  std::string faults;
  auto wait_for = [&](int n) {
    while (done.load() < n && absl::Now() - t0 < absl::Minutes(4))
      absl::SleepFor(absl::Milliseconds(20));
  };
  wait_for(total / 3);
  REQUIRE(ipamds[1]->Signal(SIGKILL) == 128 + SIGKILL);
  absl::Time killed = absl::Now();
  const int at_ipamd_kill = done.load();
  absl::SleepFor(absl::Milliseconds(300));
  absl::Status restarted = ipamds[1]->Start();
  INFO(restarted.ToString());
  REQUIRE(restarted.ok());
  absl::StrAppend(&faults, "ipamd node-1 SIGKILLed at cycle ", at_ipamd_kill, ", back after ",
                  absl::FormatDuration(absl::Now() - killed), "; ");
  wait_for(2 * total / 3);
  cluster.member(2).Stop();
  absl::Time etcd_down = absl::Now();
  const int at_etcd_kill = done.load();
  absl::SleepFor(absl::Seconds(1));
  absl::Status etcd_back = cluster.member(2).Restart();
  INFO(etcd_back.ToString());
  REQUIRE(etcd_back.ok());
  absl::StrAppend(&faults, "etcd member 2 SIGKILLed at cycle ", at_etcd_kill, ", back after ",
                  absl::FormatDuration(absl::Now() - etcd_down));

  for (auto& t : clients) t.join();
  const absl::Duration elapsed = absl::Now() - t0;
  // The faults must land while clients run, or the test proves nothing about them.
  INFO(faults);
  CHECK(at_ipamd_kill < total);
  CHECK(at_etcd_kill < total);
  int retries = 0, completed = 0;
  std::vector<std::string> errors;
  std::map<std::string, std::vector<std::string>> kept;
  for (int c = 0; c < kClients; ++c) {
    retries += stats[c].retries;
    completed += stats[c].cycles;
    errors.insert(errors.end(), stats[c].errors.begin(), stats[c].errors.end());
    kept.insert(stats[c].kept.begin(), stats[c].kept.end());
  }
  WARN("stress: " << kClients << " clients x " << cycles << " cycles = " << completed
                  << " assign/release cycles in " << absl::FormatDuration(elapsed) << " ("
                  << completed / absl::ToDoubleSeconds(elapsed) << " cycles/s), " << retries
                  << " retried calls; " << faults);
  INFO(absl::StrJoin(errors, "\n"));
  REQUIRE(errors.empty());
  REQUIRE(completed == total);
  INFO(absl::StrJoin(ledger.violations, "\n"));
  REQUIRE(ledger.violations.empty());

  // Live handles get their WorkloadEndpoints, as felixd would write them.
  for (const auto& [handle, ips] : kept) {
    REQUIRE(ips.size() >= 1);
    std::string pod = handle.substr(std::string("k8s-pod-network.").size());
    for (size_t i = 0; i < ips.size(); ++i) {
      CreateWorkload(client, "node-" + std::to_string(std::stoi(pod.substr(1)) % kNodes),
                     absl::StrCat(pod, "-", i), ips[i]);
    }
  }

  // Leaks for the collector to find for sure (a SIGKILL mid-request may or may not leave one):
  // a CNI plugin that died after AutoAssign, on every node.
  for (int n = 0; n < kNodes; ++n) {
    auto stub = pb::Ipam::NewStub(FastReconnectChannel(ipamds[n]->socket()));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
    pb::AutoAssignRequest req;
    req.set_handle_id(absl::StrCat("k8s-pod-network.orphan-", n));
    req.set_num_v4(1);
    pb::AutoAssignResponse resp;
    REQUIRE(stub->AutoAssign(&ctx, req, &resp).ok());
  }
  {
    auto in_use = LoadInUse(client);
    auto handles = service::ListHandles(*store);
    auto all = store->List(BlockPrefix(4));
    REQUIRE((in_use.ok() && handles.ok() && all.ok()));
    std::vector<Block> before;
    for (const auto& e : all->entries) before.push_back(*DecodeBlock(e.value));
    CheckReport dirty = Check(before, *handles, *in_use);
    REQUIRE(dirty.allocated_not_in_use.size() >= static_cast<size_t>(kNodes));
  }

  // Now collect leaks with a tiny grace.
  for (auto& ipamd : ipamds) REQUIRE(ipamd->Signal(SIGTERM) == 0);
  std::vector<std::string> collecting = {"--http-listen=127.0.0.1:0", "--log-level=info",
                                         "--leak-grace=1s", "--leak-interval=500ms"};
  for (int n = 0; n < kNodes; ++n) {
    ipamds[n] =
        std::make_unique<IpamdProcess>(absl::StrCat("node-", n), dir.path(), collecting, env);
    REQUIRE(ipamds[n]->Start().ok());
  }
  CheckReport report;
  std::vector<Block> blocks;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (true) {
    auto in_use = LoadInUse(client);
    REQUIRE(in_use.ok());
    auto handles = service::ListHandles(*store);
    REQUIRE(handles.ok());
    auto listed = store->List(BlockPrefix(4));
    REQUIRE(listed.ok());
    blocks.clear();
    for (const auto& e : listed->entries) {
      auto b = DecodeBlock(e.value);
      REQUIRE(b.ok());
      blocks.push_back(*b);
    }
    report = Check(blocks, *handles, *in_use);
    if (report.Clean() || absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  INFO(ReportToJson(report));
  REQUIRE(report.Clean());

  // And as an operator sees it: the real calicoctl against the same etcd.
  {
    std::string command = absl::StrCat("DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=", absl::StrJoin(urls, ","),
                                       " ", CALICOCTL_BINARY, " ipam check 2>&1");
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string output;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) output.append(buf, n);
    int status = pclose(pipe);
    INFO(output);
    REQUIRE(status == 0);
    REQUIRE(output.find("Check complete; found 0 problems.") != std::string::npos);
  }

  // Read the blocks directly: every allocated address has exactly one handle, and it is one
  // of the live ones, holding exactly what its client was given.
  std::map<std::string, std::string> owner;  // ip -> handle
  for (const Block& b : blocks) {
    std::set<int> free(b.unallocated.begin(), b.unallocated.end());
    REQUIRE(free.size() == b.unallocated.size());
    for (int o = 0; o < b.NumAddresses(); ++o) {
      REQUIRE(b.allocations[o].has_value() != (free.count(o) == 1));
      if (!b.allocations[o]) continue;
      std::string ip = b.AddressOf(o).ToString();
      REQUIRE(owner.count(ip) == 0);
      owner[ip] = b.attributes.at(*b.allocations[o]).handle_id;
    }
  }
  std::map<std::string, std::string> expected;
  for (const auto& [handle, ips] : kept) {
    for (const std::string& ip : ips) expected[ip] = handle;
  }
  REQUIRE(owner == expected);
  int collected = 0;
  for (auto& ipamd : ipamds) {
    std::string log = ipamd->Log();
    for (size_t at = log.find("event=leak_released"); at != std::string::npos;
         at = log.find("event=leak_released", at + 1)) {
      ++collected;
    }
  }
  REQUIRE(collected >= kNodes);
  WARN("after collection: " << collected << " leaked addresses released, " << owner.size()
                            << " live addresses in " << blocks.size() << " blocks, Check clean");
}

}  // namespace
}  // namespace calico::ipamd::testing
