#include "common/datastore/datastore.h"

#include "absl/strings/str_format.h"

namespace calico::datastore {

absl::Status CompactedError(Revision requested, Revision compacted) {
  // The message is read by operators and by callers deciding what to do, so it says all three:
  // what was asked for, what is still there, and the remedy.
  return absl::OutOfRangeError(absl::StrFormat(
      "revision %d was requested but history up to revision %d is compacted (oldest kept is "
      "%d); re-list and watch from the list's revision",
      requested, compacted, compacted + 1));
}

// OutOfRange is reserved for compaction in this contract (datastore.h: Watch::Next), so the code
// alone decides; it also survives Annotate(), which keeps the code but not payloads.
bool IsCompacted(const absl::Status& status) {
  return status.code() == absl::StatusCode::kOutOfRange;
}

}  // namespace calico::datastore
