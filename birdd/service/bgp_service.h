#pragma once
// birdd/service/bgp_service.h — calico.bgp.v1.Bgp over a Birdd: translation only.

#include "birdd/service/birdd.h"
#include "calico/bgp/v1/bgp.grpc.pb.h"

namespace calico::birdd {

class BgpService final : public calico::bgp::v1::Bgp::Service {
 public:
  explicit BgpService(Birdd& birdd) : birdd_(birdd) {}

  grpc::Status GetStatus(grpc::ServerContext*, const bgp::v1::GetStatusRequest*,
                         bgp::v1::GetStatusResponse* response) override {
    *response = birdd_.Status();
    return grpc::Status::OK;
  }
  grpc::Status ListRoutes(grpc::ServerContext*, const bgp::v1::ListRoutesRequest* request,
                          bgp::v1::ListRoutesResponse* response) override {
    if (request->family() != 0 && request->family() != 4 && request->family() != 6) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "family must be 4, 6 or 0 (both)");
    }
    *response = birdd_.Routes(request->family());
    return grpc::Status::OK;
  }

 private:
  Birdd& birdd_;
};

}  // namespace calico::birdd
