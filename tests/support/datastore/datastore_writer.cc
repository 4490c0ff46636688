// datastore_writer: a separate process that hammers one key, for the conformance suite's
// multi-process test (tests/support/datastore/conformance.h).
//
//   datastore_writer increment <key> <count>
//
// Reads the datastore from the environment (DATASTORE_TYPE, ETCD_ENDPOINTS,
// CALICO_DATASTORE_PATH, ...), then performs <count> compare-and-swap increments of the decimal
// value stored at <key>, retrying each on Aborted (another writer won the race). Exit status 0
// when all increments landed; 1 with one line on stderr otherwise.

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "common/base/status_macros.h"
#include "common/datastore/config.h"
#include "common/datastore/datastore.h"

namespace calico::datastore {
namespace {

absl::Status Increment(Datastore& store, const std::string& key, long count) {
  for (long done = 0; done < count;) {
    absl::StatusOr<Entry> entry = store.Get(key);
    if (!entry.ok()) return Annotate(entry.status(), "reading " + key);
    long value = 0;
    auto [end, ec] =
        std::from_chars(entry->value.data(), entry->value.data() + entry->value.size(), value);
    if (ec != std::errc() || end != entry->value.data() + entry->value.size()) {
      return absl::InvalidArgumentError("value of " + key + " is not a number: " + entry->value);
    }
    absl::StatusOr<Revision> written =
        store.Update(key, std::to_string(value + 1), entry->mod_revision);
    if (written.ok()) {
      ++done;
    } else if (written.status().code() == absl::StatusCode::kUnavailable) {
      // A restarting server or a long lock: the caller's budget bounds the test, not us.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } else if (written.status().code() != absl::StatusCode::kAborted) {
      return Annotate(written.status(), "updating " + key);
    }
  }
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  if (argc != 4 || std::string_view(argv[1]) != "increment") {
    std::fprintf(stderr, "usage: %s increment <key> <count>\n", argv[0]);
    return 2;
  }
  long count = std::strtol(argv[3], nullptr, 10);
  absl::StatusOr<Config> config = ConfigFromEnvironment();
  absl::Status status = config.status();
  if (status.ok()) {
    absl::StatusOr<std::unique_ptr<Datastore>> store = Open(*config);
    status = store.ok() ? Increment(**store, argv[2], count) : store.status();
  }
  if (!status.ok()) {
    std::fprintf(stderr, "datastore_writer: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace calico::datastore

int main(int argc, char** argv) { return calico::datastore::Main(argc, argv); }
