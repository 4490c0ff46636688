// CNI error JSON and the absl::Status → CNI code mapping.

#include <catch2/catch.hpp>

#include "cni-plugin/cni_error.h"
#include "common/base/status_macros.h"

namespace calico::cni {
namespace {

TEST_CASE("error JSON in the spec's field order details omitted when empty", "[cni][error]") {
  CHECK(FormatCniError({ErrorCode::kInvalidNetworkConfig, "mtu: must be an integer", ""}, "1.0.0") ==
        R"({"cniVersion":"1.0.0","code":7,"msg":"mtu: must be an integer"})");
  CHECK(FormatCniError({ErrorCode::kTryAgainLater, "ipamd unreachable", "connect: no such file"}, "0.3.1") ==
        R"({"cniVersion":"0.3.1","code":11,"msg":"ipamd unreachable","details":"connect: no such file"})");
}

TEST_CASE("an explicit CNI code survives Annotate and wins over the absl code", "[cni][error]") {
  absl::Status s = MakeCniError(ErrorCode::kIncompatibleVersion, "cniVersion: \"9.9.9\"", "plugin supports 1.0.0");
  CHECK(CniCodeOf(s) == ErrorCode::kIncompatibleVersion);
  absl::Status annotated = Annotate(s, "ADD");
  CniError e = ToCniError(annotated);
  CHECK(e.code == ErrorCode::kIncompatibleVersion);
  CHECK(e.msg == "ADD: cniVersion: \"9.9.9\"");
  CHECK(e.details == "plugin supports 1.0.0");
  CHECK(CniCodeOf(MakeCniError(ErrorCode::kTryAgainLater, "x")) == ErrorCode::kTryAgainLater);
  CHECK(MakeCniError(ErrorCode::kTryAgainLater, "x").code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("absl codes map to CNI codes", "[cni][error]") {
  CHECK(CniCodeOf(absl::InvalidArgumentError("x")) == ErrorCode::kInvalidNetworkConfig);
  CHECK(CniCodeOf(absl::FailedPreconditionError("x")) == ErrorCode::kInvalidNetworkConfig);
  CHECK(CniCodeOf(absl::UnavailableError("x")) == ErrorCode::kTryAgainLater);
  CHECK(CniCodeOf(absl::DeadlineExceededError("x")) == ErrorCode::kTryAgainLater);
  CHECK(CniCodeOf(absl::AbortedError("x")) == ErrorCode::kTryAgainLater);
  CHECK(CniCodeOf(absl::NotFoundError("x")) == ErrorCode::kUnknownContainer);
  CHECK(CniCodeOf(absl::UnimplementedError("x")) == ErrorCode::kUnsupportedField);
  CHECK(CniCodeOf(absl::DataLossError("x")) == ErrorCode::kIoFailure);
  CHECK(CniCodeOf(absl::InternalError("x")) == ErrorCode::kInternal);
  CHECK(CniCodeOf(absl::ResourceExhaustedError("pool full")) == ErrorCode::kInternal);
}

}  // namespace
}  // namespace calico::cni
