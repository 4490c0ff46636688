#pragma once
// tests/support/datastore/conformance.h — the one behavioural suite every Datastore backend
// must pass (datastore.h's contract, executable). SQLite runs it in tests/unit/datastore;
// etcd runs it against a real server in its integration tests.
//
// Plug a backend in with a Harness and one macro line in a Catch2 v2 test file:
//
//   #include "tests/support/datastore/conformance.h"
//   class MyHarness : public calico::datastore::testing::Harness { ... };
//   CALICO_DATASTORE_CONFORMANCE_TESTS("etcd", "[integration][etcd]",
//                                      std::make_unique<MyHarness>())
//
// and link the CMake target `calico_datastore_conformance` (it also builds `datastore_writer`,
// the child process of the multi-process case; its path is compiled in and can be overridden
// with the DATASTORE_WRITER environment variable).
//
// Every case builds a fresh harness (a fresh, empty store), so cases are independent and can
// run in parallel under `ctest -j`. Each finishes in a few seconds.

#include <sys/types.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/datastore/datastore.h"

namespace calico::datastore::testing {

class Harness {  // one store under test
 public:
  virtual ~Harness() = default;
  virtual std::unique_ptr<Datastore> Connect() = 0;  // a new client to the same store
  virtual bool CanRestart() const { return false; }
  virtual void Restart() {}  // stop and start the server, data kept (etcd)
  // Environment for datastore_writer: DATASTORE_TYPE plus ETCD_ENDPOINTS (and TLS files) or
  // CALICO_DATASTORE_PATH. Datastore variables of the test's own environment are not inherited.
  virtual std::map<std::string, std::string> ClientEnvironment() const = 0;
};

// A private directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process that is always reaped: the destructor SIGKILLs and waits for it unless Wait()
// already did, so a failing REQUIRE never leaks a process.
class ChildProcess {
 public:
  // Starts `argv` (argv[0] is the path) with the current environment minus the datastore
  // variables, plus `env`. A start failure is reported by Wait() as exit status 127.
  ChildProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // The exit status (128+signal when killed), or -1 if it is still running after `timeout`.
  int Wait(absl::Duration timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = -1;
};

// Path of the datastore_writer binary.
std::string DatastoreWriterPath();

// The cases; each takes a fresh harness. Use the macro rather than calling them directly.
namespace cases {
void CreateGet(Harness& harness);
void UpdateDeleteWithRevision(Harness& harness);
void AnyRevision(Harness& harness);
void ListByPrefix(Harness& harness);
void ClientsShareTheStore(Harness& harness);
void OrderedWatch(Harness& harness);
void ResumeWatch(Harness& harness);
void WatchSeesOnlyItsPrefix(Harness& harness);
void CancelWakesNext(Harness& harness);
void Compaction(Harness& harness);
void TtlExpiry(Harness& harness);
void WatchSurvivesRestart(Harness& harness);
void ConcurrentWriterProcesses(Harness& harness);
void CommitAllOrNothing(Harness& harness);
void CommitCreateUpdateDelete(Harness& harness);
void CommitWatchOrder(Harness& harness);
void ConcurrentCommits(Harness& harness);
}  // namespace cases

}  // namespace calico::datastore::testing

// Readable failure output for REQUIRE(a == b) on entries and events.
namespace Catch {
template <>
struct StringMaker<calico::datastore::Entry> {
  static std::string convert(const calico::datastore::Entry& e) {
    return "{" + e.key + "=" + e.value + " create=" + std::to_string(e.create_revision) +
           " mod=" + std::to_string(e.mod_revision) + "}";
  }
};
}  // namespace Catch

#define CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr, name, fn) \
  TEST_CASE(prefix ": " name, tags) {                                                 \
    auto calico_harness_ = (make_harness_expr);                                       \
    ::calico::datastore::testing::cases::fn(*calico_harness_);                        \
  }

// Expands to Catch2 v2 TEST_CASEs named "<prefix>: ..." each with `tags`, creating its harness
// with `make_harness_expr` (a std::unique_ptr to a Harness; a fresh, empty store per case).
#define CALICO_DATASTORE_CONFORMANCE_TESTS(prefix, tags, make_harness_expr)                    \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "create, get, AlreadyExists, NotFound", CreateGet)        \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "update and delete compare mod_revision",                 \
                                     UpdateDeleteWithRevision)                                 \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "kAnyRevision writes unconditionally", AnyRevision)       \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "list by prefix is sorted and exact", ListByPrefix)       \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "two clients share one store", ClientsShareTheStore)      \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "watch delivers puts and deletes in order", OrderedWatch) \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "watch resumes from a revision", ResumeWatch)             \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "watch sees only its prefix", WatchSeesOnlyItsPrefix)     \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "Cancel wakes a blocked Next", CancelWakesNext)           \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "compaction fails older watches only", Compaction)        \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "TTL key expires with a delete event", TtlExpiry)         \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "watch survives a server restart", WatchSurvivesRestart)  \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "concurrent CAS writers in separate processes",           \
                                     ConcurrentWriterProcesses)                                \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "Commit is all or nothing", CommitAllOrNothing)           \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "Commit creates, updates and deletes together",           \
                                     CommitCreateUpdateDelete)                                 \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "watchers see a Commit's changes in op order",            \
                                     CommitWatchOrder)                                         \
  CALICO_DATASTORE_CONFORMANCE_CASE_(prefix, tags, make_harness_expr,                          \
                                     "concurrent Commits on shared keys lose no update",       \
                                     ConcurrentCommits)
