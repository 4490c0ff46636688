#include "ipamd/service/counting_datastore.h"

#include "absl/status/status.h"

namespace calico::ipamd::service {

CountingDatastore::CountingDatastore(datastore::Datastore& inner, http::MetricsRegistry& metrics)
    : inner_(inner),
      conflicts_(metrics.Counter("ipamd_datastore_cas_conflicts_total",
                                 "Compare-and-swap writes refused because the key changed "
                                 "(the allocator re-reads and retries them).",
                                 {"op"})),
      errors_(metrics.Counter("ipamd_datastore_errors_total",
                              "Datastore calls failing with Unavailable or DeadlineExceeded.",
                              {"op"})),
      writes_(metrics.Counter("ipamd_datastore_writes_total", "Successful datastore writes.",
                              {"op"})) {}

template <typename T>
const T& CountingDatastore::Count(const char* op, const T& result) {
  absl::Status status = result.status();
  if (status.ok()) {
    if (std::string_view(op) != "get" && std::string_view(op) != "list") writes_.Inc({op});
  } else if (absl::IsAborted(status)) {
    conflicts_.Inc({op});
  } else if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) {
    errors_.Inc({op});
  }
  return result;
}

absl::StatusOr<datastore::Entry> CountingDatastore::Get(std::string_view key) {
  auto r = inner_.Get(key);
  Count("get", r);
  return r;
}

absl::StatusOr<datastore::ListResult> CountingDatastore::List(std::string_view prefix) {
  auto r = inner_.List(prefix);
  Count("list", r);
  return r;
}

absl::StatusOr<datastore::Revision> CountingDatastore::Create(
    std::string_view key, std::string_view value, const datastore::CreateOptions& options) {
  auto r = inner_.Create(key, value, options);
  // A Create losing to a concurrent Create is the "absent" flavour of a CAS conflict.
  if (absl::IsAlreadyExists(r.status())) conflicts_.Inc({"create"});
  Count("create", r);
  return r;
}

absl::StatusOr<datastore::Revision> CountingDatastore::Update(std::string_view key,
                                                              std::string_view value,
                                                              datastore::Revision expected) {
  auto r = inner_.Update(key, value, expected);
  Count("update", r);
  return r;
}

absl::StatusOr<datastore::Revision> CountingDatastore::Delete(std::string_view key,
                                                              datastore::Revision expected) {
  auto r = inner_.Delete(key, expected);
  Count("delete", r);
  return r;
}

// One multi-key write; a refused precondition is a CAS conflict like a refused Update.
absl::StatusOr<std::vector<datastore::Revision>> CountingDatastore::Commit(
    const std::vector<datastore::TxnOp>& ops) {
  auto r = inner_.Commit(ops);
  Count("commit", r);
  return r;
}

absl::StatusOr<std::unique_ptr<datastore::Watch>> CountingDatastore::WatchPrefix(
    std::string_view prefix, datastore::Revision after) {
  return inner_.WatchPrefix(prefix, after);
}

absl::Status CountingDatastore::Compact(datastore::Revision revision) {
  return inner_.Compact(revision);
}

absl::StatusOr<datastore::Revision> CountingDatastore::CurrentRevision() {
  auto r = inner_.CurrentRevision();
  Count("get", r);
  return r;
}

std::string CountingDatastore::Describe() const { return inner_.Describe(); }

}  // namespace calico::ipamd::service
