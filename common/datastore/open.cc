#include "common/datastore/config.h"
#include "common/datastore/etcd/etcd_datastore.h"
#include "common/datastore/sqlite/sqlite_datastore.h"

namespace calico::datastore {

absl::StatusOr<std::unique_ptr<Datastore>> Open(const Config& config) {
  switch (config.type) {
    case BackendType::kEmbedded:
      return OpenSqlite(config);
    case BackendType::kEtcdV3:
      return OpenEtcd(config);
  }
  return absl::InvalidArgumentError("unknown datastore backend type");
}

}  // namespace calico::datastore
