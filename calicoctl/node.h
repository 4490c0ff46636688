#pragma once
// calicoctl node: questions for this node's daemons over their sockets (not the datastore).
//   node status [--birdd-socket=<PATH>]               birdd's BGP peers, upstream's shape
//   node routes [--family=4|6] [--birdd-socket=<PATH>]  birdd's Loc-RIB
//   node workloads [<NAME>] [--felixd-socket=<PATH>]  felixd's view of its workloads

#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace calico::calicoctl {

struct NodeArgs {
  std::vector<std::string> positional;        // after "node"
  std::map<std::string, std::string> values;  // --felixd-socket, --birdd-socket, --family
  std::set<std::string> flags;                // --help
};

inline constexpr char kNodeUsage[] =
    "Usage:\n"
    "  calicoctl node status [--birdd-socket=<PATH>]\n"
    "  calicoctl node routes [--family=<4|6>] [--birdd-socket=<PATH>]\n"
    "  calicoctl node workloads [<NAME>] [--felixd-socket=<PATH>]\n\n"
    "Options:\n"
    "  --birdd-socket=<PATH>   birdd's API socket [default: /var/run/calico/bgp.sock]\n"
    "  --felixd-socket=<PATH>  felixd's API socket [default: /var/run/calico/dataplane.sock]\n"
    "  --family=<4|6>          only IPv4 or IPv6 routes\n";

// Returns the exit status.
int RunNode(const NodeArgs& args, std::ostream& out, std::ostream& err);

}  // namespace calico::calicoctl
