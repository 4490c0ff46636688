#pragma once
// cni-plugin/unary_client.h — one gRPC unary call at a time over a unix socket, on nghttp2.
// The plugin lives for one pod operation and makes two calls; gRPC's C++ runtime (its threads,
// pollers and channel state machine) cost ~2 ms of that run and ~20 MB of binary. The wire is
// the same HTTP/2 + gRPC framing the daemons' gRPC servers speak.
// Errors: gRPC status codes mapped to absl codes one to one (same numbers); a socket that
// cannot be reached is Unavailable with a message starting "connect ".

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace google::protobuf {
class MessageLite;
}

namespace calico::cni {

class UnaryClient {
 public:
  // Connects and sends the HTTP/2 preface; the handshake completes with the first call.
  static absl::StatusOr<std::unique_ptr<UnaryClient>> Connect(const std::string& socket_path);
  ~UnaryClient();
  UnaryClient(const UnaryClient&) = delete;
  UnaryClient& operator=(const UnaryClient&) = delete;

  // `method` is "/package.Service/Method". The call fails with DeadlineExceeded after `timeout`.
  absl::Status Call(std::string_view method, const google::protobuf::MessageLite& request,
                    google::protobuf::MessageLite& response, absl::Duration timeout);

  const std::string& socket_path() const { return socket_path_; }

 private:
  struct Session;
  UnaryClient(int fd, std::string socket_path);
  int fd_ = -1;
  std::string socket_path_;
  std::unique_ptr<Session> session_;
};

}  // namespace calico::cni
