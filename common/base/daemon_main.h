#pragma once
// What every daemon's main() does the same way before parsing flags.

#include <pthread.h>
#include <signal.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace calico {

// Blocks SIGTERM and SIGINT before any thread exists (gRPC, datastore clients, HTTP), so they
// reach only the main thread's sigwait() and never interrupt a worker; ignores SIGPIPE.
inline sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

// absl flag names are C++ identifiers; accept the conventional dashed spelling too
// (--http-listen, --leak-grace) by rewriting the name part of each long option. Returns an
// argv (null-terminated) pointing into `storage`.
inline std::vector<char*> UndashFlags(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  for (size_t i = 1; i < storage.size(); ++i) {
    std::string& a = storage[i];
    if (a == "--") break;
    if (a.rfind("--", 0) != 0) continue;
    size_t end = a.find('=');
    if (end == std::string::npos) end = a.size();
    for (size_t j = 2; j < end; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
  }
  std::vector<char*> out;
  for (std::string& s : storage) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// The whole main() of a daemon: blocks the shutdown signals, names the log component, parses
// flags (dashed or not), runs `run` and turns its failure into one `startup_failed` line and
// exit 1 (library calico_daemon_main).
int DaemonMain(int argc, char** argv, std::string_view component, std::string_view usage,
               absl::Status (*run)(const sigset_t& signals));

}  // namespace calico
