#pragma once
// birdd/service/birdd.h — the daemon's core: the BGP plan from the datastore, this node's
// routes from felixd, one Speaker and its FIB, all driven on one event-loop thread.
// Owns: the speaker's sessions, the listener, `proto bird` routes in the main table.
// Never touches: felixd's routes, nftables, the datastore (read only).
//
// Threads: the event loop (speaker, FIB, every mutation); a datastore watcher that re-reads
// Node/BGPConfiguration/BGPPeer/IPPool on change and posts the new plan; a felixd client that
// posts the advertised routes. Status()/Routes() run on the loop and wait for it.
//
// Graceful restart (RFC 4724, restarting side): when the kernel still holds `proto bird` routes
// at start, a previous birdd was forwarding on them. They stay in place (written over as routes
// arrive) and strays are removed only once every peer is back with End-of-RIB, or after
// `restart_wait`: forwarding never stops across a birdd restart or upgrade. Sessions only start
// once felixd's first snapshot is in (or `origin_wait` passed), so no peer gets an End-of-RIB
// without this node's own routes and sweeps them.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "birdd/config/plan.h"
#include "birdd/kernel/fib.h"
#include "birdd/kernel/fib_writer.h"
#include "birdd/peers/event_loop.h"
#include "birdd/peers/listener.h"
#include "birdd/speaker/speaker.h"
#include "calico/bgp/v1/bgp.pb.h"
#include "common/datastore/datastore.h"
#include "common/kernel/netlink.h"

namespace calico::birdd {

struct BirddOptions {
  std::string node;
  std::string felixd_socket;  // empty: no origin (a route reflector without workloads)
  std::string secrets_dir;    // BGP passwords: <dir>/<secret>/<key>
  bool program_kernel = true;
  absl::Duration origin_wait = absl::Seconds(10);    // for felixd's first snapshot
  absl::Duration restart_wait = absl::Seconds(120);  // restarted: longest wait for peers' EoR
  absl::Duration resync_interval = absl::Seconds(30);
  fsm::Config timers;  // hold time, connect retry, ... (passive is set per peer)
};

// What birdd needs of an IPPool.
struct PoolInfo {
  net::Prefix cidr;
  bool exported = true;           // enabled and not disableBGPExport
  std::string ipip_mode = "Never";  // Never | Always | CrossSubnet
  bool operator==(const PoolInfo&) const = default;
};

// The device a learned route's next hops go through: "tunl0" (onlink) when its prefix lies in
// an IP-in-IP pool (Always, or CrossSubnet with the next hop outside `node_subnet`), else ""
// (the connected prefix decides). Pure; exposed for tests.
std::string TunnelFor(const std::vector<PoolInfo>& pools, const std::optional<net::Prefix>& node_subnet,
                      const net::Prefix& prefix, const std::vector<net::IpAddress>& next_hops);

struct PeerStatus {
  config::Peer peer;
  speaker::NeighborStatus session;
};

class Birdd {
 public:
  Birdd(datastore::Datastore& store, kernel::Netlink& netlink, BirddOptions options);
  ~Birdd();
  Birdd(const Birdd&) = delete;
  Birdd& operator=(const Birdd&) = delete;

  // Reads the kernel (graceful restart?), starts the loop and the watcher threads.
  absl::Status Start();
  void Stop();  // sessions closed with Cease; kernel routes left for the next run

  // Plan applied and sessions started.
  bool ready() const { return ready_; }
  // "peer 10.0.0.9 (BGPPeer "tor"): Active, Connection refused" per peer not Established.
  std::vector<std::string> DownPeers();
  calico::bgp::v1::GetStatusResponse Status();
  calico::bgp::v1::ListRoutesResponse Routes(int family);
  std::vector<PeerStatus> Peers();

 private:
  // --- loop thread ---
  void ApplyPlan(config::Plan plan, std::vector<PoolInfo> pools);
  void ReprogramKernel();  // every learned route again (pool modes changed)
  void SetTunnelMissing(bool missing);
  void ApplyAdvertised(bool snapshot, std::vector<net::Prefix> added, std::vector<net::Prefix> removed);
  void Reoriginate();
  void StartSessions();
  void OnKernel(const net::Prefix& prefix, const std::vector<net::IpAddress>& next_hops);
  void Tick();
  speaker::NeighborConfig NeighborFor(const config::Peer& peer) const;
  void RemovePeer(const net::IpAddress& address);
  // Runs `fn` on the loop thread and waits (not from the loop thread).
  template <typename Fn>
  auto OnLoop(Fn fn) -> decltype(fn());

  // --- other threads ---
  void WatchDatastore();
  absl::Status ReadDatastore();
  void WatchFelixd();

  datastore::Datastore& store_;
  kernel::Netlink& netlink_;
  BirddOptions options_;
  std::unique_ptr<peers::EventLoop> loop_;
  std::thread loop_thread_;
  std::thread datastore_thread_;
  std::thread felixd_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> ready_{false};
  absl::Time started_ = absl::Now();

  // Loop-thread state.
  // The FIB is written on a thread of its own (FibWriter): BGP never waits for the kernel.
  std::unique_ptr<kernel_fib::Fib> fib_;
  std::unique_ptr<kernel_fib::FibWriter> fib_writer_;
  std::unique_ptr<peers::Listener> listener_;
  std::unique_ptr<speaker::Speaker> speaker_;
  std::optional<config::Plan> plan_;
  std::map<net::IpAddress, config::Peer> peers_;  // configured in the speaker
  std::vector<PoolInfo> pools_;
  std::string tunnel_problem_;  // tunl0 wanted but missing: said in Status and the log
  std::set<net::Prefix> advertised_;              // felixd's, unfiltered
  // In the speaker, with the communities it was originated with.
  std::map<net::Prefix, std::pair<std::vector<uint32_t>, std::vector<wire::LargeCommunity>>> originated_;
  bool origin_synced_ = false;                    // felixd's first snapshot arrived
  bool sessions_started_ = false;
  bool restarting_ = false;  // kernel routes of a previous run are waiting for re-sync
  absl::Time last_resync_ = absl::InfinitePast();
  std::string fib_error_;  // writer thread only

  // The felixd stream's context, to cancel it on Stop.
  std::mutex felixd_mu_;
  void* felixd_context_ = nullptr;  // grpc::ClientContext*
};

}  // namespace calico::birdd
