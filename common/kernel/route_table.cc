#include "common/kernel/route_table.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace calico::kernel {
namespace {

bool HopSatisfies(const NextHop& desired, const NextHop& actual) {
  if (desired.gateway != actual.gateway || desired.onlink != actual.onlink) return false;
  // A route via a gateway alone: the kernel picks the device, any is ours.
  if (desired.ifname.empty() && desired.ifindex == 0) return true;
  if (!desired.ifname.empty() && !actual.ifname.empty()) return desired.ifname == actual.ifname;
  return desired.ifindex == actual.ifindex;
}

}  // namespace

bool RouteSatisfies(const Route& desired, const Route& actual) {
  if (desired.Key() != actual.Key() || desired.protocol != actual.protocol ||
      desired.type != actual.type || desired.scope != actual.scope ||
      desired.multipath.size() != actual.multipath.size() ||
      !HopSatisfies(desired.hop, actual.hop)) {
    return false;
  }
  for (size_t i = 0; i < desired.multipath.size(); ++i) {
    if (!HopSatisfies(desired.multipath[i], actual.multipath[i]) ||
        desired.multipath[i].weight != actual.multipath[i].weight) {
      return false;
    }
  }
  return true;
}

RouteTable::RouteTable(Netlink& netlink, uint8_t protocol, uint32_t table)
    : netlink_(netlink), protocol_(protocol), table_(table) {}

void RouteTable::SetDesired(std::string_view owner, std::vector<Route> routes) {
  std::map<RouteKey, Route> wanted;
  for (Route& route : routes) {
    route.protocol = protocol_;
    route.table = table_;
    RouteKey key = route.Key();
    route.priority = key.priority;  // as the kernel will store it, so read-backs compare equal
    wanted.insert_or_assign(key, std::move(route));
  }
  std::set<RouteKey> touched;
  auto it = owners_.find(owner);
  if (it != owners_.end()) {
    for (const auto& [key, route] : it->second) {
      touched.insert(key);
      auto c = claimants_.find(key);
      c->second.erase(c->second.find(owner));
      if (c->second.empty()) claimants_.erase(c);
    }
  }
  for (const auto& [key, route] : wanted) {
    touched.insert(key);
    claimants_[key].insert(std::string(owner));
  }
  if (wanted.empty()) {
    if (it != owners_.end()) owners_.erase(it);
  } else {
    owners_.insert_or_assign(std::string(owner), std::move(wanted));
  }
  for (const RouteKey& key : touched) Recompute(key);
}

void RouteTable::Remove(std::string_view owner) { SetDesired(owner, {}); }

void RouteTable::Recompute(const RouteKey& key) {
  auto c = claimants_.find(key);
  if (c == claimants_.end()) {
    routes_.DeleteDesired(key);
    return;
  }
  const std::string& winner = *c->second.begin();
  routes_.SetDesired(key, owners_.find(winner)->second.at(key));
}

bool RouteTable::OwnerInSync(std::string_view owner) const {
  auto it = owners_.find(owner);
  if (it == owners_.end()) return true;
  for (const auto& [key, route] : it->second) {
    if (routes_.Pending(key)) return false;
  }
  return true;
}

absl::Status RouteTable::Apply() {
  absl::Status first_error;
  int failures = 0;
  auto record = [&](const absl::Status& s) {
    if (s.ok()) return;
    if (failures++ == 0) first_error = s;
  };
  routes_.ForEachPendingUpdate([&](const RouteKey& key, const Route& route) {
    absl::Status s = netlink_.ReplaceRoute(route);
    if (s.ok()) {
      routes_.MarkProgrammed(key);
    } else {
      record(s);
    }
  });
  routes_.ForEachPendingDeletion([&](const RouteKey& key, const Route&) {
    absl::Status s = netlink_.DeleteRoute(key, protocol_);
    if (s.ok()) {
      routes_.MarkDeleted(key);
    } else {
      record(s);
    }
  });
  if (failures == 0) return absl::OkStatus();
  std::string context = absl::StrCat("route table ", table_, " proto ", protocol_);
  if (failures > 1) absl::StrAppend(&context, " (", failures - 1, " more failures pending)");
  return Annotate(first_error, context);
}

absl::Status RouteTable::Resync() {
  absl::StatusOr<std::vector<Route>> actual =
      netlink_.ListRoutes(RouteFilter{.table = table_, .protocol = protocol_});
  if (!actual.ok()) {
    return Annotate(actual.status(), absl::StrCat("resyncing route table ", table_, " proto ",
                                                  protocol_));
  }
  std::map<RouteKey, Route> by_key;
  for (Route& route : *actual) {
    RouteKey key = route.Key();
    by_key.insert_or_assign(key, std::move(route));
  }
  routes_.ReplaceDataplane(std::move(by_key));
  return Apply();
}

}  // namespace calico::kernel
