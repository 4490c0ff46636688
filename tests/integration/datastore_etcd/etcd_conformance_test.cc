// The shared datastore conformance suite (tests/support/datastore) on a real etcd: each case
// gets its own single-member etcd on free loopback ports, so cases run in parallel.

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>

#include "common/datastore/config.h"
#include "common/datastore/etcd/etcd_datastore.h"
#include "tests/support/datastore/conformance.h"
#include "tests/support/etcd/etcd_server.h"

namespace calico::datastore {
namespace {

class EtcdHarness : public testing::Harness {
 public:
  EtcdHarness() {
    absl::StatusOr<std::unique_ptr<calico::testing::EtcdServer>> server =
        calico::testing::EtcdServer::Start();
    INFO(server.status().ToString());
    REQUIRE(server.ok());
    server_ = std::move(server).value();
  }

  std::unique_ptr<Datastore> Connect() override {
    Config config;
    config.type = BackendType::kEtcdV3;
    config.etcd_endpoints = {server_->ClientUrl()};
    absl::StatusOr<std::unique_ptr<Datastore>> store = OpenEtcd(config);
    INFO(store.status().ToString());
    REQUIRE(store.ok());
    return std::move(store).value();
  }

  bool CanRestart() const override { return true; }

  void Restart() override {
    absl::Status restarted = server_->Restart();
    INFO(restarted.ToString());
    REQUIRE(restarted.ok());
  }

  std::map<std::string, std::string> ClientEnvironment() const override {
    return {{"DATASTORE_TYPE", "etcdv3"}, {"ETCD_ENDPOINTS", server_->ClientUrl()}};
  }

 private:
  std::unique_ptr<calico::testing::EtcdServer> server_;
};

CALICO_DATASTORE_CONFORMANCE_TESTS("etcd", "[integration][etcd][conformance]",
                                   std::make_unique<EtcdHarness>())

}  // namespace
}  // namespace calico::datastore
