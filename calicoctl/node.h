#pragma once
// calicoctl node: questions for this node's daemons over their sockets (not the datastore).
//   node workloads [<NAME>] [--felixd-socket=<PATH>]  felixd's view of its workloads
// (`node status` for birdd arrives with the BGP issue.)

#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace calico::calicoctl {

struct NodeArgs {
  std::vector<std::string> positional;        // after "node"
  std::map<std::string, std::string> values;  // --felixd-socket
  std::set<std::string> flags;                // --help
};

inline constexpr char kNodeUsage[] =
    "Usage:\n"
    "  calicoctl node workloads [<NAME>] [--felixd-socket=<PATH>]\n\n"
    "Options:\n"
    "  --felixd-socket=<PATH>  felixd's API socket [default: /var/run/calico/dataplane.sock]\n";

// Returns the exit status.
int RunNode(const NodeArgs& args, std::ostream& out, std::ostream& err);

}  // namespace calico::calicoctl
