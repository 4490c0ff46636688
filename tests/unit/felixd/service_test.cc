// calico.dataplane.v1 over a real unix socket, Felix behind it on the fake kernel.
#include <catch2/catch.hpp>
#include <grpcpp/client_context.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "calico/dataplane/v1/dataplane.grpc.pb.h"
#include "cni-plugin/unary_client.h"
#include "common/datastore/sqlite/sqlite_datastore.h"
#include "common/rpc/unix_server.h"
#include "fake_kernel.h"
#include "felixd/service/dataplane_service.h"
#include "ipamd/allocator/block.h"
#include "tests/support/datastore/conformance.h"

namespace calico::felixd {
namespace {

namespace pb = calico::dataplane::v1;

}  // namespace

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

namespace {

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

// The CNI plugin's own HTTP/2 client against the daemons' real gRPC server.
namespace calico::cni {
namespace {

TEST_CASE("the plugin's unary client speaks to a gRPC server: results, error statuses, no server") {
  felixd::Served s;
  absl::StatusOr<std::unique_ptr<UnaryClient>> client =
      UnaryClient::Connect(s.dir.path() + "/dataplane.sock");
  REQUIRE(client.ok());

  // Not started yet: the server's UNAVAILABLE and its message arrive intact.
  dataplane::v1::SetupWorkloadRequest setup;
  setup.mutable_id()->set_namespace_("default");
  setup.mutable_id()->set_pod("web1");
  setup.set_netns("/run/netns/web1");
  setup.add_ips("10.65.0.3/32");
  dataplane::v1::SetupWorkloadResponse setup_resp;
  absl::Status st = (*client)->Call("/calico.dataplane.v1.Dataplane/SetupWorkload", setup,
                                    setup_resp, absl::Seconds(5));
  CHECK(absl::IsUnavailable(st));
  CHECK(std::string(st.message()) == "felixd is not ready yet (first sync not done)");

  // Several calls on one connection, with a response body.
  REQUIRE(s.felix->Start().ok());
  for (int i = 0; i < 3; ++i) {
    dataplane::v1::GetStatusRequest req;
    dataplane::v1::GetStatusResponse resp;
    REQUIRE((*client)->Call("/calico.dataplane.v1.Dataplane/GetStatus", req, resp, absl::Seconds(5)).ok());
    CHECK(resp.node() == "node1");
    CHECK(resp.ready());
  }
  st = (*client)->Call("/calico.dataplane.v1.Dataplane/NoSuchMethod", setup, setup_resp,
                       absl::Seconds(5));
  CHECK(absl::IsUnimplemented(st));

  absl::StatusOr<std::unique_ptr<UnaryClient>> none = UnaryClient::Connect(s.dir.path() + "/none.sock");
  REQUIRE_FALSE(none.ok());
  CHECK(absl::IsUnavailable(none.status()));
  CHECK(std::string(none.status().message()).rfind("connect ", 0) == 0);
}

}  // namespace
}  // namespace calico::cni

namespace calico::cni {
namespace {

TEST_CASE("the plugin's unary client gives up at its deadline when a daemon hangs") {
  datastore::testing::TempDir dir;
  std::string path = dir.path() + "/hung.sock";
  int listener = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(listen(listener, 4) == 0);  // accepts into the backlog, never answers
  absl::StatusOr<std::unique_ptr<UnaryClient>> client = UnaryClient::Connect(path);
  REQUIRE(client.ok());
  dataplane::v1::GetStatusRequest req;
  dataplane::v1::GetStatusResponse resp;
  absl::Time start = absl::Now();
  absl::Status st = (*client)->Call("/calico.dataplane.v1.Dataplane/GetStatus", req, resp,
                                    absl::Milliseconds(200));
  CHECK(absl::IsDeadlineExceeded(st));
  CHECK(absl::Now() - start < absl::Seconds(2));
  close(listener);
}

}  // namespace
}  // namespace calico::cni
