#pragma once
// The only two error-propagation macros of the project (see STYLE.md: Errors).

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"

#define CALICO_STATUS_CONCAT_INNER_(a, b) a##b
#define CALICO_STATUS_CONCAT_(a, b) CALICO_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status calico_status_ = (expr);      \
    if (!calico_status_.ok()) return calico_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  CALICO_ASSIGN_OR_RETURN_IMPL_(CALICO_STATUS_CONCAT_(calico_statusor_, __LINE__), lhs, expr)

#define CALICO_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

namespace calico {

// Prefixes a status message with context, keeping its code and payloads (e.g. a CNI error
// code attached deeper down): "reading /x: <original>".
inline absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  std::string message(context);
  message += ": ";
  message += std::string(status.message().data(), status.message().size());
  absl::Status out(status.code(), message);
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

// Debian's absl::string_view is not std::string_view (ABSL_OPTION_USE_STD_STRING_VIEW=0).
inline std::string ToStd(absl::string_view s) { return std::string(s.data(), s.size()); }
inline absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace calico
