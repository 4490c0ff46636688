// Concurrency: 4 threads x 200 assign/release cycles, sharing one Allocator, as separate
// allocators (separate connections: separate processes as far as the CAS is concerned) on one
// node, and on different nodes. Every address held is tracked in a set: an address handed out
// while someone else holds it fails the test at once. At the end, every block is consistent and
// empty, and no handle record is left.
#include <catch2/catch.hpp>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "ipamd/allocator/allocator.h"
#include "tests/unit/ipamd/allocator_fixture.h"

namespace calico::ipamd {
namespace {

using namespace testing;  // NOLINT: test helpers

enum class Mode { kSharedAllocator, kOneNodeManyProcesses, kManyNodes };

void Run(Mode mode, bool dual_stack) {
  Fixture f;
  // Small blocks in a small pool: claims, borrowing and empty-block returns all happen.
  f.pools = {MakePool("v4", "10.0.0.0/26", 29)};
  if (dual_stack) f.pools.push_back(MakePool("v6", "fd00::/118", 122));
  constexpr int kThreads = 4;
  constexpr int kCycles = 200;

  std::vector<std::unique_ptr<datastore::Datastore>> stores;
  std::vector<std::unique_ptr<Allocator>> allocators;
  for (int t = 0; t < kThreads; ++t) {
    if (mode == Mode::kSharedAllocator && t > 0) break;
    stores.push_back(f.Connect());
    allocators.push_back(f.NewAllocator(stores.back().get()));
  }

  std::mutex held_mu;
  std::set<net::IpAddress> held;
  std::atomic<int> failures{0};
  std::atomic<int> exhausted{0};
  std::vector<std::string> errors(kThreads);

  auto worker = [&](int t) {
    Allocator& alloc = *allocators[mode == Mode::kSharedAllocator ? 0 : t];
    const std::string node = mode == Mode::kManyNodes ? absl::StrCat("node", t) : "node0";
    std::mt19937 rng(t);
    std::vector<std::pair<std::string, std::vector<net::IpAddress>>> mine;
    auto release_one = [&] {
      size_t i = rng() % mine.size();
      {
        std::lock_guard<std::mutex> l(held_mu);
        for (const net::IpAddress& ip : mine[i].second) held.erase(ip);
      }
      absl::StatusOr<std::vector<net::IpAddress>> r = alloc.ReleaseByHandle(mine[i].first);
      if (!r.ok() || r->size() != mine[i].second.size()) {
        errors[t] = absl::StrCat("release ", mine[i].first, ": ",
                                 r.ok() ? absl::StrCat(r->size(), " freed") : r.status().ToString());
        ++failures;
      }
      mine.erase(mine.begin() + static_cast<long>(i));
    };
    for (int c = 0; c < kCycles && failures == 0; ++c) {
      AutoAssignRequest req;
      req.handle_id = absl::StrCat("t", t, "-c", c);
      req.node = node;
      req.num_v4 = 1;
      req.num_v6 = dual_stack ? 1 : 0;
      absl::StatusOr<AutoAssignResult> r = alloc.AutoAssign(req);
      if (r.ok()) {
        std::vector<net::IpAddress> ips;
        for (const Assigned& a : r->v4) ips.push_back(a.ip);
        for (const Assigned& a : r->v6) ips.push_back(a.ip);
        {
          std::lock_guard<std::mutex> l(held_mu);
          for (const net::IpAddress& ip : ips) {
            if (!held.insert(ip).second) {
              errors[t] = absl::StrCat(net::FormatIp(ip), " handed out twice");
              ++failures;
            }
          }
        }
        mine.emplace_back(req.handle_id, std::move(ips));
      } else if (r.status().code() == absl::StatusCode::kResourceExhausted) {
        ++exhausted;
      } else {
        errors[t] = absl::StrCat("assign: ", r.status().ToString());
        ++failures;
      }
      // Hold up to 4 at a time: 4 threads x 4 stays under the pool's 64, mostly.
      while (mine.size() > 3 || (!mine.empty() && rng() % 3 == 0)) release_one();
    }
    while (!mine.empty() && failures == 0) release_one();
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (std::thread& th : threads) th.join();
  for (const std::string& e : errors) {
    INFO(e);
    CHECK(e.empty());
  }
  REQUIRE(failures == 0);
  CHECK(exhausted == 0);

  auto checker = f.NewAllocator();
  for (const Block& b : Ok(checker->ListBlocks())) {
    INFO(net::FormatCidr(b.cidr));
    std::set<int> free(b.unallocated.begin(), b.unallocated.end());
    CHECK(free.size() == b.unallocated.size());  // no ordinal listed twice
    for (int o = 0; o < b.NumAddresses(); ++o) CHECK(free.count(o) == !b.allocations[o]);
    CHECK(b.Empty());
    CHECK(b.attributes.empty());
  }
  CHECK(Ok(f.store().List(HandlePrefix())).entries.empty());
}

TEST_CASE("allocator concurrency: 4 threads share one allocator on one node", "[unit][ipamd]") {
  Run(Mode::kSharedAllocator, false);
}

TEST_CASE("allocator concurrency: 4 allocators (processes) on one node", "[unit][ipamd]") {
  Run(Mode::kOneNodeManyProcesses, false);
}

TEST_CASE("allocator concurrency: 4 nodes", "[unit][ipamd]") { Run(Mode::kManyNodes, false); }

TEST_CASE("allocator concurrency: 4 nodes, dual stack", "[unit][ipamd]") {
  Run(Mode::kManyNodes, true);
}

}  // namespace
}  // namespace calico::ipamd
