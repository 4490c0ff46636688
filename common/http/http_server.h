#pragma once
// common/http/http_server.h — a daemon's localhost HTTP endpoint:
//   /liveness   200 "ok" while the process serves at all (the HTTP thread answering is the proof)
//   /readiness  200 "ready", or 503 with the reason (e.g. datastore unreachable)
//   /metrics    Prometheus text format from a MetricsRegistry
// Loopback only: metrics name nodes, pools and handles, and nothing here is authenticated, so
// binding a routable address is refused rather than left to a flag typo.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/http/metrics.h"

namespace httplib {
class Server;
}

namespace calico::http {

struct ListenAddress {
  std::string host;  // "127.0.0.1", "::1", "localhost"
  int port = 0;      // 0: disabled (Start is not called) — see ParseListenAddress
};

// "127.0.0.1:9097", "[::1]:9097", "localhost:9097". InvalidArgument for anything else or a
// non-loopback host.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0 here: any free port (tests); read it back with port()
  const MetricsRegistry* metrics = nullptr;  // not owned; null: /metrics is 404
  // OK: ready. Otherwise 503 with the message. Null: always ready.
  std::function<absl::Status()> readiness;
  // Extra lines after "ready" (e.g. which BGP peers are down without making the node unready).
  std::function<std::string()> readiness_detail;
};

class HttpServer {
 public:
  // Binds before returning, so a taken port is a startup error (Unavailable), not a log line.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options);
  ~HttpServer();  // Stop()

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  void Stop();

 private:
  HttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace calico::http
