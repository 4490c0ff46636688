// The ipamd binary against a real etcd: startup, health, socket, signals, outages.

#include <grpcpp/client_context.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "calico/ipam/v1/ipam.grpc.pb.h"
#include "common/datastore/config.h"
#include "common/resources/client/client.h"
#include "tests/integration/ipamd/ipamd_process.h"
#include "tests/support/etcd/etcd_server.h"

namespace calico::ipamd::testing {
namespace {

namespace pb = ::calico::ipam::v1;
using ::calico::testing::EtcdServer;

std::unique_ptr<EtcdServer> StartEtcd() {
  auto etcd = EtcdServer::Start();
  INFO(etcd.status().ToString());
  REQUIRE(etcd.ok());
  return std::move(etcd).value();
}

std::map<std::string, std::string> EtcdEnv(const std::string& url) {
  return {{"DATASTORE_TYPE", "etcdv3"}, {"ETCD_ENDPOINTS", url}};
}

std::unique_ptr<datastore::Datastore> OpenEtcd(const std::string& url) {
  datastore::Config config;
  config.type = datastore::BackendType::kEtcdV3;
  config.etcd_endpoints = {url};
  auto store = datastore::Open(config);
  REQUIRE(store.ok());
  return std::move(store).value();
}

std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout = absl::Seconds(20)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

grpc::Status Assign(pb::Ipam::Stub& stub, const std::string& handle, pb::AutoAssignResponse* out) {
  pb::AutoAssignRequest req;
  req.set_handle_id(handle);
  req.set_num_v4(1);
  return stub.AutoAssign(Ctx().get(), req, out);
}

TEST_CASE("ipamd serves on etcd, creates the default pool, exits 0 on SIGTERM",
          "[integration][ipamd]") {
  auto etcd = StartEtcd();
  ScratchDir dir;
  int port = FreeLoopbackPort();
  auto env = EtcdEnv(etcd->ClientUrl());
  env["CALICO_IPV4POOL_CIDR"] = "10.90.0.0/24";
  IpamdProcess ipamd("node-a", dir.path(), {absl::StrCat("--http-listen=127.0.0.1:", port)}, env);
  absl::Status started = ipamd.Start();
  INFO(started.ToString());
  REQUIRE(started.ok());

  struct stat st;
  REQUIRE(stat(ipamd.socket().c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == 0600);

  auto store = OpenEtcd(etcd->ClientUrl());
  resources::Client client(*store);
  auto pool = client.Get(*resources::FindKind("IPPool"), "", "default-ipv4-ippool");
  REQUIRE(pool.ok());
  REQUIRE(pool->object["spec"]["cidr"] == "10.90.0.0/24");

  auto stub = pb::Ipam::NewStub(FastReconnectChannel(ipamd.socket()));
  pb::AutoAssignResponse a;
  grpc::Status s = Assign(*stub, "k8s-pod-network.c1", &a);
  INFO(s.error_message());
  REQUIRE(s.ok());
  REQUIRE(a.v4(0).ip().rfind("10.90.0.", 0) == 0);

  httplib::Client http("127.0.0.1", port);
  auto metrics = http.Get("/metrics");
  REQUIRE(metrics);
  REQUIRE(metrics->body.find("ipamd_allocations_total{family=\"4\",source=\"claimed\"} 1") !=
          std::string::npos);
  REQUIRE(http.Get("/readiness")->status == 200);

  REQUIRE(ipamd.Signal(SIGTERM) == 0);
  REQUIRE(access(ipamd.socket().c_str(), F_OK) != 0);
  INFO(ipamd.Log());
  REQUIRE(ipamd.Log().find("event=stopped") != std::string::npos);
}

TEST_CASE("ipamd startup failure: one clear line, non-zero exit", "[integration][ipamd]") {
  ScratchDir dir;
  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string needle;
  };
  std::vector<Case> cases = {
      {{},
       {{"CALICO_IPV4POOL_CIDR", "10.0.0.0/99"}, {"CALICO_DATASTORE_PATH", dir.path() + "/db"}},
       "CALICO_IPV4POOL_CIDR"},
      {{"--http-listen=0.0.0.0:9097"}, {{"CALICO_DATASTORE_PATH", dir.path() + "/db"}}, "loopback"},
      {{"--leak-grace=soon"}, {{"CALICO_DATASTORE_PATH", dir.path() + "/db"}}, "--leak_grace"},
      {{}, {{"DATASTORE_TYPE", "zookeeper"}}, "DATASTORE_TYPE"},
  };
  int i = 0;
  for (const Case& c : cases) {
    IpamdProcess ipamd(absl::StrCat("bad", i++), dir.path(), c.args, c.env);
    ipamd.Spawn();
    int rc = ipamd.Wait(absl::Seconds(20));
    std::string log = ipamd.Log();
    INFO(log);
    REQUIRE(rc == 1);
    std::vector<std::string> lines = absl::StrSplit(log, '\n', absl::SkipEmpty());
    REQUIRE(lines.size() == 1);
    REQUIRE(lines[0].find("event=startup_failed") != std::string::npos);
    REQUIRE(lines[0].find(c.needle) != std::string::npos);
  }
}

TEST_CASE("a SIGKILLed ipamd's stale socket is removed by its successor", "[integration][ipamd]") {
  auto etcd = StartEtcd();
  ScratchDir dir;
  IpamdProcess ipamd("node-b", dir.path(), {"--http-listen=127.0.0.1:0"},
                     EtcdEnv(etcd->ClientUrl()));
  REQUIRE(ipamd.Start().ok());
  REQUIRE(ipamd.Signal(SIGKILL) == 128 + SIGKILL);
  REQUIRE(access(ipamd.socket().c_str(), F_OK) == 0);  // left behind
  absl::Status again = ipamd.Start();
  INFO(again.ToString());
  REQUIRE(again.ok());
  // A second ipamd on the same socket refuses rather than stealing it.
  IpamdProcess twin("node-b", dir.path(), {"--http-listen=127.0.0.1:0"},
                    EtcdEnv(etcd->ClientUrl()));
  twin.Spawn();
  REQUIRE(twin.Wait(absl::Seconds(20)) == 1);
  REQUIRE(Serving(ipamd.socket(), absl::Seconds(2)));
}

TEST_CASE("etcd down: requests fail UNAVAILABLE, readiness 503, nothing changes, then recovery",
          "[integration][ipamd]") {
  auto etcd = StartEtcd();
  ScratchDir dir;
  int port = FreeLoopbackPort();
  auto env = EtcdEnv(etcd->ClientUrl());
  env["CALICO_IPV4POOL_CIDR"] = "10.91.0.0/24";
  IpamdProcess ipamd("node-c", dir.path(), {absl::StrCat("--http-listen=127.0.0.1:", port)}, env);
  REQUIRE(ipamd.Start().ok());
  auto stub = pb::Ipam::NewStub(FastReconnectChannel(ipamd.socket()));
  pb::AutoAssignResponse first;
  REQUIRE(Assign(*stub, "k8s-pod-network.before", &first).ok());

  etcd->Stop();
  pb::AutoAssignResponse during;
  grpc::Status s = Assign(*stub, "k8s-pod-network.during", &during);
  INFO(s.error_message());
  REQUIRE(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(20, 0);
  auto ready = http.Get("/readiness");
  REQUIRE(ready);
  REQUIRE(ready->status == 503);
  REQUIRE(http.Get("/liveness")->status == 200);

  REQUIRE(etcd->Restart().ok());
  pb::GetHandleRequest get;
  get.set_handle_id("k8s-pod-network.during");
  pb::GetHandleResponse none;
  REQUIRE(stub->GetHandle(Ctx().get(), get, &none).error_code() == grpc::StatusCode::NOT_FOUND);
  pb::AutoAssignResponse after;
  REQUIRE(Assign(*stub, "k8s-pod-network.during", &after).ok());
  pb::GetHandleResponse one;
  REQUIRE(stub->GetHandle(Ctx().get(), get, &one).ok());
  REQUIRE(one.ips_size() == 1);
  REQUIRE(one.ips(0) != first.v4(0).ip());
  REQUIRE(http.Get("/readiness")->status == 200);
}

}  // namespace
}  // namespace calico::ipamd::testing
