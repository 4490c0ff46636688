#pragma once
// tests/support/bird: a real BIRD 2 (Debian's bird2, /usr/sbin/bird) as a BGP peer for birdd's
// integration tests.
// Owns: the bird processes it forks, one per BirdPeer, each inside a TestNetns the test made,
// and each one's private temp directory ($TMPDIR/calico-bird-<pid>-XXXXXX: bird.conf, bird.ctl,
// bird.pid, bird.log); nothing else. Directories of a test process that no longer exists are
// removed by the next Start().
// Processes are signalled by the pid we forked only, never by name: other tests and engineers
// run bird on the same machine.
// Invariants:
//  - bird runs in the foreground (-f) as our direct child (fork, setns, execve), so the pid we
//    hold is bird's own; Start() checks it against bird's pidfile.
//  - The child gets PR_SET_PDEATHSIG(SIGKILL): if the test process dies (ctest timeout), bird
//    dies too. The signal follows the *thread* that forked: start peers from the test's thread.
//  - bird never sees a config `bird -p` has not accepted; a rejected one is InvalidArgument
//    carrying bird's own message (file:line:column and what it expected).
//  - Queries speak BIRD's control-socket protocol directly (what birdc does): every reply line
//    is "dddd-text" (more follows), " text" (continues the previous code) or "dddd text" (the
//    last line). 0xxx are OK codes, 1xxx/2xxx table rows and headers, 8xxx run-time errors,
//    9xxx parse errors (BIRD's doc/reply_codes).
//  - The destructor stops bird (SIGTERM, at most 2 s, then SIGKILL), reaps it and removes the
//    directory, also when a test failed half-way. Destroy peers before their TestNetns.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/support/netns/test_netns.h"

namespace calico::testing {

// Which routes a BGP session announces to its neighbor.
enum class BirdExport {
  kStatic,  // only this peer's own static routes (static_routes_v4/v6 of its family): default
  kAll,     // everything in the table, also routes learned from other neighbors (transit, RR)
  kNone,
};

// BIRD's `graceful restart` switch (RFC 4724), the same for every neighbor.
enum class BirdGracefulRestart {
  kAware,  // BIRD's default: announces the capability and helps a restarting neighbor, but
           // keeps no forwarding state itself (neighbors drop its routes when it dies)
  kOff,
  kOn,  // also the restarting role: neighbors keep its routes (stale) while it restarts
};

struct BirdNeighbor {
  std::string name;     // BGP protocol name, [A-Za-z][A-Za-z0-9_]*; empty: "peer<index>"
  std::string address;  // IPv4 or IPv6 literal; its family picks the channel (ipv4 {} or ipv6 {})
  uint32_t asn = 0;
  bool passive = false;          // never connects, only accepts
  std::string password;          // TCP-MD5 (RFC 2385) key; empty: none. No '"', '\\' or newline
  bool rr_client = false;        // treat the neighbor as a route-reflector client (iBGP only)
  std::optional<int> hold_time;  // seconds, 0 or >= 3; unset: BirdTimers::hold_time
  std::string source_address;    // local address of the session; empty: BIRD picks
  BirdExport export_routes = BirdExport::kStatic;
  std::string extra_config;  // verbatim inside the `protocol bgp` block
};

// BGP timers, for every neighbor. The defaults are small so that tests run in seconds; BIRD's
// own defaults are in the comments.
struct BirdTimers {
  int hold_time = 6;           // 240; the negotiated value is the smaller of both sides'
  int startup_hold_time = 6;   // 240; the hold timer before OPENs are exchanged
  int keepalive_time = 0;      // 0: a third of the hold time (BIRD's rule)
  int connect_delay_time = 1;  // 5; protocol start (or enable) to the first connect
  int connect_retry_time = 1;  // 120; a failed connect to the next one
  int error_wait_min = 1;      // 60; a session error to the automatic restart, doubling on
  int error_wait_max = 2;      // 300;   consecutive errors up to the maximum
  int error_forget_time = 10;  // 300; errors further apart than this start again at the minimum
};

struct BirdPeerConfig {
  std::string router_id;  // IPv4 dotted quad; required
  uint32_t asn = 0;       // `local as` of every neighbor; required
  std::vector<BirdNeighbor> neighbors;
  // Announced through `protocol static static4` / `static6` and the neighbors' export filters.
  // A bare prefix ("10.10.1.0/24") is an unreachable route (announced with next hop self);
  // anything after the prefix is BIRD route syntax, e.g. "10.10.1.0/24 via 10.200.0.2".
  std::vector<std::string> static_routes_v4;
  std::vector<std::string> static_routes_v6;
  // The kernel protocols (kernel4, kernel6) install BGP-learned routes into the namespace's main
  // table (as `proto bird`); otherwise they export nothing. Never import from the kernel.
  bool import_to_kernel = false;
  BirdGracefulRestart graceful_restart = BirdGracefulRestart::kAware;
  BirdTimers timers;
  std::string extra_config;  // verbatim at the end of bird.conf
};

// The protocols every config has besides the neighbors; neighbor names must differ from them.
inline constexpr std::string_view kBirdFixedProtocols[] = {"device1", "kernel4", "kernel6",
                                                           "static4", "static6"};

// The bird.conf for `config` (pure; not yet checked by bird). InvalidArgument for what bird
// would misread rather than reject (names, passwords, address families).
absl::StatusOr<std::string> RenderBirdConfig(const BirdPeerConfig& config);

// One reply of the control socket.
struct BirdReply {
  int code = 0;  // the last line's code: 0000..0099 OK, 8xxx run-time error, 9xxx parse error
  std::vector<std::pair<int, std::string>> lines;  // every line's code and text, in order
  std::string Text() const;                        // the texts, joined by '\n'
};

// A row of `show protocols all <name>`. Seen with bird 2.0.12: "start"/"Idle" while a direct
// neighbor's address is on no local interface; "start"/"Passive" for a passive session waiting;
// "start"/"Connect" and "Active" in turn while connects fail, which is also all a TCP-MD5
// mismatch shows (the kernels drop the segments; no error); "up"/"Established"; "down"/"Down"
// once disabled.
struct BirdProtocolStatus {
  std::string name;
  std::string proto;       // "BGP", "Static", "Kernel", "Device"
  std::string state;       // BIRD's protocol state: "up", "start", "down", "flush"
  std::string bgp_state;   // "Idle", "Passive", "Connect", "Active", "OpenSent", "OpenConfirm",
                           // "Established", "Close", "Down"; empty for other protocols
  std::string last_error;  // "Last error:", e.g. "Socket: Connection closed"; may be empty
};

struct BirdNextHop {
  std::string address;    // "via" address; empty for a device route ("dev <iface>")
  std::string interface;  // "on <iface>" / "dev <iface>"
};

// A route as `show route` prints it.
struct BirdRoute {
  std::string table;     // "master4", "master6"
  std::string prefix;    // "10.10.1.0/24", "fd00:10:1::/64"
  std::string type;      // "unicast", "unreachable", "blackhole", "prohibited"
  std::string protocol;  // the protocol that made it: a neighbor's name, "static4", ...
  bool primary = false;  // '*': the route selected for the prefix
  std::string bgp_path;  // "[AS65001i]" without brackets for BGP routes, else empty
  std::vector<BirdNextHop> next_hops;  // ECMP routes have several; unreachable ones none
  // The first next hop's address, or "".
  std::string next_hop() const { return next_hops.empty() ? "" : next_hops.front().address; }
};

// Parses the rows of a `show route` (or `show route all`) reply, as BIRD 2.0 prints them:
//   "Table master4:"
//   "10.10.1.0/24         unicast [a4 13:40:36.319] * (100) [AS65001i]"   prefix, type,
//                                        [protocol since ...], '*' if selected, (preference)
//   "\tvia 10.200.0.1 on veth-b"        one line per next hop ("\tdev eth0": device route)
//   "                     unicast [c4 ...] (100)"   a further route for the same prefix
// Attribute lines (`show route all`: "\tType: ...", "\tBGP.as_path: ...") are skipped.
// Exposed for unit tests.
std::vector<BirdRoute> ParseBirdRoutes(const BirdReply& reply);

// Sends one command to BIRD's control socket at `socket_path` and reads the whole reply.
// Unavailable if nothing answers there; a reply with an error code becomes a status: 8001
// (network not found) and 8003 (no protocols match) NotFound, 8002 (config file) and 9xxx
// InvalidArgument, other 8xxx FailedPrecondition.
absl::StatusOr<BirdReply> BirdCommand(const std::string& socket_path, std::string_view command,
                                      absl::Duration timeout = absl::Seconds(5));

class BirdPeer {
 public:
  // Writes and checks bird.conf, starts bird in `ns` and waits until its control socket
  // answers (sessions are not established yet). `ns` must outlive the peer.
  static absl::StatusOr<std::unique_ptr<BirdPeer>> Start(const TestNetns& ns,
                                                         BirdPeerConfig config);
  ~BirdPeer();
  BirdPeer(const BirdPeer&) = delete;
  BirdPeer& operator=(const BirdPeer&) = delete;

  // ---- control socket (FailedPrecondition when bird is not running) ----
  // Any command, e.g. "show protocols all" or "show route all for 10.0.0.1".
  absl::StatusOr<BirdReply> Command(std::string_view command) const;
  // NotFound when no protocol has that name.
  absl::StatusOr<BirdProtocolStatus> Protocol(std::string_view name) const;
  // The BGP state for a BGP protocol ("Established", "Active", ...), else BIRD's state ("up").
  absl::StatusOr<std::string> ProtocolState(std::string_view name) const;
  absl::Status WaitProtocolState(std::string_view name, std::string_view state,
                                 absl::Duration timeout) const;
  absl::Status WaitEstablished(std::string_view name,
                               absl::Duration timeout = absl::Seconds(10)) const;
  absl::Status WaitNotEstablished(std::string_view name,
                                  absl::Duration timeout = absl::Seconds(10)) const;
  // `show route [filter]`, e.g. "", "protocol peer0", "table master6", "10.10.1.0/24" (exact
  // prefix), "for 10.10.1.7" (longest match). No matching network is an empty list.
  absl::StatusOr<std::vector<BirdRoute>> Routes(std::string_view filter = "") const;
  // The number of routes `show route [filter] count` counts (after the filter, all tables).
  absl::StatusOr<int> RouteCount(std::string_view filter = "") const;
  // Waits until `prefix` has a selected route (from `protocol`, if given) and returns it.
  absl::StatusOr<BirdRoute> WaitRoute(std::string_view prefix, absl::Duration timeout,
                                      std::string_view protocol = "") const;
  // Waits until `prefix` has no route at all.
  absl::Status WaitNoRoute(std::string_view prefix, absl::Duration timeout) const;
  // Checks and installs `config`, then `configure`s bird and waits until the reconfiguration
  // is complete (protocols whose config changed restart; BIRD decides which). On a rejected
  // config the running one stays.
  absl::Status Reconfigure(BirdPeerConfig config);
  absl::Status RestartProtocol(std::string_view name);  // `restart <name>`
  absl::Status Disable(std::string_view name);          // `disable <name>`: Cease to the peer
  absl::Status Enable(std::string_view name);           // `enable <name>`

  // ---- the process ----
  // SIGKILL and reap: a crash, so no Cease is sent (the kernel closes the TCP sessions).
  void Kill();
  // SIGTERM (bird sends Cease/administrative shutdown to its neighbors and exits), at most 2 s,
  // then SIGKILL; reaps. Idempotent.
  void Stop();
  // Starts bird again with the current config and waits for its control socket.
  absl::Status Relaunch();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  const BirdPeerConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  std::string config_path() const { return dir_ + "/bird.conf"; }
  std::string control_socket() const { return dir_ + "/bird.ctl"; }
  std::string log_path() const { return dir_ + "/bird.log"; }
  // The end of bird's log (stderr: its `log stderr all` output and any crash message).
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  BirdPeer(std::string netns_path, BirdPeerConfig config)
      : netns_path_(std::move(netns_path)), config_(std::move(config)) {}

  absl::Status WriteCheckedConfig(const BirdPeerConfig& config);
  absl::Status Spawn();
  absl::Status WaitReady(absl::Duration timeout);
  // A status for a wait that timed out, with what was seen last and the log tail.
  absl::Status Timeout(std::string_view what, absl::Duration timeout, std::string_view last) const;

  std::string netns_path_;
  BirdPeerConfig config_;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace calico::testing
