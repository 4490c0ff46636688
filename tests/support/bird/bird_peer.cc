#include "tests/support/bird/bird_peer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"

extern char** environ;

namespace calico::testing {
namespace {

constexpr char kBirdBinary[] = "/usr/sbin/bird";
constexpr absl::Duration kReadyTimeout = absl::Seconds(10);
constexpr absl::Duration kStopGrace = absl::Seconds(2);
constexpr absl::Duration kPollInterval = absl::Milliseconds(50);

absl::Status ErrnoStatus(std::string_view what) {
  return absl::InternalError(absl::StrCat(std::string(what), ": ", std::strerror(errno)));
}

bool IsIp(const std::string& text, int family) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(family, text.c_str(), buf) == 1;
}

// A family from an address literal: AF_INET, AF_INET6 or 0.
int FamilyOf(const std::string& text) {
  if (IsIp(text, AF_INET)) return AF_INET;
  if (IsIp(text, AF_INET6)) return AF_INET6;
  return 0;
}

bool IsName(std::string_view name) {
  if (name.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// A static route entry: "<prefix>" or "<prefix> <BIRD route syntax>".
absl::StatusOr<std::string> StaticRoute(const std::string& entry, int family) {
  if (entry.find_first_of(";{}\"\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("static route \"", entry, "\": one route, no ; { } \" or newline"));
  }
  const std::string trimmed(absl::StripAsciiWhitespace(entry));
  const size_t space = trimmed.find(' ');
  const std::string prefix = trimmed.substr(0, space);
  const size_t slash = prefix.find('/');
  if (slash == std::string::npos || FamilyOf(prefix.substr(0, slash)) != family) {
    return absl::InvalidArgumentError(absl::StrCat("static route \"", entry, "\": not an ",
                                                   family == AF_INET ? "IPv4" : "IPv6", " prefix"));
  }
  if (space == std::string::npos) return absl::StrCat("route ", prefix, " unreachable;");
  return absl::StrCat("route ", trimmed, ";");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::filesystem::path TempBase() {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  return ec ? std::filesystem::path("/tmp") : base;
}

// Removes calico-bird-<pid>-* directories whose process is gone (a test killed by a ctest
// timeout: PR_SET_PDEATHSIG took its birds, nothing took their directories).
void RemoveStaleTempDirs() {
  const std::string prefix = "calico-bird-";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(TempBase(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    int pid = 0;
    if (!absl::SimpleAtoi(absl::string_view(rest).substr(0, rest.find('-')), &pid) || pid <= 0 ||
        pid == getpid()) {
      continue;
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      std::filesystem::remove_all(entry.path(), ignored);
    }
  }
}

absl::StatusOr<std::string> MakeTempDir() {
  static std::once_flag cleaned;
  std::call_once(cleaned, RemoveStaleTempDirs);
  const std::filesystem::path base = TempBase();
  // calico-bird-<pid>-*: a test can check that its own process left none behind.
  std::string pattern = (base / absl::StrCat("calico-bird-", getpid(), "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) return ErrnoStatus("mkdtemp " + pattern);
  return pattern;
}

std::string Quoted(std::string_view name) { return absl::StrCat("\"", std::string(name), "\""); }

absl::Status CheckName(std::string_view name) {
  if (IsName(name)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("\"", std::string(name), "\" is not a BIRD protocol name"));
}

// "key:   value" → "value" when `text` (leading blanks ignored) starts with `key`.
std::optional<std::string> Field(const std::string& text, std::string_view key) {
  const absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(text);
  if (!absl::StartsWith(trimmed, ToAbsl(key))) return std::nullopt;
  return std::string(absl::StripAsciiWhitespace(trimmed.substr(key.size())));
}

// ---- control socket ----

// Reads lines from `fd` into `reply` until its last line ("dddd text"). `pending` keeps bytes
// read past that line (BIRD never sends any, but a reader must not lose them).
absl::Status ReadReply(int fd, std::string& pending, BirdReply& reply) {
  int current = 0;
  while (true) {
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      const bool coded = line.size() >= 5 &&
                         std::all_of(line.begin(), line.begin() + 4,
                                     [](char c) { return c >= '0' && c <= '9'; }) &&
                         (line[4] == ' ' || line[4] == '-');
      if (coded) {
        absl::SimpleAtoi(absl::string_view(line.data(), 4), &current);
        reply.lines.emplace_back(current, line.substr(5));
        if (line[4] == ' ') {
          reply.code = current;
          return absl::OkStatus();
        }
      } else if (!line.empty() && line[0] == '+') {
        continue;  // an asynchronous message (`echo`), not part of the reply
      } else {
        // " text": more of the previous code's block.
        reply.lines.emplace_back(current, !line.empty() && line[0] == ' ' ? line.substr(1) : line);
      }
    }
    char buf[16384];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return absl::DeadlineExceededError("BIRD control socket: no complete reply in time");
    }
    if (n < 0) return ErrnoStatus("BIRD control socket: recv");
    if (n == 0) return absl::UnavailableError("BIRD control socket: closed mid-reply");
    pending.append(buf, static_cast<size_t>(n));
  }
}

absl::Status ReplyStatus(const BirdReply& reply, std::string_view command) {
  if (reply.code < 8000) return absl::OkStatus();
  const std::string message =
      absl::StrCat("bird: `", std::string(command), "`: ", reply.code, " ", reply.Text());
  if (reply.code == 8001 || reply.code == 8003) return absl::NotFoundError(message);
  if (reply.code == 8002 || reply.code >= 9000) return absl::InvalidArgumentError(message);
  return absl::FailedPreconditionError(message);
}

}  // namespace

// ---- config ----

absl::StatusOr<std::string> RenderBirdConfig(const BirdPeerConfig& config) {
  if (!IsIp(config.router_id, AF_INET)) {
    return absl::InvalidArgumentError(
        absl::StrCat("router id \"", config.router_id, "\" is not an IPv4 address"));
  }
  if (config.asn == 0) return absl::InvalidArgumentError("local AS 0");
  const BirdTimers& t = config.timers;
  std::string out = absl::StrCat(
      "# Written by tests/support/bird (BirdPeer).\n"
      "log stderr all;\n"
      "debug protocols { states, events };\n"
      "router id ",
      config.router_id,
      ";\n\n"
      "protocol device device1 {}\n");
  const std::string kernel_export =
      config.import_to_kernel ? "export where source = RTS_BGP;" : "export none;";
  for (const char* family : {"4", "6"}) {
    absl::StrAppend(&out, "protocol kernel kernel", family, " { ipv", family, " { import none; ",
                    kernel_export, " }; }\n");
  }
  for (int family : {AF_INET, AF_INET6}) {
    const char* v = family == AF_INET ? "4" : "6";
    absl::StrAppend(&out, "protocol static static", v, " {\n  ipv", v, ";\n");
    for (const std::string& entry :
         family == AF_INET ? config.static_routes_v4 : config.static_routes_v6) {
      ASSIGN_OR_RETURN(std::string route, StaticRoute(entry, family));
      absl::StrAppend(&out, "  ", route, "\n");
    }
    absl::StrAppend(&out, "}\n");
  }
  const char* gr = config.graceful_restart == BirdGracefulRestart::kOn    ? "on"
                   : config.graceful_restart == BirdGracefulRestart::kOff ? "off"
                                                                          : "aware";
  std::set<std::string> names(std::begin(kBirdFixedProtocols), std::end(kBirdFixedProtocols));
  for (size_t i = 0; i < config.neighbors.size(); ++i) {
    const BirdNeighbor& n = config.neighbors[i];
    const std::string name = n.name.empty() ? absl::StrCat("peer", i) : n.name;
    RETURN_IF_ERROR(CheckName(name));
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("protocol name \"", name, "\" used twice"));
    }
    const int family = FamilyOf(n.address);
    if (family == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": neighbor address \"", n.address, "\" is not an IP address"));
    }
    if (n.asn == 0) return absl::InvalidArgumentError(absl::StrCat(name, ": neighbor AS 0"));
    if (n.password.find_first_of("\"\\\n") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": password with \", \\ or newline"));
    }
    if (!n.source_address.empty() && FamilyOf(n.source_address) != family) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": source address \"", n.source_address,
                                                     "\" is not of the neighbor's family"));
    }
    const char* v = family == AF_INET ? "4" : "6";
    absl::StrAppend(&out, "\nprotocol bgp ", name, " {\n", "  local as ", config.asn, ";\n",
                    "  neighbor ", n.address, " as ", n.asn, ";\n");
    if (!n.source_address.empty())
      absl::StrAppend(&out, "  source address ", n.source_address, ";\n");
    if (n.passive) absl::StrAppend(&out, "  passive on;\n");
    if (!n.password.empty()) absl::StrAppend(&out, "  password \"", n.password, "\";\n");
    if (n.rr_client) absl::StrAppend(&out, "  rr client;\n");
    const int hold = n.hold_time.value_or(t.hold_time);
    absl::StrAppend(&out, "  hold time ", hold, ";\n  startup hold time ", t.startup_hold_time,
                    ";\n");
    if (t.keepalive_time > 0) absl::StrAppend(&out, "  keepalive time ", t.keepalive_time, ";\n");
    absl::StrAppend(&out, "  connect delay time ", t.connect_delay_time, ";\n",
                    "  connect retry time ", t.connect_retry_time, ";\n", "  error wait time ",
                    t.error_wait_min, ", ", t.error_wait_max, ";\n", "  error forget time ",
                    t.error_forget_time, ";\n", "  graceful restart ", gr, ";\n");
    std::string export_filter;
    switch (n.export_routes) {
      case BirdExport::kStatic:
        export_filter = absl::StrCat("where proto = \"static", v, "\"");
        break;
      case BirdExport::kAll:
        export_filter = "all";
        break;
      case BirdExport::kNone:
        export_filter = "none";
        break;
    }
    absl::StrAppend(&out, "  ipv", v, " { import all; export ", export_filter, "; };\n");
    if (!n.extra_config.empty()) absl::StrAppend(&out, "  ", n.extra_config, "\n");
    absl::StrAppend(&out, "}\n");
  }
  if (!config.extra_config.empty()) absl::StrAppend(&out, "\n", config.extra_config, "\n");
  return out;
}

// ---- control socket ----

std::string BirdReply::Text() const {
  std::vector<std::string> texts;
  for (const auto& [code, text] : lines) texts.push_back(text);
  return absl::StrJoin(texts, "\n");
}

absl::StatusOr<BirdReply> BirdCommand(const std::string& socket_path, std::string_view command,
                                      absl::Duration timeout) {
  if (command.find('\n') != std::string_view::npos) {
    return absl::InvalidArgumentError("a BIRD command is one line");
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", socket_path));
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("socket");
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status status =
        absl::UnavailableError(absl::StrCat("connect ", socket_path, ": ", std::strerror(errno)));
    close(fd);
    return status;
  }
  std::string pending;
  BirdReply greeting;
  absl::Status status = ReadReply(fd, pending, greeting);  // "0001 BIRD 2.0.12 ready."
  BirdReply reply;
  if (status.ok()) {
    const std::string line = absl::StrCat(std::string(command), "\n");
    size_t sent = 0;
    while (status.ok() && sent < line.size()) {
      const ssize_t n = send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) status = ErrnoStatus("BIRD control socket: send");
      if (n > 0) sent += static_cast<size_t>(n);
    }
  }
  if (status.ok()) status = ReadReply(fd, pending, reply);
  close(fd);
  RETURN_IF_ERROR(status);
  RETURN_IF_ERROR(ReplyStatus(reply, command));
  return reply;
}

// ---- show route ----

std::vector<BirdRoute> ParseBirdRoutes(const BirdReply& reply) {
  std::vector<BirdRoute> routes;
  std::string table;
  std::string prefix;
  for (const auto& [code, text] : reply.lines) {
    if (code != 1007 && code != 1008 && code != 1012) continue;
    if (absl::StripAsciiWhitespace(text).empty()) continue;
    if (text.rfind("Table ", 0) == 0 && text.back() == ':') {
      table = text.substr(6, text.size() - 7);
      prefix.clear();
      continue;
    }
    if (text[0] == '\t') {  // "\tvia <addr> on <iface> [weight <w>]", "\tdev <iface>", attributes
      if (routes.empty()) continue;
      std::vector<std::string> words =
          absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
      BirdNextHop hop;
      if (words.size() >= 4 && words[0] == "via" && words[2] == "on") {
        hop.address = words[1];
        hop.interface = words[3];
      } else if (words.size() >= 2 && words[0] == "dev") {
        hop.interface = words[1];
      } else {
        continue;
      }
      routes.back().next_hops.push_back(std::move(hop));
      continue;
    }
    // "<prefix>  <type> [<proto> <since> ...] * (<pref>) [<bgp path>]"; a further route for
    // the same prefix leaves the prefix out (the line starts with blanks).
    std::string rest = text;
    if (text[0] != ' ') {
      const size_t end = text.find(' ');
      prefix = text.substr(0, end);
      rest = end == std::string::npos ? "" : text.substr(end);
    }
    const size_t open = rest.find('[');
    const size_t close = rest.find(']', open == std::string::npos ? 0 : open);
    if (prefix.empty() || open == std::string::npos || close == std::string::npos) continue;
    BirdRoute route;
    route.table = table;
    route.prefix = prefix;
    route.type = std::string(absl::StripAsciiWhitespace(rest.substr(0, open)));
    const std::string inside = rest.substr(open + 1, close - open - 1);
    route.protocol = inside.substr(0, inside.find(' '));
    const std::string after(absl::StripLeadingAsciiWhitespace(rest.substr(close + 1)));
    route.primary = !after.empty() && after[0] == '*';
    const size_t path_open = after.find('[');
    const size_t path_close = after.rfind(']');
    if (path_open != std::string::npos && path_close != std::string::npos &&
        path_close > path_open) {
      route.bgp_path = after.substr(path_open + 1, path_close - path_open - 1);
    }
    routes.push_back(std::move(route));
  }
  return routes;
}

// ---- BirdPeer ----

absl::StatusOr<std::unique_ptr<BirdPeer>> BirdPeer::Start(const TestNetns& ns,
                                                          BirdPeerConfig config) {
  if (access(kBirdBinary, X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(kBirdBinary, " missing: install Debian's bird2 (scripts/install-deps)"));
  }
  std::unique_ptr<BirdPeer> peer(new BirdPeer(ns.path(), BirdPeerConfig{}));
  ASSIGN_OR_RETURN(peer->dir_, MakeTempDir());
  if (peer->control_socket().size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control socket path too long (set a shorter TMPDIR): ", peer->control_socket()));
  }
  RETURN_IF_ERROR(peer->WriteCheckedConfig(config));
  peer->config_ = std::move(config);
  RETURN_IF_ERROR(peer->Spawn());
  RETURN_IF_ERROR(peer->WaitReady(kReadyTimeout));
  return peer;
}

BirdPeer::~BirdPeer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

absl::Status BirdPeer::WriteCheckedConfig(const BirdPeerConfig& config) {
  ASSIGN_OR_RETURN(const std::string text, RenderBirdConfig(config));
  const std::string candidate = dir_ + "/bird.conf.new";
  {
    std::ofstream out(candidate, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) return absl::InternalError("writing " + candidate);
  }
  // `bird -p` only parses: it opens no socket and touches no kernel state.
  const ExecResult parsed = RunCommand({kBirdBinary, "-p", "-c", candidate});
  if (parsed.status != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bird rejects the config: ", parsed.output, "--- bird.conf:\n", text));
  }
  if (std::rename(candidate.c_str(), config_path().c_str()) != 0) {
    return ErrnoStatus("rename to " + config_path());
  }
  return absl::OkStatus();
}

absl::Status BirdPeer::Spawn() {
  if (pid_ > 0) return absl::FailedPreconditionError("bird already running");
  std::vector<std::string> args = {
      kBirdBinary, "-f", "-c", config_path(), "-s", control_socket(), "-P", dir_ + "/bird.pid"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::remove((dir_ + "/bird.pid").c_str());  // the pid check must read this run's file
  const int ns_fd = open(netns_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns_fd < 0) return ErrnoStatus("opening " + netns_path_);
  const int log_fd = open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) {
    absl::Status status = ErrnoStatus("opening " + log_path() + " or /dev/null");
    for (int fd : {ns_fd, log_fd, null_fd}) {
      if (fd >= 0) close(fd);
    }
    return status;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Async-signal-safe calls only until execve: the parent may have other threads.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (setns(ns_fd, CLONE_NEWNET) != 0) _exit(126);
    setpgid(0, 0);  // a terminal's Ctrl-C goes to the test, which then stops bird
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  const int fork_errno = errno;
  for (int fd : {ns_fd, log_fd, null_fd}) close(fd);
  if (pid < 0) {
    errno = fork_errno;
    return ErrnoStatus("fork");
  }
  pid_ = pid;
  return absl::OkStatus();
}

absl::Status BirdPeer::WaitReady(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::UnavailableError("not tried");
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::string why = WIFEXITED(status) ? absl::StrCat("exit ", WEXITSTATUS(status))
                                          : absl::StrCat("signal ", WTERMSIG(status));
      if (WIFEXITED(status) && WEXITSTATUS(status) == 126) why += " (setns failed)";
      if (WIFEXITED(status) && WEXITSTATUS(status) == 127) why += " (execve failed)";
      return absl::UnavailableError(
          absl::StrCat("bird exited (", why, ") before answering; log tail:\n", LogTail(1500)));
    }
    last = BirdCommand(control_socket(), "show status", absl::Seconds(1)).status();
    if (last.ok()) {
      const std::string pidfile(absl::StripAsciiWhitespace(ReadFile(dir_ + "/bird.pid")));
      if (pidfile != std::to_string(pid_)) {
        return absl::InternalError(
            absl::StrCat("bird's pidfile says \"", pidfile, "\", we forked ", pid_));
      }
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return Timeout("bird's control socket to answer", timeout, last.ToString());
}

absl::Status BirdPeer::Timeout(std::string_view what, absl::Duration timeout,
                               std::string_view last) const {
  return absl::DeadlineExceededError(
      absl::StrCat("waited ", absl::FormatDuration(timeout), " for ", std::string(what),
                   "; last seen: ", std::string(last), "; bird log tail:\n", LogTail(2000)));
}

void BirdPeer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

void BirdPeer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + kStopGrace;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  Kill();
}

absl::Status BirdPeer::Relaunch() {
  Stop();
  RETURN_IF_ERROR(Spawn());
  return WaitReady(kReadyTimeout);
}

std::string BirdPeer::LogTail(size_t max_bytes) const {
  std::string text = ReadFile(log_path());
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  return text;
}

absl::StatusOr<BirdReply> BirdPeer::Command(std::string_view command) const {
  if (pid_ <= 0) return absl::FailedPreconditionError("bird is not running");
  return BirdCommand(control_socket(), command);
}

absl::StatusOr<BirdProtocolStatus> BirdPeer::Protocol(std::string_view name) const {
  RETURN_IF_ERROR(CheckName(name));
  ASSIGN_OR_RETURN(const BirdReply reply, Command("show protocols all " + Quoted(name)));
  BirdProtocolStatus status;
  for (const auto& [code, text] : reply.lines) {
    if (code == 1002 && status.name.empty()) {
      // "<name> <proto> <table> <state> <since> <info>"
      std::vector<std::string> columns = absl::StrSplit(text, ' ', absl::SkipEmpty());
      if (columns.size() < 4) continue;
      status.name = columns[0];
      status.proto = columns[1];
      status.state = columns[3];
    } else if (code == 1006) {
      if (auto v = Field(text, "BGP state:")) status.bgp_state = *v;
      if (auto v = Field(text, "Last error:")) status.last_error = *v;
    }
  }
  if (status.name.empty()) {
    return absl::InternalError("no protocol row in: " + reply.Text());
  }
  return status;
}

absl::StatusOr<std::string> BirdPeer::ProtocolState(std::string_view name) const {
  ASSIGN_OR_RETURN(const BirdProtocolStatus status, Protocol(name));
  return status.bgp_state.empty() ? status.state : status.bgp_state;
}

absl::Status BirdPeer::WaitProtocolState(std::string_view name, std::string_view state,
                                         absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last;
  while (true) {
    absl::StatusOr<BirdProtocolStatus> status = Protocol(name);
    if (!status.ok() && !absl::IsUnavailable(status.status())) return status.status();
    if (status.ok()) {
      const std::string& now = status->bgp_state.empty() ? status->state : status->bgp_state;
      if (now == state) return absl::OkStatus();
      last = absl::StrCat(now, status->last_error.empty() ? "" : " (", status->last_error,
                          status->last_error.empty() ? "" : ")");
    } else {
      last = status.status().ToString();
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(kPollInterval);
  }
  return Timeout(absl::StrCat(std::string(name), " to be ", std::string(state)), timeout, last);
}

absl::Status BirdPeer::WaitEstablished(std::string_view name, absl::Duration timeout) const {
  return WaitProtocolState(name, "Established", timeout);
}

absl::Status BirdPeer::WaitNotEstablished(std::string_view name, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    ASSIGN_OR_RETURN(const std::string state, ProtocolState(name));
    if (state != "Established") return absl::OkStatus();
    if (absl::Now() >= deadline) break;
    absl::SleepFor(kPollInterval);
  }
  return Timeout(absl::StrCat(std::string(name), " to leave Established"), timeout, "Established");
}

absl::StatusOr<std::vector<BirdRoute>> BirdPeer::Routes(std::string_view filter) const {
  const std::string command =
      filter.empty() ? "show route" : absl::StrCat("show route ", std::string(filter));
  absl::StatusOr<BirdReply> reply = Command(command);
  if (absl::IsNotFound(reply.status())) return std::vector<BirdRoute>{};  // 8001
  if (!reply.ok()) return reply.status();
  return ParseBirdRoutes(*reply);
}

absl::StatusOr<int> BirdPeer::RouteCount(std::string_view filter) const {
  // One "<shown> of <total> routes for <n> networks in table <t>" line per table (and a
  // "Total: ..." line when there are several, which is not summed).
  const std::string command = filter.empty()
                                  ? "show route count"
                                  : absl::StrCat("show route ", std::string(filter), " count");
  ASSIGN_OR_RETURN(const BirdReply reply, Command(command));
  int total = 0;
  for (const auto& [code, text] : reply.lines) {
    if (text.find(" in table ") == std::string::npos) continue;
    int shown = 0;
    if (!absl::SimpleAtoi(text.substr(0, text.find(' ')), &shown)) {
      return absl::InternalError("unexpected count line: " + text);
    }
    total += shown;
  }
  return total;
}

absl::StatusOr<BirdRoute> BirdPeer::WaitRoute(std::string_view prefix, absl::Duration timeout,
                                              std::string_view protocol) const {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "no route";
  while (true) {
    ASSIGN_OR_RETURN(const std::vector<BirdRoute> routes, Routes(prefix));
    for (const BirdRoute& r : routes) {
      if (protocol.empty() ? r.primary : r.protocol == protocol) return r;
    }
    if (!routes.empty()) {
      last = absl::StrCat(routes.size(), " route(s), first from ", routes.front().protocol);
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(kPollInterval);
  }
  return Timeout(absl::StrCat("a route for ", std::string(prefix), protocol.empty() ? "" : " from ",
                              std::string(protocol)),
                 timeout, last);
}

absl::Status BirdPeer::WaitNoRoute(std::string_view prefix, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last;
  while (true) {
    ASSIGN_OR_RETURN(const std::vector<BirdRoute> routes, Routes(prefix));
    if (routes.empty()) return absl::OkStatus();
    last = absl::StrCat(routes.size(), " route(s), first from ", routes.front().protocol, " via ",
                        routes.front().next_hop());
    if (absl::Now() >= deadline) break;
    absl::SleepFor(kPollInterval);
  }
  return Timeout(absl::StrCat("no route for ", std::string(prefix)), timeout, last);
}

absl::Status BirdPeer::Reconfigure(BirdPeerConfig config) {
  RETURN_IF_ERROR(WriteCheckedConfig(config));
  config_ = std::move(config);
  if (pid_ <= 0) return absl::OkStatus();  // for the next Relaunch()
  // 0003 Reconfigured, 0004 Reconfiguration in progress (protocols restarting), 0019 nothing
  // to do; 8002 a config error.
  RETURN_IF_ERROR(Command("configure " + Quoted(config_path())).status());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::string last;
  while (true) {
    ASSIGN_OR_RETURN(const BirdReply status, Command("show status"));
    // The last line (0013) is "Daemon is up and running" or "Reconfiguration in progress".
    last = status.lines.empty() ? "" : status.lines.back().second;
    if (last == "Daemon is up and running") return absl::OkStatus();
    if (absl::Now() >= deadline) break;
    absl::SleepFor(kPollInterval);
  }
  return Timeout("the reconfiguration to finish", absl::Seconds(10), last);
}

absl::Status BirdPeer::RestartProtocol(std::string_view name) {
  RETURN_IF_ERROR(CheckName(name));
  return Command("restart " + Quoted(name)).status();
}

absl::Status BirdPeer::Disable(std::string_view name) {
  RETURN_IF_ERROR(CheckName(name));
  return Command("disable " + Quoted(name)).status();
}

absl::Status BirdPeer::Enable(std::string_view name) {
  RETURN_IF_ERROR(CheckName(name));
  return Command("enable " + Quoted(name)).status();
}

}  // namespace calico::testing
