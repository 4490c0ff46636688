#include "ipamd/service/daemon.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "ipamd/allocator/resource_environment.h"
#include "common/resources/resource.h"
#include "ipamd/service/tunnel_address.h"

namespace calico::ipamd::service {

Daemon::Daemon(datastore::Datastore& store, DaemonOptions options, InUseLoader load_in_use)
    : options_(std::move(options)),
      store_(store, metrics_),
      load_in_use_(std::move(load_in_use)),
      env_(DatastoreEnvironment(store_, options_.env_cache_ttl)) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(datastore::Datastore& store,
                                                      DaemonOptions options,
                                                      InUseLoader load_in_use) {
  if (options.node.empty()) return absl::InvalidArgumentError("node name is empty");
  std::unique_ptr<Daemon> d(new Daemon(store, std::move(options), std::move(load_in_use)));
  d->allocator_ = std::make_unique<Allocator>(d->store_, d->env_, d->options_.allocator);
  d->service_ = std::make_unique<IpamService>(*d->allocator_, d->store_, d->options_.node,
                                              d->load_in_use_, d->metrics_);
  if (d->options_.collect_leaks && d->load_in_use_) {
    LeakCollectorOptions lc;
    lc.node = d->options_.node;
    lc.grace = d->options_.leak_grace;
    d->collector_ = std::make_unique<LeakCollector>(
        *d->allocator_, d->store_, d->load_in_use_, lc, [] { return absl::Now(); }, d->metrics_);
  }
  if (d->options_.http) {
    http::HttpServerOptions ho;
    ho.host = d->options_.http->host;
    ho.port = d->options_.http->port;
    ho.metrics = &d->metrics_;
    datastore::Datastore* raw = &store;
    // Ready when the datastore answers: without it every request would fail with Unavailable.
    ho.readiness = [raw]() -> absl::Status {
      absl::StatusOr<datastore::Revision> rev = raw->CurrentRevision();
      if (!rev.ok()) return Annotate(rev.status(), "datastore " + raw->Describe());
      return absl::OkStatus();
    };
    ASSIGN_OR_RETURN(d->http_, http::HttpServer::Start(ho));
  }
  rpc::UnixServerOptions ro;
  ro.socket_path = d->options_.socket_path;
  ro.services = {d->service_.get()};
  ro.service_names = {"calico.ipam.v1.Ipam"};
  ASSIGN_OR_RETURN(d->rpc_, rpc::UnixServer::Start(ro));
  d->EnsureTunnel();  // at once: felixd configures VXLAN from the Node as soon as it is there
  d->loop_ = std::thread([raw = d.get()] { raw->Loop(); });
  if (d->options_.vxlan_tunnel) d->tunnel_loop_ = std::thread([raw = d.get()] { raw->TunnelLoop(); });
  log::Info("started", {{"node", d->options_.node},
                        {"socket", d->options_.socket_path},
                        {"datastore", store.Describe()},
                        {"leak_grace", absl::FormatDuration(d->options_.leak_grace)},
                        {"collect_leaks", d->collector_ != nullptr ? "true" : "false"}});
  return d;
}

Daemon::~Daemon() { Stop(); }

void Daemon::Stop(absl::Duration grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (rpc_ != nullptr) rpc_->Shutdown(grace);
  if (loop_.joinable()) loop_.join();
  if (tunnel_loop_.joinable()) tunnel_loop_.join();
  if (http_ != nullptr) http_->Stop();
  log::Info("stopped", {{"node", options_.node}});
}

absl::Status Daemon::UpdatePoolGauges() {
  ASSIGN_OR_RETURN(std::vector<Pool> pools, env_.pools());
  ASSIGN_OR_RETURN(std::vector<Block> blocks, allocator_->ListBlocks());
  http::MetricFamily& size =
      metrics_.Gauge("ipamd_pool_addresses", "Addresses in the IPPool's CIDR.", {"pool"});
  http::MetricFamily& used = metrics_.Gauge(
      "ipamd_pool_allocated_addresses", "Addresses of the IPPool allocated to a handle.", {"pool"});
  http::MetricFamily& blocks_gauge =
      metrics_.Gauge("ipamd_pool_blocks", "Allocation blocks carved from the IPPool.", {"pool"});
  http::MetricFamily& ratio = metrics_.Gauge(
      "ipamd_pool_utilisation", "Allocated addresses / addresses of the IPPool (0-1).", {"pool"});
  // Recomputed from scratch so a deleted pool's series disappear.
  size.Clear();
  used.Clear();
  blocks_gauge.Clear();
  ratio.Clear();
  for (const Pool& pool : pools) {
    double total = static_cast<double>(net::Size(pool.cidr));
    double allocated = 0;
    int n = 0;
    for (const Block& b : blocks) {
      if (!net::Contains(pool.cidr, b.cidr)) continue;
      ++n;
      allocated += b.NumAddresses() - b.NumFree();
    }
    size.Set({pool.name}, total);
    used.Set({pool.name}, allocated);
    blocks_gauge.Set({pool.name}, n);
    ratio.Set({pool.name}, total > 0 ? allocated / total : 0);
  }
  return absl::OkStatus();
}

absl::Status Daemon::RunLoopOnce() {
  absl::Status status = UpdatePoolGauges();
  if (collector_ != nullptr) {
    absl::StatusOr<CollectResult> r = collector_->RunOnce();
    if (!r.ok()) status.Update(r.status());
  }
  return status;
}

void Daemon::EnsureTunnel() {
  if (!options_.vxlan_tunnel) return;
  std::string error;
  for (int family : {4, 6}) {
    absl::StatusOr<TunnelResult> r = EnsureVxlanTunnelAddress(*allocator_, store_, options_.node, family);
    if (!r.ok() && error.empty()) error = r.status().ToString();
  }
  if (!error.empty() && error != tunnel_error_) {
    log::Warn("vxlan_tunnel_address_failed", {{"node", options_.node}, {"error", error}});
  }
  tunnel_error_ = error;
}

void Daemon::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    absl::Status s = RunLoopOnce();
    if (!s.ok()) log::Warn("background_pass_failed", {{"error", s.ToString()}});
    lock.lock();
    wake_.wait_for(lock, absl::ToChronoNanoseconds(options_.loop_interval),
                   [this] { return stopping_; });
  }
}

// Pools and this node's Node are watched, so a pool switched to VXLAN gets its tunnel address
// at once without every ipamd polling the datastore; the interval pass catches anything missed.
void Daemon::TunnelLoop() {
  const std::vector<std::string> prefixes = {
      resources::KeyPrefix(*resources::FindKind("IPPool")),
      resources::KeyPrefix(*resources::FindKind("Node")) + options_.node};
  std::vector<std::unique_ptr<datastore::Watch>> watches(prefixes.size());
  absl::Time next_pass = absl::Now() + options_.tunnel_interval;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    bool changed = false;
    for (size_t i = 0; i < prefixes.size(); ++i) {
      if (watches[i] == nullptr) {
        absl::StatusOr<datastore::Revision> rev = store_.CurrentRevision();
        absl::StatusOr<std::unique_ptr<datastore::Watch>> w =
            rev.ok() ? store_.WatchPrefix(prefixes[i], *rev) : rev.status();
        if (!w.ok()) {
          absl::SleepFor(absl::Milliseconds(200));  // the datastore is down: the pass retries
          continue;
        }
        watches[i] = std::move(*w);
        changed = true;  // whatever happened while it was not watched
      }
      absl::StatusOr<std::vector<datastore::Event>> events = watches[i]->Next(absl::Milliseconds(200));
      if (!events.ok()) {
        watches[i].reset();
      } else if (!events->empty()) {
        changed = true;
      }
    }
    if (changed || absl::Now() >= next_pass) {
      EnsureTunnel();
      next_pass = absl::Now() + options_.tunnel_interval;
    }
  }
}
}  // namespace calico::ipamd::service
