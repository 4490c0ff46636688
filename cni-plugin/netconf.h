#pragma once
// What one plugin invocation is asked to do: the network config from stdin (upstream Calico's
// fields unchanged, plus where our daemons listen) and the CNI_* environment. Pure: the caller
// reads stdin, the environment, the nodename file and the hostname and hands them in.
// Every error is a CNI error (MakeCniError) whose message names the offending field or variable.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cni-plugin/result.h"

namespace calico::cni {

enum class Command { kAdd, kDel, kCheck, kVersion, kStatus, kGc };
std::string_view CommandName(Command command);

struct IpamConf {
  std::string type;
  // Upstream takes "true"/"false" strings; defaults are v4 on, v6 off.
  bool assign_ipv4 = true;
  bool assign_ipv6 = false;
  std::vector<std::string> ipv4_pools;  // CIDRs or pool names, as upstream
  std::vector<std::string> ipv6_pools;
  std::string subnet;                   // "usePodCidr" or a CIDR (host-local style)
  std::string raw_json;                 // the whole ipam object, for a delegated IPAM plugin
};

struct PolicyConf {
  std::string type;  // "k8s" or empty
  std::string k8s_api_root;
  std::string k8s_auth_token;
};

struct KubernetesConf {
  std::string kubeconfig;
  std::string k8s_api_root;
  std::string node_name;
};

struct ContainerSettings {
  bool allow_ip_forwarding = false;
};

// One entry of GC's "cni.dev/valid-attachments".
struct Attachment {
  std::string container_id;
  std::string ifname;
  bool operator==(const Attachment&) const = default;
};

inline constexpr char kDefaultIpamdSocket[] = "/var/run/calico/ipam.sock";
inline constexpr char kDefaultFelixdSocket[] = "/var/run/calico/dataplane.sock";
inline constexpr char kDefaultNodenameFile[] = "/var/lib/calico/nodename";

struct NetConf {
  std::string cni_version;
  std::string name;
  std::string type;
  IpamConf ipam;
  int mtu = 0;  // 0: felixd detects it from the host's uplink
  std::string log_level;  // lower-cased
  std::string log_file_path;
  std::string datastore_type;
  std::string etcd_endpoints;
  std::string etcd_key_file;
  std::string etcd_cert_file;
  std::string etcd_ca_cert_file;
  std::string nodename;
  std::string nodename_file = kDefaultNodenameFile;
  bool nodename_file_optional = false;
  PolicyConf policy;
  KubernetesConf kubernetes;
  ContainerSettings container_settings;
  std::string ipamd_socket = kDefaultIpamdSocket;
  std::string felixd_socket = kDefaultFelixdSocket;
  // args.cni.labels, the convention for workload labels outside Kubernetes.
  std::map<std::string, std::string> labels;
  std::optional<Result> prev_result;
  std::string runtime_config_json;  // "{}" when absent; capabilities are read by the mains
  std::string args_json;            // "{}" when absent
  std::vector<Attachment> valid_attachments;  // GC only
};

// Parses and validates a single plugin config as the runtime passes it on stdin. Codes: 6 malformed
// JSON, 1 missing/unsupported cniVersion, 7 invalid field. Unknown fields are ignored, as upstream.
absl::StatusOr<NetConf> ParseNetConf(std::string_view json);

// Whether the config's version allows the command (CHECK needs 0.4.0, STATUS and GC need 1.1.0);
// code 1 otherwise, as upstream's skel.
absl::Status CheckCommandVersion(Command command, std::string_view cni_version);

struct CniArgs {
  std::string k8s_pod_namespace;
  std::string k8s_pod_name;
  std::string k8s_pod_infra_container_id;
  std::string k8s_pod_uid;
  bool ignore_unknown = false;
};

// "K=V;K=V" (upstream LoadArgs). Unknown keys are an error (code 4) unless IgnoreUnknown is 1/true.
absl::StatusOr<CniArgs> ParseCniArgs(std::string_view text);

// Checks an interface name as upstream's ValidateInterfaceName: 1-15 bytes, not "." or "..", no
// '/', ':' or whitespace. `var` names the source in the message ("CNI_IFNAME").
absl::Status ValidateIfName(std::string_view name, std::string_view var);

struct Invocation {
  Command command = Command::kVersion;
  std::string container_id;
  std::string netns;
  std::string ifname;
  CniArgs args;
  std::vector<std::string> cni_path;
};

// Reads the CNI_* variables from env (name → value; pass the process environment). Required
// variables per command as in the spec; missing or invalid ones are code 4.
absl::StatusOr<Invocation> ParseInvocation(const std::map<std::string, std::string>& env);

// nodename, else the nodename file's contents (nullopt when it could not be read), else hostname.
// The caller decides whether a missing file is fatal (upstream waits for calico/node unless
// nodename_file_optional); this only chooses.
absl::StatusOr<std::string> ResolveNodename(const NetConf& conf,
                                            const std::optional<std::string>& nodename_file_contents,
                                            std::string_view hostname);

}  // namespace calico::cni
