#include "tests/support/netns/test_netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace calico::testing {
namespace {

constexpr char kPrefix[] = "cct-";
constexpr size_t kMaxTagLength = 16;

std::string SanitizeTag(std::string_view tag) {
  std::string out;
  for (char c : tag) {
    if (out.size() >= kMaxTagLength) break;
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
    out.push_back(keep ? c : '_');
  }
  return out.empty() ? "t" : out;
}

// The pid in "cct-<pid>-...", or -1.
pid_t OwnerPid(std::string_view name) {
  const std::string_view prefix(kPrefix);
  if (name.substr(0, prefix.size()) != prefix) return -1;
  name.remove_prefix(prefix.size());
  pid_t pid = -1;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
  if (ec != std::errc() || end == name.data() || end == name.data() + name.size() || *end != '-') {
    return -1;
  }
  return pid;
}

}  // namespace

bool IsRoot() { return geteuid() == 0; }

ExecResult RunCommand(const std::vector<std::string>& argv) {
  ExecResult result;
  if (argv.empty()) return result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    result.output = absl::StrCat("pipe: ", std::strerror(errno));
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, argp[0], &actions, nullptr, argp.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (spawned != 0) {
    close(fds[0]);
    result.status = 127;
    result.output = absl::StrCat(argv[0], ": ", std::strerror(spawned));
    return result;
  }
  char buf[4096];
  while (true) {
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

int RemoveStaleTestNetns() {
  DIR* dir = opendir("/run/netns");
  if (dir == nullptr) return 0;
  std::vector<std::string> stale;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    const pid_t pid = OwnerPid(name);
    if (pid <= 0 || pid == getpid()) continue;
    // Only a process that is gone lets go of its namespaces; EPERM means it is alive.
    if (kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  closedir(dir);
  int removed = 0;
  for (const std::string& name : stale) {
    if (RunCommand({"ip", "netns", "del", name}).status == 0) ++removed;
  }
  return removed;
}

absl::StatusOr<TestNetns> TestNetns::Create(std::string_view tag) {
  if (!IsRoot()) {
    return absl::FailedPreconditionError("TestNetns needs root (ip netns add); run as root");
  }
  static std::once_flag cleaned;
  std::call_once(cleaned, [] { RemoveStaleTestNetns(); });
  static std::atomic<int> counter{0};
  std::string name = absl::StrCat(kPrefix, getpid(), "-", counter++, "-", SanitizeTag(tag));
  ExecResult added = RunCommand({"ip", "netns", "add", name});
  if (added.status != 0) {
    return absl::InternalError(
        absl::StrCat("ip netns add ", name, ": exit ", added.status, ": ", added.output));
  }
  return TestNetns(std::move(name));
}

TestNetns::TestNetns(TestNetns&& other) noexcept : name_(std::move(other.name_)) {
  other.name_.clear();
}

TestNetns& TestNetns::operator=(TestNetns&& other) noexcept {
  if (this != &other) {
    Remove();
    name_ = std::move(other.name_);
    other.name_.clear();
  }
  return *this;
}

TestNetns::~TestNetns() { Remove(); }

void TestNetns::Remove() {
  if (name_.empty()) return;
  ExecResult deleted = RunCommand({"ip", "netns", "del", name_});
  if (deleted.status != 0) {
    std::fprintf(stderr, "TestNetns: ip netns del %s: exit %d: %s\n", name_.c_str(),
                 deleted.status, deleted.output.c_str());
  }
  name_.clear();
}

ExecResult TestNetns::Exec(std::string_view shell_cmd) const {
  return RunCommand({"ip", "netns", "exec", name_, "sh", "-c", std::string(shell_cmd)});
}

}  // namespace calico::testing
