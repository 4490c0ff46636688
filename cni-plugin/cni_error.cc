#include "cni-plugin/cni_error.h"

#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "common/base/status_macros.h"

namespace calico::cni {
namespace {

// Payload keys: the code travels as decimal text so it survives any Status copy or Annotate.
constexpr char kCodeUrl[] = "calico.cni/code";
constexpr char kDetailsUrl[] = "calico.cni/details";

absl::StatusCode AbslCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUnknownContainer:
      return absl::StatusCode::kNotFound;
    case ErrorCode::kIoFailure:
      return absl::StatusCode::kDataLoss;
    case ErrorCode::kTryAgainLater:
    case ErrorCode::kPluginNotAvailable:
    case ErrorCode::kLimitedConnectivity:
      return absl::StatusCode::kUnavailable;
    case ErrorCode::kUnsupportedField:
      return absl::StatusCode::kUnimplemented;
    case ErrorCode::kInternal:
      return absl::StatusCode::kInternal;
    default:
      return absl::StatusCode::kInvalidArgument;
  }
}

}  // namespace

absl::Status MakeCniError(ErrorCode code, std::string_view msg, std::string_view details) {
  absl::Status status(AbslCodeFor(code), ToAbsl(msg));
  status.SetPayload(kCodeUrl, absl::Cord(std::to_string(static_cast<int>(code))));
  if (!details.empty()) status.SetPayload(kDetailsUrl, absl::Cord(ToAbsl(details)));
  return status;
}

ErrorCode CniCodeOf(const absl::Status& status) {
  if (auto payload = status.GetPayload(kCodeUrl)) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*payload), &code)) return static_cast<ErrorCode>(code);
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return ErrorCode::kInvalidNetworkConfig;
    // A daemon that is down or busy, or a lost compare-and-swap race: the runtime may retry.
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
      return ErrorCode::kTryAgainLater;
    case absl::StatusCode::kNotFound:
      return ErrorCode::kUnknownContainer;
    case absl::StatusCode::kUnimplemented:
      return ErrorCode::kUnsupportedField;
    case absl::StatusCode::kDataLoss:
      return ErrorCode::kIoFailure;
    default:
      return ErrorCode::kInternal;
  }
}

CniError ToCniError(const absl::Status& status) {
  CniError error;
  error.code = CniCodeOf(status);
  error.msg = ToStd(status.message());
  if (auto details = status.GetPayload(kDetailsUrl)) error.details = std::string(*details);
  return error;
}

std::string FormatCniError(const CniError& error, std::string_view cni_version) {
  nlohmann::ordered_json j;
  j["cniVersion"] = std::string(cni_version);
  j["code"] = static_cast<int>(error.code);
  j["msg"] = error.msg;
  if (!error.details.empty()) j["details"] = error.details;
  return j.dump();
}

}  // namespace calico::cni
