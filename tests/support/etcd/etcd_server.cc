#include "tests/support/etcd/etcd_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace calico::testing {
namespace {

constexpr char kEtcdBinary[] = "/usr/bin/etcd";
constexpr absl::Duration kHealthyTimeout = absl::Seconds(15);
constexpr int kStartAttempts = 3;

absl::Status ErrnoStatus(std::string_view what) {
  return absl::InternalError(absl::StrCat(std::string(what), ": ", std::strerror(errno)));
}

// A loopback port that was free a moment ago. Another process may take it before etcd binds
// it; Start() then sees etcd exit and retries on new ports.
absl::StatusOr<int> FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::Status status = ErrnoStatus("binding a loopback port");
    close(fd);
    return status;
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

std::string PeerUrl(int port) { return absl::StrCat("http://127.0.0.1:", port); }

absl::StatusOr<std::string> MakeTempDir() {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string pattern = (base / "calico-etcd-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return ErrnoStatus("mkdtemp " + pattern);
  return pattern;
}

std::string UniqueToken() {
  static std::atomic<int> counter{0};
  return absl::StrCat("calico-test-", getpid(), "-", counter.fetch_add(1), "-",
                      absl::ToUnixNanos(absl::Now()));
}

// One HTTP/1.0 GET of /health; true if etcd reports itself healthy.
bool HealthOnce(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{.tv_sec = 1, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool healthy = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    static constexpr char kRequest[] = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, kRequest, sizeof(kRequest) - 1, MSG_NOSIGNAL) ==
        static_cast<ssize_t>(sizeof(kRequest) - 1)) {
      std::string reply;
      char buf[1024];
      ssize_t n;
      while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) reply.append(buf, static_cast<size_t>(n));
      healthy = reply.find("\"health\":\"true\"") != std::string::npos;
    }
  }
  close(fd);
  return healthy;
}

absl::StatusOr<int> PortOf(const std::string& client_url) {
  const size_t colon = client_url.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(client_url).substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("no port in \"", client_url, "\""));
  }
  return port;
}

}  // namespace

absl::Status WaitEtcdHealthy(const std::string& client_url, absl::Duration timeout) {
  absl::StatusOr<int> port = PortOf(client_url);
  if (!port.ok()) return port.status();
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (HealthOnce(*port)) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("etcd at ", client_url, " not healthy within ", absl::FormatDuration(timeout)));
}

absl::StatusOr<std::string> UnusedLoopbackUrl() {
  absl::StatusOr<int> port = FreeLoopbackPort();
  if (!port.ok()) return port.status();
  return PeerUrl(*port);
}

absl::StatusOr<std::unique_ptr<EtcdServer>> EtcdServer::Start() {
  return StartTls(EtcdTlsOptions{});
}

absl::StatusOr<std::unique_ptr<EtcdServer>> EtcdServer::StartTls(const EtcdTlsOptions& tls) {
  const bool use_tls = !tls.cert_file.empty();
  absl::Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    std::unique_ptr<EtcdServer> server(new EtcdServer());
    absl::StatusOr<std::string> dir = MakeTempDir();
    if (!dir.ok()) return dir.status();
    server->root_dir_ = *dir;
    server->name_ = "m0";
    absl::StatusOr<int> client = FreeLoopbackPort();
    absl::StatusOr<int> peer = FreeLoopbackPort();
    if (!client.ok()) return client.status();
    if (!peer.ok()) return peer.status();
    server->client_port_ = *client;
    server->peer_port_ = *peer;
    server->health_port_ = *client;
    if (use_tls) {
      absl::StatusOr<int> health = FreeLoopbackPort();
      if (!health.ok()) return health.status();
      server->health_port_ = *health;
      server->tls_ = true;
      server->tls_options_ = tls;
    }
    server->initial_cluster_ = absl::StrCat("m0=", PeerUrl(*peer));
    server->cluster_token_ = UniqueToken();
    last = server->Spawn();
    if (last.ok()) last = server->WaitHealthy(kHealthyTimeout);
    if (last.ok()) return server;
    // `server` is destroyed here: killed and its directory removed; retry on new ports.
  }
  return last;
}

EtcdServer::~EtcdServer() {
  Stop();
  if (!root_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(root_dir_, ec);
  }
}

std::string EtcdServer::ClientUrl() const {
  return absl::StrCat(tls_ ? "https" : "http", "://127.0.0.1:", client_port_);
}

void EtcdServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

absl::Status EtcdServer::Restart() {
  Stop();
  absl::Status status = Spawn();
  if (status.ok()) status = WaitHealthy(kHealthyTimeout);
  return status;
}

std::string EtcdServer::LogTail(size_t max_bytes) const {
  std::ifstream in(root_dir_ + "/etcd.log", std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  std::string text = contents.str();
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  return text;
}

absl::Status EtcdServer::Spawn() {
  if (pid_ > 0) return absl::FailedPreconditionError("etcd " + name_ + " already running");
  const std::string client_url = ClientUrl();
  const std::string peer_url = PeerUrl(peer_port_);
  // With TLS, a second plain listener serves the /health probe (HealthOnce speaks HTTP only).
  const std::string listen_client_urls =
      tls_ ? absl::StrCat(client_url, ",", PeerUrl(health_port_)) : client_url;
  std::vector<std::string> args = {
      kEtcdBinary,
      "--name=" + name_,
      "--data-dir=" + root_dir_ + "/data",
      "--listen-client-urls=" + listen_client_urls,
      "--advertise-client-urls=" + client_url,
      "--listen-peer-urls=" + peer_url,
      "--initial-advertise-peer-urls=" + peer_url,
      "--initial-cluster=" + initial_cluster_,
      "--initial-cluster-state=new",  // ignored once data/ exists (restarts)
      "--initial-cluster-token=" + cluster_token_,
      // Fast raft timers: a member is healthy in ~0.2 s and a leader loss costs ~0.4 s.
      "--heartbeat-interval=10",
      "--election-timeout=100",
      "--logger=zap",
      "--log-outputs=stderr",
  };
  if (tls_) {
    args.push_back("--cert-file=" + tls_options_.cert_file);
    args.push_back("--key-file=" + tls_options_.key_file);
    if (!tls_options_.trusted_ca_file.empty()) {
      args.push_back("--trusted-ca-file=" + tls_options_.trusted_ca_file);
    }
    if (tls_options_.client_cert_auth) args.push_back("--client-cert-auth=true");
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "ETCD", 4) != 0) env_storage.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  const std::string log_path = root_dir_ + "/etcd.log";
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return ErrnoStatus("opening " + log_path);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    close(log_fd);
    return ErrnoStatus("opening /dev/null");
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // The child of a multi-threaded (gRPC) process: async-signal-safe calls only, then exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);  // its own group: a terminal's Ctrl-C goes to the test, which kills etcd
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  const int fork_errno = errno;
  close(log_fd);
  close(null_fd);
  if (pid < 0) {
    errno = fork_errno;
    return ErrnoStatus("fork");
  }
  pid_ = pid;
  return absl::OkStatus();
}

absl::Status EtcdServer::WaitHealthy(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (HealthOnce(health_port_)) return absl::OkStatus();
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(absl::StrCat("etcd ", name_, " exited (status ", status,
                                                 ") before becoming healthy; log tail:\n",
                                                 LogTail(1500)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("etcd ", name_, " at ", ClientUrl(), " not healthy within ",
                   absl::FormatDuration(timeout), "; log tail:\n", LogTail(1500)));
}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(int members) {
  absl::Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    std::unique_ptr<EtcdCluster> cluster(new EtcdCluster());
    std::vector<std::string> initial;
    const std::string token = UniqueToken();
    for (int i = 0; i < members; ++i) {
      std::unique_ptr<EtcdServer> member(new EtcdServer());
      absl::StatusOr<std::string> dir = MakeTempDir();
      if (!dir.ok()) return dir.status();
      member->root_dir_ = *dir;
      member->name_ = absl::StrCat("m", i);
      absl::StatusOr<int> client = FreeLoopbackPort();
      absl::StatusOr<int> peer = FreeLoopbackPort();
      if (!client.ok()) return client.status();
      if (!peer.ok()) return peer.status();
      member->client_port_ = *client;
      member->peer_port_ = *peer;
      member->health_port_ = *client;
      member->cluster_token_ = token;
      initial.push_back(absl::StrCat(member->name_, "=", PeerUrl(*peer)));
      cluster->members_.push_back(std::move(member));
    }
    const std::string initial_cluster = absl::StrJoin(initial, ",");
    last = absl::OkStatus();
    // All members must run before any can elect a leader, so spawn all, then wait.
    for (auto& member : cluster->members_) {
      member->initial_cluster_ = initial_cluster;
      if (last.ok()) last = member->Spawn();
    }
    for (auto& member : cluster->members_) {
      if (last.ok()) last = member->WaitHealthy(kHealthyTimeout);
    }
    if (last.ok()) return cluster;
  }
  return last;
}

std::vector<std::string> EtcdCluster::ClientUrls() const {
  std::vector<std::string> urls;
  for (const auto& member : members_) urls.push_back(member->ClientUrl());
  return urls;
}

}  // namespace calico::testing
