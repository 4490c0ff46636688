#include "ipamd/service/default_pools.h"

#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "common/datastore/config.h"
#include "common/resources/client/client.h"
#include "tests/unit/ipamd_service/test_util.h"

namespace calico::ipamd::service {
namespace {

using testing::Ok;
using testing::TempDir;

std::function<const char*(const char*)> Env(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

std::unique_ptr<datastore::Datastore> OpenStore(const TempDir& dir) {
  datastore::Config config;
  config.type = datastore::BackendType::kEmbedded;
  config.sqlite_path = dir.path() + "/calico.db";
  return Ok(datastore::Open(config));
}

std::map<std::string, resources::Json> Pools(datastore::Datastore& store) {
  resources::Client client(store);
  std::map<std::string, resources::Json> out;
  for (const auto& r : Ok(client.List(*resources::FindKind("IPPool"))))
    out[r.Name()] = r.object["spec"];
  return out;
}

TEST_CASE("Default pools from an empty environment: upstream's defaults", "[unit][default_pools]") {
  DefaultPools pools = Ok(DefaultPoolsFromEnvironment(Env({})));
  REQUIRE_FALSE(pools.skip);
  REQUIRE(pools.v4);
  REQUIRE_FALSE(pools.v6);
  REQUIRE(pools.v4->name == "default-ipv4-ippool");
  REQUIRE(pools.v4->cidr == "192.168.0.0/16");
  REQUIRE(pools.v4->block_size == 26);
  REQUIRE(pools.v4->ipip_mode == "Never");
  REQUIRE(pools.v4->vxlan_mode == "Never");
  REQUIRE(pools.v4->nat_outgoing);
  REQUIRE(pools.v4->node_selector == "all()");

  TempDir dir;
  auto store = OpenStore(dir);
  REQUIRE(Ok(EnsureDefaultPools(*store, pools)) == std::vector<std::string>{"default-ipv4-ippool"});
  auto stored = Pools(*store);
  REQUIRE(stored.size() == 1);
  REQUIRE(stored["default-ipv4-ippool"]["cidr"] == "192.168.0.0/16");
  REQUIRE(stored["default-ipv4-ippool"]["natOutgoing"] == true);
  // A second start finds the pool and writes nothing.
  REQUIRE(Ok(EnsureDefaultPools(*store, pools)).empty());
}

TEST_CASE("Default pools honour every CALICO_IPV4POOL_/IPV6POOL_ variable",
          "[unit][default_pools]") {
  DefaultPools pools = Ok(DefaultPoolsFromEnvironment(Env({
      {"CALICO_IPV4POOL_CIDR", "10.65.0.0/16"},
      {"CALICO_IPV4POOL_BLOCK_SIZE", "28"},
      {"CALICO_IPV4POOL_IPIP", "crosssubnet"},
      {"CALICO_IPV4POOL_NAT_OUTGOING", "false"},
      {"CALICO_IPV4POOL_NODE_SELECTOR", "rack == \"1\""},
      {"CALICO_IPV6POOL_CIDR", "fd00:10::/48"},
      {"CALICO_IPV6POOL_BLOCK_SIZE", "120"},
      {"CALICO_IPV6POOL_VXLAN", "Always"},
      {"CALICO_IPV6POOL_NAT_OUTGOING", "true"},
  })));
  REQUIRE(pools.v4->cidr == "10.65.0.0/16");
  REQUIRE(pools.v4->block_size == 28);
  REQUIRE(pools.v4->ipip_mode == "CrossSubnet");
  REQUIRE_FALSE(pools.v4->nat_outgoing);
  REQUIRE(pools.v6->cidr == "fd00:10::/48");
  REQUIRE(pools.v6->block_size == 120);
  REQUIRE(pools.v6->vxlan_mode == "Always");
  REQUIRE(pools.v6->nat_outgoing);

  TempDir dir;
  auto store = OpenStore(dir);
  REQUIRE(Ok(EnsureDefaultPools(*store, pools)).size() == 2);
  auto stored = Pools(*store);
  REQUIRE(stored["default-ipv4-ippool"]["blockSize"] == 28);
  REQUIRE(stored["default-ipv4-ippool"]["ipipMode"] == "CrossSubnet");
  REQUIRE(stored["default-ipv4-ippool"]["nodeSelector"] == "rack == \"1\"");
  REQUIRE(stored["default-ipv6-ippool"]["vxlanMode"] == "Always");
  REQUIRE(stored["default-ipv6-ippool"]["blockSize"] == 120);
}

TEST_CASE("Default pool variables: bad values fail naming the variable", "[unit][default_pools]") {
  auto fails = [](std::map<std::string, std::string> vars, const std::string& needle) {
    absl::StatusOr<DefaultPools> r = DefaultPoolsFromEnvironment(Env(vars));
    REQUIRE(absl::IsInvalidArgument(r.status()));
    INFO(r.status());
    REQUIRE(std::string(r.status().message()).find(needle) != std::string::npos);
  };
  fails({{"CALICO_IPV4POOL_CIDR", "10.0.0.0/33"}}, "CALICO_IPV4POOL_CIDR");
  fails({{"CALICO_IPV4POOL_CIDR", "fd00::/48"}}, "not an IPv4 CIDR");
  fails({{"CALICO_IPV4POOL_IPIP", "sometimes"}}, "CALICO_IPV4POOL_IPIP");
  fails({{"CALICO_IPV4POOL_BLOCK_SIZE", "abc"}}, "CALICO_IPV4POOL_BLOCK_SIZE");
  fails({{"CALICO_IPV4POOL_BLOCK_SIZE", "33"}}, "blockSize");
  fails({{"CALICO_IPV4POOL_NAT_OUTGOING", "yes"}}, "CALICO_IPV4POOL_NAT_OUTGOING");
  fails({{"CALICO_IPV4POOL_IPIP", "Always"}, {"CALICO_IPV4POOL_VXLAN", "Always"}}, "vxlanMode");
  fails({{"CALICO_IPV6POOL_CIDR", "10.0.0.0/8"}}, "not an IPv6 CIDR");
  fails({{"NO_DEFAULT_POOLS", "maybe"}}, "NO_DEFAULT_POOLS");
}

TEST_CASE("NO_DEFAULT_POOLS=true creates nothing", "[unit][default_pools]") {
  DefaultPools pools = Ok(DefaultPoolsFromEnvironment(
      Env({{"NO_DEFAULT_POOLS", "true"}, {"CALICO_IPV6POOL_CIDR", "fd00::/48"}})));
  REQUIRE(pools.skip);
  TempDir dir;
  auto store = OpenStore(dir);
  REQUIRE(Ok(EnsureDefaultPools(*store, pools)).empty());
  REQUIRE(Pools(*store).empty());
}

TEST_CASE("Default pools are per family: an existing v4 pool still gets a v6 default",
          "[unit][default_pools]") {
  TempDir dir;
  auto store = OpenStore(dir);
  DefaultPoolSpec mine{"mine", "10.99.0.0/16", 26, "Never", "Never", false, "all()"};
  resources::Client client(*store);
  Ok(client.Create(Ok(PoolResource(mine))));
  DefaultPools pools =
      Ok(DefaultPoolsFromEnvironment(Env({{"CALICO_IPV6POOL_CIDR", "fd00:1::/48"}})));
  REQUIRE(Ok(EnsureDefaultPools(*store, pools)) == std::vector<std::string>{"default-ipv6-ippool"});
  auto stored = Pools(*store);
  REQUIRE(stored.size() == 2);
  REQUIRE(stored.count("default-ipv4-ippool") == 0);
}

TEST_CASE("Two ipamds starting at once create each default pool exactly once",
          "[unit][default_pools]") {
  TempDir dir;
  DefaultPools pools =
      Ok(DefaultPoolsFromEnvironment(Env({{"CALICO_IPV6POOL_CIDR", "fd00:2::/48"}})));
  for (int round = 0; round < 5; ++round) {
    auto seed = OpenStore(dir);
    resources::Client client(*seed);
    for (const auto& [name, spec] : Pools(*seed))
      Ok(client.Delete(*resources::FindKind("IPPool"), "", name));
    constexpr int kCreators = 4;
    std::vector<absl::StatusOr<std::vector<std::string>>> results(kCreators,
                                                                  std::vector<std::string>{});
    std::vector<std::thread> threads;
    for (int i = 0; i < kCreators; ++i) {
      threads.emplace_back([&, i] {
        auto store = OpenStore(dir);  // its own connection, as a separate process would have
        results[i] = EnsureDefaultPools(*store, pools);
      });
    }
    for (auto& t : threads) t.join();
    std::map<std::string, int> created;
    for (auto& r : results) {
      REQUIRE(r.ok());
      for (const std::string& name : *r) ++created[name];
    }
    REQUIRE(created ==
            std::map<std::string, int>{{"default-ipv4-ippool", 1}, {"default-ipv6-ippool", 1}});
    REQUIRE(Pools(*seed).size() == 2);
  }
}

}  // namespace
}  // namespace calico::ipamd::service
