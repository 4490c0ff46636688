#pragma once
// felixd/service/dataplane_service.h — calico.dataplane.v1.Dataplane over a Felix: proto in,
// plain types to Felix, proto out. No logic beyond translation and status mapping.

#include "calico/dataplane/v1/dataplane.grpc.pb.h"
#include "felixd/service/felix.h"
#include "felixd/service/policy_manager.h"

namespace calico::felixd {

class DataplaneService final : public calico::dataplane::v1::Dataplane::Service {
 public:
  // `policy` may be null (policy disabled): ExplainPolicy is then UNAVAILABLE.
  explicit DataplaneService(Felix& felix, PolicyManager* policy = nullptr)
      : felix_(felix), policy_(policy) {}

  grpc::Status SetupWorkload(grpc::ServerContext*, const dataplane::v1::SetupWorkloadRequest*,
                             dataplane::v1::SetupWorkloadResponse*) override;
  grpc::Status TeardownWorkload(grpc::ServerContext*, const dataplane::v1::TeardownWorkloadRequest*,
                                dataplane::v1::TeardownWorkloadResponse*) override;
  grpc::Status CheckWorkload(grpc::ServerContext*, const dataplane::v1::CheckWorkloadRequest*,
                             dataplane::v1::CheckWorkloadResponse*) override;
  grpc::Status ListWorkloads(grpc::ServerContext*, const dataplane::v1::ListWorkloadsRequest*,
                             dataplane::v1::ListWorkloadsResponse*) override;
  grpc::Status GetStatus(grpc::ServerContext*, const dataplane::v1::GetStatusRequest*,
                         dataplane::v1::GetStatusResponse*) override;
  grpc::Status WatchAdvertisedRoutes(grpc::ServerContext*,
                                     const dataplane::v1::WatchAdvertisedRoutesRequest*,
                                     grpc::ServerWriter<dataplane::v1::AdvertisedRoutes>*) override;
  grpc::Status ExplainPolicy(grpc::ServerContext*, const dataplane::v1::ExplainPolicyRequest*,
                             dataplane::v1::ExplainPolicyResponse*) override;

 private:
  Felix& felix_;
  PolicyManager* policy_;
};

}  // namespace calico::felixd
