#pragma once
// Resources (validated, defaulted: common/resources) → the policy model, as upstream Calico
// converts them (libcalico-go's Kubernetes conversion and felix's rule update processor).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/resources/resource.h"
#include "felixd/policy/model.h"

namespace calico::felixd::policy {

// projectcalico.org/v3 NetworkPolicy or GlobalNetworkPolicy, or networking.k8s.io/v1
// NetworkPolicy (→ tier "default", order 1000, name "knp.default.<name>").
absl::StatusOr<Policy> PolicyFromResource(const resources::Resource& resource);
absl::StatusOr<Tier> TierFromResource(const resources::Resource& resource);
absl::StatusOr<Profile> ProfileFromResource(const resources::Resource& resource);
absl::StatusOr<NetworkSet> NetworkSetFromResource(const resources::Resource& resource);
absl::StatusOr<Endpoint> EndpointFromResource(const resources::Resource& resource);
// projectcalico.org/v3 HostEndpoint → an Endpoint with host = true (expectedIPs as its ips,
// interfaceName as its interface, labels, profiles, named ports; no implicit labels).
absl::StatusOr<Endpoint> HostEndpointFromResource(const resources::Resource& resource);

// The kns.<ns> Profile as upstream's namespace controller writes it: allow all ingress and
// egress, labelsToApply pcns.<key> for each namespace label plus pcns.projectcalico.org/name.
resources::Resource NamespaceProfile(const std::string& ns, const Labels& labels);
// The ksa.<ns>.<sa> Profile: no rules, labelsToApply pcsa.<key> plus pcsa.projectcalico.org/name.
resources::Resource ServiceAccountProfile(const std::string& ns, const std::string& sa,
                                          const Labels& labels);

// A model from a list of resources; each one that does not convert is skipped and its error
// appended to `errors` (when given).
Model BuildModel(const std::vector<resources::Resource>& resources,
                 std::vector<std::string>* errors = nullptr);

}  // namespace calico::felixd::policy
