// ipamd: Calico IPAM as a daemon — the one writer of /calico/ipam/v2/. Serves
// calico.ipam.v1.Ipam and grpc.health.v1 on a unix socket, /liveness /readiness /metrics on
// localhost, and collects leaked addresses. Datastore from the environment (DATASTORE_TYPE,
// ETCD_ENDPOINTS, CALICO_DATASTORE_PATH, ...), default pools from CALICO_IPV4POOL_* and
// CALICO_IPV6POOL_* (NO_DEFAULT_POOLS=true skips them).
//
// Exit: 0 after SIGTERM/SIGINT (socket removed); 1 with one `level=error event=startup_failed`
// line when it cannot start.

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/base/daemon_main.h"
#include "common/base/node_name.h"
#include "common/base/status_macros.h"
#include "common/datastore/config.h"
#include "common/log/log.h"
#include "common/resources/client/client.h"
#include "ipamd/allocator/check_load.h"
#include "ipamd/service/daemon.h"
#include "ipamd/service/default_pools.h"

ABSL_FLAG(std::string, socket, "/var/run/calico/ipam.sock",
          "Unix socket for the calico.ipam.v1 API (created 0600; its directory 0700 if missing).");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:9097",
          "Loopback host:port for /liveness, /readiness and /metrics; port 0 disables HTTP.");
ABSL_FLAG(std::string, node, "", "This node's name (default: $NODENAME, else the hostname).");
ABSL_FLAG(std::string, leak_grace, "",
          "How long an allocated address must be unused before it is released, e.g. 15m "
          "(default: $IPAMD_LEAK_GRACE, else 15m).");
ABSL_FLAG(std::string, leak_interval, "30s", "How often leak collection and the pool gauges run.");
ABSL_FLAG(bool, collect_leaks, true, "Release leaked addresses (see --leak_grace).");
ABSL_FLAG(std::string, log_level, "info", "trace|debug|info|warn|error");

namespace calico::ipamd {
namespace {

absl::StatusOr<absl::Duration> ParseDurationFlag(const char* name, const std::string& text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, "=\"", text, "\": expected a duration like 30s, 15m or 1h"));
  }
  return d;
}

// A datastore that is briefly unreachable at boot (etcd still electing) is not a reason to
// crash-loop; anything else is.
absl::Status CreateDefaultPools(datastore::Datastore& store, const service::DefaultPools& pools) {
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    absl::StatusOr<std::vector<std::string>> created = service::EnsureDefaultPools(store, pools);
    if (created.ok()) return absl::OkStatus();
    if (!absl::IsUnavailable(created.status()) || absl::Now() > deadline) return created.status();
    log::Warn("default_pools_retry", {{"error", created.status().ToString()}});
    absl::SleepFor(absl::Seconds(1));
  }
}

absl::Status Run(const sigset_t& signals) {
  log::Level level;
  if (!log::ParseLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_level=\"", absl::GetFlag(FLAGS_log_level), "\": unknown level"));
  }
  log::SetLevel(level);

  service::DaemonOptions options;
  ASSIGN_OR_RETURN(options.node, ResolveNodeName(absl::GetFlag(FLAGS_node)));
  options.socket_path = absl::GetFlag(FLAGS_socket);
  ASSIGN_OR_RETURN(http::ListenAddress listen,
                   http::ParseListenAddress(absl::GetFlag(FLAGS_http_listen)));
  if (listen.port != 0) options.http = listen;
  std::string grace = absl::GetFlag(FLAGS_leak_grace);
  if (grace.empty()) {
    const char* env = std::getenv("IPAMD_LEAK_GRACE");
    grace = env != nullptr && *env ? env : "15m";
  }
  ASSIGN_OR_RETURN(options.leak_grace, ParseDurationFlag("leak_grace", grace));
  ASSIGN_OR_RETURN(options.loop_interval,
                   ParseDurationFlag("leak_interval", absl::GetFlag(FLAGS_leak_interval)));
  if (options.loop_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--leak_interval must be positive");
  }
  options.collect_leaks = absl::GetFlag(FLAGS_collect_leaks);

  ASSIGN_OR_RETURN(service::DefaultPools pools, service::DefaultPoolsFromEnvironment(
                                                    [](const char* n) { return std::getenv(n); }));
  ASSIGN_OR_RETURN(datastore::Config config, datastore::ConfigFromEnvironment());
  ASSIGN_OR_RETURN(std::unique_ptr<datastore::Datastore> store, datastore::Open(config));
  RETURN_IF_ERROR(Annotate(CreateDefaultPools(*store, pools), "creating default pools"));

  resources::Client in_use_client(*store);
  service::InUseLoader load_in_use = [&in_use_client] { return LoadInUse(in_use_client); };
  ASSIGN_OR_RETURN(std::unique_ptr<service::Daemon> daemon,
                   service::Daemon::Start(*store, options, load_in_use));

  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("signal", {{"signal", strsignal(sig)}});
  daemon->Stop(absl::Seconds(5));
  return absl::OkStatus();
}

}  // namespace
}  // namespace calico::ipamd

int main(int argc, char** argv) {
  return calico::DaemonMain(argc, argv, "ipamd",
                            "Calico IPAM daemon: serves calico.ipam.v1 on a unix socket.\n"
                            "Datastore: DATASTORE_TYPE, ETCD_ENDPOINTS, ETCD_*_FILE, CALICO_DATASTORE_PATH.\n"
                            "Default pools: CALICO_IPV4POOL_{CIDR,BLOCK_SIZE,IPIP,VXLAN,NAT_OUTGOING,NODE_SELECTOR},\n"
                            "CALICO_IPV6POOL_{CIDR,BLOCK_SIZE,VXLAN,NAT_OUTGOING,NODE_SELECTOR}, NO_DEFAULT_POOLS.",
                            calico::ipamd::Run);
}
