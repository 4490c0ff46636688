#include "birdd/peers/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/errno_status.h"

namespace calico::birdd::peers {

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return ErrnoError(errno, "epoll_create1");
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    int e = errno;
    close(ep);
    return ErrnoError(e, "eventfd");
  }
  std::unique_ptr<EventLoop> loop(new EventLoop(ep, wake));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, wake, &ev) != 0) return ErrnoError(errno, "epoll_ctl eventfd");
  return loop;
}

EventLoop::~EventLoop() {
  close(wake_fd_);
  close(epoll_fd_);
}

absl::Status EventLoop::Watch(int fd, bool read, bool write, FdCallback callback) {
  epoll_event ev{};
  ev.events = (read ? EPOLLIN : 0u) | (write ? EPOLLOUT : 0u) | EPOLLRDHUP;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return ErrnoError(errno, absl::StrCat("epoll_ctl add fd ", fd));
  }
  fds_[fd] = std::move(callback);
  return absl::OkStatus();
}

absl::Status EventLoop::Modify(int fd, bool read, bool write) {
  epoll_event ev{};
  ev.events = (read ? EPOLLIN : 0u) | (write ? EPOLLOUT : 0u) | EPOLLRDHUP;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
    return ErrnoError(errno, absl::StrCat("epoll_ctl mod fd ", fd));
  }
  return absl::OkStatus();
}

void EventLoop::Unwatch(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  fds_.erase(fd);
}

EventLoop::TimerId EventLoop::AddTimer(absl::Duration after, Callback callback) {
  TimerId id = next_timer_++;
  absl::Time at = absl::Now() + after;
  timers_[id] = {at, std::move(callback)};
  due_.emplace(at, id);
  return id;
}

void EventLoop::CancelTimer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  auto range = due_.equal_range(it->second.first);
  for (auto d = range.first; d != range.second; ++d) {
    if (d->second == id) {
      due_.erase(d);
      break;
    }
  }
  timers_.erase(it);
}

void EventLoop::Post(Callback callback) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(callback));
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

void EventLoop::Stop() {
  Post([this] { stopping_ = true; });
}

void EventLoop::RunOnce(absl::Duration max_wait) {
  absl::Duration wait = max_wait;
  if (!due_.empty()) wait = std::min(wait, std::max(absl::ZeroDuration(), due_.begin()->first - absl::Now()));
  epoll_event events[64];
  int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
  int n = epoll_wait(epoll_fd_, events, 64, timeout_ms);
  for (int i = 0; i < n; ++i) {
    int fd = events[i].data.fd;
    if (fd == wake_fd_) {
      uint64_t count;
      (void)!read(wake_fd_, &count, sizeof count);
      continue;
    }
    auto it = fds_.find(fd);
    if (it == fds_.end()) continue;
    FdCallback cb = it->second;  // the callback may unwatch its own fd
    cb(events[i].events);
  }
  std::vector<Callback> posted;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted.swap(posted_);
  }
  for (Callback& cb : posted) cb();
  absl::Time now = absl::Now();
  while (!due_.empty() && due_.begin()->first <= now) {
    TimerId id = due_.begin()->second;
    due_.erase(due_.begin());
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;
    Callback cb = std::move(it->second.second);
    timers_.erase(it);
    cb();
  }
}

bool EventLoop::RunUntil(const std::function<bool()>& done, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!done() && !stopping_) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    RunOnce(std::min(left, absl::Milliseconds(50)));
  }
  return done();
}

void EventLoop::Run() {
  while (!stopping_) RunOnce(absl::Seconds(1));
}

}  // namespace calico::birdd::peers
