// The birdd daemon end to end: nodes are test namespaces on a shared bridge (the "fabric"), each
// running the real `birdd` binary over one embedded datastore file; the routes each node
// advertises come from a stand-in for felixd's WatchAdvertisedRoutes stream served by this test
// (the real felixd's stream is covered by its own tests and by the e2e cluster). Checked in each
// node's kernel: routes learned as `proto bird`, with the right next hops.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "calico/bgp/v1/bgp.grpc.pb.h"
#include "calico/dataplane/v1/dataplane.grpc.pb.h"
#include "common/datastore/config.h"
#include "common/resources/client/client.h"
#include "tests/integration/cni/node_harness.h"
#include "common/net/ip.h"
#include "tests/support/bird/bird_peer.h"
#include "tests/support/netns/test_netns.h"

namespace calico::birdd {
namespace {

namespace dp = ::calico::dataplane::v1;
using ::calico::cni::testing::Process;
using ::calico::cni::testing::TempDir;
using ::calico::testing::TestNetns;

void Sh(const TestNetns& ns, const std::string& cmd) {
  ::calico::testing::ExecResult r = ns.Exec(cmd);
  INFO(ns.name() << ": `" << cmd << "`: " << r.output);
  REQUIRE(r.status == 0);
}

// felixd's advertised-routes stream, as birdd consumes it: a snapshot, then changes.
class FakeFelixd final : public dp::Dataplane::Service {
 public:
  explicit FakeFelixd(std::string socket) : socket_(std::move(socket)) { Serve(); }
  ~FakeFelixd() override { Shutdown(); }

  void Serve() {
    grpc::ServerBuilder b;
    b.AddListeningPort(absl::StrCat("unix:", socket_), grpc::InsecureServerCredentials());
    b.RegisterService(this);
    {
      std::lock_guard<std::mutex> lock(mu_);
      down_ = false;
    }
    server_ = b.BuildAndStart();
    REQUIRE(server_ != nullptr);
  }
  // felixd stopping: streams end, birdd reconnects.
  void Shutdown() {
    if (server_ == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      down_ = true;
      changed_.notify_all();
    }
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_.reset();
  }
  void Set(std::set<std::string> routes) {
    std::lock_guard<std::mutex> lock(mu_);
    routes_ = std::move(routes);
    ++version_;
    changed_.notify_all();
  }

  grpc::Status WatchAdvertisedRoutes(grpc::ServerContext* context, const dp::WatchAdvertisedRoutesRequest*,
                                     grpc::ServerWriter<dp::AdvertisedRoutes>* writer) override {
    std::unique_lock<std::mutex> lock(mu_);
    uint64_t sent = 0;
    bool first = true;
    while (!down_ && !context->IsCancelled()) {
      if (first || sent != version_) {
        // Every message a snapshot: simple, and birdd must handle snapshots after the first.
        dp::AdvertisedRoutes m;
        m.set_snapshot(true);
        for (const std::string& r : routes_) {
          dp::AdvertisedRoutes::Route* route = m.add_added();
          route->set_cidr(r);
          route->set_kind("block");
        }
        sent = version_;
        first = false;
        lock.unlock();
        bool ok = writer->Write(m);
        lock.lock();
        if (!ok) break;
      }
      changed_.wait_for(lock, std::chrono::milliseconds(100));
    }
    return grpc::Status::OK;
  }

 private:
  std::string socket_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::set<std::string> routes_;
  uint64_t version_ = 0;
  bool down_ = false;
};

// N nodes on one bridge: node i (1-based) has 10.201.0.i/24 and fd00:201::i/64 on eth0.
class Cluster {
 public:
  explicit Cluster(int nodes) {
    fabric_ = std::make_unique<TestNetns>(std::move(*TestNetns::Create("fabric")));
    Sh(*fabric_, "ip link add br0 type bridge && ip link set br0 up");
    absl::StatusOr<std::unique_ptr<datastore::Datastore>> store = datastore::Open(StoreConfig());
    REQUIRE(store.ok());
    store_ = std::move(*store);
    client_ = std::make_unique<resources::Client>(*store_);
    Apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: default}\n"
          "spec: {cidr: 10.244.0.0/16, blockSize: 26}\n");
    for (int i = 1; i <= nodes; ++i) AddNode(i);
  }
  ~Cluster() {
    for (auto& n : nodes_) n.birdd.reset();
    for (auto& n : nodes_) n.felixd.reset();
  }

  struct Node {
    int index = 0;
    std::string name;
    std::unique_ptr<TestNetns> ns;
    std::unique_ptr<FakeFelixd> felixd;
    std::unique_ptr<Process> birdd;
    std::string socket;
    std::string ip() const { return absl::StrCat("10.201.0.", index); }
  };

  datastore::Config StoreConfig() const {
    datastore::Config c;
    c.type = datastore::BackendType::kEmbedded;
    c.sqlite_path = absl::StrCat(dir_.path(), "/calico.db");
    return c;
  }

  void Apply(const std::string& yaml) {
    absl::StatusOr<std::vector<resources::ParsedDocument>> docs = resources::ParseDocuments(yaml);
    REQUIRE(docs.ok());
    for (resources::ParsedDocument& d : *docs) {
      INFO(yaml);
      REQUIRE(d.resource.ok());
      absl::StatusOr<resources::Resource> r = client_->Apply(*d.resource);
      INFO(r.status().ToString());
      REQUIRE(r.ok());
    }
  }
  void Delete(std::string_view kind, std::string_view name) {
    REQUIRE(client_->Delete(*resources::FindKind(kind), "", name, std::nullopt).ok());
  }

  void AddNode(int i, const std::string& extra_bgp = "", const std::string& labels = "{}") {
    Node n;
    n.index = i;
    n.name = absl::StrCat("node", i);
    n.ns = std::make_unique<TestNetns>(std::move(*TestNetns::Create(n.name)));
    Sh(*fabric_, absl::StrCat("ip link add veth-", i, " type veth peer name eth0 netns ", n.ns->name(),
                              " && ip link set veth-", i, " master br0 up"));
    Sh(*n.ns, absl::StrCat("ip link set lo up && ip addr add 10.201.0.", i, "/24 dev eth0 && ",
                           "ip -6 addr add fd00:201::", i, "/64 dev eth0 nodad && ip link set eth0 up && ",
                           "sysctl -qw net.ipv4.ip_forward=1"));
    n.socket = absl::StrCat(dir_.path(), "/felixd-", i, ".sock");
    n.felixd = std::make_unique<FakeFelixd>(n.socket);
    nodes_.push_back(std::move(n));
    WriteNode(i, extra_bgp, labels);
  }
  void WriteNode(int i, const std::string& extra_bgp = "", const std::string& labels = "{}") {
    Apply(absl::StrCat("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node", i, ", labels: ", labels,
                       "}\nspec:\n  bgp:\n    ipv4Address: 10.201.0.", i, "/24\n", extra_bgp));
  }

  Node& node(int i) { return nodes_[i - 1]; }
  // Another namespace on the fabric (a router), at 10.201.0.<index>/24.
  std::unique_ptr<TestNetns> AddRouter(int index) {
    auto ns = std::make_unique<TestNetns>(std::move(*TestNetns::Create("router")));
    Sh(*fabric_, absl::StrCat("ip link add veth-r", index, " type veth peer name eth0 netns ", ns->name(),
                              " && ip link set veth-r", index, " master br0 up"));
    Sh(*ns, absl::StrCat("ip link set lo up && ip addr add 10.201.0.", index, "/24 dev eth0 && ip link set eth0 up"));
    return ns;
  }

  void StartBirdd(int i, std::vector<std::string> extra = {}) {
    Node& n = node(i);
    std::vector<std::string> argv = {BIRDD_BINARY,
                                     absl::StrCat("--node=", n.name),
                                     absl::StrCat("--socket=", dir_.path(), "/bgp-", i, ".sock"),
                                     // The node's own loopback: the same port in every node.
                                     "--http_listen=127.0.0.1:9098",
                                     absl::StrCat("--felixd_socket=", n.socket),
                                     "--connect_retry=1s",
                                     "--hold_time=9s",
                                     "--resync_interval=2s",
                                     "--log_level=debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    n.birdd = std::make_unique<Process>(
        argv,
        std::map<std::string, std::string>{{"DATASTORE_TYPE", "embedded"},
                                           {"CALICO_DATASTORE_PATH", StoreConfig().sqlite_path}},
        absl::StrCat(dir_.path(), "/birdd-", i, ".log"), n.ns->path());
    n.birdd->Spawn();
  }
  std::string BgpSocket(int i) const { return absl::StrCat(dir_.path(), "/bgp-", i, ".sock"); }

  // `ip route show proto bird` in node i, one route per line (multipath folded onto one line).
  std::string BirdRoutes(int i, int family = 4) {
    ::calico::testing::ExecResult r =
        node(i).ns->Exec(absl::StrCat("ip -o -", family, " route show proto bird"));
    return r.output;
  }
  // Waits until node i's `proto bird` routes contain every line part in `want` and none in
  // `unwanted`; on timeout fails with what is there and birdd's log.
  void WaitRoutes(int i, const std::vector<std::string>& want, const std::vector<std::string>& unwanted = {},
                  absl::Duration timeout = absl::Seconds(30), int family = 4) {
    absl::Time deadline = absl::Now() + timeout;
    std::string routes;
    while (absl::Now() < deadline) {
      routes = BirdRoutes(i, family);
      bool ok = true;
      for (const std::string& w : want) ok = ok && absl::StrContains(routes, w);
      for (const std::string& u : unwanted) ok = ok && !absl::StrContains(routes, u);
      if (ok) return;
      absl::SleepFor(absl::Milliseconds(100));
    }
    INFO("node" << i << " routes:\n" << routes);
    INFO("birdd log:\n" << (node(i).birdd ? node(i).birdd->LogTail(6000) : std::string("(not running)")));
    FAIL("routes did not converge: want [" << absl::StrJoin(want, ", ") << "] without ["
                                           << absl::StrJoin(unwanted, ", ") << "]");
  }

  // birdd's status, or nullopt while it does not answer (starting, or a stale socket file).
  std::optional<bgp::v1::GetStatusResponse> TryStatus(int i) {
    auto channel = grpc::CreateChannel(absl::StrCat("unix:", BgpSocket(i)), grpc::InsecureChannelCredentials());
    auto stub = bgp::v1::Bgp::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    bgp::v1::GetStatusResponse out;
    if (!stub->GetStatus(&ctx, {}, &out).ok()) return std::nullopt;
    return out;
  }
  bgp::v1::GetStatusResponse Status(int i) {
    std::optional<bgp::v1::GetStatusResponse> s = TryStatus(i);
    REQUIRE(s.has_value());
    return *s;
  }
  bgp::v1::ListRoutesResponse Routes(int i) {
    auto channel = grpc::CreateChannel(absl::StrCat("unix:", BgpSocket(i)), grpc::InsecureChannelCredentials());
    auto stub = bgp::v1::Bgp::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    bgp::v1::ListRoutesResponse out;
    REQUIRE(stub->ListRoutes(&ctx, {}, &out).ok());
    return out;
  }
  // Waits until node i reports `count` Established peers (of `configured`, default `count`).
  void WaitEstablished(int i, int count, absl::Duration timeout = absl::Seconds(30), int configured = -1) {
    if (configured < 0) configured = count;
    absl::Time deadline = absl::Now() + timeout;
    std::string seen;
    while (absl::Now() < deadline) {
      if (std::optional<bgp::v1::GetStatusResponse> status = TryStatus(i)) {
        const bgp::v1::GetStatusResponse& s = *status;
        int up = 0;
        seen.clear();
        for (const bgp::v1::Peer& p : s.peers()) {
          up += p.state() == "Established";
          absl::StrAppend(&seen, p.name(), " ", p.state(), " ", p.info(), "\n");
        }
        if (up == count && s.peers_size() == configured) return;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    INFO("peers:\n" << seen);
    INFO("birdd log:\n" << (node(i).birdd ? node(i).birdd->LogTail(6000) : std::string("(not running)")));
    FAIL("node" << i << ": not " << count << " Established peers");
  }

  const std::string& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
  std::unique_ptr<TestNetns> fabric_;
  std::unique_ptr<datastore::Datastore> store_;
  std::unique_ptr<resources::Client> client_;
  std::vector<Node> nodes_;
};

TEST_CASE("three birdd as a full mesh: blocks in every kernel, pool filter, live mesh switch-off") {
  Cluster c(3);
  c.Apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: quiet}\n"
          "spec: {cidr: 10.245.0.0/16, disableBGPExport: true}\n");
  for (int i = 1; i <= 3; ++i) {
    // Its block, a block of the non-exported pool, and something outside every pool.
    c.node(i).felixd->Set({absl::StrCat("10.244.", i, ".0/26"), absl::StrCat("10.245.", i, ".0/26"),
                           absl::StrCat("192.0.2.", i * 8, "/29")});
    c.StartBirdd(i);
  }
  for (int i = 1; i <= 3; ++i) {
    std::vector<std::string> want;
    std::vector<std::string> unwanted = {absl::StrCat("10.244.", i, ".0/26"), "10.245.", "192.0.2."};
    for (int j = 1; j <= 3; ++j) {
      if (j != i) want.push_back(absl::StrCat("10.244.", j, ".0/26 via 10.201.0.", j, " dev eth0"));
    }
    c.WaitRoutes(i, want, unwanted);
  }
  c.WaitEstablished(1, 2);
  bgp::v1::GetStatusResponse s = c.Status(1);
  CHECK(s.as_number() == 64512);
  CHECK(s.router_id() == "10.201.0.1");
  CHECK(s.ready());
  REQUIRE(s.advertised_size() == 1);
  CHECK(s.advertised(0) == "10.244.1.0/26");
  REQUIRE(s.peers_size() == 2);
  CHECK(s.peers(0).name() == "Mesh_10_201_0_2");
  CHECK(s.peers(0).type() == "node-to-node mesh");
  CHECK(s.peers(0).info() == "Established");
  CHECK(s.peers(0).prefixes_received() == 1);
  CHECK(s.peers(0).prefixes_advertised() >= 1);
  CHECK(s.peers(0).origin() == "Node \"node2\"");

  // Upstream's `calicoctl node status` shape.
  ::calico::testing::ExecResult status = c.node(1).ns->Exec(
      absl::StrCat(CALICOCTL_BINARY, " node status --birdd-socket=", c.BgpSocket(1)));
  INFO(status.output);
  CHECK(status.status == 0);
  CHECK(absl::StartsWith(status.output, "Calico process is running.\n\nIPv4 BGP status\n+"));
  CHECK(absl::StrContains(status.output, "| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |"));
  CHECK(absl::StrContains(status.output, "| 10.201.0.2   | node-to-node mesh | up    |"));
  CHECK(absl::StrContains(status.output, "| 10.201.0.3   | node-to-node mesh | up    |"));
  CHECK(absl::StrContains(status.output, "| Established |"));
  CHECK(absl::StrContains(status.output, "IPv6 BGP status\nNo IPv6 peers found.\n"));
  ::calico::testing::ExecResult routes = c.node(1).ns->Exec(
      absl::StrCat(CALICOCTL_BINARY, " node routes --family=4 --birdd-socket=", c.BgpSocket(1)));
  INFO(routes.output);
  CHECK(absl::StrContains(routes.output, "10.244.2.0/26   10.201.0.2   Mesh_10_201_0_2"));
  CHECK(absl::StrContains(routes.output, "10.244.1.0/26   -            local"));
  ::calico::testing::ExecResult down = c.node(1).ns->Exec(
      absl::StrCat(CALICOCTL_BINARY, " node status --birdd-socket=", c.dir(), "/nothing.sock"));
  CHECK(down.status == 1);
  CHECK(absl::StartsWith(down.output, "Calico process is not running.\n"));

  SECTION("a new block and a withdrawn one reach the other nodes") {
    c.node(2).felixd->Set({"10.244.2.64/26"});
    c.WaitRoutes(1, {"10.244.2.64/26 via 10.201.0.2"}, {"10.244.2.0/26"});
    c.WaitRoutes(3, {"10.244.2.64/26 via 10.201.0.2"}, {"10.244.2.0/26"});
  }
  SECTION("a confirmed block's /26 reaches the peers before its pods' /32s are withdrawn") {
    // felixd advertises a pod's /32 until its block is confirmed, then the block: a peer that
    // deleted the /32s before installing the /26 dropped the pods' traffic in between (~40 ms
    // seen in the cluster e2e).
    c.node(2).felixd->Set({"10.244.2.0/26", "10.244.9.1/32", "10.244.9.2/32"});
    c.WaitRoutes(1, {"10.244.9.1 via 10.201.0.2", "10.244.9.2 via 10.201.0.2"});
    const std::string log = absl::StrCat(c.dir(), "/monitor-node1.log");
    Sh(*c.node(1).ns, absl::StrCat("(timeout 3 stdbuf -oL ip -o monitor route > ", log, " 2>&1 &)"));
    absl::SleepFor(absl::Milliseconds(300));
    c.node(2).felixd->Set({"10.244.2.0/26", "10.244.9.0/26"});
    c.WaitRoutes(1, {"10.244.9.0/26 via 10.201.0.2"}, {"10.244.9.1 via", "10.244.9.2 via"});
    absl::SleepFor(absl::Seconds(3));  // the monitor's timeout
    std::ifstream in(log);
    std::string events((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(events);
    const size_t added = events.find("10.244.9.0/26 via");
    REQUIRE(added != std::string::npos);
    for (const char* gone : {"Deleted 10.244.9.1 via", "Deleted 10.244.9.2 via"}) {
      const size_t deleted = events.find(gone);
      REQUIRE(deleted != std::string::npos);
      CHECK(added < deleted);
    }
  }
  SECTION("switching the mesh off withdraws everything; on again restores it") {
    c.Apply("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n"
            "spec: {nodeToNodeMeshEnabled: false}\n");
    c.WaitRoutes(1, {}, {"10.244."});
    c.WaitRoutes(3, {}, {"10.244."});
    CHECK(c.Status(1).peers_size() == 0);
    c.Apply("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n"
            "spec: {nodeToNodeMeshEnabled: true}\n");
    c.WaitRoutes(1, {"10.244.2.0/26 via 10.201.0.2", "10.244.3.0/26 via 10.201.0.3"});
  }
  SECTION("a peer that is down is listed by /readiness, which still says ready") {
    // SIGTERM is a restart (an upgrade, a rollout): no NOTIFICATION, so the others keep its
    // routes under graceful restart until it is back or its restart time runs out.
    c.node(3).birdd->Signal(SIGTERM);
    c.WaitEstablished(1, 1, absl::Seconds(30), /*configured=*/2);
    CHECK(absl::StrContains(c.BirdRoutes(1), "10.244.3.0/26 via 10.201.0.3"));
    ::calico::testing::ExecResult ready =
        c.node(1).ns->Exec("curl -s -w '\\n%{http_code}' http://127.0.0.1:9098/readiness");
    INFO(ready.output);
    CHECK(absl::StartsWith(ready.output, "ready\npeer 10.201.0.3 (Node \"node3\"): "));
    CHECK(absl::EndsWith(ready.output, "\n200"));
    // The gauges are refreshed every second.
    ::calico::testing::ExecResult metrics;
    for (int i = 0; i < 30; ++i) {
      metrics = c.node(1).ns->Exec("curl -s http://127.0.0.1:9098/metrics");
      if (absl::StrContains(metrics.output, "birdd_peer_flaps_total{peer=\"Mesh_10_201_0_3\"} 1")) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    CHECK(absl::StrContains(metrics.output,
                            "birdd_peer_established{peer=\"Mesh_10_201_0_2\",address=\"10.201.0.2\",type=\"node-to-node mesh\"} 1"));
    CHECK(absl::StrContains(metrics.output,
                            "birdd_peer_established{peer=\"Mesh_10_201_0_3\",address=\"10.201.0.3\",type=\"node-to-node mesh\"} 0"));
    CHECK(absl::StrContains(metrics.output, "birdd_peer_flaps_total{peer=\"Mesh_10_201_0_3\"} 1"));
  }
  SECTION("a removed node's routes are withdrawn from the others") {
    c.node(3).birdd->Signal(SIGTERM);
    c.Delete("Node", "node3");
    c.WaitRoutes(1, {"10.244.2.0/26"}, {"10.244.3.0/26"});
    c.WaitRoutes(2, {"10.244.1.0/26"}, {"10.244.3.0/26"});
    c.WaitEstablished(1, 1);
  }
}

TEST_CASE("BGPFilter import and export rules and BGPConfiguration communities between two birdd") {
  // With ttlSecurity 1 (GTSM) too: both ends send TTL 255 and accept only 255.
  Cluster c(2);
  c.Apply("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n"
          "spec:\n  nodeToNodeMeshEnabled: false\n"
          "  communities: [{name: pods, value: '65000:100'}]\n"
          "  prefixAdvertisements: [{cidr: 10.244.0.0/16, communities: [pods, '65000:7:8']}]\n");
  c.Apply("apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: f}\nspec:\n"
          "  importV4: [{cidr: 10.244.2.64/26, matchOperator: Equal, action: Reject}]\n"
          "  exportV4: [{cidr: 10.244.1.64/26, matchOperator: Equal, action: Reject}]\n");
  c.Apply("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: all-pairs}\n"
          "spec: {nodeSelector: all(), peerSelector: all(), filters: [f], ttlSecurity: 1}\n");
  c.node(1).felixd->Set({"10.244.1.0/26", "10.244.1.64/26"});
  c.node(2).felixd->Set({"10.244.2.0/26", "10.244.2.64/26"});
  c.StartBirdd(1);
  c.StartBirdd(2);
  c.WaitEstablished(1, 1);
  // node1 refuses node2's second block (import); node1 never sends its second block (export).
  c.WaitRoutes(1, {"10.244.2.0/26 via 10.201.0.2"});
  c.WaitRoutes(2, {"10.244.1.0/26 via 10.201.0.1"});
  absl::SleepFor(absl::Seconds(1));
  CHECK_FALSE(absl::StrContains(c.BirdRoutes(1), "10.244.2.64/26"));
  CHECK_FALSE(absl::StrContains(c.BirdRoutes(2), "10.244.1.64/26"));
  bool seen = false;
  const bgp::v1::ListRoutesResponse routes = c.Routes(1);
  for (const bgp::v1::Route& r : routes.routes()) {
    if (r.prefix() != "10.244.2.0/26") continue;
    seen = true;
    CHECK(std::vector<std::string>(r.communities().begin(), r.communities().end()) ==
          std::vector<std::string>{"65000:100", "65000:7:8"});
  }
  CHECK(seen);
  // Dropping the filter from the peer lets both through.
  c.Apply("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: all-pairs}\n"
          "spec: {nodeSelector: all(), peerSelector: all()}\n");
  c.WaitRoutes(1, {"10.244.2.0/26 via 10.201.0.2", "10.244.2.64/26 via 10.201.0.2"});
  c.WaitRoutes(2, {"10.244.1.0/26 via 10.201.0.1", "10.244.1.64/26 via 10.201.0.1"});
}

TEST_CASE("one birdd reflects routes for two clients and the clients do not mesh") {
  Cluster c(3);
  c.Apply("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n"
          "spec: {nodeToNodeMeshEnabled: false}\n");
  c.WriteNode(1, "    routeReflectorClusterID: 224.0.0.1\n", "{route-reflector: 'true'}");
  c.Apply("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: peer-with-rr}\n"
          "spec: {nodeSelector: all(), peerSelector: route-reflector == 'true'}\n");
  c.node(2).felixd->Set({"10.244.2.0/26"});
  c.node(3).felixd->Set({"10.244.3.0/26"});
  for (int i = 1; i <= 3; ++i) c.StartBirdd(i);
  // Reflected routes keep the client's next hop (RFC 4456): node2 reaches node3's block directly.
  c.WaitRoutes(2, {"10.244.3.0/26 via 10.201.0.3 dev eth0"});
  c.WaitRoutes(3, {"10.244.2.0/26 via 10.201.0.2 dev eth0"});
  c.WaitRoutes(1, {"10.244.2.0/26 via 10.201.0.2", "10.244.3.0/26 via 10.201.0.3"});
  c.WaitEstablished(1, 2);
  c.WaitEstablished(2, 1);
  bgp::v1::GetStatusResponse rr = c.Status(1);
  CHECK(rr.cluster_id() == "224.0.0.1");
  for (const bgp::v1::Peer& p : rr.peers()) {
    CHECK(p.route_reflector_client());
    CHECK(p.type() == "node specific");
  }
  bgp::v1::GetStatusResponse client = c.Status(2);
  REQUIRE(client.peers_size() == 1);
  CHECK(client.peers(0).address() == "10.201.0.1");
  CHECK_FALSE(client.peers(0).route_reflector_client());
}

}  // namespace
}  // namespace calico::birdd

namespace calico::birdd {
namespace {

// "1500 packets transmitted, 1500 received, ..." → {transmitted, received}.
std::pair<int, int> PingCounts(const std::string& output) {
  for (const std::string& line : std::vector<std::string>(absl::StrSplit(output, '\n'))) {
    if (!absl::StrContains(line, "packets transmitted")) continue;
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    if (words.size() < 4) break;
    return {std::atoi(words[0].c_str()), std::atoi(words[3].c_str())};
  }
  return {-1, -1};
}

TEST_CASE("birdd restarts with graceful restart: forwarding on learned routes never stops") {
  Cluster c(2);
  for (int i = 1; i <= 2; ++i) {
    // A "pod" address inside the node's block, reachable from the other node only via BGP.
    Sh(*c.node(i).ns, absl::StrCat("ip addr add 10.244.", i, ".1/32 dev lo"));
    c.node(i).felixd->Set({absl::StrCat("10.244.", i, ".0/26")});
    c.StartBirdd(i);
  }
  c.WaitRoutes(1, {"10.244.2.0/26 via 10.201.0.2"});
  c.WaitRoutes(2, {"10.244.1.0/26 via 10.201.0.1"});
  c.WaitEstablished(1, 1);
  const std::string routes1 = c.BirdRoutes(1);
  const std::string routes2 = c.BirdRoutes(2);

  // 100 packets a second, pod address to pod address: both directions use a learned route.
  ::calico::testing::ExecResult ping;
  struct Joined {  // joined also when a REQUIRE below throws
    std::thread t;
    ~Joined() {
      if (t.joinable()) t.join();
    }
  } pinger{std::thread([&] {
    ping = c.node(1).ns->Exec("ping -q -n -I 10.244.1.1 -i 0.01 -c 1200 -W 1 10.244.2.1");
  })};
  for (int victim : {1, 2}) {
    absl::SleepFor(absl::Seconds(1));
    REQUIRE(c.node(victim).birdd->Signal(SIGKILL) != -1);
    absl::SleepFor(absl::Milliseconds(500));
    c.StartBirdd(victim);
    // Back in sync: both sessions up again and the restarted side's stale routes adopted.
    c.WaitEstablished(victim, 1);
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline && c.TryStatus(victim).value_or(bgp::v1::GetStatusResponse()).graceful_restart_pending()) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    CHECK_FALSE(c.Status(victim).graceful_restart_pending());
  }
  pinger.t.join();
  auto [sent, received] = PingCounts(ping.output);
  INFO(ping.output);
  INFO("birdd 1 log:\n" << c.node(1).birdd->LogTail(3000));
  CHECK(sent == 1200);
  CHECK(received == sent);
  CHECK(c.BirdRoutes(1) == routes1);
  CHECK(c.BirdRoutes(2) == routes2);
}

TEST_CASE("a stray proto bird route left by an earlier run goes once the peers re-synced") {
  Cluster c(2);
  c.node(2).felixd->Set({"10.244.2.0/26"});
  // What a previous birdd might have left: a route nobody advertises any more.
  Sh(*c.node(1).ns, "ip route add 10.244.99.0/26 via 10.201.0.2 proto bird");
  c.StartBirdd(1);
  c.StartBirdd(2);
  c.WaitEstablished(1, 1);
  c.WaitRoutes(1, {"10.244.2.0/26 via 10.201.0.2"}, {"10.244.99.0/26"});
  CHECK_FALSE(c.Status(1).graceful_restart_pending());
}

}  // namespace
}  // namespace calico::birdd

namespace calico::birdd {
namespace {

TEST_CASE("birdd restarts while BIRD 2 is its top-of-rack peer: forwarding never stops") {
  Cluster c(1);
  std::unique_ptr<TestNetns> tor_ns = c.AddRouter(254);
  Sh(*tor_ns, "ip addr add 10.250.0.1/32 dev lo");
  ::calico::testing::BirdPeerConfig tor;
  tor.router_id = "10.201.0.254";
  tor.asn = 65100;
  tor.import_to_kernel = true;
  tor.static_routes_v4 = {"10.250.0.0/24"};
  ::calico::testing::BirdNeighbor n;
  n.name = "node1";
  n.address = "10.201.0.1";
  n.asn = 64512;
  tor.neighbors = {n};
  absl::StatusOr<std::unique_ptr<::calico::testing::BirdPeer>> bird = ::calico::testing::BirdPeer::Start(*tor_ns, tor);
  INFO(bird.status().ToString());
  REQUIRE(bird.ok());
  c.Apply("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\n"
          "spec: {peerIP: 10.201.0.254, asNumber: 65100}\n");
  Sh(*c.node(1).ns, "ip addr add 10.244.1.1/32 dev lo");
  c.node(1).felixd->Set({"10.244.1.0/26"});
  c.StartBirdd(1);
  REQUIRE((*bird)->WaitEstablished("node1", absl::Seconds(20)).ok());
  c.WaitRoutes(1, {"10.250.0.0/24 via 10.201.0.254 dev eth0"});
  REQUIRE((*bird)->WaitRoute("10.244.1.0/26", absl::Seconds(10), "node1").ok());
  CHECK(absl::StrContains(tor_ns->Exec("ip -4 route show proto bird").output, "10.244.1.0/26 via 10.201.0.1"));
  bgp::v1::GetStatusResponse status = c.Status(1);
  REQUIRE(status.peers_size() == 1);
  CHECK(status.peers(0).type() == "global");
  CHECK(status.peers(0).name() == "Global_10_201_0_254");

  ::calico::testing::ExecResult ping;
  struct Joined {
    std::thread t;
    ~Joined() {
      if (t.joinable()) t.join();
    }
  } pinger{std::thread([&] {
    ping = c.node(1).ns->Exec("ping -q -n -I 10.244.1.1 -i 0.01 -c 600 -W 1 10.250.0.1");
  })};
  absl::SleepFor(absl::Seconds(1));
  REQUIRE(c.node(1).birdd->Signal(SIGKILL) != -1);
  absl::SleepFor(absl::Milliseconds(500));
  c.StartBirdd(1);
  c.WaitEstablished(1, 1);
  pinger.t.join();
  auto [sent, received] = PingCounts(ping.output);
  INFO(ping.output);
  CHECK(sent == 600);
  CHECK(received == sent);
  // BIRD took birdd back and still has its route (refreshed, not stale).
  REQUIRE((*bird)->WaitRoute("10.244.1.0/26", absl::Seconds(10), "node1").ok());
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline && c.TryStatus(1).value_or(bgp::v1::GetStatusResponse()).graceful_restart_pending()) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  CHECK_FALSE(c.Status(1).graceful_restart_pending());
}

}  // namespace
}  // namespace calico::birdd

namespace calico::birdd {
namespace {

TEST_CASE("an IP-in-IP pool on a kernel without the ipip module: routes withheld, the reason named") {
  Cluster c(2);
  c.Apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: default}\n"
          "spec: {cidr: 10.244.0.0/16, blockSize: 26, ipipMode: Always}\n");
  c.node(2).felixd->Set({"10.244.2.0/26"});
  c.StartBirdd(1);
  c.StartBirdd(2);
  c.WaitEstablished(1, 1);
  // Learned, but not installed: there is no tunl0 here (this machine's kernel has no ipip).
  std::string problems;
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    bgp::v1::GetStatusResponse s = c.Status(1);
    problems = absl::StrJoin(s.problems(), "\n");
    if (!problems.empty()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  CHECK(absl::StrContains(problems, "need tunl0, which does not exist: this kernel has no ipip module"));
  CHECK_FALSE(absl::StrContains(c.BirdRoutes(1), "10.244.2.0/26"));
  bool learned = false;
  const bgp::v1::ListRoutesResponse routes = c.Routes(1);
  for (const bgp::v1::Route& r : routes.routes()) learned |= r.prefix() == "10.244.2.0/26";
  CHECK(learned);
  ::calico::testing::ExecResult status = c.node(1).ns->Exec(
      absl::StrCat(CALICOCTL_BINARY, " node status --birdd-socket=", c.BgpSocket(1)));
  CHECK(absl::StrContains(status.output, "Configuration problems:\n  routes of an IP-in-IP pool"));
  // Back to native routing: the route goes in over eth0 and the problem goes away.
  c.Apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: default}\n"
          "spec: {cidr: 10.244.0.0/16, blockSize: 26, ipipMode: Never}\n");
  c.WaitRoutes(1, {"10.244.2.0/26 via 10.201.0.2 dev eth0"});
}

}  // namespace
}  // namespace calico::birdd

namespace calico::birdd {
namespace {

using ::calico::cni::testing::CniRun;

// Every piece real: a pod made through the CNI plugin, ipamd's block, felixd's advertised-routes
// stream, birdd, and BIRD 2 as the top-of-rack router that must reach the pod.
TEST_CASE("a pod made through CNI becomes reachable from BIRD 2 through felixd's stream and birdd") {
  ::calico::cni::testing::Node node;
  REQUIRE(node.Start().ok());
  // The node's uplink peer (192.168.78.254, its default gateway) becomes the router.
  auto tor_ns = std::make_unique<TestNetns>(std::move(*TestNetns::Create("tor")));
  Sh(node.ns(), absl::StrCat("ip link set uplink0p netns ", tor_ns->name()));
  Sh(*tor_ns, "ip link set lo up && ip addr add 192.168.78.254/24 dev uplink0p && ip link set uplink0p up");
  ::calico::testing::BirdPeerConfig tor;
  tor.router_id = "192.168.78.254";
  tor.asn = 65100;
  tor.import_to_kernel = true;
  ::calico::testing::BirdNeighbor n;
  n.name = "node1";
  n.address = "192.168.78.2";
  n.asn = 64512;
  tor.neighbors = {n};
  absl::StatusOr<std::unique_ptr<::calico::testing::BirdPeer>> bird = ::calico::testing::BirdPeer::Start(*tor_ns, tor);
  REQUIRE(bird.ok());

  const std::string manifest = node.dir() + "/bgp.yaml";
  std::ofstream(manifest) << "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node1}\n"
                             "spec: {bgp: {ipv4Address: 192.168.78.2/24}}\n---\n"
                             "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\n"
                             "spec: {peerIP: 192.168.78.254, asNumber: 65100}\n";
  CniRun applied = node.Calicoctl({"apply", "-f", manifest});
  INFO(applied.out);
  REQUIRE(applied.exit_code == 0);
  Process birdd({BIRDD_BINARY, "--node=node1", "--socket=" + node.dir() + "/bgp.sock",
                 "--http_listen=127.0.0.1:9098", "--felixd_socket=" + node.dir() + "/dataplane.sock",
                 "--connect_retry=1s"},
                {{"DATASTORE_TYPE", "embedded"}, {"CALICO_DATASTORE_PATH", node.dir() + "/calico.db"}},
                node.dir() + "/birdd.log", node.ns().path());
  birdd.Spawn();
  INFO("birdd log:\n" << birdd.LogTail());
  REQUIRE((*bird)->WaitEstablished("node1", absl::Seconds(20)).ok());

  node.AddPodNetns("web");
  CniRun add = node.Cni("ADD", ::calico::cni::testing::Pod("web"), node.Conf());
  INFO(add.out);
  REQUIRE(add.exit_code == 0);
  std::string ip = nlohmann::json::parse(add.out)["ips"][0]["address"].get<std::string>();
  ip = ip.substr(0, ip.find('/'));
  // The router learns the pod's block from felixd via birdd. (Until felixd has seen the block's
  // affinity, the address may go out alone as a borrowed /32; the block replaces it.)
  const std::string block = net::FormatCidr(net::Masked(*net::ParsePrefix(ip + "/26")));
  absl::StatusOr<::calico::testing::BirdRoute> route = (*bird)->WaitRoute(block, absl::Seconds(15), "node1");
  INFO(route.status().ToString());
  REQUIRE(route.ok());
  CHECK(route->next_hop() == "192.168.78.2");
  CHECK((*bird)->WaitNoRoute(ip + "/32", absl::Seconds(15)).ok());
  ::calico::testing::ExecResult ping = tor_ns->Exec(absl::StrCat("ping -c 3 -i 0.2 -W 1 ", ip));
  INFO(ping.output);
  CHECK(ping.status == 0);
  CniRun del = node.Cni("DEL", ::calico::cni::testing::Pod("web"), node.Conf());
  CHECK(del.exit_code == 0);
}

}  // namespace
}  // namespace calico::birdd
