#pragma once
// absl::Status <-> grpc::Status, code for code: both use the canonical google.rpc.Code numbers,
// so a client sees exactly the code the daemon's logic chose (STYLE.md: codes mean things).

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace calico::rpc {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace calico::rpc
