#pragma once
// ipamd/service/daemon.h — ipamd minus main(): the allocator over the datastore, the gRPC
// service on its unix socket, the localhost HTTP endpoint, and one background loop (pool
// utilisation gauges, leak collection). main() parses flags, opens the datastore, creates the
// default pools and runs a Daemon until SIGTERM; tests run a Daemon in-process.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/datastore/datastore.h"
#include "common/http/http_server.h"
#include "common/http/metrics.h"
#include "common/rpc/unix_server.h"
#include "ipamd/allocator/allocator.h"
#include "ipamd/service/counting_datastore.h"
#include "ipamd/service/ipam_service.h"
#include "ipamd/service/leak_collector.h"

namespace calico::ipamd::service {

struct DaemonOptions {
  std::string node;
  std::string socket_path = "/var/run/calico/ipam.sock";
  std::optional<http::ListenAddress> http;  // nullopt: no HTTP endpoint; port 0: any port
  absl::Duration leak_grace = absl::Minutes(15);
  absl::Duration loop_interval = absl::Seconds(30);  // gauges + one leak collection pass
  bool collect_leaks = true;                         // needs an InUseLoader as well
  absl::Duration env_cache_ttl = absl::Seconds(1);
  // This node's VXLAN tunnel addresses (tunnel_address.h): checked at start, whenever an IPPool
  // or this node's Node changes (watched), and every interval as a safety net.
  bool vxlan_tunnel = true;
  absl::Duration tunnel_interval = absl::Seconds(60);
  AllocatorOptions allocator;
};

class Daemon {
 public:
  // `store` must outlive the daemon. `load_in_use` may be null (no Check, no collection).
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(datastore::Datastore& store,
                                                       DaemonOptions options,
                                                       InUseLoader load_in_use);
  ~Daemon();  // Stop()

  // NOT_SERVING, drain for `grace`, socket removed, loop and HTTP stopped. Idempotent.
  void Stop(absl::Duration grace = absl::Seconds(5));
  // Runs the background work once, now (tests; also what the loop does every interval).
  absl::Status RunLoopOnce();

  int http_port() const { return http_ == nullptr ? 0 : http_->port(); }
  http::MetricsRegistry& metrics() { return metrics_; }
  Allocator& allocator() { return *allocator_; }
  const DaemonOptions& options() const { return options_; }

 private:
  Daemon(datastore::Datastore& store, DaemonOptions options, InUseLoader load_in_use);
  absl::Status UpdatePoolGauges();
  void EnsureTunnel();
  void TunnelLoop();
  void Loop();

  const DaemonOptions options_;
  http::MetricsRegistry metrics_;
  CountingDatastore store_;
  InUseLoader load_in_use_;
  Environment env_;
  std::unique_ptr<Allocator> allocator_;
  std::unique_ptr<IpamService> service_;
  std::unique_ptr<LeakCollector> collector_;
  std::unique_ptr<rpc::UnixServer> rpc_;
  std::unique_ptr<http::HttpServer> http_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread loop_;
  std::thread tunnel_loop_;
  std::string tunnel_error_;  // last logged, so a persisting problem is logged once
};

}  // namespace calico::ipamd::service
