#include <grpcpp/client_context.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "calico/ipam/v1/ipam.grpc.pb.h"
#include "common/rpc/status.h"
#include "common/rpc/unix_server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/unit/ipamd_service/test_util.h"

namespace calico::rpc {
namespace {

using ipamd::testing::Ok;
using ipamd::testing::TempDir;

grpc::health::v1::HealthCheckResponse::ServingStatus HealthOf(const std::string& socket,
                                                              const std::string& service,
                                                              grpc::StatusCode* code = nullptr) {
  auto stub = grpc::health::v1::Health::NewStub(DialUnix(socket));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (code != nullptr) *code = s.error_code();
  return resp.status();
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

TEST_CASE("Status maps to grpc::Status code for code, both ways", "[unit][rpc]") {
  for (int code = 0; code <= 16; ++code) {
    absl::Status s(static_cast<absl::StatusCode>(code), code == 0 ? "" : "msg");
    grpc::Status g = ToGrpcStatus(s);
    REQUIRE(static_cast<int>(g.error_code()) == code);
    absl::Status back = FromGrpcStatus(g);
    REQUIRE(back.code() == s.code());
    if (code != 0) REQUIRE(back.message() == "msg");
  }
  REQUIRE(ToGrpcStatus(absl::ResourceExhaustedError("pool full")).error_code() ==
          grpc::StatusCode::RESOURCE_EXHAUSTED);
  REQUIRE(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("UnixServer: private dir, 0600 socket, health SERVING, socket removed on shutdown",
          "[unit][rpc]") {
  TempDir dir;
  std::string sock_dir = dir.path() + "/run/calico";
  std::string path = sock_dir + "/test.sock";
  ipam::v1::Ipam::Service ipam;  // every method Unimplemented: enough to serve
  UnixServerOptions opts;
  opts.socket_path = path;
  opts.services = {&ipam};
  opts.service_names = {"calico.test.v1.Test"};
  auto server = Ok(UnixServer::Start(opts));
  REQUIRE(ModeOf(sock_dir) == 0700);
  REQUIRE(ModeOf(path) == 0600);
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  REQUIRE(S_ISSOCK(st.st_mode));

  REQUIRE(HealthOf(path, "") == grpc::health::v1::HealthCheckResponse::SERVING);
  REQUIRE(HealthOf(path, "calico.test.v1.Test") == grpc::health::v1::HealthCheckResponse::SERVING);
  grpc::StatusCode code;
  HealthOf(path, "no.such.Service", &code);
  REQUIRE(code == grpc::StatusCode::NOT_FOUND);

  if (geteuid() == 0) {
    // Root bypasses the mode; an unprivileged user must be refused. The child only makes
    // syscalls (the parent runs gRPC threads).
    pid_t pid = fork();
    if (pid == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
      int fd = socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
      int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      _exit(rc != 0 && errno == EACCES ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }

  server->SetServing(false);
  REQUIRE(HealthOf(path, "") == grpc::health::v1::HealthCheckResponse::NOT_SERVING);

  // A second server on the same path refuses instead of stealing the live socket.
  auto second = UnixServer::Start(opts);
  REQUIRE(absl::IsFailedPrecondition(second.status()));
  REQUIRE(ModeOf(path) == 0600);

  server->Shutdown(absl::Seconds(1));
  REQUIRE(access(path.c_str(), F_OK) != 0);
}

TEST_CASE("UnixServer removes a stale socket but never a regular file", "[unit][rpc]") {
  TempDir dir;
  std::string path = dir.path() + "/stale.sock";
  {
    // A socket bound and closed without unlink: what a SIGKILLed daemon leaves behind.
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    close(fd);
  }
  ipam::v1::Ipam::Service ipam;
  UnixServerOptions opts;
  opts.socket_path = path;
  opts.services = {&ipam};
  auto server = Ok(UnixServer::Start(opts));
  REQUIRE(HealthOf(path, "") == grpc::health::v1::HealthCheckResponse::SERVING);
  server->Shutdown(absl::ZeroDuration());

  std::string file = dir.path() + "/file.sock";
  std::ofstream(file) << "not a socket";
  opts.socket_path = file;
  auto refused = UnixServer::Start(opts);
  REQUIRE(absl::IsFailedPrecondition(refused.status()));
  REQUIRE(std::string(refused.status().message()).find("not a socket") != std::string::npos);
  REQUIRE(access(file.c_str(), F_OK) == 0);

  opts.socket_path = "relative.sock";
  REQUIRE(absl::IsInvalidArgument(UnixServer::Start(opts).status()));
  opts.socket_path = dir.path() + "/none.sock";
  opts.services.clear();
  REQUIRE(absl::IsInvalidArgument(UnixServer::Start(opts).status()));
}

}  // namespace
}  // namespace calico::rpc
