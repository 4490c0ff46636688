#pragma once
// common/reconcile: DeltaTracker<K, V> — desired state vs. what we believe the dataplane holds
// (Felix's deltatracker). Pure: no I/O. A driver writes the pending delta and reports each write
// that landed with MarkProgrammed/MarkDeleted; a write that failed is simply not reported, so its
// key stays pending and the next pass retries it. Resync replaces the dataplane view wholesale
// with what was read back, which turns any drift into pending work.
// Invariant: a key is pending-update iff desired and (absent from or unequal to) the dataplane,
// pending-deletion iff in the dataplane and not desired.

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace calico::reconcile {

// `Eq(desired, dataplane)` decides whether the dataplane copy already satisfies the desired one;
// it need not be symmetric (the kernel fills in fields we leave unset).
template <typename K, typename V, typename Eq = std::equal_to<V>>
class DeltaTracker {
 public:
  explicit DeltaTracker(Eq eq = Eq()) : eq_(std::move(eq)) {}

  void SetDesired(const K& key, V value) {
    desired_.insert_or_assign(key, std::move(value));
    Refresh(key);
  }
  void DeleteDesired(const K& key) {
    desired_.erase(key);
    Refresh(key);
  }
  // The dataplane now holds the desired value for `key` (a write succeeded).
  void MarkProgrammed(const K& key) {
    auto it = desired_.find(key);
    if (it == desired_.end()) return;
    dataplane_.insert_or_assign(key, it->second);
    Refresh(key);
  }
  // The dataplane no longer holds `key` (a delete succeeded).
  void MarkDeleted(const K& key) {
    dataplane_.erase(key);
    Refresh(key);
  }
  // Replaces the dataplane view with a fresh read-back.
  void ReplaceDataplane(std::map<K, V> actual) {
    std::set<K> touched;
    for (const auto& [k, v] : dataplane_) touched.insert(k);
    for (const auto& [k, v] : actual) touched.insert(k);
    dataplane_ = std::move(actual);
    for (const K& k : touched) Refresh(k);
  }

  // Iterates over a snapshot, so `fn` may call MarkProgrammed/MarkDeleted.
  template <typename Fn>
  void ForEachPendingUpdate(Fn&& fn) const {
    std::vector<K> keys(pending_updates_.begin(), pending_updates_.end());
    for (const K& k : keys) fn(k, desired_.at(k));
  }
  template <typename Fn>
  void ForEachPendingDeletion(Fn&& fn) const {
    std::vector<K> keys(pending_deletions_.begin(), pending_deletions_.end());
    for (const K& k : keys) fn(k, dataplane_.at(k));
  }

  bool InSync() const { return pending_updates_.empty() && pending_deletions_.empty(); }
  bool Pending(const K& key) const { return pending_updates_.count(key) + pending_deletions_.count(key) > 0; }
  size_t PendingUpdates() const { return pending_updates_.size(); }
  size_t PendingDeletions() const { return pending_deletions_.size(); }
  const std::map<K, V>& Desired() const { return desired_; }
  const std::map<K, V>& Dataplane() const { return dataplane_; }

 private:
  void Refresh(const K& key) {
    auto d = desired_.find(key);
    auto p = dataplane_.find(key);
    if (d != desired_.end()) {
      pending_deletions_.erase(key);
      if (p == dataplane_.end() || !eq_(d->second, p->second)) {
        pending_updates_.insert(key);
      } else {
        pending_updates_.erase(key);
      }
    } else {
      pending_updates_.erase(key);
      if (p != dataplane_.end()) {
        pending_deletions_.insert(key);
      } else {
        pending_deletions_.erase(key);
      }
    }
  }

  Eq eq_;
  std::map<K, V> desired_;
  std::map<K, V> dataplane_;
  std::set<K> pending_updates_;
  std::set<K> pending_deletions_;
};

}  // namespace calico::reconcile
