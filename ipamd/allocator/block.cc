#include "ipamd/allocator/block.h"

#include <algorithm>
#include <charconv>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace calico::ipamd {
namespace {

// Field order follows upstream's Go structs (json.Marshal emits declaration order), so a
// block written by us diffs cleanly against one written by libcalico-go.
using Json = nlohmann::ordered_json;

std::string FamilySegment(int family) { return family == 6 ? "ipv6" : "ipv4"; }

// "10.65.0.0/26" → "10.65.0.0-26": upstream's key form (a '/' would add a path level).
std::string CidrKeySegment(const net::Prefix& cidr) {
  return absl::StrCat(net::FormatIp(cidr.addr), "-", cidr.len);
}

bool Reserved(const net::IpAddress& ip, const std::vector<net::Prefix>& reserved) {
  for (const net::Prefix& r : reserved) {
    if (net::Contains(r, ip)) return true;
  }
  return false;
}

absl::Status Invalid(std::string_view what, std::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), ": ", ToAbsl(detail)));
}

// nlohmann throws on a type mismatch; every decoder runs inside this so no exception escapes.
template <typename T, typename Fn>
absl::StatusOr<T> Parse(std::string_view what, std::string_view text, Fn fn) {
  try {
    Json j = Json::parse(text.begin(), text.end());
    if (!j.is_object()) return Invalid(what, "not a JSON object");
    return fn(j);
  } catch (const std::exception& e) {
    return Invalid(what, e.what());
  }
}

}  // namespace

Block Block::Empty(const net::Prefix& cidr, std::optional<std::string> affinity) {
  Block b;
  b.cidr = net::Masked(cidr);
  b.affinity = std::move(affinity);
  const int n = static_cast<int>(net::Size(b.cidr));
  b.allocations.assign(n, std::nullopt);
  b.unallocated.reserve(n);
  for (int i = 0; i < n; ++i) b.unallocated.push_back(i);
  return b;
}

std::optional<int> Block::OrdinalOf(const net::IpAddress& ip) const {
  if (!net::Contains(cidr, ip)) return std::nullopt;
  const net::Uint128 offset = net::ToInteger(ip) - net::ToInteger(cidr.addr);
  if (offset >= static_cast<net::Uint128>(allocations.size())) return std::nullopt;
  return static_cast<int>(offset);
}

net::IpAddress Block::AddressOf(int ordinal) const {
  return net::Add(cidr.addr, static_cast<net::Uint128>(ordinal));
}

std::string Block::AffineNode() const {
  constexpr std::string_view kHost = "host:";
  if (!affinity || affinity->rfind(kHost, 0) != 0) return "";
  return affinity->substr(kHost.size());
}

namespace {

// Index of an attribute entry equal to `attrs`, appending one if none is (upstream shares
// entries between allocations of the same owner, which keeps multi-address handles small).
int FindOrAddAttribute(Block& b, const AllocationAttributes& attrs) {
  for (size_t i = 0; i < b.attributes.size(); ++i) {
    if (b.attributes[i] == attrs) return static_cast<int>(i);
  }
  b.attributes.push_back(attrs);
  return static_cast<int>(b.attributes.size() - 1);
}

void Allocate(Block& b, int ordinal, int attr_index) {
  b.allocations[ordinal] = attr_index;
  b.sequence_number_for_allocation[ordinal] = b.sequence_number;
}

}  // namespace

std::vector<int> Block::AutoAssign(int n, const AllocationAttributes& attrs,
                                   const std::vector<net::Prefix>& reserved) {
  std::vector<int> taken;
  if (n <= 0) return taken;
  std::vector<int> remaining;
  remaining.reserve(unallocated.size());
  int attr_index = -1;
  for (int ordinal : unallocated) {
    if (static_cast<int>(taken.size()) < n && !Reserved(AddressOf(ordinal), reserved)) {
      if (attr_index < 0) attr_index = FindOrAddAttribute(*this, attrs);
      Allocate(*this, ordinal, attr_index);
      taken.push_back(ordinal);
    } else {
      remaining.push_back(ordinal);
    }
  }
  unallocated = std::move(remaining);
  return taken;
}

absl::Status Block::Assign(int ordinal, const AllocationAttributes& attrs) {
  if (ordinal < 0 || ordinal >= NumAddresses()) {
    return absl::OutOfRangeError(
        absl::StrCat("ordinal ", ordinal, " outside block ", net::FormatCidr(cidr)));
  }
  if (allocations[ordinal].has_value()) {
    return absl::AlreadyExistsError(absl::StrCat(net::FormatIp(AddressOf(ordinal)),
                                                 " is already allocated in block ",
                                                 net::FormatCidr(cidr)));
  }
  Allocate(*this, ordinal, FindOrAddAttribute(*this, attrs));
  unallocated.erase(std::remove(unallocated.begin(), unallocated.end(), ordinal),
                    unallocated.end());
  return absl::OkStatus();
}

void Block::Release(int ordinal) {
  if (ordinal < 0 || ordinal >= NumAddresses() || !allocations[ordinal].has_value()) return;
  const int attr_index = *allocations[ordinal];
  allocations[ordinal].reset();
  sequence_number_for_allocation.erase(ordinal);
  unallocated.push_back(ordinal);
  // Drop the attribute entry once unreferenced and shift later indices down, as upstream's
  // release does, so attributes never accumulate for departed owners.
  for (const std::optional<int>& a : allocations) {
    if (a == attr_index) return;
  }
  if (attr_index < 0 || attr_index >= static_cast<int>(attributes.size())) return;
  attributes.erase(attributes.begin() + attr_index);
  for (std::optional<int>& a : allocations) {
    if (a.has_value() && *a > attr_index) --*a;
  }
}

int Block::NumFreeUsable(const std::vector<net::Prefix>& reserved) const {
  if (reserved.empty()) return NumFree();
  int n = 0;
  for (int ordinal : unallocated) {
    if (!Reserved(AddressOf(ordinal), reserved)) ++n;
  }
  return n;
}

std::vector<int> Block::OrdinalsOfHandle(std::string_view handle_id) const {
  std::vector<int> out;
  for (int i = 0; i < NumAddresses(); ++i) {
    const AllocationAttributes* attrs = AttributesOf(i);
    if (attrs != nullptr && attrs->handle_id == handle_id) out.push_back(i);
  }
  return out;
}

const AllocationAttributes* Block::AttributesOf(int ordinal) const {
  if (ordinal < 0 || ordinal >= NumAddresses() || !allocations[ordinal].has_value()) {
    return nullptr;
  }
  const int index = *allocations[ordinal];
  if (index < 0 || index >= static_cast<int>(attributes.size())) return nullptr;
  return &attributes[index];
}

uint64_t Block::SequenceNumberOf(int ordinal) const {
  auto it = sequence_number_for_allocation.find(ordinal);
  return it == sequence_number_for_allocation.end() ? 0 : it->second;
}

std::string BlockPrefix(int family) {
  return absl::StrCat(ToAbsl(kIpamPrefix), "assignment/", FamilySegment(family), "/block/");
}

std::string BlockKey(const net::Prefix& cidr) {
  return BlockPrefix(cidr.addr.family) + CidrKeySegment(cidr);
}

std::string AffinityPrefix(std::string_view node) {
  return absl::StrCat(ToAbsl(kIpamPrefix), "host/", ToAbsl(node), "/");
}

std::string AffinityKey(std::string_view node, const net::Prefix& cidr) {
  return absl::StrCat(AffinityPrefix(node), FamilySegment(cidr.addr.family), "/block/",
                      CidrKeySegment(cidr));
}

std::string HandlePrefix() { return absl::StrCat(ToAbsl(kIpamPrefix), "handle/"); }

std::string HandleKey(std::string_view handle_id) {
  return absl::StrCat(HandlePrefix(), ToAbsl(handle_id));
}

std::optional<net::Prefix> CidrFromKey(std::string_view key) {
  const size_t slash = key.rfind('/');
  std::string segment(slash == std::string_view::npos ? key : key.substr(slash + 1));
  const size_t dash = segment.rfind('-');
  if (dash == std::string::npos) return std::nullopt;
  segment[dash] = '/';
  std::optional<net::Prefix> cidr = net::ParsePrefix(segment);
  if (!cidr || net::Masked(*cidr) != *cidr) return std::nullopt;
  return cidr;
}

std::string EncodeBlock(const Block& block) {
  Json j;
  j["cidr"] = net::FormatCidr(block.cidr);
  j["affinity"] = block.affinity ? Json(*block.affinity) : Json(nullptr);
  j["strictAffinity"] = false;  // deprecated upstream; kept so the shape matches
  Json allocations = Json::array();
  for (const std::optional<int>& a : block.allocations) {
    allocations.push_back(a ? Json(*a) : Json(nullptr));
  }
  j["allocations"] = std::move(allocations);
  j["unallocated"] = block.unallocated;
  Json attributes = Json::array();
  for (const AllocationAttributes& a : block.attributes) {
    Json attr = Json::object();  // handle_id and secondary are omitempty upstream
    if (!a.handle_id.empty()) attr["handle_id"] = a.handle_id;
    if (!a.secondary.empty()) attr["secondary"] = a.secondary;
    attributes.push_back(std::move(attr));
  }
  j["attributes"] = std::move(attributes);
  j["deleted"] = block.deleted;
  j["sequenceNumber"] = block.sequence_number;
  // Ordinals as strings: upstream's map[string]uint64 (Kubernetes forbids numeric keys).
  Json seqs = Json::object();
  for (const auto& [ordinal, seq] : block.sequence_number_for_allocation) {
    seqs[std::to_string(ordinal)] = seq;
  }
  j["sequenceNumberForAllocation"] = std::move(seqs);
  return j.dump();
}

absl::StatusOr<Block> DecodeBlock(std::string_view json) {
  return Parse<Block>("block", json, [](const Json& j) -> absl::StatusOr<Block> {
    Block b;
    std::optional<net::Prefix> cidr = net::ParsePrefix(j.at("cidr").get<std::string>());
    if (!cidr) return Invalid("block", absl::StrCat("bad cidr ", j.at("cidr").dump()));
    b.cidr = *cidr;
    const std::string what = absl::StrCat("block ", net::FormatCidr(b.cidr));
    const net::Uint128 size = net::Size(b.cidr);
    if (size > (1u << 20)) return Invalid(what, "block too large");
    if (j.contains("affinity") && !j["affinity"].is_null()) {
      b.affinity = j["affinity"].get<std::string>();
    } else if (j.contains("hostAffinity") && !j["hostAffinity"].is_null()) {
      b.affinity = "host:" + j["hostAffinity"].get<std::string>();  // upstream's old field
    }
    for (const Json& a : j.at("allocations")) {
      b.allocations.push_back(a.is_null() ? std::nullopt : std::optional<int>(a.get<int>()));
    }
    if (b.allocations.size() != static_cast<size_t>(size)) {
      return Invalid(what, absl::StrCat(b.allocations.size(), " allocations for ",
                                        static_cast<uint64_t>(size), " addresses"));
    }
    if (j.contains("unallocated") && !j["unallocated"].is_null()) {
      b.unallocated = j["unallocated"].get<std::vector<int>>();
    }
    if (j.contains("attributes") && !j["attributes"].is_null()) {
      for (const Json& a : j["attributes"]) {
        AllocationAttributes attrs;
        if (a.contains("handle_id") && !a["handle_id"].is_null()) {
          attrs.handle_id = a["handle_id"].get<std::string>();
        }
        if (a.contains("secondary") && !a["secondary"].is_null()) {
          attrs.secondary = a["secondary"].get<std::map<std::string, std::string>>();
        }
        b.attributes.push_back(std::move(attrs));
      }
    }
    for (const std::optional<int>& a : b.allocations) {
      if (a && (*a < 0 || *a >= static_cast<int>(b.attributes.size()))) {
        return Invalid(what, absl::StrCat("attribute index ", *a, " out of range"));
      }
    }
    for (int ordinal : b.unallocated) {
      if (ordinal < 0 || ordinal >= b.NumAddresses()) {
        return Invalid(what, absl::StrCat("unallocated ordinal ", ordinal, " out of range"));
      }
    }
    b.deleted = j.value("deleted", false);
    b.sequence_number = j.value("sequenceNumber", uint64_t{0});
    if (j.contains("sequenceNumberForAllocation") &&
        !j["sequenceNumberForAllocation"].is_null()) {
      for (const auto& [key, value] : j["sequenceNumberForAllocation"].items()) {
        int ordinal = 0;
        auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), ordinal);
        if (ec != std::errc() || end != key.data() + key.size()) {
          return Invalid(what, absl::StrCat("sequenceNumberForAllocation key \"", key, "\""));
        }
        b.sequence_number_for_allocation[ordinal] = value.get<uint64_t>();
      }
    }
    return b;
  });
}

namespace {

std::string_view StateName(AffinityState s) {
  switch (s) {
    case AffinityState::kPending:
      return "pending";
    case AffinityState::kConfirmed:
      return "confirmed";
    case AffinityState::kPendingDeletion:
      return "pendingDeletion";
  }
  return "pending";
}

}  // namespace

std::string EncodeAffinity(const BlockAffinity& affinity) {
  Json j;
  j["state"] = std::string(StateName(affinity.state));
  j["deleted"] = affinity.deleted;
  return j.dump();
}

absl::StatusOr<BlockAffinity> DecodeAffinity(std::string_view json) {
  return Parse<BlockAffinity>(
      "block affinity", json, [](const Json& j) -> absl::StatusOr<BlockAffinity> {
        BlockAffinity a;
        // Upstream wrote no state before v3.x: such affinities are confirmed.
        const std::string state = j.value("state", std::string("confirmed"));
        if (state == "pending") {
          a.state = AffinityState::kPending;
        } else if (state == "confirmed" || state.empty()) {
          a.state = AffinityState::kConfirmed;
        } else if (state == "pendingDeletion") {
          a.state = AffinityState::kPendingDeletion;
        } else {
          return Invalid("block affinity", absl::StrCat("unknown state \"", state, "\""));
        }
        a.deleted = j.value("deleted", false);
        return a;
      });
}

std::string EncodeHandle(const Handle& handle) {
  Json j;
  j["handleID"] = handle.handle_id;
  j["block"] = handle.blocks;
  j["deleted"] = handle.deleted;
  return j.dump();
}

absl::StatusOr<Handle> DecodeHandle(std::string_view json) {
  return Parse<Handle>("handle", json, [](const Json& j) -> absl::StatusOr<Handle> {
    Handle h;
    // libcalico-go's etcd model omits handleID (json:"-"; it is the key): callers fill it in.
    h.handle_id = j.value("handleID", std::string());
    if (j.contains("block") && !j["block"].is_null()) {
      h.blocks = j["block"].get<std::map<std::string, int>>();
    }
    h.deleted = j.value("deleted", false);
    return h;
  });
}

}  // namespace calico::ipamd
