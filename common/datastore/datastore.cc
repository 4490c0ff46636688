#include "common/datastore/datastore.h"

#include <algorithm>
#include <string_view>

#include "absl/strings/str_cat.h"
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

absl::Status ValidateTxnOps(const std::vector<TxnOp>& ops) {
  if (ops.empty()) return absl::InvalidArgumentError("commit: no operations");
  std::vector<std::string_view> keys;
  keys.reserve(ops.size());
  for (const TxnOp& op : ops) {
    if (op.key.empty()) return absl::InvalidArgumentError("commit: empty key");
    keys.push_back(op.key);
  }
  std::sort(keys.begin(), keys.end());
  auto dup = std::adjacent_find(keys.begin(), keys.end());
  if (dup != keys.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "commit: key \"", absl::string_view(dup->data(), dup->size()), "\" appears in more than one op"));
  }
  return absl::OkStatus();
}

}  // namespace calico::datastore
