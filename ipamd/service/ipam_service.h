#pragma once
// ipamd/service/ipam_service.h — calico.ipam.v1.Ipam over the allocator: one adapter per call,
// translating proto text (IPs, CIDRs) to our value types and absl::Status codes 1:1 to gRPC.
// Owns nothing but counters; every decision is the allocator's.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "calico/ipam/v1/ipam.grpc.pb.h"
#include "common/datastore/datastore.h"
#include "common/http/metrics.h"
#include "ipamd/allocator/allocator.h"
#include "ipamd/allocator/check.h"

namespace calico::ipamd::service {

// What the datastore says is in use (check_load.h's LoadInUse, bound to a store).
using InUseLoader = std::function<absl::StatusOr<InUse>()>;

// Every handle record under /calico/ipam/v2/handle/.
absl::StatusOr<std::vector<Handle>> ListHandles(datastore::Datastore& store);

// Check() over the current blocks, handles and in-use set.
absl::StatusOr<CheckReport> RunCheck(Allocator& allocator, datastore::Datastore& store,
                                     const InUseLoader& load_in_use);

class IpamService final : public calico::ipam::v1::Ipam::Service {
 public:
  // `node`: the node this ipamd serves, used when a request names none. References must
  // outlive the service. `load_in_use` may be null: Check then answers Unimplemented.
  IpamService(Allocator& allocator, datastore::Datastore& store, std::string node,
              InUseLoader load_in_use, http::MetricsRegistry& metrics);

  grpc::Status AutoAssign(grpc::ServerContext* context, const ipam::v1::AutoAssignRequest* request,
                          ipam::v1::AutoAssignResponse* response) override;
  grpc::Status AssignIP(grpc::ServerContext* context, const ipam::v1::AssignIPRequest* request,
                        ipam::v1::AssignIPResponse* response) override;
  grpc::Status ReleaseByHandle(grpc::ServerContext* context,
                               const ipam::v1::ReleaseByHandleRequest* request,
                               ipam::v1::ReleaseByHandleResponse* response) override;
  grpc::Status ReleaseIPs(grpc::ServerContext* context, const ipam::v1::ReleaseIPsRequest* request,
                          ipam::v1::ReleaseIPsResponse* response) override;
  grpc::Status GetHandle(grpc::ServerContext* context, const ipam::v1::GetHandleRequest* request,
                         ipam::v1::GetHandleResponse* response) override;
  grpc::Status ListBlocks(grpc::ServerContext* context, const ipam::v1::ListBlocksRequest* request,
                          ipam::v1::ListBlocksResponse* response) override;
  grpc::Status Check(grpc::ServerContext* context, const ipam::v1::CheckRequest* request,
                     ipam::v1::CheckResponse* response) override;

  // The logic behind each RPC, callable without gRPC (tests, in-process users).
  absl::Status DoAutoAssign(const ipam::v1::AutoAssignRequest& request,
                            ipam::v1::AutoAssignResponse& response);
  absl::Status DoAssignIP(const ipam::v1::AssignIPRequest& request,
                          ipam::v1::AssignIPResponse& response);
  absl::Status DoReleaseByHandle(const ipam::v1::ReleaseByHandleRequest& request,
                                 ipam::v1::ReleaseByHandleResponse& response);
  absl::Status DoReleaseIPs(const ipam::v1::ReleaseIPsRequest& request,
                            ipam::v1::ReleaseIPsResponse& response);
  absl::Status DoGetHandle(const ipam::v1::GetHandleRequest& request,
                           ipam::v1::GetHandleResponse& response);
  absl::Status DoListBlocks(const ipam::v1::ListBlocksRequest& request,
                            ipam::v1::ListBlocksResponse& response);
  absl::Status DoCheck(ipam::v1::CheckResponse& response);

 private:
  grpc::Status Finish(const char* method, const absl::Status& status);

  Allocator& allocator_;
  datastore::Datastore& store_;
  const std::string node_;
  InUseLoader load_in_use_;
  http::MetricFamily& requests_;
  http::MetricFamily& allocations_;
  http::MetricFamily& releases_;
};

// Proto conversions, shared with the leak collector and tests.
void ToProto(const Block& block, ipam::v1::Block& out);
void ToProto(const CheckReport& report, ipam::v1::CheckResponse& out);

}  // namespace calico::ipamd::service
