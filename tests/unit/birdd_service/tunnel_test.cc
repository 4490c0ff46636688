// Which learned routes go through tunl0: IP-in-IP pools, upstream's Always and CrossSubnet.
#include <catch2/catch.hpp>

#include "birdd/service/birdd.h"

namespace calico::birdd {
namespace {

net::Prefix P(std::string_view s) { return *net::ParsePrefix(s); }
net::IpAddress Ip(std::string_view s) { return *net::ParseIp(s); }

TEST_CASE("IP-in-IP: Always tunnels, CrossSubnet only to another subnet, Never and no pool do not") {
  std::vector<PoolInfo> pools = {{P("10.1.0.0/16"), true, "Always"},
                                 {P("10.2.0.0/16"), true, "CrossSubnet"},
                                 {P("10.3.0.0/16"), true, "Never"}};
  std::optional<net::Prefix> subnet = P("192.168.1.0/24");
  CHECK(TunnelFor(pools, subnet, P("10.1.4.0/26"), {Ip("192.168.1.7")}) == "tunl0");
  CHECK(TunnelFor(pools, subnet, P("10.2.4.0/26"), {Ip("192.168.1.7")}).empty());  // same subnet
  CHECK(TunnelFor(pools, subnet, P("10.2.4.0/26"), {Ip("192.168.2.7")}) == "tunl0");
  CHECK(TunnelFor(pools, subnet, P("10.3.4.0/26"), {Ip("192.168.2.7")}).empty());
  CHECK(TunnelFor(pools, subnet, P("172.16.0.0/24"), {Ip("192.168.2.7")}).empty());  // not a pool
  CHECK(TunnelFor(pools, std::nullopt, P("10.2.4.0/26"), {Ip("192.168.1.7")}) == "tunl0");
  CHECK(TunnelFor(pools, subnet, P("10.1.4.0/26"), {}).empty());  // a withdrawal
  std::vector<PoolInfo> v6 = {{P("fd00::/48"), true, "Always"}};
  CHECK(TunnelFor(v6, subnet, P("fd00::/122"), {Ip("fd01::1")}).empty());  // IP-in-IP is IPv4 only
}

}  // namespace
}  // namespace calico::birdd
