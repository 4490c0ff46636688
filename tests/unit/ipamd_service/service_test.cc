#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/unit/ipamd_service/service_fixture.h"

namespace calico::ipamd::testing {
namespace {

namespace pb = ::calico::ipam::v1;

pb::AutoAssignRequest V4(const std::string& handle, int n = 1) {
  pb::AutoAssignRequest req;
  req.set_handle_id(handle);
  req.set_num_v4(n);
  return req;
}

TEST_CASE("ipamd over gRPC: AutoAssign, GetHandle, ReleaseByHandle round trip",
          "[unit][ipamd_service]") {
  InProcessIpamd ipamd;
  CreatePool(*ipamd.store, "p1", "10.70.0.0/24", 28);
  ipamd.Start();

  pb::AutoAssignResponse assigned;
  grpc::Status s = ipamd.stub->AutoAssign(Ctx().get(), V4("k8s-pod-network.c1"), &assigned);
  REQUIRE(s.ok());
  REQUIRE(assigned.handle_id() == "k8s-pod-network.c1");
  REQUIRE(assigned.v4_size() == 1);
  REQUIRE(assigned.v6_size() == 0);
  const std::string ip = assigned.v4(0).ip();
  REQUIRE(ip.rfind("10.70.0.", 0) == 0);
  REQUIRE(assigned.v4(0).block_cidr().size() > 0);
  REQUIRE(!assigned.v4(0).how().empty());

  pb::GetHandleRequest get;
  get.set_handle_id("k8s-pod-network.c1");
  pb::GetHandleResponse handle;
  REQUIRE(ipamd.stub->GetHandle(Ctx().get(), get, &handle).ok());
  REQUIRE(handle.ips_size() == 1);
  REQUIRE(handle.ips(0) == ip);

  pb::ListBlocksRequest list;
  pb::ListBlocksResponse blocks;
  REQUIRE(ipamd.stub->ListBlocks(Ctx().get(), list, &blocks).ok());
  REQUIRE(blocks.blocks_size() == 1);
  REQUIRE(blocks.blocks(0).affinity() == "host:node1");
  REQUIRE(blocks.blocks(0).allocations_size() == 1);
  REQUIRE(blocks.blocks(0).allocations(0).ip() == ip);
  REQUIRE(blocks.blocks(0).allocations(0).handle_id() == "k8s-pod-network.c1");

  pb::ReleaseByHandleRequest rel;
  rel.set_handle_id("k8s-pod-network.c1");
  pb::ReleaseByHandleResponse released;
  REQUIRE(ipamd.stub->ReleaseByHandle(Ctx().get(), rel, &released).ok());
  REQUIRE(released.released_ips_size() == 1);
  REQUIRE(released.released_ips(0) == ip);
  pb::GetHandleResponse gone;
  REQUIRE(ipamd.stub->GetHandle(Ctx().get(), get, &gone).error_code() ==
          grpc::StatusCode::NOT_FOUND);
  // Idempotent: releasing again frees nothing and succeeds.
  pb::ReleaseByHandleResponse again;
  REQUIRE(ipamd.stub->ReleaseByHandle(Ctx().get(), rel, &again).ok());
  REQUIRE(again.released_ips_size() == 0);

  // AssignIP + ReleaseIPs quoting handle and sequence number.
  pb::AssignIPRequest one;
  one.set_ip("10.70.0.200");
  one.set_handle_id("k8s-pod-network.c2");
  pb::AssignIPResponse got;
  REQUIRE(ipamd.stub->AssignIP(Ctx().get(), one, &got).ok());
  REQUIRE(got.address().ip() == "10.70.0.200");
  pb::AssignIPResponse dup;
  REQUIRE(ipamd.stub->AssignIP(Ctx().get(), one, &dup).error_code() ==
          grpc::StatusCode::ALREADY_EXISTS);
  pb::ReleaseIPsRequest stale;
  auto* item = stale.add_items();
  item->set_ip("10.70.0.200");
  item->set_handle_id("k8s-pod-network.someone-else");
  pb::ReleaseIPsResponse refused;
  REQUIRE(ipamd.stub->ReleaseIPs(Ctx().get(), stale, &refused).error_code() ==
          grpc::StatusCode::FAILED_PRECONDITION);
  pb::ReleaseIPsRequest right;
  auto* ok_item = right.add_items();
  ok_item->set_ip("10.70.0.200");
  ok_item->set_handle_id("k8s-pod-network.c2");
  ok_item->set_sequence_number(got.address().sequence_number());
  pb::ReleaseIPsResponse freed;
  REQUIRE(ipamd.stub->ReleaseIPs(Ctx().get(), right, &freed).ok());
  REQUIRE(freed.released_ips_size() == 1);
}

TEST_CASE("ipamd maps errors to gRPC codes and changes nothing on bad input",
          "[unit][ipamd_service]") {
  InProcessIpamd ipamd;
  CreatePool(*ipamd.store, "small", "10.71.0.0/28", 28);  // 16 addresses
  ipamd.Start();
  auto code = [&](const pb::AutoAssignRequest& req) {
    pb::AutoAssignResponse resp;
    grpc::Status s = ipamd.stub->AutoAssign(Ctx().get(), req, &resp);
    INFO(s.error_message());
    return s.error_code();
  };
  REQUIRE(code(V4("")) == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(code(V4("h", -1)) == grpc::StatusCode::INVALID_ARGUMENT);
  pb::AutoAssignRequest bad_cidr = V4("h");
  bad_cidr.add_v4_pools("10.71.0.0/33");
  REQUIRE(code(bad_cidr) == grpc::StatusCode::INVALID_ARGUMENT);
  pb::AutoAssignRequest unknown = V4("h");
  unknown.add_v4_pools("no-such-pool");
  REQUIRE(code(unknown) == grpc::StatusCode::INVALID_ARGUMENT);

  pb::AutoAssignResponse too_many;
  grpc::Status exhausted = ipamd.stub->AutoAssign(Ctx().get(), V4("h", 100), &too_many);
  REQUIRE(exhausted.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  INFO(exhausted.error_message());
  REQUIRE(exhausted.error_message().find("node1") != std::string::npos);
  pb::GetHandleRequest get;
  get.set_handle_id("h");
  pb::GetHandleResponse none;
  REQUIRE(ipamd.stub->GetHandle(Ctx().get(), get, &none).error_code() ==
          grpc::StatusCode::NOT_FOUND);

  pb::ReleaseIPsRequest bad_ip;
  bad_ip.add_items()->set_ip("10.71.0.300");
  pb::ReleaseIPsResponse r;
  grpc::Status s = ipamd.stub->ReleaseIPs(Ctx().get(), bad_ip, &r);
  REQUIRE(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(s.error_message().find("10.71.0.300") != std::string::npos);
  pb::ListBlocksRequest fam;
  fam.set_family(5);
  pb::ListBlocksResponse lb;
  REQUIRE(ipamd.stub->ListBlocks(Ctx().get(), fam, &lb).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);

  // All 16, then one more: exhausted.
  pb::AutoAssignResponse all;
  REQUIRE(ipamd.stub->AutoAssign(Ctx().get(), V4("all", 16), &all).ok());
  REQUIRE(all.v4_size() == 16);
  REQUIRE(code(V4("one-more")) == grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_CASE("ipamd socket is 0600, health is SERVING, Stop removes the socket",
          "[unit][ipamd_service]") {
  InProcessIpamd ipamd;
  ipamd.Start();
  struct stat st;
  REQUIRE(stat(ipamd.options.socket_path.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == 0600);
  auto health = grpc::health::v1::Health::NewStub(rpc::DialUnix(ipamd.options.socket_path));
  for (const char* service : {"", "calico.ipam.v1.Ipam"}) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    REQUIRE(health->Check(Ctx().get(), req, &resp).ok());
    REQUIRE(resp.status() == grpc::health::v1::HealthCheckResponse::SERVING);
  }
  ipamd.daemon->Stop();
  REQUIRE(access(ipamd.options.socket_path.c_str(), F_OK) != 0);
}

TEST_CASE("ipamd /metrics counts allocations, releases, requests and pool utilisation",
          "[unit][ipamd_service]") {
  InProcessIpamd ipamd;
  CreatePool(*ipamd.store, "p1", "10.72.0.0/24", 26);
  ipamd.Start();
  pb::AutoAssignResponse a;
  REQUIRE(ipamd.stub->AutoAssign(Ctx().get(), V4("h1", 2), &a).ok());
  pb::ReleaseByHandleRequest rel;
  rel.set_handle_id("h1");
  pb::ReleaseByHandleResponse r;
  REQUIRE(ipamd.stub->ReleaseByHandle(Ctx().get(), rel, &r).ok());
  pb::AutoAssignResponse b;
  REQUIRE(ipamd.stub->AutoAssign(Ctx().get(), V4("h2", 1), &b).ok());
  pb::AutoAssignResponse bad;
  ipamd.stub->AutoAssign(Ctx().get(), V4(""), &bad);
  REQUIRE(ipamd.daemon->RunLoopOnce().ok());  // pool gauges (no collector in this fixture)

  httplib::Client client("127.0.0.1", ipamd.daemon->http_port());
  auto res = client.Get("/metrics");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  const std::string& text = res->body;
  INFO(text);
  REQUIRE(text.find("# TYPE ipamd_allocations_total counter") != std::string::npos);
  REQUIRE(text.find("ipamd_releases_total{family=\"4\"} 2\n") != std::string::npos);
  REQUIRE(text.find("ipamd_requests_total{method=\"AutoAssign\",code=\"OK\"} 2\n") !=
          std::string::npos);
  REQUIRE(text.find("ipamd_requests_total{method=\"AutoAssign\",code=\"INVALID_ARGUMENT\"} 1\n") !=
          std::string::npos);
  REQUIRE(text.find("ipamd_pool_addresses{pool=\"p1\"} 256\n") != std::string::npos);
  REQUIRE(text.find("ipamd_pool_allocated_addresses{pool=\"p1\"} 1\n") != std::string::npos);
  REQUIRE(text.find("ipamd_pool_utilisation{pool=\"p1\"} 0.00390625\n") != std::string::npos);
  REQUIRE(text.find("ipamd_datastore_writes_total{op=") != std::string::npos);
  REQUIRE(text.find("# TYPE ipamd_datastore_cas_conflicts_total counter") != std::string::npos);
  double allocs = ipamd.daemon->metrics()
                      .Counter("ipamd_allocations_total", "", {"family", "source"})
                      .Value({"4", "affine"}) +
                  ipamd.daemon->metrics()
                      .Counter("ipamd_allocations_total", "", {"family", "source"})
                      .Value({"4", "claimed"});
  REQUIRE(allocs == 3);

  REQUIRE(client.Get("/liveness")->status == 200);
  REQUIRE(client.Get("/readiness")->status == 200);
}

TEST_CASE("ipamd Check reports an unused allocation, and is clean once a workload uses it",
          "[unit][ipamd_service]") {
  InProcessIpamd ipamd;
  CreatePool(*ipamd.store, "p1", "10.73.0.0/24", 26);
  CreateNode(*ipamd.store, "node1");
  ipamd.Start();
  pb::AutoAssignResponse a;
  REQUIRE(ipamd.stub->AutoAssign(Ctx().get(), V4("k8s-pod-network.c1"), &a).ok());
  pb::CheckResponse report;
  REQUIRE(ipamd.stub->Check(Ctx().get(), pb::CheckRequest(), &report).ok());
  REQUIRE_FALSE(report.clean());
  REQUIRE(report.allocated_not_in_use_size() == 1);
  REQUIRE(report.allocated_not_in_use(0).ip() == a.v4(0).ip());
  REQUIRE(report.allocated_not_in_use(0).handle_id() == "k8s-pod-network.c1");

  CreateWorkload(*ipamd.store, "node1", "pod1", a.v4(0).ip());
  pb::CheckResponse clean;
  REQUIRE(ipamd.stub->Check(Ctx().get(), pb::CheckRequest(), &clean).ok());
  INFO(clean.DebugString());
  REQUIRE(clean.clean());
}

}  // namespace
}  // namespace calico::ipamd::testing
