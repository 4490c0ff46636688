#include "ipamd/service/default_pools.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "common/net/ip.h"
#include "common/resources/client/client.h"

namespace calico::ipamd::service {
namespace {

using resources::Json;

absl::Status BadVar(const char* var, std::string_view value, std::string_view rule) {
  return absl::InvalidArgumentError(
      absl::StrCat(var, "=\"", std::string(value), "\": ", std::string(rule)));
}

// Go's strconv.ParseBool, which upstream uses for these variables.
absl::StatusOr<bool> ParseBoolVar(const char* var, const char* value, bool dflt) {
  if (value == nullptr || *value == '\0') return dflt;
  std::string v = value;
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False")
    return false;
  return BadVar(var, v, "expected true or false");
}

// Upstream accepts these spellings, case-insensitively ("off" and "" mean Never).
absl::StatusOr<std::string> ParseEncapVar(const char* var, const char* value) {
  if (value == nullptr) return std::string("Never");
  std::string v = absl::AsciiStrToLower(value);
  if (v.empty() || v == "off" || v == "never") return std::string("Never");
  if (v == "always") return std::string("Always");
  if (v == "crosssubnet" || v == "cross-subnet") return std::string("CrossSubnet");
  return BadVar(var, value, "expected Always, CrossSubnet or Never");
}

absl::StatusOr<DefaultPoolSpec> SpecFromEnv(const std::function<const char*(const char*)>& getenv,
                                            int family) {
  const bool v4 = family == 4;
  auto var = [&](const char* suffix) {
    return absl::StrCat(v4 ? "CALICO_IPV4POOL_" : "CALICO_IPV6POOL_", suffix);
  };
  DefaultPoolSpec spec;
  spec.name = v4 ? kDefaultIpv4PoolName : kDefaultIpv6PoolName;
  std::string cidr_var = var("CIDR");
  const char* cidr = getenv(cidr_var.c_str());
  spec.cidr = cidr != nullptr && *cidr ? cidr : "192.168.0.0/16";
  std::optional<net::Prefix> prefix = net::ParsePrefix(spec.cidr);
  if (!prefix) return BadVar(cidr_var.c_str(), spec.cidr, "not a CIDR");
  if (prefix->addr.family != family) {
    return BadVar(cidr_var.c_str(), spec.cidr, v4 ? "not an IPv4 CIDR" : "not an IPv6 CIDR");
  }
  std::string size_var = var("BLOCK_SIZE");
  const char* size = getenv(size_var.c_str());
  spec.block_size = v4 ? 26 : 122;
  if (size != nullptr && *size && !absl::SimpleAtoi(size, &spec.block_size)) {
    return BadVar(size_var.c_str(), size, "not an integer");
  }
  std::string vxlan_var = var("VXLAN");
  ASSIGN_OR_RETURN(spec.vxlan_mode, ParseEncapVar(vxlan_var.c_str(), getenv(vxlan_var.c_str())));
  if (v4) {
    ASSIGN_OR_RETURN(spec.ipip_mode,
                     ParseEncapVar("CALICO_IPV4POOL_IPIP", getenv("CALICO_IPV4POOL_IPIP")));
  }
  std::string nat_var = var("NAT_OUTGOING");
  // Upstream: NAT outgoing on by default for IPv4, off for IPv6.
  ASSIGN_OR_RETURN(spec.nat_outgoing, ParseBoolVar(nat_var.c_str(), getenv(nat_var.c_str()), v4));
  std::string sel_var = var("NODE_SELECTOR");
  const char* sel = getenv(sel_var.c_str());
  if (sel != nullptr && *sel) spec.node_selector = sel;
  return spec;
}

const resources::KindInfo& PoolKind() { return *resources::FindKind("IPPool"); }

}  // namespace

absl::StatusOr<DefaultPools> DefaultPoolsFromEnvironment(
    const std::function<const char*(const char*)>& getenv) {
  DefaultPools pools;
  ASSIGN_OR_RETURN(pools.skip, ParseBoolVar("NO_DEFAULT_POOLS", getenv("NO_DEFAULT_POOLS"), false));
  if (pools.skip) return pools;
  ASSIGN_OR_RETURN(pools.v4, SpecFromEnv(getenv, 4));
  const char* v6 = getenv("CALICO_IPV6POOL_CIDR");
  if (v6 != nullptr && *v6) {
    ASSIGN_OR_RETURN(pools.v6, SpecFromEnv(getenv, 6));
  }
  // Validate now, so a bad combination (ipip with vxlan, a blockSize out of range) stops
  // startup with the variable's story rather than at the first write.
  if (pools.v4) RETURN_IF_ERROR(PoolResource(*pools.v4).status());
  if (pools.v6) RETURN_IF_ERROR(PoolResource(*pools.v6).status());
  return pools;
}

absl::StatusOr<resources::Resource> PoolResource(const DefaultPoolSpec& spec) {
  Json object = {
      {"apiVersion", "projectcalico.org/v3"},
      {"kind", "IPPool"},
      {"metadata", {{"name", spec.name}}},
      {"spec",
       {{"cidr", spec.cidr},
        {"vxlanMode", spec.vxlan_mode},
        {"ipipMode", spec.ipip_mode},
        {"natOutgoing", spec.nat_outgoing},
        {"blockSize", spec.block_size},
        {"nodeSelector", spec.node_selector}}},
  };
  absl::StatusOr<resources::Resource> r = resources::FromObject(object);
  if (!r.ok()) return Annotate(r.status(), absl::StrCat("default pool ", spec.name));
  return r;
}

absl::StatusOr<std::vector<std::string>> EnsureDefaultPools(datastore::Datastore& store,
                                                            const DefaultPools& pools) {
  std::vector<std::string> created;
  if (pools.skip) {
    log::Info("default_pools_skipped", {{"reason", "NO_DEFAULT_POOLS"}});
    return created;
  }
  resources::Client client(store);
  for (const std::optional<DefaultPoolSpec>& spec : {pools.v4, pools.v6}) {
    if (!spec) continue;
    int family = net::ParsePrefix(spec->cidr)->addr.family;
    // Per family, as upstream: a cluster with only a v4 pool still gets the v6 default once
    // CALICO_IPV6POOL_CIDR is set. Re-listed per family: the other creator may have raced us.
    ASSIGN_OR_RETURN(std::vector<resources::Resource> existing, client.List(PoolKind()));
    bool have_family = false;
    for (const resources::Resource& r : existing) {
      std::optional<net::Prefix> p =
          net::ParsePrefix(r.object.value("spec", Json::object()).value("cidr", ""));
      if (p && p->addr.family == family) have_family = true;
    }
    if (have_family) continue;
    ASSIGN_OR_RETURN(resources::Resource resource, PoolResource(*spec));
    absl::StatusOr<resources::Resource> made = client.Create(resource);
    if (made.ok()) {
      log::Info("default_pool_created", {{"pool", spec->name}, {"cidr", spec->cidr}});
      created.push_back(spec->name);
      continue;
    }
    // Lost the race to another ipamd writing the same name: its pool stands.
    if (absl::IsAlreadyExists(made.status())) continue;
    // Someone created a different, overlapping pool between our List and Create: theirs wins
    // too; anything else is a real error.
    if (absl::IsInvalidArgument(made.status())) {
      ASSIGN_OR_RETURN(std::vector<resources::Resource> now, client.List(PoolKind()));
      bool raced = false;
      for (const resources::Resource& r : now) {
        std::optional<net::Prefix> p =
            net::ParsePrefix(r.object.value("spec", Json::object()).value("cidr", ""));
        if (p && p->addr.family == family) raced = true;
      }
      if (raced) continue;
    }
    return Annotate(made.status(), absl::StrCat("creating default pool ", spec->name));
  }
  return created;
}

}  // namespace calico::ipamd::service
