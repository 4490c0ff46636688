// Check(): every rule of ipamd/allocator/check.h on hand-built blocks, plus the report JSON.
#include "ipamd/allocator/check.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

namespace {

using calico::ipamd::Block;
using calico::ipamd::Check;
using calico::ipamd::CheckReport;
using calico::ipamd::Handle;
using calico::ipamd::InUse;
using calico::net::IpAddress;
using calico::net::Prefix;

IpAddress Ip(const char* text) {
  auto ip = calico::net::ParseIp(text);
  REQUIRE(ip.has_value());
  return *ip;
}

Prefix Cidr(const char* text) {
  auto p = calico::net::ParsePrefix(text);
  REQUIRE(p.has_value());
  return *p;
}

// A consistent, empty block, built field by field so these tests do not depend on block.cc.
Block MakeBlock(const char* cidr, std::optional<std::string> affinity) {
  Block b;
  b.cidr = Cidr(cidr);
  b.affinity = std::move(affinity);
  const int n = 1 << (b.cidr.addr.Bits() - b.cidr.len);
  b.allocations.assign(n, std::nullopt);
  for (int i = 0; i < n; ++i) b.unallocated.push_back(i);
  return b;
}

// Allocates `ordinal` to `handle` the way the allocator does: one attributes entry per handle.
void Allocate(Block& b, int ordinal, const std::string& handle, uint64_t seq,
              std::map<std::string, std::string> secondary = {}) {
  b.unallocated.erase(std::find(b.unallocated.begin(), b.unallocated.end(), ordinal));
  b.attributes.push_back({handle, std::move(secondary)});
  b.allocations[ordinal] = static_cast<int>(b.attributes.size()) - 1;
  b.sequence_number = std::max(b.sequence_number, seq);
  b.sequence_number_for_allocation[ordinal] = seq;
}

Handle MakeHandle(const std::string& id, std::map<std::string, int> blocks) {
  Handle h;
  h.handle_id = id;
  h.blocks = std::move(blocks);
  return h;
}

InUse Nodes(std::set<std::string> nodes) {
  InUse in_use;
  in_use.nodes = std::move(nodes);
  return in_use;
}

bool HasProblem(const CheckReport& r, const std::string& block, const std::string& fragment) {
  for (const auto& b : r.invalid_blocks) {
    if (calico::net::FormatCidr(b.block) == block && b.problem.find(fragment) != std::string::npos)
      return true;
  }
  return false;
}

std::string Problems(const CheckReport& r) {
  std::string out;
  for (const auto& b : r.invalid_blocks)
    out += calico::net::FormatCidr(b.block) + ": " + b.problem + "\n";
  return out;
}

}  // namespace

TEST_CASE("Check: a consistent state is clean", "[unit][ipam_check]") {
  Block b = MakeBlock("10.65.0.0/26", "host:node1");
  Allocate(b, 0, "k8s-pod-network.a", 1,
           {{"node", "node1"}, {"pod", "a"}, {"namespace", "default"}});
  Allocate(b, 1, "vxlan-tunnel-addr-node1", 2, {{"node", "node1"}, {"type", "vxlanTunnelAddress"}});
  InUse in_use = Nodes({"node1"});
  in_use.ips[Ip("10.65.0.0")] = "WorkloadEndpoint default/a";
  in_use.ips[Ip("10.65.0.1")] = "Node node1 (vxlan tunnel)";
  std::vector<Handle> handles = {MakeHandle("k8s-pod-network.a", {{"10.65.0.0/26", 1}}),
                                 MakeHandle("vxlan-tunnel-addr-node1", {{"10.65.0.0/26", 1}})};
  CheckReport r = Check({b}, handles, in_use);
  INFO(Problems(r));
  REQUIRE(r.Clean());
}

TEST_CASE(
    "Check: an allocated address nobody uses is a leak candidate with handle, attributes and "
    "sequence",
    "[unit][ipam_check]") {
  Block b = MakeBlock("10.65.0.0/26", "host:node1");
  Allocate(b, 0, "k8s-pod-network.a", 3, {{"pod", "a"}, {"namespace", "ns1"}, {"node", "node1"}});
  Allocate(b, 5, "k8s-pod-network.gone", 7,
           {{"pod", "gone"}, {"namespace", "ns1"}, {"node", "node1"}});
  InUse in_use = Nodes({"node1"});
  in_use.ips[Ip("10.65.0.0")] = "WorkloadEndpoint ns1/a";
  CheckReport r = Check({b},
                        {MakeHandle("k8s-pod-network.a", {{"10.65.0.0/26", 1}}),
                         MakeHandle("k8s-pod-network.gone", {{"10.65.0.0/26", 1}})},
                        in_use);
  REQUIRE(r.allocated_not_in_use.size() == 1);
  const auto& leak = r.allocated_not_in_use[0];
  CHECK(leak.ip == Ip("10.65.0.5"));
  CHECK(leak.block == Cidr("10.65.0.0/26"));
  CHECK(leak.handle_id == "k8s-pod-network.gone");
  CHECK(leak.attributes.at("pod") == "gone");
  CHECK(leak.sequence_number == 7);
  CHECK(r.in_use_not_allocated.empty());
  CHECK(r.handles_mismatched.empty());
  CHECK(r.invalid_blocks.empty());
}

TEST_CASE("Check: an address in use is never a leak, whatever else is wrong with it",
          "[unit][ipam_check]") {
  Block b = MakeBlock("10.65.0.0/26", "host:node1");
  Allocate(b, 0, "k8s-pod-network.a", 1);
  Allocate(b, 1, "", 1);                   // no handle at all
  Allocate(b, 2, "k8s-pod-network.x", 1);  // handle record missing
  b.allocations[3] = 42;                   // attributes index out of range
  b.unallocated.erase(std::find(b.unallocated.begin(), b.unallocated.end(), 3));
  Block orphan = MakeBlock("10.65.1.0/26", "host:deleted-node");  // affine to a node that is gone
  Allocate(orphan, 9, "k8s-pod-network.b", 4);
  InUse in_use = Nodes({"node1"});
  for (const char* ip : {"10.65.0.0", "10.65.0.1", "10.65.0.2", "10.65.0.3", "10.65.1.9"}) {
    in_use.ips[Ip(ip)] = "WorkloadEndpoint default/w";
  }
  CheckReport r = Check({b, orphan}, {}, in_use);
  CHECK(r.allocated_not_in_use.empty());
  CHECK(r.in_use_not_allocated.empty());
  CHECK_FALSE(r.invalid_blocks.empty());  // the block problems are still reported
}

TEST_CASE("Check: in use but not allocated, outside any block or on a free ordinal",
          "[unit][ipam_check]") {
  Block b = MakeBlock("10.65.0.0/26", "host:node1");
  Allocate(b, 0, "h", 1);
  InUse in_use = Nodes({"node1"});
  in_use.ips[Ip("10.65.0.0")] = "WorkloadEndpoint default/a";
  in_use.ips[Ip("10.65.0.4")] = "WorkloadEndpoint default/b";  // free in its block
  in_use.ips[Ip("192.168.9.9")] = "Node node1 (ipip tunnel)";  // no block at all
  in_use.ips[Ip("fd00::5")] = "WorkloadEndpoint default/c";    // other family
  CheckReport r = Check({b}, {MakeHandle("h", {{"10.65.0.0/26", 1}})}, in_use);
  REQUIRE(r.in_use_not_allocated.size() == 3);
  CHECK(r.in_use_not_allocated[0].ip == Ip("10.65.0.4"));
  CHECK(r.in_use_not_allocated[0].used_by == "WorkloadEndpoint default/b");
  CHECK(r.in_use_not_allocated[1].ip == Ip("192.168.9.9"));
  CHECK(r.in_use_not_allocated[2].ip == Ip("fd00::5"));
  CHECK(r.allocated_not_in_use.empty());
}

TEST_CASE("Check: handles whose refcount disagrees with the blocks", "[unit][ipam_check]") {
  Block b1 = MakeBlock("10.65.0.0/26", "host:node1");
  Block b2 = MakeBlock("10.65.0.64/26", "host:node1");
  Allocate(b1, 0, "two", 1);
  Allocate(b1, 1, "two", 1);
  Allocate(b1, 2, "undercounted", 1);
  Allocate(b1, 3, "undercounted", 1);
  Allocate(b1, 4, "no-record", 1);  // crash between block write and handle write
  Allocate(b2, 0, "moved", 1);      // handle says b1, blocks say b2: same total, wrong block
  std::vector<Handle> handles = {
      MakeHandle("two", {{"10.65.0.0/26", 2}}),
      MakeHandle("undercounted", {{"10.65.0.0/26", 1}}),
      MakeHandle("empty", {}),                     // a handle with no addresses
      MakeHandle("stale", {{"10.65.0.0/26", 1}}),  // refcount 1, nothing in the blocks
      MakeHandle("moved", {{"10.65.0.0/26", 1}}),
  };
  InUse in_use = Nodes({"node1"});
  for (int i = 0; i < 5; ++i) in_use.ips[calico::net::Add(Ip("10.65.0.0"), i)] = "w";
  in_use.ips[Ip("10.65.0.64")] = "w";
  CheckReport r = Check({b2, b1}, handles, in_use);
  REQUIRE(r.handles_mismatched.size() == 5);
  // Sorted by handle id.
  const auto& m = r.handles_mismatched;
  CHECK(m[0].handle_id == "empty");
  CHECK((m[0].handle_count == 0 && m[0].block_count == 0));
  CHECK(m[1].handle_id == "moved");
  CHECK((m[1].handle_count == 1 && m[1].block_count == 1));
  CHECK(m[2].handle_id == "no-record");
  CHECK((m[2].handle_count == 0 && m[2].block_count == 1));
  CHECK(m[3].handle_id == "stale");
  CHECK((m[3].handle_count == 1 && m[3].block_count == 0));
  CHECK(m[4].handle_id == "undercounted");
  CHECK((m[4].handle_count == 1 && m[4].block_count == 2));
  CHECK(r.allocated_not_in_use.empty());
}

TEST_CASE("Check: invalid blocks", "[unit][ipam_check]") {
  InUse in_use = Nodes({"node1"});

  SECTION("affinity to a node that does not exist") {
    CheckReport r = Check({MakeBlock("10.65.0.0/26", "host:node2")}, {}, in_use);
    INFO(Problems(r));
    CHECK(HasProblem(r, "10.65.0.0/26", "affine to node2, which does not exist"));
  }
  SECTION("an unaffine block is fine; a malformed affinity is not") {
    CHECK(Check({MakeBlock("10.65.0.0/26", std::nullopt)}, {}, in_use).Clean());
    CheckReport r = Check({MakeBlock("10.65.0.0/26", "node1")}, {}, in_use);
    CHECK(HasProblem(r, "10.65.0.0/26", "not of the form host:<node>"));
  }
  SECTION("an ordinal both free and allocated") {
    Block b = MakeBlock("10.65.0.0/26", "host:node1");
    Allocate(b, 5, "h", 1);
    b.unallocated.push_back(5);
    in_use.ips[Ip("10.65.0.5")] = "w";
    CheckReport r = Check({b}, {MakeHandle("h", {{"10.65.0.0/26", 1}})}, in_use);
    INFO(Problems(r));
    CHECK(HasProblem(r, "10.65.0.0/26", "ordinal 5 (10.65.0.5) is both free and allocated"));
  }
  SECTION("an ordinal neither free nor allocated") {
    Block b = MakeBlock("10.65.0.0/26", "host:node1");
    b.unallocated.erase(std::find(b.unallocated.begin(), b.unallocated.end(), 7));
    CheckReport r = Check({b}, {}, in_use);
    CHECK(HasProblem(r, "10.65.0.0/26", "ordinal 7 (10.65.0.7) is neither free nor allocated"));
  }
  SECTION("a free-list entry out of range or repeated") {
    Block b = MakeBlock("10.65.0.0/26", "host:node1");
    b.unallocated.push_back(64);
    b.unallocated.push_back(3);
    CheckReport r = Check({b}, {}, in_use);
    INFO(Problems(r));
    CHECK(HasProblem(r, "10.65.0.0/26", "ordinal 64, outside 0-63"));
    CHECK(HasProblem(r, "10.65.0.0/26", "ordinal 3 more than once"));
  }
  SECTION("an attributes index out of range") {
    Block b = MakeBlock("10.65.0.0/26", "host:node1");
    Allocate(b, 2, "h", 1);
    b.allocations[2] = 1;
    CheckReport r = Check({b}, {}, in_use);
    INFO(Problems(r));
    CHECK(HasProblem(r, "10.65.0.0/26",
                     "ordinal 2 (10.65.0.2) refers to attributes[1], but the block has 1"));
    // Not in use and no attributes: still a leak candidate, with no handle to quote.
    REQUIRE(r.allocated_not_in_use.size() == 1);
    CHECK(r.allocated_not_in_use[0].handle_id.empty());
  }
  SECTION("allocations length differs from the block size") {
    Block b = MakeBlock("10.65.0.0/26", "host:node1");
    b.allocations.resize(32);
    b.unallocated.resize(32);
    CheckReport r = Check({b}, {}, in_use);
    INFO(Problems(r));
    CHECK(HasProblem(r, "10.65.0.0/26",
                     "allocations has 32 entries but a /26 block has 64 addresses"));
  }
  SECTION("overlapping blocks") {
    CheckReport r =
        Check({MakeBlock("10.65.0.0/26", "host:node1"), MakeBlock("10.65.0.0/27", "host:node1")},
              {}, in_use);
    INFO(Problems(r));
    CHECK(r.invalid_blocks.size() == 1);
    CHECK(HasProblem(r, "10.65.0.0/27", "overlaps block 10.65.0.0/26"));
  }
}

TEST_CASE("Check: IPv6 /122 blocks", "[unit][ipam_check]") {
  Block b = MakeBlock("fd00:10:65::/122", "host:node1");
  REQUIRE(b.NumAddresses() == 64);
  Allocate(b, 0, "h6", 2);
  Allocate(b, 63, "h6", 2);
  InUse in_use = Nodes({"node1"});
  in_use.ips[Ip("fd00:10:65::")] = "WorkloadEndpoint default/a";
  CheckReport r = Check({b}, {MakeHandle("h6", {{"fd00:10:65::/122", 2}})}, in_use);
  INFO(Problems(r));
  CHECK(r.invalid_blocks.empty());
  REQUIRE(r.allocated_not_in_use.size() == 1);
  CHECK(r.allocated_not_in_use[0].ip == Ip("fd00:10:65::3f"));
}

TEST_CASE("Check: the report depends on the state, not on the listing order",
          "[unit][ipam_check]") {
  Block a = MakeBlock("10.65.0.0/26", "host:node1");
  Block b = MakeBlock("10.65.0.64/26", "host:ghost");
  Allocate(a, 1, "h1", 1);
  Allocate(b, 2, "h2", 1);
  std::vector<Handle> handles = {MakeHandle("h2", {}), MakeHandle("h1", {})};
  InUse in_use = Nodes({"node1"});
  const std::string forward = calico::ipamd::ReportToJson(Check({a, b}, handles, in_use));
  std::reverse(handles.begin(), handles.end());
  const std::string backward = calico::ipamd::ReportToJson(Check({b, a}, handles, in_use));
  CHECK(forward == backward);
}

TEST_CASE("Report JSON round-trips and rejects malformed reports", "[unit][ipam_check]") {
  CheckReport r;
  r.allocated_not_in_use.push_back({Ip("10.65.0.5"),
                                    Cidr("10.65.0.0/26"),
                                    "k8s-pod-network.x",
                                    {{"pod", "p"}, {"namespace", "n"}},
                                    18446744073709551615ULL});
  r.allocated_not_in_use.push_back({Ip("fd00::3"), Cidr("fd00::/122"), "h6", {}, 0});
  r.in_use_not_allocated.push_back({Ip("10.65.0.9"), "WorkloadEndpoint default/w"});
  r.handles_mismatched.push_back({"h", 2, 1});
  r.invalid_blocks.push_back({Cidr("10.65.1.0/26"), "affine to node9, which does not exist"});
  const std::string json = calico::ipamd::ReportToJson(r);
  auto back = calico::ipamd::ReportFromJson(json);
  REQUIRE(back.ok());
  CHECK(calico::ipamd::ReportToJson(*back) == json);
  REQUIRE(back->allocated_not_in_use.size() == 2);
  CHECK(back->allocated_not_in_use[0].sequence_number == 18446744073709551615ULL);
  CHECK(back->allocated_not_in_use[0].attributes.at("pod") == "p");
  CHECK(back->handles_mismatched[0].handle_count == 2);
  CHECK(back->invalid_blocks[0].problem == "affine to node9, which does not exist");

  CHECK(calico::ipamd::ReportFromJson("{}").ok());  // no categories: nothing to do

  struct Bad {
    const char* json;
    const char* fragment;
  };
  for (
      const Bad& bad : {
          Bad{"not json", "not valid JSON"},
          Bad{"[]", "not a JSON object"},
          Bad{R"({"version": 2})", "version: 2 is not supported"},
          Bad{R"({"allocatedNotInUse": {}})", "allocatedNotInUse: not an array"},
          Bad{R"({"allocatedNotInUse": [{"ip": "10.0.0.300", "block": "10.0.0.0/26", "sequenceNumber": 1}]})",
              "allocatedNotInUse[0].ip: \"10.0.0.300\" is not an IP address"},
          Bad{R"({"allocatedNotInUse": [{"ip": "10.0.0.3", "block": "10.0.0.0/26"}]})",
              "missing \"sequenceNumber\""},
          Bad{R"({"allocatedNotInUse": [{"ip": "10.0.0.3", "block": "10.0.0.0/26", "sequenceNumber": -1}]})",
              "sequenceNumber: not a non-negative integer"},
          Bad{R"({"allocatedNotInUse": [{"ip": "10.0.0.3", "block": "x", "sequenceNumber": 1}]})",
              "block: \"x\" is not a CIDR"},
          Bad{R"({"handlesMismatched": [{"handleID": "h", "handleCount": "2", "blockCount": 1}]})",
              "handleCount: not an integer"},
      }) {
    INFO(bad.json);
    auto parsed = calico::ipamd::ReportFromJson(bad.json);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(parsed.status().message()).find(bad.fragment) != std::string::npos);
  }
}
