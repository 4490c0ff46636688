#pragma once
// How a process picks and reaches its datastore: from a calicoctl-style config file, or the
// environment variables upstream Calico uses.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/datastore/datastore.h"

namespace calico::datastore {

enum class BackendType { kEmbedded, kEtcdV3 };

struct Config {
  BackendType type = BackendType::kEmbedded;
  // embedded
  std::string sqlite_path = "/var/lib/calico/calico.db";  // CALICO_DATASTORE_PATH
  // CALICO_DATASTORE_SYNC=normal|full. normal (default): a commit survives any process crash
  // (WAL), and a power loss can drop only the last commits, which belonged to pods that died
  // with the node; full also fsyncs every commit (~0.35 ms each here).
  bool sqlite_fsync_each_commit = false;
  // etcdv3
  std::vector<std::string> etcd_endpoints;  // ETCD_ENDPOINTS, comma separated URLs
  std::string etcd_ca_cert_file;            // ETCD_CA_CERT_FILE
  std::string etcd_cert_file;               // ETCD_CERT_FILE
  std::string etcd_key_file;                // ETCD_KEY_FILE
  std::string etcd_username;                // ETCD_USERNAME
  std::string etcd_password;                // ETCD_PASSWORD
  absl::Duration request_timeout = absl::Seconds(5);  // per RPC attempt
  absl::Duration dial_timeout = absl::Seconds(2);     // per endpoint
};

// DATASTORE_TYPE (etcdv3|embedded; default embedded unless ETCD_ENDPOINTS is set),
// ETCD_ENDPOINTS, ETCD_*_FILE, CALICO_DATASTORE_PATH.
absl::StatusOr<Config> ConfigFromEnvironment();
// A calicoctl config file: upstream's CalicoAPIConfig (apiVersion projectcalico.org/v3,
// kind CalicoAPIConfig, spec.datastoreType, spec.etcdEndpoints, spec.etcdCACertFile, ...)
// plus spec.datastorePath for the embedded backend.
absl::StatusOr<Config> ConfigFromFile(const std::string& path);

// Opens the configured backend. Only mains (and tests) call this: it names the concrete types.
absl::StatusOr<std::unique_ptr<Datastore>> Open(const Config& config);

}  // namespace calico::datastore
