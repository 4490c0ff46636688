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

// calicoctl policy explain: felixd's verdict for one packet, from the model it programs.
inline constexpr char kPolicyUsage[] =
    "Usage:\n"
    "  calicoctl policy explain --source=<IP> --destination=<IP> [--protocol=<PROTO>]\n"
    "                           [--port=<PORT>] [--source-port=<PORT>] [--icmp-type=<N>]\n"
    "                           [--icmp-code=<N>] [--felixd-socket=<PATH>]\n\n"
    "Which tier, policy and rule (or profile) decides a packet from <source> to <destination>:\n"
    "the source workload's egress, then the destination workload's ingress. Any node's felixd\n"
    "can answer for any workloads (each knows the whole cluster's policy).\n\n"
    "Options:\n"
    "  --protocol=<PROTO>      TCP, UDP, SCTP, UDPLite, ICMP, ICMPv6 or a number [default: TCP]\n"
    "  --port=<PORT>           destination port\n"
    "  --source-port=<PORT>    source port\n"
    "  --icmp-type=<N>         ICMP type [default: echo request]\n"
    "  --icmp-code=<N>         ICMP code [default: 0]\n"
    "  --felixd-socket=<PATH>  felixd's API socket [default: /var/run/calico/dataplane.sock]\n\n"
    "Exit status: 0 allowed, 3 denied, 1 when felixd cannot answer.\n";
int RunPolicy(const NodeArgs& args, std::ostream& out, std::ostream& err);

}  // namespace calico::calicoctl
