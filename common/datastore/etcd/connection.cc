#include "common/datastore/etcd/connection.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"

namespace calico::datastore::etcd {
namespace {

std::chrono::system_clock::time_point ToChrono(absl::Time t) { return absl::ToChronoTime(t); }

// Reads a whole PEM file; the message names the variable and the path because operators
// set these through the environment and a typo is the usual cause.
absl::StatusOr<std::string> ReadPemFile(std::string_view variable, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(variable), " \"", path, "\": cannot read: ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(variable), " \"", path, "\": read error"));
  }
  if (contents.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(variable), " \"", path, "\": empty"));
  }
  return contents.str();
}

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

std::string GrpcMessage(const grpc::Status& status) {
  if (status.error_message().empty()) return absl::StrCat("gRPC code ", status.error_code());
  return status.error_message();
}

}  // namespace

absl::Status ParseEndpointUrl(std::string_view url, std::string* target, bool* tls) {
  std::string_view rest;
  if (url.starts_with("http://")) {
    *tls = false;
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    *tls = true;
    rest = url.substr(8);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd endpoint \"", ToAbsl(url), "\": want http://host:port or https://host:port"));
  }
  while (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd endpoint \"", ToAbsl(url), "\": want http://host:port or https://host:port"));
  }
  *target = std::string(rest);
  // "[::1]" and "host" have no port; "[::1]:2379" and "host:2379" do.
  const size_t colon = rest.rfind(':');
  const size_t bracket = rest.rfind(']');
  if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket)) {
    *target += ":2379";
  }
  return absl::OkStatus();
}

absl::Status FromGrpc(const grpc::Status& status, std::string_view method,
                      std::string_view endpoint_url) {
  if (status.ok()) return absl::OkStatus();
  if (Retryable(status.error_code())) {
    return absl::UnavailableError(absl::StrCat("etcd unreachable at ", ToAbsl(endpoint_url), ": ",
                                               ToAbsl(method), ": ", GrpcMessage(status)));
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("etcd ", ToAbsl(method), " at ", ToAbsl(endpoint_url), ": ",
                                   GrpcMessage(status)));
}

absl::StatusOr<std::shared_ptr<Connection>> Connection::Create(const Config& config) {
  if (config.etcd_endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: no endpoints configured (ETCD_ENDPOINTS)");
  }
  if (config.etcd_cert_file.empty() != config.etcd_key_file.empty()) {
    return absl::InvalidArgumentError(
        "etcd: ETCD_CERT_FILE and ETCD_KEY_FILE must be set together (client certificate)");
  }
  if (config.request_timeout <= absl::ZeroDuration() ||
      config.dial_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("etcd: request and dial timeouts must be positive");
  }
  // Read the files even for plain-http endpoints: a configured but unreadable file is a
  // mistake the operator wants to hear about at start, not at the first https endpoint.
  grpc::SslCredentialsOptions ssl;
  if (!config.etcd_ca_cert_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs,
                     ReadPemFile("ETCD_CA_CERT_FILE", config.etcd_ca_cert_file));
  }
  if (!config.etcd_cert_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadPemFile("ETCD_CERT_FILE", config.etcd_cert_file));
    ASSIGN_OR_RETURN(ssl.pem_private_key, ReadPemFile("ETCD_KEY_FILE", config.etcd_key_file));
  }

  std::shared_ptr<Connection> conn(new Connection(config));
  conn->urls_ = absl::StrJoin(config.etcd_endpoints, ",");
  conn->endpoints_.reserve(config.etcd_endpoints.size());
  for (const std::string& url : config.etcd_endpoints) {
    Endpoint ep;
    ep.url = url;
    RETURN_IF_ERROR(ParseEndpointUrl(url, &ep.target, &ep.tls));
    grpc::ChannelArguments args;
    // A restarted etcd should be redialled within ~1 s, not gRPC's default of up to 120 s.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // In gRPC core this is also the minimum time one connection attempt may take.
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                static_cast<int>(absl::ToInt64Milliseconds(config.dial_timeout)));
    // Detect a silently dead member under a long-lived watch. etcd's server enforces a
    // 5 s minimum ping interval (--grpc-keepalive-min-time), so stay above it.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    // A List of a big prefix can exceed gRPC's 4 MB default; etcd's own client lifts it too.
    args.SetMaxReceiveMessageSize(-1);
    // Each endpoint gets its own subchannel, so one member's backoff never stalls another.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    std::shared_ptr<grpc::ChannelCredentials> creds =
        ep.tls ? grpc::SslCredentials(ssl) : grpc::InsecureChannelCredentials();
    ep.channel = grpc::CreateCustomChannel(ep.target, creds, args);
    ep.kv = etcdserverpb::KV::NewStub(ep.channel);
    ep.watch = etcdserverpb::Watch::NewStub(ep.channel);
    ep.lease = etcdserverpb::Lease::NewStub(ep.channel);
    ep.auth = etcdserverpb::Auth::NewStub(ep.channel);
    conn->endpoints_.push_back(std::move(ep));
  }
  return conn;
}

absl::Status Connection::Connect(Endpoint& endpoint, absl::Time deadline, bool fail_fast,
                                 bool* timed_out) {
  if (timed_out != nullptr) *timed_out = false;
  grpc_connectivity_state state = endpoint.channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_SHUTDOWN) {
      return absl::UnavailableError(
          absl::StrCat("etcd unreachable at ", endpoint.url, ": channel shut down"));
    }
    if (fail_fast && state == GRPC_CHANNEL_TRANSIENT_FAILURE) {
      return absl::UnavailableError(
          absl::StrCat("etcd unreachable at ", endpoint.url, ": connection failed"));
    }
    if (!endpoint.channel->WaitForStateChange(state, ToChrono(deadline))) {
      if (timed_out != nullptr) *timed_out = true;
      return absl::UnavailableError(absl::StrCat("etcd unreachable at ", endpoint.url,
                                                 ": not connected within dial timeout ",
                                                 absl::FormatDuration(config_.dial_timeout)));
    }
    state = endpoint.channel->GetState(/*try_to_connect=*/true);
  }
  return absl::OkStatus();
}

absl::Status Connection::Authorize(Endpoint& endpoint, grpc::ClientContext* context) {
  if (config_.etcd_username.empty()) return absl::OkStatus();
  std::string token;
  {
    absl::MutexLock lock(&token_mu_);
    token = token_;
  }
  if (token.empty()) {
    etcdserverpb::AuthenticateRequest request;
    request.set_name(config_.etcd_username);
    request.set_password(config_.etcd_password);
    etcdserverpb::AuthenticateResponse response;
    grpc::ClientContext auth_context;
    auth_context.set_deadline(ToChrono(absl::Now() + config_.request_timeout));
    grpc::Status status = endpoint.auth->Authenticate(&auth_context, request, &response);
    // The password never appears in a message; the user name does, to say which one failed.
    if (!status.ok()) {
      return Annotate(FromGrpc(status, "Authenticate", endpoint.url),
                      absl::StrCat("etcd user \"", config_.etcd_username, "\""));
    }
    token = response.token();
    absl::MutexLock lock(&token_mu_);
    token_ = token;
  }
  context->AddMetadata("token", token);
  return absl::OkStatus();
}

void Connection::InvalidateToken() {
  absl::MutexLock lock(&token_mu_);
  token_.clear();
}

void Connection::SetPreferred(size_t index) {
  const size_t old = preferred_.exchange(index, std::memory_order_relaxed);
  if (old != index) {
    log::Info("etcd_endpoint_switched",
              {{"from", endpoints_[old].url}, {"to", endpoints_[index].url}});
  }
}

void Connection::Answered(size_t index) {
  SetPreferred(index);
  answers_.fetch_add(1, std::memory_order_relaxed);
}

absl::Status Connection::Call(std::string_view method, const Rpc& rpc, Repeat repeat) {
  const size_t n = endpoints_.size();
  const size_t start = preferred();
  std::vector<std::string> failures(n);
  std::vector<bool> skipped(n, false);
  // Pass 0 skips channels already known to be down; pass 1 gives those a dial timeout to
  // come back (a single etcd that just restarted is in reconnect backoff for up to 1 s).
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < n; ++i) {
      const size_t index = (start + i) % n;
      if (pass == 1 && !skipped[index]) continue;
      Endpoint& ep = endpoints_[index];
      bool timed_out = false;
      absl::Status connected =
          Connect(ep, absl::Now() + config_.dial_timeout, /*fail_fast=*/pass == 0, &timed_out);
      if (!connected.ok()) {
        // A spent dial timeout is not repeated; a fast failure gets its wait in pass 1.
        skipped[index] = pass == 0 && !timed_out;
        failures[index] = ToStd(connected.message());
        log::Debug(
            "etcd_endpoint_unavailable",
            {{"endpoint", ep.url}, {"method", std::string(method)}, {"error", failures[index]}});
        continue;
      }
      grpc::Status status;
      for (int auth_attempt = 0; auth_attempt < 2; ++auth_attempt) {
        grpc::ClientContext context;
        context.set_deadline(ToChrono(absl::Now() + config_.request_timeout));
        absl::Status authorized = Authorize(ep, &context);
        if (!authorized.ok()) {
          if (!absl::IsUnavailable(authorized)) return authorized;
          status = grpc::Status(grpc::StatusCode::UNAVAILABLE, ToStd(authorized.message()));
          break;
        }
        status = rpc(ep, &context);
        // A token expires (simple tokens after 5 min idle): fetch a new one once.
        if (status.error_code() != grpc::StatusCode::UNAUTHENTICATED ||
            config_.etcd_username.empty()) {
          break;
        }
        InvalidateToken();
      }
      if (status.ok()) {
        Answered(index);
        return absl::OkStatus();
      }
      if (!Retryable(status.error_code())) return FromGrpc(status, method, ep.url);
      if (repeat == Repeat::kOnlyUnsent) {
        return absl::UnavailableError(absl::StrCat(
            "etcd ", ep.url, ": ", ToAbsl(method), " outcome unknown (", GrpcMessage(status),
            "); it may have been applied: re-read before retrying"));
      }
      skipped[index] = false;
      failures[index] = absl::StrCat(ep.url, ": ", ToAbsl(method), ": ", GrpcMessage(status));
      log::Debug(
          "etcd_endpoint_unavailable",
          {{"endpoint", ep.url}, {"method", std::string(method)}, {"error", failures[index]}});
    }
  }
  std::vector<std::string> parts;
  for (size_t i = 0; i < n; ++i) {
    std::string f = failures[(start + i) % n];
    // Connect() already says "etcd unreachable at <url>: ..."; keep the "<url>: ..." part.
    if (f.starts_with("etcd unreachable at ")) f = f.substr(20);
    parts.push_back(std::move(f));
  }
  if (n == 1) {
    return absl::UnavailableError(absl::StrCat("etcd unreachable at ", parts[0]));
  }
  return absl::UnavailableError(
      absl::StrCat("etcd unreachable at ", urls_, ": ", absl::StrJoin(parts, "; ")));
}

}  // namespace calico::datastore::etcd
