#include "cni-plugin/unary_client.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/message_lite.h"

namespace calico::cni {
namespace {

// grpc-message is percent-encoded (gRPC over HTTP/2 spec).
std::string PercentDecode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    int hi, lo;
    auto hex = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (in[i] == '%' && i + 2 < in.size() && (hi = hex(in[i + 1])) >= 0 && (lo = hex(in[i + 2])) >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

nghttp2_nv Header(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

}  // namespace

struct UnaryClient::Session {
  nghttp2_session* h2 = nullptr;
  int fd = -1;
  absl::Status io_error;
  // The call in flight.
  int32_t stream = -1;
  std::string body;      // request: 5-byte prefix + message
  size_t body_sent = 0;
  std::string received;  // response DATA
  std::string http_status;
  std::string grpc_status;
  std::string grpc_message;
  bool closed = false;
  uint32_t close_error = 0;

  ~Session() {
    if (h2 != nullptr) nghttp2_session_del(h2);
  }

  static ssize_t Send(nghttp2_session*, const uint8_t* data, size_t length, int, void* user) {
    auto* s = static_cast<Session*>(user);
    ssize_t n = ::send(s->fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return NGHTTP2_ERR_WOULDBLOCK;
    if (n < 0) {
      s->io_error = absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return n;
  }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto* s = static_cast<Session*>(user);
    if (frame->hd.stream_id != s->stream) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") s->http_status = std::string(v);
    if (n == "grpc-status") s->grpc_status = std::string(v);
    if (n == "grpc-message") s->grpc_message = PercentDecode(v);
    return 0;
  }
  static int OnData(nghttp2_session*, uint8_t, int32_t stream, const uint8_t* data, size_t len,
                    void* user) {
    auto* s = static_cast<Session*>(user);
    if (stream == s->stream) s->received.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  static int OnClose(nghttp2_session*, int32_t stream, uint32_t error, void* user) {
    auto* s = static_cast<Session*>(user);
    if (stream == s->stream) {
      s->closed = true;
      s->close_error = error;
    }
    return 0;
  }
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source*, void* user) {
    auto* s = static_cast<Session*>(user);
    size_t n = std::min(length, s->body.size() - s->body_sent);
    std::memcpy(buf, s->body.data() + s->body_sent, n);
    s->body_sent += n;
    if (s->body_sent == s->body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

UnaryClient::UnaryClient(int fd, std::string socket_path)
    : fd_(fd), socket_path_(std::move(socket_path)), session_(std::make_unique<Session>()) {}

UnaryClient::~UnaryClient() {
  session_.reset();
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<UnaryClient>> UnaryClient::Connect(const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", socket_path));
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect ", socket_path, ": ", std::strerror(e)));
  }
  std::unique_ptr<UnaryClient> client(new UnaryClient(fd, socket_path));
  Session& s = *client->session_;
  s.fd = fd;
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_send_callback(cb, &Session::Send);
  nghttp2_session_callbacks_set_on_header_callback(cb, &Session::OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Session::OnData);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Session::OnClose);
  int rc = nghttp2_session_client_new(&s.h2, cb, &s);
  nghttp2_session_callbacks_del(cb);
  if (rc != 0) return absl::InternalError(absl::StrCat("nghttp2: ", nghttp2_strerror(rc)));
  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
  nghttp2_submit_settings(s.h2, NGHTTP2_FLAG_NONE, settings, 2);
  return client;
}

absl::Status UnaryClient::Call(std::string_view method_view, const google::protobuf::MessageLite& request,
                               google::protobuf::MessageLite& response, absl::Duration timeout) {
  Session& s = *session_;
  const std::string method(method_view);
  std::string message;
  if (!request.SerializeToString(&message)) return absl::InternalError("serializing the request");
  s.body.assign(5, '\0');
  uint32_t len = static_cast<uint32_t>(message.size());
  s.body[1] = static_cast<char>(len >> 24);
  s.body[2] = static_cast<char>(len >> 16);
  s.body[3] = static_cast<char>(len >> 8);
  s.body[4] = static_cast<char>(len);
  s.body += message;
  s.body_sent = 0;
  s.received.clear();
  s.http_status.clear();
  s.grpc_status.clear();
  s.grpc_message.clear();
  s.closed = false;

  std::string timeout_text = absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout)), "m");
  nghttp2_nv headers[] = {
      Header(":method", "POST"),         Header(":scheme", "http"),
      Header(":path", method),           Header(":authority", "localhost"),
      Header("content-type", "application/grpc"), Header("te", "trailers"),
      Header("grpc-timeout", timeout_text),
  };
  nghttp2_data_provider provider{};
  provider.read_callback = &Session::ReadBody;
  s.stream = nghttp2_submit_request(s.h2, nullptr, headers, sizeof(headers) / sizeof(headers[0]),
                                    &provider, nullptr);
  if (s.stream < 0) return absl::InternalError(absl::StrCat("nghttp2: ", nghttp2_strerror(s.stream)));

  const absl::Time deadline = absl::Now() + timeout;
  uint8_t buf[16384];
  while (!s.closed) {
    if (int rc = nghttp2_session_send(s.h2); rc != 0) {
      return s.io_error.ok() ? absl::UnavailableError(absl::StrCat("nghttp2: ", nghttp2_strerror(rc)))
                             : s.io_error;
    }
    if (s.closed) break;
    int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0) return absl::DeadlineExceededError(absl::StrCat(method, ": no answer in time"));
    pollfd p{fd_, POLLIN, 0};
    if (nghttp2_session_want_write(s.h2)) p.events |= POLLOUT;
    int ready = poll(&p, 1, wait_ms);
    if (ready < 0 && errno != EINTR) return absl::UnavailableError(absl::StrCat("poll: ", std::strerror(errno)));
    if (ready <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return absl::UnavailableError(absl::StrCat(method, ": connection closed by the daemon"));
      }
      if (n > 0) {
        ssize_t used = nghttp2_session_mem_recv(s.h2, buf, static_cast<size_t>(n));
        if (used < 0) {
          return absl::UnavailableError(absl::StrCat("nghttp2: ", nghttp2_strerror(static_cast<int>(used))));
        }
      }
    }
  }
  if (s.grpc_status.empty()) {
    return absl::UnavailableError(absl::StrCat(method, ": stream ended without a gRPC status (HTTP ",
                                               s.http_status, ", error ", s.close_error, ")"));
  }
  int code = 2;
  if (!absl::SimpleAtoi(s.grpc_status, &code) || code < 0 || code > 16) code = 2;
  if (code != 0) return absl::Status(static_cast<absl::StatusCode>(code), s.grpc_message);
  if (s.received.size() < 5) return absl::InternalError(absl::StrCat(method, ": empty response"));
  if (s.received[0] != 0) return absl::InternalError(absl::StrCat(method, ": compressed response"));
  if (!response.ParseFromArray(s.received.data() + 5, static_cast<int>(s.received.size() - 5))) {
    return absl::InternalError(absl::StrCat(method, ": malformed response"));
  }
  return absl::OkStatus();
}

}  // namespace calico::cni
