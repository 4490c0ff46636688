#pragma once
// An in-process ipamd (Daemon) on a temp unix socket over a real SQLite datastore.

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "calico/ipam/v1/ipam.grpc.pb.h"
#include "common/datastore/config.h"
#include "common/resources/client/client.h"
#include "common/rpc/unix_server.h"
#include "ipamd/allocator/check_load.h"
#include "ipamd/service/daemon.h"
#include "ipamd/service/default_pools.h"
#include "tests/unit/ipamd_service/test_util.h"

namespace calico::ipamd::testing {

inline std::unique_ptr<datastore::Datastore> OpenSqlite(const std::string& dir) {
  datastore::Config config;
  config.type = datastore::BackendType::kEmbedded;
  config.sqlite_path = dir + "/calico.db";
  return Ok(datastore::Open(config));
}

inline resources::Resource MakeResource(const resources::Json& object) {
  return Ok(resources::FromObject(object));
}

inline void CreatePool(datastore::Datastore& store, const std::string& name,
                       const std::string& cidr, int block_size) {
  service::DefaultPoolSpec spec{name, cidr, block_size, "Never", "Never", false, "all()"};
  resources::Client client(store);
  Ok(client.Create(Ok(service::PoolResource(spec))));
}

inline void CreateNode(datastore::Datastore& store, const std::string& name) {
  resources::Client client(store);
  Ok(client.Create(MakeResource({{"apiVersion", "projectcalico.org/v3"},
                                 {"kind", "Node"},
                                 {"metadata", {{"name", name}}},
                                 {"spec", resources::Json::object()}})));
}

// A WorkloadEndpoint using `ip` (what felixd writes for a running pod).
inline void CreateWorkload(datastore::Datastore& store, const std::string& node,
                           const std::string& pod, const std::string& ip) {
  resources::Client client(store);
  Ok(client.Create(MakeResource(
      {{"apiVersion", "projectcalico.org/v3"},
       {"kind", "WorkloadEndpoint"},
       {"metadata", {{"name", node + "-k8s-" + pod + "-eth0"}, {"namespace", "default"}}},
       {"spec",
        {{"orchestrator", "k8s"},
         {"node", node},
         {"pod", pod},
         {"endpoint", "eth0"},
         {"containerID", "c-" + pod},
         {"interfaceName",
          "cali" + std::string(11 - std::min<size_t>(11, pod.size()), '0') + pod.substr(0, 11)},
         {"ipNetworks", {ip + (ip.find(':') == std::string::npos ? "/32" : "/128")}}}}})));
}

struct InProcessIpamd {
  explicit InProcessIpamd(const std::string& node = "node1") {
    store = OpenSqlite(dir.path());
    in_use_client = std::make_unique<resources::Client>(*store);
    options.node = node;
    options.socket_path = dir.path() + "/run/ipam.sock";
    options.http = http::ListenAddress{"127.0.0.1", 0};
    options.env_cache_ttl = absl::ZeroDuration();
    options.collect_leaks = false;
    options.loop_interval = absl::Hours(1);
  }
  void Start() {
    resources::Client* c = in_use_client.get();
    daemon = Ok(service::Daemon::Start(*store, options, [c] { return LoadInUse(*c); }));
    stub = ipam::v1::Ipam::NewStub(rpc::DialUnix(options.socket_path));
  }

  TempDir dir;
  std::unique_ptr<datastore::Datastore> store;
  std::unique_ptr<resources::Client> in_use_client;
  service::DaemonOptions options;
  std::unique_ptr<service::Daemon> daemon;
  std::unique_ptr<ipam::v1::Ipam::Stub> stub;
};

inline std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

}  // namespace calico::ipamd::testing
