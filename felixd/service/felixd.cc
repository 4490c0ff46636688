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
#include "felixd/nft/mnl_nftables.h"
#include "felixd/service/felix.h"
#include "felixd/service/node_registration.h"
#include "felixd/service/policy_manager.h"

ABSL_FLAG(std::string, socket, "/var/run/calico/dataplane.sock",
          "Unix socket for the calico.dataplane.v1 API (created 0600).");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:9099",
          "Loopback host:port for /liveness, /readiness and /metrics; port 0 disables HTTP.");
ABSL_FLAG(std::string, node, "", "This node's name (default: $NODENAME, else the hostname).");
ABSL_FLAG(std::string, ip, "autodetect",
          "This node's IPv4 address with prefix length for its Node (spec.bgp.ipv4Address), "
          "\"autodetect\" (only when the Node has none) or \"none\" (upstream's IP).");
ABSL_FLAG(std::string, ip6, "none", "As --ip for IPv6 (upstream's IP6).");
ABSL_FLAG(std::string, ip_autodetection_method, "default-route",
          "default-route, first-found, interface=REGEX or cidr=CIDR (upstream's "
          "IP_AUTODETECTION_METHOD).");
ABSL_FLAG(bool, register_node, true,
          "Create this node's Node resource when missing and fill its addresses.");
ABSL_FLAG(int, route_protocol, calico::felixd::kDefaultRouteProtocol,
          "rtnetlink protocol number that marks felixd's routes (1-255, not 12: BIRD's).");
ABSL_FLAG(int, mtu, 0, "Workload MTU; 0: the MTU of the host's default-route device.");
ABSL_FLAG(std::string, resync_interval, "10s", "How often the kernel is re-read and repaired.");
ABSL_FLAG(std::string, datastore_relist_interval, "5m",
          "How often the datastore is re-listed without a watch event asking for it (a safety "
          "net; the watch keeps felixd current).");
ABSL_FLAG(bool, set_forwarding, true,
          "Set net.ipv4.ip_forward and net.ipv6.conf.all.forwarding to 1 at start.");
ABSL_FLAG(bool, policy, true,
          "Program network policy into nftables table inet calico (NAT outgoing included).");
ABSL_FLAG(std::string, endpoint_to_host_action, "Drop",
          "Workload traffic to the host itself, after the workload's egress policy: Drop, "
          "Accept, or Return (leave it to the host's own rules). Upstream's "
          "DefaultEndpointToHostAction.");
ABSL_FLAG(std::string, policy_dispatch, "linkgroup",
          "How table inet calico finds a workload's policy: linkgroup (its host veth carries a "
          "link group naming its policy combination: a pod joining one costs no jump-graph "
          "validation) or interface (one verdict-map element per interface).");
ABSL_FLAG(std::string, policy_egress_hook, "prerouting",
          "Where workloads' egress policy runs: prerouting (one base chain for traffic to the "
          "host and through it: the kernel's validation of a chain change walks the egress "
          "groups once) or forward (forward and input both: walked twice). Same verdicts.");
ABSL_FLAG(std::string, policy_setup_timeout, "2s",
          "How long a workload setup (CNI ADD) waits for its policy to be in the kernel before "
          "returning anyway (with a warning); 0s: do not wait.");
ABSL_FLAG(std::string, policy_refresh_interval, "10s",
          "How often table inet calico is read back and drift repaired.");
ABSL_FLAG(std::string, failsafe_inbound_host_ports,
          calico::felixd::policy::FormatFailsafePorts(calico::felixd::policy::DefaultFailsafe().inbound),
          "Ports always open into the host through a host endpoint, whatever the policy: "
          "proto:port,... (tcp, udp, sctp; no proto: tcp), or none. Upstream's "
          "FailsafeInboundHostPorts and its default.");
ABSL_FLAG(std::string, failsafe_outbound_host_ports,
          calico::felixd::policy::FormatFailsafePorts(calico::felixd::policy::DefaultFailsafe().outbound),
          "Ports always open out of the host through a host endpoint (upstream's "
          "FailsafeOutboundHostPorts and its default); same syntax.");
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
  if (!absl::ParseDuration(absl::GetFlag(FLAGS_datastore_relist_interval), &options.relist_interval) ||
      options.relist_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--datastore_relist_interval=\"",
                                                   absl::GetFlag(FLAGS_datastore_relist_interval),
                                                   "\": expected a positive duration, e.g. 5m"));
  }
  if (!absl::ParseDuration(absl::GetFlag(FLAGS_resync_interval), &options.resync_interval) ||
      options.resync_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--resync_interval=\"", absl::GetFlag(FLAGS_resync_interval), "\": expected e.g. 10s"));
  }
  PolicyManagerOptions policy_options;
  policy_options.node = options.node;
  const std::string to_host = absl::GetFlag(FLAGS_endpoint_to_host_action);
  if (to_host == "Drop" || to_host == "DROP") {
    policy_options.layout.endpoint_to_host = nft::EndpointToHost::kDrop;
  } else if (to_host == "Accept" || to_host == "ACCEPT") {
    policy_options.layout.endpoint_to_host = nft::EndpointToHost::kAccept;
  } else if (to_host == "Return" || to_host == "RETURN") {
    policy_options.layout.endpoint_to_host = nft::EndpointToHost::kReturn;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--endpoint_to_host_action=\"", to_host, "\": expected Drop, Accept or Return"));
  }
  const std::string dispatch = absl::GetFlag(FLAGS_policy_dispatch);
  if (dispatch == "linkgroup") {
    policy_options.layout.dispatch = nft::Dispatch::kByLinkGroup;
  } else if (dispatch == "interface") {
    policy_options.layout.dispatch = nft::Dispatch::kByInterface;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--policy_dispatch=\"", dispatch, "\": expected linkgroup or interface"));
  }
  const std::string egress_hook = absl::GetFlag(FLAGS_policy_egress_hook);
  if (egress_hook == "prerouting") {
    policy_options.layout.egress = nft::EgressHook::kPrerouting;
  } else if (egress_hook == "forward") {
    policy_options.layout.egress = nft::EgressHook::kForwardAndInput;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--policy_egress_hook=\"", egress_hook, "\": expected prerouting or forward"));
  }
  if (!absl::ParseDuration(absl::GetFlag(FLAGS_policy_refresh_interval), &policy_options.refresh_interval) ||
      policy_options.refresh_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--policy_refresh_interval=\"", absl::GetFlag(FLAGS_policy_refresh_interval),
        "\": expected e.g. 10s"));
  }
  for (bool in : {true, false}) {
    const std::string text =
        absl::GetFlag(in ? FLAGS_failsafe_inbound_host_ports : FLAGS_failsafe_outbound_host_ports);
    absl::StatusOr<std::vector<policy::FailsafePort>> ports = policy::ParseFailsafePorts(text);
    if (!ports.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--failsafe_", in ? "inbound" : "outbound",
                                                     "_host_ports: ", ToStd(ports.status().message())));
    }
    (in ? policy_options.failsafe.inbound : policy_options.failsafe.outbound) = *std::move(ports);
  }
  if (!absl::ParseDuration(absl::GetFlag(FLAGS_policy_setup_timeout), &options.policy_setup_timeout) ||
      options.policy_setup_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--policy_setup_timeout=\"", absl::GetFlag(FLAGS_policy_setup_timeout), "\": expected e.g. 2s"));
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

  std::unique_ptr<nft::MnlNftables> nft;
  std::unique_ptr<kernel::Netlink> policy_links;  // the policy thread's own socket
  std::unique_ptr<PolicyManager> policy;
  if (absl::GetFlag(FLAGS_policy)) {
    ASSIGN_OR_RETURN(nft, nft::MnlNftables::Open());
    ASSIGN_OR_RETURN(policy_links, OpenNetlink({}));
    policy = std::make_unique<PolicyManager>(*store, *nft, policy_options, policy_links.get());
    PolicyManager* p = policy.get();
    options.wait_policy = [p](datastore::Revision rev, absl::Duration timeout) {
      return p->WaitProgrammed(rev, timeout);
    };
  }
  const bool register_node = absl::GetFlag(FLAGS_register_node);
  for (const auto& [flag, value, family] : {std::tuple{"--ip", absl::GetFlag(FLAGS_ip), 4},
                                            std::tuple{"--ip6", absl::GetFlag(FLAGS_ip6), 6}}) {
    std::optional<net::Prefix> p = net::ParsePrefix(value);
    if (value != "autodetect" && value != "none" && (!p || p->addr.family != family)) {
      return absl::InvalidArgumentError(absl::StrCat(flag, "=", value, ": expected autodetect, none or an IPv",
                                                     family, " address with its prefix length"));
    }
  }
  NodeRegistration registration{.node = options.node,
                                .ip = absl::GetFlag(FLAGS_ip),
                                .ip6 = absl::GetFlag(FLAGS_ip6),
                                .method = absl::GetFlag(FLAGS_ip_autodetection_method)};
  Felix felix(*store, *host, OpenNetlink, options);
  DataplaneService service(felix, policy.get());
  http::MetricsRegistry metrics;
  http::MetricFamily& workloads = metrics.Gauge("felixd_workloads", "Local workload endpoints.");
  http::MetricFamily& routes = metrics.Gauge("felixd_routes", "Routes felixd programs.");
  http::MetricFamily& resyncs = metrics.Gauge("felixd_resyncs_total", "Kernel resyncs since start.");
  http::MetricFamily& repairs =
      metrics.Gauge("felixd_repairs_total", "Drift repaired since start (sysctls).");
  http::MetricFamily& ready = metrics.Gauge("felixd_ready", "1 once the first full sync is done.");
  http::MetricFamily& policy_tx = metrics.Gauge(
      "felixd_policy_transactions_total", "nftables transactions committed for policy.");
  http::MetricFamily& policy_failures = metrics.Gauge(
      "felixd_policy_failures_total", "nftables transactions that failed (retried by the refresh).");
  http::MetricFamily& policy_repairs = metrics.Gauge(
      "felixd_policy_repairs_total", "Refreshes that found table inet calico differing and repaired it.");
  http::MetricFamily& policy_chains = metrics.Gauge("felixd_policy_chains", "Chains in table inet calico.");

  std::unique_ptr<http::HttpServer> http_server;
  if (listen.port != 0) {
    http::HttpServerOptions ho;
    ho.host = listen.host;
    ho.port = listen.port;
    ho.metrics = &metrics;
    ho.readiness = [&felix, &policy] {
      if (!felix.ready()) return absl::UnavailableError("first datastore-to-kernel sync not done");
      if (policy != nullptr && !policy->Status().ready) {
        return absl::UnavailableError("policy not programmed yet");
      }
      return absl::OkStatus();
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
    bool felix_started = false;
    while (!stop) {
      absl::Status s = absl::OkStatus();
      if (!felix_started && register_node) {
        // Before the first sync: VXLAN needs this node's address from its Node.
        absl::StatusOr<RegistrationResult> r = RegisterNode(*store, *host, registration);
        if (!r.ok()) s = Annotate(r.status(), "registering the Node");
      }
      if (s.ok()) s = felix_started ? absl::OkStatus() : felix.Start();
      felix_started = s.ok();
      // Policy before serving: a pod set up now finds its table in place (unknown cali*
      // interfaces are dropped until their endpoint is programmed, never left open).
      if (s.ok() && policy != nullptr) s = policy->Start();
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
      if (policy != nullptr) {
        PolicyStatus ps = policy->Status();
        policy_tx.Set(static_cast<double>(ps.transactions));
        policy_failures.Set(static_cast<double>(ps.failures));
        policy_repairs.Set(static_cast<double>(ps.repairs));
        policy_chains.Set(static_cast<double>(ps.chains));
      }
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
  if (policy != nullptr) policy->Stop();  // the table stays: a restart adopts it
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
