#pragma once
// tests/integration/ipamd: the real ipamd binary as a child process.
// Owns: its child (killed by pid with SIGKILL and reaped in the destructor, also when a
// REQUIRE failed; PR_SET_PDEATHSIG kills it if the test process dies) and nothing else.

#include <grpcpp/channel.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace calico::ipamd::testing {

class IpamdProcess {
 public:
  // `dir`: private temp dir for the socket and log. `env` is added to the test's environment
  // minus every datastore/pool variable.
  IpamdProcess(std::string node, std::string dir, std::vector<std::string> args,
               std::map<std::string, std::string> env);
  ~IpamdProcess();
  IpamdProcess(const IpamdProcess&) = delete;
  IpamdProcess& operator=(const IpamdProcess&) = delete;

  // Spawns and waits (up to `timeout`) until grpc health reports SERVING. On failure the
  // status carries the log tail.
  absl::Status Start(absl::Duration timeout = absl::Seconds(30));
  // Spawns without waiting (startup-failure tests).
  void Spawn();
  // Sends `sig` to the pid and reaps; returns the exit status (128+signal if killed), or -1
  // if it did not exit within `timeout` (then it is SIGKILLed).
  int Signal(int sig, absl::Duration timeout = absl::Seconds(10));
  // Waits for exit without signalling; -1 on timeout.
  int Wait(absl::Duration timeout);
  bool running() const { return pid_ > 0; }

  const std::string& socket() const { return socket_; }
  const std::string& node() const { return node_; }
  std::string LogTail(size_t max_bytes = 3000) const;
  std::string Log() const;

 private:
  std::string node_;
  std::string dir_;
  std::string socket_;
  std::string log_;
  std::vector<std::string> args_;
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
};

// A channel that reconnects quickly after the daemon restarts (gRPC's default backoff starts
// at 1 s and grows to 2 min).
std::shared_ptr<grpc::Channel> FastReconnectChannel(const std::string& socket);

// Whether grpc health of `socket` reports SERVING within `timeout`.
bool Serving(const std::string& socket, absl::Duration timeout);

// A private temp dir, removed recursively in the destructor.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A free loopback TCP port (bound to 0 and closed).
int FreeLoopbackPort();

}  // namespace calico::ipamd::testing
