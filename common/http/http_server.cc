#include "common/http/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"

namespace calico::http {
namespace {

bool IsLoopbackHost(std::string_view host) {
  return host == "localhost" || host == "::1" || host.substr(0, 4) == "127.";
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress out;
  std::string_view port_text;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("listen address \"", std::string(text), "\": expected [host]:port"));
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("listen address \"", std::string(text), "\": expected host:port"));
    }
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (!absl::SimpleAtoi(ToAbsl(port_text), &out.port) || out.port < 0 || out.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", std::string(text), "\": port must be 0-65535"));
  }
  if (!IsLoopbackHost(out.host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen address \"", std::string(text),
        "\": only loopback hosts (127.0.0.0/8, ::1, localhost) are allowed for the unauthenticated "
        "health and metrics endpoint"));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options) {
  if (!IsLoopbackHost(options.host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP host \"", options.host, "\" is not a loopback address"));
  }
  std::unique_ptr<HttpServer> self(new HttpServer());
  self->server_ = std::make_unique<httplib::Server>();
  httplib::Server& svr = *self->server_;
  // httplib's default also sets SO_REUSEPORT, which would let a second daemon bind the same
  // port and silently share (steal half of) its probes. SO_REUSEADDR alone survives restarts.
  svr.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  svr.Get("/liveness", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  auto readiness = options.readiness;
  auto detail = options.readiness_detail;
  svr.Get("/readiness", [readiness, detail](const httplib::Request&, httplib::Response& res) {
    absl::Status ready = readiness ? readiness() : absl::OkStatus();
    if (ready.ok()) {
      res.set_content(absl::StrCat("ready\n", detail ? detail() : std::string()), "text/plain");
    } else {
      res.status = 503;
      res.set_content(absl::StrCat("not ready: ", ToStd(ready.message()), "\n"), "text/plain");
    }
  });
  const MetricsRegistry* metrics = options.metrics;
  if (metrics != nullptr) {
    svr.Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics->RenderText(), "text/plain; version=0.0.4; charset=utf-8");
    });
  }
  // httplib 0.11 has no wait_until_ready(): bind here (so errors surface synchronously),
  // accept on a thread, then wait for is_running().
  if (options.port == 0) {
    self->port_ = svr.bind_to_any_port(options.host);
    if (self->port_ <= 0) {
      return absl::UnavailableError(absl::StrCat("HTTP: cannot bind ", options.host, ":0"));
    }
  } else {
    if (!svr.bind_to_port(options.host, options.port)) {
      return absl::UnavailableError(
          absl::StrCat("HTTP: cannot bind ", options.host, ":", options.port, " (in use?)"));
    }
    self->port_ = options.port;
  }
  self->thread_ = std::thread([&svr] { svr.listen_after_bind(); });
  for (int i = 0; i < 500 && !svr.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  log::Info("http_listening", {{"host", options.host}, {"port", absl::StrCat(self->port_)}});
  return self;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace calico::http
