#include "birdd/kernel/fib_writer.h"

namespace calico::birdd::kernel_fib {

FibWriter::FibWriter(Fib& fib, Options options)
    : fib_(fib), options_(std::move(options)), thread_([this] { Run(); }) {}

FibWriter::~FibWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void FibWriter::Set(const net::Prefix& dst, const std::vector<net::IpAddress>& next_hops, std::string_view tunnel) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_empty = changes_.empty() && posted_.empty();
    changes_.push_back(Change{dst, {next_hops.begin(), next_hops.end()}, std::string(tunnel)});
  }
  // The writer only sleeps on an empty queue; no wake-up per prefix while it works.
  if (was_empty) wake_.notify_one();
}

void FibWriter::Post(std::function<void(Fib&)> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.push_back(std::move(fn));
  }
  wake_.notify_one();
}

bool FibWriter::WaitIdle(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
    return changes_.empty() && posted_.empty() && !busy_;
  });
}

void FibWriter::Run() {
  std::vector<Change> changes;
  std::vector<std::function<void(Fib&)>> posted;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      busy_ = false;
      idle_.notify_all();
      auto ready = [&] { return stopping_ || !changes_.empty() || !posted_.empty(); };
      if (retry_) {
        wake_.wait_for(lock, absl::ToChronoNanoseconds(options_.retry_after), ready);
      } else {
        wake_.wait(lock, ready);
      }
      if (stopping_) return;
      changes.swap(changes_);
      posted.swap(posted_);
      busy_ = true;
    }
    for (const Change& c : changes) fib_.SetNextHops(c.dst, c.next_hops, c.tunnel);
    changes.clear();
    for (auto& fn : posted) fn(fib_);
    posted.clear();
    FibProgress progress;
    progress.last = fib_.Apply();
    progress.installed = fib_.installed();
    progress.pending = fib_.pending();
    retry_ = progress.pending > 0;
    if (options_.on_applied) options_.on_applied(progress);
  }
}

}  // namespace calico::birdd::kernel_fib
