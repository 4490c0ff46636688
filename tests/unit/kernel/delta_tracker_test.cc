#include "common/reconcile/delta_tracker.h"

#include <string>

#include <catch2/catch.hpp>

namespace calico::reconcile {
namespace {

TEST_CASE("DeltaTracker: desired but absent is pending, programmed is in sync", "[unit][reconcile]") {
  DeltaTracker<std::string, int> t;
  t.SetDesired("a", 1);
  REQUIRE(t.PendingUpdates() == 1);
  t.MarkProgrammed("a");
  REQUIRE(t.InSync());
  t.SetDesired("a", 1);  // unchanged: nothing to do
  REQUIRE(t.InSync());
  t.SetDesired("a", 2);
  REQUIRE(t.PendingUpdates() == 1);
}

TEST_CASE("DeltaTracker: a resync turns drift into pending work", "[unit][reconcile]") {
  DeltaTracker<std::string, int> t;
  t.SetDesired("keep", 1);
  t.SetDesired("changed", 2);
  t.SetDesired("missing", 3);
  t.ReplaceDataplane({{"keep", 1}, {"changed", 20}, {"stray", 4}});
  std::vector<std::string> updates, deletions;
  t.ForEachPendingUpdate([&](const std::string& k, int) { updates.push_back(k); });
  t.ForEachPendingDeletion([&](const std::string& k, int) { deletions.push_back(k); });
  REQUIRE(updates == std::vector<std::string>{"changed", "missing"});
  REQUIRE(deletions == std::vector<std::string>{"stray"});
  // Marking during iteration is allowed (the callback sees a snapshot).
  t.ForEachPendingUpdate([&](const std::string& k, int) { t.MarkProgrammed(k); });
  t.ForEachPendingDeletion([&](const std::string& k, int) { t.MarkDeleted(k); });
  REQUIRE(t.InSync());
  REQUIRE(t.Dataplane() == t.Desired());
}

TEST_CASE("DeltaTracker: undesired and absent is nothing to do", "[unit][reconcile]") {
  DeltaTracker<int, int> t;
  t.SetDesired(1, 1);
  t.DeleteDesired(1);
  REQUIRE(t.InSync());
}

}  // namespace
}  // namespace calico::reconcile
