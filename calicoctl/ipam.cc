#include "calicoctl/ipam.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "calicoctl/table.h"
#include "common/base/status_macros.h"
#include "common/net/ip.h"
#include "common/resources/resource.h"
#include "ipamd/allocator/block.h"
#include "ipamd/allocator/check.h"
#include "ipamd/allocator/check_load.h"
#include "ipamd/allocator/resource_environment.h"

namespace calico::calicoctl {
namespace {

using resources::Json;
using resources::Resource;

constexpr const char* kIpamUsage = R"(Usage:
  calicoctl ipam <command> [<args>...]

    release      Release a Calico assigned IP address.
    show         Show details of a Calico assigned IP address,
                 or of overall IP usage.
    check        Check the integrity of the IPAM datastructures.
    configure    Configure IPAM.

Options:
  -h --help      Show this screen.

Description:
  IP Address Management specific commands for calicoctl.

  See 'calicoctl ipam <command> --help' to read about a specific subcommand.
)";

struct Subcommand {
  const char* name;
  const char* usage;
  std::set<std::string> options;
};

const std::vector<Subcommand>& Subcommands() {
  static const auto* subs = new std::vector<Subcommand>{
      {"show",
       R"(Usage:
  calicoctl ipam show [--ip=<IP> | --show-blocks | --show-borrowed | --show-configuration] [--config=<CONFIG>]

Options:
  -h --help                Show this screen.
     --ip=<IP>             Report whether this specific IP address is in use.
     --show-blocks         Show detailed information for IP blocks as well as pools.
     --show-borrowed       Show detailed information for "borrowed" IP addresses.
     --show-configuration  Show current Calico IPAM configuration.
  -c --config=<CONFIG>     Path to a CalicoAPIConfig file.

Description:
  The ipam show command prints information about a given IP address, or about
  overall IP usage.
)",
       {"ip", "show-blocks", "show-borrowed", "show-configuration"}},
      {"check",
       R"(Usage:
  calicoctl ipam check [--config=<CONFIG>] [--show-all-ips] [--show-problem-ips] [-o <FILE>]

Options:
  -h --help                    Show this screen.
  -o --output=<FILE>           Path to output report file.
     --show-all-ips            Print all IPs that are checked.
     --show-problem-ips        Print all IPs that are leaked or not allocated properly.
  -c --config=<CONFIG>         Path to a CalicoAPIConfig file.

Description:
  The ipam check command checks the integrity of the IPAM datastructures against the
  WorkloadEndpoints and Node tunnel addresses in the datastore. The report file lists the
  leak candidates with the handle and sequence number each was allocated with, for
  `calicoctl ipam release --from-report`.
)",
       {"output", "show-all-ips", "show-problem-ips"}},
      {"release",
       R"(Usage:
  calicoctl ipam release (--ip=<IP> [--force] | --from-report=<REPORT>) [--config=<CONFIG>]

Options:
  -h --help                 Show this screen.
     --ip=<IP>              IP address to release.
     --force                Release --ip even though a WorkloadEndpoint or Node uses it.
     --from-report=<REPORT> Release the leak candidates of a report from `calicoctl ipam
                            check -o`. An address re-allocated since the report, or now in
                            use, is skipped.
  -c --config=<CONFIG>      Path to a CalicoAPIConfig file.

Description:
  The ipam release command releases IP addresses from Calico IP management.
)",
       {"ip", "force", "from-report"}},
      {"configure",
       R"(Usage:
  calicoctl ipam configure --strictaffinity=<true/false> [--max-blocks-per-host=<N>] [--config=<CONFIG>]

Options:
  -h --help                        Show this screen.
     --strictaffinity=<true/false> Set StrictAffinity to true/false. When StrictAffinity
                                   is true, borrowing IP addresses is not allowed.
     --max-blocks-per-host=<N>     Set MaxBlocksPerHost: the most blocks a node may claim
                                   (0: unlimited).
  -c --config=<CONFIG>             Path to a CalicoAPIConfig file.

Description:
  Modify configuration for Calico IP address management (the IPAMConfiguration "default").
)",
       {"strictaffinity", "max-blocks-per-host"}},
  };
  return *subs;
}

const resources::KindInfo& KindOrDie(const char* name) {
  const resources::KindInfo* kind = resources::FindKind(name);
  // Kinds are compiled in; a missing one is a build bug, not input.
  if (kind == nullptr) std::abort();
  return *kind;
}

std::string Msg(const absl::Status& s) { return ToStd(s.message()); }

}  // namespace


const std::vector<IpamOption>& IpamOptions() {
  static const auto* options = new std::vector<IpamOption>{
      {"ip", 0, true},
      {"show-blocks", 0, false},
      {"show-borrowed", 0, false},
      {"show-configuration", 0, false},
      {"output", 'o', true},
      {"show-all-ips", 0, false},
      {"show-problem-ips", 0, false},
      {"from-report", 0, true},
      {"force", 0, false},
      {"strictaffinity", 0, true},
      {"max-blocks-per-host", 0, true},
  };
  return *options;
}

namespace {

// ---- Helpers over blocks ------------------------------------------------------------------

std::string Owner(const ipamd::Block& block) {
  if (!block.affinity) return "";
  const std::string& a = *block.affinity;
  return a.rfind("host:", 0) == 0 ? a.substr(5) : a;
}

int NumAllocated(const ipamd::Block& block) {
  return static_cast<int>(std::count_if(block.allocations.begin(), block.allocations.end(),
                                        [](const std::optional<int>& a) { return a.has_value(); }));
}

const ipamd::AllocationAttributes* AttributesAt(const ipamd::Block& block, int ordinal) {
  if (ordinal < 0 || ordinal >= block.NumAddresses()) return nullptr;
  const std::optional<int>& slot = block.allocations[ordinal];
  if (!slot || *slot < 0 || *slot >= static_cast<int>(block.attributes.size())) return nullptr;
  return &block.attributes[*slot];
}

// A secondary attribute ("node", "pod", ...) of an allocation, if recorded.
std::optional<std::string> Secondary(const ipamd::AllocationAttributes* attrs, const char* key) {
  if (attrs == nullptr) return std::nullopt;
  auto it = attrs->secondary.find(key);
  if (it == attrs->secondary.end()) return std::nullopt;
  return it->second;
}

net::IpAddress AddressAt(const ipamd::Block& block, int ordinal) {
  return net::Add(block.cidr.addr, static_cast<net::Uint128>(ordinal));
}

// Upstream's number formats: "%.5g" totals and "n (p%)" shares.
std::string Count(double n) { return absl::StrFormat("%.5g", n); }
std::string Share(double n, double total) {
  return absl::StrFormat("%.5g (%.f%%)", n, total > 0 ? 100 * n / total : 0.0);
}

absl::StatusOr<std::vector<ipamd::Handle>> LoadHandles(datastore::Datastore& store) {
  absl::StatusOr<datastore::ListResult> listed = store.List(ipamd::HandlePrefix());
  if (!listed.ok()) return Annotate(listed.status(), "listing IPAM handles");
  std::vector<ipamd::Handle> handles;
  for (const datastore::Entry& e : listed->entries) {
    absl::StatusOr<ipamd::Handle> h = ipamd::DecodeHandle(e.value);
    if (!h.ok()) return Annotate(h.status(), "decoding " + e.key);
    handles.push_back(*std::move(h));
  }
  return handles;
}

class IpamSession {
 public:
  IpamSession(const IpamArgs& args, Io io, const IpamConnect& connect)
      : args_(args), io_(io), connect_(connect) {}

  int Dispatch();

 private:
  int Fail(const std::string& line) {
    io_.err << line << "\n";
    return 1;
  }
  bool Has(const std::string& name) const {
    return args_.flags.count(name) || args_.values.count(name);
  }
  std::string Value(const std::string& name) const {
    auto it = args_.values.find(name);
    return it == args_.values.end() ? "" : it->second;
  }
  // Connects and builds the allocator over the datastore.
  absl::Status Connect();

  int Show();
  int ShowIp();
  int ShowUtilization();
  int ShowBorrowed();
  int ShowConfiguration();
  int Check();
  int Release();
  int ReleaseIp();
  int ReleaseFromReport();
  int Configure();

  const IpamArgs& args_;
  Io io_;
  const IpamConnect& connect_;
  IpamConnection conn_;
  std::unique_ptr<ipamd::Allocator> allocator_;
};

absl::Status IpamSession::Connect() {
  if (allocator_ != nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(conn_, connect_());
  allocator_ = std::make_unique<ipamd::Allocator>(
      *conn_.store, ipamd::DatastoreEnvironment(*conn_.store, absl::ZeroDuration()));
  return absl::OkStatus();
}

// ---- show -----------------------------------------------------------------------------------

int IpamSession::Show() {
  int modes = 0;
  for (const char* o : {"ip", "show-blocks", "show-borrowed", "show-configuration"})
    modes += Has(o) ? 1 : 0;
  if (modes > 1) {
    return Fail(
        "Invalid arguments: give at most one of --ip, --show-blocks, --show-borrowed, "
        "--show-configuration");
  }
  if (Has("ip")) return ShowIp();
  if (Has("show-borrowed")) return ShowBorrowed();
  if (Has("show-configuration")) return ShowConfiguration();
  return ShowUtilization();
}

int IpamSession::ShowIp() {
  std::optional<net::IpAddress> ip = net::ParseIp(Value("ip"));
  if (!ip) return Fail("Invalid arguments: --ip=" + Value("ip") + " is not an IP address");
  if (absl::Status s = Connect(); !s.ok()) return Fail("Failed to show IPAM: " + Msg(s));
  absl::StatusOr<std::vector<ipamd::Block>> blocks = allocator_->ListBlocks();
  if (!blocks.ok()) return Fail("Failed to show IPAM: " + Msg(blocks.status()));
  const std::string text = net::FormatIp(*ip);
  for (const ipamd::Block& block : *blocks) {
    if (block.cidr.addr.family != ip->family || !net::Contains(block.cidr, *ip)) continue;
    const int ordinal = static_cast<int>(net::ToInteger(*ip) - net::ToInteger(block.cidr.addr));
    if (ordinal >= block.NumAddresses() || !block.allocations[ordinal]) break;
    io_.out << "IP " << text << " is in use\n";
    const ipamd::AllocationAttributes* attrs = AttributesAt(block, ordinal);
    io_.out << "Handle ID: "
            << (attrs != nullptr && !attrs->handle_id.empty() ? attrs->handle_id : "<none>")
            << "\n";
    if (attrs == nullptr || attrs->secondary.empty()) {
      io_.out << "No attributes defined\n";
    } else {
      io_.out << "Attributes:\n";
      for (const auto& [k, v] : attrs->secondary) io_.out << "  " << k << ": " << v << "\n";
    }
    return 0;
  }
  io_.out << "IP " << text << " is not assigned\n";
  return 0;
}

int IpamSession::ShowUtilization() {
  if (absl::Status s = Connect(); !s.ok()) return Fail("Failed to show IPAM: " + Msg(s));
  absl::StatusOr<std::vector<ipamd::Pool>> pools = ipamd::LoadPools(*conn_.client);
  if (!pools.ok()) return Fail("Failed to show IPAM: " + Msg(pools.status()));
  absl::StatusOr<std::vector<ipamd::Block>> blocks = allocator_->ListBlocks();
  if (!blocks.ok()) return Fail("Failed to show IPAM: " + Msg(blocks.status()));
  std::sort(blocks->begin(), blocks->end(),
            [](const auto& a, const auto& b) { return a.cidr < b.cidr; });

  const bool show_blocks = Has("show-blocks");
  auto block_row = [](const ipamd::Block& b) -> std::vector<std::string> {
    const double total = static_cast<double>(net::Size(b.cidr));
    const double used = NumAllocated(b);
    return {"Block", net::FormatCidr(b.cidr), Count(total), Share(used, total),
            Share(total - used, total)};
  };
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> placed(blocks->size(), false);
  for (const ipamd::Pool& pool : *pools) {
    std::vector<std::vector<std::string>> block_rows;
    double used = 0;
    for (size_t i = 0; i < blocks->size(); ++i) {
      const ipamd::Block& b = (*blocks)[i];
      if (placed[i] || b.cidr.addr.family != pool.cidr.addr.family ||
          !net::Contains(pool.cidr, b.cidr))
        continue;
      placed[i] = true;
      used += NumAllocated(b);
      block_rows.push_back(block_row(b));
    }
    const double total = static_cast<double>(net::Size(pool.cidr));
    rows.push_back({"IP Pool", net::FormatCidr(pool.cidr), Count(total), Share(used, total),
                    Share(total - used, total)});
    if (show_blocks) rows.insert(rows.end(), block_rows.begin(), block_rows.end());
  }
  // Blocks of a deleted pool still hold addresses: show them rather than hide them.
  if (show_blocks) {
    for (size_t i = 0; i < blocks->size(); ++i) {
      if (!placed[i]) rows.push_back(block_row((*blocks)[i]));
    }
  }
  PrintBorderedTable(io_.out, {"GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"}, rows,
                     {false, false, true, true, true});
  return 0;
}

int IpamSession::ShowBorrowed() {
  if (absl::Status s = Connect(); !s.ok()) return Fail("Failed to show IPAM: " + Msg(s));
  absl::StatusOr<std::vector<ipamd::Block>> blocks = allocator_->ListBlocks();
  if (!blocks.ok()) return Fail("Failed to show IPAM: " + Msg(blocks.status()));
  std::sort(blocks->begin(), blocks->end(),
            [](const auto& a, const auto& b) { return a.cidr < b.cidr; });
  std::vector<std::vector<std::string>> rows;
  int unclassified = 0;
  for (const ipamd::Block& block : *blocks) {
    const std::string owner = Owner(block);
    for (int ordinal = 0; ordinal < block.NumAddresses(); ++ordinal) {
      if (!block.allocations[ordinal]) continue;
      const ipamd::AllocationAttributes* attrs = AttributesAt(block, ordinal);
      const std::optional<std::string> node = Secondary(attrs, "node");
      if (!node) {
        ++unclassified;
        continue;
      }
      // Borrowed: used by a node other than the block's (or from a block with no owner).
      if (*node == owner) continue;
      std::string type, allocated_to;
      if (std::optional<std::string> pod = Secondary(attrs, "pod")) {
        type = "pod";
        std::optional<std::string> ns = Secondary(attrs, "namespace");
        allocated_to = (ns ? *ns + "/" : "") + *pod;
      } else {
        type = Secondary(attrs, "type").value_or("");
      }
      rows.push_back({net::FormatIp(AddressAt(block, ordinal)), *node, net::FormatCidr(block.cidr),
                      owner, type, allocated_to});
    }
  }
  PrintBorderedTable(
      io_.out, {"IP", "BORROWING-NODE", "BLOCK", "BLOCK OWNER", "TYPE", "ALLOCATED-TO"}, rows);
  if (unclassified > 0) {
    io_.out << "\nNote: found " << unclassified
            << " IP allocations without an explicit node association. Unable to determine if they "
               "are borrowed.\n";
  }
  return 0;
}

int IpamSession::ShowConfiguration() {
  if (absl::Status s = Connect(); !s.ok()) return Fail("Failed to show IPAM: " + Msg(s));
  absl::StatusOr<ipamd::IpamConfig> config = ipamd::LoadConfig(*conn_.client);
  if (!config.ok()) return Fail("Failed to show IPAM: " + Msg(config.status()));
  PrintBorderedTable(io_.out, {"PROPERTY", "VALUE"},
                     {{"StrictAffinity", config->strict_affinity ? "true" : "false"},
                      {"AutoAllocateBlocks", config->auto_allocate_blocks ? "true" : "false"},
                      {"MaxBlocksPerHost", absl::StrCat(config->max_blocks_per_host)}});
  return 0;
}

// ---- check ----------------------------------------------------------------------------------

std::string Attrs(const std::map<std::string, std::string>& attrs) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : attrs) parts.push_back(k + "=" + v);
  return "{" + absl::StrJoin(parts, ", ") + "}";
}

int IpamSession::Check() {
  const bool show_all = Has("show-all-ips");
  const bool show_problems = show_all || Has("show-problem-ips");
  // Load everything first: a check that fails half-way prints nothing misleading.
  if (absl::Status s = Connect(); !s.ok()) return Fail("Failed to check IPAM: " + Msg(s));
  absl::StatusOr<std::vector<ipamd::Block>> blocks = allocator_->ListBlocks();
  if (!blocks.ok()) return Fail("Failed to check IPAM: " + Msg(blocks.status()));
  absl::StatusOr<std::vector<ipamd::Pool>> pools = ipamd::LoadPools(*conn_.client);
  if (!pools.ok()) return Fail("Failed to check IPAM: " + Msg(pools.status()));
  absl::StatusOr<ipamd::InUse> in_use = ipamd::LoadInUse(*conn_.client);
  if (!in_use.ok()) return Fail("Failed to check IPAM: " + Msg(in_use.status()));
  absl::StatusOr<std::vector<ipamd::Handle>> handles = LoadHandles(*conn_.store);
  if (!handles.ok()) return Fail("Failed to check IPAM: " + Msg(handles.status()));
  std::sort(blocks->begin(), blocks->end(),
            [](const auto& a, const auto& b) { return a.cidr < b.cidr; });
  const ipamd::CheckReport report = ipamd::Check(*blocks, *handles, *in_use);

  std::ostream& out = io_.out;
  out << "Checking IPAM for inconsistencies...\n\n";
  out << "Loading all IPAM blocks...\n";
  out << "Found " << blocks->size() << " IPAM blocks.\n";
  int num_allocs = 0;
  std::map<std::string, int> by_node;
  for (const ipamd::Block& b : *blocks) {
    out << " IPAM block " << net::FormatCidr(b.cidr)
        << " affinity=" << (b.affinity ? *b.affinity : "<none>") << ":\n";
    for (int ordinal = 0; ordinal < b.NumAddresses(); ++ordinal) {
      if (!b.allocations[ordinal]) continue;
      ++num_allocs;
      const ipamd::AllocationAttributes* attrs = AttributesAt(b, ordinal);
      if (std::optional<std::string> node = Secondary(attrs, "node")) ++by_node[*node];
      if (show_all) {
        const net::IpAddress ip = AddressAt(b, ordinal);
        auto user = in_use->ips.find(ip);
        out << "  " << net::FormatIp(ip)
            << " handle=" << (attrs != nullptr ? attrs->handle_id : "<none>")
            << (user != in_use->ips.end() ? " in use by " + user->second : " not in use") << "\n";
      }
    }
  }
  out << "IPAM blocks record " << num_allocs << " allocations.\n\n";

  out << "Loading all IPAM pools...\n";
  std::vector<net::Prefix> active;
  for (const ipamd::Pool& p : *pools) {
    if (p.disabled) continue;
    out << "  " << net::FormatCidr(p.cidr) << "\n";
    active.push_back(p.cidr);
  }
  out << "Found " << active.size() << " active IP pools.\n\n";

  int node_ips = 0, wep_ips = 0;
  for (const auto& [ip, user] : in_use->ips) {
    // An address may have several users ("Node n1 (...), WorkloadEndpoint ..."): count each.
    for (size_t pos = 0; (pos = user.find("Node ", pos)) != std::string::npos; pos += 5) ++node_ips;
    for (size_t pos = 0; (pos = user.find("WorkloadEndpoint ", pos)) != std::string::npos;
         pos += 17)
      ++wep_ips;
  }
  out << "Loading all nodes.\n";
  out << "Found " << node_ips << " node tunnel IPs.\n\n";
  out << "Loading all workload endpoints.\n";
  out << "Found " << wep_ips << " workload IPs.\n";
  out << "Workloads and nodes are using " << in_use->ips.size() << " IPs.\n\n";

  out << "Loading all handles\n";
  out << "Found " << handles->size() << " handles.\n\n";

  if (!by_node.empty()) {
    constexpr size_t kNodesToPrint = 20;
    out << "Looking for top (up to " << kNodesToPrint << ") nodes by allocations...\n";
    std::vector<std::pair<std::string, int>> nodes(by_node.begin(), by_node.end());
    std::stable_sort(nodes.begin(), nodes.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    for (size_t i = 0; i < nodes.size() && i < kNodesToPrint; ++i) {
      out << "  " << nodes[i].first << " has " << nodes[i].second << " allocations\n";
    }
    out << "Node with most allocations has " << nodes.front().second << "; median is "
        << nodes[nodes.size() / 2].second << "\n\n";
  }

  out << "Scanning for IPs that are allocated but not actually in use...\n";
  for (const auto& a : report.allocated_not_in_use) {
    if (show_problems) {
      out << "  " << net::FormatIp(a.ip) << " leaked; handle "
          << (a.handle_id.empty() ? "<none>" : a.handle_id) << ", sequence " << a.sequence_number
          << ", attrs " << Attrs(a.attributes) << "\n";
    }
  }
  out << "Found " << report.allocated_not_in_use.size()
      << " IPs that are allocated in IPAM but not actually in use.\n";

  out << "Scanning for IPs that are in use by a workload or node but not allocated in IPAM...\n";
  int outside_pools = 0, inside_pools = 0;
  for (const auto& u : report.in_use_not_allocated) {
    const bool in_pool = std::any_of(active.begin(), active.end(), [&](const net::Prefix& p) {
      return p.addr.family == u.ip.family && net::Contains(p, u.ip);
    });
    (in_pool ? inside_pools : outside_pools)++;
    if (!show_problems) continue;
    out << "  " << net::FormatIp(u.ip) << " in use by " << u.used_by
        << (in_pool ? " and in active IPAM pool but has no IPAM allocation.\n"
                    : " is not in any active IP pool.\n");
  }
  out << "Found " << outside_pools << " in-use IPs that are not in active IP pools.\n";
  out << "Found " << inside_pools
      << " in-use IPs that are in active IP pools but have no corresponding IPAM allocation.\n\n";

  // Three kinds of handle problem, printed under upstream's headings (plus one for counts
  // that disagree, which upstream does not look for).
  std::set<std::string> recorded;
  for (const ipamd::Handle& h : *handles) recorded.insert(h.handle_id);
  std::vector<std::string> no_ips, disagree, missing;
  for (const auto& h : report.handles_mismatched) {
    if (!recorded.count(h.handle_id)) {
      missing.push_back(absl::StrCat("  ", h.handle_id, " is in use in ", h.block_count,
                                     " block allocation(s) but doesn't exist.\n"));
    } else if (h.block_count == 0) {
      no_ips.push_back(absl::StrCat("  ", h.handle_id, " doesn't have any active IPs.\n"));
    } else {
      disagree.push_back(absl::StrCat("  ", h.handle_id, " records ", h.handle_count,
                                      " IP(s) but the blocks hold ", h.block_count, ".\n"));
    }
  }
  auto print_problems = [&](const std::vector<std::string>& lines) {
    if (show_problems) {
      for (const std::string& line : lines) out << line;
    }
  };
  out << "Scanning for IPAM handles with no matching IPs...\n";
  print_problems(no_ips);
  out << "Found " << no_ips.size() << " handles with no matching IPs (and "
      << handles->size() - no_ips.size() - disagree.size() << " handles with matches).\n";
  out << "Scanning for IPAM handles whose count disagrees with the blocks...\n";
  print_problems(disagree);
  out << "Found " << disagree.size() << " handles whose count disagrees with the blocks.\n";
  out << "Scanning for IPs with missing handle...\n";
  print_problems(missing);
  out << "Found " << missing.size()
      << " handles mentioned in blocks with no matching handle resource.\n";

  out << "Scanning for invalid IPAM blocks...\n";
  for (const auto& b : report.invalid_blocks) {
    out << "  IPAM block " << net::FormatCidr(b.block) << ": " << b.problem << "\n";
  }
  out << "Found " << report.invalid_blocks.size() << " problems in IPAM blocks.\n";

  const size_t problems = report.allocated_not_in_use.size() + report.in_use_not_allocated.size() +
                          report.handles_mismatched.size() + report.invalid_blocks.size();
  out << "Check complete; found " << problems << " problems.\n";

  if (Has("output")) {
    const std::string path = Value("output");
    std::ofstream f(path);
    f << ipamd::ReportToJson(report);
    f.close();
    if (!f)
      return Fail("Failed to check IPAM: cannot write report " + path + ": " +
                  std::strerror(errno));
    out << "Report written to " << path << "\n";
  }
  return 0;
}

// ---- release --------------------------------------------------------------------------------

int IpamSession::Release() {
  if (Has("ip") == Has("from-report"))
    return Fail("Invalid arguments: give either --ip=<IP> or --from-report=<FILE>");
  if (Has("force") && !Has("ip")) return Fail("Invalid arguments: --force applies to --ip only");
  return Has("ip") ? ReleaseIp() : ReleaseFromReport();
}

int IpamSession::ReleaseIp() {
  std::optional<net::IpAddress> ip = net::ParseIp(Value("ip"));
  if (!ip) return Fail("Invalid arguments: --ip=" + Value("ip") + " is not an IP address");
  const std::string text = net::FormatIp(*ip);
  if (absl::Status s = Connect(); !s.ok()) return Fail("Failed to release: " + Msg(s));
  // Upstream frees whatever it is given; freeing a live pod's address hands it to the next
  // pod too, so an address the datastore says is used needs --force.
  if (!Has("force")) {
    absl::StatusOr<ipamd::InUse> in_use = ipamd::LoadInUse(*conn_.client);
    if (!in_use.ok()) return Fail("Failed to release: " + Msg(in_use.status()));
    auto user = in_use->ips.find(*ip);
    if (user != in_use->ips.end()) {
      return Fail("Failed to release: IP address " + text + " is in use by " + user->second +
                  "; add --force to release it anyway");
    }
  }
  absl::StatusOr<std::vector<net::IpAddress>> released =
      allocator_->ReleaseIPs({ipamd::ReleaseRequest{
          .ip = *ip, .handle_id = std::nullopt, .sequence_number = std::nullopt}});
  if (!released.ok())
    return Fail("Failed to release: IP address " + text + ": " + Msg(released.status()));
  if (released->empty()) return Fail("Failed to release: IP address " + text + " is not assigned");
  io_.out << "Successfully released IP address " << text << "\n";
  return 0;
}

int IpamSession::ReleaseFromReport() {
  const std::string path = Value("from-report");
  std::ifstream f(path);
  if (!f) return Fail("Failed to release: cannot read " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << f.rdbuf();
  absl::StatusOr<ipamd::CheckReport> report = ipamd::ReportFromJson(text.str());
  if (!report.ok()) return Fail("Failed to release: " + path + ": " + Msg(report.status()));
  if (absl::Status s = Connect(); !s.ok()) return Fail("Failed to release: " + Msg(s));
  // What is in use now, not at report time: a CNI ADD that had allocated but not yet written
  // its WorkloadEndpoint when the report was taken may have finished since. One load for the
  // whole run; the sequence numbers below cover re-allocation after it.
  absl::StatusOr<ipamd::InUse> in_use = ipamd::LoadInUse(*conn_.client);
  if (!in_use.ok()) return Fail("Failed to release: " + Msg(in_use.status()));

  int released = 0, skipped = 0, failed = 0;
  for (const auto& leak : report->allocated_not_in_use) {
    const std::string ip = net::FormatIp(leak.ip);
    auto skip = [&](const std::string& why) {
      ++skipped;
      io_.out << "Skipped " << ip << ": " << why << "\n";
    };
    if (leak.handle_id.empty()) {
      skip("the report names no handle for it; check it and use --ip");
      continue;
    }
    auto user = in_use->ips.find(leak.ip);
    if (user != in_use->ips.end()) {
      skip("now in use by " + user->second);
      continue;
    }
    ipamd::ReleaseRequest request{
        .ip = leak.ip, .handle_id = leak.handle_id, .sequence_number = leak.sequence_number};
    absl::StatusOr<std::vector<net::IpAddress>> freed = allocator_->ReleaseIPs({request});
    if (absl::IsFailedPrecondition(freed.status())) {
      skip("re-allocated since the report (it was handle " + leak.handle_id + ", sequence " +
           absl::StrCat(leak.sequence_number) + "): " + Msg(freed.status()));
      continue;
    }
    if (!freed.ok()) {
      ++failed;
      io_.err << "Failed to release " << ip << ": " << Msg(freed.status()) << "\n";
      continue;
    }
    if (freed->empty()) {
      skip("already free");
      continue;
    }
    ++released;
    io_.out << "Released " << ip << " (handle " << leak.handle_id << ", sequence "
            << leak.sequence_number << ")\n";
  }
  io_.out << "Released " << released << " of " << report->allocated_not_in_use.size()
          << " leaked IP addresses from " << path << "; skipped " << skipped << ".\n";
  return failed == 0 ? 0 : 1;
}

// ---- configure ------------------------------------------------------------------------------

int IpamSession::Configure() {
  if (!Has("strictaffinity"))
    return Fail("Invalid arguments: --strictaffinity=<true/false> is required");
  const std::string strict_text = absl::AsciiStrToLower(Value("strictaffinity"));
  if (strict_text != "true" && strict_text != "false") {
    return Fail("Invalid arguments: --strictaffinity=" + Value("strictaffinity") +
                " is not true or false");
  }
  const bool strict = strict_text == "true";
  std::optional<int> max_blocks;
  if (Has("max-blocks-per-host")) {
    int n = 0;
    if (!absl::SimpleAtoi(Value("max-blocks-per-host"), &n) || n < 0) {
      return Fail("Invalid arguments: --max-blocks-per-host=" + Value("max-blocks-per-host") +
                  " is not a non-negative integer");
    }
    max_blocks = n;
  }
  absl::StatusOr<IpamConnection> conn = connect_();
  if (!conn.ok()) return Fail("Failed to configure IPAM: " + Msg(conn.status()));
  resources::Client& client = *conn->client;
  const resources::KindInfo& kind = KindOrDie("IPAMConfiguration");
  // Read-modify-write keeping the fields not named here; a concurrent writer makes the
  // compare-and-swap fail (Aborted), and we re-read and try again.
  constexpr int kAttempts = 5;
  absl::Status last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    absl::StatusOr<Resource> current = client.Get(kind, "", "default");
    Json object;
    if (current.ok()) {
      object = current->object;
    } else if (absl::IsNotFound(current.status())) {
      object = {{"apiVersion", "projectcalico.org/v3"},
                {"kind", "IPAMConfiguration"},
                {"metadata", {{"name", "default"}}},
                {"spec", Json::object()}};
    } else {
      return Fail("Failed to configure IPAM: " + Msg(current.status()));
    }
    if (!object["spec"].is_object()) object["spec"] = Json::object();
    object["spec"]["strictAffinity"] = strict;
    if (max_blocks) object["spec"]["maxBlocksPerHost"] = *max_blocks;
    absl::StatusOr<Resource> updated = resources::FromObject(object, "");
    if (!updated.ok()) return Fail("Failed to configure IPAM: " + Msg(updated.status()));
    absl::StatusOr<Resource> stored =
        current.ok() ? client.Replace(*updated) : client.Create(*updated);
    if (stored.ok()) {
      io_.out << "Successfully set StrictAffinity to: " << (strict ? "true" : "false") << "\n";
      if (max_blocks) io_.out << "Successfully set MaxBlocksPerHost to: " << *max_blocks << "\n";
      return 0;
    }
    last = stored.status();
    if (!absl::IsAborted(last) && !absl::IsAlreadyExists(last)) break;
  }
  return Fail("Failed to configure IPAM: " + Msg(last));
}

int IpamSession::Dispatch() {
  if (args_.positional.empty()) {
    if (args_.flags.count("help")) {
      io_.out << kIpamUsage;
      return 0;
    }
    io_.err << kIpamUsage;
    return 1;
  }
  const std::string& name = args_.positional[0];
  const Subcommand* sub = nullptr;
  for (const Subcommand& s : Subcommands()) {
    if (name == s.name) sub = &s;
  }
  if (sub == nullptr)
    return Fail("Invalid arguments: unknown command \"ipam " + name +
                "\" (see calicoctl ipam --help)");
  if (args_.flags.count("help")) {
    io_.out << sub->usage;
    return 0;
  }
  if (args_.positional.size() > 1) {
    return Fail("Invalid arguments: unexpected argument \"" + args_.positional[1] +
                "\" for \"ipam " + name + "\"");
  }
  auto check_option = [&](const std::string& option) { return sub->options.count(option) > 0; };
  for (const auto& [option, value] : args_.values) {
    if (option != "config" && !check_option(option)) {
      return Fail("Invalid arguments: option --" + option + " does not apply to \"ipam " + name +
                  "\"");
    }
  }
  for (const std::string& option : args_.flags) {
    if (option != "allow-version-mismatch" && !check_option(option)) {
      return Fail("Invalid arguments: option --" + option + " does not apply to \"ipam " + name +
                  "\"");
    }
  }
  if (name == "show") return Show();
  if (name == "check") return Check();
  if (name == "release") return Release();
  return Configure();
}

}  // namespace

int RunIpam(const IpamArgs& args, Io io, const IpamConnect& connect) {
  IpamSession session(args, io, connect);
  return session.Dispatch();
}

}  // namespace calico::calicoctl
