// The decision process, one step at a time: each case differs from a baseline in one field
// (and in every later tie-break the opposite way, so the step that should decide is the only
// one that can).
#include "birdd/rib/decision.h"

#include <catch2/catch.hpp>

namespace calico::birdd::rib {
namespace {

PathView Base() {
  PathView p;
  p.local_pref = 100;
  p.as_path_length = 2;
  p.origin = Origin::kIgp;
  p.has_med = true;
  p.med = 10;
  p.neighbor_as = 65001;
  p.from_ebgp = true;
  p.igp_cost = 5;
  p.router_id = 0x0a000005;
  p.cluster_list_length = 0;
  p.peer_address = *net::ParseIp("10.0.0.5");
  return p;
}

// `better` must win over `worse` at `step`, in both argument orders.
void ExpectWins(const PathView& better, const PathView& worse, Step step,
                const DecisionOptions& o = {}) {
  Comparison ab = Compare(better, worse, o);
  Comparison ba = Compare(worse, better, o);
  INFO("step " << StepName(ab.step));
  CHECK(ab.order < 0);
  CHECK(ab.step == step);
  CHECK(ba.order > 0);
  CHECK(ba.step == step);
}

// Makes every tie-break after the preference steps favour `p`, so a preference step must win.
PathView WinsTieBreaks(PathView p) {
  p.router_id = 1;
  p.cluster_list_length = 0;
  p.peer_address = *net::ParseIp("10.0.0.1");
  return p;
}

TEST_CASE("decision: locally originated paths come first") {
  PathView local = Base(), learned = WinsTieBreaks(Base());
  local.local = true;
  local.local_pref = 0;  // would lose every later step
  ExpectWins(local, learned, Step::kLocal);
}

TEST_CASE("decision: higher LOCAL_PREF wins") {
  PathView a = Base(), b = WinsTieBreaks(Base());
  a.local_pref = 200;
  a.as_path_length = 9;
  ExpectWins(a, b, Step::kLocalPref);
}

TEST_CASE("decision: shorter AS_PATH wins") {
  PathView a = Base(), b = WinsTieBreaks(Base());
  a.as_path_length = 1;
  a.origin = Origin::kIncomplete;
  ExpectWins(a, b, Step::kAsPathLength);
}

TEST_CASE("decision: ORIGIN IGP beats EGP beats INCOMPLETE") {
  PathView igp = Base(), egp = WinsTieBreaks(Base()), incomplete = WinsTieBreaks(Base());
  egp.origin = Origin::kEgp;
  incomplete.origin = Origin::kIncomplete;
  ExpectWins(igp, egp, Step::kOrigin);
  PathView egp2 = Base();
  egp2.origin = Origin::kEgp;
  ExpectWins(egp2, incomplete, Step::kOrigin);
}

TEST_CASE("decision: lower MED wins, but only between paths from the same neighbor AS") {
  PathView a = Base(), b = WinsTieBreaks(Base());
  a.med = 1;
  a.from_ebgp = false;  // would lose the next step
  ExpectWins(a, b, Step::kMed);

  PathView other_as = WinsTieBreaks(Base());
  other_as.neighbor_as = 65002;
  other_as.med = 500;
  // Different neighbor AS: MED is skipped and the tie-breaks decide.
  CHECK(Compare(other_as, Base()).step == Step::kRouterId);
  DecisionOptions always;
  always.always_compare_med = true;
  ExpectWins(Base(), other_as, Step::kMed, always);
}

TEST_CASE("decision: a missing MED is 0, or worst when configured") {
  PathView none = WinsTieBreaks(Base()), ten = Base();
  none.has_med = false;
  ExpectWins(none, ten, Step::kMed);
  DecisionOptions worst;
  worst.missing_med_worst = true;
  PathView none2 = Base();
  none2.has_med = false;
  ExpectWins(ten, WinsTieBreaks(none2), Step::kMed, worst);
}

TEST_CASE("decision: eBGP beats iBGP, then lower IGP cost") {
  PathView ebgp = Base(), ibgp = WinsTieBreaks(Base());
  ibgp.from_ebgp = false;
  ebgp.igp_cost = 1000;
  ExpectWins(ebgp, ibgp, Step::kEbgpOverIbgp);
  PathView near = Base(), far = WinsTieBreaks(Base());
  near.igp_cost = 1;
  ExpectWins(near, far, Step::kIgpCost);
}

TEST_CASE("decision: tie-breaks are router id, cluster list length, then peer address") {
  PathView a = Base(), b = Base();
  a.router_id = 1;
  b.router_id = 2;
  a.cluster_list_length = 5;
  ExpectWins(a, b, Step::kRouterId);
  PathView c = Base(), d = Base();
  c.cluster_list_length = 1;
  d.cluster_list_length = 2;
  c.peer_address = *net::ParseIp("10.0.0.9");
  ExpectWins(c, d, Step::kClusterListLength);
  PathView e = Base(), f = Base();
  e.peer_address = *net::ParseIp("10.0.0.1");
  f.peer_address = *net::ParseIp("10.0.0.2");
  ExpectWins(e, f, Step::kPeerAddress);
  CHECK(Compare(Base(), Base()).order == 0);
  CHECK(Compare(Base(), Base()).step == Step::kEqual);
}

TEST_CASE("decision: paths equal through IGP cost from one neighbor AS are ECMP candidates") {
  PathView a = Base(), b = Base();
  b.router_id = 99;
  b.peer_address = *net::ParseIp("10.0.0.77");
  CHECK(MultipathEqual(a, b));
  b.igp_cost = 6;
  CHECK_FALSE(MultipathEqual(a, b));
  PathView c = Base();
  c.neighbor_as = 65009;
  CHECK_FALSE(MultipathEqual(a, c));
}

}  // namespace
}  // namespace calico::birdd::rib
