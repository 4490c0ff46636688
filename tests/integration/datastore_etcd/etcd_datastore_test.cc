// The etcd backend against real etcd processes on loopback: what the shared conformance suite
// cannot express because it is etcd's alone — several endpoints and fail-over, timeouts,
// restarts of one member under a watch, TLS and auth settings.

#include "common/datastore/etcd/etcd_datastore.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/datastore/config.h"
#include "common/datastore/datastore.h"
#include "tests/support/etcd/etcd_server.h"

namespace calico::datastore {
namespace {

using ::calico::testing::EtcdCluster;
using ::calico::testing::EtcdServer;

std::string Msg(const absl::Status& status) { return ToStd(status.message()); }

Config EtcdConfig(std::vector<std::string> endpoints) {
  Config config;
  config.type = BackendType::kEtcdV3;
  config.etcd_endpoints = std::move(endpoints);
  config.request_timeout = absl::Seconds(2);
  config.dial_timeout = absl::Milliseconds(500);
  return config;
}

std::unique_ptr<Datastore> MustOpen(const Config& config) {
  absl::StatusOr<std::unique_ptr<Datastore>> store = OpenEtcd(config);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(store).value();
}

std::unique_ptr<EtcdServer> MustStartServer() {
  absl::StatusOr<std::unique_ptr<EtcdServer>> server = EtcdServer::Start();
  INFO(server.status().ToString());
  REQUIRE(server.ok());
  return std::move(server).value();
}

// Reads events until `count` arrived or `timeout` passed.
std::vector<Event> Collect(Watch& watch, size_t count, absl::Duration timeout) {
  std::vector<Event> events;
  const absl::Time deadline = absl::Now() + timeout;
  while (events.size() < count && absl::Now() < deadline) {
    absl::StatusOr<std::vector<Event>> batch = watch.Next(absl::Milliseconds(100));
    INFO(batch.status().ToString());
    REQUIRE(batch.ok());
    events.insert(events.end(), batch->begin(), batch->end());
  }
  return events;
}

// Retries a write through a restart or fail-over window (callers do the same on Unavailable).
absl::StatusOr<Revision> CreateRetrying(Datastore& store, const std::string& key,
                                        const std::string& value) {
  absl::StatusOr<Revision> result;
  for (int i = 0; i < 50; ++i) {
    result = store.Create(key, value);
    if (!absl::IsUnavailable(result.status())) return result;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return result;
}

// True once every thread of `pid` is stopped ("T" in /proc/<pid>/task/*/stat).
bool WaitStopped(pid_t pid) {
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (absl::Now() < deadline) {
    bool all_stopped = true;
    std::error_code ec;
    for (const auto& task :
         std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const size_t paren = line.rfind(')');
      if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'T') {
        all_stopped = false;
      }
    }
    if (!ec && all_stopped) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

// A TCP listener that completes handshakes (via the backlog) but never speaks HTTP/2: a member
// that is "up" at the TCP level and hangs, the case only a dial timeout catches.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(listen(fd_, 16) == 0);
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { close(fd_); }
  std::string Url() const { return absl::StrCat("http://127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_CASE("etcd: Describe names every endpoint", "[integration][etcd]") {
  std::unique_ptr<Datastore> store =
      MustOpen(EtcdConfig({"http://127.0.0.1:2379", "https://10.0.0.2:2379"}));
  CHECK(store->Describe() == "etcdv3 (http://127.0.0.1:2379,https://10.0.0.2:2379)");
}

TEST_CASE("etcd: config errors are InvalidArgument naming the culprit", "[integration][etcd]") {
  SECTION("unreadable CA file") {
    Config config = EtcdConfig({"https://127.0.0.1:2379"});
    config.etcd_ca_cert_file = "/nonexistent/calico-ca.pem";
    absl::StatusOr<std::unique_ptr<Datastore>> store = OpenEtcd(config);
    REQUIRE(absl::IsInvalidArgument(store.status()));
    CHECK_THAT(Msg(store.status()), Catch::Contains("ETCD_CA_CERT_FILE") &&
                                        Catch::Contains("/nonexistent/calico-ca.pem") &&
                                        Catch::Contains("No such file"));
  }
  SECTION("unreadable key file") {
    Config config = EtcdConfig({"https://127.0.0.1:2379"});
    config.etcd_cert_file = "/etc/hostname";  // readable; the key is the culprit
    config.etcd_key_file = "/nonexistent/calico-key.pem";
    absl::StatusOr<std::unique_ptr<Datastore>> store = OpenEtcd(config);
    REQUIRE(absl::IsInvalidArgument(store.status()));
    CHECK_THAT(Msg(store.status()),
               Catch::Contains("ETCD_KEY_FILE") && Catch::Contains("/nonexistent/calico-key.pem"));
  }
  SECTION("certificate without key") {
    Config config = EtcdConfig({"https://127.0.0.1:2379"});
    config.etcd_cert_file = "/etc/hostname";
    REQUIRE(absl::IsInvalidArgument(OpenEtcd(config).status()));
  }
  SECTION("endpoint without scheme") {
    absl::StatusOr<std::unique_ptr<Datastore>> store = OpenEtcd(EtcdConfig({"127.0.0.1:2379"}));
    REQUIRE(absl::IsInvalidArgument(store.status()));
    CHECK_THAT(Msg(store.status()), Catch::Contains("\"127.0.0.1:2379\""));
  }
  SECTION("no endpoints") { REQUIRE(absl::IsInvalidArgument(OpenEtcd(EtcdConfig({})).status())); }
}

TEST_CASE("etcd: TLS endpoint against a plain-text server fails as Unavailable",
          "[integration][etcd]") {
  // The TLS wiring reaches the handshake: https:// really dials with SslCredentials.
  std::unique_ptr<EtcdServer> server = MustStartServer();
  std::string url = server->ClientUrl();
  url.replace(0, 4, "https");
  std::unique_ptr<Datastore> store = MustOpen(EtcdConfig({url}));
  absl::StatusOr<Entry> got = store->Get("/calico/x");
  REQUIRE(absl::IsUnavailable(got.status()));
  CHECK_THAT(Msg(got.status()), Catch::Contains(url));
}

// A private temp directory, removed with its contents.
class ScratchDir {
 public:
  ScratchDir() {
    char pattern[] = "/tmp/calico-etcd-tls-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes ca.pem, server.{pem,key} (SAN IP:127.0.0.1), client.{pem,key} and, from a second
// CA, other-ca.pem into `dir` with the openssl CLI; P-256 keys, valid for a day.
bool MakeCertificates(const std::string& dir) {
  const std::string script = absl::StrCat(R"(set -e; cd ')", dir, R"(';
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
    key ca.key; key other-ca.key; key server.key; key client.key
    openssl req -x509 -new -key ca.key -out ca.pem -days 1 -subj /CN=calico-test-ca
    openssl req -x509 -new -key other-ca.key -out other-ca.pem -days 1 -subj /CN=other-ca
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -new -key server.key -out server.csr -subj /CN=etcd
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
      -extfile server.ext -out server.pem
    openssl req -new -key client.key -out client.csr -subj /CN=calico
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
      -extfile client.ext -out client.pem
  )");
  const std::string log = dir + "/openssl.log";
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return false;
  // The test process runs gRPC threads: the child only dup2()s and execs.
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execl("/bin/bash", "bash", "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(log_fd);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST_CASE("etcd: TLS with a CA and a client certificate", "[integration][etcd][tls]") {
  ScratchDir dir;
  const std::string d = dir.path();
  REQUIRE(MakeCertificates(d));
  calico::testing::EtcdTlsOptions tls;
  tls.cert_file = d + "/server.pem";
  tls.key_file = d + "/server.key";
  tls.trusted_ca_file = d + "/ca.pem";
  tls.client_cert_auth = true;
  absl::StatusOr<std::unique_ptr<EtcdServer>> server = EtcdServer::StartTls(tls);
  INFO(server.status().ToString());
  REQUIRE(server.ok());
  const std::string url = (*server)->ClientUrl();
  REQUIRE_THAT(url, Catch::StartsWith("https://"));

  Config config = EtcdConfig({url});
  config.etcd_ca_cert_file = d + "/ca.pem";
  SECTION("CA and client certificate: reads, writes and watches work") {
    config.etcd_cert_file = d + "/client.pem";
    config.etcd_key_file = d + "/client.key";
    std::unique_ptr<Datastore> store = MustOpen(config);
    absl::StatusOr<Revision> created = store->Create("/calico/tls", "1");
    INFO(created.status().ToString());
    REQUIRE(created.ok());
    absl::StatusOr<std::unique_ptr<Watch>> watch = store->WatchPrefix("/calico/", *created - 1);
    REQUIRE(watch.ok());
    std::vector<Event> events = Collect(**watch, 1, absl::Seconds(5));
    REQUIRE(events.size() == 1);
    CHECK(events[0].key == "/calico/tls");
  }
  SECTION("no client certificate: the server refuses the handshake") {
    std::unique_ptr<Datastore> store = MustOpen(config);
    absl::StatusOr<Revision> created = store->Create("/calico/tls", "1");
    REQUIRE(absl::IsUnavailable(created.status()));
    CHECK_THAT(Msg(created.status()), Catch::Contains(url));
  }
  SECTION("a CA that did not sign the server certificate") {
    config.etcd_ca_cert_file = d + "/other-ca.pem";
    config.etcd_cert_file = d + "/client.pem";
    config.etcd_key_file = d + "/client.key";
    std::unique_ptr<Datastore> store = MustOpen(config);
    absl::StatusOr<Revision> created = store->Create("/calico/tls", "1");
    REQUIRE(absl::IsUnavailable(created.status()));
    CHECK_THAT(Msg(created.status()), Catch::Contains(url));
  }
}

TEST_CASE("etcd: a dead first endpoint fails over to the second", "[integration][etcd]") {
  std::unique_ptr<EtcdServer> server = MustStartServer();
  absl::StatusOr<std::string> dead = calico::testing::UnusedLoopbackUrl();
  REQUIRE(dead.ok());
  std::unique_ptr<Datastore> store = MustOpen(EtcdConfig({*dead, server->ClientUrl()}));
  const absl::Time start = absl::Now();
  absl::StatusOr<Revision> created = store->Create("/calico/a", "1");
  INFO(created.status().ToString());
  REQUIRE(created.ok());
  absl::StatusOr<Entry> got = store->Get("/calico/a");
  REQUIRE(got.ok());
  CHECK(got->value == "1");
  CHECK(got->mod_revision == *created);
  // A refused connection fails fast: no dial timeout is spent on it.
  CHECK(absl::Now() - start < absl::Seconds(1));
}

TEST_CASE("etcd: a hanging first endpoint costs one dial timeout, then fails over",
          "[integration][etcd]") {
  std::unique_ptr<EtcdServer> server = MustStartServer();
  SilentListener silent;
  std::unique_ptr<Datastore> store = MustOpen(EtcdConfig({silent.Url(), server->ClientUrl()}));
  const absl::Time start = absl::Now();
  REQUIRE(store->Create("/calico/a", "1").ok());
  const absl::Duration first = absl::Now() - start;
  CHECK(first >= absl::Milliseconds(400));
  CHECK(first < absl::Seconds(2));
  // The answering endpoint is now preferred: later calls do not wait for the silent one.
  const absl::Time second_start = absl::Now();
  REQUIRE(store->Get("/calico/a").ok());
  CHECK(absl::Now() - second_start < absl::Milliseconds(300));
}

TEST_CASE("etcd: unreachable endpoints give Unavailable naming them", "[integration][etcd]") {
  absl::StatusOr<std::string> dead = calico::testing::UnusedLoopbackUrl();
  REQUIRE(dead.ok());
  SilentListener silent;
  std::unique_ptr<Datastore> store = MustOpen(EtcdConfig({*dead, silent.Url()}));
  const absl::Time start = absl::Now();
  absl::StatusOr<Entry> got = store->Get("/calico/a");
  const absl::Duration elapsed = absl::Now() - start;
  REQUIRE(absl::IsUnavailable(got.status()));
  CHECK_THAT(Msg(got.status()), Catch::StartsWith("etcd unreachable at ") &&
                                    Catch::Contains(*dead) && Catch::Contains(silent.Url()) &&
                                    Catch::Contains("dial timeout"));
  // Bounded by the dial timeouts (500 ms each, at most two passes), not gRPC's 20 s default.
  CHECK(elapsed < absl::Seconds(3));
  CHECK(absl::IsUnavailable(store->CurrentRevision().status()));
}

TEST_CASE("etcd: a hung member gives Unavailable after the request timeout",
          "[integration][etcd]") {
  std::unique_ptr<EtcdServer> server = MustStartServer();
  Config config = EtcdConfig({server->ClientUrl()});
  config.request_timeout = absl::Milliseconds(300);
  std::unique_ptr<Datastore> store = MustOpen(config);
  REQUIRE(store->Create("/calico/a", "1").ok());  // connected
  REQUIRE(kill(server->pid(), SIGSTOP) == 0);
  // SIGSTOP lands asynchronously: a request racing it could still be answered.
  REQUIRE(WaitStopped(server->pid()));
  const absl::Time start = absl::Now();
  absl::StatusOr<Entry> got = store->Get("/calico/a");
  const absl::Duration elapsed = absl::Now() - start;
  kill(server->pid(), SIGCONT);
  INFO(got.status().ToString());
  REQUIRE(absl::IsUnavailable(got.status()));
  CHECK_THAT(Msg(got.status()),
             Catch::Contains(server->ClientUrl()) && Catch::Contains("Deadline Exceeded"));
  CHECK(elapsed >= absl::Milliseconds(250));
  CHECK(elapsed < absl::Seconds(2));
  // And it recovers by itself once the member runs again.
  absl::StatusOr<Entry> again = store->Get("/calico/a");
  INFO(again.status().ToString());
  CHECK(again.ok());
}

TEST_CASE("etcd: a write whose reply is lost is not repeated on the next endpoint",
          "[integration][etcd]") {
  // Two separate servers stand in for two members: had the client repeated the write on the
  // second, the key would appear there (and on a real cluster the repeat would fail its CAS
  // against the first attempt's own write, reporting Aborted for a write that landed).
  std::unique_ptr<EtcdServer> hung = MustStartServer();
  std::unique_ptr<EtcdServer> other = MustStartServer();
  Config config = EtcdConfig({hung->ClientUrl(), other->ClientUrl()});
  config.request_timeout = absl::Milliseconds(300);
  std::unique_ptr<Datastore> store = MustOpen(config);
  REQUIRE(store->Create("/calico/warm", "1").ok());  // connected to the first endpoint
  REQUIRE(kill(hung->pid(), SIGSTOP) == 0);
  REQUIRE(WaitStopped(hung->pid()));
  absl::StatusOr<Revision> created = store->Create("/calico/x", "1");
  absl::StatusOr<std::vector<Revision>> committed =
      store->Commit({TxnOp::Create("/calico/y", "1")});
  // Reads are safe to repeat: this one fails over and answers from the second server.
  absl::StatusOr<Entry> read = store->Get("/calico/x");
  kill(hung->pid(), SIGCONT);
  INFO(created.status().ToString() << " / " << committed.status().ToString());
  REQUIRE(absl::IsUnavailable(created.status()));
  CHECK_THAT(Msg(created.status()), Catch::Contains("outcome unknown"));
  REQUIRE(absl::IsUnavailable(committed.status()));
  CHECK(absl::IsNotFound(read.status()));
  std::unique_ptr<Datastore> direct = MustOpen(EtcdConfig({other->ClientUrl()}));
  CHECK(absl::IsNotFound(direct->Get("/calico/x").status()));
  CHECK(absl::IsNotFound(direct->Get("/calico/y").status()));
}

TEST_CASE("etcd: a watch survives a restart of its only member without gap or duplicate",
          "[integration][etcd]") {
  std::unique_ptr<EtcdServer> server = MustStartServer();
  std::unique_ptr<Datastore> store = MustOpen(EtcdConfig({server->ClientUrl()}));
  absl::StatusOr<Revision> base = store->CurrentRevision();
  REQUIRE(base.ok());
  absl::StatusOr<std::unique_ptr<Watch>> watch = store->WatchPrefix("/calico/w/", *base);
  REQUIRE(watch.ok());
  for (int i = 0; i < 5; ++i) {
    REQUIRE(store->Create(absl::StrCat("/calico/w/", i), "v").ok());
  }
  std::vector<Event> events = Collect(**watch, 5, absl::Seconds(5));
  REQUIRE(events.size() == 5);

  server->Stop();
  // Writes while the watch is disconnected must arrive after the restart too.
  absl::Status restarted = server->Restart();
  INFO(restarted.ToString());
  REQUIRE(restarted.ok());
  for (int i = 5; i < 10; ++i) {
    absl::StatusOr<Revision> created = CreateRetrying(*store, absl::StrCat("/calico/w/", i), "v");
    INFO(created.status().ToString());
    REQUIRE(created.ok());
  }
  std::vector<Event> more = Collect(**watch, 5, absl::Seconds(10));
  events.insert(events.end(), more.begin(), more.end());
  REQUIRE(events.size() == 10);
  for (int i = 0; i < 10; ++i) {
    CHECK(events[i].key == absl::StrCat("/calico/w/", i));
    CHECK(events[i].revision == *base + 1 + i);
  }
  // Nothing extra (a duplicate would show up here).
  absl::StatusOr<std::vector<Event>> rest = (*watch)->Next(absl::Milliseconds(300));
  REQUIRE(rest.ok());
  CHECK(rest->empty());
}

TEST_CASE("etcd: a watch dialling a dead member resumes as soon as a call is answered",
          "[integration][etcd]") {
  // After an outage the watch may be dialling (or backing off from) a member that is still
  // down when etcd is back. A call answered on the connection is taken as word of that: the
  // watch moves to the member that answered at once, instead of after its dial timeout.
  std::unique_ptr<EtcdServer> server = MustStartServer();
  SilentListener silent;  // the member still down: it never completes a connection
  Config config = EtcdConfig({server->ClientUrl(), silent.Url()});
  config.dial_timeout = absl::Seconds(8);
  std::unique_ptr<Datastore> store = MustOpen(config);
  absl::StatusOr<Revision> base = store->CurrentRevision();  // answered by the server
  REQUIRE(base.ok());
  absl::StatusOr<std::unique_ptr<Watch>> watch = store->WatchPrefix("/calico/w/", *base);
  REQUIRE(watch.ok());
  REQUIRE(store->Create("/calico/w/0", "v").ok());
  REQUIRE(Collect(**watch, 1, absl::Seconds(5)).size() == 1);

  // The stream breaks; the watch moves on to the silent member and dials it for 8 s.
  server->Stop();
  const absl::Time stopped = absl::Now();
  absl::Status restarted = server->Restart();
  INFO(restarted.ToString());
  REQUIRE(restarted.ok());
  // gRPC's own reconnect backoff (at most 1 s) lets the server's channel come back first, so
  // the call below is answered by the server, not held up by the silent member.
  absl::SleepFor(absl::Milliseconds(1500));
  absl::StatusOr<Revision> created = CreateRetrying(*store, "/calico/w/1", "v");
  INFO(created.status().ToString());
  REQUIRE(created.ok());
  const absl::Time answered = absl::Now();
  INFO("answered " << absl::FormatDuration(answered - stopped) << " after the stop");
  // The test means something only while the watch's dial of the silent member is still on.
  REQUIRE(answered - stopped < absl::Seconds(6));
  std::vector<Event> events = Collect(**watch, 1, absl::Seconds(10));
  const absl::Duration waited = absl::Now() - answered;
  REQUIRE(events.size() == 1);
  CHECK(events[0].key == "/calico/w/1");
  INFO("the event came " << absl::FormatDuration(waited) << " after the call was answered");
  CHECK(waited < absl::Seconds(1));
}

TEST_CASE("etcd: 3-member cluster: losing the serving member keeps writes and watch going",
          "[integration][etcd][cluster]") {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster = EtcdCluster::Start(3);
  INFO(cluster.status().ToString());
  REQUIRE(cluster.ok());
  std::unique_ptr<Datastore> store = MustOpen(EtcdConfig((*cluster)->ClientUrls()));
  absl::StatusOr<Revision> base = store->CurrentRevision();
  REQUIRE(base.ok());
  // The first endpoint serves both the writes and the watch stream.
  absl::StatusOr<std::unique_ptr<Watch>> watch = store->WatchPrefix("/calico/c/", *base);
  REQUIRE(watch.ok());
  for (int i = 0; i < 5; ++i) REQUIRE(store->Create(absl::StrCat("/calico/c/", i), "v").ok());
  std::vector<Event> events = Collect(**watch, 5, absl::Seconds(5));
  REQUIRE(events.size() == 5);

  (*cluster)->member(0).Stop();
  for (int i = 5; i < 10; ++i) {
    absl::StatusOr<Revision> created = CreateRetrying(*store, absl::StrCat("/calico/c/", i), "v");
    INFO(created.status().ToString());
    REQUIRE(created.ok());
  }
  std::vector<Event> more = Collect(**watch, 5, absl::Seconds(10));
  events.insert(events.end(), more.begin(), more.end());
  REQUIRE(events.size() == 10);
  for (int i = 0; i < 10; ++i) {
    CHECK(events[i].key == absl::StrCat("/calico/c/", i));
    if (i > 0) CHECK(events[i].revision == events[i - 1].revision + 1);
  }
  absl::StatusOr<std::vector<Event>> rest = (*watch)->Next(absl::Milliseconds(300));
  REQUIRE(rest.ok());
  CHECK(rest->empty());
  // The remaining quorum serves reads, lists and CAS.
  absl::StatusOr<ListResult> list = store->List("/calico/c/");
  REQUIRE(list.ok());
  CHECK(list->entries.size() == 10);
  REQUIRE(store->Update("/calico/c/0", "w", list->entries[0].mod_revision).ok());
}

TEST_CASE("etcd: a watch on a compacted revision fails with IsCompacted", "[integration][etcd]") {
  std::unique_ptr<EtcdServer> server = MustStartServer();
  std::unique_ptr<Datastore> store = MustOpen(EtcdConfig({server->ClientUrl()}));
  absl::StatusOr<Revision> first = store->Create("/calico/k/a", "1");
  REQUIRE(first.ok());
  absl::StatusOr<Revision> second = store->Update("/calico/k/a", "2", *first);
  REQUIRE(second.ok());
  REQUIRE(store->Compact(*second).ok());
  REQUIRE(store->Compact(*first).ok());  // already compacted: a no-op, as in SQLite
  CHECK(absl::IsInvalidArgument(store->Compact(*second + 1000)));

  absl::StatusOr<std::unique_ptr<Watch>> stale = store->WatchPrefix("/calico/k/", *first - 1);
  REQUIRE(stale.ok());
  absl::StatusOr<std::vector<Event>> batch = (*stale)->Next(absl::Seconds(5));
  REQUIRE_FALSE(batch.ok());
  CHECK(IsCompacted(batch.status()));
  CHECK(IsCompacted((*stale)->Next(absl::Milliseconds(10)).status()));  // sticky

  absl::StatusOr<std::unique_ptr<Watch>> fresh = store->WatchPrefix("/calico/k/", *second);
  REQUIRE(fresh.ok());
  REQUIRE(store->Update("/calico/k/a", "3", *second).ok());
  std::vector<Event> events = Collect(**fresh, 1, absl::Seconds(5));
  REQUIRE(events.size() == 1);
  CHECK(events[0].value == "3");
}

TEST_CASE("etcd: Update keeps the TTL lease of Create", "[integration][etcd]") {
  std::unique_ptr<EtcdServer> server = MustStartServer();
  std::unique_ptr<Datastore> store = MustOpen(EtcdConfig({server->ClientUrl()}));
  absl::StatusOr<Revision> created = store->Create("/calico/ttl", "1", {.ttl = absl::Seconds(1)});
  REQUIRE(created.ok());
  REQUIRE(store->Update("/calico/ttl", "2", *created).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  absl::Status gone;
  while (absl::Now() < deadline) {
    gone = store->Get("/calico/ttl").status();
    if (absl::IsNotFound(gone)) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  CHECK(absl::IsNotFound(gone));
}

// etcdctl against `url`; true if it exited 0.
bool Etcdctl(const std::string& url, const std::string& args) {
  const std::string command = absl::StrCat("env -u ETCDCTL_API /usr/bin/etcdctl --endpoints=", url,
                                           " ", args, " >/dev/null 2>&1");
  return std::system(command.c_str()) == 0;
}

TEST_CASE("etcd: username and password authenticate every request", "[integration][etcd]") {
  std::unique_ptr<EtcdServer> server = MustStartServer();
  const std::string url = server->ClientUrl();
  REQUIRE(Etcdctl(url, "user add root:rootpw"));
  REQUIRE(Etcdctl(url, "user add calico:s3cret"));
  REQUIRE(Etcdctl(url, "role add calico"));
  REQUIRE(Etcdctl(url, "role grant-permission calico --prefix=true readwrite /calico/"));
  REQUIRE(Etcdctl(url, "user grant-role calico calico"));
  REQUIRE(Etcdctl(url, "auth enable"));

  Config config = EtcdConfig({url});
  SECTION("without credentials") {
    std::unique_ptr<Datastore> store = MustOpen(config);
    CHECK_FALSE(store->Create("/calico/a", "1").ok());
  }
  SECTION("with the right password") {
    config.etcd_username = "calico";
    config.etcd_password = "s3cret";
    std::unique_ptr<Datastore> store = MustOpen(config);
    absl::StatusOr<Revision> created = store->Create("/calico/a", "1");
    INFO(created.status().ToString());
    REQUIRE(created.ok());
    absl::StatusOr<std::unique_ptr<Watch>> watch = store->WatchPrefix("/calico/", *created - 1);
    REQUIRE(watch.ok());
    std::vector<Event> events = Collect(**watch, 1, absl::Seconds(5));
    REQUIRE(events.size() == 1);
    // Outside the role's prefix: etcd's PermissionDenied comes through with its code.
    CHECK(absl::IsPermissionDenied(store->Create("/other/a", "1").status()));
  }
  SECTION("with a wrong password") {
    config.etcd_username = "calico";
    config.etcd_password = "wrong";
    std::unique_ptr<Datastore> store = MustOpen(config);
    absl::Status status = store->Create("/calico/a", "1").status();
    REQUIRE_FALSE(status.ok());
    CHECK_FALSE(absl::IsUnavailable(status));
    CHECK_THAT(Msg(status), Catch::Contains("\"calico\"") && !Catch::Contains("wrong"));
  }
}

TEST_CASE("etcd: Cancel from another thread wakes a blocked Next", "[integration][etcd]") {
  std::unique_ptr<EtcdServer> server = MustStartServer();
  std::unique_ptr<Datastore> store = MustOpen(EtcdConfig({server->ClientUrl()}));
  absl::StatusOr<std::unique_ptr<Watch>> watch = store->WatchPrefix("/calico/", 0);
  REQUIRE(watch.ok());
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(200));
    (*watch)->Cancel();
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<Event>> batch = (*watch)->Next(absl::Seconds(10));
  canceller.join();
  CHECK(absl::IsCancelled(batch.status()));
  CHECK(absl::Now() - start < absl::Seconds(2));
}

}  // namespace
}  // namespace calico::datastore
