#include "ipamd/allocator/check.h"

#include <algorithm>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace calico::ipamd {
namespace {

using Json = nlohmann::ordered_json;

// The address of `ordinal` in `cidr`. Computed here rather than with Block::AddressOf so the
// check stays meaningful for a block whose own fields are inconsistent.
net::IpAddress AddressAt(const net::Prefix& cidr, int ordinal) {
  return net::Add(cidr.addr, static_cast<net::Uint128>(ordinal));
}

// Number of addresses a block of this CIDR must have, or nullopt for a CIDR no block can be
// (a block larger than 2^20 addresses would be a corrupt record, not a real block).
std::optional<int> ExpectedSize(const net::Prefix& cidr) {
  const int host_bits = cidr.addr.Bits() - cidr.len;
  if (host_bits < 0 || host_bits > 20) return std::nullopt;
  return 1 << host_bits;
}

std::string HostNode(const std::optional<std::string>& affinity) {
  constexpr std::string_view kHost = "host:";
  if (!affinity || affinity->compare(0, kHost.size(), kHost) != 0) return "";
  return affinity->substr(kHost.size());
}

struct BlockScan {
  // Allocated addresses: address → (block index, ordinal).
  std::map<net::IpAddress, std::pair<size_t, int>> allocated;
  // handle → block CIDR text → addresses, as the blocks record it.
  std::map<std::string, std::map<std::string, int>> handle_blocks;
};

void CheckBlockShape(const Block& block, const InUse& in_use, CheckReport& report) {
  auto problem = [&](std::string text) {
    report.invalid_blocks.push_back({block.cidr, std::move(text)});
  };
  const std::string node = HostNode(block.affinity);
  if (block.affinity && !block.affinity->empty()) {
    if (node.empty()) {
      problem(absl::StrCat("affinity \"", *block.affinity, "\" is not of the form host:<node>"));
    } else if (!in_use.nodes.count(node)) {
      problem(absl::StrCat("affine to ", node, ", which does not exist"));
    }
  }
  const std::optional<int> expected = ExpectedSize(block.cidr);
  if (!expected) {
    problem(absl::StrCat("CIDR /", block.cidr.len, " is not a plausible block size"));
  } else if (block.NumAddresses() != *expected) {
    problem(absl::StrCat("allocations has ", block.NumAddresses(), " entries but a /",
                         block.cidr.len, " block has ", *expected, " addresses"));
  }
  // Free-list entries: each a valid ordinal, listed once.
  std::set<int> free;
  for (int ordinal : block.unallocated) {
    if (ordinal < 0 || ordinal >= block.NumAddresses()) {
      problem(absl::StrCat("unallocated lists ordinal ", ordinal, ", outside 0-",
                           block.NumAddresses() - 1));
    } else if (!free.insert(ordinal).second) {
      problem(absl::StrCat("unallocated lists ordinal ", ordinal, " more than once"));
    }
  }
  for (int ordinal = 0; ordinal < block.NumAddresses(); ++ordinal) {
    const std::optional<int>& slot = block.allocations[ordinal];
    const bool is_free = free.count(ordinal) > 0;
    const std::string where =
        absl::StrCat("ordinal ", ordinal, " (", net::FormatIp(AddressAt(block.cidr, ordinal)), ")");
    if (slot && is_free) problem(absl::StrCat(where, " is both free and allocated"));
    if (!slot && !is_free) problem(absl::StrCat(where, " is neither free nor allocated"));
    if (slot && (*slot < 0 || *slot >= static_cast<int>(block.attributes.size()))) {
      problem(absl::StrCat(where, " refers to attributes[", *slot, "], but the block has ",
                           block.attributes.size()));
    }
  }
}

}  // namespace

CheckReport Check(const std::vector<Block>& blocks_in, const std::vector<Handle>& handles,
                  const InUse& in_use) {
  CheckReport report;
  // Sorted by CIDR so the report's order depends only on the state, not on listing order.
  std::vector<const Block*> blocks;
  for (const Block& b : blocks_in) blocks.push_back(&b);
  std::sort(blocks.begin(), blocks.end(),
            [](const Block* a, const Block* b) { return a->cidr < b->cidr; });

  BlockScan scan;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const Block& block = *blocks[i];
    CheckBlockShape(block, in_use, report);
    // Overlapping blocks would let one address be handed out twice.
    if (i > 0 && blocks[i - 1]->cidr.addr.family == block.cidr.addr.family &&
        net::Overlaps(blocks[i - 1]->cidr, block.cidr)) {
      report.invalid_blocks.push_back(
          {block.cidr, absl::StrCat("overlaps block ", net::FormatCidr(blocks[i - 1]->cidr))});
    }
    const std::string cidr_text = net::FormatCidr(block.cidr);
    const int limit = std::min(block.NumAddresses(), ExpectedSize(block.cidr).value_or(0));
    for (int ordinal = 0; ordinal < limit; ++ordinal) {
      const std::optional<int>& slot = block.allocations[ordinal];
      if (!slot) continue;
      const net::IpAddress ip = AddressAt(block.cidr, ordinal);
      scan.allocated.emplace(ip, std::make_pair(i, ordinal));
      const bool attrs_ok = *slot >= 0 && *slot < static_cast<int>(block.attributes.size());
      const AllocationAttributes* attrs = attrs_ok ? &block.attributes[*slot] : nullptr;
      if (attrs != nullptr && !attrs->handle_id.empty())
        ++scan.handle_blocks[attrs->handle_id][cidr_text];
      // The one rule that must never be wrong: an address some WorkloadEndpoint or Node uses is
      // not a leak, whatever its handle or attributes say.
      if (in_use.ips.count(ip)) continue;
      CheckReport::Allocation leak;
      leak.ip = ip;
      leak.block = block.cidr;
      if (attrs != nullptr) {
        leak.handle_id = attrs->handle_id;
        leak.attributes = attrs->secondary;
      }
      auto seq = block.sequence_number_for_allocation.find(ordinal);
      leak.sequence_number = seq == block.sequence_number_for_allocation.end() ? 0 : seq->second;
      report.allocated_not_in_use.push_back(std::move(leak));
    }
  }

  for (const auto& [ip, used_by] : in_use.ips) {
    if (!scan.allocated.count(ip)) report.in_use_not_allocated.push_back({ip, used_by});
  }

  // Handles: the handle record's per-block counts must equal what the blocks say, block by
  // block (equal totals over different blocks are still a mismatch). A handle holding nothing
  // is reported too: it is garbage, and a refcount of zero should have deleted it.
  std::set<std::string> seen;
  for (const Handle& handle : handles) {
    seen.insert(handle.handle_id);
    std::map<std::string, int> recorded;
    int handle_count = 0;
    for (const auto& [cidr, n] : handle.blocks) {
      if (n != 0) recorded[cidr] = n;
      handle_count += n;
    }
    auto it = scan.handle_blocks.find(handle.handle_id);
    const std::map<std::string, int> empty;
    const std::map<std::string, int>& actual = it == scan.handle_blocks.end() ? empty : it->second;
    int block_count = 0;
    for (const auto& [cidr, n] : actual) block_count += n;
    if (recorded != actual || block_count == 0) {
      report.handles_mismatched.push_back({handle.handle_id, handle_count, block_count});
    }
  }
  // Handles the blocks name but no handle record holds (a crash between the block write and
  // the handle write of an older version; the allocator now writes both in one Commit).
  for (const auto& [handle_id, per_block] : scan.handle_blocks) {
    if (seen.count(handle_id)) continue;
    int block_count = 0;
    for (const auto& [cidr, n] : per_block) block_count += n;
    report.handles_mismatched.push_back({handle_id, 0, block_count});
  }
  std::sort(report.handles_mismatched.begin(), report.handles_mismatched.end(),
            [](const auto& a, const auto& b) { return a.handle_id < b.handle_id; });
  return report;
}

// ---- Report JSON ---------------------------------------------------------------------------

namespace {

constexpr int kReportVersion = 1;

absl::Status Bad(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("IPAM check report: ", where, ": ", what));
}

absl::StatusOr<std::string> StringField(const Json& obj, const char* field,
                                        const std::string& where, bool required = true) {
  auto it = obj.find(field);
  if (it == obj.end()) {
    if (required) return Bad(where, absl::StrCat("missing \"", field, "\""));
    return std::string();
  }
  if (!it->is_string()) return Bad(absl::StrCat(where, ".", field), "not a string");
  return it->get<std::string>();
}

absl::StatusOr<net::IpAddress> IpField(const Json& obj, const char* field,
                                       const std::string& where) {
  ASSIGN_OR_RETURN(std::string text, StringField(obj, field, where));
  std::optional<net::IpAddress> ip = net::ParseIp(text);
  if (!ip)
    return Bad(absl::StrCat(where, ".", field),
               absl::StrCat("\"", text, "\" is not an IP address"));
  return *ip;
}

absl::StatusOr<net::Prefix> CidrField(const Json& obj, const char* field,
                                      const std::string& where) {
  ASSIGN_OR_RETURN(std::string text, StringField(obj, field, where));
  std::optional<net::Prefix> cidr = net::ParsePrefix(text);
  if (!cidr)
    return Bad(absl::StrCat(where, ".", field), absl::StrCat("\"", text, "\" is not a CIDR"));
  return *cidr;
}

absl::StatusOr<const Json*> ArrayField(const Json& root, const char* field) {
  auto it = root.find(field);
  if (it == root.end()) return nullptr;  // an empty category may be omitted
  if (!it->is_array()) return Bad(field, "not an array");
  return &*it;
}

absl::StatusOr<int> IntField(const Json& obj, const char* field, const std::string& where) {
  auto it = obj.find(field);
  if (it == obj.end()) return Bad(where, absl::StrCat("missing \"", field, "\""));
  if (!it->is_number_integer()) return Bad(absl::StrCat(where, ".", field), "not an integer");
  return it->get<int>();
}

absl::StatusOr<CheckReport> ParseReport(const Json& root) {
  if (!root.is_object()) return Bad("document", "not a JSON object");
  if (root.contains("version") && root["version"] != kReportVersion) {
    return Bad("version", absl::StrCat(root["version"].dump(), " is not supported (expected ",
                                       kReportVersion, ")"));
  }
  CheckReport report;
  ASSIGN_OR_RETURN(const Json* leaks, ArrayField(root, "allocatedNotInUse"));
  if (leaks != nullptr) {
    for (size_t i = 0; i < leaks->size(); ++i) {
      const Json& item = (*leaks)[i];
      const std::string where = absl::StrCat("allocatedNotInUse[", i, "]");
      if (!item.is_object()) return Bad(where, "not an object");
      CheckReport::Allocation a;
      ASSIGN_OR_RETURN(a.ip, IpField(item, "ip", where));
      ASSIGN_OR_RETURN(a.block, CidrField(item, "block", where));
      ASSIGN_OR_RETURN(a.handle_id, StringField(item, "handleID", where, /*required=*/false));
      auto attrs = item.find("attributes");
      if (attrs != item.end()) {
        if (!attrs->is_object()) return Bad(where + ".attributes", "not an object");
        for (auto it = attrs->begin(); it != attrs->end(); ++it) {
          if (!it.value().is_string())
            return Bad(absl::StrCat(where, ".attributes.", it.key()), "not a string");
          a.attributes[it.key()] = it.value().get<std::string>();
        }
      }
      auto seq = item.find("sequenceNumber");
      if (seq == item.end()) return Bad(where, "missing \"sequenceNumber\"");
      if (!seq->is_number_unsigned() && !(seq->is_number_integer() && seq->get<int64_t>() >= 0)) {
        return Bad(where + ".sequenceNumber", "not a non-negative integer");
      }
      a.sequence_number = seq->get<uint64_t>();
      report.allocated_not_in_use.push_back(std::move(a));
    }
  }
  ASSIGN_OR_RETURN(const Json* unallocated, ArrayField(root, "inUseNotAllocated"));
  if (unallocated != nullptr) {
    for (size_t i = 0; i < unallocated->size(); ++i) {
      const Json& item = (*unallocated)[i];
      const std::string where = absl::StrCat("inUseNotAllocated[", i, "]");
      if (!item.is_object()) return Bad(where, "not an object");
      CheckReport::Unallocated u;
      ASSIGN_OR_RETURN(u.ip, IpField(item, "ip", where));
      ASSIGN_OR_RETURN(u.used_by, StringField(item, "usedBy", where, /*required=*/false));
      report.in_use_not_allocated.push_back(std::move(u));
    }
  }
  ASSIGN_OR_RETURN(const Json* handles, ArrayField(root, "handlesMismatched"));
  if (handles != nullptr) {
    for (size_t i = 0; i < handles->size(); ++i) {
      const Json& item = (*handles)[i];
      const std::string where = absl::StrCat("handlesMismatched[", i, "]");
      if (!item.is_object()) return Bad(where, "not an object");
      CheckReport::HandleMismatch h;
      ASSIGN_OR_RETURN(h.handle_id, StringField(item, "handleID", where));
      ASSIGN_OR_RETURN(h.handle_count, IntField(item, "handleCount", where));
      ASSIGN_OR_RETURN(h.block_count, IntField(item, "blockCount", where));
      report.handles_mismatched.push_back(std::move(h));
    }
  }
  ASSIGN_OR_RETURN(const Json* invalid, ArrayField(root, "invalidBlocks"));
  if (invalid != nullptr) {
    for (size_t i = 0; i < invalid->size(); ++i) {
      const Json& item = (*invalid)[i];
      const std::string where = absl::StrCat("invalidBlocks[", i, "]");
      if (!item.is_object()) return Bad(where, "not an object");
      CheckReport::InvalidBlock b;
      ASSIGN_OR_RETURN(b.block, CidrField(item, "block", where));
      ASSIGN_OR_RETURN(b.problem, StringField(item, "problem", where));
      report.invalid_blocks.push_back(std::move(b));
    }
  }
  return report;
}

}  // namespace

std::string ReportToJson(const CheckReport& report) {
  Json root = Json::object();
  root["kind"] = "IPAMCheckReport";
  root["version"] = kReportVersion;
  Json leaks = Json::array();
  for (const auto& a : report.allocated_not_in_use) {
    Json item = {{"ip", net::FormatIp(a.ip)},
                 {"block", net::FormatCidr(a.block)},
                 {"handleID", a.handle_id}};
    Json attrs = Json::object();
    for (const auto& [k, v] : a.attributes) attrs[k] = v;
    item["attributes"] = std::move(attrs);
    item["sequenceNumber"] = a.sequence_number;
    leaks.push_back(std::move(item));
  }
  root["allocatedNotInUse"] = std::move(leaks);
  Json unallocated = Json::array();
  for (const auto& u : report.in_use_not_allocated) {
    unallocated.push_back({{"ip", net::FormatIp(u.ip)}, {"usedBy", u.used_by}});
  }
  root["inUseNotAllocated"] = std::move(unallocated);
  Json handles = Json::array();
  for (const auto& h : report.handles_mismatched) {
    handles.push_back({{"handleID", h.handle_id},
                       {"handleCount", h.handle_count},
                       {"blockCount", h.block_count}});
  }
  root["handlesMismatched"] = std::move(handles);
  Json invalid = Json::array();
  for (const auto& b : report.invalid_blocks) {
    invalid.push_back({{"block", net::FormatCidr(b.block)}, {"problem", b.problem}});
  }
  root["invalidBlocks"] = std::move(invalid);
  return root.dump(2) + "\n";
}

absl::StatusOr<CheckReport> ReportFromJson(std::string_view json) {
  Json root = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Bad("document", "not valid JSON");
  try {
    return ParseReport(root);
  } catch (const std::exception& e) {
    // nlohmann throws on out-of-range numbers; keep exceptions from crossing our API.
    return Bad("document", e.what());
  }
}

}  // namespace calico::ipamd
