// Allocator semantics on a real SQLite file: one TEST_CASE per rule of issue 3.
#include "ipamd/allocator/allocator.h"

#include <catch2/catch.hpp>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "tests/unit/ipamd/allocator_fixture.h"

namespace calico::ipamd {
namespace {

using namespace testing;  // NOLINT: test helpers
using datastore::Entry;

std::string Msg(const absl::Status& s) { return ToStd(s.message()); }

AutoAssignRequest Req(std::string handle, std::string node, int v4 = 1, int v6 = 0) {
  AutoAssignRequest r;
  r.handle_id = std::move(handle);
  r.node = std::move(node);
  r.num_v4 = v4;
  r.num_v6 = v6;
  r.attributes = {{"namespace", "default"}, {"pod", "p"}};
  return r;
}

Block ReadBlock(datastore::Datastore& store, const net::Prefix& cidr) {
  Entry e = Ok(store.Get(BlockKey(cidr)));
  return Ok(DecodeBlock(e.value));
}

bool Exists(datastore::Datastore& store, const std::string& key) { return store.Get(key).ok(); }

int Allocated(Allocator& a) {
  int n = 0;
  for (const Block& b : Ok(a.ListBlocks())) n += b.NumAddresses() - b.NumFree();
  return n;
}

TEST_CASE("allocator: first assignment claims a block, the next uses it", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p1", "10.65.0.0/16", 26)};
  auto alloc = f.NewAllocator();
  AutoAssignResult r = Ok(alloc->AutoAssign(Req("h1", "node1")));
  REQUIRE(r.v4.size() == 1);
  CHECK(r.v6.empty());
  const net::Prefix block = r.v4[0].block;
  CHECK(block.len == 26);
  CHECK(net::Contains(block, r.v4[0].ip));
  CHECK(absl::StartsWith(r.v4[0].how, "claimed block " + net::FormatCidr(block) + " for node1"));
  CHECK(r.v4[0].ip == block.addr);  // a fresh block hands out its first ordinal

  Block b = ReadBlock(f.store(), block);
  CHECK(b.affinity == "host:node1");
  CHECK(b.AttributesOf(0)->handle_id == "h1");
  CHECK(b.AttributesOf(0)->secondary.at("node") == "node1");
  CHECK(b.AttributesOf(0)->secondary.at("pod") == "p");
  CHECK(b.SequenceNumberOf(0) == r.v4[0].sequence_number);
  BlockAffinity aff = Ok(DecodeAffinity(Ok(f.store().Get(AffinityKey("node1", block))).value));
  CHECK(aff.state == AffinityState::kConfirmed);
  Handle h = Ok(DecodeHandle(Ok(f.store().Get(HandleKey("h1"))).value));
  CHECK(h.blocks == std::map<std::string, int>{{net::FormatCidr(block), 1}});

  AutoAssignResult r2 = Ok(alloc->AutoAssign(Req("h2", "node1", 2)));
  REQUIRE(r2.v4.size() == 2);
  CHECK(r2.v4[0].block == block);
  CHECK(absl::StartsWith(r2.v4[0].how, "affine block"));
  CHECK(Ok(alloc->GetHandle("h2")) == std::vector<net::IpAddress>{r2.v4[0].ip, r2.v4[1].ip});
  CHECK(alloc->GetHandle("nope").status().code() == absl::StatusCode::kNotFound);

  // A second allocator (a restarted ipamd) finds the node's block from the datastore.
  auto restarted = f.NewAllocator();
  AutoAssignResult r3 = Ok(restarted->AutoAssign(Req("h3", "node1")));
  CHECK(r3.v4[0].block == block);
}

TEST_CASE("allocator: a small pool fills up, then ResourceExhausted names pool and node",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("tiny", "10.0.0.0/28", 30)};  // 4 blocks of 4
  auto alloc = f.NewAllocator();
  std::set<net::IpAddress> seen;
  for (int i = 0; i < 16; ++i) {
    AutoAssignResult r = Ok(alloc->AutoAssign(Req(absl::StrCat("h", i), "node1")));
    REQUIRE(r.v4.size() == 1);
    CHECK(seen.insert(r.v4[0].ip).second);
  }
  CHECK(Ok(alloc->ListBlocks()).size() == 4);
  absl::StatusOr<AutoAssignResult> r = alloc->AutoAssign(Req("h16", "node1"));
  REQUIRE(r.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(Msg(r.status()), Catch::Contains("\"tiny\"") && Catch::Contains("node1"));
  CHECK_FALSE(Exists(f.store(), HandleKey("h16")));
  CHECK(Allocated(*alloc) == 16);

  // Asking for more than exist changes nothing either.
  REQUIRE(Ok(alloc->ReleaseByHandle("h0")).size() == 1);
  r = alloc->AutoAssign(Req("big", "node1", 2));
  CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(Allocated(*alloc) == 15);
  CHECK_FALSE(Exists(f.store(), HandleKey("big")));
}

TEST_CASE("allocator: borrows once maxBlocksPerHost is reached", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/28", 30)};
  f.config.max_blocks_per_host = 1;
  auto alloc = f.NewAllocator();
  AutoAssignResult other = Ok(alloc->AutoAssign(Req("n2", "node2")));
  for (int i = 0; i < 4; ++i) Ok(alloc->AutoAssign(Req(absl::StrCat("h", i), "node1")));
  AutoAssignResult r = Ok(alloc->AutoAssign(Req("h4", "node1")));
  CHECK(r.v4[0].block == other.v4[0].block);
  CHECK(r.v4[0].how ==
        absl::StrCat("borrowed from block ", net::FormatCidr(other.v4[0].block), " (affine to node2)"));
  CHECK(ReadBlock(f.store(), r.v4[0].block).affinity == "host:node2");  // borrowing keeps affinity

  SECTION("strictAffinity forbids it") {
    f.config.strict_affinity = true;
    absl::StatusOr<AutoAssignResult> s = alloc->AutoAssign(Req("h5", "node1"));
    REQUIRE(s.status().code() == absl::StatusCode::kResourceExhausted);
    CHECK_THAT(Msg(s.status()), Catch::Contains("maxBlocksPerHost") &&
                                    Catch::Contains("strictAffinity") &&
                                    Catch::Contains("node1"));
  }
}

TEST_CASE("allocator: autoAllocateBlocks=false borrows instead of claiming", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/28", 30)};
  auto alloc = f.NewAllocator();
  AutoAssignResult other = Ok(alloc->AutoAssign(Req("n2", "node2")));
  f.config.auto_allocate_blocks = false;
  AutoAssignResult r = Ok(alloc->AutoAssign(Req("h1", "node1")));
  CHECK(r.v4[0].block == other.v4[0].block);
  CHECK(absl::StartsWith(r.v4[0].how, "borrowed"));
  CHECK(Ok(f.store().List(AffinityPrefix("node1"))).entries.empty());
  f.config.strict_affinity = true;
  absl::StatusOr<AutoAssignResult> s = alloc->AutoAssign(Req("h2", "node1"));
  REQUIRE(s.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(Msg(s.status()), Catch::Contains("autoAllocateBlocks"));
}

TEST_CASE("allocator: IPReservations are never handed out", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/28", 29)};  // 2 blocks of 8
  f.reservations = {P("10.0.0.0/30"), P("10.0.0.8/29")};  // half of block 1, all of block 2
  auto alloc = f.NewAllocator();
  AutoAssignResult r = Ok(alloc->AutoAssign(Req("h", "node1", 4)));
  std::vector<net::IpAddress> got;
  for (const Assigned& a : r.v4) got.push_back(a.ip);
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<net::IpAddress>{Ip("10.0.0.4"), Ip("10.0.0.5"), Ip("10.0.0.6"),
                                           Ip("10.0.0.7")});
  CHECK(alloc->AutoAssign(Req("h2", "node1")).status().code() ==
        absl::StatusCode::kResourceExhausted);
  // The wholly reserved block was never claimed.
  CHECK_FALSE(Exists(f.store(), BlockKey(P("10.0.0.8/29"))));
  // An explicit ask is not blocked by a reservation.
  CHECK(Ok(alloc->AssignIP(Ip("10.0.0.1"), "explicit", {}, "node1")).ip == Ip("10.0.0.1"));
}

TEST_CASE("allocator: IPv6 /122 blocks", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("v6", "fd00:10::/48", 122)};
  auto alloc = f.NewAllocator();
  AutoAssignRequest req = Req("h", "node1", 0, 2);
  AutoAssignResult r = Ok(alloc->AutoAssign(req));
  REQUIRE(r.v6.size() == 2);
  CHECK(r.v4.empty());
  CHECK(r.v6[0].block.len == 122);
  CHECK(net::Contains(P("fd00:10::/48"), r.v6[0].block));
  Block b = ReadBlock(f.store(), r.v6[0].block);
  CHECK(b.NumAddresses() == 64);
  CHECK(b.NumFree() == 62);
  CHECK(Ok(f.store().Get(AffinityKey("node1", r.v6[0].block))).key ==
        absl::StrCat("/calico/ipam/v2/host/node1/ipv6/block/", net::FormatIp(r.v6[0].block.addr),
                     "-122"));
  CHECK(Ok(alloc->ReleaseByHandle("h")).size() == 2);
}

TEST_CASE("allocator: dual stack gets both families or neither", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("v4", "10.0.0.0/24", 26), MakePool("v6", "fd00::/122", 122)};
  auto alloc = f.NewAllocator();
  AutoAssignResult r = Ok(alloc->AutoAssign(Req("both", "node1", 1, 1)));
  REQUIRE(r.v4.size() == 1);
  REQUIRE(r.v6.size() == 1);
  Handle h = Ok(DecodeHandle(Ok(f.store().Get(HandleKey("both"))).value));
  CHECK(h.blocks.size() == 2);
  // Exhaust v6 (63 left), then a dual-stack request must leave v4 untouched.
  Ok(alloc->AutoAssign(Req("fill", "node1", 0, 63)));
  const int before = Allocated(*alloc);
  absl::StatusOr<AutoAssignResult> s = alloc->AutoAssign(Req("neither", "node1", 1, 1));
  REQUIRE(s.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(Msg(s.status()), Catch::Contains("IPv6") && Catch::Contains("\"v6\""));
  CHECK(Allocated(*alloc) == before);
  CHECK_FALSE(Exists(f.store(), HandleKey("neither")));
  CHECK(Ok(alloc->ReleaseByHandle("both")).size() == 2);
}

TEST_CASE("allocator: AssignIP", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26), MakePool("off", "10.1.0.0/24", 26)};
  f.pools[1].disabled = true;
  auto alloc = f.NewAllocator();
  Assigned a = Ok(alloc->AssignIP(Ip("10.0.0.70"), "h1", {{"pod", "x"}}, "node1"));
  CHECK(a.block == P("10.0.0.64/26"));
  CHECK(absl::StartsWith(a.how, "claimed block 10.0.0.64/26"));
  CHECK(ReadBlock(f.store(), a.block).affinity == "host:node1");
  CHECK(Ok(alloc->GetHandle("h1")) == std::vector<net::IpAddress>{Ip("10.0.0.70")});

  absl::StatusOr<Assigned> again = alloc->AssignIP(Ip("10.0.0.70"), "h2", {}, "node1");
  CHECK(again.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK_THAT(Msg(again.status()), Catch::Contains("10.0.0.70"));
  CHECK_FALSE(Exists(f.store(), HandleKey("h2")));
  CHECK(alloc->AssignIP(Ip("192.168.0.1"), "h3", {}, "node1").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(alloc->AssignIP(Ip("10.1.0.1"), "h3", {}, "node1").status().code() ==
        absl::StatusCode::kInvalidArgument);
  // Into another node's block: allowed, and the block keeps its affinity.
  Assigned b = Ok(alloc->AssignIP(Ip("10.0.0.71"), "h4", {}, "node2"));
  CHECK(b.how == "requested address in block 10.0.0.64/26 (affine to node1)");
  // The handle refcount adds up across calls.
  Ok(alloc->AssignIP(Ip("10.0.0.72"), "h1", {}, "node1"));
  Handle h = Ok(DecodeHandle(Ok(f.store().Get(HandleKey("h1"))).value));
  CHECK(h.blocks.at("10.0.0.64/26") == 2);
}

TEST_CASE("allocator: ReleaseByHandle is idempotent", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  auto alloc = f.NewAllocator();
  AutoAssignResult r = Ok(alloc->AutoAssign(Req("h", "node1", 2)));
  std::vector<net::IpAddress> freed = Ok(alloc->ReleaseByHandle("h"));
  CHECK(freed.size() == 2);
  CHECK(Ok(alloc->ReleaseByHandle("h")).empty());
  CHECK(Ok(alloc->ReleaseByHandle("never-existed")).empty());
  CHECK_FALSE(Exists(f.store(), HandleKey("h")));
  CHECK(alloc->GetHandle("h").status().code() == absl::StatusCode::kNotFound);
  // The node's only block stays (empty) with its affinity.
  CHECK(ReadBlock(f.store(), r.v4[0].block).Empty());
  CHECK(Exists(f.store(), AffinityKey("node1", r.v4[0].block)));
}

TEST_CASE("allocator: a release quoting a stale sequence number or handle is refused",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("one", "10.0.0.7/32", 32)};  // one address: reuse is certain
  auto alloc = f.NewAllocator();
  Assigned first = Ok(alloc->AutoAssign(Req("old", "node1"))).v4[0];
  ReleaseRequest rel{first.ip, std::string("old"), first.sequence_number};
  CHECK(Ok(alloc->ReleaseIPs({rel})) == std::vector<net::IpAddress>{first.ip});
  CHECK_FALSE(Exists(f.store(), HandleKey("old")));
  Assigned second = Ok(alloc->AutoAssign(Req("new", "node1"))).v4[0];
  REQUIRE(second.ip == first.ip);
  CHECK(second.sequence_number > first.sequence_number);

  ReleaseRequest stale{first.ip, std::nullopt, first.sequence_number};
  absl::Status s = alloc->ReleaseIPs({stale}).status();
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(Msg(s), Catch::Contains("sequence number"));
  ReleaseRequest wrong_handle{first.ip, std::string("old"), std::nullopt};
  CHECK(alloc->ReleaseIPs({wrong_handle}).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(Ok(alloc->GetHandle("new")) == std::vector<net::IpAddress>{first.ip});

  // The right quote frees it, and the handle record goes with its last address.
  ReleaseRequest ok{first.ip, std::string("new"), second.sequence_number};
  CHECK(Ok(alloc->ReleaseIPs({ok})).size() == 1);
  CHECK_FALSE(Exists(f.store(), HandleKey("new")));
  CHECK(Ok(alloc->ReleaseIPs({ok})).empty());  // already free: idempotent
}

TEST_CASE("allocator: FIFO — the address free for longest is reused first", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/30", 30)};
  auto alloc = f.NewAllocator();
  Assigned a = Ok(alloc->AutoAssign(Req("a", "node1"))).v4[0];
  Assigned b = Ok(alloc->AutoAssign(Req("b", "node1"))).v4[0];
  CHECK(a.ip == Ip("10.0.0.0"));
  CHECK(b.ip == Ip("10.0.0.1"));
  Ok(alloc->ReleaseByHandle("b"));
  Ok(alloc->ReleaseByHandle("a"));
  CHECK(Ok(alloc->AutoAssign(Req("c", "node1"))).v4[0].ip == Ip("10.0.0.2"));
  CHECK(Ok(alloc->AutoAssign(Req("d", "node1"))).v4[0].ip == Ip("10.0.0.3"));
  CHECK(Ok(alloc->AutoAssign(Req("e", "node1"))).v4[0].ip == Ip("10.0.0.1"));
  CHECK(Ok(alloc->AutoAssign(Req("f", "node1"))).v4[0].ip == Ip("10.0.0.0"));
}

TEST_CASE("allocator: an empty block that is not the node's last returns to the pool",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/28", 30)};
  auto alloc = f.NewAllocator();
  for (int i = 0; i < 5; ++i) Ok(alloc->AutoAssign(Req(absl::StrCat("h", i), "node1")));
  std::vector<net::IpAddress> fifth = Ok(alloc->GetHandle("h4"));
  REQUIRE(fifth.size() == 1);
  std::vector<Block> blocks = Ok(alloc->ListBlocks());
  REQUIRE(blocks.size() == 2);
  net::Prefix second;
  for (const Block& b : blocks) {
    if (net::Contains(b.cidr, fifth[0])) second = b.cidr;
  }
  Ok(alloc->ReleaseByHandle("h4"));
  CHECK_FALSE(Exists(f.store(), BlockKey(second)));
  CHECK_FALSE(Exists(f.store(), AffinityKey("node1", second)));
  // The last block stays, empty and affine, when its addresses go.
  for (int i = 0; i < 4; ++i) Ok(alloc->ReleaseByHandle(absl::StrCat("h", i)));
  blocks = Ok(alloc->ListBlocks());
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0].Empty());
  CHECK(blocks[0].affinity == "host:node1");
  CHECK(Exists(f.store(), AffinityKey("node1", blocks[0].cidr)));
}

TEST_CASE("allocator: nodeSelector, allowedUses and Manual pools", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("zone-a", "10.0.0.0/24", 26), MakePool("tunnels", "10.9.0.0/24", 26),
             MakePool("manual", "10.8.0.0/24", 26)};
  f.pools[0].node_selector = "zone == \"a\"";
  f.pools[1].allow_workload = false;
  f.pools[2].manual_assignment = true;
  f.labels["node1"] = {{"zone", "a"}};
  f.labels["node2"] = {{"zone", "b"}};
  auto alloc = f.NewAllocator();
  CHECK(net::Contains(P("10.0.0.0/24"), Ok(alloc->AutoAssign(Req("w1", "node1"))).v4[0].ip));
  absl::StatusOr<AutoAssignResult> r = alloc->AutoAssign(Req("w2", "node2"));
  REQUIRE(r.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(Msg(r.status()), Catch::Contains("node2"));

  AutoAssignRequest tunnel = Req("vxlan-tunnel-addr-node2", "node2");
  tunnel.use = Use::kTunnel;
  CHECK(net::Contains(P("10.9.0.0/24"), Ok(alloc->AutoAssign(tunnel)).v4[0].ip));

  // Manual pools serve explicit requests only.
  AutoAssignRequest manual = Req("m", "node2");
  manual.v4_pools = {"manual"};
  CHECK(net::Contains(P("10.8.0.0/24"), Ok(alloc->AutoAssign(manual)).v4[0].ip));
  CHECK(Ok(alloc->AssignIP(Ip("10.8.0.200"), "m2", {}, "node2")).ip == Ip("10.8.0.200"));

  // A requested pool that does not select the node is a request error, not "pool full".
  AutoAssignRequest wrong = Req("x", "node2");
  wrong.v4_pools = {"zone-a"};
  absl::Status s = alloc->AutoAssign(wrong).status();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(Msg(s), Catch::Contains("zone-a") && Catch::Contains("node2"));
  AutoAssignRequest wrong_use = Req("y", "node1");
  wrong_use.v4_pools = {"tunnels"};
  CHECK(alloc->AutoAssign(wrong_use).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("allocator: requested pools by name or CIDR, unknown is InvalidArgument",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("a", "10.0.0.0/24", 26), MakePool("b", "10.1.0.0/24", 26)};
  auto alloc = f.NewAllocator();
  AutoAssignRequest by_cidr = Req("h1", "node1");
  by_cidr.v4_pools = {"10.1.0.0/24"};
  CHECK(net::Contains(P("10.1.0.0/24"), Ok(alloc->AutoAssign(by_cidr)).v4[0].ip));
  AutoAssignRequest unknown = Req("h2", "node1");
  unknown.v4_pools = {"b", "no-such-pool"};
  absl::Status s = alloc->AutoAssign(unknown).status();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(Msg(s), Catch::Contains("no-such-pool"));
  AutoAssignRequest family = Req("h3", "node1", 0, 1);
  family.v6_pools = {"a"};
  CHECK(alloc->AutoAssign(family).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(Exists(f.store(), HandleKey("h2")));
  AutoAssignRequest no_handle = Req("", "node1");
  CHECK(alloc->AutoAssign(no_handle).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("allocator: crash window — block written, handle not — ReleaseByHandle still frees",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  auto alloc = f.NewAllocator();
  AutoAssignResult r = Ok(alloc->AutoAssign(Req("lost", "node1", 2)));
  // The process "crashed" before the handle write: the record is missing entirely.
  REQUIRE(Ok(f.store().Delete(HandleKey("lost"), datastore::kAnyRevision)) > 0);
  auto restarted = f.NewAllocator();
  std::vector<net::IpAddress> freed = Ok(restarted->ReleaseByHandle("lost"));
  CHECK(freed.size() == 2);
  CHECK(Allocated(*restarted) == 0);

  SECTION("or the record is short (a second assignment crashed)") {
    AutoAssignResult a = Ok(alloc->AutoAssign(Req("short", "node1", 3)));
    Handle h{"short", {{net::FormatCidr(a.v4[0].block), 1}}, false};
    Ok(f.store().Update(HandleKey("short"), EncodeHandle(h), datastore::kAnyRevision));
    auto fresh = f.NewAllocator();
    CHECK(Ok(fresh->ReleaseByHandle("short")).size() == 3);
    CHECK(Allocated(*fresh) == 0);
  }
  SECTION("or names a block the allocation is not in, which this process has cached") {
    AutoAssignResult a = Ok(alloc->AutoAssign(Req("moved", "node1", 1)));
    Handle h{"moved", {{"10.0.0.128/26", 1}}, false};
    Ok(f.store().Update(HandleKey("moved"), EncodeHandle(h), datastore::kAnyRevision));
    CHECK(Ok(alloc->ReleaseByHandle("moved")) == std::vector<net::IpAddress>{a.v4[0].ip});
  }
}

TEST_CASE("allocator: a stale cache is corrected by the CAS", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/30", 30)};
  auto a1 = f.NewAllocator();
  auto store2 = f.Connect();
  auto a2 = f.NewAllocator(store2.get());
  std::set<net::IpAddress> got;
  // Two "processes" for one node alternate: each one's cached block is always stale.
  for (int i = 0; i < 4; ++i) {
    Allocator& a = i % 2 ? *a2 : *a1;
    CHECK(got.insert(Ok(a.AutoAssign(Req(absl::StrCat("h", i), "node1"))).v4[0].ip).second);
  }
  CHECK(a1->AutoAssign(Req("h4", "node1")).status().code() ==
        absl::StatusCode::kResourceExhausted);
  // a2 frees one behind a1's back; a1 (cache says full) finds it before giving up.
  Ok(a2->ReleaseByHandle("h0"));
  CHECK(Ok(a1->AutoAssign(Req("h5", "node1"))).v4[0].ip == Ip("10.0.0.0"));
}

TEST_CASE("allocator: ReleaseNodeAffinities", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  auto alloc = f.NewAllocator();
  Assigned live = Ok(alloc->AutoAssign(Req("live", "node1"))).v4[0];
  Assigned gone = Ok(alloc->AutoAssign(Req("gone", "node2"))).v4[0];
  Ok(alloc->ReleaseByHandle("gone"));  // node2's only block: stays, empty
  REQUIRE(Exists(f.store(), BlockKey(gone.block)));

  REQUIRE(alloc->ReleaseNodeAffinities("node1").ok());
  Block b = ReadBlock(f.store(), live.block);
  CHECK_FALSE(b.affinity.has_value());  // keeps its live address, loses its node
  CHECK(b.AttributesOf(*b.OrdinalOf(live.ip))->handle_id == "live");
  CHECK_FALSE(Exists(f.store(), AffinityKey("node1", live.block)));

  REQUIRE(alloc->ReleaseNodeAffinities("node2").ok());
  CHECK_FALSE(Exists(f.store(), BlockKey(gone.block)));
  CHECK_FALSE(Exists(f.store(), AffinityKey("node2", gone.block)));
  REQUIRE(alloc->ReleaseNodeAffinities("node2").ok());  // idempotent

  // The unaffine block is borrowable; releasing its last address returns it to the pool.
  CHECK(Ok(alloc->ReleaseByHandle("live")).size() == 1);
  CHECK_FALSE(Exists(f.store(), BlockKey(live.block)));
}

TEST_CASE("allocator: ReleaseNodeAffinities racing another ipamd leaves no empty unaffine block",
          "[unit][ipamd]") {
  // Every ipamd releases a deleted node's affinities. The state one of them can meet half-way
  // through another's release: the node's empty block already unaffine, its affinity key not
  // yet deleted. Without a last look at the block it stayed, empty and owned by no one, for good.
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  auto alloc = f.NewAllocator();
  Assigned a = Ok(alloc->AutoAssign(Req("pod", "node3"))).v4[0];
  Ok(alloc->ReleaseByHandle("pod"));  // node3's only block: stays, empty
  Block b = ReadBlock(f.store(), a.block);
  REQUIRE(b.Empty());
  b.affinity.reset();  // the other ipamd's clear landed
  Ok(f.store().Update(BlockKey(a.block), EncodeBlock(b), datastore::kAnyRevision));
  REQUIRE(Exists(f.store(), AffinityKey("node3", a.block)));

  auto other = f.NewAllocator();
  REQUIRE(other->ReleaseNodeAffinities("node3").ok());
  CHECK_FALSE(Exists(f.store(), BlockKey(a.block)));
  CHECK_FALSE(Exists(f.store(), AffinityKey("node3", a.block)));
}

TEST_CASE("allocator: a crashed claim's pending affinity is settled", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/28", 30)};
  // A claim that died after writing its pending affinity: no block behind it.
  const std::string orphan = AffinityKey("node1", P("10.0.0.4/30"));
  Ok(f.store().Create(orphan, EncodeAffinity({AffinityState::kPending, false})));
  // And one that died after creating the block, before confirming.
  Block claimed = Block::Empty(P("10.0.0.8/30"), "host:node1");
  Ok(f.store().Create(BlockKey(claimed.cidr), EncodeBlock(claimed)));
  Ok(f.store().Create(AffinityKey("node1", claimed.cidr),
                      EncodeAffinity({AffinityState::kPending, false})));
  auto alloc = f.NewAllocator();
  Assigned a = Ok(alloc->AutoAssign(Req("h", "node1"))).v4[0];
  CHECK(a.block == claimed.cidr);  // the half-claimed block is recognised as the node's
  CHECK_FALSE(Exists(f.store(), orphan));
  CHECK(Ok(DecodeAffinity(Ok(f.store().Get(AffinityKey("node1", claimed.cidr))).value)).state ==
        AffinityState::kConfirmed);
}

TEST_CASE("allocator: a confirmed affinity with no block behind it is cleaned, not counted",
          "[unit][ipamd]") {
  // Left by a release racing an affinity repair: a confirmed affinity whose block is gone. It
  // must not count towards maxBlocksPerHost, nor pass for the node's "other" block.
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/28", 30)};
  f.config.max_blocks_per_host = 1;
  const std::string phantom = AffinityKey("node1", P("10.0.0.4/30"));
  Ok(f.store().Create(phantom, EncodeAffinity({AffinityState::kConfirmed, false})));
  auto alloc = f.NewAllocator();
  Assigned a = Ok(alloc->AutoAssign(Req("h", "node1"))).v4[0];
  CHECK(a.how.rfind("claimed block ", 0) == 0);  // not borrowed, not exhausted
  CHECK(ReadBlock(f.store(), a.block).affinity == "host:node1");
  // The claim picks a block at random, possibly the phantom's CIDR: then its key is rightly
  // back, with a block behind it. Either way no affinity of the node lacks its block.
  for (const Entry& e : Ok(f.store().List(AffinityPrefix("node1"))).entries) {
    std::optional<net::Prefix> cidr = CidrFromKey(e.key);
    REQUIRE(cidr.has_value());
    INFO(e.key);
    CHECK(Exists(f.store(), BlockKey(*cidr)));
  }
  if (a.block != P("10.0.0.4/30")) CHECK_FALSE(Exists(f.store(), phantom));
}

TEST_CASE("allocator: a datastore error surfaces and changes nothing", "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  auto alloc = f.NewAllocator();
  Environment env = f.Env();
  env.pools = []() -> absl::StatusOr<std::vector<Pool>> {
    return absl::UnavailableError("datastore down");
  };
  Allocator broken(f.store(), env);
  CHECK(broken.AutoAssign(Req("h", "node1")).status().code() == absl::StatusCode::kUnavailable);
  CHECK(Ok(alloc->ListBlocks()).empty());
  // A corrupt block is reported, not trusted.
  Assigned a = Ok(alloc->AutoAssign(Req("h", "node1"))).v4[0];
  Ok(f.store().Update(BlockKey(a.block), "{not json", datastore::kAnyRevision));
  auto fresh = f.NewAllocator();
  absl::Status s = fresh->AssignIP(a.ip, "h2", {}, "node1").status();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
}

// A pool deleted and recreated with another blockSize: its existing blocks keep their size.
// An address must still be found in the block that holds it, never in a new, overlapping one.
TEST_CASE("allocator: blocks of a pool's earlier blockSize are still the addresses' blocks",
          "[unit][ipamd]") {
  Fixture f;
  f.pools = {MakePool("p", "10.0.0.0/24", 26)};
  std::unique_ptr<Allocator> alloc = f.NewAllocator();
  Assigned a = Ok(alloc->AutoAssign(Req("h1", "node1"))).v4[0];
  REQUIRE(a.block.len == 26);
  f.pools = {MakePool("p", "10.0.0.0/24", 28)};

  SECTION("AssignIP of the held address is AlreadyExists; no overlapping block appears") {
    absl::StatusOr<Assigned> again = alloc->AssignIP(a.ip, "h2", {}, "node2");
    CHECK(again.status().code() == absl::StatusCode::kAlreadyExists);
    const std::vector<Block> blocks = Ok(alloc->ListBlocks());
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0].cidr == a.block);
    CHECK(Ok(alloc->GetHandle("h1")) == std::vector<net::IpAddress>{a.ip});
  }

  SECTION("AssignIP of a free address of the old block uses that block") {
    const net::IpAddress other = net::Add(a.block.addr, 63);
    Assigned b = Ok(alloc->AssignIP(other, "h2", {}, "node2"));
    CHECK(b.block == a.block);
    CHECK(Ok(alloc->ListBlocks()).size() == 1);
  }

  SECTION("ReleaseIPs frees the address in its old-size block") {
    ReleaseRequest r;
    r.ip = a.ip;
    r.handle_id = "h1";
    r.sequence_number = a.sequence_number;
    CHECK(Ok(alloc->ReleaseIPs({r})) == std::vector<net::IpAddress>{a.ip});
    CHECK(alloc->GetHandle("h1").status().code() == absl::StatusCode::kNotFound);
  }
}

}  // namespace
}  // namespace calico::ipamd
