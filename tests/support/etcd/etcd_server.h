#pragma once
// tests/support/etcd: real etcd processes on loopback for integration tests and benchmarks.
// Owns: the etcd child processes it forks and their temp directories; nothing else. Processes
// are stopped by pid only (SIGKILL, then waitpid), never by name: other engineers and other
// tests run etcd on the same machine.
// Invariants:
//  - Every member binds 127.0.0.1 on ports found free by binding port 0; a start that loses
//    the race for a port is retried on new ports.
//  - The data directory survives Stop()/Start() (restart tests); the destructor kills the
//    process and removes the directory, also when a test failed half-way.
//  - The child gets PR_SET_PDEATHSIG(SIGKILL): if the test process dies (ctest timeout), etcd
//    dies too. The signal follows the *thread* that forked, so call Start() from a thread that
//    lives as long as the server (the test's main thread).
//  - The child's environment has no ETCD_* variables: etcd reads those as flags, and tests
//    export ETCD_CERT_FILE & co. for the client.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace calico::testing {

// Client TLS for a single member (files are PEM). With TLS the member also listens on a plain
// loopback port of its own, used only for the /health probe.
struct EtcdTlsOptions {
  std::string cert_file;
  std::string key_file;
  std::string trusted_ca_file;  // with client_cert_auth: the CA client certificates must chain to
  bool client_cert_auth = false;
};

class EtcdServer {
 public:
  // A single-member cluster with fast raft timers, started and healthy.
  static absl::StatusOr<std::unique_ptr<EtcdServer>> Start();
  // The same, serving clients over https:// only.
  static absl::StatusOr<std::unique_ptr<EtcdServer>> StartTls(const EtcdTlsOptions& tls);
  ~EtcdServer();

  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // SIGKILL (etcd fsyncs its WAL before acknowledging, so nothing acknowledged is lost) and
  // reap. Idempotent.
  void Stop();
  // Starts again on the same ports and data; waits until healthy (for a cluster member: until
  // its /health answers, which needs a quorum).
  absl::Status Restart();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // "http://127.0.0.1:<port>" ("https://..." with TLS)
  std::string ClientUrl() const;
  int client_port() const { return client_port_; }
  const std::string& name() const { return name_; }
  // The member's log (stdout+stderr), for failure messages.
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  friend class EtcdCluster;
  EtcdServer() = default;

  absl::Status Spawn();
  absl::Status WaitHealthy(absl::Duration timeout);

  std::string name_;
  std::string root_dir_;  // temp dir holding data/ and etcd.log
  std::string initial_cluster_;
  std::string cluster_token_;
  int client_port_ = 0;
  int peer_port_ = 0;
  int health_port_ = 0;  // plain-http probe port when the client port speaks TLS
  bool tls_ = false;
  EtcdTlsOptions tls_options_;
  pid_t pid_ = -1;
};

// A 3-member (or n-member) cluster on loopback, for fail-over tests.
class EtcdCluster {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(int members = 3);

  EtcdServer& member(int i) { return *members_[i]; }
  int size() const { return static_cast<int>(members_.size()); }
  // Client URLs of all members, in member order.
  std::vector<std::string> ClientUrls() const;

 private:
  std::vector<std::unique_ptr<EtcdServer>> members_;
};

// "http://127.0.0.1:<port>" for a loopback port nothing listens on (bound, then closed).
absl::StatusOr<std::string> UnusedLoopbackUrl();

// Waits until etcd at `client_url` answers GET /health with "health":"true".
absl::Status WaitEtcdHealthy(const std::string& client_url, absl::Duration timeout);

}  // namespace calico::testing
