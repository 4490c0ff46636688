#pragma once
// birdd/peers/event_loop.h — one thread's epoll loop with timers: every socket and timer of the
// BGP sessions runs on it, so session state needs no locks (GoBGP's single RIB goroutine,
// BIRD's one event loop). Other threads talk to it only through Post().

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace calico::birdd::peers {

class EventLoop {
 public:
  using Callback = std::function<void()>;
  using FdCallback = std::function<void(uint32_t events)>;  // EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP
  using TimerId = uint64_t;

  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();
  ~EventLoop();

  // Loop thread only.
  absl::Status Watch(int fd, bool read, bool write, FdCallback callback);
  absl::Status Modify(int fd, bool read, bool write);
  void Unwatch(int fd);
  TimerId AddTimer(absl::Duration after, Callback callback);
  void CancelTimer(TimerId id);  // unknown or fired ids are ignored
  absl::Time Now() const { return absl::Now(); }

  // Runs until `done()` is true or `timeout` passes; returns done(). (Tests.)
  bool RunUntil(const std::function<bool()>& done, absl::Duration timeout);
  // Runs until Stop().
  void Run();

  // Any thread.
  void Post(Callback callback);
  void Stop();

 private:
  EventLoop(int epoll_fd, int wake_fd) : epoll_fd_(epoll_fd), wake_fd_(wake_fd) {}
  // One epoll_wait (at most `max_wait`) plus due timers and posted callbacks.
  void RunOnce(absl::Duration max_wait);

  int epoll_fd_;
  int wake_fd_;
  std::map<int, FdCallback> fds_;
  std::multimap<absl::Time, TimerId> due_;
  std::map<TimerId, std::pair<absl::Time, Callback>> timers_;
  TimerId next_timer_ = 1;
  bool stopping_ = false;
  std::mutex posted_mu_;
  std::vector<Callback> posted_;
};

}  // namespace calico::birdd::peers
