#pragma once
// common/resources/client: typed reads and writes of Resources over a Datastore — what
// libcalico-go's clientv3 is upstream. Every write validates first (the object alone, then
// against the other objects of its kind), so nothing invalid ever reaches the datastore.
// Server-set metadata: uid and creationTimestamp on create (kept by later writes),
// resourceVersion = the datastore mod revision (the CAS token of Replace and Delete).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/datastore/datastore.h"
#include "common/resources/resource.h"

namespace calico::resources {

class Client {
 public:
  explicit Client(datastore::Datastore& store) : store_(store) {}

  // NotFound naming the object, e.g. `IPPool "p1" not found`.
  absl::StatusOr<Resource> Get(const KindInfo& kind, std::string_view ns, std::string_view name);
  // ns empty: every namespace (namespaced kinds) — sorted by namespace, then name.
  absl::StatusOr<std::vector<Resource>> List(const KindInfo& kind, std::string_view ns = "");

  // AlreadyExists if present. Returns the stored object (with uid, creationTimestamp,
  // resourceVersion).
  absl::StatusOr<Resource> Create(const Resource& resource);
  // NotFound if absent. With metadata.resourceVersion set, writes only if it still matches
  // (Aborted otherwise); without, replaces whatever is there. uid/creationTimestamp kept.
  absl::StatusOr<Resource> Replace(const Resource& resource);
  // Create, or Replace if it exists.
  absl::StatusOr<Resource> Apply(const Resource& resource);
  // NotFound if absent; with `resource_version`, Aborted if it no longer matches.
  // Returns the object as it was.
  absl::StatusOr<Resource> Delete(const KindInfo& kind, std::string_view ns, std::string_view name,
                                  std::optional<int64_t> resource_version = std::nullopt);

 private:
  absl::Status CheckAgainstOthers(const Resource& resource);
  absl::StatusOr<Resource> Write(const Resource& resource, const Resource* existing,
                                 datastore::Revision expected);

  datastore::Datastore& store_;
};

// metadata.resourceVersion as a revision, if the object carries one.
absl::StatusOr<std::optional<int64_t>> ResourceVersionOf(const Resource& resource);

}  // namespace calico::resources
