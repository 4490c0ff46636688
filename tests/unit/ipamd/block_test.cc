// Block model: arithmetic, FIFO order, attributes bookkeeping, keys, and JSON in upstream's
// shape (golden strings as libcalico-go writes them).
#include "ipamd/allocator/block.h"

#include <catch2/catch.hpp>

namespace calico::ipamd {
namespace {

net::Prefix P(std::string_view text) { return *net::ParsePrefix(text); }
net::IpAddress Ip(std::string_view text) { return *net::ParseIp(text); }

TEST_CASE("block: empty block lists every ordinal in order", "[unit][ipamd]") {
  Block b = Block::Empty(P("10.65.0.4/30"), "host:node1");
  CHECK(b.NumAddresses() == 4);
  CHECK(b.unallocated == std::vector<int>{0, 1, 2, 3});
  CHECK(b.Empty());
  CHECK(b.AffineNode() == "node1");
  CHECK(b.AddressOf(3) == Ip("10.65.0.7"));
  CHECK(b.OrdinalOf(Ip("10.65.0.6")) == 2);
  CHECK_FALSE(b.OrdinalOf(Ip("10.65.0.8")).has_value());
  CHECK_FALSE(b.OrdinalOf(Ip("fd00::1")).has_value());
}

TEST_CASE("block: FIFO — allocate from the front, release to the back", "[unit][ipamd]") {
  Block b = Block::Empty(P("10.65.0.0/30"), std::nullopt);
  AllocationAttributes a{"h1", {{"pod", "a"}}};
  AllocationAttributes c{"h2", {}};
  b.sequence_number = 1;
  CHECK(b.AutoAssign(2, a, {}) == std::vector<int>{0, 1});
  b.sequence_number = 2;
  CHECK(b.AutoAssign(1, c, {}) == std::vector<int>{2});
  CHECK(b.attributes.size() == 2);
  CHECK(b.SequenceNumberOf(1) == 1);
  CHECK(b.SequenceNumberOf(2) == 2);
  b.Release(0);
  CHECK(b.unallocated == std::vector<int>{3, 0});
  CHECK(b.AttributesOf(1)->handle_id == "h1");  // still shared by ordinal 1
  b.Release(1);
  // h1's attribute entry is gone; h2's index shifted down.
  REQUIRE(b.attributes.size() == 1);
  CHECK(b.allocations[2] == 0);
  CHECK(b.AttributesOf(2)->handle_id == "h2");
  CHECK(b.unallocated == std::vector<int>{3, 0, 1});
  b.Release(1);  // already free: no-op
  CHECK(b.unallocated == std::vector<int>{3, 0, 1});
  CHECK(b.AutoAssign(1, a, {}) == std::vector<int>{3});
  CHECK(b.OrdinalsOfHandle("h2") == std::vector<int>{2});
}

TEST_CASE("block: reserved addresses are skipped and keep their place", "[unit][ipamd]") {
  Block b = Block::Empty(P("10.65.0.0/29"), std::nullopt);
  std::vector<net::Prefix> reserved = {P("10.65.0.0/31"), P("10.65.0.5/32")};
  CHECK(b.NumFreeUsable(reserved) == 5);
  CHECK(b.AutoAssign(4, {"h", {}}, reserved) == std::vector<int>{2, 3, 4, 6});
  CHECK(b.unallocated == std::vector<int>{0, 1, 5, 7});
  CHECK(b.NumFreeUsable(reserved) == 1);
}

TEST_CASE("block: Assign of a used ordinal is AlreadyExists", "[unit][ipamd]") {
  Block b = Block::Empty(P("10.65.0.0/30"), std::nullopt);
  REQUIRE(b.Assign(2, {"h", {}}).ok());
  CHECK(b.unallocated == std::vector<int>{0, 1, 3});
  CHECK(b.Assign(2, {"h", {}}).code() == absl::StatusCode::kAlreadyExists);
  CHECK(b.Assign(4, {"h", {}}).code() == absl::StatusCode::kOutOfRange);
}

TEST_CASE("block: keys as upstream lays them out", "[unit][ipamd]") {
  CHECK(BlockKey(P("10.65.0.0/26")) == "/calico/ipam/v2/assignment/ipv4/block/10.65.0.0-26");
  CHECK(BlockKey(P("fd00:10::/122")) == "/calico/ipam/v2/assignment/ipv6/block/fd00:10::-122");
  CHECK(AffinityKey("node1", P("10.65.0.0/26")) ==
        "/calico/ipam/v2/host/node1/ipv4/block/10.65.0.0-26");
  CHECK(HandleKey("k8s-pod-network.abc") == "/calico/ipam/v2/handle/k8s-pod-network.abc");
  CHECK(CidrFromKey("/calico/ipam/v2/host/node1/ipv6/block/fd00:10::-122") == P("fd00:10::/122"));
  CHECK_FALSE(CidrFromKey("/calico/ipam/v2/handle/x").has_value());
  CHECK_FALSE(CidrFromKey("/calico/ipam/v2/assignment/ipv4/block/10.65.0.1-26").has_value());
}

TEST_CASE("block: JSON golden and round trip", "[unit][ipamd]") {
  Block b = Block::Empty(P("10.65.0.0/30"), "host:node1");
  b.sequence_number = 3;
  REQUIRE(b.AutoAssign(1, {"k8s-pod-network.abc", {{"namespace", "default"}, {"pod", "p"}}}, {})
              .size() == 1);
  b.sequence_number = 4;
  REQUIRE(b.Assign(2, {"vxlan-tunnel-addr-node1", {}}).ok());
  const std::string golden =
      R"({"cidr":"10.65.0.0/30","affinity":"host:node1","strictAffinity":false,)"
      R"("allocations":[0,null,1,null],"unallocated":[1,3],)"
      R"("attributes":[{"handle_id":"k8s-pod-network.abc","secondary":{"namespace":"default","pod":"p"}},)"
      R"({"handle_id":"vxlan-tunnel-addr-node1"}],"deleted":false,"sequenceNumber":4,)"
      R"("sequenceNumberForAllocation":{"0":3,"2":4}})";
  CHECK(EncodeBlock(b) == golden);
  absl::StatusOr<Block> back = DecodeBlock(golden);
  REQUIRE(back.ok());
  CHECK(*back == b);

  Block unaffine = Block::Empty(P("fd00::/126"), std::nullopt);
  absl::StatusOr<Block> u = DecodeBlock(EncodeBlock(unaffine));
  REQUIRE(u.ok());
  CHECK(*u == unaffine);
  CHECK(EncodeBlock(unaffine).find(R"("affinity":null)") != std::string::npos);
}

TEST_CASE("block: JSON as libcalico-go writes it decodes", "[unit][ipamd]") {
  // Upstream marshals nil maps as null and, on old blocks, hostAffinity instead of affinity.
  absl::StatusOr<Block> b = DecodeBlock(
      R"({"cidr":"10.0.0.0/31","hostAffinity":"n2","strictAffinity":false,"allocations":[null,0],)"
      R"("unallocated":[0],"attributes":[{"handle_id":"h","secondary":null}],"deleted":false,)"
      R"("sequenceNumber":0,"sequenceNumberForAllocation":null})");
  REQUIRE(b.ok());
  CHECK(b->affinity == "host:n2");
  CHECK(b->SequenceNumberOf(1) == 0);
  CHECK(b->AttributesOf(1)->handle_id == "h");
}

TEST_CASE("block: malformed JSON is InvalidArgument, never an exception", "[unit][ipamd]") {
  for (std::string_view bad : {
           R"(not json)",
           R"([])",
           R"({"cidr":"10.0.0.0/31","allocations":[null]})",
           R"({"cidr":"10.0.0.0/31","allocations":[null,3],"attributes":[]})",
           R"({"cidr":"10.0.0.0/31","allocations":[null,null],"unallocated":[2]})",
           R"({"cidr":"bogus","allocations":[]})",
           R"({"cidr":5})",
       }) {
    INFO(bad);
    CHECK(DecodeBlock(bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(DecodeAffinity(R"({"state":"weird"})").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(DecodeHandle(R"({"block":{"x":"y"}})").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("block: affinity and handle JSON golden", "[unit][ipamd]") {
  CHECK(EncodeAffinity({AffinityState::kPending, false}) ==
        R"({"state":"pending","deleted":false})");
  CHECK(EncodeAffinity({AffinityState::kPendingDeletion, false}) ==
        R"({"state":"pendingDeletion","deleted":false})");
  for (AffinityState s :
       {AffinityState::kPending, AffinityState::kConfirmed, AffinityState::kPendingDeletion}) {
    BlockAffinity a{s, false};
    CHECK(*DecodeAffinity(EncodeAffinity(a)) == a);
  }
  Handle h{"k8s-pod-network.abc", {{"10.65.0.0/26", 2}, {"fd00::/122", 1}}, false};
  const std::string golden =
      R"({"handleID":"k8s-pod-network.abc","block":{"10.65.0.0/26":2,"fd00::/122":1},"deleted":false})";
  CHECK(EncodeHandle(h) == golden);
  CHECK(*DecodeHandle(golden) == h);
  // libcalico-go's etcd model leaves handleID out (it is the key).
  absl::StatusOr<Handle> etcd = DecodeHandle(R"({"block":{"10.65.0.0/26":1},"deleted":false})");
  REQUIRE(etcd.ok());
  CHECK(etcd->blocks.at("10.65.0.0/26") == 1);
}

}  // namespace
}  // namespace calico::ipamd
