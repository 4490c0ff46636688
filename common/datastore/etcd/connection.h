#pragma once
// Internal to the etcd backend: the set of etcd endpoints one client talks to, and the
// fail-over policy every RPC goes through. Owns the gRPC channels and the auth token.
// Invariants:
//  - A unary RPC tries each endpoint at most once per call (plus one re-try of a pass that
//    only skipped endpoints the channel already knew to be down), starting with the endpoint
//    that last answered, so a dead first endpoint costs one fail-over, not one per call.
//  - Only gRPC UNAVAILABLE / DEADLINE_EXCEEDED (and "could not connect") fail over; anything
//    else is etcd's answer and is returned with the gRPC code carried over to absl.
//  - Shared (std::shared_ptr) by the datastore and its watches, so a watch may outlive it.

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/datastore/config.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace calico::datastore::etcd {

struct Endpoint {
  std::string url;     // as configured, for messages: "http://127.0.0.1:2379"
  std::string target;  // what gRPC dials: "127.0.0.1:2379"
  bool tls = false;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth;
};

// Splits "http://host:port" into its parts; InvalidArgument naming the URL otherwise.
// A missing port means etcd's client port, 2379.
absl::Status ParseEndpointUrl(std::string_view url, std::string* target, bool* tls);

// gRPC → absl, keeping the code (the two enums share numbering) and naming the endpoint.
absl::Status FromGrpc(const grpc::Status& status, std::string_view method,
                      std::string_view endpoint_url);

class Connection {
 public:
  // One attempt of an RPC on one endpoint; the context already carries deadline and token.
  using Rpc = std::function<grpc::Status(Endpoint& endpoint, grpc::ClientContext* context)>;

  // Validates the config and reads the TLS files; never contacts etcd (daemons start before
  // their datastore may be reachable, and every call fails over anyway).
  static absl::StatusOr<std::shared_ptr<Connection>> Create(const Config& config);

  // Whether a failed attempt may be repeated on another endpoint. A write whose request was
  // sent and whose reply was lost may have been applied: repeating it would turn that success
  // into a spurious conflict (the CAS fails against its own write), breaking the contract that
  // Aborted means nothing changed. So writes fail over only while nothing was sent.
  enum class Repeat { kAlways, kOnlyUnsent };

  // Runs `rpc` with fail-over (see the file comment). All endpoints failing gives
  // Unavailable("etcd unreachable at <urls>: ..."); with kOnlyUnsent, a failure after the
  // request went out gives Unavailable("... outcome unknown ...") at once.
  absl::Status Call(std::string_view method, const Rpc& rpc, Repeat repeat = Repeat::kAlways);

  // For watches, which manage their own streams: waits until `endpoint` is connected,
  // at most until `deadline`. With `fail_fast`, a channel in TRANSIENT_FAILURE (known down)
  // returns Unavailable at once instead of waiting for its reconnect. *timed_out (optional)
  // tells a spent dial timeout from a fast failure.
  absl::Status Connect(Endpoint& endpoint, absl::Time deadline, bool fail_fast,
                       bool* timed_out = nullptr);
  // Adds the auth token (fetching one from `endpoint` if needed) to a stream's context.
  absl::Status Authorize(Endpoint& endpoint, grpc::ClientContext* context);
  // Called when etcd rejected the token: the next Authorize fetches a fresh one.
  void InvalidateToken();

  std::vector<Endpoint>& endpoints() { return endpoints_; }
  size_t preferred() const { return preferred_.load(std::memory_order_relaxed); }
  // Counts the times an endpoint answered (a call, or a watch etcd confirmed). A watch waiting
  // to reconnect takes a new answer as word that etcd is back, and where: the preferred one.
  uint64_t answers() const { return answers_.load(std::memory_order_relaxed); }
  void Answered(size_t index);
  const Config& config() const { return config_; }
  // "http://a:2379,http://b:2379"
  const std::string& urls() const { return urls_; }

 private:
  explicit Connection(const Config& config) : config_(config) {}

  void SetPreferred(size_t index);

  Config config_;
  std::string urls_;
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> preferred_{0};
  std::atomic<uint64_t> answers_{0};

  absl::Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);
};

}  // namespace calico::datastore::etcd
