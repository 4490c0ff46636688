#include "ipamd/service/ipam_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "common/rpc/status.h"

namespace calico::ipamd::service {
namespace {

namespace pb = ::calico::ipam::v1;

// Bounds the work one request can ask for; the largest real use (a multi-IP pod) is a handful.
constexpr int kMaxAddressesPerRequest = 65536;

absl::StatusOr<net::IpAddress> ParseIpField(const char* field, const std::string& text) {
  std::optional<net::IpAddress> ip = net::ParseIp(text);
  if (!ip) {
    return absl::InvalidArgumentError(absl::StrCat(field, " \"", text, "\" is not an IP address"));
  }
  return *ip;
}

absl::Status RequireHandle(const std::string& handle_id) {
  if (handle_id.empty()) return absl::InvalidArgumentError("handle_id is required");
  return absl::OkStatus();
}

// The first word of the allocator's explanation ("affine block ...", "claimed block ...",
// "borrowed from ...") as a bounded-cardinality metric label.
std::string SourceOf(const std::string& how) {
  for (const char* source : {"affine", "claimed", "borrowed"}) {
    if (how.rfind(source, 0) == 0) return source;
  }
  return "other";
}

void ToProto(const Assigned& a, pb::AssignedAddress& out) {
  out.set_ip(a.ip.ToString());
  out.set_block_cidr(a.block.ToString());
  out.set_how(a.how);
  out.set_sequence_number(a.sequence_number);
}

std::string Family(const net::IpAddress& ip) { return ip.family == 4 ? "4" : "6"; }

}  // namespace

absl::StatusOr<std::vector<Handle>> ListHandles(datastore::Datastore& store) {
  ASSIGN_OR_RETURN(datastore::ListResult list, store.List(HandlePrefix()));
  std::vector<Handle> handles;
  handles.reserve(list.entries.size());
  for (const datastore::Entry& e : list.entries) {
    absl::StatusOr<Handle> h = DecodeHandle(e.value);
    if (!h.ok()) return Annotate(h.status(), absl::StrCat("decoding ", e.key));
    handles.push_back(std::move(*h));
  }
  return handles;
}

absl::StatusOr<CheckReport> RunCheck(Allocator& allocator, datastore::Datastore& store,
                                     const InUseLoader& load_in_use) {
  if (!load_in_use) {
    return absl::UnimplementedError(
        "this ipamd has no source of in-use addresses to check against");
  }
  // In-use first, blocks last: an allocation made in between shows as "allocated, not in use"
  // (a candidate the collector re-checks), never as "in use, not allocated".
  ASSIGN_OR_RETURN(InUse in_use, load_in_use());
  ASSIGN_OR_RETURN(std::vector<Handle> handles, ListHandles(store));
  ASSIGN_OR_RETURN(std::vector<Block> blocks, allocator.ListBlocks());
  return calico::ipamd::Check(blocks, handles, in_use);
}

void ToProto(const Block& block, pb::Block& out) {
  out.set_cidr(block.cidr.ToString());
  out.set_affinity(block.affinity.value_or(""));
  out.set_num_addresses(block.NumAddresses());
  out.set_num_free(block.NumFree());
  out.set_sequence_number(block.sequence_number);
  out.set_deleted(block.deleted);
  for (int ordinal = 0; ordinal < block.NumAddresses(); ++ordinal) {
    const std::optional<int>& index = block.allocations[ordinal];
    if (!index) continue;
    pb::Allocation* a = out.add_allocations();
    a->set_ip(block.AddressOf(ordinal).ToString());
    a->set_block_cidr(block.cidr.ToString());
    if (*index >= 0 && *index < static_cast<int>(block.attributes.size())) {
      const AllocationAttributes& attrs = block.attributes[*index];
      a->set_handle_id(attrs.handle_id);
      for (const auto& [k, v] : attrs.secondary) (*a->mutable_attributes())[k] = v;
    }
    auto seq = block.sequence_number_for_allocation.find(ordinal);
    if (seq != block.sequence_number_for_allocation.end()) a->set_sequence_number(seq->second);
  }
}

void ToProto(const CheckReport& report, pb::CheckResponse& out) {
  out.set_clean(report.Clean());
  for (const CheckReport::Allocation& a : report.allocated_not_in_use) {
    pb::Allocation* p = out.add_allocated_not_in_use();
    p->set_ip(a.ip.ToString());
    p->set_block_cidr(a.block.ToString());
    p->set_handle_id(a.handle_id);
    for (const auto& [k, v] : a.attributes) (*p->mutable_attributes())[k] = v;
    p->set_sequence_number(a.sequence_number);
  }
  for (const CheckReport::Unallocated& u : report.in_use_not_allocated) {
    pb::CheckResponse::Unallocated* p = out.add_in_use_not_allocated();
    p->set_ip(u.ip.ToString());
    p->set_used_by(u.used_by);
  }
  for (const CheckReport::HandleMismatch& h : report.handles_mismatched) {
    pb::CheckResponse::HandleMismatch* p = out.add_handles_mismatched();
    p->set_handle_id(h.handle_id);
    p->set_handle_count(h.handle_count);
    p->set_block_count(h.block_count);
  }
  for (const CheckReport::InvalidBlock& b : report.invalid_blocks) {
    pb::CheckResponse::InvalidBlock* p = out.add_invalid_blocks();
    p->set_cidr(b.block.ToString());
    p->set_problem(b.problem);
  }
}

IpamService::IpamService(Allocator& allocator, datastore::Datastore& store, std::string node,
                         InUseLoader load_in_use, http::MetricsRegistry& metrics)
    : allocator_(allocator),
      store_(store),
      node_(std::move(node)),
      load_in_use_(std::move(load_in_use)),
      requests_(metrics.Counter("ipamd_requests_total", "gRPC requests by method and result code.",
                                {"method", "code"})),
      allocations_(metrics.Counter("ipamd_allocations_total",
                                   "Addresses assigned, by family and source (affine, claimed, "
                                   "borrowed, other).",
                                   {"family", "source"})),
      releases_(
          metrics.Counter("ipamd_releases_total", "Addresses released, by family.", {"family"})) {}

grpc::Status IpamService::Finish(const char* method, const absl::Status& status) {
  requests_.Inc({method, absl::StatusCodeToString(status.code())});
  if (absl::IsUnavailable(status) || absl::IsInternal(status) || absl::IsAborted(status)) {
    log::Warn("request_failed", {{"method", method}, {"error", status.ToString()}});
  }
  return rpc::ToGrpcStatus(status);
}

absl::Status IpamService::DoAutoAssign(const pb::AutoAssignRequest& request,
                                       pb::AutoAssignResponse& response) {
  RETURN_IF_ERROR(RequireHandle(request.handle_id()));
  if (request.num_v4() < 0 || request.num_v6() < 0 || request.num_v4() > kMaxAddressesPerRequest ||
      request.num_v6() > kMaxAddressesPerRequest) {
    return absl::InvalidArgumentError(absl::StrCat("num_v4 ", request.num_v4(), ", num_v6 ",
                                                   request.num_v6(), ": each must be 0-",
                                                   kMaxAddressesPerRequest));
  }
  if (request.return_existing()) {
    absl::StatusOr<std::vector<net::IpAddress>> held = allocator_.GetHandle(request.handle_id());
    if (held.ok() && !held->empty()) {
      response.set_handle_id(request.handle_id());
      for (const net::IpAddress& ip : *held) {
        pb::AssignedAddress* out = ip.family == 4 ? response.add_v4() : response.add_v6();
        out->set_ip(ip.ToString());
        out->set_how(absl::StrCat("already held by handle ", request.handle_id()));
      }
      return absl::OkStatus();
    }
    if (!held.ok() && !absl::IsNotFound(held.status())) return held.status();
  }
  AutoAssignRequest req;
  req.handle_id = request.handle_id();
  req.num_v4 = request.num_v4();
  req.num_v6 = request.num_v6();
  req.v4_pools.assign(request.v4_pools().begin(), request.v4_pools().end());
  req.v6_pools.assign(request.v6_pools().begin(), request.v6_pools().end());
  req.attributes.insert(request.attributes().begin(), request.attributes().end());
  req.node = request.node().empty() ? node_ : request.node();
  req.use = request.use() == pb::USE_TUNNEL ? Use::kTunnel : Use::kWorkload;
  ASSIGN_OR_RETURN(AutoAssignResult result, allocator_.AutoAssign(req));
  response.set_handle_id(req.handle_id);
  for (const auto* family : {&result.v4, &result.v6}) {
    for (const Assigned& a : *family) {
      ToProto(a, a.ip.family == 4 ? *response.add_v4() : *response.add_v6());
      allocations_.Inc({Family(a.ip), SourceOf(a.how)});
      log::Info(
          "assigned",
          {{"handle", req.handle_id}, {"ip", a.ip.ToString()}, {"node", req.node}, {"how", a.how}});
    }
  }
  return absl::OkStatus();
}

absl::Status IpamService::DoAssignIP(const pb::AssignIPRequest& request,
                                     pb::AssignIPResponse& response) {
  RETURN_IF_ERROR(RequireHandle(request.handle_id()));
  ASSIGN_OR_RETURN(net::IpAddress ip, ParseIpField("ip", request.ip()));
  std::map<std::string, std::string> attributes(request.attributes().begin(),
                                                request.attributes().end());
  std::string node = request.node().empty() ? node_ : request.node();
  ASSIGN_OR_RETURN(Assigned a, allocator_.AssignIP(ip, request.handle_id(), attributes, node));
  response.set_handle_id(request.handle_id());
  ToProto(a, *response.mutable_address());
  allocations_.Inc({Family(a.ip), "specific"});
  log::Info(
      "assigned",
      {{"handle", request.handle_id()}, {"ip", a.ip.ToString()}, {"node", node}, {"how", a.how}});
  return absl::OkStatus();
}

absl::Status IpamService::DoReleaseByHandle(const pb::ReleaseByHandleRequest& request,
                                            pb::ReleaseByHandleResponse& response) {
  RETURN_IF_ERROR(RequireHandle(request.handle_id()));
  ASSIGN_OR_RETURN(std::vector<net::IpAddress> released,
                   allocator_.ReleaseByHandle(request.handle_id()));
  for (const net::IpAddress& ip : released) {
    response.add_released_ips(ip.ToString());
    releases_.Inc({Family(ip)});
    log::Info("released", {{"handle", request.handle_id()}, {"ip", ip.ToString()}});
  }
  return absl::OkStatus();
}

absl::Status IpamService::DoReleaseIPs(const pb::ReleaseIPsRequest& request,
                                       pb::ReleaseIPsResponse& response) {
  std::vector<ReleaseRequest> requests;
  for (const pb::ReleaseIPsRequest::Item& item : request.items()) {
    ReleaseRequest r;
    ASSIGN_OR_RETURN(r.ip, ParseIpField("ip", item.ip()));
    if (item.has_handle_id()) r.handle_id = item.handle_id();
    if (item.has_sequence_number()) r.sequence_number = item.sequence_number();
    requests.push_back(std::move(r));
  }
  ASSIGN_OR_RETURN(std::vector<net::IpAddress> released, allocator_.ReleaseIPs(requests));
  for (const net::IpAddress& ip : released) {
    response.add_released_ips(ip.ToString());
    releases_.Inc({Family(ip)});
    log::Info("released", {{"ip", ip.ToString()}});
  }
  return absl::OkStatus();
}

absl::Status IpamService::DoGetHandle(const pb::GetHandleRequest& request,
                                      pb::GetHandleResponse& response) {
  RETURN_IF_ERROR(RequireHandle(request.handle_id()));
  ASSIGN_OR_RETURN(std::vector<net::IpAddress> ips, allocator_.GetHandle(request.handle_id()));
  response.set_handle_id(request.handle_id());
  for (const net::IpAddress& ip : ips) response.add_ips(ip.ToString());
  return absl::OkStatus();
}

absl::Status IpamService::DoListBlocks(const pb::ListBlocksRequest& request,
                                       pb::ListBlocksResponse& response) {
  if (request.family() != 0 && request.family() != 4 && request.family() != 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("family ", request.family(), ": must be 4, 6 or 0 (both)"));
  }
  ASSIGN_OR_RETURN(std::vector<Block> blocks, allocator_.ListBlocks());
  for (const Block& block : blocks) {
    if (request.family() != 0 && block.cidr.addr.family != request.family()) continue;
    ToProto(block, *response.add_blocks());
  }
  return absl::OkStatus();
}

absl::Status IpamService::DoCheck(pb::CheckResponse& response) {
  ASSIGN_OR_RETURN(CheckReport report, RunCheck(allocator_, store_, load_in_use_));
  ToProto(report, response);
  return absl::OkStatus();
}

grpc::Status IpamService::AutoAssign(grpc::ServerContext*, const pb::AutoAssignRequest* request,
                                     pb::AutoAssignResponse* response) {
  return Finish("AutoAssign", DoAutoAssign(*request, *response));
}
grpc::Status IpamService::AssignIP(grpc::ServerContext*, const pb::AssignIPRequest* request,
                                   pb::AssignIPResponse* response) {
  return Finish("AssignIP", DoAssignIP(*request, *response));
}
grpc::Status IpamService::ReleaseByHandle(grpc::ServerContext*,
                                          const pb::ReleaseByHandleRequest* request,
                                          pb::ReleaseByHandleResponse* response) {
  return Finish("ReleaseByHandle", DoReleaseByHandle(*request, *response));
}
grpc::Status IpamService::ReleaseIPs(grpc::ServerContext*, const pb::ReleaseIPsRequest* request,
                                     pb::ReleaseIPsResponse* response) {
  return Finish("ReleaseIPs", DoReleaseIPs(*request, *response));
}
grpc::Status IpamService::GetHandle(grpc::ServerContext*, const pb::GetHandleRequest* request,
                                    pb::GetHandleResponse* response) {
  return Finish("GetHandle", DoGetHandle(*request, *response));
}
grpc::Status IpamService::ListBlocks(grpc::ServerContext*, const pb::ListBlocksRequest* request,
                                     pb::ListBlocksResponse* response) {
  return Finish("ListBlocks", DoListBlocks(*request, *response));
}
grpc::Status IpamService::Check(grpc::ServerContext*, const pb::CheckRequest*,
                                pb::CheckResponse* response) {
  return Finish("Check", DoCheck(*response));
}

}  // namespace calico::ipamd::service
