#pragma once
// Kernel and libc errors as absl::Status: the code says what a caller can do about it (retry,
// treat as already done, give up), the message names the operation and the object.

#include <cerrno>
#include <string>
#include <string_view>

#include <string.h>  // strerrordesc_np / strerrorname_np (glibc): thread-safe, unlike strerror

#include "absl/status/status.h"

namespace calico {

inline absl::StatusCode ErrnoToStatusCode(int error) {
  switch (error) {
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case ENOENT:
    case ESRCH:
    case ENODEV:
      return absl::StatusCode::kNotFound;
    case EPERM:
    case EACCES:
      return absl::StatusCode::kPermissionDenied;
    // Transient: the kernel or a socket buffer was busy; the same request can succeed later.
    case EBUSY:
    case EAGAIN:
    case ENOBUFS:
      return absl::StatusCode::kUnavailable;
    case EINVAL:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kInternal;
  }
}

// ErrnoError(ENODEV, "RTM_NEWROUTE 10.65.0.3/32 dev cali1a2b3c4d5e6")
//   → NotFound "RTM_NEWROUTE 10.65.0.3/32 dev cali1a2b3c4d5e6: No such device (ENODEV)".
inline absl::Status ErrnoError(int error, std::string_view context) {
  std::string message(context);
  message += ": ";
  const char* desc = strerrordesc_np(error);
  const char* name = strerrorname_np(error);
  message += desc != nullptr ? desc : "unknown error";
  message += " (";
  message += name != nullptr ? name : ("errno " + std::to_string(error)).c_str();
  message += ")";
  return absl::Status(ErrnoToStatusCode(error), message);
}

}  // namespace calico
