#include "common/base/errno_status.h"

#include "common/base/status_macros.h"

#include <catch2/catch.hpp>

namespace calico {
namespace {

TEST_CASE("ErrnoError maps errno to a code and names the object", "[unit][errors]") {
  absl::Status s = ErrnoError(ENODEV, "RTM_NEWROUTE 10.65.0.3/32 dev cali1");
  REQUIRE(s.code() == absl::StatusCode::kNotFound);
  REQUIRE(ToStd(s.message()) == "RTM_NEWROUTE 10.65.0.3/32 dev cali1: No such device (ENODEV)");
  REQUIRE(ErrnoError(EEXIST, "x").code() == absl::StatusCode::kAlreadyExists);
  REQUIRE(ErrnoError(ESRCH, "x").code() == absl::StatusCode::kNotFound);
  REQUIRE(ErrnoError(ENOENT, "x").code() == absl::StatusCode::kNotFound);
  REQUIRE(ErrnoError(EPERM, "x").code() == absl::StatusCode::kPermissionDenied);
  REQUIRE(ErrnoError(EACCES, "x").code() == absl::StatusCode::kPermissionDenied);
  REQUIRE(ErrnoError(ENOBUFS, "x").code() == absl::StatusCode::kUnavailable);
  REQUIRE(ErrnoError(EBUSY, "x").code() == absl::StatusCode::kUnavailable);
  REQUIRE(ErrnoError(EAGAIN, "x").code() == absl::StatusCode::kUnavailable);
  REQUIRE(ErrnoError(EINVAL, "x").code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(ErrnoError(ENETUNREACH, "x").code() == absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace calico
