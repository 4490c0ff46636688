#pragma once
// birdd/fsm — the BGP-4 session state machine of RFC 4271 section 8, as a pure function:
// Step(session, event) → actions. No sockets, no clock, no logging: timers are events the
// caller delivers when they fire, and TCP and messages are events too, so every transition is
// unit-tested without sleeping. `peers/` (the only I/O) owns a Session per connection and
// carries out the actions in order.
//
// Scope: the mandatory events, optional DelayOpen, passive/active start, idle-hold damping
// (the wait before an automatic restart doubles on each flap, capped), hold-time negotiation,
// connection collision (the caller decides which connection loses and sends
// kOpenCollisionDump to it). Message contents are validated by the caller/wire (an invalid
// OPEN arrives as kBgpOpenMsgErr with its NOTIFICATION).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "birdd/wire/message.h"

namespace calico::birdd::fsm {

enum class State { kIdle, kConnect, kActive, kOpenSent, kOpenConfirm, kEstablished };
std::string_view StateName(State state);  // "Idle", "Connect", ... as `birdc show protocols`

enum class Timer { kConnectRetry, kHold, kKeepalive, kDelayOpen, kIdleHold };
std::string_view TimerName(Timer timer);

// NOTIFICATIONs are the codec's type: what the FSM decides to send, the decoder produced, or
// the peer sent are one value throughout.
using wire::Notification;

struct Config {
  bool passive = false;       // never initiate TCP; wait for the peer (upstream mesh: higher IP)
  bool delay_open = false;    // RFC 4271 DelayOpen
  absl::Duration delay_open_time = absl::Seconds(1);
  absl::Duration connect_retry_time = absl::Seconds(5);
  absl::Duration hold_time = absl::Seconds(90);        // proposed; 0 = no keepalives at all
  absl::Duration large_hold_time = absl::Minutes(4);   // while waiting for the peer's OPEN
  // Automatic restart after an error waits idle_hold_time, doubling per consecutive flap up to
  // max_idle_hold_time (peer oscillation damping); a session that stayed up resets it.
  absl::Duration idle_hold_time = absl::Seconds(1);
  absl::Duration max_idle_hold_time = absl::Seconds(60);
  absl::Duration stable_time = absl::Minutes(1);
};

enum class EventType {
  kManualStart,
  kManualStop,
  kAutomaticStart,
  kTimerExpired,        // `timer`
  kTcpConnectionUp,     // our connect succeeded (Tcp_CR_Acked) or the peer's was accepted
  kTcpConnectionFails,
  kBgpOpen,             // a valid OPEN: `peer_hold_time`
  kBgpHeaderErr,        // `notification` carries what to send
  kBgpOpenMsgErr,
  kOpenCollisionDump,
  kNotifMsgVerErr,
  kNotifMsg,
  kKeepAliveMsg,
  kUpdateMsg,
  kUpdateMsgErr,        // session-resetting UPDATE error (RFC 7606 session reset)
};

struct Event {
  EventType type = EventType::kManualStart;
  Timer timer = Timer::kConnectRetry;              // kTimerExpired
  absl::Duration peer_hold_time;                   // kBgpOpen
  std::optional<Notification> notification;        // errors: what to send
  absl::Time now;                                  // for the stability clock (idle-hold reset)

  static Event Of(EventType type) {
    Event e;
    e.type = type;
    return e;
  }
  static Event TimerFired(Timer timer) {
    Event e;
    e.type = EventType::kTimerExpired;
    e.timer = timer;
    return e;
  }
  static Event Open(absl::Duration peer_hold_time) {
    Event e;
    e.type = EventType::kBgpOpen;
    e.peer_hold_time = peer_hold_time;
    return e;
  }
  static Event Error(EventType type, Notification n) {
    Event e;
    e.type = type;
    e.notification = std::move(n);
    return e;
  }
};

enum class ActionType {
  kConnect,          // initiate a TCP connection to the peer
  kListen,           // accept the peer's connection (passive or while Active)
  kDropConnection,
  kSendOpen,
  kSendKeepalive,
  kSendNotification, // `notification`
  kStartTimer,       // `timer`, `duration`
  kStopTimer,        // `timer`
  kEstablished,      // session up: negotiated `hold_time`/`keepalive_time`; send the initial table
  kProcessUpdate,    // hand the UPDATE to the RIB
  kReleaseResources, // session down: drop (or, with graceful restart, mark stale) its routes
};

struct Action {
  ActionType type = ActionType::kConnect;
  Timer timer = Timer::kConnectRetry;
  absl::Duration duration;
  std::optional<Notification> notification;
  bool operator==(const Action&) const = default;
};
std::string ToString(const Action& action);  // "StartTimer(Hold, 4m)", for tests and traces

class Session {
 public:
  explicit Session(Config config) : config_(config) {}

  // Applies one event; returns what to do, in order. Never fails: an event that the state does
  // not expect is the RFC's FSM error (NOTIFICATION 5/x) or ignored, as section 8.2.2 says.
  std::vector<Action> Step(const Event& event);

  State state() const { return state_; }
  int connect_retry_counter() const { return connect_retry_counter_; }
  // Negotiated once Established (min of ours and the peer's; 0 = none).
  absl::Duration hold_time() const { return hold_time_; }
  absl::Duration keepalive_time() const { return keepalive_time_; }
  // The wait before the next automatic start after a failure (damping).
  absl::Duration idle_hold_time() const { return current_idle_hold_; }
  // The NOTIFICATION that last took the session down, if any (for `birdc`-style status).
  const std::optional<Notification>& last_error() const { return last_error_; }
  bool automatic() const { return automatic_; }

 private:
  std::vector<Action> OnIdle(const Event& e);
  std::vector<Action> OnConnectOrActive(const Event& e);
  std::vector<Action> OnOpenSent(const Event& e);
  std::vector<Action> OnOpenConfirm(const Event& e);
  std::vector<Action> OnEstablished(const Event& e);
  // Common exit to Idle after an error: stop timers, drop, release, count, damp.
  void ToIdle(std::vector<Action>& out, bool count_retry, absl::Time now);
  // Events handled alike in OpenSent, OpenConfirm and Established; false if `e` is not one.
  bool OnSessionCommon(const Event& e, std::vector<Action>& out, uint8_t fsm_subcode);
  void Negotiate(absl::Duration peer_hold_time);
  void Start(std::vector<Action>& out, Timer timer, absl::Duration duration);
  void Stop(std::vector<Action>& out, Timer timer);
  void StopAll(std::vector<Action>& out);
  // Idle → Connect (active) or Active (passive).
  void BeginConnecting(std::vector<Action>& out);
  // OPEN accepted (in Connect/Active with DelayOpen, or OpenSent) → OpenConfirm.
  void AcceptOpen(std::vector<Action>& out, const Event& e, bool send_open);
  bool Running(Timer timer) const { return timers_ & (1u << static_cast<unsigned>(timer)); }

  Config config_;
  State state_ = State::kIdle;
  int connect_retry_counter_ = 0;
  bool automatic_ = false;
  absl::Duration hold_time_ = absl::ZeroDuration();
  absl::Duration keepalive_time_ = absl::ZeroDuration();
  absl::Duration current_idle_hold_ = absl::ZeroDuration();
  absl::Time established_at_ = absl::InfinitePast();
  std::optional<Notification> last_error_;
  unsigned timers_ = 0;  // bit per Timer that is running
};

}  // namespace calico::birdd::fsm
