#pragma once
// tests/support/netns: named network namespaces for tests that program a real kernel.
// Owns: the namespaces it creates, named cct-<pid>-<n>-<tag>, and nothing else. Every mutation a
// kernel test makes happens inside one of these; the test's own namespace (the host's network)
// is never written. Namespaces are removed with `ip netns del` in the destructor, also when a
// test failed half-way; leftovers of a crashed run (their pid is gone) are removed by the next
// Create. No process is ever killed, and nothing is matched by name but our own prefix.
// Needs root (CAP_SYS_ADMIN for `ip netns add`).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace calico::testing {

bool IsRoot();

struct ExecResult {
  int status = -1;     // exit status; 128 + signal when killed; 127 when it could not start
  std::string output;  // stdout and stderr, interleaved
};

// Runs `argv` (argv[0] looked up in PATH), waits for it and captures its output.
ExecResult RunCommand(const std::vector<std::string>& argv);

class TestNetns {
 public:
  // A fresh namespace (only "lo", down). `tag` names it for humans: [A-Za-z0-9_-], shortened.
  static absl::StatusOr<TestNetns> Create(std::string_view tag);

  TestNetns(TestNetns&& other) noexcept;
  TestNetns& operator=(TestNetns&& other) noexcept;
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;
  ~TestNetns();

  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }  // for setns / NetnsRef

  // `ip netns exec <name> sh -c <shell_cmd>`.
  ExecResult Exec(std::string_view shell_cmd) const;

 private:
  explicit TestNetns(std::string name) : name_(std::move(name)) {}
  void Remove();

  std::string name_;  // empty once moved from
};

// Removes cct-<pid>-* namespaces whose process no longer exists; returns how many it removed.
// Create calls it once per process.
int RemoveStaleTestNetns();

}  // namespace calico::testing
