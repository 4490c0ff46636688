#include "tests/integration/ipamd/ipamd_process.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"

extern char** environ;

namespace calico::ipamd::testing {
namespace {

bool Inherited(std::string_view entry) {
  for (std::string_view prefix :
       {"DATASTORE_TYPE=", "CALICO_", "ETCD_", "NO_DEFAULT_POOLS=", "NODENAME=", "IPAMD_"}) {
    if (entry.substr(0, prefix.size()) == prefix) return false;
  }
  return true;
}

}  // namespace

IpamdProcess::IpamdProcess(std::string node, std::string dir, std::vector<std::string> args,
                           std::map<std::string, std::string> env)
    : node_(std::move(node)),
      dir_(std::move(dir)),
      socket_(dir_ + "/" + node_ + ".sock"),
      log_(dir_ + "/" + node_ + ".log"),
      args_(std::move(args)),
      env_(std::move(env)) {}

IpamdProcess::~IpamdProcess() {
  if (pid_ > 0) Signal(SIGKILL);
}

void IpamdProcess::Spawn() {
  std::vector<std::string> argv = {IPAMD_BINARY, "--node=" + node_, "--socket=" + socket_};
  argv.insert(argv.end(), args_.begin(), args_.end());
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    if (Inherited(*e)) envs.emplace_back(*e);
  }
  for (const auto& [k, v] : env_) envs.push_back(k + "=" + v);
  std::vector<char*> argp, envp;
  for (std::string& s : argv) argp.push_back(s.data());
  argp.push_back(nullptr);
  for (std::string& s : envs) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string log = log_;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls: the parent runs gRPC threads.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execve(argp[0], argp.data(), envp.data());
    _exit(127);
  }
  pid_ = pid;
}

absl::Status IpamdProcess::Start(absl::Duration timeout) {
  Spawn();
  if (pid_ <= 0) return absl::InternalError("fork failed");
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("ipamd ", node_, " exited during startup (status ",
                                              status, "): ", LogTail()));
    }
    if (Serving(socket_, absl::Milliseconds(500))) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Signal(SIGKILL);
  return absl::DeadlineExceededError(absl::StrCat("ipamd ", node_, " not serving: ", LogTail()));
}

int IpamdProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (absl::Now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int IpamdProcess::Signal(int sig, absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int rc = Wait(timeout);
  if (rc == -1 && pid_ > 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  return rc;
}

std::string IpamdProcess::Log() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string IpamdProcess::LogTail(size_t max_bytes) const {
  std::string log = Log();
  return log.size() > max_bytes ? log.substr(log.size() - max_bytes) : log;
}

std::shared_ptr<grpc::Channel> FastReconnectChannel(const std::string& socket) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 300);
  return grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
}

bool Serving(const std::string& socket, absl::Duration timeout) {
  auto stub = grpc::health::v1::Health::NewStub(FastReconnectChannel(socket));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  return stub->Check(&ctx, req, &resp).ok() &&
         resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

ScratchDir::ScratchDir() {
  std::string pattern = "/tmp/ipamd-it-XXXXXX";
  if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace calico::ipamd::testing
