#include <httplib.h>

#include <catch2/catch.hpp>

#include "common/http/http_server.h"
#include "common/http/metrics.h"
#include "tests/unit/ipamd_service/test_util.h"

namespace calico::http {
namespace {

using ipamd::testing::Ok;

TEST_CASE("Metrics render in Prometheus text format", "[unit][http]") {
  MetricsRegistry registry;
  MetricFamily& requests = registry.Counter("x_requests_total", "Requests.", {"method", "code"});
  MetricFamily& util = registry.Gauge("x_pool_utilisation", "Ratio.", {"pool"});
  MetricFamily& plain = registry.Counter("x_plain_total", "No labels.");
  requests.Inc({"AutoAssign", "OK"});
  requests.Inc({"AutoAssign", "OK"}, 2);
  requests.Inc({"ReleaseIPs", "INVALID_ARGUMENT"});
  util.Set({"p\"1\\\n"}, 0.25);
  REQUIRE(&registry.Counter("x_requests_total", "Requests.", {"method", "code"}) == &requests);
  REQUIRE(requests.Value({"AutoAssign", "OK"}) == 3);
  REQUIRE(plain.Value() == 0);

  std::string text = registry.RenderText();
  REQUIRE(text.find("# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n") !=
          std::string::npos);
  REQUIRE(text.find("x_requests_total{method=\"AutoAssign\",code=\"OK\"} 3\n") !=
          std::string::npos);
  REQUIRE(text.find("x_requests_total{method=\"ReleaseIPs\",code=\"INVALID_ARGUMENT\"} 1\n") !=
          std::string::npos);
  REQUIRE(text.find("# TYPE x_pool_utilisation gauge\n") != std::string::npos);
  REQUIRE(text.find("x_pool_utilisation{pool=\"p\\\"1\\\\\\n\"} 0.25\n") != std::string::npos);
  REQUIRE(text.find("x_plain_total 0\n") != std::string::npos);  // exported before first Inc

  util.Clear();
  REQUIRE(registry.RenderText().find("x_pool_utilisation{") == std::string::npos);
  REQUIRE(FormatSampleValue(1234567) == "1234567");
  REQUIRE(FormatSampleValue(1.0 / 0.0) == "+Inf");
}

TEST_CASE("ParseListenAddress accepts loopback only", "[unit][http]") {
  ListenAddress a = Ok(ParseListenAddress("127.0.0.1:9097"));
  REQUIRE(a.host == "127.0.0.1");
  REQUIRE(a.port == 9097);
  REQUIRE(Ok(ParseListenAddress("[::1]:0")).host == "::1");
  REQUIRE(Ok(ParseListenAddress("localhost:80")).port == 80);
  REQUIRE(absl::IsInvalidArgument(ParseListenAddress("0.0.0.0:9097").status()));
  REQUIRE(absl::IsInvalidArgument(ParseListenAddress("10.0.0.1:9097").status()));
  REQUIRE(absl::IsInvalidArgument(ParseListenAddress("127.0.0.1").status()));
  REQUIRE(absl::IsInvalidArgument(ParseListenAddress("127.0.0.1:70000").status()));
}

TEST_CASE("HttpServer serves liveness, readiness and metrics on loopback", "[unit][http]") {
  MetricsRegistry registry;
  registry.Counter("y_total", "Y.").Inc();
  bool ready = false;
  HttpServerOptions opts;
  opts.metrics = &registry;
  opts.readiness = [&ready]() -> absl::Status {
    return ready ? absl::OkStatus() : absl::UnavailableError("datastore down");
  };
  auto server = Ok(HttpServer::Start(opts));
  REQUIRE(server->port() > 0);
  httplib::Client client("127.0.0.1", server->port());
  auto live = client.Get("/liveness");
  REQUIRE(live);
  REQUIRE(live->status == 200);
  auto not_ready = client.Get("/readiness");
  REQUIRE(not_ready);
  REQUIRE(not_ready->status == 503);
  REQUIRE(not_ready->body.find("datastore down") != std::string::npos);
  ready = true;
  REQUIRE(client.Get("/readiness")->status == 200);
  auto metrics = client.Get("/metrics");
  REQUIRE(metrics);
  REQUIRE(metrics->status == 200);
  REQUIRE(metrics->body.find("y_total 1\n") != std::string::npos);

  // The port is taken while it runs: a second server on it fails at Start, not later.
  HttpServerOptions same;
  same.port = server->port();
  REQUIRE(absl::IsUnavailable(HttpServer::Start(same).status()));

  server->Stop();
  REQUIRE_FALSE(client.Get("/liveness"));

  HttpServerOptions outside;
  outside.host = "0.0.0.0";
  REQUIRE(absl::IsInvalidArgument(HttpServer::Start(outside).status()));
}

}  // namespace
}  // namespace calico::http
