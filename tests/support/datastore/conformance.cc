#include "tests/support/datastore/conformance.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

extern char** environ;

namespace calico::datastore::testing {

// ---------------------------------------------------------------------------------------------
// TempDir, ChildProcess

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr && *base ? base : "/tmp", "/calico-ds-XXXXXX");
  char* made = mkdtemp(pattern.data());
  if (made == nullptr) FAIL("mkdtemp " << pattern << ": " << std::strerror(errno));
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

namespace {

// Variables that select or reach a datastore: the child gets exactly the harness's.
bool IsDatastoreVariable(std::string_view entry) {
  for (std::string_view prefix : {"DATASTORE_TYPE=", "CALICO_DATASTORE_PATH=", "ETCD_"}) {
    if (entry.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!IsDatastoreVariable(*e)) env_strings.emplace_back(*e);
  }
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);
  // posix_spawn rather than fork: the test process may run gRPC threads (etcd harness), and a
  // forked child of a threaded process may only make async-signal-safe calls anyway.
  pid_t pid = -1;
  if (posix_spawn(&pid, argp[0], nullptr, nullptr, argp.data(), envp.data()) == 0) pid_ = pid;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

int ChildProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return 127;
  if (reaped_) return status_;
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return status_;
    }
    if (absl::Now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string DatastoreWriterPath() {
  const char* path = std::getenv("DATASTORE_WRITER");
  return path != nullptr && *path ? path : CALICO_DATASTORE_WRITER;
}

// ---------------------------------------------------------------------------------------------
// Helpers for the cases.

namespace {

template <typename T>
T ValueOrFail(absl::StatusOr<T> result, std::string_view what) {
  INFO(what);
  if (!result.ok()) FAIL(what << ": " << result.status().ToString());
  return std::move(result).value();
}
#define OK_OR_FAIL(expr) ValueOrFail((expr), #expr)

void RequireOk(const absl::Status& status, std::string_view what) {
  if (!status.ok()) FAIL(what << ": " << status.ToString());
}
#define REQUIRE_STATUS_OK(expr) RequireOk((expr), #expr)

std::string Msg(const absl::Status& status) { return ToStd(status.message()); }

// Events as text, so a mismatch prints readably ("put /w/a=1 @5").
std::string Describe(const Event& e) {
  return absl::StrCat(e.type == EventType::kPut ? "put " : "delete ", e.key,
                      e.type == EventType::kPut ? "=" + e.value : "", " @", e.revision);
}
std::vector<std::string> Describe(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const Event& e : events) out.push_back(Describe(e));
  return out;
}
Event Put(std::string key, std::string value, Revision rev) {
  return Event{EventType::kPut, std::move(key), std::move(value), rev};
}
Event Del(std::string key, Revision rev) {
  return Event{EventType::kDelete, std::move(key), "", rev};
}

// Reads until `count` events arrived or `budget` ran out (then returns what it has, so the
// comparison that follows shows what was missing).
std::vector<Event> Collect(Watch& watch, size_t count, absl::Duration budget = absl::Seconds(4)) {
  std::vector<Event> events;
  absl::Time deadline = absl::Now() + budget;
  while (events.size() < count) {
    absl::Time now = absl::Now();
    if (now >= deadline) break;
    absl::StatusOr<std::vector<Event>> batch = watch.Next(deadline - now);
    if (!batch.ok()) FAIL("Watch::Next after " << events.size() << " events: " << batch.status());
    events.insert(events.end(), batch->begin(), batch->end());
  }
  return events;
}

// Nothing more arrives within `quiet`: duplicates or stray keys would show up here.
void RequireNoMoreEvents(Watch& watch, absl::Duration quiet = absl::Milliseconds(300)) {
  std::vector<Event> extra = Collect(watch, 1, quiet);
  REQUIRE(Describe(extra) == std::vector<std::string>{});
}

// A watch on a compacted revision may fail at WatchPrefix or at its first Next (etcd reports
// it on the stream); both are the contract.
void RequireWatchCompacted(Datastore& store, std::string_view prefix, Revision after) {
  absl::StatusOr<std::unique_ptr<Watch>> watch = store.WatchPrefix(prefix, after);
  absl::Status status;
  if (!watch.ok()) {
    status = watch.status();
  } else {
    absl::StatusOr<std::vector<Event>> batch = (*watch)->Next(absl::Seconds(3));
    if (batch.ok())
      FAIL("watch after compacted revision " << after << " delivered " << batch->size()
                                             << " events");
    status = batch.status();
  }
  INFO(status.ToString());
  REQUIRE(IsCompacted(status));
  REQUIRE(Msg(status).find(std::to_string(after + 1)) != std::string::npos);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The cases.

namespace cases {

void CreateGet(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  absl::StatusOr<Entry> missing = store->Get("/t/a");
  REQUIRE(missing.status().code() == absl::StatusCode::kNotFound);

  Revision before = OK_OR_FAIL(store->CurrentRevision());
  Revision rev = OK_OR_FAIL(store->Create("/t/a", "one"));
  REQUIRE(rev == before + 1);
  REQUIRE(OK_OR_FAIL(store->CurrentRevision()) == rev);
  Entry entry = OK_OR_FAIL(store->Get("/t/a"));
  REQUIRE(entry == Entry{"/t/a", "one", rev, rev});

  absl::StatusOr<Revision> again = store->Create("/t/a", "two");
  REQUIRE(again.status().code() == absl::StatusCode::kAlreadyExists);
  REQUIRE(OK_OR_FAIL(store->Get("/t/a")) == entry);
  REQUIRE(OK_OR_FAIL(store->CurrentRevision()) == rev);

  // Values are bytes: empty and binary values round-trip.
  Revision empty_rev = OK_OR_FAIL(store->Create("/t/empty", ""));
  REQUIRE(OK_OR_FAIL(store->Get("/t/empty")).value.empty());
  REQUIRE(OK_OR_FAIL(store->Get("/t/empty")).mod_revision == empty_rev);
  std::string binary("a\0b\xff", 4);
  OK_OR_FAIL(store->Create("/t/binary", binary));
  REQUIRE(OK_OR_FAIL(store->Get("/t/binary")).value == binary);
}

void UpdateDeleteWithRevision(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  Revision created = OK_OR_FAIL(store->Create("/t/k", "v1"));

  absl::StatusOr<Revision> stale = store->Update("/t/k", "bad", created + 100);
  REQUIRE(stale.status().code() == absl::StatusCode::kAborted);
  std::string message = Msg(stale.status());
  INFO(message);
  REQUIRE(message.find("/t/k") != std::string::npos);
  REQUIRE(message.find(std::to_string(created + 100)) != std::string::npos);
  REQUIRE(message.find(std::to_string(created)) != std::string::npos);
  REQUIRE(OK_OR_FAIL(store->Get("/t/k")) == Entry{"/t/k", "v1", created, created});
  REQUIRE(OK_OR_FAIL(store->CurrentRevision()) == created);

  Revision updated = OK_OR_FAIL(store->Update("/t/k", "v2", created));
  REQUIRE(updated == created + 1);
  REQUIRE(OK_OR_FAIL(store->Get("/t/k")) == Entry{"/t/k", "v2", created, updated});
  // The old revision is stale now.
  REQUIRE(store->Update("/t/k", "v3", created).status().code() == absl::StatusCode::kAborted);

  absl::StatusOr<Revision> bad_delete = store->Delete("/t/k", created);
  REQUIRE(bad_delete.status().code() == absl::StatusCode::kAborted);
  REQUIRE(Msg(bad_delete.status()).find("/t/k") != std::string::npos);
  REQUIRE(OK_OR_FAIL(store->Get("/t/k")).value == "v2");
  REQUIRE(OK_OR_FAIL(store->CurrentRevision()) == updated);

  Revision deleted = OK_OR_FAIL(store->Delete("/t/k", updated));
  REQUIRE(deleted == updated + 1);
  REQUIRE(store->Get("/t/k").status().code() == absl::StatusCode::kNotFound);
  REQUIRE(store->Update("/t/k", "x", deleted).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(store->Delete("/t/k", deleted).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(OK_OR_FAIL(store->CurrentRevision()) == deleted);

  // Re-creating starts a new life: create_revision is the new one.
  Revision recreated = OK_OR_FAIL(store->Create("/t/k", "v4"));
  REQUIRE(OK_OR_FAIL(store->Get("/t/k")) == Entry{"/t/k", "v4", recreated, recreated});
}

void AnyRevision(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  REQUIRE(store->Update("/t/a", "x", kAnyRevision).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(store->Delete("/t/a", kAnyRevision).status().code() == absl::StatusCode::kNotFound);
  Revision created = OK_OR_FAIL(store->Create("/t/a", "1"));
  Revision second = OK_OR_FAIL(store->Update("/t/a", "2", kAnyRevision));
  Revision third = OK_OR_FAIL(store->Update("/t/a", "3", kAnyRevision));
  REQUIRE(second == created + 1);
  REQUIRE(third == second + 1);
  REQUIRE(OK_OR_FAIL(store->Get("/t/a")) == Entry{"/t/a", "3", created, third});
  REQUIRE(OK_OR_FAIL(store->Delete("/t/a", kAnyRevision)) == third + 1);
  REQUIRE(store->Get("/t/a").status().code() == absl::StatusCode::kNotFound);
}

void ListByPrefix(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  // Created out of order on purpose.
  Revision b2 = OK_OR_FAIL(store->Create("/a/b/2", "two"));
  Revision bc = OK_OR_FAIL(store->Create("/a/bc/1", "sibling"));
  Revision b1 = OK_OR_FAIL(store->Create("/a/b/1", "one"));
  Revision b = OK_OR_FAIL(store->Create("/a/b", "self"));
  OK_OR_FAIL(store->Create("/z", "other"));
  Revision current = OK_OR_FAIL(store->CurrentRevision());

  ListResult children = OK_OR_FAIL(store->List("/a/b/"));
  REQUIRE(children.entries ==
          std::vector<Entry>{{"/a/b/1", "one", b1, b1}, {"/a/b/2", "two", b2, b2}});
  REQUIRE(children.revision == current);

  ListResult all = OK_OR_FAIL(store->List("/a/b"));
  REQUIRE(all.entries == std::vector<Entry>{{"/a/b", "self", b, b},
                                            {"/a/b/1", "one", b1, b1},
                                            {"/a/b/2", "two", b2, b2},
                                            {"/a/bc/1", "sibling", bc, bc}});

  ListResult none = OK_OR_FAIL(store->List("/nothing/"));
  REQUIRE(none.entries.empty());
  REQUIRE(none.revision == current);

  // Deleted keys leave the list; the list revision moves with the store.
  Revision deleted = OK_OR_FAIL(store->Delete("/a/b/1", b1));
  ListResult after = OK_OR_FAIL(store->List("/a/b/"));
  REQUIRE(after.entries == std::vector<Entry>{{"/a/b/2", "two", b2, b2}});
  REQUIRE(after.revision == deleted);
}

void ClientsShareTheStore(Harness& harness) {
  std::unique_ptr<Datastore> one = harness.Connect();
  std::unique_ptr<Datastore> two = harness.Connect();
  Revision rev = OK_OR_FAIL(one->Create("/s/k", "from one"));
  REQUIRE(OK_OR_FAIL(two->Get("/s/k")) == Entry{"/s/k", "from one", rev, rev});
  std::unique_ptr<Watch> watch = OK_OR_FAIL(one->WatchPrefix("/s/", rev));
  Revision updated = OK_OR_FAIL(two->Update("/s/k", "from two", rev));
  REQUIRE(one->Update("/s/k", "stale", rev).status().code() == absl::StatusCode::kAborted);
  REQUIRE(Describe(Collect(*watch, 1)) ==
          Describe(std::vector<Event>{Put("/s/k", "from two", updated)}));
  RequireNoMoreEvents(*watch);
}

void OrderedWatch(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  OK_OR_FAIL(store->Create("/w/before", "not delivered"));
  ListResult listed = OK_OR_FAIL(store->List("/w/"));
  std::unique_ptr<Watch> watch = OK_OR_FAIL(store->WatchPrefix("/w/", listed.revision));

  std::vector<Event> expected;
  Revision a = OK_OR_FAIL(store->Create("/w/a", "1"));
  expected.push_back(Put("/w/a", "1", a));
  Revision b = OK_OR_FAIL(store->Create("/w/b", "2"));
  expected.push_back(Put("/w/b", "2", b));
  Revision a2 = OK_OR_FAIL(store->Update("/w/a", "3", a));
  expected.push_back(Put("/w/a", "3", a2));
  Revision b_del = OK_OR_FAIL(store->Delete("/w/b", b));
  expected.push_back(Del("/w/b", b_del));
  Revision a_del = OK_OR_FAIL(store->Delete("/w/a", kAnyRevision));
  expected.push_back(Del("/w/a", a_del));
  Revision c = OK_OR_FAIL(store->Create("/w/a", "reborn"));
  expected.push_back(Put("/w/a", "reborn", c));

  REQUIRE(Describe(Collect(*watch, expected.size())) == Describe(expected));
  RequireNoMoreEvents(*watch);
}

void ResumeWatch(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  std::vector<Event> all;
  for (int i = 0; i < 6; ++i) {
    std::string key = absl::StrCat("/r/", i % 3);
    std::string value = absl::StrCat("v", i);
    Revision rev = i < 3 ? OK_OR_FAIL(store->Create(key, value))
                         : OK_OR_FAIL(store->Update(key, value, kAnyRevision));
    all.push_back(Put(key, value, rev));
  }
  // Resuming after the third change gets exactly the last three, on a fresh client too.
  std::unique_ptr<Datastore> other = harness.Connect();
  std::unique_ptr<Watch> watch = OK_OR_FAIL(other->WatchPrefix("/r/", all[2].revision));
  std::vector<Event> rest(all.begin() + 3, all.end());
  REQUIRE(Describe(Collect(*watch, rest.size())) == Describe(rest));
  RequireNoMoreEvents(*watch);

  // From the first change's revision: the other five.
  std::unique_ptr<Watch> from_first = OK_OR_FAIL(store->WatchPrefix("/r/", all[0].revision));
  std::vector<Event> five(all.begin() + 1, all.end());
  REQUIRE(Describe(Collect(*from_first, five.size())) == Describe(five));
  // And a later change reaches the resumed watch too.
  Revision more = OK_OR_FAIL(store->Delete("/r/0", kAnyRevision));
  REQUIRE(Describe(Collect(*watch, 1)) == Describe(std::vector<Event>{Del("/r/0", more)}));
}

void WatchSeesOnlyItsPrefix(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  Revision start = OK_OR_FAIL(store->CurrentRevision());
  std::unique_ptr<Watch> watch = OK_OR_FAIL(store->WatchPrefix("/p/", start));
  Revision p1 = OK_OR_FAIL(store->Create("/p/1", "in"));
  OK_OR_FAIL(store->Create("/q/1", "out"));
  OK_OR_FAIL(store->Create("/p2/1", "sibling, out"));
  OK_OR_FAIL(store->Create("/p", "the prefix without its slash, out"));
  Revision p2 = OK_OR_FAIL(store->Create("/p/2", "in"));
  OK_OR_FAIL(store->Delete("/q/1", kAnyRevision));
  REQUIRE(Describe(Collect(*watch, 2)) ==
          Describe(std::vector<Event>{Put("/p/1", "in", p1), Put("/p/2", "in", p2)}));
  RequireNoMoreEvents(*watch);
}

void CancelWakesNext(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  std::unique_ptr<Watch> watch =
      OK_OR_FAIL(store->WatchPrefix("/c/", OK_OR_FAIL(store->CurrentRevision())));
  // An empty batch on timeout, not an error.
  REQUIRE(OK_OR_FAIL(watch->Next(absl::Milliseconds(50))).empty());
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancelled = true;
    watch->Cancel();
  });
  absl::Time start = absl::Now();
  absl::StatusOr<std::vector<Event>> result = watch->Next(absl::Seconds(20));
  absl::Duration waited = absl::Now() - start;
  canceller.join();
  REQUIRE(cancelled.load());
  REQUIRE(result.status().code() == absl::StatusCode::kCancelled);
  REQUIRE(waited < absl::Seconds(3));
  // And it stays cancelled.
  REQUIRE(watch->Next(absl::Milliseconds(10)).status().code() == absl::StatusCode::kCancelled);
}

void Compaction(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  std::vector<Revision> revs;
  for (int i = 0; i < 5; ++i) {
    revs.push_back(OK_OR_FAIL(store->Create(absl::StrCat("/k/", i), absl::StrCat(i))));
  }
  REQUIRE_STATUS_OK(store->Compact(revs[2]));

  // Before the compacted revision: the watch fails and says so.
  RequireWatchCompacted(*store, "/k/", revs[0]);
  RequireWatchCompacted(*store, "/k/", revs[1]);
  // From the compacted revision on: fine.
  std::unique_ptr<Watch> watch = OK_OR_FAIL(store->WatchPrefix("/k/", revs[2]));
  REQUIRE(Describe(Collect(*watch, 2)) ==
          Describe(std::vector<Event>{Put("/k/3", "3", revs[3]), Put("/k/4", "4", revs[4])}));
  RequireNoMoreEvents(*watch);
  // Compaction drops history, not state.
  REQUIRE(OK_OR_FAIL(store->List("/k/")).entries.size() == 5);
  REQUIRE(OK_OR_FAIL(store->Get("/k/0")) == Entry{"/k/0", "0", revs[0], revs[0]});
}

void TtlExpiry(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  Revision start = OK_OR_FAIL(store->CurrentRevision());
  std::unique_ptr<Watch> watch = OK_OR_FAIL(store->WatchPrefix("/ttl/", start));
  // etcd's minimum lease is about 1.5 s of its clock, so 1 s here; both expire within ~3 s.
  Revision created = OK_OR_FAIL(store->Create("/ttl/k", "short-lived", {absl::Seconds(1)}));
  Revision kept = OK_OR_FAIL(store->Create("/ttl/keep", "forever"));
  // Update keeps the expiry.
  Revision updated = OK_OR_FAIL(store->Update("/ttl/k", "still short-lived", created));
  REQUIRE(OK_OR_FAIL(store->Get("/ttl/k")).value == "still short-lived");

  std::vector<Event> events = Collect(*watch, 4, absl::Seconds(4));
  REQUIRE(events.size() == 4);
  REQUIRE(Describe(std::vector<Event>(events.begin(), events.begin() + 3)) ==
          Describe(std::vector<Event>{Put("/ttl/k", "short-lived", created),
                                      Put("/ttl/keep", "forever", kept),
                                      Put("/ttl/k", "still short-lived", updated)}));
  REQUIRE(events[3].type == EventType::kDelete);
  REQUIRE(events[3].key == "/ttl/k");
  REQUIRE(events[3].revision > updated);
  REQUIRE(store->Get("/ttl/k").status().code() == absl::StatusCode::kNotFound);
  REQUIRE(OK_OR_FAIL(store->List("/ttl/")).entries ==
          std::vector<Entry>{{"/ttl/keep", "forever", kept, kept}});
  // Gone means gone: it can be created again.
  OK_OR_FAIL(store->Create("/ttl/k", "again"));
}

void WatchSurvivesRestart(Harness& harness) {
  if (!harness.CanRestart()) {
    SUCCEED("this backend has no server to restart");
    return;
  }
  std::unique_ptr<Datastore> store = harness.Connect();
  Revision start = OK_OR_FAIL(store->CurrentRevision());
  std::unique_ptr<Watch> watch = OK_OR_FAIL(store->WatchPrefix("/rs/", start));
  std::vector<Event> expected;
  for (int i = 0; i < 3; ++i) {
    std::string key = absl::StrCat("/rs/", i);
    expected.push_back(Put(key, "before", OK_OR_FAIL(store->Create(key, "before"))));
  }
  // Take the first ones before the restart, so resumption is from the middle of the stream.
  std::vector<Event> got = Collect(*watch, 2);
  harness.Restart();
  for (int i = 0; i < 3; ++i) {
    std::string key = absl::StrCat("/rs/after", i);
    // Right after a restart the client may still be reconnecting: retry while Unavailable.
    absl::StatusOr<Revision> rev;
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    do {
      rev = store->Create(key, "after");
    } while (rev.status().code() == absl::StatusCode::kUnavailable && absl::Now() < deadline);
    expected.push_back(Put(key, "after", OK_OR_FAIL(rev)));
  }
  std::vector<Event> rest = Collect(*watch, expected.size() - got.size(), absl::Seconds(8));
  got.insert(got.end(), rest.begin(), rest.end());
  REQUIRE(Describe(got) == Describe(expected));
  RequireNoMoreEvents(*watch);
}

void ConcurrentWriterProcesses(Harness& harness) {
  constexpr int kWriters = 4;
  constexpr int kIncrements = 25;
  std::unique_ptr<Datastore> store = harness.Connect();
  Revision created = OK_OR_FAIL(store->Create("/counter", "0"));
  std::unique_ptr<Watch> watch = OK_OR_FAIL(store->WatchPrefix("/counter", created));

  std::vector<std::unique_ptr<ChildProcess>> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{DatastoreWriterPath(), "increment", "/counter",
                                 std::to_string(kIncrements)},
        harness.ClientEnvironment()));
  }
  // The watch is drained while the writers run, so it also proves delivery under contention.
  std::vector<Event> events = Collect(*watch, kWriters * kIncrements, absl::Seconds(30));
  for (auto& writer : writers) {
    INFO("datastore_writer pid " << writer->pid() << " (" << DatastoreWriterPath() << ")");
    REQUIRE(writer->Wait(absl::Seconds(10)) == 0);
  }
  Entry entry = OK_OR_FAIL(store->Get("/counter"));
  REQUIRE(entry.value == std::to_string(kWriters * kIncrements));

  REQUIRE(events.size() == static_cast<size_t>(kWriters * kIncrements));
  Revision last = created;
  for (size_t i = 0; i < events.size(); ++i) {
    INFO("event " << i << ": " << Describe(events[i]));
    REQUIRE(events[i].type == EventType::kPut);
    REQUIRE(events[i].key == "/counter");
    REQUIRE(events[i].value == std::to_string(i + 1));
    REQUIRE(events[i].revision > last);
    last = events[i].revision;
  }
  REQUIRE(last == entry.mod_revision);
  RequireNoMoreEvents(*watch, absl::Milliseconds(100));
}

void CommitAllOrNothing(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  Revision a = OK_OR_FAIL(store->Create("/tx/a", "a1"));
  Revision b = OK_OR_FAIL(store->Create("/tx/b", "b1"));
  Revision current = OK_OR_FAIL(store->CurrentRevision());
  ListResult before = OK_OR_FAIL(store->List("/tx/"));

  struct Failing {
    std::vector<TxnOp> ops;
    std::string key;     // the key the message must name
    std::string reason;  // and a fragment of why
  };
  std::vector<Failing> failing = {
      // A stale revision in the middle: the good op before it must not be applied.
      {{TxnOp::Update("/tx/a", "a2", a), TxnOp::Update("/tx/b", "b2", b + 100),
        TxnOp::Create("/tx/c", "c1")},
       "/tx/b",
       absl::StrCat("expected revision ", b + 100, ", found ", b)},
      {{TxnOp::Create("/tx/c", "c1"), TxnOp::Create("/tx/a", "again")}, "/tx/a", "exists"},
      {{TxnOp::Update("/tx/a", "a2", a), TxnOp::Update("/tx/missing", "x", kAnyRevision)},
       "/tx/missing",
       "absent"},
      {{TxnOp::Delete("/tx/missing", kAnyRevision), TxnOp::Delete("/tx/a", a)},
       "/tx/missing",
       "absent"},
      // Two failing ops: the first one in op order is named.
      {{TxnOp::Delete("/tx/b", b + 1), TxnOp::Create("/tx/a", "x")},
       "/tx/b",
       absl::StrCat("expected revision ", b + 1)},
  };
  for (const Failing& f : failing) {
    absl::StatusOr<std::vector<Revision>> result = store->Commit(f.ops);
    INFO("expecting a failure on " << f.key << ": " << result.status());
    REQUIRE(result.status().code() == absl::StatusCode::kAborted);
    REQUIRE(Msg(result.status()).find(f.key) != std::string::npos);
    REQUIRE(Msg(result.status()).find(f.reason) != std::string::npos);
    REQUIRE(OK_OR_FAIL(store->List("/tx/")).entries == before.entries);
    REQUIRE(OK_OR_FAIL(store->CurrentRevision()) == current);
  }

  // Bad arguments are refused before anything is compared.
  REQUIRE(store->Commit({}).status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(
      store->Commit({TxnOp::Update("/tx/a", "1", a), TxnOp::Delete("/tx/a", a)}).status().code() ==
      absl::StatusCode::kInvalidArgument);
  REQUIRE(OK_OR_FAIL(store->CurrentRevision()) == current);
}

void CommitCreateUpdateDelete(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  Revision a = OK_OR_FAIL(store->Create("/tx/a", "a1"));
  Revision b = OK_OR_FAIL(store->Create("/tx/b", "b1"));
  OK_OR_FAIL(store->Create("/tx/d", "d1"));
  Revision before = OK_OR_FAIL(store->CurrentRevision());

  std::vector<Revision> revs = OK_OR_FAIL(
      store->Commit({TxnOp::Create("/tx/c", "c1"), TxnOp::Update("/tx/a", "a2", a),
                     TxnOp::Delete("/tx/b", b), TxnOp::Update("/tx/d", "d2", kAnyRevision)}));
  REQUIRE(revs.size() == 4);
  const Revision rev = revs.back();
  REQUIRE(revs.front() > before);
  REQUIRE(std::is_sorted(revs.begin(), revs.end()));
  REQUIRE(OK_OR_FAIL(store->CurrentRevision()) == rev);
  ListResult after = OK_OR_FAIL(store->List("/tx/"));
  REQUIRE(after.entries.size() == 3);
  Entry ea = after.entries[0], ec = after.entries[1], ed = after.entries[2];
  REQUIRE((ea.key == "/tx/a" && ea.value == "a2" && ea.create_revision == a));
  REQUIRE((ec.key == "/tx/c" && ec.value == "c1" && ec.create_revision == ec.mod_revision));
  REQUIRE((ed.key == "/tx/d" && ed.value == "d2"));
  // Every change has a revision after `before` and at most `rev`; the create is the first.
  for (const Entry& e : after.entries) {
    INFO(Catch::StringMaker<Entry>::convert(e));
    REQUIRE(e.mod_revision > before);
    REQUIRE(e.mod_revision <= rev);
  }
  // Each op's returned revision is exactly the mod_revision it left behind.
  REQUIRE(ec.mod_revision == revs[0]);
  REQUIRE(ea.mod_revision == revs[1]);
  REQUIRE(ed.mod_revision == revs[3]);

  // The revisions a Commit wrote are what the next CAS compares against.
  std::vector<Revision> next = OK_OR_FAIL(store->Commit(
      {TxnOp::Update("/tx/a", "a3", ea.mod_revision), TxnOp::Delete("/tx/c", ec.mod_revision)}));
  REQUIRE(next.front() > rev);
  REQUIRE(OK_OR_FAIL(store->Get("/tx/a")).mod_revision == next[0]);
  REQUIRE(OK_OR_FAIL(store->Get("/tx/a")).value == "a3");
  REQUIRE(store->Get("/tx/c").status().code() == absl::StatusCode::kNotFound);
}

void CommitWatchOrder(Harness& harness) {
  std::unique_ptr<Datastore> store = harness.Connect();
  // Keys whose op order differs from their key order, so a backend that sorts would show.
  Revision z = OK_OR_FAIL(store->Create("/tw/z", "z1"));
  Revision m = OK_OR_FAIL(store->Create("/tw/m", "m1"));
  Revision start = OK_OR_FAIL(store->CurrentRevision());
  std::unique_ptr<Watch> watch = OK_OR_FAIL(store->WatchPrefix("/tw/", start));

  std::vector<Revision> first = OK_OR_FAIL(store->Commit(
      {TxnOp::Update("/tw/z", "z2", z), TxnOp::Create("/tw/a", "a1"), TxnOp::Delete("/tw/m", m)}));
  std::vector<Revision> second = OK_OR_FAIL(
      store->Commit({TxnOp::Create("/tw/m", "m2"), TxnOp::Delete("/tw/a", kAnyRevision)}));
  // A refused Commit emits nothing.
  REQUIRE(
      store->Commit({TxnOp::Create("/tw/b", "b"), TxnOp::Create("/tw/z", "dup")}).status().code() ==
      absl::StatusCode::kAborted);

  std::vector<Event> events = Collect(*watch, 5);
  std::vector<std::string> shape;  // events without revisions: one backend shares them
  for (const Event& e : events) {
    shape.push_back(
        absl::StrCat(e.type == EventType::kPut ? "put " : "delete ", e.key, " ", e.value));
  }
  REQUIRE(shape == std::vector<std::string>{"put /tw/z z2", "put /tw/a a1", "delete /tw/m ",
                                            "put /tw/m m2", "delete /tw/a "});
  // Each event carries the revision its Commit returned for that op.
  REQUIRE(events[0].revision > start);
  std::vector<Revision> returned = first;
  returned.insert(returned.end(), second.begin(), second.end());
  for (size_t i = 0; i < events.size(); ++i) {
    INFO(Describe(events[i]));
    REQUIRE(events[i].revision == returned[i]);
  }
  REQUIRE(events[3].revision > events[2].revision);
  RequireNoMoreEvents(*watch);
}

void ConcurrentCommits(Harness& harness) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 20;
  std::unique_ptr<Datastore> store = harness.Connect();
  OK_OR_FAIL(store->Create("/cc/a", "0"));
  OK_OR_FAIL(store->Create("/cc/b", "0"));

  // Each thread, on its own client, increments both counters in one Commit guarded by both
  // revisions and records the increment under a fresh key in the same Commit: a lost update
  // would leave the counters unequal or short of the log.
  std::vector<std::string> errors(kThreads);
  std::vector<int> conflicts(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Datastore> client = harness.Connect();
      absl::Time deadline = absl::Now() + absl::Seconds(60);
      for (int i = 0; i < kIncrements && errors[t].empty();) {
        if (absl::Now() > deadline) {
          errors[t] = "deadline";
          break;
        }
        absl::StatusOr<Entry> a = client->Get("/cc/a");
        absl::StatusOr<Entry> b = client->Get("/cc/b");
        if (!a.ok() || !b.ok()) {
          errors[t] = (a.ok() ? b.status() : a.status()).ToString();
          break;
        }
        absl::StatusOr<std::vector<Revision>> rev = client->Commit(
            {TxnOp::Update("/cc/a", std::to_string(std::stoi(a->value) + 1), a->mod_revision),
             TxnOp::Update("/cc/b", std::to_string(std::stoi(b->value) + 1), b->mod_revision),
             TxnOp::Create(absl::StrCat("/cc/log/", t, "-", i), a->value)});
        if (rev.ok()) {
          ++i;
        } else if (absl::IsAborted(rev.status()) || absl::IsUnavailable(rev.status())) {
          ++conflicts[t];  // Unavailable: SQLite's busy timeout under contention; retry too
        } else {
          errors[t] = rev.status().ToString();
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t << " (" << conflicts[t] << " conflicts retried)");
    REQUIRE(errors[t] == "");
  }
  constexpr int kTotal = kThreads * kIncrements;
  REQUIRE(OK_OR_FAIL(store->Get("/cc/a")).value == std::to_string(kTotal));
  REQUIRE(OK_OR_FAIL(store->Get("/cc/b")).value == std::to_string(kTotal));
  ListResult log = OK_OR_FAIL(store->List("/cc/log/"));
  REQUIRE(log.entries.size() == static_cast<size_t>(kTotal));
  // Each log entry holds the counter value its Commit read: all distinct, 0..kTotal-1.
  std::vector<int> seen;
  for (const Entry& e : log.entries) seen.push_back(std::stoi(e.value));
  std::sort(seen.begin(), seen.end());
  for (int i = 0; i < kTotal; ++i) REQUIRE(seen[i] == i);
}

}  // namespace cases
}  // namespace calico::datastore::testing
