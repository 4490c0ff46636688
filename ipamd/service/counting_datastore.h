#pragma once
// ipamd/service/counting_datastore.h — a Datastore decorator that counts what the allocator's
// writes meet: CAS conflicts (Aborted, which the allocator retries) and unavailability. It
// measures at the seam rather than inside the allocator, so the allocator stays pure of metrics.

#include <memory>
#include <string>
#include <vector>

#include "common/datastore/datastore.h"
#include "common/http/metrics.h"

namespace calico::ipamd::service {

class CountingDatastore : public datastore::Datastore {
 public:
  // `inner` and `metrics` must outlive this object.
  CountingDatastore(datastore::Datastore& inner, http::MetricsRegistry& metrics);

  // Datastore
  absl::StatusOr<datastore::Entry> Get(std::string_view key) override;
  absl::StatusOr<datastore::ListResult> List(std::string_view prefix) override;
  absl::StatusOr<datastore::Revision> Create(std::string_view key, std::string_view value,
                                             const datastore::CreateOptions& options) override;
  absl::StatusOr<datastore::Revision> Update(std::string_view key, std::string_view value,
                                             datastore::Revision expected) override;
  absl::StatusOr<datastore::Revision> Delete(std::string_view key,
                                             datastore::Revision expected) override;
  absl::StatusOr<std::vector<datastore::Revision>> Commit(
      const std::vector<datastore::TxnOp>& ops) override;
  absl::StatusOr<std::unique_ptr<datastore::Watch>> WatchPrefix(std::string_view prefix,
                                                                datastore::Revision after) override;
  absl::Status Compact(datastore::Revision revision) override;
  absl::StatusOr<datastore::Revision> CurrentRevision() override;
  std::string Describe() const override;

 private:
  template <typename T>
  const T& Count(const char* op, const T& result);

  datastore::Datastore& inner_;
  http::MetricFamily& conflicts_;
  http::MetricFamily& errors_;
  http::MetricFamily& writes_;
};

}  // namespace calico::ipamd::service
