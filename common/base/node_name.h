#pragma once
// This node's name for a daemon: its --node flag, else $NODENAME (as upstream's calico/node),
// else the hostname. One rule for every daemon, so they agree on which node they serve.

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"

namespace calico {

inline absl::StatusOr<std::string> ResolveNodeName(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  if (const char* env = std::getenv("NODENAME"); env != nullptr && *env) return std::string(env);
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    return absl::InvalidArgumentError("no --node, no $NODENAME and no hostname");
  }
  return std::string(host);
}

}  // namespace calico
