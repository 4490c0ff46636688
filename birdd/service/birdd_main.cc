// birdd: the node's BGP daemon. Peers as the datastore says (node-to-node mesh, BGPPeer, route
// reflection), advertises the routes felixd reports (local blocks, borrowed addresses) that lie
// in exportable IP pools, and installs what it learns into the kernel as `proto bird`. Serves
// calico.bgp.v1 and grpc.health.v1 on a unix socket, /liveness /readiness /metrics on localhost.
// Datastore from the environment (DATASTORE_TYPE, ETCD_ENDPOINTS, CALICO_DATASTORE_PATH, ...).
//
// Exit: 0 after SIGTERM/SIGINT (sessions closed without NOTIFICATION, so peers keep our routes
// under graceful restart; kernel routes left for the next run to adopt); 1 with one
// `level=error event=startup_failed` line when it cannot start.

#include <signal.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "birdd/service/bgp_service.h"
#include "birdd/service/birdd.h"
#include "common/base/daemon_main.h"
#include "common/base/node_name.h"
#include "common/base/status_macros.h"
#include "common/datastore/config.h"
#include "common/http/http_server.h"
#include "common/http/metrics.h"
#include "common/kernel/libnl_netlink.h"
#include "common/log/log.h"
#include "common/rpc/unix_server.h"

ABSL_FLAG(std::string, socket, "/var/run/calico/bgp.sock",
          "Unix socket for the calico.bgp.v1 API (created 0600).");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:9098",
          "Loopback host:port for /liveness, /readiness and /metrics; port 0 disables HTTP.");
ABSL_FLAG(std::string, node, "", "This node's name (default: $NODENAME, else the hostname).");
ABSL_FLAG(std::string, felixd_socket, "/var/run/calico/dataplane.sock",
          "felixd's socket: the routes this node advertises. Empty: advertise nothing.");
ABSL_FLAG(std::string, secrets_dir, "/etc/calico/bgp-secrets",
          "BGP passwords (secretKeyRef) as mounted Secrets: <dir>/<secret name>/<key>.");
ABSL_FLAG(bool, program_kernel, true, "Install learned routes into the kernel (proto bird).");
ABSL_FLAG(std::string, hold_time, "90s", "Proposed BGP hold time (0 or >= 3s).");
ABSL_FLAG(std::string, connect_retry, "5s", "Wait between connection attempts to a peer.");
ABSL_FLAG(std::string, restart_wait, "120s",
          "After a restart: longest wait for peers' End-of-RIB before stale kernel routes go.");
ABSL_FLAG(std::string, origin_wait, "10s",
          "Longest wait for felixd's first route snapshot before sessions start anyway.");
ABSL_FLAG(std::string, resync_interval, "30s", "How often the kernel's routes are re-read and repaired.");
ABSL_FLAG(std::string, log_level, "info", "trace|debug|info|warn|error");

namespace calico::birdd {
namespace {

absl::Status ParseDurationFlag(const char* name, const std::string& text, absl::Duration min, absl::Duration* out) {
  if (!absl::ParseDuration(text, out) || *out < min) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, "=\"", text, "\": expected a duration of at least ", absl::FormatDuration(min)));
  }
  return absl::OkStatus();
}

absl::Status Run(const sigset_t& signals) {
  log::Level level;
  if (!log::ParseLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_level=\"", absl::GetFlag(FLAGS_log_level), "\": unknown level"));
  }
  log::SetLevel(level);
  BirddOptions options;
  ASSIGN_OR_RETURN(options.node, ResolveNodeName(absl::GetFlag(FLAGS_node)));
  options.felixd_socket = absl::GetFlag(FLAGS_felixd_socket);
  options.secrets_dir = absl::GetFlag(FLAGS_secrets_dir);
  options.program_kernel = absl::GetFlag(FLAGS_program_kernel);
  RETURN_IF_ERROR(ParseDurationFlag("hold_time", absl::GetFlag(FLAGS_hold_time), absl::ZeroDuration(),
                                    &options.timers.hold_time));
  if (options.timers.hold_time > absl::ZeroDuration() && options.timers.hold_time < absl::Seconds(3)) {
    return absl::InvalidArgumentError("--hold_time: must be 0 or at least 3s (RFC 4271 4.2)");
  }
  RETURN_IF_ERROR(ParseDurationFlag("connect_retry", absl::GetFlag(FLAGS_connect_retry), absl::Milliseconds(100),
                                    &options.timers.connect_retry_time));
  RETURN_IF_ERROR(ParseDurationFlag("restart_wait", absl::GetFlag(FLAGS_restart_wait), absl::ZeroDuration(),
                                    &options.restart_wait));
  RETURN_IF_ERROR(ParseDurationFlag("origin_wait", absl::GetFlag(FLAGS_origin_wait), absl::ZeroDuration(),
                                    &options.origin_wait));
  RETURN_IF_ERROR(ParseDurationFlag("resync_interval", absl::GetFlag(FLAGS_resync_interval), absl::Seconds(1),
                                    &options.resync_interval));
  ASSIGN_OR_RETURN(http::ListenAddress listen, http::ParseListenAddress(absl::GetFlag(FLAGS_http_listen)));

  ASSIGN_OR_RETURN(std::unique_ptr<kernel::LibnlNetlink> netlink, kernel::LibnlNetlink::Open());
  ASSIGN_OR_RETURN(datastore::Config config, datastore::ConfigFromEnvironment());
  ASSIGN_OR_RETURN(std::unique_ptr<datastore::Datastore> store, datastore::Open(config));

  Birdd birdd(*store, *netlink, options);
  RETURN_IF_ERROR(birdd.Start());
  BgpService service(birdd);

  http::MetricsRegistry metrics;
  http::MetricFamily& state = metrics.Gauge(
      "birdd_peer_established", "1 when the BGP session is Established.", {"peer", "address", "type"});
  http::MetricFamily& received =
      metrics.Gauge("birdd_peer_prefixes_received", "Prefix announcements received in this session.", {"peer"});
  http::MetricFamily& advertised =
      metrics.Gauge("birdd_peer_prefixes_advertised", "Prefixes currently advertised to the peer.", {"peer"});
  http::MetricFamily& updates_in =
      metrics.Gauge("birdd_peer_updates_received_total", "UPDATE messages received.", {"peer"});
  http::MetricFamily& updates_out = metrics.Gauge("birdd_peer_updates_sent_total", "UPDATE messages sent.", {"peer"});
  http::MetricFamily& flaps =
      metrics.Gauge("birdd_peer_flaps_total", "Times the session left Established.", {"peer"});
  http::MetricFamily& ready = metrics.Gauge("birdd_ready", "1 once the plan is applied and sessions started.");

  std::unique_ptr<http::HttpServer> http_server;
  if (listen.port != 0) {
    http::HttpServerOptions ho;
    ho.host = listen.host;
    ho.port = listen.port;
    ho.metrics = &metrics;
    // An external peer being down is the network's problem, not this node's: readiness only
    // needs the plan applied; it lists the peers that are down.
    ho.readiness = [&birdd] {
      return birdd.ready() ? absl::OkStatus() : absl::UnavailableError("BGP configuration not read yet");
    };
    ho.readiness_detail = [&birdd] {
      std::vector<std::string> down = birdd.DownPeers();
      return down.empty() ? std::string() : absl::StrCat(absl::StrJoin(down, "\n"), "\n");
    };
    ASSIGN_OR_RETURN(http_server, http::HttpServer::Start(ho));
  }
  rpc::UnixServerOptions ro;
  ro.socket_path = absl::GetFlag(FLAGS_socket);
  ro.services = {&service};
  ro.service_names = {"calico.bgp.v1.Bgp"};
  ASSIGN_OR_RETURN(std::unique_ptr<rpc::UnixServer> server, rpc::UnixServer::Start(ro));

  std::atomic<bool> stop{false};
  std::thread gauges([&] {
    while (!stop) {
      std::vector<PeerStatus> peers = birdd.Peers();
      for (http::MetricFamily* f : {&state, &received, &advertised, &updates_in, &updates_out, &flaps}) f->Clear();
      for (const PeerStatus& p : peers) {
        const std::string& name = p.peer.name;
        state.Set({name, net::FormatIp(p.peer.address), std::string(config::PeerTypeName(p.peer.type))},
                  p.session.state == fsm::State::kEstablished ? 1 : 0);
        received.Set({name}, static_cast<double>(p.session.received));
        advertised.Set({name}, static_cast<double>(p.session.advertised));
        updates_in.Set({name}, static_cast<double>(p.session.updates_received));
        updates_out.Set({name}, static_cast<double>(p.session.updates_sent));
        flaps.Set({name}, static_cast<double>(p.session.flaps));
      }
      ready.Set(birdd.ready() ? 1 : 0);
      server->SetServing(birdd.ready());
      for (int i = 0; i < 10 && !stop; ++i) absl::SleepFor(absl::Milliseconds(100));
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("signal", {{"signal", strsignal(sig)}});
  stop = true;
  gauges.join();
  server->Shutdown(absl::Seconds(2));
  birdd.Stop();
  return absl::OkStatus();
}

}  // namespace
}  // namespace calico::birdd

int main(int argc, char** argv) {
  return calico::DaemonMain(argc, argv, "birdd",
                            "Calico BGP daemon: serves calico.bgp.v1 on a unix socket.\n"
                            "Datastore: DATASTORE_TYPE, ETCD_ENDPOINTS, ETCD_*_FILE, CALICO_DATASTORE_PATH.",
                            calico::birdd::Run);
}
