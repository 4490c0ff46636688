#include "cni-plugin/netconf.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cni-plugin/cni_error.h"
#include "common/base/status_macros.h"

namespace calico::cni {
namespace {

using json = nlohmann::json;

absl::Status ConfigError(std::string_view field, std::string_view problem) {
  return MakeCniError(ErrorCode::kInvalidNetworkConfig,
                      absl::StrCat(ToAbsl(field), ": ", ToAbsl(problem)));
}

absl::Status EnvError(std::string_view var, std::string_view problem) {
  return MakeCniError(ErrorCode::kInvalidEnvironment, absl::StrCat(ToAbsl(var), ": ", ToAbsl(problem)));
}

// Field readers: absent or null keeps the default; a wrong type names the dotted field path.
absl::Status ReadString(const json& obj, const char* key, std::string_view path, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return ConfigError(absl::StrCat(ToAbsl(path), key), "must be a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadBool(const json& obj, const char* key, std::string_view path, bool* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return ConfigError(absl::StrCat(ToAbsl(path), key), "must be true or false");
  *out = it->get<bool>();
  return absl::OkStatus();
}

// Upstream declares assign_ipv4/assign_ipv6 as *string and compares with "true"/"false"; a JSON
// boolean is accepted as well since it can only mean the same thing.
absl::Status ReadStringBool(const json& obj, const char* key, std::string_view path, bool* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (it->is_boolean()) {
    *out = it->get<bool>();
    return absl::OkStatus();
  }
  std::string field = absl::StrCat(ToAbsl(path), key);
  if (!it->is_string()) return ConfigError(field, "must be \"true\" or \"false\"");
  const std::string& v = it->get_ref<const std::string&>();
  if (v == "true") {
    *out = true;
  } else if (v == "false") {
    *out = false;
  } else {
    return ConfigError(field, absl::StrCat("must be \"true\" or \"false\", not \"", v, "\""));
  }
  return absl::OkStatus();
}

absl::Status ReadStringList(const json& obj, const char* key, std::string_view path,
                            std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  std::string field = absl::StrCat(ToAbsl(path), key);
  if (!it->is_array()) return ConfigError(field, "must be a list of strings");
  for (const json& v : *it) {
    if (!v.is_string()) return ConfigError(field, "must be a list of strings");
    out->push_back(v.get<std::string>());
  }
  return absl::OkStatus();
}

absl::StatusOr<const json*> ReadObject(const json& obj, const char* key, std::string_view path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  if (!it->is_object()) return ConfigError(absl::StrCat(ToAbsl(path), key), "must be an object");
  return &*it;
}

// The spec's rule for network names and container ids: an alphanumeric first character, then
// alphanumerics, '_', '.' or '-'.
bool IsSpecIdentifier(std::string_view s) {
  if (s.empty() || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

absl::Status ParseIpam(const json& ipam, NetConf* conf) {
  IpamConf& out = conf->ipam;
  out.raw_json = ipam.dump();
  RETURN_IF_ERROR(ReadString(ipam, "type", "ipam.", &out.type));
  if (out.type.empty()) return ConfigError("ipam.type", "is required");
  RETURN_IF_ERROR(ReadStringBool(ipam, "assign_ipv4", "ipam.", &out.assign_ipv4));
  RETURN_IF_ERROR(ReadStringBool(ipam, "assign_ipv6", "ipam.", &out.assign_ipv6));
  RETURN_IF_ERROR(ReadStringList(ipam, "ipv4_pools", "ipam.", &out.ipv4_pools));
  RETURN_IF_ERROR(ReadStringList(ipam, "ipv6_pools", "ipam.", &out.ipv6_pools));
  RETURN_IF_ERROR(ReadString(ipam, "subnet", "ipam.", &out.subnet));
  if (!out.subnet.empty() && out.subnet != "usePodCidr" && !net::ParsePrefix(out.subnet)) {
    return ConfigError("ipam.subnet", absl::StrCat("\"", out.subnet, "\" is neither usePodCidr nor a CIDR"));
  }
  return absl::OkStatus();
}

absl::Status ParseLabels(const json& args, NetConf* conf) {
  ASSIGN_OR_RETURN(const json* cni, ReadObject(args, "cni", "args."));
  if (cni == nullptr) return absl::OkStatus();
  auto it = cni->find("labels");
  if (it == cni->end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return ConfigError("args.cni.labels", "must be a list of {key, value}");
  for (size_t n = 0; n < it->size(); ++n) {
    const json& e = (*it)[n];
    std::string where = absl::StrCat("args.cni.labels[", n, "]");
    auto key = e.is_object() ? e.find("key") : e.end();
    auto value = e.is_object() ? e.find("value") : e.end();
    if (!e.is_object() || key == e.end() || !key->is_string() || key->get_ref<const std::string&>().empty() ||
        (value != e.end() && !value->is_string())) {
      return ConfigError(where, "must be {\"key\": <non-empty string>, \"value\": <string>}");
    }
    conf->labels[key->get<std::string>()] = value == e.end() ? "" : value->get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status ParseValidAttachments(const json& root, NetConf* conf) {
  // libcni writes both keys (the spec's name changed during 1.1); read whichever is present.
  for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
    auto it = root.find(key);
    if (it == root.end() || it->is_null()) continue;
    if (!it->is_array()) return ConfigError(key, "must be a list of {containerID, ifname}");
    for (size_t n = 0; n < it->size(); ++n) {
      const json& e = (*it)[n];
      std::string where = absl::StrCat(key, "[", n, "].");
      if (!e.is_object()) return ConfigError(where, "must be an object");
      Attachment a;
      RETURN_IF_ERROR(ReadString(e, "containerID", where, &a.container_id));
      RETURN_IF_ERROR(ReadString(e, "ifname", where, &a.ifname));
      conf->valid_attachments.push_back(std::move(a));
    }
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view CommandName(Command command) {
  switch (command) {
    case Command::kAdd: return "ADD";
    case Command::kDel: return "DEL";
    case Command::kCheck: return "CHECK";
    case Command::kVersion: return "VERSION";
    case Command::kStatus: return "STATUS";
    case Command::kGc: return "GC";
  }
  return "?";
}

absl::StatusOr<NetConf> ParseNetConf(std::string_view text) {
  json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return MakeCniError(ErrorCode::kDecodeFailure, "network config: malformed JSON");
  }
  if (!root.is_object()) return MakeCniError(ErrorCode::kDecodeFailure, "network config: not a JSON object");

  NetConf conf;
  // The version comes first: the rest of the config is only meaningful in a version we speak.
  auto version = root.find("cniVersion");
  if (version == root.end() || !version->is_string() || version->get_ref<const std::string&>().empty()) {
    return MakeCniError(ErrorCode::kIncompatibleVersion, "cniVersion: missing",
                        absl::StrCat("plugin supports ", absl::StrJoin(SupportedVersions(), ", ")));
  }
  conf.cni_version = version->get<std::string>();
  if (!IsSupportedVersion(conf.cni_version)) {
    return MakeCniError(ErrorCode::kIncompatibleVersion,
                        absl::StrCat("cniVersion: incompatible CNI version \"", conf.cni_version, "\""),
                        absl::StrCat("plugin supports ", absl::StrJoin(SupportedVersions(), ", ")));
  }

  RETURN_IF_ERROR(ReadString(root, "name", "", &conf.name));
  if (!IsSpecIdentifier(conf.name)) {
    return ConfigError("name", conf.name.empty() ? "is required"
                                                 : absl::StrCat("\"", conf.name, "\" is not a valid network name"));
  }
  RETURN_IF_ERROR(ReadString(root, "type", "", &conf.type));
  if (conf.type.empty()) return ConfigError("type", "is required");

  ASSIGN_OR_RETURN(const json* ipam, ReadObject(root, "ipam", ""));
  if (ipam != nullptr) RETURN_IF_ERROR(ParseIpam(*ipam, &conf));

  if (auto it = root.find("mtu"); it != root.end() && !it->is_null()) {
    // 0 keeps "detect"; anything else must be a usable link MTU.
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 65535 ||
        (it->get<int64_t>() != 0 && it->get<int64_t>() < 68)) {
      return ConfigError("mtu", absl::StrCat("must be 0 or an integer in 68..65535, not ", it->dump()));
    }
    conf.mtu = it->get<int>();
  }

  RETURN_IF_ERROR(ReadString(root, "log_level", "", &conf.log_level));
  conf.log_level = absl::AsciiStrToLower(conf.log_level);
  static const char* const kLevels[] = {"", "trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"};
  if (std::find(std::begin(kLevels), std::end(kLevels), conf.log_level) == std::end(kLevels)) {
    return ConfigError("log_level", absl::StrCat("unknown level \"", conf.log_level, "\""));
  }
  RETURN_IF_ERROR(ReadString(root, "log_file_path", "", &conf.log_file_path));
  RETURN_IF_ERROR(ReadString(root, "datastore_type", "", &conf.datastore_type));
  RETURN_IF_ERROR(ReadString(root, "etcd_endpoints", "", &conf.etcd_endpoints));
  RETURN_IF_ERROR(ReadString(root, "etcd_key_file", "", &conf.etcd_key_file));
  RETURN_IF_ERROR(ReadString(root, "etcd_cert_file", "", &conf.etcd_cert_file));
  RETURN_IF_ERROR(ReadString(root, "etcd_ca_cert_file", "", &conf.etcd_ca_cert_file));
  RETURN_IF_ERROR(ReadString(root, "nodename", "", &conf.nodename));
  RETURN_IF_ERROR(ReadString(root, "nodename_file", "", &conf.nodename_file));
  RETURN_IF_ERROR(ReadBool(root, "nodename_file_optional", "", &conf.nodename_file_optional));
  RETURN_IF_ERROR(ReadString(root, "ipamd_socket", "", &conf.ipamd_socket));
  RETURN_IF_ERROR(ReadString(root, "felixd_socket", "", &conf.felixd_socket));

  ASSIGN_OR_RETURN(const json* policy, ReadObject(root, "policy", ""));
  if (policy != nullptr) {
    RETURN_IF_ERROR(ReadString(*policy, "type", "policy.", &conf.policy.type));
    RETURN_IF_ERROR(ReadString(*policy, "k8s_api_root", "policy.", &conf.policy.k8s_api_root));
    RETURN_IF_ERROR(ReadString(*policy, "k8s_auth_token", "policy.", &conf.policy.k8s_auth_token));
  }
  ASSIGN_OR_RETURN(const json* k8s, ReadObject(root, "kubernetes", ""));
  if (k8s != nullptr) {
    RETURN_IF_ERROR(ReadString(*k8s, "kubeconfig", "kubernetes.", &conf.kubernetes.kubeconfig));
    RETURN_IF_ERROR(ReadString(*k8s, "k8s_api_root", "kubernetes.", &conf.kubernetes.k8s_api_root));
    RETURN_IF_ERROR(ReadString(*k8s, "node_name", "kubernetes.", &conf.kubernetes.node_name));
  }
  ASSIGN_OR_RETURN(const json* settings, ReadObject(root, "container_settings", ""));
  if (settings != nullptr) {
    RETURN_IF_ERROR(ReadBool(*settings, "allow_ip_forwarding", "container_settings.",
                             &conf.container_settings.allow_ip_forwarding));
  }

  ASSIGN_OR_RETURN(const json* runtime_config, ReadObject(root, "runtimeConfig", ""));
  conf.runtime_config_json = runtime_config ? runtime_config->dump() : "{}";
  ASSIGN_OR_RETURN(const json* args, ReadObject(root, "args", ""));
  conf.args_json = args ? args->dump() : "{}";
  if (args != nullptr) RETURN_IF_ERROR(ParseLabels(*args, &conf));

  ASSIGN_OR_RETURN(const json* prev, ReadObject(root, "prevResult", ""));
  if (prev != nullptr) {
    absl::StatusOr<Result> parsed = ParseResult(prev->dump(), conf.cni_version);
    if (!parsed.ok()) return Annotate(parsed.status(), "prevResult");
    conf.prev_result = *std::move(parsed);
  }
  RETURN_IF_ERROR(ParseValidAttachments(root, &conf));
  return conf;
}

absl::Status CheckCommandVersion(Command command, std::string_view cni_version) {
  // Versions are from SupportedVersions(), whose strings order correctly as text.
  std::string_view minimum = command == Command::kCheck ? "0.4.0"
                             : (command == Command::kStatus || command == Command::kGc) ? "1.1.0"
                                                                                        : "0.0.0";
  if (cni_version < minimum) {
    return MakeCniError(ErrorCode::kIncompatibleVersion,
                        absl::StrCat("cniVersion: \"", ToAbsl(cni_version), "\" does not allow ",
                                     ToAbsl(CommandName(command)), " (needs ", ToAbsl(minimum), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CniArgs> ParseCniArgs(std::string_view text) {
  CniArgs args;
  std::vector<std::string> unknown;
  if (text.empty()) return args;
  for (absl::string_view pair : absl::StrSplit(ToAbsl(text), ';')) {
    std::vector<absl::string_view> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (kv.size() != 2) return EnvError("CNI_ARGS", absl::StrCat("invalid pair \"", pair, "\""));
    absl::string_view key = kv[0], value = kv[1];
    if (key == "K8S_POD_NAMESPACE") {
      args.k8s_pod_namespace = ToStd(value);
    } else if (key == "K8S_POD_NAME") {
      args.k8s_pod_name = ToStd(value);
    } else if (key == "K8S_POD_INFRA_CONTAINER_ID") {
      args.k8s_pod_infra_container_id = ToStd(value);
    } else if (key == "K8S_POD_UID") {
      // Passed by kubelet/containerd; upstream's K8sArgs declares it too.
      args.k8s_pod_uid = ToStd(value);
    } else if (key == "IgnoreUnknown") {
      // Upstream's BoolUnmarshaler: 1/true/0/false, any case.
      std::string v = absl::AsciiStrToLower(value);
      if (v == "1" || v == "true") {
        args.ignore_unknown = true;
      } else if (v == "0" || v == "false") {
        args.ignore_unknown = false;
      } else {
        return EnvError("CNI_ARGS", absl::StrCat("IgnoreUnknown: \"", value, "\" is not a boolean"));
      }
    } else {
      unknown.push_back(ToStd(key));
    }
  }
  // Judged after the loop: IgnoreUnknown may come after the unknown key.
  if (!unknown.empty() && !args.ignore_unknown) {
    return EnvError("CNI_ARGS", absl::StrCat("unknown args [", absl::StrJoin(unknown, ", "), "]"));
  }
  return args;
}

absl::Status ValidateIfName(std::string_view name, std::string_view var) {
  if (name.empty()) return EnvError(var, "interface name is empty");
  if (name.size() > 15) {
    return EnvError(var, absl::StrCat("interface name \"", ToAbsl(name), "\" is longer than 15 characters"));
  }
  if (name == "." || name == "..") return EnvError(var, absl::StrCat("interface name \"", ToAbsl(name), "\" is not allowed"));
  for (char c : name) {
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c))) {
      return EnvError(var, absl::StrCat("interface name \"", ToAbsl(name), "\" contains '/', ':' or whitespace"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Invocation> ParseInvocation(const std::map<std::string, std::string>& env) {
  auto get = [&env](const char* key) -> std::string {
    auto it = env.find(key);
    return it == env.end() ? std::string() : it->second;
  };
  Invocation inv;
  std::string command = get("CNI_COMMAND");
  if (command == "ADD") {
    inv.command = Command::kAdd;
  } else if (command == "DEL") {
    inv.command = Command::kDel;
  } else if (command == "CHECK") {
    inv.command = Command::kCheck;
  } else if (command == "VERSION") {
    inv.command = Command::kVersion;
  } else if (command == "STATUS") {
    inv.command = Command::kStatus;
  } else if (command == "GC") {
    inv.command = Command::kGc;
  } else {
    return EnvError("CNI_COMMAND", command.empty() ? "missing" : absl::StrCat("unknown command \"", command, "\""));
  }
  inv.container_id = get("CNI_CONTAINERID");
  inv.netns = get("CNI_NETNS");
  inv.ifname = get("CNI_IFNAME");
  const bool per_container = inv.command == Command::kAdd || inv.command == Command::kDel ||
                             inv.command == Command::kCheck;
  if (per_container) {
    // The spec: DEL may come without a netns (it may be gone); ADD and CHECK need one.
    std::vector<std::string> missing;
    if (inv.container_id.empty()) missing.push_back("CNI_CONTAINERID");
    if (inv.netns.empty() && inv.command != Command::kDel) missing.push_back("CNI_NETNS");
    if (inv.ifname.empty()) missing.push_back("CNI_IFNAME");
    if (!missing.empty()) {
      return MakeCniError(ErrorCode::kInvalidEnvironment,
                          absl::StrCat("required env variables [", absl::StrJoin(missing, ", "), "] missing"));
    }
    if (!IsSpecIdentifier(inv.container_id)) {
      return EnvError("CNI_CONTAINERID", absl::StrCat("\"", inv.container_id, "\" is not a valid container id"));
    }
    RETURN_IF_ERROR(ValidateIfName(inv.ifname, "CNI_IFNAME"));
    ASSIGN_OR_RETURN(inv.args, ParseCniArgs(get("CNI_ARGS")));
  }
  for (absl::string_view dir : absl::StrSplit(get("CNI_PATH"), ':', absl::SkipEmpty())) {
    inv.cni_path.push_back(ToStd(dir));
  }
  if (inv.command == Command::kGc && inv.cni_path.empty()) {
    return MakeCniError(ErrorCode::kInvalidEnvironment, "required env variables [CNI_PATH] missing");
  }
  return inv;
}

absl::StatusOr<std::string> ResolveNodename(const NetConf& conf,
                                            const std::optional<std::string>& nodename_file_contents,
                                            std::string_view hostname) {
  if (!conf.nodename.empty()) return conf.nodename;
  if (nodename_file_contents) {
    std::string trimmed(absl::StripAsciiWhitespace(*nodename_file_contents));
    if (!trimmed.empty()) return trimmed;
  }
  std::string host(absl::StripAsciiWhitespace(ToAbsl(hostname)));
  if (host.empty()) {
    return ConfigError("nodename", absl::StrCat("not set, ", conf.nodename_file, " unreadable and no hostname"));
  }
  return host;
}

}  // namespace calico::cni
