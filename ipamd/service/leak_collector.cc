#include "ipamd/service/leak_collector.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"

namespace calico::ipamd::service {
namespace {

struct Snapshot {
  InUse in_use;
  std::map<net::Prefix, Block> blocks;
  CheckReport report;
};

absl::StatusOr<Snapshot> Load(Allocator& allocator, datastore::Datastore& store,
                              const InUseLoader& load_in_use) {
  Snapshot s;
  // In-use before blocks: an address assigned and put to use in between then reads as "not in
  // use" at worst — a candidate whose clock starts now — never the reverse.
  ASSIGN_OR_RETURN(s.in_use, load_in_use());
  ASSIGN_OR_RETURN(std::vector<Handle> handles, ListHandles(store));
  ASSIGN_OR_RETURN(std::vector<Block> blocks, allocator.ListBlocks());
  s.report = calico::ipamd::Check(blocks, handles, s.in_use);
  for (Block& b : blocks) {
    net::Prefix cidr = b.cidr;
    s.blocks.emplace(cidr, std::move(b));
  }
  return s;
}

}  // namespace

LeakCollector::LeakCollector(Allocator& allocator, datastore::Datastore& store,
                             InUseLoader load_in_use, LeakCollectorOptions options,
                             std::function<absl::Time()> now, http::MetricsRegistry& metrics)
    : allocator_(allocator),
      store_(store),
      load_in_use_(std::move(load_in_use)),
      options_(std::move(options)),
      now_(std::move(now)),
      released_(
          metrics.Counter("ipamd_leaks_released_total",
                          "Addresses released by the leak collector after the grace period.")),
      candidates_(metrics.Gauge("ipamd_leak_candidates",
                                "Allocated addresses no workload or node uses, within this "
                                "ipamd's scope, waiting out the grace period.")),
      passes_(metrics.Counter("ipamd_leak_collector_passes_total",
                              "Leak collector passes by result.", {"result"})) {}

bool LeakCollector::NodeDeleted(const std::string& node, const InUse& in_use) const {
  return !node.empty() && node != options_.node && !in_use.nodes.empty() &&
         in_use.nodes.count(node) == 0;
}

bool LeakCollector::InScope(const CheckReport::Allocation& a,
                            const std::map<net::Prefix, Block>& blocks, const InUse& in_use) const {
  std::string node;
  auto attr = a.attributes.find("node");
  if (attr != a.attributes.end()) {
    node = attr->second;
  } else if (auto b = blocks.find(a.block); b != blocks.end()) {
    node = b->second.AffineNode();
  }
  if (node.empty()) return true;  // nobody's: any collector may take it
  return node == options_.node || NodeDeleted(node, in_use);
}

absl::StatusOr<CollectResult> LeakCollector::RunOnce() {
  CollectResult result;
  absl::StatusOr<Snapshot> loaded = Load(allocator_, store_, load_in_use_);
  if (!loaded.ok()) {
    passes_.Inc({"error"});
    return loaded.status();
  }
  const absl::Time now = now_();

  // 1. Age the candidates; forget those that are gone or changed owner.
  std::map<Key, absl::Time> seen;
  std::vector<Key> expired;
  for (const CheckReport::Allocation& a : loaded->report.allocated_not_in_use) {
    if (!InScope(a, loaded->blocks, loaded->in_use)) continue;
    Key key{a.ip, a.handle_id, a.sequence_number};
    auto it = first_seen_.find(key);
    absl::Time since = it == first_seen_.end() ? now : it->second;
    seen.emplace(key, since);
    if (now - since >= options_.grace) expired.push_back(key);
  }
  first_seen_ = std::move(seen);
  result.candidates = static_cast<int>(first_seen_.size());

  // 2. Deleted nodes, aged the same way.
  std::set<std::string> missing;
  for (const auto& [cidr, block] : loaded->blocks) {
    std::string node = block.AffineNode();
    if (NodeDeleted(node, loaded->in_use)) missing.insert(node);
  }
  std::map<std::string, absl::Time> still_missing;
  std::vector<std::string> nodes_expired;
  for (const std::string& node : missing) {
    auto it = node_missing_since_.find(node);
    absl::Time since = it == node_missing_since_.end() ? now : it->second;
    still_missing.emplace(node, since);
    if (now - since >= options_.grace) nodes_expired.push_back(node);
  }
  node_missing_since_ = std::move(still_missing);

  if (expired.empty() && nodes_expired.empty()) {
    candidates_.Set(result.candidates);
    passes_.Inc({"ok"});
    return result;
  }

  // 3. Re-check just before acting: the world may have changed during the grace period's last
  // interval (a WorkloadEndpoint written, the address re-assigned, the node re-registered).
  absl::StatusOr<Snapshot> fresh = Load(allocator_, store_, load_in_use_);
  if (!fresh.ok()) {
    passes_.Inc({"error"});
    return fresh.status();
  }
  std::set<Key> confirmed;
  for (const CheckReport::Allocation& a : fresh->report.allocated_not_in_use) {
    confirmed.insert(Key{a.ip, a.handle_id, a.sequence_number});
  }
  absl::Status first_error;
  for (const Key& key : expired) {
    const auto& [ip, handle, seq] = key;
    if (confirmed.count(key) == 0) continue;  // in use now, or re-assigned: not a leak
    ReleaseRequest request;
    request.ip = ip;
    request.handle_id = handle;
    request.sequence_number = seq;
    absl::StatusOr<std::vector<net::IpAddress>> released = allocator_.ReleaseIPs({request});
    if (released.ok()) {
      first_seen_.erase(key);
      if (!released->empty()) {
        ++result.released;
        released_.Inc();
        log::Info("leak_released", {{"ip", ip.ToString()},
                                    {"handle", handle},
                                    {"sequence", absl::StrCat(seq)},
                                    {"grace", absl::FormatDuration(options_.grace)}});
      }
    } else if (absl::IsFailedPrecondition(released.status())) {
      // The block says someone else holds it now (the CAS saw a newer sequence number).
      first_seen_.erase(key);
      log::Info(
          "leak_release_refused",
          {{"ip", ip.ToString()}, {"handle", handle}, {"reason", released.status().ToString()}});
    } else {
      log::Warn("leak_release_failed",
                {{"ip", ip.ToString()}, {"error", released.status().ToString()}});
      first_error.Update(released.status());
    }
  }
  for (const std::string& node : nodes_expired) {
    if (!NodeDeleted(node, fresh->in_use)) continue;  // re-registered in the meantime
    absl::Status s = allocator_.ReleaseNodeAffinities(node);
    if (s.ok()) {
      ++result.nodes_released;
      node_missing_since_.erase(node);
      log::Info("node_affinities_released", {{"node", node}});
    } else {
      log::Warn("node_affinities_release_failed", {{"node", node}, {"error", s.ToString()}});
      first_error.Update(s);
    }
  }
  candidates_.Set(static_cast<double>(first_seen_.size()));
  passes_.Inc({first_error.ok() ? "ok" : "error"});
  if (!first_error.ok()) return first_error;
  return result;
}

}  // namespace calico::ipamd::service
