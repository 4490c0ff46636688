#pragma once
// Rules of each kind that span fields or need parsing beyond the schema's types (upstream's
// libcalico-go validator and client-side defaulting). Runs on an object already normalised by
// the schema; may add dynamic defaults (IPPool blockSize, policy types).

#include "absl/status/status.h"
#include "common/resources/resource.h"

namespace calico::resources::internal {

// Errors read "<field path>: <value> <rule>" (the caller prefixes the object's description).
absl::Status ValidateKind(const KindInfo& kind, Json& object);

}  // namespace calico::resources::internal
