#include "common/datastore/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"

namespace calico::datastore {
namespace {

// "a, b,,c " → {"a","b","c"}: upstream tolerates spaces and trailing commas in ETCD_ENDPOINTS.
std::vector<std::string> SplitEndpoints(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    absl::string_view trimmed = absl::StripAsciiWhitespace(part);
    if (!trimmed.empty()) out.emplace_back(trimmed.data(), trimmed.size());
  }
  return out;
}

absl::StatusOr<BackendType> ParseType(const std::string& text, bool have_endpoints,
                                      const std::string& where) {
  if (text.empty()) return have_endpoints ? BackendType::kEtcdV3 : BackendType::kEmbedded;
  if (text == "etcdv3") return BackendType::kEtcdV3;
  if (text == "embedded") return BackendType::kEmbedded;
  return absl::InvalidArgumentError(absl::StrCat(where, " \"", text,
                                                 "\" is not a supported datastore type "
                                                 "(want etcdv3 or embedded)"));
}

// Checks what every source must satisfy, so a bad config fails at startup with one clear line
// instead of at the first request.
absl::Status Validate(const Config& config, const std::string& where) {
  if (config.type == BackendType::kEtcdV3) {
    if (config.etcd_endpoints.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": datastore type etcdv3 needs at least one etcd endpoint"));
    }
    for (const std::string& endpoint : config.etcd_endpoints) {
      if (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": etcd endpoint \"", endpoint,
                                                       "\" must start with http:// or https://"));
      }
    }
    if (config.etcd_cert_file.empty() != config.etcd_key_file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": etcd client certificate and key must be given together (cert \"",
                       config.etcd_cert_file, "\", key \"", config.etcd_key_file, "\")"));
    }
  } else if (config.sqlite_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": embedded datastore needs a non-empty path"));
  }
  return absl::OkStatus();
}

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

}  // namespace

absl::StatusOr<Config> ConfigFromEnvironment() {
  Config config;
  std::string endpoints = GetEnv("ETCD_ENDPOINTS");
  config.etcd_endpoints = SplitEndpoints(endpoints);
  ASSIGN_OR_RETURN(config.type, ParseType(GetEnv("DATASTORE_TYPE"), !config.etcd_endpoints.empty(),
                                          "DATASTORE_TYPE"));
  config.etcd_ca_cert_file = GetEnv("ETCD_CA_CERT_FILE");
  config.etcd_cert_file = GetEnv("ETCD_CERT_FILE");
  config.etcd_key_file = GetEnv("ETCD_KEY_FILE");
  config.etcd_username = GetEnv("ETCD_USERNAME");
  config.etcd_password = GetEnv("ETCD_PASSWORD");
  if (std::string path = GetEnv("CALICO_DATASTORE_PATH"); !path.empty()) config.sqlite_path = path;
  if (std::string sync = GetEnv("CALICO_DATASTORE_SYNC"); !sync.empty()) {
    if (sync != "normal" && sync != "full") {
      return absl::InvalidArgumentError(absl::StrCat(
          "datastore environment: CALICO_DATASTORE_SYNC=\"", sync, "\": expected normal or full"));
    }
    config.sqlite_fsync_each_commit = sync == "full";
  }
  RETURN_IF_ERROR(Validate(config, "datastore environment"));
  return config;
}

absl::StatusOr<Config> ConfigFromFile(const std::string& path) {
  // yaml-cpp reports everything by exception; none may escape this function.
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError(absl::StrCat("datastore config ", path, ": cannot read file"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("datastore config ", path, ": not valid YAML: ", e.what()));
  }

  auto field_error = [&](std::string_view field, std::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat("datastore config ", path, ": ", ToAbsl(field), ": ", ToAbsl(problem)));
  };
  if (!root.IsMap()) return field_error("(document)", "must be a mapping");

  // Reads an optional scalar string field; a map or list where a string belongs is an error.
  auto scalar = [&](const YAML::Node& parent, const char* name,
                    std::string_view field) -> absl::StatusOr<std::string> {
    try {
      YAML::Node node = parent[name];
      if (!node.IsDefined() || node.IsNull()) return std::string();
      if (!node.IsScalar()) return field_error(field, "must be a string");
      return node.as<std::string>();
    } catch (const YAML::Exception& e) {
      return field_error(field, e.what());
    }
  };

  ASSIGN_OR_RETURN(std::string api_version, scalar(root, "apiVersion", "apiVersion"));
  if (api_version != "projectcalico.org/v3") {
    return field_error("apiVersion",
                       absl::StrCat("\"", api_version, "\" is not projectcalico.org/v3"));
  }
  ASSIGN_OR_RETURN(std::string kind, scalar(root, "kind", "kind"));
  if (kind != "CalicoAPIConfig") {
    return field_error("kind", absl::StrCat("\"", kind, "\" is not CalicoAPIConfig"));
  }
  YAML::Node spec = root["spec"];
  if (!spec.IsDefined() || spec.IsNull()) return field_error("spec", "is missing");
  if (!spec.IsMap()) return field_error("spec", "must be a mapping");

  // Unknown keys are rejected: a typo such as "etcdEndpoint" would otherwise silently select the
  // embedded store on a node that was meant to join the cluster.
  static constexpr const char* kKnown[] = {"datastoreType", "etcdEndpoints", "etcdCACertFile",
                                           "etcdCertFile",  "etcdKeyFile",   "etcdUsername",
                                           "etcdPassword",  "datastorePath"};
  for (const auto& item : spec) {
    std::string name;
    try {
      name = item.first.as<std::string>();
    } catch (const YAML::Exception& e) {
      return field_error("spec", e.what());
    }
    bool known = false;
    for (const char* k : kKnown) known = known || name == k;
    if (!known) return field_error(absl::StrCat("spec.", name), "unknown field");
  }

  Config config;
  ASSIGN_OR_RETURN(std::string type, scalar(spec, "datastoreType", "spec.datastoreType"));
  ASSIGN_OR_RETURN(std::string endpoints, scalar(spec, "etcdEndpoints", "spec.etcdEndpoints"));
  config.etcd_endpoints = SplitEndpoints(endpoints);
  absl::StatusOr<BackendType> parsed =
      ParseType(type, !config.etcd_endpoints.empty(), "spec.datastoreType");
  if (!parsed.ok()) {
    return Annotate(parsed.status(), absl::StrCat("datastore config ", path));
  }
  config.type = *parsed;
  ASSIGN_OR_RETURN(config.etcd_ca_cert_file, scalar(spec, "etcdCACertFile", "spec.etcdCACertFile"));
  ASSIGN_OR_RETURN(config.etcd_cert_file, scalar(spec, "etcdCertFile", "spec.etcdCertFile"));
  ASSIGN_OR_RETURN(config.etcd_key_file, scalar(spec, "etcdKeyFile", "spec.etcdKeyFile"));
  ASSIGN_OR_RETURN(config.etcd_username, scalar(spec, "etcdUsername", "spec.etcdUsername"));
  ASSIGN_OR_RETURN(config.etcd_password, scalar(spec, "etcdPassword", "spec.etcdPassword"));
  ASSIGN_OR_RETURN(std::string datastore_path, scalar(spec, "datastorePath", "spec.datastorePath"));
  if (!datastore_path.empty()) config.sqlite_path = datastore_path;
  RETURN_IF_ERROR(Validate(config, absl::StrCat("datastore config ", path)));
  return config;
}

}  // namespace calico::datastore
