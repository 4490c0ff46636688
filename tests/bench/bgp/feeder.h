#pragma once
// tests/bench/bgp: the feeder — a minimal eBGP speaker that accepts one session inside a test
// namespace and, the moment it is Established, writes a pre-encoded stream of UPDATEs as fast
// as TCP takes them (BIRD 2 as a feeder would hold back its last partial export chunk for up
// to 3 s). It then keeps the session alive until stopped. Owns: its thread and sockets.

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/ip.h"

namespace calico::birdd::bench {

// CLOCK_MONOTONIC in nanoseconds: comparable across the bench and its child processes.
int64_t MonoNs();

// /24s from 16.0.0.0 upwards, `per_update` sharing one path (AS path 65001 <100000 + k>) with
// `next_hop`, packed into ≤4096-octet UPDATEs for a session with 4-octet ASes.
absl::StatusOr<std::vector<uint8_t>> BuildUpdates(int prefixes, int per_update,
                                                  const net::IpAddress& next_hop);
// The same prefixes, for the kernel floor.
std::vector<net::Prefix> BenchPrefixes(int prefixes);

struct FeederConfig {
  std::string netns_path;  // the thread enters it before opening its socket
  net::IpAddress address;  // listens on address:179
  uint32_t asn = 65001;
  const std::vector<uint8_t>* updates = nullptr;  // must outlive the feeder
};

class Feeder {
 public:
  // Listening once this returns.
  static absl::StatusOr<std::unique_ptr<Feeder>> Start(FeederConfig config);
  ~Feeder();  // closes the session

  // MonoNs() when the session was Established (our KEEPALIVE sent, the peer's received), just
  // before the first UPDATE; nullopt if that did not happen within `timeout`.
  std::optional<int64_t> WaitEstablished(absl::Duration timeout);
  // MonoNs() when the last UPDATE byte was handed to TCP.
  std::optional<int64_t> WaitSent(absl::Duration timeout);
  std::string error() const;

 private:
  explicit Feeder(FeederConfig config) : config_(std::move(config)) {}
  void Run();
  void Fail(std::string what);

  FeederConfig config_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: tells the thread to stop
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<int64_t> established_ns_;
  std::optional<int64_t> sent_ns_;
  std::string error_;
};

}  // namespace calico::birdd::bench
