// The allocator writes a block and the handle records it changes in one Datastore::Commit:
// an injected failure can never leave an allocation without its handle record (or a record
// without its allocation), the fast path costs one write per assignment and one per release,
// and concurrent requests merged into one block write keep every record exact.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "ipamd/allocator/allocator.h"
#include "tests/unit/ipamd/allocator_fixture.h"

namespace calico::ipamd {
namespace {

using namespace testing;  // NOLINT: test helpers
using datastore::Datastore;
using datastore::Revision;
using datastore::TxnOp;

// Forwards to a real store; counts writes and can fail the next Commit before it reaches the
// store (Unavailable: the datastore unreachable) or after it committed (an answer lost on the
// way back, which a client cannot tell from the former).
class FlakyDatastore : public Datastore {
 public:
  explicit FlakyDatastore(Datastore& inner) : inner_(inner) {}

  void FailNextCommit(absl::Status status, bool after_commit = false) {
    std::lock_guard<std::mutex> l(mu_);
    fail_next_ = std::move(status);
    fail_after_commit_ = after_commit;
  }
  int writes() const { return writes_.load(); }

  // Datastore
  absl::StatusOr<datastore::Entry> Get(std::string_view key) override { return inner_.Get(key); }
  absl::StatusOr<datastore::ListResult> List(std::string_view prefix) override {
    return inner_.List(prefix);
  }
  absl::StatusOr<Revision> Create(std::string_view key, std::string_view value,
                                  const datastore::CreateOptions& options) override {
    ++writes_;
    return inner_.Create(key, value, options);
  }
  absl::StatusOr<Revision> Update(std::string_view key, std::string_view value,
                                  Revision expected) override {
    ++writes_;
    return inner_.Update(key, value, expected);
  }
  absl::StatusOr<Revision> Delete(std::string_view key, Revision expected) override {
    ++writes_;
    return inner_.Delete(key, expected);
  }
  absl::StatusOr<std::vector<Revision>> Commit(const std::vector<TxnOp>& ops) override {
    ++writes_;
    std::optional<absl::Status> fail;
    bool after = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      fail.swap(fail_next_);
      after = fail_after_commit_;
    }
    if (fail && !after) return *fail;
    absl::StatusOr<std::vector<Revision>> r = inner_.Commit(ops);
    if (fail) return *fail;
    return r;
  }
  absl::StatusOr<std::unique_ptr<datastore::Watch>> WatchPrefix(std::string_view prefix,
                                                                Revision after) override {
    return inner_.WatchPrefix(prefix, after);
  }
  absl::Status Compact(Revision revision) override { return inner_.Compact(revision); }
  absl::StatusOr<Revision> CurrentRevision() override { return inner_.CurrentRevision(); }
  std::string Describe() const override { return inner_.Describe(); }

 private:
  Datastore& inner_;
  std::mutex mu_;
  std::optional<absl::Status> fail_next_;
  bool fail_after_commit_ = false;
  std::atomic<int> writes_{0};
};

AutoAssignRequest Req(std::string handle, int v4 = 1) {
  AutoAssignRequest r;
  r.handle_id = std::move(handle);
  r.node = "node1";
  r.num_v4 = v4;
  return r;
}

std::vector<datastore::Entry> IpamState(Datastore& store) {
  return Ok(store.List(std::string(kIpamPrefix))).entries;
}

// The invariant Commit guarantees: every handle record names exactly the addresses the blocks
// hold for it, block by block, and every allocation's handle has a record.
void RequireHandlesMatchBlocks(Datastore& store) {
  std::map<std::string, std::map<std::string, int>> from_blocks;
  for (int family : {4, 6}) {
    for (const datastore::Entry& e : Ok(store.List(BlockPrefix(family))).entries) {
      Block b = Ok(DecodeBlock(e.value));
      for (int o = 0; o < b.NumAddresses(); ++o) {
        if (const AllocationAttributes* a = b.AttributesOf(o)) {
          ++from_blocks[a->handle_id][net::FormatCidr(b.cidr)];
        }
      }
    }
  }
  std::map<std::string, std::map<std::string, int>> from_records;
  for (const datastore::Entry& e : Ok(store.List(HandlePrefix())).entries) {
    Handle h = Ok(DecodeHandle(e.value));
    from_records[h.handle_id] = h.blocks;
  }
  REQUIRE(from_records == from_blocks);
}

TEST_CASE("allocator commit: a failed write leaves no allocation without its handle record",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  FlakyDatastore flaky(f.store());
  Allocator alloc(flaky, f.Env());
  Ok(alloc.AutoAssign(Req("warm-up")));  // claims the node's block

  SECTION("assignment: Unavailable before the Commit changes nothing; the retry succeeds") {
    const std::vector<datastore::Entry> before = IpamState(f.store());
    flaky.FailNextCommit(absl::UnavailableError("injected: etcd unreachable"));
    absl::StatusOr<AutoAssignResult> failed = alloc.AutoAssign(Req("h1"));
    REQUIRE(failed.status().code() == absl::StatusCode::kUnavailable);
    REQUIRE(IpamState(f.store()) == before);

    Assigned a = Ok(alloc.AutoAssign(Req("h1"))).v4[0];
    Handle h = Ok(DecodeHandle(Ok(f.store().Get(HandleKey("h1"))).value));
    CHECK(h.blocks == std::map<std::string, int>{{net::FormatCidr(a.block), 1}});
    RequireHandlesMatchBlocks(f.store());
  }

  SECTION("release: Unavailable before the Commit changes nothing; the retry frees all") {
    Ok(alloc.AutoAssign(Req("h1", 2)));
    const std::vector<datastore::Entry> before = IpamState(f.store());
    flaky.FailNextCommit(absl::UnavailableError("injected: etcd unreachable"));
    REQUIRE(alloc.ReleaseByHandle("h1").status().code() == absl::StatusCode::kUnavailable);
    REQUIRE(IpamState(f.store()) == before);

    CHECK(Ok(alloc.ReleaseByHandle("h1")).size() == 2);
    CHECK_FALSE(f.store().Get(HandleKey("h1")).ok());
    CHECK(Ok(alloc.GetHandle("warm-up")).size() == 1);
    CHECK(alloc.GetHandle("h1").status().code() == absl::StatusCode::kNotFound);
    RequireHandlesMatchBlocks(f.store());
  }

  SECTION("an answer lost after the Commit applied: block and record still agree") {
    flaky.FailNextCommit(absl::UnavailableError("injected: reply lost"), /*after_commit=*/true);
    REQUIRE(alloc.AutoAssign(Req("h1")).status().code() == absl::StatusCode::kUnavailable);
    // Both halves landed or neither; here both, so the caller's cleanup finds the address.
    RequireHandlesMatchBlocks(f.store());
    CHECK(Ok(alloc.ReleaseByHandle("h1")).size() == 1);
    RequireHandlesMatchBlocks(f.store());
  }

  SECTION("a conflict (Aborted) is retried with fresh reads") {
    flaky.FailNextCommit(absl::AbortedError("injected: key changed"));
    Ok(alloc.AutoAssign(Req("h1")));
    RequireHandlesMatchBlocks(f.store());
  }
}

// etcd's client fails over after a lost reply and repeats the Txn; the repeat fails its
// compares against the first attempt's own write, so a Commit that landed reports Aborted.
TEST_CASE("allocator commit: a landed Commit reported as Aborted is not applied twice",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  FlakyDatastore flaky(f.store());
  Allocator alloc(flaky, f.Env());
  Ok(alloc.AutoAssign(Req("warm-up")));

  SECTION("AutoAssign: one address, and it is the one returned") {
    flaky.FailNextCommit(absl::AbortedError("injected: repeat of a landed Txn"),
                         /*after_commit=*/true);
    AutoAssignResult r = Ok(alloc.AutoAssign(Req("h1")));
    REQUIRE(r.v4.size() == 1);
    CHECK(Ok(alloc.GetHandle("h1")) == std::vector<net::IpAddress>{r.v4[0].ip});
    RequireHandlesMatchBlocks(f.store());
    CHECK(Ok(alloc.ReleaseByHandle("h1")) == std::vector<net::IpAddress>{r.v4[0].ip});
    RequireHandlesMatchBlocks(f.store());
  }

  SECTION("AssignIP: succeeds (the address is ours), not AlreadyExists") {
    flaky.FailNextCommit(absl::AbortedError("injected: repeat of a landed Txn"),
                         /*after_commit=*/true);
    Assigned a = Ok(alloc.AssignIP(Ip("10.0.0.200"), "h2", {}, "node1"));
    CHECK(a.ip == Ip("10.0.0.200"));
    CHECK(Ok(alloc.GetHandle("h2")) == std::vector<net::IpAddress>{Ip("10.0.0.200")});
    RequireHandlesMatchBlocks(f.store());
  }

  SECTION("ReleaseIPs: reports the address it freed") {
    Assigned a = Ok(alloc.AutoAssign(Req("h3"))).v4[0];
    flaky.FailNextCommit(absl::AbortedError("injected: repeat of a landed Txn"),
                         /*after_commit=*/true);
    ReleaseRequest rr;
    rr.ip = a.ip;
    rr.handle_id = "h3";
    rr.sequence_number = a.sequence_number;
    CHECK(Ok(alloc.ReleaseIPs({rr})) == std::vector<net::IpAddress>{a.ip});
    RequireHandlesMatchBlocks(f.store());
  }
}

TEST_CASE("allocator commit: the affine fast path is one write per assignment and release",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  FlakyDatastore flaky(f.store());
  Allocator alloc(flaky, f.Env());
  Ok(alloc.AutoAssign(Req("warm-up")));  // claim: affinity, block, confirmation
  for (int i = 0; i < 5; ++i) {
    const std::string handle = absl::StrCat("pod", i);
    int writes = flaky.writes();
    Ok(alloc.AutoAssign(Req(handle)));
    CHECK(flaky.writes() - writes == 1);
    writes = flaky.writes();
    CHECK(Ok(alloc.ReleaseByHandle(handle)).size() == 1);
    CHECK(flaky.writes() - writes == 1);
  }
  RequireHandlesMatchBlocks(f.store());
}

TEST_CASE("allocator commit: merged concurrent writes keep every handle record exact",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  auto alloc = f.NewAllocator();
  Ok(alloc->AutoAssign(Req("warm-up")));
  // 4 threads assign to their own handle and to one shared handle at once, so the block's
  // group commit merges requests of distinct handles and of the same handle.
  constexpr int kThreads = 4;
  constexpr int kEach = 5;
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        for (const std::string& handle : {absl::StrCat("own", t), std::string("shared")}) {
          absl::StatusOr<AutoAssignResult> r = alloc->AutoAssign(Req(handle));
          if (!r.ok()) errors[t] = r.status().ToString();
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const std::string& e : errors) CHECK(e == "");
  RequireHandlesMatchBlocks(f.store());
  CHECK(Ok(alloc->GetHandle("shared")).size() == kThreads * kEach);

  threads.clear();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      absl::StatusOr<std::vector<net::IpAddress>> r =
          alloc->ReleaseByHandle(absl::StrCat("own", t));
      if (!r.ok() || r->size() != kEach) {
        errors[t] = r.ok() ? "short release" : r.status().ToString();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const std::string& e : errors) CHECK(e == "");
  RequireHandlesMatchBlocks(f.store());
  CHECK(Ok(alloc->ReleaseByHandle("shared")).size() == kThreads * kEach);
  RequireHandlesMatchBlocks(f.store());
  CHECK(Ok(f.store().List(HandlePrefix())).entries.size() == 1);  // warm-up's
}

}  // namespace
}  // namespace calico::ipamd
