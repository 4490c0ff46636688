// calico.dataplane.v1 over a real unix socket, Felix behind it on the fake kernel.
#include <catch2/catch.hpp>
#include <grpcpp/client_context.h>

#include "calico/dataplane/v1/dataplane.grpc.pb.h"
#include "common/datastore/sqlite/sqlite_datastore.h"
#include "common/rpc/unix_server.h"
#include "fake_kernel.h"
#include "felixd/service/dataplane_service.h"
#include "ipamd/allocator/block.h"
#include "tests/support/datastore/conformance.h"

namespace calico::felixd {
namespace {

namespace pb = calico::dataplane::v1;

struct Served {
  datastore::testing::TempDir dir;
  std::unique_ptr<datastore::Datastore> store;
  testing::FakeKernel kernel;
  testing::NamespaceHandle host{kernel, kernel.host};
  std::unique_ptr<Felix> felix;
  std::unique_ptr<DataplaneService> service;
  std::unique_ptr<rpc::UnixServer> server;
  std::unique_ptr<pb::Dataplane::Stub> stub;

  Served() {
    datastore::Config config;
    config.sqlite_path = dir.path() + "/calico.db";
    store = std::move(*datastore::OpenSqlite(config));
    FelixOptions o;
    o.node = "node1";
    o.resync_interval = absl::Hours(1);
    felix = std::make_unique<Felix>(*store, host, kernel.Opener(), o);
    service = std::make_unique<DataplaneService>(*felix);
    rpc::UnixServerOptions ro;
    ro.socket_path = dir.path() + "/dataplane.sock";
    ro.services = {service.get()};
    ro.service_names = {"calico.dataplane.v1.Dataplane"};
    server = std::move(*rpc::UnixServer::Start(ro));
    stub = pb::Dataplane::NewStub(rpc::DialUnix(ro.socket_path));
  }
  ~Served() {
    server->Shutdown(absl::Seconds(1));
    felix->Stop();
  }
  grpc::Status Setup(const std::string& pod, const std::string& ip, pb::SetupWorkloadResponse* out) {
    kernel.AddNetns("/run/netns/" + pod);
    pb::SetupWorkloadRequest req;
    req.mutable_id()->set_namespace_("default");
    req.mutable_id()->set_pod(pod);
    req.mutable_id()->set_container_id("c-" + pod);
    req.mutable_id()->set_endpoint("eth0");
    req.set_netns("/run/netns/" + pod);
    req.add_ips(ip);
    grpc::ClientContext ctx;
    return stub->SetupWorkload(&ctx, req, out);
  }
};

TEST_CASE("before its first sync felixd refuses work with UNAVAILABLE and reports not ready") {
  Served s;
  CHECK_FALSE(s.felix->ready());
  pb::SetupWorkloadResponse resp;
  grpc::Status st = s.Setup("web1", "10.65.0.3/32", &resp);
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(st.error_message(), Catch::Contains("not ready"));
  CHECK(s.kernel.host.Links().size() == 1);  // lo only: nothing was created
}

TEST_CASE("setup, list, status and check over the socket") {
  Served s;
  REQUIRE(s.felix->Start().ok());
  pb::SetupWorkloadResponse resp;
  REQUIRE(s.Setup("web1", "10.65.0.3", &resp).ok());
  CHECK(resp.endpoint_name() == "node1-k8s-web1-eth0");
  CHECK(resp.ipv4_gateway() == "169.254.1.1");
  CHECK(resp.ips(0) == "10.65.0.3/32");

  grpc::ClientContext list_ctx;
  pb::ListWorkloadsResponse list;
  REQUIRE(s.stub->ListWorkloads(&list_ctx, {}, &list).ok());
  REQUIRE(list.workloads_size() == 1);
  CHECK(list.workloads(0).host_interface() == resp.host_interface());
  CHECK(list.workloads(0).host_interface_present());
  CHECK(list.workloads(0).routes_programmed());

  grpc::ClientContext status_ctx;
  pb::GetStatusResponse status;
  REQUIRE(s.stub->GetStatus(&status_ctx, {}, &status).ok());
  CHECK(status.ready());
  CHECK(status.workloads() == 1);
  CHECK(status.route_protocol() == "80");

  pb::SetupWorkloadResponse bad;
  grpc::Status st = s.Setup("web2", "not-an-ip", &bad);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::Contains("not-an-ip"));
}

TEST_CASE("WatchAdvertisedRoutes sends a snapshot, then each change") {
  Served s;
  ipamd::BlockAffinity confirmed;
  confirmed.state = ipamd::AffinityState::kConfirmed;
  REQUIRE(s.store->Create(ipamd::AffinityKey("node1", *net::ParsePrefix("10.65.0.0/26")),
                          ipamd::EncodeAffinity(confirmed)).ok());
  REQUIRE(s.felix->Start().ok());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = s.stub->WatchAdvertisedRoutes(&ctx, {});
  pb::AdvertisedRoutes msg;
  REQUIRE(reader->Read(&msg));
  CHECK(msg.snapshot());
  REQUIRE(msg.added_size() == 1);
  CHECK(msg.added(0).cidr() == "10.65.0.0/26");
  CHECK(msg.added(0).kind() == "block");

  pb::SetupWorkloadResponse resp;
  REQUIRE(s.Setup("web1", "10.66.0.9/32", &resp).ok());  // outside our block: borrowed
  REQUIRE(reader->Read(&msg));
  CHECK_FALSE(msg.snapshot());
  REQUIRE(msg.added_size() == 1);
  CHECK(msg.added(0).cidr() == "10.66.0.9/32");
  CHECK(msg.added(0).kind() == "borrowed");

  REQUIRE(s.felix->Teardown({.orchestrator = "", .ns = "default", .pod = "web1",
                             .container_id = "c-web1", .endpoint = "eth0", .netns = "",
                             .ips = {}, .mtu = 0, .labels = {}, .profiles = {},
                             .service_account = ""}).ok());
  REQUIRE(reader->Read(&msg));
  CHECK(msg.added_size() == 0);
  REQUIRE(msg.removed_size() == 1);
  CHECK(msg.removed(0) == "10.66.0.9/32");
  ctx.TryCancel();
}

}  // namespace
}  // namespace calico::felixd
