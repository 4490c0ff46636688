#include "common/rpc/unix_server.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"

namespace calico::rpc {
namespace {

std::string Errno(int err) { return std::strerror(err); }

// mkdir -p, with the last component 0700: the socket is only as private as its directory,
// because gRPC binds with the process umask and our chmod comes after bind().
absl::Status EnsurePrivateDir(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("socket directory ", dir, " is not a directory"));
    }
    return absl::OkStatus();  // an existing directory is the operator's: its mode is theirs
  }
  size_t slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    std::string parent = dir.substr(0, slash);
    if (stat(parent.c_str(), &st) != 0) {
      // Parents get conventional 0755 (e.g. /var/run), only the socket dir itself is private.
      RETURN_IF_ERROR(EnsurePrivateDir(parent));
      if (chmod(parent.c_str(), 0755) != 0) {
        return absl::InternalError(absl::StrCat("chmod 0755 ", parent, ": ", Errno(errno)));
      }
    }
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::UnavailableError(
        absl::StrCat("creating socket directory ", dir, ": ", Errno(errno)));
  }
  return absl::OkStatus();
}

// A socket file nobody accepts on is left over from a crash: remove it. One that accepts
// belongs to a running daemon: refuse (gRPC itself would silently unlink and steal it).
absl::Status RemoveStaleSocket(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat("stat ", path, ": ", Errno(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket; not removing it"));
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket(AF_UNIX): ", Errno(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  close(fd);
  if (rc == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("another process is serving on ", path, " (is a daemon already running?)"));
  }
  if (err != ECONNREFUSED) {
    return absl::UnavailableError(absl::StrCat("probing existing socket ", path, ": ", Errno(err)));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::UnavailableError(absl::StrCat("removing stale socket ", path, ": ", Errno(errno)));
  }
  log::Info("stale_socket_removed", {{"path", path}});
  return absl::OkStatus();
}

}  // namespace

std::string UnixTarget(const std::string& socket_path) { return "unix:" + socket_path; }

std::shared_ptr<grpc::Channel> DialUnix(const std::string& socket_path) {
  return grpc::CreateChannel(UnixTarget(socket_path), grpc::InsecureChannelCredentials());
}

absl::StatusOr<std::unique_ptr<UnixServer>> UnixServer::Start(const UnixServerOptions& options) {
  const std::string& path = options.socket_path;
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("socket path \"", path, "\" must be absolute"));
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path ", path, " is longer than ",
                                                   sizeof(sockaddr_un{}.sun_path) - 1, " bytes"));
  }
  // gRPC refuses to start a server without a synchronous service ("completion queues must be
  // frequently polled"); say so in our words.
  if (options.services.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no gRPC services to serve on ", path));
  }
  std::string dir = path.substr(0, path.find_last_of('/'));
  if (!dir.empty()) RETURN_IF_ERROR(EnsurePrivateDir(dir));
  RETURN_IF_ERROR(RemoveStaleSocket(path));

  // Process-wide switch; must precede BuildAndStart. Harmless to repeat.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort(UnixTarget(path), grpc::InsecureServerCredentials(), &bound);
  for (grpc::Service* service : options.services) builder.RegisterService(service);
  std::unique_ptr<UnixServer> server(new UnixServer());
  server->server_ = builder.BuildAndStart();
  // gRPC reports a failed bind only by returning nullptr (and an E-line on stderr).
  if (server->server_ == nullptr || bound == 0) {
    return absl::UnavailableError(absl::StrCat("gRPC could not listen on ", UnixTarget(path)));
  }
  server->socket_path_ = path;
  server->service_names_ = options.service_names;
  if (chmod(path.c_str(), 0600) != 0) {
    int err = errno;
    server->Shutdown(absl::ZeroDuration());
    return absl::InternalError(absl::StrCat("chmod 0600 ", path, ": ", Errno(err)));
  }
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    server->socket_dev_ = st.st_dev;
    server->socket_ino_ = st.st_ino;
  }
  server->SetServing(true);
  log::Info("rpc_listening", {{"socket", path}});
  return server;
}

UnixServer::~UnixServer() { Shutdown(absl::Seconds(1)); }

void UnixServer::SetServing(bool serving) {
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);  // "" and every registered name
  for (const std::string& name : service_names_) health->SetServingStatus(name, serving);
}

void UnixServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  SetServing(false);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  server_.reset();
  // gRPC unlinks on shutdown; make sure, but never remove a socket a successor bound since.
  struct stat st;
  if (stat(socket_path_.c_str(), &st) == 0 && st.st_dev == socket_dev_ &&
      st.st_ino == socket_ino_) {
    unlink(socket_path_.c_str());
  }
  log::Info("rpc_stopped", {{"socket", socket_path_}});
}

}  // namespace calico::rpc
