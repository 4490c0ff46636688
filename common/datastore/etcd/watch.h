#pragma once
// Internal to the etcd backend: a prefix watch over etcd's bidi Watch stream.
// A reader thread owns the stream; Next() only drains a queue, so a timeout never has to
// interrupt gRPC. Invariants:
//  - next_revision_ is one past the last revision queued (or a progress notification's
//    header revision): a new stream after any failure starts exactly there, so the caller
//    sees neither a gap nor a duplicate across reconnects.
//  - etcd's compaction answer (compact_revision > 0) ends the watch with CompactedError;
//    every other stream failure is retried with backoff, rotating through the endpoints.

#include <grpcpp/client_context.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/datastore/datastore.h"
#include "common/datastore/etcd/connection.h"

namespace calico::datastore::etcd {

class EtcdWatch : public Watch {
 public:
  // Starts the reader thread; watching begins at revision `after` + 1.
  EtcdWatch(std::shared_ptr<Connection> connection, std::string prefix, Revision after);
  ~EtcdWatch() override;  // cancels and joins the reader thread

  absl::StatusOr<std::vector<Event>> Next(absl::Duration timeout) override;
  void Cancel() override;

 private:
  // The reader thread: streams, reconnects, stops on Cancel or a fatal error.
  void Run();
  // One stream on endpoint `index` until it ends. Sets *connected once the member was
  // reached and *established once etcd confirmed the watch. Gives up dialling early when
  // another endpoint answers after `answers` (see Run).
  absl::Status RunStream(size_t index, uint64_t answers, bool* connected, bool* established);
  enum class Woken { kCancelled, kAnswered, kTimeout };
  // Waits out a reconnect backoff: up to `duration`, less if cancelled or (when `answers` is
  // given) if the connection was answered after it.
  Woken WaitOutBackoff(absl::Duration duration, std::optional<uint64_t> answers);

  const std::shared_ptr<Connection> connection_;
  const std::string prefix_;

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;  // to TryCancel
  std::deque<Event> queue_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);  // terminal; reported once the queue is drained
  Revision next_revision_ ABSL_GUARDED_BY(mu_);

  std::thread reader_;
};

}  // namespace calico::datastore::etcd
