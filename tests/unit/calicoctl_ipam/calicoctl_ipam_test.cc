// calicoctl ipam show / check / release / configure, in-process on a real SQLite datastore.
// IPAM state is planted through the allocator library, as ipamd would write it.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "calicoctl/cli.h"
#include "calicoctl/ipam.h"
#include "ipamd/allocator/resource_environment.h"
#include "common/datastore/sqlite/sqlite_datastore.h"
#include "common/resources/client/client.h"
#include "ipamd/allocator/allocator.h"
#include "ipamd/allocator/block.h"
#include "ipamd/allocator/check.h"

namespace fs = std::filesystem;
using calico::datastore::Config;
using calico::ipamd::Assigned;
using calico::net::IpAddress;

namespace {

struct Result {
  int code;
  std::string out;
  std::string err;
};

std::string Ip(const IpAddress& ip) { return calico::net::FormatIp(ip); }

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A cluster: one pool (default 10.65.0.0/26: a single block, so the allocator's random block
// choice cannot make outputs vary), nodes node1 and node2; its own datastore handle and
// allocator stand in for ipamd.
class Cluster {
 public:
  explicit Cluster(const std::string& pool_cidr = "10.65.0.0/26") {
    char tmpl[] = "/tmp/calicoctl-ipam-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_.sqlite_path = dir_ + "/calico.db";
    auto store = calico::datastore::OpenSqlite(config_);
    REQUIRE(store.ok());
    store_ = *std::move(store);
    client_ = std::make_unique<calico::resources::Client>(*store_);
    allocator_ = std::make_unique<calico::ipamd::Allocator>(
        *store_, calico::ipamd::DatastoreEnvironment(*store_, absl::ZeroDuration()));
    Apply(R"(apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: p1
spec:
  cidr: )" +
          pool_cidr + R"(
  blockSize: 26
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node1
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node2
)");
  }
  ~Cluster() {
    allocator_.reset();
    client_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  Result operator()(std::vector<std::string> args, const std::string& stdin_text = "") {
    std::istringstream in(stdin_text);
    std::ostringstream out, err;
    calico::calicoctl::Environment env{
        .open = [](const Config& c) { return calico::datastore::OpenSqlite(c); },
        .config_from_env = [this]() -> absl::StatusOr<Config> { return config_; },
    };
    int code = calico::calicoctl::Run(args, {in, out, err}, env);
    return {code, out.str(), err.str()};
  }

  void Apply(const std::string& yaml) {
    Result r = (*this)({"apply", "-f", "-"}, yaml);
    INFO(r.err);
    REQUIRE(r.code == 0);
  }

  // A pod's address, as the CNI plugin would get it from ipamd.
  Assigned Assign(const std::string& pod, const std::string& node,
                  const std::string& ns = "default") {
    calico::ipamd::AutoAssignRequest req;
    req.handle_id = "k8s-pod-network." + pod;
    req.num_v4 = 1;
    req.attributes = {{"namespace", ns}, {"pod", pod}, {"node", node}};
    req.node = node;
    auto result = allocator_->AutoAssign(req);
    INFO(result.status().message());
    REQUIRE(result.ok());
    REQUIRE(result->v4.size() == 1);
    return result->v4[0];
  }

  // The pod's WorkloadEndpoint: from here on the address is in use.
  void Endpoint(const std::string& pod, const std::string& node, const IpAddress& ip,
                const std::string& ns = "default") {
    Apply("apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  name: " + node +
          "-k8s-" + pod + "-eth0\n  namespace: " + ns + "\nspec:\n  orchestrator: k8s\n  node: " +
          node + "\n  pod: " + pod + "\n  endpoint: eth0\n  containerID: " + pod +
          "\n  interfaceName: cali" + pod + "\n  ipNetworks:\n  - " + Ip(ip) + "/32\n");
  }

  // Overwrites a handle's refcount in its block, as a bug or a crash might leave it.
  void SetHandleCount(const std::string& handle_id, const std::string& block, int count) {
    auto entry = store_->Get(calico::ipamd::HandleKey(handle_id));
    REQUIRE(entry.ok());
    auto handle = calico::ipamd::DecodeHandle(entry->value);
    REQUIRE(handle.ok());
    handle->blocks[block] = count;
    REQUIRE(
        store_->Update(entry->key, calico::ipamd::EncodeHandle(*handle), entry->mod_revision).ok());
  }

  // The handle holding `ip`, or "" when free.
  std::string HolderOf(const IpAddress& ip) {
    auto blocks = allocator_->ListBlocks();
    REQUIRE(blocks.ok());
    for (const auto& b : *blocks) {
      std::optional<int> o = b.OrdinalOf(ip);
      if (!o || !b.allocations[*o]) continue;
      return b.attributes[*b.allocations[*o]].handle_id;
    }
    return "";
  }

  calico::ipamd::Allocator& allocator() { return *allocator_; }
  calico::datastore::Datastore& store() { return *store_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
  Config config_;
  std::unique_ptr<calico::datastore::Datastore> store_;
  std::unique_ptr<calico::resources::Client> client_;
  std::unique_ptr<calico::ipamd::Allocator> allocator_;
};

bool Contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

int Lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("ipam show: upstream's bordered pool and block tables", "[unit][calicoctl_ipam]") {
  Cluster c("10.65.0.0/16");
  // Upstream's number format ("%.5g") for a pool too large to count exactly.
  c.Apply(
      "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p6\nspec:\n"
      "  cidr: fd00:65::/64\n");
  Result empty = c({"ipam", "show"});
  REQUIRE(empty.code == 0);
  CHECK(empty.out ==
        "+----------+--------------+------------+------------+-------------------+\n"
        "| GROUPING | CIDR         | IPS TOTAL  | IPS IN USE | IPS FREE          |\n"
        "+----------+--------------+------------+------------+-------------------+\n"
        "| IP Pool  | 10.65.0.0/16 |      65536 |     0 (0%) |      65536 (100%) |\n"
        "| IP Pool  | fd00:65::/64 | 1.8447e+19 |     0 (0%) | 1.8447e+19 (100%) |\n"
        "+----------+--------------+------------+------------+-------------------+\n");
  Assigned a = c.Assign("a", "node1");
  c.Assign("b", "node1");
  c.Assign("c", "node1");
  Result blocks = c({"ipam", "show", "--show-blocks"});
  INFO(blocks.out);
  REQUIRE(blocks.code == 0);
  // The allocator picks a random free block of the pool; pad its CIDR to the column.
  std::string block = calico::net::FormatCidr(a.block);
  CHECK(Contains(blocks.out, "| IP Pool  | 10.65.0.0/16" + std::string(block.size() - 12, ' ') +
                                 " |      65536 |     3 (0%) |      65533 (100%) |\n"));
  CHECK(Contains(blocks.out,
                 "| Block    | " + block + " |         64 |     3 (5%) |          61 (95%) |\n"));
  Result plain = c({"ipam", "show"});
  CHECK_FALSE(Contains(plain.out, "Block"));
}

TEST_CASE("ipam show --ip: in use with handle and attributes, or not assigned",
          "[unit][calicoctl_ipam]") {
  Cluster c;
  Assigned a = c.Assign("web-1", "node1", "shop");
  Result used = c({"ipam", "show", "--ip=" + Ip(a.ip)});
  REQUIRE(used.code == 0);
  CHECK(used.out == "IP " + Ip(a.ip) +
                        " is in use\n"
                        "Handle ID: k8s-pod-network.web-1\n"
                        "Attributes:\n"
                        "  namespace: shop\n"
                        "  node: node1\n"
                        "  pod: web-1\n");
  Result free = c({"ipam", "show", "--ip", "10.65.0.63"});
  REQUIRE(free.code == 0);
  CHECK(free.out == "IP 10.65.0.63 is not assigned\n");
  Result outside = c({"ipam", "show", "--ip=192.0.2.1"});
  CHECK(outside.out == "IP 192.0.2.1 is not assigned\n");
}

TEST_CASE("ipam show --show-borrowed lists addresses used by another node than the block's",
          "[unit][calicoctl_ipam]") {
  Cluster c("10.65.0.0/24");
  Assigned own = c.Assign("a", "node1");
  // node2 may not claim a block of its own, so it borrows from node1's.
  c.Apply(
      "apiVersion: projectcalico.org/v3\nkind: IPAMConfiguration\nmetadata:\n  name: default\n"
      "spec:\n  autoAllocateBlocks: false\n");
  Assigned borrowed = c.Assign("b", "node2", "shop");
  REQUIRE(borrowed.block == own.block);
  Result r = c({"ipam", "show", "--show-borrowed"});
  INFO(r.out);
  REQUIRE(r.code == 0);
  // Column widths follow the random block's CIDR: compare cells, not padding.
  std::string squeezed;
  for (char ch : r.out) {
    if (ch != ' ' || (squeezed.size() > 0 && squeezed.back() != ' ')) squeezed += ch;
  }
  CHECK(
      Contains(squeezed, "| IP | BORROWING-NODE | BLOCK | BLOCK OWNER | TYPE | ALLOCATED-TO |\n"));
  CHECK(Contains(squeezed, "| " + Ip(borrowed.ip) + " | node2 | " +
                               calico::net::FormatCidr(own.block) + " | node1 | pod | shop/b |\n"));
  REQUIRE(Lines(r.out) == 5);  // rule, heading, rule, one row, rule
  CHECK_FALSE(Contains(r.out, Ip(own.ip) + " "));
}

TEST_CASE("ipam show --show-configuration and ipam configure", "[unit][calicoctl_ipam]") {
  Cluster c;
  Result defaults = c({"ipam", "show", "--show-configuration"});
  REQUIRE(defaults.code == 0);
  CHECK(defaults.out ==
        "+--------------------+-------+\n"
        "| PROPERTY           | VALUE |\n"
        "+--------------------+-------+\n"
        "| StrictAffinity     | false |\n"
        "| AutoAllocateBlocks | true  |\n"
        "| MaxBlocksPerHost   | 0     |\n"
        "+--------------------+-------+\n");

  // Absent: configure creates it.
  Result set = c({"ipam", "configure", "--strictaffinity=true"});
  INFO(set.err);
  REQUIRE(set.code == 0);
  CHECK(set.out == "Successfully set StrictAffinity to: true\n");
  Result got = c({"get", "ipamconfiguration", "default", "-o", "yaml"});
  CHECK(Contains(got.out, "kind: IPAMConfiguration"));
  CHECK(Contains(got.out, "strictAffinity: true"));

  // Present: configure keeps the fields it was not asked to change.
  c.Apply(
      "apiVersion: projectcalico.org/v3\nkind: IPAMConfiguration\nmetadata:\n  name: default\n"
      "spec:\n  strictAffinity: true\n  autoAllocateBlocks: false\n");
  Result both = c({"ipam", "configure", "--strictaffinity=False", "--max-blocks-per-host=4"});
  INFO(both.err);
  REQUIRE(both.code == 0);
  CHECK(both.out ==
        "Successfully set StrictAffinity to: false\nSuccessfully set MaxBlocksPerHost to: 4\n");
  Result shown = c({"ipam", "show", "--show-configuration"});
  CHECK(Contains(shown.out, "| StrictAffinity     | false |\n"));
  CHECK(Contains(shown.out, "| AutoAllocateBlocks | false |\n"));
  CHECK(Contains(shown.out, "| MaxBlocksPerHost   | 4     |\n"));

  Result bad = c({"ipam", "configure", "--strictaffinity=maybe"});
  CHECK(bad.code == 1);
  CHECK(bad.err == "Invalid arguments: --strictaffinity=maybe is not true or false\n");
  Result missing = c({"ipam", "configure", "--max-blocks-per-host=2"});
  CHECK(missing.code == 1);
  CHECK(missing.err == "Invalid arguments: --strictaffinity=<true/false> is required\n");
}

TEST_CASE("ipam check: a clean cluster has no problems", "[unit][calicoctl_ipam]") {
  Cluster c;
  Assigned a = c.Assign("a", "node1");
  c.Endpoint("a", "node1", a.ip);
  Result r = c({"ipam", "check"});
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(Contains(r.out, "Checking IPAM for inconsistencies...\n"));
  CHECK(Contains(r.out, "Found 1 IPAM blocks.\n"));
  CHECK(Contains(r.out, "IPAM blocks record 1 allocations.\n"));
  CHECK(Contains(r.out, "Found 1 workload IPs.\n"));
  CHECK(Contains(r.out, "Check complete; found 0 problems.\n"));
}

TEST_CASE("ipam check finds a planted leak and a mismatched handle and writes the report",
          "[unit][calicoctl_ipam]") {
  Cluster c;
  Assigned live = c.Assign("live", "node1");
  c.Endpoint("live", "node1", live.ip);
  Assigned leak = c.Assign("gone", "node1");  // no WorkloadEndpoint: leaked
  c.SetHandleCount("k8s-pod-network.live", calico::net::FormatCidr(live.block), 2);
  // A node tunnel address in the pool that IPAM never allocated.
  c.Apply(
      "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: node2\nspec:\n"
      "  ipv4VXLANTunnelAddr: 10.65.0.60\n");

  const std::string report_path = c.Path("report.json");
  Result r = c({"ipam", "check", "--show-problem-ips", "-o", report_path});
  INFO(r.out);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(Contains(r.out, "Found 1 IPs that are allocated in IPAM but not actually in use.\n"));
  CHECK(Contains(r.out, "  " + Ip(leak.ip) + " leaked; handle k8s-pod-network.gone, sequence " +
                            std::to_string(leak.sequence_number)));
  CHECK(Contains(r.out, "Found 1 node tunnel IPs.\n"));
  CHECK(Contains(r.out,
                 "  10.65.0.60 in use by Node node2 (vxlan tunnel) and in active IPAM pool but has "
                 "no IPAM allocation.\n"));
  CHECK(Contains(r.out,
                 "Found 1 in-use IPs that are in active IP pools but have no corresponding IPAM "
                 "allocation.\n"));
  CHECK(Contains(r.out, "  k8s-pod-network.live records 2 IP(s) but the blocks hold 1.\n"));
  CHECK(Contains(r.out, "Found 1 handles whose count disagrees with the blocks.\n"));
  CHECK(Contains(r.out, "Check complete; found 3 problems.\n"));
  CHECK(Contains(r.out, "Report written to " + report_path + "\n"));

  auto report = calico::ipamd::ReportFromJson(ReadFile(report_path));
  REQUIRE(report.ok());
  REQUIRE(report->allocated_not_in_use.size() == 1);
  CHECK(report->allocated_not_in_use[0].ip == leak.ip);
  CHECK(report->allocated_not_in_use[0].handle_id == "k8s-pod-network.gone");
  CHECK(report->allocated_not_in_use[0].sequence_number == leak.sequence_number);
  CHECK(report->allocated_not_in_use[0].attributes.at("pod") == "gone");
  REQUIRE(report->handles_mismatched.size() == 1);
  CHECK(report->handles_mismatched[0].handle_id == "k8s-pod-network.live");
  REQUIRE(report->in_use_not_allocated.size() == 1);
  CHECK(Ip(report->in_use_not_allocated[0].ip) == "10.65.0.60");
}

TEST_CASE(
    "ipam release --from-report frees the leaks but never an address re-allocated or used since",
    "[unit][calicoctl_ipam]") {
  Cluster c;
  Assigned live = c.Assign("live", "node1");
  c.Endpoint("live", "node1", live.ip);
  Assigned leak = c.Assign("gone", "node1");
  Assigned same_handle = c.Assign("again", "node1");
  Assigned other_handle = c.Assign("moved", "node1");
  Assigned late = c.Assign("late", "node1");
  const std::string report_path = c.Path("report.json");
  Result check = c({"ipam", "check", "-o", report_path});
  REQUIRE(check.code == 0);
  REQUIRE(Contains(check.out, "Found 4 IPs that are allocated in IPAM but not actually in use.\n"));

  // After the report: one address freed and re-allocated to the same handle (a new sequence
  // number), one freed and re-allocated to another handle, and one pod's endpoint finally
  // written (its CNI ADD was in flight when the report was taken).
  REQUIRE(
      c.allocator()
          .ReleaseIPs(
              {{.ip = same_handle.ip, .handle_id = std::nullopt, .sequence_number = std::nullopt}})
          .ok());
  REQUIRE(c.allocator()
              .AssignIP(same_handle.ip, "k8s-pod-network.again", {{"pod", "again"}}, "node1")
              .ok());
  REQUIRE(
      c.allocator()
          .ReleaseIPs(
              {{.ip = other_handle.ip, .handle_id = std::nullopt, .sequence_number = std::nullopt}})
          .ok());
  REQUIRE(c.allocator()
              .AssignIP(other_handle.ip, "k8s-pod-network.newcomer", {{"pod", "newcomer"}}, "node1")
              .ok());
  c.Endpoint("late", "node1", late.ip);

  Result r = c({"ipam", "release", "--from-report=" + report_path});
  INFO(r.out);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(Contains(r.out, "Released " + Ip(leak.ip) + " (handle k8s-pod-network.gone, sequence " +
                            std::to_string(leak.sequence_number) + ")\n"));
  CHECK(Contains(r.out, "Skipped " + Ip(same_handle.ip) + ": re-allocated since the report"));
  CHECK(Contains(r.out, "Skipped " + Ip(other_handle.ip) + ": re-allocated since the report"));
  CHECK(Contains(r.out, "Skipped " + Ip(late.ip) +
                            ": now in use by WorkloadEndpoint default/node1-k8s-late-eth0\n"));
  CHECK(Contains(r.out,
                 "Released 1 of 4 leaked IP addresses from " + report_path + "; skipped 3.\n"));

  CHECK(c.HolderOf(leak.ip).empty());
  CHECK(c.HolderOf(live.ip) == "k8s-pod-network.live");
  CHECK(c.HolderOf(same_handle.ip) == "k8s-pod-network.again");
  CHECK(c.HolderOf(other_handle.ip) == "k8s-pod-network.newcomer");
  CHECK(c.HolderOf(late.ip) == "k8s-pod-network.late");

  // Running it again changes nothing: the leak is already free.
  Result again = c({"ipam", "release", "--from-report=" + report_path});
  REQUIRE(again.code == 0);
  CHECK(Contains(again.out, "Skipped " + Ip(leak.ip) + ": already free\n"));
  CHECK(Contains(again.out, "Released 0 of 4"));
}

TEST_CASE("ipam release --ip", "[unit][calicoctl_ipam]") {
  Cluster c;
  Assigned live = c.Assign("live", "node1");
  c.Endpoint("live", "node1", live.ip);
  Assigned leak = c.Assign("gone", "node1");

  Result refused = c({"ipam", "release", "--ip=" + Ip(live.ip)});
  CHECK(refused.code == 1);
  CHECK(refused.err == "Failed to release: IP address " + Ip(live.ip) +
                           " is in use by WorkloadEndpoint default/node1-k8s-live-eth0; add "
                           "--force to release it anyway\n");
  CHECK(c.HolderOf(live.ip) == "k8s-pod-network.live");

  Result ok = c({"ipam", "release", "--ip=" + Ip(leak.ip)});
  INFO(ok.err);
  REQUIRE(ok.code == 0);
  CHECK(ok.out == "Successfully released IP address " + Ip(leak.ip) + "\n");
  CHECK(c.HolderOf(leak.ip).empty());

  Result twice = c({"ipam", "release", "--ip=" + Ip(leak.ip)});
  CHECK(twice.code == 1);
  CHECK(twice.err == "Failed to release: IP address " + Ip(leak.ip) + " is not assigned\n");

  Result forced = c({"ipam", "release", "--ip=" + Ip(live.ip), "--force"});
  REQUIRE(forced.code == 0);
  CHECK(c.HolderOf(live.ip).empty());
}

TEST_CASE("ipam errors are one line with a non-zero exit", "[unit][calicoctl_ipam]") {
  Cluster c;
  const std::string bad_report = c.Path("bad.json");
  std::ofstream(bad_report)
      << R"({"allocatedNotInUse": [{"ip": "nope", "block": "10.65.0.0/26", "sequenceNumber": 1}]})";
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  for (const Case& k : std::vector<Case>{
           {{"ipam", "frobnicate"},
            "Invalid arguments: unknown command \"ipam frobnicate\" (see calicoctl ipam --help)\n"},
           {{"ipam", "show", "--from-report=x"},
            "Invalid arguments: option --from-report does not apply to \"ipam show\"\n"},
           {{"ipam", "show", "--ip=1.2.3"}, "Invalid arguments: --ip=1.2.3 is not an IP address\n"},
           {{"ipam", "show", "--show-blocks", "--show-borrowed"},
            "Invalid arguments: give at most one of --ip, --show-blocks, --show-borrowed, "
            "--show-configuration\n"},
           {{"ipam", "show", "extra"},
            "Invalid arguments: unexpected argument \"extra\" for \"ipam show\"\n"},
           {{"ipam", "release"},
            "Invalid arguments: give either --ip=<IP> or --from-report=<FILE>\n"},
           {{"ipam", "release", "--ip=10.65.0.1", "--from-report=r.json"},
            "Invalid arguments: give either --ip=<IP> or --from-report=<FILE>\n"},
           {{"ipam", "release", "--from-report=" + c.Path("missing.json")},
            "Failed to release: cannot read " + c.Path("missing.json") +
                ": No such file or directory\n"},
           {{"ipam", "release", "--from-report=" + bad_report},
            "Failed to release: " + bad_report +
                ": IPAM check report: allocatedNotInUse[0].ip: \"nope\" is not an IP address\n"},
           {{"ipam", "check", "--bogus"},
            "Invalid arguments: unknown option --bogus for \"ipam\" (see calicoctl --help)\n"},
           {{"ipam", "check", "-o", c.Path("no/such/dir/report.json")}, ""},
       }) {
    Result r = c(k.args);
    INFO(r.err);
    CHECK(r.code == 1);
    CHECK(Lines(r.err) == 1);
    if (!k.err.empty()) CHECK(r.err == k.err);
  }

  // A datastore that cannot be opened: one line, nothing on stdout.
  std::istringstream in;
  std::ostringstream out, err;
  calico::calicoctl::Environment down{
      .open = [](const Config&) -> absl::StatusOr<std::unique_ptr<calico::datastore::Datastore>> {
        return absl::UnavailableError("etcd at https://127.0.0.1:1 is unreachable");
      },
      .config_from_env = []() -> absl::StatusOr<Config> { return Config{}; },
  };
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"ipam", "show"},
                                             {"ipam", "check"},
                                             {"ipam", "release", "--ip=10.65.0.1"},
                                             {"ipam", "configure", "--strictaffinity=true"}}) {
    out.str("");
    err.str("");
    int code = calico::calicoctl::Run(args, {in, out, err}, down);
    INFO(err.str());
    CHECK(code == 1);
    CHECK(Lines(err.str()) == 1);
    CHECK(Contains(err.str(), "opening the datastore: etcd at https://127.0.0.1:1 is unreachable"));
  }

  Result help = c({"ipam", "release", "--help"});
  CHECK(help.code == 0);
  CHECK(
      Contains(help.out, "calicoctl ipam release (--ip=<IP> [--force] | --from-report=<REPORT>)"));
  Result overview = c({"ipam", "--help"});
  CHECK(overview.code == 0);
  CHECK(Contains(overview.out, "calicoctl ipam <command> [<args>...]"));
}
