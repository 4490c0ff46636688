#include "ipamd/service/leak_collector.h"

#include <catch2/catch.hpp>

#include "ipamd/allocator/resource_environment.h"
#include "tests/unit/ipamd_service/service_fixture.h"

namespace calico::ipamd::testing {
namespace {

using service::CollectResult;
using service::LeakCollector;

// One SQLite store, an allocator, and a collector for node1 on a fake clock.
struct Harness {
  explicit Harness(absl::Duration grace = absl::Minutes(10)) {
    store = OpenSqlite(dir.path());
    client = std::make_unique<resources::Client>(*store);
    allocator = std::make_unique<Allocator>(
        *store, DatastoreEnvironment(*store, absl::ZeroDuration()));
    service::LeakCollectorOptions options;
    options.node = "node1";
    options.grace = grace;
    resources::Client* c = client.get();
    collector = std::make_unique<LeakCollector>(
        *allocator, *store, [c] { return LoadInUse(*c); }, options, [this] { return now; },
        metrics);
    CreatePool(*store, "p1", "10.80.0.0/24", 28);
  }
  std::string Assign(const std::string& handle, const std::string& node = "node1") {
    AutoAssignRequest req;
    req.handle_id = handle;
    req.num_v4 = 1;
    req.node = node;
    req.attributes = {{"node", node}};
    AutoAssignResult r = Ok(allocator->AutoAssign(req));
    REQUIRE(r.v4.size() == 1);
    return r.v4[0].ip.ToString();
  }
  bool Held(const std::string& handle) { return allocator->GetHandle(handle).ok(); }
  CollectResult Pass() { return Ok(collector->RunOnce()); }

  TempDir dir;
  std::unique_ptr<datastore::Datastore> store;
  std::unique_ptr<resources::Client> client;
  std::unique_ptr<Allocator> allocator;
  http::MetricsRegistry metrics;
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  std::unique_ptr<LeakCollector> collector;
};

TEST_CASE("Leak collector releases an unused address only after the grace period",
          "[unit][leak_collector]") {
  Harness h;
  CreateNode(*h.store, "node1");
  h.Assign("k8s-pod-network.gone");
  REQUIRE(h.Pass().candidates == 1);
  h.now += absl::Minutes(9);
  CollectResult r = h.Pass();
  REQUIRE(r.released == 0);
  REQUIRE(h.Held("k8s-pod-network.gone"));
  h.now += absl::Minutes(1);
  r = h.Pass();
  REQUIRE(r.released == 1);
  REQUIRE_FALSE(h.Held("k8s-pod-network.gone"));
  REQUIRE(h.metrics.Counter("ipamd_leaks_released_total", "").Value() == 1);
  REQUIRE(h.Pass().candidates == 0);
}

TEST_CASE("Leak collector never releases an address a workload uses", "[unit][leak_collector]") {
  Harness h;
  CreateNode(*h.store, "node1");
  std::string ip = h.Assign("k8s-pod-network.live");
  CreateWorkload(*h.store, "node1", "live", ip);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(h.Pass().candidates == 0);
    h.now += absl::Hours(1);
  }
  REQUIRE(h.Held("k8s-pod-network.live"));
}

TEST_CASE("Leak collector re-checks before release: a workload appearing late saves the address",
          "[unit][leak_collector]") {
  Harness h;
  CreateNode(*h.store, "node1");
  std::string ip = h.Assign("k8s-pod-network.slow");
  REQUIRE(h.Pass().candidates == 1);
  h.now += absl::Minutes(11);
  CreateWorkload(*h.store, "node1", "slow", ip);  // felixd got there in the end
  REQUIRE(h.Pass().released == 0);
  REQUIRE(h.Held("k8s-pod-network.slow"));
}

TEST_CASE("Leak collector restarts the clock when an address changes owner",
          "[unit][leak_collector]") {
  Harness h;
  CreateNode(*h.store, "node1");
  std::string ip = h.Assign("k8s-pod-network.first");
  REQUIRE(h.Pass().candidates == 1);
  h.now += absl::Minutes(9);
  Ok(h.allocator->ReleaseByHandle("k8s-pod-network.first"));
  Ok(h.allocator->AssignIP(*net::ParseIp(ip), "k8s-pod-network.second", {{"node", "node1"}},
                           "node1"));
  REQUIRE(h.Pass().released == 0);
  h.now += absl::Minutes(2);  // 11 min after the first owner, 2 after the second
  REQUIRE(h.Pass().released == 0);
  REQUIRE(h.Held("k8s-pod-network.second"));
  h.now += absl::Minutes(8);
  REQUIRE(h.Pass().released == 1);
  REQUIRE_FALSE(h.Held("k8s-pod-network.second"));
}

TEST_CASE("Leak collector leaves other live nodes' addresses to their own ipamd",
          "[unit][leak_collector]") {
  Harness h;
  CreateNode(*h.store, "node1");
  CreateNode(*h.store, "node2");
  h.Assign("k8s-pod-network.theirs", "node2");
  h.Pass();
  h.now += absl::Hours(1);
  CollectResult r = h.Pass();
  REQUIRE(r.candidates == 0);
  REQUIRE(r.released == 0);
  REQUIRE(h.Held("k8s-pod-network.theirs"));
}

TEST_CASE(
    "Leak collector releases a deleted node's addresses and affinities after the grace period",
    "[unit][leak_collector]") {
  Harness h;
  CreateNode(*h.store, "node1");
  CreateNode(*h.store, "node2");
  h.Assign("k8s-pod-network.on-node2", "node2");
  Ok(resources::Client(*h.store).Delete(*resources::FindKind("Node"), "", "node2"));
  CollectResult r = h.Pass();
  REQUIRE(r.candidates == 1);
  REQUIRE(r.nodes_released == 0);
  h.now += absl::Minutes(10);
  r = h.Pass();
  REQUIRE(r.released == 1);
  REQUIRE(r.nodes_released == 1);
  REQUIRE_FALSE(h.Held("k8s-pod-network.on-node2"));
  for (const Block& b : Ok(h.allocator->ListBlocks())) REQUIRE(b.AffineNode() != "node2");
}

TEST_CASE("Leak collector keeps foreign affinities when no Node resources exist at all",
          "[unit][leak_collector]") {
  Harness h;  // standalone: nobody registers Node resources
  h.Assign("k8s-pod-network.x", "node2");
  h.Pass();
  h.now += absl::Hours(2);
  CollectResult r = h.Pass();
  REQUIRE(r.nodes_released == 0);
  REQUIRE(h.Held("k8s-pod-network.x"));
}

}  // namespace
}  // namespace calico::ipamd::testing
