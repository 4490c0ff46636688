#pragma once
// birdd/rib/decision.h — the BGP decision process (RFC 4271 9.1.2.2, with RFC 4456's route
// reflection tie-breaks): which of two candidate paths for one prefix is better, and which step
// decided, so `show route` and logs can say why. Pure; the RIB keeps candidates per prefix and
// asks this for the best one and for the paths equal enough to share the route (ECMP).

#include <cstdint>
#include <string_view>

#include "common/net/ip.h"

namespace calico::birdd::rib {

enum class Origin : uint8_t { kIgp = 0, kEgp = 1, kIncomplete = 2 };

// What the decision process reads of a path (the RIB fills it from the path's attributes and
// its source peer).
struct PathView {
  bool local = false;                 // originated by this speaker (felixd's blocks): preferred
  uint32_t local_pref = 100;          // LOCAL_PREF, or the default for eBGP-learned paths
  uint32_t as_path_length = 0;        // AS_SEQUENCE counts each AS, an AS_SET counts 1
  Origin origin = Origin::kIgp;
  bool has_med = false;
  uint32_t med = 0;
  uint32_t neighbor_as = 0;           // the first AS of AS_PATH; 0 when empty (own AS)
  bool from_ebgp = false;
  uint32_t igp_cost = 0;              // cost to the next hop; equal when unknown
  uint32_t router_id = 0;             // ORIGINATOR_ID if present, else the peer's BGP Identifier
  uint32_t cluster_list_length = 0;
  net::IpAddress peer_address;        // the peer's address (last tie-break)
};

struct DecisionOptions {
  bool always_compare_med = false;    // compare MED across neighbor ASes too
  bool missing_med_worst = false;     // a path without MED is worst instead of MED 0
};

// The step that separated two paths (kEqual: identical in every step).
enum class Step {
  kLocal,
  kLocalPref,
  kAsPathLength,
  kOrigin,
  kMed,
  kEbgpOverIbgp,
  kIgpCost,
  kRouterId,
  kClusterListLength,
  kPeerAddress,
  kEqual,
};
std::string_view StepName(Step step);  // "local_pref", "as_path_length", ...

struct Comparison {
  int order = 0;  // < 0: a is better, > 0: b is better, 0: equal
  Step step = Step::kEqual;
};

// A pairwise comparison. RFC 4271's MED rule (compare only within one neighbor AS) is not
// transitive over three or more paths; as in BIRD, candidates are compared pairwise in arrival
// order, so the winner is stable for a given update sequence.
Comparison Compare(const PathView& a, const PathView& b, const DecisionOptions& options = {});

// Whether two paths may share the route as ECMP: equal through the IGP cost step (and from the
// same neighbor AS), differing only in the tie-breaks after it.
bool MultipathEqual(const PathView& a, const PathView& b, const DecisionOptions& options = {});

}  // namespace calico::birdd::rib
