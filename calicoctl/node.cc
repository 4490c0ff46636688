#include "calicoctl/node.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "calico/dataplane/v1/dataplane.grpc.pb.h"
#include "calicoctl/table.h"
#include "common/rpc/unix_server.h"

namespace calico::calicoctl {

namespace pb = calico::dataplane::v1;

int RunNode(const NodeArgs& args, std::ostream& out, std::ostream& err) {
  if (args.flags.count("help")) {
    out << kNodeUsage;
    return 0;
  }
  if (args.positional.empty() || args.positional[0] != "workloads" || args.positional.size() > 2) {
    err << kNodeUsage;
    return 1;
  }
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
      << " resyncs, " << status.repairs() << " repairs\n\n";

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

}  // namespace calico::calicoctl
