#pragma once
// common/rpc: a gRPC server on a unix socket, as every calico-cpp daemon serves its API.
// Owns: the socket file (and, if it had to create it, the socket's directory).
// Invariants:
//  - The socket's directory is created 0700 when missing, so no other user can reach the
//    socket even in the window between bind() and chmod(); the socket itself is chmod 0600.
//  - A stale socket (nothing accepting on it) is removed; a live one (another daemon serving)
//    or a non-socket file at the path is an error — we never delete what is not ours.
//  - grpc.health.v1.Health is served; status follows SetServing() ("" and every service).
//  - Shutdown removes the socket, but only if the file there is still the one we bound.

#include <grpcpp/channel.h>
#include <grpcpp/server.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace calico::rpc {

struct UnixServerOptions {
  std::string socket_path;                 // absolute path of the socket file
  std::vector<grpc::Service*> services;    // not owned; must outlive the server
  std::vector<std::string> service_names;  // full names for health ("calico.ipam.v1.Ipam")
};

class UnixServer {
 public:
  // Errors: InvalidArgument (empty/relative path), FailedPrecondition (a live server or a
  // non-socket file at the path), Unavailable (gRPC could not listen).
  static absl::StatusOr<std::unique_ptr<UnixServer>> Start(const UnixServerOptions& options);
  ~UnixServer();  // Shutdown(1s) if still running

  UnixServer(const UnixServer&) = delete;
  UnixServer& operator=(const UnixServer&) = delete;

  // Health status of the server ("") and of every named service.
  void SetServing(bool serving);
  // Reports NOT_SERVING, lets in-flight calls finish until `grace`, cancels the rest, removes
  // the socket. Idempotent.
  void Shutdown(absl::Duration grace);
  const std::string& socket_path() const { return socket_path_; }

 private:
  UnixServer() = default;

  std::unique_ptr<grpc::Server> server_;
  std::string socket_path_;
  std::vector<std::string> service_names_;
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
};

// "unix:<path>" — the gRPC target for a socket path.
std::string UnixTarget(const std::string& socket_path);
// An insecure channel to a unix socket (the socket's mode is the access control).
std::shared_ptr<grpc::Channel> DialUnix(const std::string& socket_path);

}  // namespace calico::rpc
