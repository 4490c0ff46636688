// The kind table: names, plurals (datastore key segment) and calicoctl's aliases.
#include <algorithm>
#include <cctype>

#include "common/resources/resource.h"

namespace calico::resources {
namespace {

constexpr std::string_view kV3 = "projectcalico.org/v3";
constexpr std::string_view kK8sNetworking = "networking.k8s.io/v1";

const std::vector<KindInfo>& Table() {
  // Order: calicoctl's help order (alphabetical), the Kubernetes kind last. Aliases follow
  // upstream calicoctl's resource manager; plain "networkpolicy" and its short forms mean the
  // Calico kind, as they do upstream.
  static const std::vector<KindInfo>* table = new std::vector<KindInfo>{
      {"BGPConfiguration", kV3, "bgpconfigurations", false,
       {"bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"}},
      {"BGPFilter", kV3, "bgpfilters", false, {"bgpfilter", "bgpfilters"}},
      {"BGPPeer", kV3, "bgppeers", false, {"bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"}},
      {"ClusterInformation", kV3, "clusterinformations", false,
       {"clusterinformation", "clusterinformations", "clusterinfo", "clusterinfos"}},
      {"FelixConfiguration", kV3, "felixconfigurations", false,
       {"felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs"}},
      {"GlobalNetworkPolicy", kV3, "globalnetworkpolicies", false,
       {"globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps", "cgnp",
        "calicoglobalnetworkpolicy", "calicoglobalnetworkpolicies"}},
      {"GlobalNetworkSet", kV3, "globalnetworksets", false, {"globalnetworkset", "globalnetworksets"}},
      {"HostEndpoint", kV3, "hostendpoints", false, {"hostendpoint", "hostendpoints", "hep", "heps"}},
      {"IPAMConfiguration", kV3, "ipamconfigurations", false,
       {"ipamconfiguration", "ipamconfigurations", "ipamconfig", "ipamconfigs"}},
      {"IPPool", kV3, "ippools", false, {"ippool", "ippools", "ipp", "ipps", "pool", "pools"}},
      {"IPReservation", kV3, "ipreservations", false,
       {"ipreservation", "ipreservations", "reservation", "reservations"}},
      {"NetworkPolicy", kV3, "networkpolicies", true,
       {"networkpolicy", "networkpolicies", "policy", "policies", "np", "nps", "netpol", "netpols", "cnp",
        "caliconetworkpolicy", "caliconetworkpolicies"}},
      {"NetworkSet", kV3, "networksets", true, {"networkset", "networksets", "netset", "netsets"}},
      {"Node", kV3, "nodes", false, {"node", "nodes", "no", "nos"}},
      {"Profile", kV3, "profiles", false, {"profile", "profiles", "pro", "pros"}},
      {"Tier", kV3, "tiers", false, {"tier", "tiers"}},
      {"WorkloadEndpoint", kV3, "workloadendpoints", true,
       {"workloadendpoint", "workloadendpoints", "wep", "weps"}},
      {"NetworkPolicy", kK8sNetworking, "networkpolicies", true,
       {"k8snetworkpolicy", "k8snetworkpolicies", "knp", "knps", "kubernetesnetworkpolicy",
        "kubernetesnetworkpolicies", "networkpolicy.networking.k8s.io",
        "networkpolicies.networking.k8s.io"}},
  };
  return *table;
}

bool EqualFold(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

const std::vector<const KindInfo*>& AllKinds() {
  static const std::vector<const KindInfo*>* all = [] {
    auto* v = new std::vector<const KindInfo*>();
    for (const KindInfo& k : Table()) v->push_back(&k);
    return v;
  }();
  return *all;
}

const KindInfo* FindKind(std::string_view kind_or_alias) {
  // Kind names first, so "NetworkPolicy" is the Calico kind (listed before the k8s one).
  for (const KindInfo& k : Table()) {
    if (EqualFold(k.kind, kind_or_alias)) return &k;
  }
  for (const KindInfo& k : Table()) {
    for (std::string_view alias : k.aliases) {
      if (EqualFold(alias, kind_or_alias)) return &k;
    }
  }
  return nullptr;
}

const KindInfo* FindKind(std::string_view api_version, std::string_view kind) {
  for (const KindInfo& k : Table()) {
    if (k.api_version == api_version && k.kind == kind) return &k;
  }
  return nullptr;
}

}  // namespace calico::resources
