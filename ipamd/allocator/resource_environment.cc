#include "ipamd/allocator/resource_environment.h"

#include <algorithm>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/resources/client/client.h"

namespace calico::ipamd {
namespace {

using resources::Json;

const resources::KindInfo& Kind(std::string_view name) {
  const resources::KindInfo* kind = resources::FindKind(name);
  // The kinds are compiled in; a missing one is a build mismatch, not input.
  if (kind == nullptr) std::abort();
  return *kind;
}

const Json& Spec(const resources::Resource& r) {
  static const Json kEmpty = Json::object();
  auto it = r.object.find("spec");
  return it != r.object.end() && it->is_object() ? *it : kEmpty;
}

// A value cached until `ttl` after it was read; errors are returned but not remembered.
template <typename T>
class Cached {
 public:
  absl::StatusOr<T> Get(absl::Duration ttl, const std::function<absl::StatusOr<T>()>& load) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (value_.has_value() && absl::Now() < expires_) return *value_;
    }
    absl::StatusOr<T> loaded = load();
    if (loaded.ok() && ttl > absl::ZeroDuration()) {
      std::lock_guard<std::mutex> lock(mu_);
      value_ = *loaded;
      expires_ = absl::Now() + ttl;
    }
    return loaded;
  }

 private:
  std::mutex mu_;
  std::optional<T> value_;
  absl::Time expires_;
};

struct State {
  explicit State(datastore::Datastore& s, absl::Duration t) : client(s), ttl(t) {}
  resources::Client client;
  absl::Duration ttl;
  Cached<std::vector<Pool>> pools;
  Cached<IpamConfig> config;
  Cached<std::vector<net::Prefix>> reservations;
  std::mutex nodes_mu;
  std::map<std::string, std::shared_ptr<Cached<std::map<std::string, std::string>>>> nodes;
};

}  // namespace

absl::StatusOr<Pool> PoolFromResource(const resources::Resource& r) {
  const Json& spec = Spec(r);
  Pool pool;
  pool.name = r.Name();
  std::string cidr = spec.value("cidr", "");
  std::optional<net::Prefix> prefix = net::ParsePrefix(cidr);
  if (!prefix) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.Describe(), ": spec.cidr \"", cidr, "\" is not a CIDR"));
  }
  pool.cidr = *prefix;
  pool.block_size = spec.value("blockSize", prefix->addr.family == 4 ? 26 : 122);
  pool.disabled = spec.value("disabled", false);
  pool.node_selector = spec.value("nodeSelector", "all()");
  if (spec.contains("allowedUses") && spec["allowedUses"].is_array()) {
    pool.allow_workload = pool.allow_tunnel = false;
    for (const Json& use : spec["allowedUses"]) {
      if (use == "Workload") pool.allow_workload = true;
      if (use == "Tunnel") pool.allow_tunnel = true;
    }
  }
  pool.manual_assignment = spec.value("assignmentMode", "Automatic") == "Manual";
  return pool;
}

absl::StatusOr<std::vector<Pool>> LoadPools(resources::Client& client) {
  ASSIGN_OR_RETURN(std::vector<resources::Resource> list, client.List(Kind("IPPool")));
  std::vector<Pool> pools;
  for (const resources::Resource& r : list) {
    ASSIGN_OR_RETURN(Pool pool, PoolFromResource(r));
    pools.push_back(std::move(pool));
  }
  std::sort(pools.begin(), pools.end(), [](const Pool& a, const Pool& b) { return a.cidr < b.cidr; });
  return pools;
}

absl::StatusOr<IpamConfig> LoadConfig(resources::Client& client) {
  IpamConfig config;
  absl::StatusOr<resources::Resource> r = client.Get(Kind("IPAMConfiguration"), "", "default");
  if (absl::IsNotFound(r.status())) return config;  // upstream's defaults
  if (!r.ok()) return r.status();
  const Json& spec = Spec(*r);
  config.strict_affinity = spec.value("strictAffinity", false);
  config.auto_allocate_blocks = spec.value("autoAllocateBlocks", true);
  config.max_blocks_per_host = spec.value("maxBlocksPerHost", 0);
  return config;
}

absl::StatusOr<std::vector<net::Prefix>> LoadReservations(resources::Client& client) {
  ASSIGN_OR_RETURN(std::vector<resources::Resource> list, client.List(Kind("IPReservation")));
  std::vector<net::Prefix> out;
  for (const resources::Resource& r : list) {
    auto cidrs = Spec(r).find("reservedCIDRs");
    if (cidrs == Spec(r).end() || !cidrs->is_array()) continue;
    for (const Json& c : *cidrs) {
      std::string text = c.is_string() ? c.get<std::string>() : c.dump();
      std::optional<net::Prefix> prefix = net::ParseCidrOrIp(text);
      if (!prefix) {
        return absl::InvalidArgumentError(
            absl::StrCat(r.Describe(), ": spec.reservedCIDRs: \"", text, "\" is not a CIDR"));
      }
      out.push_back(net::Masked(*prefix));
    }
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> LoadNodeLabels(resources::Client& client,
                                                                  const std::string& node) {
  absl::StatusOr<resources::Resource> r = client.Get(Kind("Node"), "", node);
  // Only all() pools match a node that has not registered: upstream's selector evaluation gives
  // an empty label set the same answer.
  if (absl::IsNotFound(r.status())) return std::map<std::string, std::string>{};
  if (!r.ok()) return r.status();
  std::map<std::string, std::string> labels;
  auto meta = r->object.find("metadata");
  if (meta != r->object.end() && meta->contains("labels") && (*meta)["labels"].is_object()) {
    for (const auto& [k, v] : (*meta)["labels"].items()) {
      if (v.is_string()) labels[k] = v.get<std::string>();
    }
  }
  return labels;
}

Environment DatastoreEnvironment(datastore::Datastore& store, absl::Duration cache_ttl) {
  auto state = std::make_shared<State>(store, cache_ttl);
  Environment env;
  env.pools = [state] {
    return state->pools.Get(state->ttl, [&] { return LoadPools(state->client); });
  };
  env.config = [state] {
    return state->config.Get(state->ttl, [&] { return LoadConfig(state->client); });
  };
  env.reservations = [state] {
    return state->reservations.Get(state->ttl, [&] { return LoadReservations(state->client); });
  };
  env.node_labels = [state](const std::string& node) {
    std::shared_ptr<Cached<std::map<std::string, std::string>>> cache;
    {
      std::lock_guard<std::mutex> lock(state->nodes_mu);
      auto& slot = state->nodes[node];
      if (slot == nullptr) slot = std::make_shared<Cached<std::map<std::string, std::string>>>();
      cache = slot;
    }
    return cache->Get(state->ttl, [&] { return LoadNodeLabels(state->client, node); });
  };
  return env;
}

}  // namespace calico::ipamd
