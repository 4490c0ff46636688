#include "felixd/service/dataplane_service.h"

#include "absl/strings/str_cat.h"
#include "common/rpc/status.h"

namespace calico::felixd {
namespace {

namespace pb = calico::dataplane::v1;

absl::StatusOr<WorkloadRequest> FromProto(const pb::WorkloadId& id, const std::string& netns) {
  WorkloadRequest r;
  r.orchestrator = id.orchestrator();
  r.ns = id.namespace_();
  r.pod = id.pod();
  r.container_id = id.container_id();
  if (!id.endpoint().empty()) r.endpoint = id.endpoint();
  r.netns = netns;
  return r;
}

absl::Status ParseIps(const google::protobuf::RepeatedPtrField<std::string>& ips,
                      std::vector<net::Prefix>& out) {
  for (const std::string& text : ips) {
    std::optional<net::Prefix> p = net::ParseCidrOrIp(text);
    if (!p) return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IP address"));
    out.push_back(*p);
  }
  return absl::OkStatus();
}

}  // namespace

grpc::Status DataplaneService::SetupWorkload(grpc::ServerContext*, const pb::SetupWorkloadRequest* req,
                                             pb::SetupWorkloadResponse* resp) {
  absl::StatusOr<WorkloadRequest> r = FromProto(req->id(), req->netns());
  if (!r.ok()) return rpc::ToGrpcStatus(r.status());
  if (absl::Status s = ParseIps(req->ips(), r->ips); !s.ok()) return rpc::ToGrpcStatus(s);
  r->mtu = req->mtu();
  r->labels.insert(req->labels().begin(), req->labels().end());
  r->profiles.assign(req->profiles().begin(), req->profiles().end());
  r->service_account = req->service_account();
  absl::StatusOr<SetupResult> result = felix_.Setup(*r);
  if (!result.ok()) return rpc::ToGrpcStatus(result.status());
  resp->set_host_interface(result->host_ifname);
  resp->set_container_mac(result->container_mac);
  resp->set_endpoint_name(result->endpoint_name);
  bool v4 = false, v6 = false;
  for (const net::Prefix& p : result->ips) {
    resp->add_ips(net::FormatCidr(p));
    (p.addr.family == 4 ? v4 : v6) = true;
  }
  if (v4) resp->set_ipv4_gateway(kIpv4Gateway);
  if (v6) resp->set_ipv6_gateway(kIpv6Gateway);
  resp->set_mtu(result->mtu);
  resp->set_existing(result->existing);
  return grpc::Status::OK;
}

grpc::Status DataplaneService::TeardownWorkload(grpc::ServerContext*,
                                                const pb::TeardownWorkloadRequest* req,
                                                pb::TeardownWorkloadResponse* resp) {
  absl::StatusOr<WorkloadRequest> r = FromProto(req->id(), req->netns());
  if (!r.ok()) return rpc::ToGrpcStatus(r.status());
  absl::StatusOr<TeardownResult> result = felix_.Teardown(*r);
  if (!result.ok()) return rpc::ToGrpcStatus(result.status());
  for (const std::string& s : result->removed) resp->add_removed(s);
  resp->set_skipped_reason(result->skipped_reason);
  return grpc::Status::OK;
}

grpc::Status DataplaneService::CheckWorkload(grpc::ServerContext*, const pb::CheckWorkloadRequest* req,
                                             pb::CheckWorkloadResponse*) {
  absl::StatusOr<WorkloadRequest> r = FromProto(req->id(), req->netns());
  if (!r.ok()) return rpc::ToGrpcStatus(r.status());
  if (absl::Status s = ParseIps(req->ips(), r->ips); !s.ok()) return rpc::ToGrpcStatus(s);
  return rpc::ToGrpcStatus(felix_.Check(*r));
}

grpc::Status DataplaneService::ListWorkloads(grpc::ServerContext*, const pb::ListWorkloadsRequest* req,
                                             pb::ListWorkloadsResponse* resp) {
  for (const WorkloadInfo& w : felix_.List(req->endpoint_name())) {
    pb::Workload* out = resp->add_workloads();
    out->set_endpoint_name(w.endpoint_name);
    out->set_host_interface(w.host_ifname);
    for (const net::Prefix& p : w.ips) out->add_ips(net::FormatCidr(p));
    out->set_host_interface_present(w.host_interface_present);
    out->set_routes_programmed(w.routes_programmed);
  }
  return grpc::Status::OK;
}

grpc::Status DataplaneService::GetStatus(grpc::ServerContext*, const pb::GetStatusRequest*,
                                         pb::GetStatusResponse* resp) {
  FelixStatus s = felix_.Status();
  resp->set_node(felix_.options().node);
  resp->set_ready(s.ready);
  resp->set_workloads(static_cast<int32_t>(s.workloads));
  resp->set_routes(static_cast<int32_t>(s.routes));
  if (s.last_resync != absl::InfinitePast()) {
    resp->set_last_resync_unix_ms(absl::ToUnixMillis(s.last_resync));
  }
  resp->set_resyncs(s.resyncs);
  resp->set_repairs(s.repairs);
  resp->set_route_protocol(std::to_string(felix_.options().route_protocol));
  resp->set_mtu(s.mtu);
  for (const std::string& p : s.problems) resp->add_problems(p);
  auto fill = [](const VxlanStatus& in, pb::VxlanStatus* v) {
    v->set_device(in.device);
    v->set_tunnel_ip(in.tunnel_ip);
    v->set_mac(in.mac);
    v->set_vteps(static_cast<int32_t>(in.vteps));
    v->set_routes(static_cast<int32_t>(in.routes));
    v->set_mtu(in.device_mtu);
  };
  if (s.vxlan) fill(*s.vxlan, resp->mutable_vxlan());
  if (s.vxlan6) fill(*s.vxlan6, resp->mutable_vxlan6());
  if (policy_ != nullptr) {
    PolicyStatus ps = policy_->Status();
    pb::PolicyStatus* out = resp->mutable_policy();
    out->set_ready(ps.ready);
    out->set_endpoints(static_cast<int32_t>(ps.endpoints));
    out->set_local_endpoints(static_cast<int32_t>(ps.local_endpoints));
    out->set_policies(static_cast<int32_t>(ps.policies));
    out->set_chains(static_cast<int32_t>(ps.chains));
    out->set_sets(static_cast<int32_t>(ps.sets));
    out->set_transactions(ps.transactions);
    out->set_failures(ps.failures);
    out->set_repairs(ps.repairs);
    out->set_revision(ps.revision);
    if (ps.last_refresh != absl::InfinitePast()) {
      out->set_last_refresh_unix_ms(absl::ToUnixMillis(ps.last_refresh));
    }
    for (const std::string& p : ps.problems) out->add_problems(p);
  }
  return grpc::Status::OK;
}

grpc::Status DataplaneService::ExplainPolicy(grpc::ServerContext*, const pb::ExplainPolicyRequest* req,
                                             pb::ExplainPolicyResponse* resp) {
  if (policy_ == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "policy is disabled on this node (--policy=false)");
  }
  if (!policy_->Status().ready) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "policy has not been synced from the datastore yet");
  }
  policy::Packet packet;
  std::optional<net::IpAddress> src = net::ParseIp(req->source());
  std::optional<net::IpAddress> dst = net::ParseIp(req->destination());
  if (!src || !dst) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("\"", !src ? req->source() : req->destination(),
                                     "\" is not an IP address"));
  }
  if (src->family != dst->family) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "source and destination are of different IP versions");
  }
  packet.src = *src;
  packet.dst = *dst;
  std::string protocol = req->protocol().empty() ? "TCP" : req->protocol();
  if (std::optional<int> n = policy::ProtocolNumber(protocol)) {
    packet.protocol = *n;
  } else if (!protocol.empty() && protocol.find_first_not_of("0123456789") == std::string::npos &&
             protocol.size() <= 3 && std::stoi(protocol) <= 255) {
    packet.protocol = std::stoi(protocol);
  } else {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("protocol \"", protocol,
                                     "\": expected TCP, UDP, SCTP, UDPLite, ICMP, ICMPv6 or 0-255"));
  }
  for (int port : {req->source_port(), req->destination_port()}) {
    if (port < 0 || port > 65535) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("port ", port, " is out of range"));
    }
  }
  packet.src_port = req->source_port();
  packet.dst_port = req->destination_port();
  if (packet.protocol == policy::kProtoIcmp || packet.protocol == policy::kProtoIcmpV6) {
    packet.icmp_type = req->has_icmp_type() ? req->icmp_type() : (packet.protocol == policy::kProtoIcmp ? 8 : 128);
    if (req->has_icmp_code()) packet.icmp_code = req->icmp_code();
    else packet.icmp_code = 0;
  }
  policy::Verdict verdict = policy_->Explain(packet);
  resp->set_allowed(verdict.allowed);
  resp->set_packet(packet.ToString());
  resp->set_description(verdict.Describe());
  for (const std::optional<policy::DirectionVerdict>* step : {&verdict.egress, &verdict.ingress}) {
    if (!step->has_value()) continue;
    const policy::DirectionVerdict& d = **step;
    pb::ExplainPolicyResponse::Step* out = resp->add_steps();
    out->set_direction(d.direction == policy::Direction::kIngress ? "ingress" : "egress");
    out->set_endpoint(d.endpoint);
    out->set_allowed(d.allowed);
    switch (d.reason) {
      case policy::Reason::kRule: out->set_reason("rule"); break;
      case policy::Reason::kEndOfTier: out->set_reason("end-of-tier"); break;
      case policy::Reason::kProfileRule: out->set_reason("profile-rule"); break;
      case policy::Reason::kNoProfileAllowed: out->set_reason("no-profile-allowed"); break;
      case policy::Reason::kFailsafe: out->set_reason("failsafe"); break;
    }
    out->set_tier(d.tier);
    out->set_policy(d.policy);
    out->set_rule_index(d.rule_index);
    out->set_rule_origin(d.rule_origin);
    out->set_profile(d.profile);
    for (const std::string& t : d.trace) out->add_trace(t);
    out->set_description(d.Describe());
  }
  return grpc::Status::OK;
}

grpc::Status DataplaneService::WatchAdvertisedRoutes(grpc::ServerContext* context,
                                                     const pb::WatchAdvertisedRoutesRequest*,
                                                     grpc::ServerWriter<pb::AdvertisedRoutes>* writer) {
  uint64_t version = 0;
  std::set<AdvertisedRoute> sent;
  bool first = true;
  while (!context->IsCancelled()) {
    auto state = felix_.WaitAdvertised(version, absl::Milliseconds(500));
    if (!state) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "felixd is stopping");
    auto& [v, now] = *state;
    if (!first && v == version) continue;
    pb::AdvertisedRoutes msg;
    msg.set_snapshot(first);
    for (const AdvertisedRoute& r : now) {
      if (!first && sent.count(r)) continue;
      pb::AdvertisedRoutes::Route* out = msg.add_added();
      out->set_cidr(net::FormatCidr(r.cidr));
      out->set_kind(r.block ? "block" : "borrowed");
    }
    if (!first) {
      for (const AdvertisedRoute& r : sent) {
        if (!now.count(r)) msg.add_removed(net::FormatCidr(r.cidr));
      }
    }
    if (!writer->Write(msg)) break;
    version = v;
    sent = std::move(now);
    first = false;
  }
  return grpc::Status::OK;
}

}  // namespace calico::felixd
