#include "common/base/daemon_main.h"

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"

namespace calico {

int DaemonMain(int argc, char** argv, std::string_view component, std::string_view usage,
               absl::Status (*run)(const sigset_t& signals)) {
  const sigset_t signals = BlockShutdownSignals();
  log::SetComponent(std::string(component));
  absl::SetProgramUsageMessage(std::string(usage));
  std::vector<std::string> storage;
  std::vector<char*> args = UndashFlags(argc, argv, storage);
  absl::ParseCommandLine(static_cast<int>(args.size()) - 1, args.data());
  absl::Status status = run(signals);
  if (!status.ok()) {
    log::Error("startup_failed",
               {{"error", ToStd(status.message())}, {"code", absl::StatusCodeToString(status.code())}});
    return 1;
  }
  return 0;
}

}  // namespace calico
