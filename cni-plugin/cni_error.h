#pragma once
// CNI error results: the {cniVersion, code, msg, details} object a plugin prints on stdout with a
// non-zero exit. Inside the plugin everything is absl::Status; a Status may carry the exact CNI code
// as a payload (MakeCniError), otherwise the code is derived from the absl code at the edge.

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace calico::cni {

// Codes from the CNI spec ("Error codes"); 1-99 are reserved by the spec, 100+ are ours.
enum class ErrorCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnvironment = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidNetworkConfig = 7,
  kTryAgainLater = 11,
  // STATUS (spec 1.1).
  kPluginNotAvailable = 50,
  kLimitedConnectivity = 51,
  // libcni's ErrInternal: what the reference plugins print for errors with no spec code.
  kInternal = 999,
};

struct CniError {
  ErrorCode code = ErrorCode::kInternal;
  std::string msg;
  std::string details;  // omitted from the JSON when empty (as upstream's omitempty)
};

// A Status whose CNI code is fixed by the caller (e.g. kIncompatibleVersion, which no absl code
// implies). The absl code is chosen so that code-based handling elsewhere still makes sense.
absl::Status MakeCniError(ErrorCode code, std::string_view msg, std::string_view details = "");

// The CNI code of a non-OK status: its payload if MakeCniError set one, else by absl code
// (InvalidArgument/FailedPrecondition/OutOfRange → 7, Unavailable/DeadlineExceeded/Aborted → 11,
// NotFound → 3, Unimplemented → 2, DataLoss → 5, anything else → 999).
ErrorCode CniCodeOf(const absl::Status& status);

// msg = the status message, details = the payload's details if any.
CniError ToCniError(const absl::Status& status);

// The JSON printed on stdout. cni_version is the request's version, or the latest when the
// config could not be read far enough to know it.
std::string FormatCniError(const CniError& error, std::string_view cni_version);

}  // namespace calico::cni
