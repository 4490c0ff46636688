// Result JSON per spec version (golden strings in upstream's field order and omissions), VERSION
// output, and prevResult parsing round trips.

#include <catch2/catch.hpp>

#include <string>

#include "cni-plugin/cni_error.h"
#include "cni-plugin/result.h"
#include "common/base/status_macros.h"

namespace calico::cni {
namespace {

net::Prefix P(const char* text) { return *net::ParsePrefix(text); }
net::IpAddress Ip(const char* text) { return *net::ParseIp(text); }

// What calico ADD returns for a dual-stack pod: one container interface, /32 and /128.
Result DualStack() {
  Result r;
  r.interfaces.push_back({"eth0", "", "/var/run/netns/cni-1"});
  r.ips.push_back({P("10.65.0.5/32"), std::nullopt, 0});
  r.ips.push_back({P("fd00:10:65::5/128"), std::nullopt, 0});
  r.routes.push_back({P("0.0.0.0/0"), Ip("169.254.1.1")});
  r.routes.push_back({P("::/0"), std::nullopt});
  return r;
}

TEST_CASE("1.0.0 and 1.1.0 results: no ip version interface index first", "[cni][result]") {
  const char* golden =
      R"({"cniVersion":"VER","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/cni-1"}],)"
      R"("ips":[{"interface":0,"address":"10.65.0.5/32"},{"interface":0,"address":"fd00:10:65::5/128"}],)"
      R"("routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"},{"dst":"::/0"}],"dns":{}})";
  for (const char* v : {"1.0.0", "1.1.0"}) {
    std::string expected = golden;
    expected.replace(expected.find("VER"), 3, v);
    absl::StatusOr<std::string> json = FormatResult(DualStack(), v);
    REQUIRE(json.ok());
    CHECK(*json == expected);
  }
}

TEST_CASE("0.3.0 0.3.1 and 0.4.0 results carry the ip version", "[cni][result]") {
  const char* golden =
      R"({"cniVersion":"VER","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/cni-1"}],)"
      R"("ips":[{"version":"4","interface":0,"address":"10.65.0.5/32"},)"
      R"({"version":"6","interface":0,"address":"fd00:10:65::5/128"}],)"
      R"("routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"},{"dst":"::/0"}],"dns":{}})";
  for (const char* v : {"0.3.0", "0.3.1", "0.4.0"}) {
    std::string expected = golden;
    expected.replace(expected.find("VER"), 3, v);
    absl::StatusOr<std::string> json = FormatResult(DualStack(), v);
    REQUIRE(json.ok());
    CHECK(*json == expected);
  }
}

TEST_CASE("an IPAM-only result: gateway and dns no interfaces", "[cni][result]") {
  Result r;
  r.ips.push_back({P("10.22.0.7/24"), Ip("10.22.0.1"), std::nullopt});
  r.dns.nameservers = {"10.96.0.10"};
  r.dns.domain = "cluster.local";
  r.dns.search = {"default.svc.cluster.local"};
  r.dns.options = {"ndots:5"};
  CHECK(*FormatResult(r, "1.0.0") ==
        R"({"cniVersion":"1.0.0","ips":[{"address":"10.22.0.7/24","gateway":"10.22.0.1"}],)"
        R"("dns":{"nameservers":["10.96.0.10"],"domain":"cluster.local",)"
        R"("search":["default.svc.cluster.local"],"options":["ndots:5"]}})");
  CHECK(*FormatResult(Result{}, "0.4.0") == R"({"cniVersion":"0.4.0","dns":{}})");
}

TEST_CASE("formatting refuses unknown versions and dangling interface indexes", "[cni][result]") {
  CHECK_FALSE(FormatResult(DualStack(), "0.2.0").ok());
  Result r;
  r.ips.push_back({P("10.0.0.1/32"), std::nullopt, 2});
  CHECK_FALSE(FormatResult(r, "1.0.0").ok());
}

TEST_CASE("VERSION output lists every supported version", "[cni][result]") {
  CHECK(FormatVersionInfo("1.0.0") ==
        R"({"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})");
  CHECK(IsSupportedVersion("0.3.1"));
  CHECK_FALSE(IsSupportedVersion("0.1.0"));
  CHECK(std::string(kLatestVersion) == SupportedVersions().back());
}

TEST_CASE("prevResult round trip in every version", "[cni][result]") {
  Result original = DualStack();
  original.dns.nameservers = {"10.96.0.10"};
  original.interfaces.push_back({"cali12345678901", "ee:ee:ee:ee:ee:ee", ""});
  original.ips[1].gateway = Ip("fe80::ecee:eeff:feee:eeee");
  for (const std::string& v : SupportedVersions()) {
    INFO(v);
    absl::StatusOr<std::string> json = FormatResult(original, v);
    REQUIRE(json.ok());
    absl::StatusOr<Result> parsed = ParseResult(*json, "1.0.0");
    REQUIRE(parsed.ok());
    REQUIRE(parsed->interfaces.size() == 2);
    CHECK(parsed->interfaces[1].mac == "ee:ee:ee:ee:ee:ee");
    CHECK(parsed->interfaces[0].sandbox == "/var/run/netns/cni-1");
    REQUIRE(parsed->ips.size() == 2);
    CHECK(parsed->ips[0].address == original.ips[0].address);
    CHECK(parsed->ips[1].gateway == original.ips[1].gateway);
    CHECK(parsed->ips[0].interface == 0);
    REQUIRE(parsed->routes.size() == 2);
    CHECK(parsed->routes[0].gw == original.routes[0].gw);
    CHECK_FALSE(parsed->routes[1].gw.has_value());
    CHECK(parsed->dns == original.dns);
    // Formatting the parse again gives the same bytes.
    CHECK(*FormatResult(*parsed, v) == *json);
  }
}

TEST_CASE("a result without cniVersion takes the expected one", "[cni][result]") {
  absl::StatusOr<Result> r = ParseResult(R"({"ips":[{"version":"6","address":"2001:db8::1/64"}]})", "0.3.1");
  REQUIRE(r.ok());
  CHECK(r->ips[0].address.addr.family == 6);
}

TEST_CASE("bad results name the field", "[cni][result]") {
  struct Case {
    const char* json;
    ErrorCode code;
    const char* field;
  };
  const Case cases[] = {
      {R"({"cniVersion":"1.0.0","ips":[)", ErrorCode::kDecodeFailure, "malformed"},
      {R"({"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.1/8"}})", ErrorCode::kIncompatibleVersion, "0.2.0"},
      {R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1"}]})", ErrorCode::kInvalidNetworkConfig,
       "ips[0].address"},
      {R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/8","gateway":"x"}]})",
       ErrorCode::kInvalidNetworkConfig, "ips[0].gateway"},
      {R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/8","interface":0}]})",
       ErrorCode::kInvalidNetworkConfig, "ips[0].interface"},
      {R"({"cniVersion":"0.4.0","ips":[{"version":"6","address":"10.0.0.1/8"}]})",
       ErrorCode::kInvalidNetworkConfig, "ips[0].version"},
      {R"({"cniVersion":"1.0.0","routes":[{"dst":"default"}]})", ErrorCode::kInvalidNetworkConfig,
       "routes[0].dst"},
      {R"({"cniVersion":"1.0.0","interfaces":[{"name":7}]})", ErrorCode::kInvalidNetworkConfig,
       "interfaces[0].name"},
      {R"({"cniVersion":"1.0.0","dns":{"nameservers":"8.8.8.8"}})", ErrorCode::kInvalidNetworkConfig,
       "dns.nameservers"},
  };
  for (const Case& c : cases) {
    INFO(c.json);
    absl::StatusOr<Result> r = ParseResult(c.json, "1.0.0");
    REQUIRE_FALSE(r.ok());
    CHECK(CniCodeOf(r.status()) == c.code);
    CHECK_THAT(ToStd(r.status().message()), Catch::Contains(c.field));
  }
}

}  // namespace
}  // namespace calico::cni
