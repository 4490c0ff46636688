#pragma once
// A real SQLite datastore in a temp dir plus a mutable IPAM environment (pools, config, node
// labels, reservations) the allocator reads on every call.

#include <catch2/catch.hpp>

#include <memory>
#include <mutex>

#include "common/datastore/config.h"
#include "common/log/log.h"
#include "common/datastore/sqlite/sqlite_datastore.h"
#include "ipamd/allocator/allocator.h"
#include "tests/support/datastore/conformance.h"

namespace calico::ipamd::testing {

inline net::Prefix P(std::string_view text) {
  std::optional<net::Prefix> p = net::ParsePrefix(text);
  REQUIRE(p.has_value());
  return *p;
}
inline net::IpAddress Ip(std::string_view text) {
  std::optional<net::IpAddress> ip = net::ParseIp(text);
  REQUIRE(ip.has_value());
  return *ip;
}

template <typename T>
T Ok(absl::StatusOr<T> result) {
  if (!result.ok()) FAIL(result.status());
  return std::move(result).value();
}

inline Pool MakePool(std::string name, std::string_view cidr, int block_size) {
  Pool p;
  p.name = std::move(name);
  p.cidr = P(cidr);
  p.block_size = block_size;
  return p;
}

class Fixture {
 public:
  Fixture() {
    log::SetLevel(log::Level::kWarn);  // claims and releases are info: keep test output short
    config_.type = datastore::BackendType::kEmbedded;
    config_.sqlite_path = dir_.path() + "/calico.db";
    store_ = Connect();
  }

  // Another connection to the same file (another process, as far as the store is concerned).
  std::unique_ptr<datastore::Datastore> Connect() {
    datastore::SqliteOptions options;
    options.fsync_each_commit = false;  // tests need no durability across power loss
    absl::StatusOr<std::unique_ptr<datastore::Datastore>> s = datastore::OpenSqlite(config_, options);
    if (!s.ok()) FAIL("OpenSqlite: " << s.status());
    return std::move(s).value();
  }

  Environment Env() {
    Environment env;
    env.pools = [this]() -> absl::StatusOr<std::vector<Pool>> {
      std::lock_guard<std::mutex> l(mu_);
      return pools;
    };
    env.config = [this]() -> absl::StatusOr<IpamConfig> {
      std::lock_guard<std::mutex> l(mu_);
      return config;
    };
    env.node_labels = [this](const std::string& node)
        -> absl::StatusOr<std::map<std::string, std::string>> {
      std::lock_guard<std::mutex> l(mu_);
      return labels[node];
    };
    env.reservations = [this]() -> absl::StatusOr<std::vector<net::Prefix>> {
      std::lock_guard<std::mutex> l(mu_);
      return reservations;
    };
    return env;
  }

  std::unique_ptr<Allocator> NewAllocator(datastore::Datastore* store = nullptr) {
    return std::make_unique<Allocator>(store ? *store : *store_, Env());
  }

  datastore::Datastore& store() { return *store_; }

  // Test-visible environment (tests mutate it between calls, never concurrently).
  std::vector<Pool> pools;
  IpamConfig config;
  std::map<std::string, std::map<std::string, std::string>> labels;
  std::vector<net::Prefix> reservations;

 private:
  datastore::testing::TempDir dir_;
  datastore::Config config_;
  std::unique_ptr<datastore::Datastore> store_;
  std::mutex mu_;
};

}  // namespace calico::ipamd::testing
