#pragma once
// Counts operator new calls while a ScopedAllocCount is alive (the test binary replaces the
// global operator new in alloc_counter.cc). Not thread-aware: the tests are single-threaded.

#include <cstddef>

namespace calico::birdd::wire::testing {

size_t AllocationsSoFar();
void SetCountingAllocations(bool on);

class ScopedAllocCount {
 public:
  ScopedAllocCount() : start_(AllocationsSoFar()) { SetCountingAllocations(true); }
  ~ScopedAllocCount() { SetCountingAllocations(false); }
  size_t count() const { return AllocationsSoFar() - start_; }

 private:
  size_t start_;
};

}  // namespace calico::birdd::wire::testing
