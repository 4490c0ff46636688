#include "common/datastore/etcd/watch.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/datastore/etcd/keys.h"
#include "common/log/log.h"

namespace calico::datastore::etcd {
namespace {

// Bounds memory when the consumer stalls: the reader stops reading and etcd buffers.
constexpr size_t kMaxQueuedEvents = 100000;
constexpr absl::Duration kInitialBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);
// How often a blocked connect re-checks Cancel().
constexpr absl::Duration kConnectSlice = absl::Milliseconds(100);

Event ToEvent(const mvccpb::Event& e) {
  Event event;
  event.type = e.type() == mvccpb::Event::DELETE ? EventType::kDelete : EventType::kPut;
  event.key = e.kv().key();
  if (event.type == EventType::kPut) event.value = e.kv().value();
  // For a delete, etcd sets kv.mod_revision to the revision of the deletion.
  event.revision = e.kv().mod_revision();
  return event;
}

}  // namespace

EtcdWatch::EtcdWatch(std::shared_ptr<Connection> connection, std::string prefix, Revision after)
    : connection_(std::move(connection)), prefix_(std::move(prefix)), next_revision_(after + 1) {
  reader_ = std::thread([this] { Run(); });
}

EtcdWatch::~EtcdWatch() {
  Cancel();
  reader_.join();
}

void EtcdWatch::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (stream_context_ != nullptr) stream_context_->TryCancel();
}

absl::StatusOr<std::vector<Event>> EtcdWatch::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return cancelled_ || !queue_.empty() || !error_.ok();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (cancelled_) {
    return absl::CancelledError(absl::StrCat("watch on \"", prefix_, "\" cancelled"));
  }
  if (!queue_.empty()) {
    std::vector<Event> batch(std::make_move_iterator(queue_.begin()),
                             std::make_move_iterator(queue_.end()));
    queue_.clear();
    return batch;
  }
  if (!error_.ok()) return error_;
  return std::vector<Event>{};
}

EtcdWatch::Woken EtcdWatch::WaitOutBackoff(absl::Duration duration,
                                           std::optional<uint64_t> answers) {
  const absl::Time until = absl::Now() + duration;
  absl::MutexLock lock(&mu_);
  auto cancelled = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return cancelled_; };
  // The answer count is not under mu_, so it is looked at in slices.
  while (true) {
    if (mu_.AwaitWithTimeout(absl::Condition(&cancelled),
                             std::min(kConnectSlice, until - absl::Now()))) {
      return Woken::kCancelled;
    }
    if (answers && connection_->answers() != *answers) return Woken::kAnswered;
    if (absl::Now() >= until) return Woken::kTimeout;
  }
}

void EtcdWatch::Run() {
  std::vector<Endpoint>& endpoints = connection_->endpoints();
  size_t index = connection_->preferred();
  absl::Duration backoff = kInitialBackoff;
  while (true) {
    bool connected = false;
    bool established = false;
    uint64_t answers = connection_->answers();
    absl::Status status = RunStream(index, answers, &connected, &established);
    // A stream that was up answered itself: only answers after its end say more.
    if (established) answers = connection_->answers();
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      if (IsCompacted(status) || absl::IsPermissionDenied(status) ||
          absl::IsInvalidArgument(status)) {
        // Retrying cannot help: the caller must re-list (compaction) or fix its config.
        log::Warn("etcd_watch_failed", {{"prefix", prefix_}, {"error", ToStd(status.message())}});
        error_ = status;
        return;
      }
      if (established) backoff = kInitialBackoff;
      log::Warn("etcd_watch_reconnecting", {{"prefix", prefix_},
                                            {"endpoint", endpoints[index].url},
                                            {"next_revision", absl::StrCat(next_revision_)},
                                            {"backoff", absl::FormatDuration(backoff)},
                                            {"error", ToStd(status.message())}});
    }
    // Only a member that could not be reached is left early on an answer: a stream refused
    // by a member that answers calls (connected, never established) keeps its backoff.
    std::optional<uint64_t> wake_on;
    if (!connected || established) wake_on = answers;
    if (WaitOutBackoff(kInitialBackoff, wake_on) == Woken::kCancelled) return;
    switch (WaitOutBackoff(backoff - kInitialBackoff, wake_on)) {
      case Woken::kCancelled:
        return;
      case Woken::kAnswered:
        // etcd is back (a call, or another watch, was answered since this stream began):
        // resume now, on the member that answered, not after a backoff grown during the
        // outage (up to a dial timeout plus kMaxBackoff).
        index = connection_->preferred();
        backoff = kInitialBackoff;
        break;
      case Woken::kTimeout:
        backoff = std::min(backoff * 2, kMaxBackoff);
        // The stream's member may be the one that died: resume on the next one.
        index = (index + 1) % endpoints.size();
        break;
    }
  }
}

absl::Status EtcdWatch::RunStream(size_t index, uint64_t answers, bool* connected_out,
                                  bool* established) {
  Endpoint& endpoint = connection_->endpoints()[index];
  // Connect in slices so that Cancel() is noticed within kConnectSlice, and so is another
  // member answering while this one is still down.
  const absl::Time dial_deadline = absl::Now() + connection_->config().dial_timeout;
  while (true) {
    absl::Status connected = connection_->Connect(
        endpoint, std::min(dial_deadline, absl::Now() + kConnectSlice), /*fail_fast=*/false);
    if (connected.ok()) break;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return absl::CancelledError("watch cancelled");
    }
    const size_t preferred = connection_->preferred();
    if (connection_->answers() != answers && preferred != index) {
      return absl::UnavailableError(absl::StrCat("etcd ", endpoint.url, " still not connected when ",
                                                 connection_->endpoints()[preferred].url,
                                                 " answered"));
    }
    if (absl::Now() >= dial_deadline) return connected;
  }
  *connected_out = true;

  grpc::ClientContext context;
  RETURN_IF_ERROR(connection_->Authorize(endpoint, &context));
  Revision start;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return absl::CancelledError("watch cancelled");
    stream_context_ = &context;
    start = next_revision_;
  }
  // Whatever happens below, the context must not stay reachable from Cancel().
  struct Unpublish {
    EtcdWatch* self;
    ~Unpublish() {
      absl::MutexLock lock(&self->mu_);
      self->stream_context_ = nullptr;
    }
  } unpublish{this};

  std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      stream = endpoint.watch->Watch(&context);
  etcdserverpb::WatchRequest request;
  etcdserverpb::WatchCreateRequest* create = request.mutable_create_request();
  create->set_key(WatchKey(prefix_));
  create->set_range_end(PrefixEnd(prefix_));
  create->set_start_revision(start);
  // Progress notifications let next_revision_ advance on a quiet prefix, so a reconnect
  // after a compaction elsewhere in the keyspace does not fail needlessly.
  create->set_progress_notify(true);
  absl::Status result;
  bool stopped_early = false;  // we leave a live stream: it must be cancelled first
  if (stream->Write(request)) {
    etcdserverpb::WatchResponse response;
    while (stream->Read(&response)) {
      if (response.compact_revision() > 0) {
        // etcd reports its oldest kept revision; the contract names the last dropped one
        // (see EtcdDatastore::Compact).
        result = CompactedError(start, response.compact_revision() - 1);
        stopped_early = true;
        break;
      }
      if (response.canceled()) {
        // Not compaction: e.g. auth revoked, or the member is shutting down.
        result = absl::UnavailableError(absl::StrCat("etcd cancelled the watch at ", endpoint.url,
                                                     ": ", response.cancel_reason()));
        if (response.cancel_reason().find("permission denied") != std::string::npos) {
          result = absl::PermissionDeniedError(ToStd(result.message()));
        }
        stopped_early = true;
        break;
      }
      if (response.created()) {
        *established = true;
        connection_->Answered(index);
        log::Debug("etcd_watch_created", {{"prefix", prefix_},
                                          {"endpoint", endpoint.url},
                                          {"start_revision", absl::StrCat(start)}});
      }
      absl::MutexLock lock(&mu_);
      if (cancelled_) {
        stopped_early = true;
        break;
      }
      if (response.events_size() == 0) {
        // A progress notification: etcd promises every later event on this stream has a
        // higher revision than the header's. A "created" reply carries no such promise.
        if (!response.created() && response.header().revision() >= next_revision_) {
          next_revision_ = response.header().revision() + 1;
        }
        continue;
      }
      for (const mvccpb::Event& e : response.events()) {
        queue_.push_back(ToEvent(e));
      }
      next_revision_ = queue_.back().revision + 1;
      start = next_revision_;  // what a compaction reported from now on would have cut
      auto has_room = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return cancelled_ || queue_.size() < kMaxQueuedEvents;
      };
      mu_.Await(absl::Condition(&has_room));
    }
  }
  // Finish() waits for the stream to close; a stream we walk away from must be cancelled.
  // (Not otherwise: that would turn the server's real status into CANCELLED.)
  if (stopped_early) context.TryCancel();
  grpc::Status finished = stream->Finish();
  if (!result.ok()) return result;
  if (finished.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    connection_->InvalidateToken();
  }
  if (finished.ok()) {
    return absl::UnavailableError(absl::StrCat("etcd closed the watch stream at ", endpoint.url));
  }
  return FromGrpc(finished, "Watch", endpoint.url);
}

}  // namespace calico::datastore::etcd
