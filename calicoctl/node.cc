#include "calicoctl/node.h"

#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "calico/bgp/v1/bgp.grpc.pb.h"
#include "calico/dataplane/v1/dataplane.grpc.pb.h"
#include "calicoctl/table.h"
#include "common/rpc/unix_server.h"

namespace calico::calicoctl {
namespace {

namespace pb = calico::dataplane::v1;
namespace bgp = calico::bgp::v1;

std::string Value(const NodeArgs& args, const std::string& name, const std::string& fallback) {
  auto it = args.values.find(name);
  return it == args.values.end() ? fallback : it->second;
}

// BIRD's `show protocols` SINCE: the time when it is today, else the date.
std::string Since(int64_t unix_ms, absl::Time now) {
  if (unix_ms == 0) return "";
  absl::Time t = absl::FromUnixMillis(unix_ms);
  if (absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()) == absl::FormatTime("%Y-%m-%d", now, absl::UTCTimeZone())) {
    return absl::FormatTime("%H:%M:%S", t, absl::UTCTimeZone());
  }
  return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone());
}

// felixd's status, or nullopt when it does not answer (within 3 s).
std::optional<pb::GetStatusResponse> FelixStatus(const NodeArgs& args) {
  auto stub = pb::Dataplane::NewStub(
      rpc::DialUnix(Value(args, "felixd-socket", "/var/run/calico/dataplane.sock")));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  pb::GetStatusResponse status;
  if (!stub->GetStatus(&ctx, {}, &status).ok()) return std::nullopt;
  return status;
}

bool HasVxlan(const pb::GetStatusResponse& felix) { return felix.has_vxlan() || felix.has_vxlan6(); }

void PrintVxlan(const pb::GetStatusResponse& felix, std::ostream& out) {
  if (!HasVxlan(felix)) return;
  std::vector<std::vector<std::string>> rows;
  for (const pb::VxlanStatus* v : {felix.has_vxlan() ? &felix.vxlan() : nullptr,
                                   felix.has_vxlan6() ? &felix.vxlan6() : nullptr}) {
    if (v == nullptr) continue;
    rows.push_back({v->device(), v->tunnel_ip().empty() ? "(waiting for ipamd)" : v->tunnel_ip(),
                    v->mac(), std::to_string(v->vteps()), std::to_string(v->routes()),
                    std::to_string(v->mtu())});
  }
  out << "\nVXLAN status\n";
  PrintBorderedTable(out, {"DEVICE", "TUNNEL ADDRESS", "VTEP MAC", "REMOTE VTEPS", "ROUTES", "MTU"},
                     rows, {}, true);
}

// Upstream's `calicoctl node status`: whether the BGP daemon runs, then a peer table per family;
// plus felixd's VXLAN state when a pool uses VXLAN (a VXLAN-only node runs no birdd at all).
int NodeStatus(const NodeArgs& args, std::ostream& out, std::ostream& err) {
  const std::string socket = Value(args, "birdd-socket", "/var/run/calico/bgp.sock");
  auto stub = bgp::Bgp::NewStub(rpc::DialUnix(socket));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  bgp::GetStatusResponse status;
  grpc::Status st = stub->GetStatus(&ctx, {}, &status);
  if (!st.ok()) {
    std::optional<pb::GetStatusResponse> felix = FelixStatus(args);
    if (felix && HasVxlan(*felix)) {
      out << "Calico process is running.\n\nNone of the BGP backend processes (birdd) are running.\n";
      PrintVxlan(*felix, out);
      out << "\n";
      for (const std::string& p : felix->problems()) out << "problem: " << p << "\n";
      return 0;
    }
    out << "Calico process is not running.\n";
    err << "birdd at " << socket << " did not answer: " << st.error_message() << "\n";
    return 1;
  }
  out << "Calico process is running.\n";
  const absl::Time now = absl::Now();
  for (int family : {4, 6}) {
    std::vector<std::vector<std::string>> rows;
    for (const bgp::Peer& p : status.peers()) {
      bool v6 = p.address().find(':') != std::string::npos;
      if (v6 != (family == 6)) continue;
      const bool up = p.state() == "Established";
      std::string info = up ? "Established" : p.state();
      if (!up && !p.info().empty()) absl::StrAppend(&info, " ", p.info());
      rows.push_back({p.address(), p.type(), up ? "up" : "start", Since(p.since_unix_ms(), now), info});
    }
    out << "\nIPv" << family << " BGP status\n";
    if (rows.empty()) {
      out << "No IPv" << family << " peers found.\n";
      continue;
    }
    PrintBorderedTable(out, {"PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"}, rows, {}, true);
  }
  if (std::optional<pb::GetStatusResponse> felix = FelixStatus(args)) PrintVxlan(*felix, out);
  out << "\n";
  if (status.problems_size() > 0) {
    out << "Configuration problems:\n";
    for (const std::string& p : status.problems()) out << "  " << p << "\n";
    out << "\n";
  }
  return 0;
}

int NodeRoutes(const NodeArgs& args, std::ostream& out, std::ostream& err) {
  const std::string socket = Value(args, "birdd-socket", "/var/run/calico/bgp.sock");
  const std::string family = Value(args, "family", "0");
  if (family != "0" && family != "4" && family != "6") {
    err << "--family=" << family << ": expected 4 or 6\n";
    return 1;
  }
  auto stub = bgp::Bgp::NewStub(rpc::DialUnix(socket));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  bgp::ListRoutesRequest req;
  req.set_family(std::stoi(family));
  bgp::ListRoutesResponse resp;
  grpc::Status st = stub->ListRoutes(&ctx, req, &resp);
  if (!st.ok()) {
    err << "birdd at " << socket << " did not answer: " << st.error_message() << "\n";
    return 1;
  }
  std::vector<std::vector<std::string>> rows;
  for (const bgp::Route& r : resp.routes()) {
    std::vector<std::string> path;
    for (uint32_t as : r.as_path()) path.push_back(std::to_string(as));
    rows.push_back({r.prefix(), r.next_hops().empty() ? "-" : absl::StrJoin(r.next_hops(), ","), r.from_peer(),
                    path.empty() ? "-" : absl::StrJoin(path, " "), std::to_string(r.local_pref())});
  }
  PrintTable(out, {"PREFIX", "NEXT HOPS", "FROM", "AS PATH", "LOCAL PREF"}, rows);
  return 0;
}

int NodeWorkloads(const NodeArgs& args, std::ostream& out, std::ostream& err);

}  // namespace

int RunNode(const NodeArgs& args, std::ostream& out, std::ostream& err) {
  if (args.flags.count("help")) {
    out << kNodeUsage;
    return 0;
  }
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub == "status" && args.positional.size() == 1) return NodeStatus(args, out, err);
  if (sub == "routes" && args.positional.size() == 1) return NodeRoutes(args, out, err);
  if (sub == "workloads" && args.positional.size() <= 2) return NodeWorkloads(args, out, err);
  err << kNodeUsage;
  return 1;
}

namespace {

int NodeWorkloads(const NodeArgs& args, std::ostream& out, std::ostream& err) {
  auto it = args.values.find("felixd-socket");
  std::string socket = it == args.values.end() ? "/var/run/calico/dataplane.sock" : it->second;
  auto stub = pb::Dataplane::NewStub(rpc::DialUnix(socket));
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);

  grpc::ClientContext status_ctx;
  status_ctx.set_deadline(deadline);
  pb::GetStatusResponse status;
  grpc::Status st = stub->GetStatus(&status_ctx, {}, &status);
  if (!st.ok()) {
    err << "felixd at " << socket << " did not answer: " << st.error_message() << "\n";
    return 1;
  }
  out << "felixd on node " << status.node() << ": " << (status.ready() ? "ready" : "NOT READY")
      << ", " << status.workloads() << " workloads, " << status.routes() << " routes (proto "
      << status.route_protocol() << "), MTU " << status.mtu() << ", " << status.resyncs()
      << " resyncs, " << status.repairs() << " repairs\n";
  for (const std::string& p : status.problems()) out << "problem: " << p << "\n";
  for (const pb::VxlanStatus* v : {status.has_vxlan() ? &status.vxlan() : nullptr,
                                   status.has_vxlan6() ? &status.vxlan6() : nullptr}) {
    if (v == nullptr) continue;
    out << "vxlan: " << v->device() << " "
        << (v->tunnel_ip().empty() ? "(no tunnel address yet)" : v->tunnel_ip()) << " " << v->mac()
        << ", " << v->vteps() << " remote VTEPs, " << v->routes() << " routes, MTU " << v->mtu()
        << "\n";
  }
  if (status.has_policy()) {
    const pb::PolicyStatus& ps = status.policy();
    out << "policy: " << (ps.ready() ? "programmed" : "NOT PROGRAMMED") << ", " << ps.policies()
        << " policies, " << ps.endpoints() << " endpoints (" << ps.local_endpoints()
        << " local), table inet calico " << ps.chains() << " chains " << ps.sets() << " sets, "
        << ps.transactions() << " transactions, " << ps.failures() << " failures, "
        << ps.repairs() << " repairs, revision " << ps.revision() << "\n";
    for (const std::string& p : ps.problems()) out << "policy problem: " << p << "\n";
  } else {
    out << "policy: disabled (felixd --policy=false)\n";
  }
  out << "\n";

  grpc::ClientContext ctx;
  ctx.set_deadline(deadline);
  pb::ListWorkloadsRequest req;
  if (args.positional.size() == 2) req.set_endpoint_name(args.positional[1]);
  pb::ListWorkloadsResponse resp;
  st = stub->ListWorkloads(&ctx, req, &resp);
  if (!st.ok()) {
    err << "felixd ListWorkloads: " << st.error_message() << "\n";
    return 1;
  }
  if (args.positional.size() == 2 && resp.workloads_size() == 0) {
    err << "felixd has no workload endpoint \"" << args.positional[1] << "\"\n";
    return 1;
  }
  std::vector<std::vector<std::string>> rows;
  for (const pb::Workload& w : resp.workloads()) {
    rows.push_back({w.endpoint_name(), w.host_interface(), absl::StrJoin(w.ips(), ","),
                    w.host_interface_present() ? "up" : "MISSING",
                    w.routes_programmed() ? "programmed" : "MISSING"});
  }
  PrintTable(out, {"WORKLOAD ENDPOINT", "INTERFACE", "IPS", "LINK", "ROUTES"}, rows);
  return 0;
}

}  // namespace

int RunPolicy(const NodeArgs& args, std::ostream& out, std::ostream& err) {
  if (args.flags.count("help")) {
    out << kPolicyUsage;
    return 0;
  }
  if (args.positional.size() != 1 || args.positional[0] != "explain") {
    err << kPolicyUsage;
    return 1;
  }
  pb::ExplainPolicyRequest req;
  std::string src = Value(args, "source", ""), dst = Value(args, "destination", "");
  if (src.empty() || dst.empty()) {
    err << "policy explain needs --source and --destination\n" << kPolicyUsage;
    return 1;
  }
  req.set_source(src);
  req.set_destination(dst);
  req.set_protocol(Value(args, "protocol", "TCP"));
  struct IntOpt {
    const char* name;
    void (pb::ExplainPolicyRequest::*set)(int32_t);
  };
  for (IntOpt o : {IntOpt{"port", &pb::ExplainPolicyRequest::set_destination_port},
                   IntOpt{"source-port", &pb::ExplainPolicyRequest::set_source_port},
                   IntOpt{"icmp-type", &pb::ExplainPolicyRequest::set_icmp_type},
                   IntOpt{"icmp-code", &pb::ExplainPolicyRequest::set_icmp_code}}) {
    auto it = args.values.find(o.name);
    if (it == args.values.end()) continue;
    int v = 0;
    if (!absl::SimpleAtoi(it->second, &v)) {
      err << "--" << o.name << "=" << it->second << ": not a number\n";
      return 1;
    }
    (req.*o.set)(v);
  }
  std::string socket = Value(args, "felixd-socket", "/var/run/calico/dataplane.sock");
  auto stub = pb::Dataplane::NewStub(rpc::DialUnix(socket));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  pb::ExplainPolicyResponse resp;
  grpc::Status st = stub->ExplainPolicy(&ctx, req, &resp);
  if (!st.ok()) {
    err << "felixd at " << socket << ": " << st.error_message() << "\n";
    return 1;
  }
  out << resp.packet() << ": " << (resp.allowed() ? "ALLOWED" : "DENIED") << "\n";
  if (resp.steps_size() == 0) out << "  neither end is a workload endpoint: not policed here\n";
  for (const pb::ExplainPolicyResponse::Step& step : resp.steps()) {
    for (const std::string& t : step.trace()) out << "  " << step.direction() << ": " << t << "\n";
    out << "  " << step.description() << "\n";
  }
  return resp.allowed() ? 0 : 3;
}

}  // namespace calico::calicoctl
