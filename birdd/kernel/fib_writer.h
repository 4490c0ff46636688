#pragma once
// birdd/kernel/fib_writer.h — runs a Fib on a thread of its own, so that BGP ingest never
// waits for the kernel (installing a route costs the kernel ~50x what taking it into the RIB
// costs us). The BGP loop's kernel sink only queues (prefix, next hops) under a short lock; the
// writer takes everything queued so far, hands it to the Fib and applies it in batches, then
// takes what queued meanwhile — so under load the batches grow and the kernel sees few large
// sendmsgs. A failed write stays pending in the Fib and is retried after `retry_after` (or with
// the next batch). The Fib is the writer's alone while it runs: reach it through Post().

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "birdd/kernel/fib.h"

namespace calico::birdd::kernel_fib {

struct FibProgress {
  size_t installed = 0;  // routes the kernel has from us
  size_t pending = 0;    // still to write (failed ones included)
  absl::Status last;     // the last Apply's outcome
};

class FibWriter {
 public:
  struct Options {
    absl::Duration retry_after = absl::Seconds(1);
    // After every Apply, on the writer's thread.
    std::function<void(const FibProgress&)> on_applied;
  };

  FibWriter(Fib& fib, Options options);
  ~FibWriter();  // stops after the Apply under way; what is still queued is dropped
  FibWriter(const FibWriter&) = delete;
  FibWriter& operator=(const FibWriter&) = delete;

  // Any thread; cheap. The same as Fib::Set, later.
  void Set(const net::Prefix& dst, const std::vector<net::IpAddress>& next_hops, std::string_view tunnel = "");
  // Runs `fn` on the writer's thread, after the Sets queued before it (RefreshInterfaces,
  // Resync, reading counters).
  void Post(std::function<void(Fib&)> fn);
  // Blocks until everything queued so far is applied (tests, shutdown). False on timeout.
  bool WaitIdle(absl::Duration timeout);

 private:
  struct Change {
    net::Prefix dst;
    absl::InlinedVector<net::IpAddress, 1> next_hops;
    std::string tunnel;
  };
  void Run();

  Fib& fib_;
  Options options_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::vector<Change> changes_;
  std::vector<std::function<void(Fib&)>> posted_;
  bool stopping_ = false;
  bool busy_ = false;    // the writer holds work taken from the queues
  bool retry_ = false;   // the last Apply left failures pending
  std::thread thread_;   // last: starts once the rest is built
};

}  // namespace calico::birdd::kernel_fib
