// felixd: the node's dataplane daemon. Wires workloads (veths, addresses, routes, sysctls) for
// the CNI plugin, records their WorkloadEndpoints, and keeps the kernel in line with the
// datastore. Serves calico.dataplane.v1 and grpc.health.v1 on a unix socket, /liveness
// /readiness /metrics on localhost. Datastore from the environment (DATASTORE_TYPE,
// ETCD_ENDPOINTS, CALICO_DATASTORE_PATH, ...).
//
// Exit: 0 after SIGTERM/SIGINT (kernel state left in place: a restart adopts it); 1 with one
// `level=error event=startup_failed` line when it cannot start.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/base/daemon_main.h"
#include "common/base/node_name.h"
#include "common/base/status_macros.h"
#include "common/datastore/config.h"
#include "common/http/http_server.h"
#include "common/http/metrics.h"
#include "common/kernel/libnl_netlink.h"
#include "common/log/log.h"
#include "common/rpc/unix_server.h"
#include "felixd/service/dataplane_service.h"
#include "felixd/service/felix.h"

ABSL_FLAG(std::string, socket, "/var/run/calico/dataplane.sock",
          "Unix socket for the calico.dataplane.v1 API (created 0600).");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:9099",
          "Loopback host:port for /liveness, /readiness and /metrics; port 0 disables HTTP.");
ABSL_FLAG(std::string, node, "", "This node's name (default: $NODENAME, else the hostname).");
ABSL_FLAG(int, route_protocol, calico::felixd::kDefaultRouteProtocol,
          "rtnetlink protocol number that marks felixd's routes (1-255, not 12: BIRD's).");
ABSL_FLAG(int, mtu, 0, "Workload MTU; 0: the MTU of the host's default-route device.");
ABSL_FLAG(std::string, resync_interval, "10s", "How often the kernel is re-read and repaired.");
ABSL_FLAG(bool, set_forwarding, true,
          "Set net.ipv4.ip_forward and net.ipv6.conf.all.forwarding to 1 at start.");
ABSL_FLAG(std::string, log_level, "info", "trace|debug|info|warn|error");

namespace calico::felixd {
namespace {

absl::StatusOr<std::unique_ptr<kernel::Netlink>> OpenNetlink(const kernel::NetnsRef& ns) {
  ASSIGN_OR_RETURN(std::unique_ptr<kernel::LibnlNetlink> nl, kernel::LibnlNetlink::Open(ns));
  return std::unique_ptr<kernel::Netlink>(std::move(nl));
}

absl::Status Run(const sigset_t& signals) {
  log::Level level;
  if (!log::ParseLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_level=\"", absl::GetFlag(FLAGS_log_level), "\": unknown level"));
  }
  log::SetLevel(level);
  FelixOptions options;
  ASSIGN_OR_RETURN(options.node, ResolveNodeName(absl::GetFlag(FLAGS_node)));
  int protocol = absl::GetFlag(FLAGS_route_protocol);
  if (protocol < 1 || protocol > 255 || protocol == kernel::kProtoBird ||
      protocol == kernel::kProtoKernel) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--route_protocol=", protocol, ": must be 1-255 and not 2 (kernel) or 12 (bird)"));
  }
  options.route_protocol = static_cast<uint8_t>(protocol);
  options.mtu = absl::GetFlag(FLAGS_mtu);
  if (!absl::ParseDuration(absl::GetFlag(FLAGS_resync_interval), &options.resync_interval) ||
      options.resync_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--resync_interval=\"", absl::GetFlag(FLAGS_resync_interval), "\": expected e.g. 10s"));
  }
  ASSIGN_OR_RETURN(http::ListenAddress listen,
                   http::ParseListenAddress(absl::GetFlag(FLAGS_http_listen)));

  ASSIGN_OR_RETURN(std::unique_ptr<kernel::Netlink> host, OpenNetlink({}));
  if (absl::GetFlag(FLAGS_set_forwarding)) {
    RETURN_IF_ERROR(host->WriteSysctl("net/ipv4/ip_forward", "1"));
    absl::Status v6 = host->WriteSysctl("net/ipv6/conf/all/forwarding", "1");
    if (!v6.ok()) log::Warn("ipv6_forwarding", {{"error", ToStd(v6.message())}});
  }
  ASSIGN_OR_RETURN(datastore::Config config, datastore::ConfigFromEnvironment());
  ASSIGN_OR_RETURN(std::unique_ptr<datastore::Datastore> store, datastore::Open(config));

  Felix felix(*store, *host, OpenNetlink, options);
  DataplaneService service(felix);
  http::MetricsRegistry metrics;
  http::MetricFamily& workloads = metrics.Gauge("felixd_workloads", "Local workload endpoints.");
  http::MetricFamily& routes = metrics.Gauge("felixd_routes", "Routes felixd programs.");
  http::MetricFamily& resyncs = metrics.Gauge("felixd_resyncs_total", "Kernel resyncs since start.");
  http::MetricFamily& repairs =
      metrics.Gauge("felixd_repairs_total", "Drift repaired since start (sysctls).");
  http::MetricFamily& ready = metrics.Gauge("felixd_ready", "1 once the first full sync is done.");

  std::unique_ptr<http::HttpServer> http_server;
  if (listen.port != 0) {
    http::HttpServerOptions ho;
    ho.host = listen.host;
    ho.port = listen.port;
    ho.metrics = &metrics;
    ho.readiness = [&felix] {
      return felix.ready() ? absl::OkStatus()
                           : absl::UnavailableError("first datastore-to-kernel sync not done");
    };
    ASSIGN_OR_RETURN(http_server, http::HttpServer::Start(ho));
  }
  rpc::UnixServerOptions ro;
  ro.socket_path = absl::GetFlag(FLAGS_socket);
  ro.services = {&service};
  ro.service_names = {"calico.dataplane.v1.Dataplane"};
  ASSIGN_OR_RETURN(std::unique_ptr<rpc::UnixServer> server, rpc::UnixServer::Start(ro));
  server->SetServing(false);

  // Start (first sync) retries while the datastore is unreachable; requests meanwhile get
  // UNAVAILABLE ("not ready"), which the CNI plugin reports as try-again-later.
  std::atomic<bool> stop{false};
  std::thread starter([&] {
    while (!stop) {
      absl::Status s = felix.Start();
      if (s.ok()) {
        server->SetServing(true);
        return;
      }
      log::Warn("start_retry", {{"error", ToStd(s.message())}});
      absl::SleepFor(absl::Seconds(1));
    }
  });
  std::thread gauges([&] {
    while (!stop) {
      FelixStatus s = felix.Status();
      workloads.Set(static_cast<double>(s.workloads));
      routes.Set(static_cast<double>(s.routes));
      resyncs.Set(static_cast<double>(s.resyncs));
      repairs.Set(static_cast<double>(s.repairs));
      ready.Set(s.ready ? 1 : 0);
      for (int i = 0; i < 10 && !stop; ++i) absl::SleepFor(absl::Milliseconds(100));
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("signal", {{"signal", strsignal(sig)}});
  stop = true;
  starter.join();
  gauges.join();
  server->Shutdown(absl::Seconds(2));
  felix.Stop();
  return absl::OkStatus();
}

}  // namespace
}  // namespace calico::felixd

int main(int argc, char** argv) {
  return calico::DaemonMain(argc, argv, "felixd",
                            "Calico dataplane daemon: serves calico.dataplane.v1 on a unix socket.\n"
                            "Datastore: DATASTORE_TYPE, ETCD_ENDPOINTS, ETCD_*_FILE, CALICO_DATASTORE_PATH.",
                            calico::felixd::Run);
}
