#include "cni-plugin/plugin.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <iterator>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "calico/dataplane/v1/dataplane.pb.h"
#include "calico/ipam/v1/ipam.pb.h"
#include "cni-plugin/cni_error.h"
#include "cni-plugin/netconf.h"
#include "cni-plugin/result.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "cni-plugin/unary_client.h"

namespace calico::cni {
namespace {

namespace dpb = calico::dataplane::v1;
namespace ipb = calico::ipam::v1;

constexpr absl::Duration kCallTimeout = absl::Seconds(60);
constexpr absl::Duration kStatusTimeout = absl::Seconds(5);

// A daemon that is not listening is the runtime's cue to retry later (code 11), and the message
// says which daemon and where, the first thing an operator checks.
absl::Status DaemonError(const absl::Status& status, const std::string& daemon,
                         const std::string& socket, const std::string& call) {
  if (absl::IsUnavailable(status) && absl::StartsWith(status.message(), "connect ")) {
    return MakeCniError(ErrorCode::kTryAgainLater,
                        absl::StrCat(daemon, " is not reachable at ", socket, " (is it running?)"),
                        ToStd(status.message()));
  }
  return Annotate(status, absl::StrCat(daemon, " ", call));
}

std::string HandleId(const NetConf& conf, const Invocation& inv) {
  return absl::StrCat(conf.name, ".", inv.container_id);
}

// ---- Delegated IPAM (spec: exec the ipam.type plugin with the same config) ----

struct ExecResult {
  std::string out;
  int exit_code = 0;
};

absl::StatusOr<std::string> FindPlugin(const Invocation& inv, const std::string& type) {
  if (type.find('/') != std::string::npos) {
    return MakeCniError(ErrorCode::kInvalidNetworkConfig,
                        absl::StrCat("ipam.type \"", type, "\" must be a plugin name, not a path"));
  }
  for (const std::string& dir : inv.cni_path) {
    std::string path = absl::StrCat(dir, "/", type);
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return MakeCniError(ErrorCode::kInvalidNetworkConfig,
                      absl::StrCat("IPAM plugin \"", type, "\" not found in CNI_PATH ",
                                   absl::StrJoin(inv.cni_path, ":")));
}

absl::StatusOr<ExecResult> Exec(const std::string& path, const std::string& input,
                                std::map<std::string, std::string> env, std::string_view command) {
  env["CNI_COMMAND"] = std::string(command);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    return MakeCniError(ErrorCode::kIoFailure, "pipe failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::string arg0 = path;
  char* argv[] = {arg0.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    return MakeCniError(ErrorCode::kIoFailure, absl::StrCat("exec ", path, ": ", strerror(rc)));
  }
  // Small configs fit the pipe buffer; write then read.
  (void)!write(in[1], input.data(), input.size());
  close(in[1]);
  ExecResult result;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) result.out.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// A delegated plugin's error JSON becomes our error, keeping its code and message.
absl::Status DelegateError(const std::string& type, const ExecResult& r) {
  std::string msg = r.out.empty() ? absl::StrCat("exit code ", r.exit_code) : r.out;
  return MakeCniError(ErrorCode::kInternal, absl::StrCat("IPAM plugin ", type, " failed: ", msg));
}

// ---- The daemons ----

struct Daemons {
  explicit Daemons(const NetConf& conf)
      : ipamd_socket(conf.ipamd_socket), felixd_socket(conf.felixd_socket) {}

  absl::Status Ipam(const std::string& method, const google::protobuf::MessageLite& request,
                    google::protobuf::MessageLite& response, absl::Duration timeout = kCallTimeout) {
    return Call(ipam_client, "ipamd", ipamd_socket, "/calico.ipam.v1.Ipam/", method, request,
                response, timeout);
  }
  absl::Status Dataplane(const std::string& method, const google::protobuf::MessageLite& request,
                         google::protobuf::MessageLite& response,
                         absl::Duration timeout = kCallTimeout) {
    return Call(dp_client, "felixd", felixd_socket, "/calico.dataplane.v1.Dataplane/", method,
                request, response, timeout);
  }
  // Connects to felixd now, so its handshake overlaps the call to ipamd.
  void PreconnectDataplane() {
    if (!dp_client) {
      absl::StatusOr<std::unique_ptr<UnaryClient>> c = UnaryClient::Connect(felixd_socket);
      if (c.ok()) dp_client = std::move(*c);
    }
  }

  std::string ipamd_socket, felixd_socket;
  std::unique_ptr<UnaryClient> ipam_client, dp_client;

 private:
  static absl::Status Call(std::unique_ptr<UnaryClient>& client, const std::string& daemon,
                           const std::string& socket, const std::string& service,
                           const std::string& method, const google::protobuf::MessageLite& request,
                           google::protobuf::MessageLite& response, absl::Duration timeout) {
    if (!client) {
      absl::StatusOr<std::unique_ptr<UnaryClient>> c = UnaryClient::Connect(socket);
      if (!c.ok()) return DaemonError(c.status(), daemon, socket, method);
      client = std::move(*c);
    }
    absl::Status s = client->Call(service + method, request, response, timeout);
    return s.ok() ? s : DaemonError(s, daemon, socket, method);
  }
};

absl::StatusOr<std::vector<IpConfig>> AssignFromIpamd(Daemons& d, const NetConf& conf,
                                                      const Invocation& inv, bool block_prefix) {
  ipb::AutoAssignRequest req;
  req.set_handle_id(HandleId(conf, inv));
  // A repeated ADD (the runtime retrying) gets the addresses this container already holds.
  // calico-ipam's callers need each address's block, which only a fresh assignment reports.
  req.set_return_existing(!block_prefix);
  req.set_num_v4(conf.ipam.assign_ipv4 ? 1 : 0);
  req.set_num_v6(conf.ipam.assign_ipv6 ? 1 : 0);
  for (const std::string& p : conf.ipam.ipv4_pools) req.add_v4_pools(p);
  for (const std::string& p : conf.ipam.ipv6_pools) req.add_v6_pools(p);
  if (!inv.args.k8s_pod_namespace.empty()) {
    (*req.mutable_attributes())["namespace"] = inv.args.k8s_pod_namespace;
    (*req.mutable_attributes())["pod"] = inv.args.k8s_pod_name;
  }
  (*req.mutable_attributes())["containerID"] = inv.container_id;
  if (!conf.nodename.empty()) req.set_node(conf.nodename);
  ipb::AutoAssignResponse resp;
  RETURN_IF_ERROR(d.Ipam("AutoAssign", req, resp));
  std::vector<IpConfig> out;
  for (const auto* list : {&resp.v4(), &resp.v6()}) {
    for (const ipb::AssignedAddress& a : *list) {
      std::optional<net::IpAddress> ip = net::ParseIp(a.ip());
      std::optional<net::Prefix> block = net::ParsePrefix(a.block_cidr());
      if (!ip) return absl::InternalError(absl::StrCat("ipamd returned a bad address ", a.ip()));
      int len = block_prefix && block ? block->len : ip->Bits();
      out.push_back({.address = {*ip, len}, .gateway = std::nullopt, .interface = std::nullopt});
    }
  }
  return out;
}

absl::Status ReleaseFromIpamd(Daemons& d, const NetConf& conf, const Invocation& inv) {
  ipb::ReleaseByHandleRequest req;
  req.set_handle_id(HandleId(conf, inv));
  ipb::ReleaseByHandleResponse resp;
  RETURN_IF_ERROR(d.Ipam("ReleaseByHandle", req, resp));
  if (resp.released_ips_size() > 0) {
    log::Info("released", {{"handle", req.handle_id()},
                           {"ips", absl::StrJoin(resp.released_ips(), ",")}});
  }
  return absl::OkStatus();
}

// ---- calico-ipam ----

absl::StatusOr<std::string> IpamAdd(Daemons& d, const NetConf& conf, const Invocation& inv) {
  // Addresses carry their block's prefix length here, so a main plugin such as bridge puts
  // workloads of one block on one subnet.
  ASSIGN_OR_RETURN(std::vector<IpConfig> ips, AssignFromIpamd(d, conf, inv, true));
  Result result;
  result.ips = std::move(ips);
  absl::StatusOr<std::string> text = FormatResult(result, conf.cni_version);
  if (!text.ok()) (void)ReleaseFromIpamd(d, conf, inv);
  return text;
}

// ---- calico ----

dpb::WorkloadId WorkloadIdOf(const Invocation& inv) {
  dpb::WorkloadId id;
  id.set_namespace_(inv.args.k8s_pod_namespace);
  id.set_pod(inv.args.k8s_pod_name);
  id.set_container_id(inv.container_id);
  id.set_endpoint(inv.ifname);
  return id;
}

struct Addresses {
  std::vector<IpConfig> ips;
  std::function<void()> undo;
};

absl::StatusOr<Addresses> AcquireAddresses(Daemons& d, const NetConf& conf, const Invocation& inv,
                                           const std::string& stdin_text,
                                           const std::map<std::string, std::string>& env) {
  Addresses a;
  d.PreconnectDataplane();
  if (conf.ipam.type == "calico-ipam") {
    ASSIGN_OR_RETURN(a.ips, AssignFromIpamd(d, conf, inv, false));
    a.undo = [&d, &conf, &inv] { (void)ReleaseFromIpamd(d, conf, inv); };
    return a;
  }
  ASSIGN_OR_RETURN(std::string path, FindPlugin(inv, conf.ipam.type));
  ASSIGN_OR_RETURN(ExecResult r, Exec(path, stdin_text, env, "ADD"));
  if (r.exit_code != 0) return DelegateError(conf.ipam.type, r);
  a.undo = [path, stdin_text, env] { (void)Exec(path, stdin_text, env, "DEL"); };
  absl::StatusOr<Result> parsed = ParseResult(r.out, conf.cni_version);
  if (!parsed.ok()) {
    a.undo();
    return Annotate(parsed.status(), absl::StrCat("IPAM plugin ", conf.ipam.type, " result"));
  }
  for (IpConfig ip : parsed->ips) {
    ip.address.len = ip.address.addr.Bits();  // routed model: every workload address is a host route
    ip.gateway.reset();
    ip.interface.reset();
    a.ips.push_back(ip);
  }
  return a;
}

absl::StatusOr<std::string> CalicoAdd(Daemons& d, const NetConf& conf, const Invocation& inv,
                                      const std::string& stdin_text,
                                      const std::map<std::string, std::string>& env) {
  absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(Addresses addresses, AcquireAddresses(d, conf, inv, stdin_text, env));
  absl::Time assigned = absl::Now();
  if (addresses.ips.empty()) {
    addresses.undo();
    return MakeCniError(ErrorCode::kInvalidNetworkConfig, "IPAM assigned no address");
  }
  dpb::SetupWorkloadRequest req;
  *req.mutable_id() = WorkloadIdOf(inv);
  req.set_netns(inv.netns);
  for (const IpConfig& ip : addresses.ips) req.add_ips(net::FormatCidr(ip.address));
  req.set_mtu(conf.mtu);
  for (const auto& [k, v] : conf.labels) (*req.mutable_labels())[k] = v;
  req.set_network_name(conf.name);
  dpb::SetupWorkloadResponse resp;
  absl::Status st = d.Dataplane("SetupWorkload", req, resp);
  if (!st.ok()) {
    // felixd rolled back its own part; what is left is ours: the addresses.
    addresses.undo();
    return st;
  }
  log::Info("added", {{"container", inv.container_id},
                      {"endpoint", resp.endpoint_name()},
                      {"ipam_ms", absl::StrCat(absl::ToDoubleMilliseconds(assigned - start))},
                      {"dataplane_ms", absl::StrCat(absl::ToDoubleMilliseconds(absl::Now() - assigned))}});
  Result result;
  result.interfaces.push_back({.name = resp.host_interface(), .mac = "ee:ee:ee:ee:ee:ee", .sandbox = ""});
  result.interfaces.push_back({.name = inv.ifname, .mac = resp.container_mac(), .sandbox = inv.netns});
  for (IpConfig ip : addresses.ips) {
    ip.interface = 1;
    result.ips.push_back(ip);
  }
  absl::StatusOr<std::string> text = FormatResult(result, conf.cni_version);
  if (!text.ok()) {
    dpb::TeardownWorkloadRequest del;
    *del.mutable_id() = WorkloadIdOf(inv);
    dpb::TeardownWorkloadResponse ignored;
    (void)d.Dataplane("TeardownWorkload", del, ignored);
    addresses.undo();
  }
  return text;
}

absl::Status CalicoDel(Daemons& d, const NetConf& conf, const Invocation& inv,
                       const std::string& stdin_text, const std::map<std::string, std::string>& env) {
  dpb::TeardownWorkloadRequest req;
  *req.mutable_id() = WorkloadIdOf(inv);
  req.set_netns(inv.netns);
  dpb::TeardownWorkloadResponse resp;
  RETURN_IF_ERROR(d.Dataplane("TeardownWorkload", req, resp));
  if (!resp.skipped_reason().empty()) log::Info("teardown_skipped", {{"reason", resp.skipped_reason()}});
  // The handle is per container, so releasing it never frees a newer sandbox's address.
  if (conf.ipam.type == "calico-ipam") return ReleaseFromIpamd(d, conf, inv);
  ASSIGN_OR_RETURN(std::string path, FindPlugin(inv, conf.ipam.type));
  ASSIGN_OR_RETURN(ExecResult r, Exec(path, stdin_text, env, "DEL"));
  if (r.exit_code != 0) return DelegateError(conf.ipam.type, r);
  return absl::OkStatus();
}

absl::Status CalicoCheck(Daemons& d, const NetConf& conf, const Invocation& inv) {
  dpb::CheckWorkloadRequest req;
  *req.mutable_id() = WorkloadIdOf(inv);
  req.set_netns(inv.netns);
  if (conf.prev_result) {
    for (const IpConfig& ip : conf.prev_result->ips) {
      req.add_ips(net::FormatCidr({ip.address.addr, ip.address.addr.Bits()}));
    }
  }
  dpb::CheckWorkloadResponse resp;
  RETURN_IF_ERROR(d.Dataplane("CheckWorkload", req, resp));
  return absl::OkStatus();
}

absl::Status IpamCheck(Daemons& d, const NetConf& conf, const Invocation& inv) {
  ipb::GetHandleRequest req;
  req.set_handle_id(HandleId(conf, inv));
  ipb::GetHandleResponse resp;
  RETURN_IF_ERROR(d.Ipam("GetHandle", req, resp));
  return absl::OkStatus();
}

absl::Status Status(Daemons& d, Plugin plugin) {
  if (plugin == Plugin::kCalico) {
    dpb::GetStatusRequest req;
    dpb::GetStatusResponse resp;
    absl::Status st = d.Dataplane("GetStatus", req, resp, kStatusTimeout);
    if (!st.ok() || !resp.ready()) {
      return MakeCniError(ErrorCode::kPluginNotAvailable,
                          absl::StrCat("felixd at ", d.felixd_socket, " is not ready"), ToStd(st.message()));
    }
  }
  ipb::ListBlocksRequest req;
  req.set_family(4);
  ipb::ListBlocksResponse resp;
  absl::Status st = d.Ipam("ListBlocks", req, resp, kStatusTimeout);
  if (!st.ok()) {
    return MakeCniError(ErrorCode::kPluginNotAvailable,
                        absl::StrCat("ipamd at ", d.ipamd_socket, " is not reachable"), ToStd(st.message()));
  }
  return absl::OkStatus();
}

std::string VersionOf(const std::string& stdin_text) {
  size_t at = stdin_text.find("\"cniVersion\"");
  if (at == std::string::npos) return kLatestVersion;
  size_t q1 = stdin_text.find('"', stdin_text.find(':', at) + 1);
  size_t q2 = q1 == std::string::npos ? q1 : stdin_text.find('"', q1 + 1);
  if (q2 == std::string::npos) return kLatestVersion;
  std::string v = stdin_text.substr(q1 + 1, q2 - q1 - 1);
  return IsSupportedVersion(v) ? v : kLatestVersion;
}

absl::StatusOr<std::string> Dispatch(Plugin plugin, const std::string& stdin_text,
                                     const std::map<std::string, std::string>& env) {
  ASSIGN_OR_RETURN(Invocation inv, ParseInvocation(env));
  if (inv.command == Command::kVersion) return FormatVersionInfo(VersionOf(stdin_text));
  ASSIGN_OR_RETURN(NetConf conf, ParseNetConf(stdin_text));
  RETURN_IF_ERROR(CheckCommandVersion(inv.command, conf.cni_version));
  if (!conf.log_file_path.empty()) log::SetOutputFile(conf.log_file_path);
  log::Level level;
  if (!conf.log_level.empty() && log::ParseLevel(conf.log_level, &level)) log::SetLevel(level);
  if (plugin == Plugin::kCalico && conf.ipam.type.empty()) {
    return MakeCniError(ErrorCode::kInvalidNetworkConfig, "ipam.type is required");
  }
  // Never destroyed: the process _exits right after printing, and tearing gRPC channels down
  // costs a millisecond for nothing.
  Daemons& d = *new Daemons(conf);
  log::Debug("invoked", {{"command", std::string(CommandName(inv.command))},
                         {"container", inv.container_id}, {"netns", inv.netns}});
  switch (inv.command) {
    case Command::kAdd:
      return plugin == Plugin::kCalico ? CalicoAdd(d, conf, inv, stdin_text, env)
                                       : IpamAdd(d, conf, inv);
    case Command::kDel:
      RETURN_IF_ERROR(plugin == Plugin::kCalico ? CalicoDel(d, conf, inv, stdin_text, env)
                                                : ReleaseFromIpamd(d, conf, inv));
      return std::string();
    case Command::kCheck:
      RETURN_IF_ERROR(plugin == Plugin::kCalico ? CalicoCheck(d, conf, inv) : IpamCheck(d, conf, inv));
      return std::string();
    case Command::kStatus:
      RETURN_IF_ERROR(Status(d, plugin));
      return std::string();
    case Command::kGc:
      // Leaked addresses are collected by ipamd's leak collector against the datastore's
      // endpoints; a per-runtime GC has nothing left to do.
      return std::string();
    case Command::kVersion:
      break;
  }
  return std::string();
}

}  // namespace

Outcome RunPlugin(Plugin plugin, const std::string& stdin_text,
                  const std::map<std::string, std::string>& env) {
  absl::StatusOr<std::string> out = Dispatch(plugin, stdin_text, env);
  if (out.ok()) return {*out, 0};
  CniError error = ToCniError(out.status());
  log::Error("failed", {{"code", std::to_string(static_cast<int>(error.code))}, {"msg", error.msg}});
  return {FormatCniError(error, VersionOf(stdin_text)), 1};
}

int PluginMain(Plugin plugin, char** envp) {
  log::SetComponent(plugin == Plugin::kCalico ? "calico" : "calico-ipam");
  log::SetLevel(log::Level::kWarn);
  std::map<std::string, std::string> env;
  for (char** e = envp; *e != nullptr; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  Outcome o = RunPlugin(plugin, input, env);
  std::cout << o.stdout_text;
  std::cout.flush();
  std::cerr.flush();
  // Nothing is left to clean up in a one-shot process; skipping gRPC's orderly shutdown (joining
  // its threads, destroying channels) saves the runtime a millisecond per call.
  _exit(o.exit_code);
}

}  // namespace calico::cni
