#include "birdd/fsm/fsm.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace calico::birdd::fsm {
namespace {

using wire::CeaseSubcode;
using wire::NotificationCode;

Notification Note(NotificationCode code, uint8_t subcode) { return Notification(code, subcode); }
Notification Cease(CeaseSubcode subcode) { return Notification(subcode); }

Action Simple(ActionType type) {
  Action a;
  a.type = type;
  return a;
}

Action Send(const Notification& n) {
  Action a;
  a.type = ActionType::kSendNotification;
  a.notification = n;
  return a;
}

}  // namespace

std::string_view StateName(State state) {
  switch (state) {
    case State::kIdle: return "Idle";
    case State::kConnect: return "Connect";
    case State::kActive: return "Active";
    case State::kOpenSent: return "OpenSent";
    case State::kOpenConfirm: return "OpenConfirm";
    case State::kEstablished: return "Established";
  }
  return "?";
}

std::string_view TimerName(Timer timer) {
  switch (timer) {
    case Timer::kConnectRetry: return "ConnectRetry";
    case Timer::kHold: return "Hold";
    case Timer::kKeepalive: return "Keepalive";
    case Timer::kDelayOpen: return "DelayOpen";
    case Timer::kIdleHold: return "IdleHold";
  }
  return "?";
}

std::string ToString(const Action& a) {
  switch (a.type) {
    case ActionType::kConnect: return "Connect";
    case ActionType::kListen: return "Listen";
    case ActionType::kDropConnection: return "DropConnection";
    case ActionType::kSendOpen: return "SendOpen";
    case ActionType::kSendKeepalive: return "SendKeepalive";
    case ActionType::kSendNotification:
      return absl::StrCat("SendNotification(", static_cast<int>(a.notification->code), "/",
                          a.notification->subcode, ")");
    case ActionType::kStartTimer:
      return absl::StrCat("StartTimer(", std::string(TimerName(a.timer)), ", ",
                          absl::FormatDuration(a.duration), ")");
    case ActionType::kStopTimer:
      return absl::StrCat("StopTimer(", std::string(TimerName(a.timer)), ")");
    case ActionType::kEstablished: return "Established";
    case ActionType::kProcessUpdate: return "ProcessUpdate";
    case ActionType::kReleaseResources: return "ReleaseResources";
  }
  return "?";
}

void Session::Start(std::vector<Action>& out, Timer timer, absl::Duration duration) {
  Action a;
  a.type = ActionType::kStartTimer;
  a.timer = timer;
  a.duration = duration;
  out.push_back(a);
  timers_ |= 1u << static_cast<unsigned>(timer);
}

void Session::Stop(std::vector<Action>& out, Timer timer) {
  if (!Running(timer)) return;
  Action a;
  a.type = ActionType::kStopTimer;
  a.timer = timer;
  out.push_back(a);
  timers_ &= ~(1u << static_cast<unsigned>(timer));
}

void Session::StopAll(std::vector<Action>& out) {
  for (Timer t : {Timer::kConnectRetry, Timer::kHold, Timer::kKeepalive, Timer::kDelayOpen}) {
    Stop(out, t);
  }
}

void Session::Negotiate(absl::Duration peer_hold_time) {
  // Whole seconds on the wire; zero on either side means no keepalives (RFC 4271 4.2).
  hold_time_ = std::min(absl::Trunc(config_.hold_time, absl::Seconds(1)),
                        absl::Trunc(peer_hold_time, absl::Seconds(1)));
  if (config_.hold_time == absl::ZeroDuration() || peer_hold_time == absl::ZeroDuration()) {
    hold_time_ = absl::ZeroDuration();
  }
  keepalive_time_ = absl::Trunc(hold_time_ / 3, absl::Seconds(1));
}

void Session::BeginConnecting(std::vector<Action>& out) {
  Stop(out, Timer::kIdleHold);
  Start(out, Timer::kConnectRetry, config_.connect_retry_time);
  if (config_.passive) {
    out.push_back(Simple(ActionType::kListen));
    state_ = State::kActive;
  } else {
    out.push_back(Simple(ActionType::kConnect));
    state_ = State::kConnect;
  }
}

void Session::AcceptOpen(std::vector<Action>& out, const Event& e, bool send_open) {
  Stop(out, Timer::kConnectRetry);
  Stop(out, Timer::kDelayOpen);
  Stop(out, Timer::kHold);
  if (send_open) out.push_back(Simple(ActionType::kSendOpen));
  out.push_back(Simple(ActionType::kSendKeepalive));
  Negotiate(e.peer_hold_time);
  if (hold_time_ > absl::ZeroDuration()) {
    Start(out, Timer::kKeepalive, keepalive_time_);
    Start(out, Timer::kHold, hold_time_);
  }
  state_ = State::kOpenConfirm;
}

void Session::ToIdle(std::vector<Action>& out, bool count_retry, absl::Time now) {
  StopAll(out);
  out.push_back(Simple(ActionType::kDropConnection));
  out.push_back(Simple(ActionType::kReleaseResources));
  if (count_retry) ++connect_retry_counter_;
  if (automatic_) {
    // Damping: a session that stayed up for stable_time starts over at idle_hold_time; one that
    // keeps failing waits twice as long each time, up to max_idle_hold_time.
    bool stable = established_at_ != absl::InfinitePast() && now - established_at_ >= config_.stable_time;
    if (current_idle_hold_ == absl::ZeroDuration() || stable) {
      current_idle_hold_ = config_.idle_hold_time;
    } else {
      current_idle_hold_ = std::min(current_idle_hold_ * 2, config_.max_idle_hold_time);
    }
    Start(out, Timer::kIdleHold, current_idle_hold_);
  }
  established_at_ = absl::InfinitePast();
  state_ = State::kIdle;
}

std::vector<Action> Session::Step(const Event& e) {
  if (e.notification && e.type != EventType::kKeepAliveMsg) last_error_ = e.notification;
  switch (state_) {
    case State::kIdle: return OnIdle(e);
    case State::kConnect:
    case State::kActive: return OnConnectOrActive(e);
    case State::kOpenSent: return OnOpenSent(e);
    case State::kOpenConfirm: return OnOpenConfirm(e);
    case State::kEstablished: return OnEstablished(e);
  }
  return {};
}

// Idle: only starts (and the damping timer) do anything (RFC 4271 8.2.2, Idle state).
std::vector<Action> Session::OnIdle(const Event& e) {
  std::vector<Action> out;
  switch (e.type) {
    case EventType::kManualStart:
    case EventType::kAutomaticStart:
      // Both start kinds allow automatic restarts after failures; ManualStop ends them.
      automatic_ = true;
      if (e.type == EventType::kManualStart) {
        connect_retry_counter_ = 0;
        current_idle_hold_ = absl::ZeroDuration();
      }
      BeginConnecting(out);
      break;
    case EventType::kTimerExpired:
      timers_ &= ~(1u << static_cast<unsigned>(e.timer));
      if (e.timer == Timer::kIdleHold && automatic_) BeginConnecting(out);
      break;
    case EventType::kManualStop:
      automatic_ = false;
      Stop(out, Timer::kIdleHold);
      connect_retry_counter_ = 0;
      break;
    default:
      break;  // ignored in Idle
  }
  return out;
}

std::vector<Action> Session::OnConnectOrActive(const Event& e) {
  std::vector<Action> out;
  const bool active = state_ == State::kActive;
  switch (e.type) {
    case EventType::kManualStart:
    case EventType::kAutomaticStart:
      break;  // already starting
    case EventType::kManualStop:
      automatic_ = false;
      connect_retry_counter_ = 0;
      StopAll(out);
      out.push_back(Simple(ActionType::kDropConnection));
      state_ = State::kIdle;
      break;
    case EventType::kTimerExpired:
      timers_ &= ~(1u << static_cast<unsigned>(e.timer));
      if (e.timer == Timer::kConnectRetry) {
        // Connect: give up this attempt and try again. Active: start connecting ourselves
        // (unless passive: keep listening).
        Stop(out, Timer::kDelayOpen);
        if (!active) out.push_back(Simple(ActionType::kDropConnection));
        Start(out, Timer::kConnectRetry, config_.connect_retry_time);
        if (!config_.passive) {
          out.push_back(Simple(ActionType::kConnect));
          state_ = State::kConnect;
        }
      } else if (e.timer == Timer::kDelayOpen) {
        out.push_back(Simple(ActionType::kSendOpen));
        Start(out, Timer::kHold, config_.large_hold_time);
        state_ = State::kOpenSent;
      } else {
        ToIdle(out, true, e.now);
      }
      break;
    case EventType::kTcpConnectionUp:
      Stop(out, Timer::kConnectRetry);
      if (config_.delay_open) {
        Start(out, Timer::kDelayOpen, config_.delay_open_time);
      } else {
        out.push_back(Simple(ActionType::kSendOpen));
        Start(out, Timer::kHold, config_.large_hold_time);
        state_ = State::kOpenSent;
      }
      break;
    case EventType::kTcpConnectionFails:
      if (Running(Timer::kDelayOpen) || !active) {
        if (Running(Timer::kDelayOpen)) {
          // The connection went away while we waited to send OPEN: listen again.
          Stop(out, Timer::kDelayOpen);
          Stop(out, Timer::kConnectRetry);
          Start(out, Timer::kConnectRetry, config_.connect_retry_time);
          out.push_back(Simple(ActionType::kListen));
          state_ = State::kActive;
        } else {
          ToIdle(out, false, e.now);
        }
      } else {
        ToIdle(out, true, e.now);
      }
      break;
    case EventType::kBgpOpen:
      if (Running(Timer::kDelayOpen)) {
        AcceptOpen(out, e, /*send_open=*/true);
      } else {
        out.push_back(Send(Note(NotificationCode::kFsmError, 0)));
        ToIdle(out, true, e.now);
      }
      break;
    case EventType::kBgpHeaderErr:
    case EventType::kBgpOpenMsgErr:
      if (e.notification) out.push_back(Send(*e.notification));
      ToIdle(out, true, e.now);
      break;
    case EventType::kNotifMsgVerErr:
      ToIdle(out, !Running(Timer::kDelayOpen), e.now);
      break;
    default:
      ToIdle(out, true, e.now);
      break;
  }
  return out;
}

std::vector<Action> Session::OnOpenSent(const Event& e) {
  std::vector<Action> out;
  switch (e.type) {
    case EventType::kManualStart:
    case EventType::kAutomaticStart:
      break;
    case EventType::kManualStop:
      automatic_ = false;
      out.push_back(Send(Cease(CeaseSubcode::kAdministrativeShutdown)));
      ToIdle(out, false, e.now);
      connect_retry_counter_ = 0;
      break;
    case EventType::kTimerExpired:
      timers_ &= ~(1u << static_cast<unsigned>(e.timer));
      if (e.timer == Timer::kHold) {
        out.push_back(Send(Note(NotificationCode::kHoldTimerExpired, 0)));
      } else {
        out.push_back(Send(Note(NotificationCode::kFsmError, static_cast<uint8_t>(wire::FsmSubcode::kUnexpectedMessageInOpenSent))));
      }
      ToIdle(out, true, e.now);
      break;
    case EventType::kTcpConnectionFails:
      // RFC 4271: close, restart ConnectRetry, keep listening, go to Active.
      out.push_back(Simple(ActionType::kDropConnection));
      Stop(out, Timer::kHold);
      Stop(out, Timer::kConnectRetry);
      Start(out, Timer::kConnectRetry, config_.connect_retry_time);
      out.push_back(Simple(ActionType::kListen));
      state_ = State::kActive;
      break;
    case EventType::kBgpOpen:
      AcceptOpen(out, e, /*send_open=*/false);
      break;
    case EventType::kBgpHeaderErr:
    case EventType::kBgpOpenMsgErr:
      if (e.notification) out.push_back(Send(*e.notification));
      ToIdle(out, true, e.now);
      break;
    case EventType::kOpenCollisionDump:
      out.push_back(Send(Cease(CeaseSubcode::kConnectionCollisionResolution)));
      ToIdle(out, true, e.now);
      break;
    case EventType::kNotifMsgVerErr:
      ToIdle(out, false, e.now);
      break;
    default:
      out.push_back(Send(Note(NotificationCode::kFsmError, static_cast<uint8_t>(wire::FsmSubcode::kUnexpectedMessageInOpenSent))));
      ToIdle(out, true, e.now);
      break;
  }
  return out;
}

// ManualStop, the keepalive and hold timers, collisions and header/OPEN errors mean the same
// once an OPEN has been exchanged (RFC 4271 8.2.2, OpenConfirm and Established).
bool Session::OnSessionCommon(const Event& e, std::vector<Action>& out, uint8_t fsm_subcode) {
  switch (e.type) {
    case EventType::kManualStart:
    case EventType::kAutomaticStart:
      return true;
    case EventType::kManualStop:
      automatic_ = false;
      out.push_back(Send(Cease(CeaseSubcode::kAdministrativeShutdown)));
      ToIdle(out, false, e.now);
      connect_retry_counter_ = 0;
      return true;
    case EventType::kTimerExpired:
      timers_ &= ~(1u << static_cast<unsigned>(e.timer));
      if (e.timer == Timer::kKeepalive) {
        out.push_back(Simple(ActionType::kSendKeepalive));
        Start(out, Timer::kKeepalive, keepalive_time_);
        return true;
      }
      out.push_back(Send(e.timer == Timer::kHold
                             ? Note(NotificationCode::kHoldTimerExpired, 0)
                             : Note(NotificationCode::kFsmError, fsm_subcode)));
      ToIdle(out, true, e.now);
      return true;
    case EventType::kBgpHeaderErr:
    case EventType::kBgpOpenMsgErr:
    case EventType::kUpdateMsgErr:
      if (e.type == EventType::kUpdateMsgErr && state_ != State::kEstablished) return false;
      if (e.notification) out.push_back(Send(*e.notification));
      ToIdle(out, true, e.now);
      return true;
    case EventType::kOpenCollisionDump:
      out.push_back(Send(Cease(CeaseSubcode::kConnectionCollisionResolution)));
      ToIdle(out, true, e.now);
      return true;
    default:
      return false;
  }
}

std::vector<Action> Session::OnOpenConfirm(const Event& e) {
  std::vector<Action> out;
  const uint8_t unexpected = static_cast<uint8_t>(wire::FsmSubcode::kUnexpectedMessageInOpenConfirm);
  if (OnSessionCommon(e, out, unexpected)) return out;
  switch (e.type) {
    case EventType::kTcpConnectionFails:
    case EventType::kNotifMsg:
      ToIdle(out, true, e.now);
      break;
    case EventType::kNotifMsgVerErr:
      ToIdle(out, false, e.now);
      break;
    case EventType::kKeepAliveMsg:
      if (hold_time_ > absl::ZeroDuration()) {
        Stop(out, Timer::kHold);
        Start(out, Timer::kHold, hold_time_);
      }
      established_at_ = e.now;
      out.push_back(Simple(ActionType::kEstablished));
      state_ = State::kEstablished;
      break;
    default:
      out.push_back(Send(Note(NotificationCode::kFsmError, unexpected)));
      ToIdle(out, true, e.now);
      break;
  }
  return out;
}

std::vector<Action> Session::OnEstablished(const Event& e) {
  std::vector<Action> out;
  const uint8_t unexpected = static_cast<uint8_t>(wire::FsmSubcode::kUnexpectedMessageInEstablished);
  if (OnSessionCommon(e, out, unexpected)) return out;
  auto restart_hold = [&] {
    if (hold_time_ > absl::ZeroDuration()) {
      Stop(out, Timer::kHold);
      Start(out, Timer::kHold, hold_time_);
    }
  };
  switch (e.type) {
    case EventType::kTcpConnectionFails:
    case EventType::kNotifMsg:
    case EventType::kNotifMsgVerErr:
      ToIdle(out, true, e.now);
      break;
    case EventType::kKeepAliveMsg:
      restart_hold();
      break;
    case EventType::kUpdateMsg:
      out.push_back(Simple(ActionType::kProcessUpdate));
      restart_hold();
      break;
    default:
      out.push_back(Send(Note(NotificationCode::kFsmError, unexpected)));
      ToIdle(out, true, e.now);
      break;
  }
  return out;
}

}  // namespace calico::birdd::fsm
