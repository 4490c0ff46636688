#include "birdd/rib/decision.h"

namespace calico::birdd::rib {
namespace {

// Lower is better for every key below; returns -1/0/1.
template <typename T>
int Lower(T a, T b) {
  return a < b ? -1 : (a > b ? 1 : 0);
}

uint64_t MedValue(const PathView& p, const DecisionOptions& o) {
  if (p.has_med) return p.med;
  return o.missing_med_worst ? uint64_t{0xffffffffu} + 1 : 0;
}

// Steps up to and including the IGP cost; kEqual when they all tie.
Comparison ComparePreference(const PathView& a, const PathView& b, const DecisionOptions& o) {
  if (a.local != b.local) return {a.local ? -1 : 1, Step::kLocal};
  if (int c = Lower(b.local_pref, a.local_pref); c != 0) return {c, Step::kLocalPref};  // higher wins
  if (int c = Lower(a.as_path_length, b.as_path_length); c != 0) return {c, Step::kAsPathLength};
  if (int c = Lower(a.origin, b.origin); c != 0) return {c, Step::kOrigin};
  if (o.always_compare_med || a.neighbor_as == b.neighbor_as) {
    if (int c = Lower(MedValue(a, o), MedValue(b, o)); c != 0) return {c, Step::kMed};
  }
  if (a.from_ebgp != b.from_ebgp) return {a.from_ebgp ? -1 : 1, Step::kEbgpOverIbgp};
  if (int c = Lower(a.igp_cost, b.igp_cost); c != 0) return {c, Step::kIgpCost};
  return {0, Step::kEqual};
}

}  // namespace

std::string_view StepName(Step step) {
  switch (step) {
    case Step::kLocal: return "local";
    case Step::kLocalPref: return "local_pref";
    case Step::kAsPathLength: return "as_path_length";
    case Step::kOrigin: return "origin";
    case Step::kMed: return "med";
    case Step::kEbgpOverIbgp: return "ebgp_over_ibgp";
    case Step::kIgpCost: return "igp_cost";
    case Step::kRouterId: return "router_id";
    case Step::kClusterListLength: return "cluster_list_length";
    case Step::kPeerAddress: return "peer_address";
    case Step::kEqual: return "equal";
  }
  return "?";
}

Comparison Compare(const PathView& a, const PathView& b, const DecisionOptions& o) {
  Comparison c = ComparePreference(a, b, o);
  if (c.order != 0) return c;
  if (int r = Lower(a.router_id, b.router_id); r != 0) return {r, Step::kRouterId};
  if (int r = Lower(a.cluster_list_length, b.cluster_list_length); r != 0) {
    return {r, Step::kClusterListLength};
  }
  if (int r = Lower(net::ToInteger(a.peer_address), net::ToInteger(b.peer_address)); r != 0) {
    return {r, Step::kPeerAddress};
  }
  return {0, Step::kEqual};
}

bool MultipathEqual(const PathView& a, const PathView& b, const DecisionOptions& o) {
  return a.neighbor_as == b.neighbor_as && ComparePreference(a, b, o).order == 0;
}

}  // namespace calico::birdd::rib
