// The RFC 4271 FSM driven event by event: timers are events, so nothing sleeps.
#include "birdd/fsm/fsm.h"

#include <catch2/catch.hpp>
#include <set>

#include "absl/strings/str_join.h"

namespace calico::birdd::fsm {
namespace {

std::string Str(const std::vector<Action>& actions) {
  return absl::StrJoin(actions, ", ", [](std::string* out, const Action& a) { out->append(ToString(a)); });
}

Config Defaults() {
  Config c;
  c.connect_retry_time = absl::Seconds(5);
  c.hold_time = absl::Seconds(90);
  c.large_hold_time = absl::Minutes(4);
  return c;
}

// Drives a fresh session to Established with the peer proposing `peer_hold`.
Session Establish(Config config, absl::Duration peer_hold = absl::Seconds(90),
                  absl::Time now = absl::UnixEpoch()) {
  Session s(config);
  s.Step(Event::Of(EventType::kManualStart));
  s.Step(Event::Of(EventType::kTcpConnectionUp));
  s.Step(Event::Open(peer_hold));
  Event ka = Event::Of(EventType::kKeepAliveMsg);
  ka.now = now;
  s.Step(ka);
  REQUIRE(s.state() == State::kEstablished);
  return s;
}

TEST_CASE("fsm: an active session reaches Established with negotiated hold and keepalive") {
  Session s(Defaults());
  CHECK(Str(s.Step(Event::Of(EventType::kManualStart))) == "StartTimer(ConnectRetry, 5s), Connect");
  CHECK(s.state() == State::kConnect);
  CHECK(Str(s.Step(Event::Of(EventType::kTcpConnectionUp))) ==
        "StopTimer(ConnectRetry), SendOpen, StartTimer(Hold, 4m)");
  CHECK(s.state() == State::kOpenSent);
  CHECK(Str(s.Step(Event::Open(absl::Seconds(30)))) ==
        "StopTimer(Hold), SendKeepalive, StartTimer(Keepalive, 10s), StartTimer(Hold, 30s)");
  CHECK(s.state() == State::kOpenConfirm);
  CHECK(s.hold_time() == absl::Seconds(30));
  CHECK(s.keepalive_time() == absl::Seconds(10));
  CHECK(Str(s.Step(Event::Of(EventType::kKeepAliveMsg))) ==
        "StopTimer(Hold), StartTimer(Hold, 30s), Established");
  CHECK(s.state() == State::kEstablished);
  CHECK(StateName(s.state()) == "Established");
}

TEST_CASE("fsm: a passive session listens and never connects, even when its retry timer fires") {
  Config c = Defaults();
  c.passive = true;
  Session s(c);
  CHECK(Str(s.Step(Event::Of(EventType::kManualStart))) == "StartTimer(ConnectRetry, 5s), Listen");
  CHECK(s.state() == State::kActive);
  CHECK(Str(s.Step(Event::TimerFired(Timer::kConnectRetry))) == "StartTimer(ConnectRetry, 5s)");
  CHECK(s.state() == State::kActive);
  s.Step(Event::Of(EventType::kTcpConnectionUp));
  CHECK(s.state() == State::kOpenSent);
}

TEST_CASE("fsm: an unanswered connect is retried when the ConnectRetry timer fires") {
  Session s(Defaults());
  s.Step(Event::Of(EventType::kManualStart));
  CHECK(Str(s.Step(Event::TimerFired(Timer::kConnectRetry))) ==
        "DropConnection, StartTimer(ConnectRetry, 5s), Connect");
  CHECK(s.state() == State::kConnect);
}

TEST_CASE("fsm: hold timer expiry sends 4/0, tears down and waits IdleHold before restarting") {
  Session s = Establish(Defaults());
  CHECK(Str(s.Step(Event::TimerFired(Timer::kHold))) ==
        "SendNotification(4/0), StopTimer(Keepalive), DropConnection, ReleaseResources, "
        "StartTimer(IdleHold, 1s)");
  CHECK(s.state() == State::kIdle);
  CHECK(s.connect_retry_counter() == 1);
  CHECK(Str(s.Step(Event::TimerFired(Timer::kIdleHold))) == "StartTimer(ConnectRetry, 5s), Connect");
  CHECK(s.state() == State::kConnect);
}

TEST_CASE("fsm: a flapping peer waits twice as long each time, capped, and a stable session resets it") {
  Config c = Defaults();
  c.idle_hold_time = absl::Seconds(1);
  c.max_idle_hold_time = absl::Seconds(8);
  c.stable_time = absl::Minutes(1);
  Session s(c);
  s.Step(Event::Of(EventType::kManualStart));
  std::vector<absl::Duration> waits;
  for (int i = 0; i < 5; ++i) {
    s.Step(Event::Of(EventType::kTcpConnectionFails));  // connection refused
    waits.push_back(s.idle_hold_time());
    s.Step(Event::TimerFired(Timer::kIdleHold));
  }
  CHECK(waits == std::vector<absl::Duration>{absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                                             absl::Seconds(8), absl::Seconds(8)});
  // Up for two minutes, then lost: back to the shortest wait.
  s.Step(Event::Of(EventType::kTcpConnectionUp));
  s.Step(Event::Open(absl::Seconds(90)));
  Event ka = Event::Of(EventType::kKeepAliveMsg);
  ka.now = absl::UnixEpoch();
  s.Step(ka);
  Event down = Event::Of(EventType::kTcpConnectionFails);
  down.now = absl::UnixEpoch() + absl::Minutes(2);
  s.Step(down);
  CHECK(s.idle_hold_time() == absl::Seconds(1));
}

TEST_CASE("fsm: hold time 0 on either side means no keepalive or hold timers") {
  Session s(Defaults());
  s.Step(Event::Of(EventType::kManualStart));
  s.Step(Event::Of(EventType::kTcpConnectionUp));
  CHECK(Str(s.Step(Event::Open(absl::ZeroDuration()))) == "StopTimer(Hold), SendKeepalive");
  CHECK(Str(s.Step(Event::Of(EventType::kKeepAliveMsg))) == "Established");
  CHECK(s.hold_time() == absl::ZeroDuration());
  CHECK(Str(s.Step(Event::Of(EventType::kUpdateMsg))) == "ProcessUpdate");
}

TEST_CASE("fsm: UPDATEs and KEEPALIVEs in Established restart the hold timer") {
  Session s = Establish(Defaults(), absl::Seconds(9));
  CHECK(Str(s.Step(Event::Of(EventType::kUpdateMsg))) ==
        "ProcessUpdate, StopTimer(Hold), StartTimer(Hold, 9s)");
  CHECK(Str(s.Step(Event::Of(EventType::kKeepAliveMsg))) == "StopTimer(Hold), StartTimer(Hold, 9s)");
  CHECK(Str(s.Step(Event::TimerFired(Timer::kKeepalive))) ==
        "SendKeepalive, StartTimer(Keepalive, 3s)");
}

TEST_CASE("fsm: ManualStop in Established sends Cease/administrative shutdown and stays down") {
  Session s = Establish(Defaults());
  CHECK(Str(s.Step(Event::Of(EventType::kManualStop))) ==
        "SendNotification(6/2), StopTimer(Hold), StopTimer(Keepalive), DropConnection, "
        "ReleaseResources");
  CHECK(s.state() == State::kIdle);
  CHECK(s.connect_retry_counter() == 0);
  CHECK_FALSE(s.automatic());
  CHECK(s.Step(Event::TimerFired(Timer::kIdleHold)).empty());
}

TEST_CASE("fsm: unexpected messages are the RFC 6608 FSM errors of their state") {
  Session open_sent(Defaults());
  open_sent.Step(Event::Of(EventType::kManualStart));
  open_sent.Step(Event::Of(EventType::kTcpConnectionUp));
  CHECK(ToString(open_sent.Step(Event::Of(EventType::kUpdateMsg))[0]) == "SendNotification(5/1)");
  CHECK(open_sent.state() == State::kIdle);

  Session open_confirm(Defaults());
  open_confirm.Step(Event::Of(EventType::kManualStart));
  open_confirm.Step(Event::Of(EventType::kTcpConnectionUp));
  open_confirm.Step(Event::Open(absl::Seconds(90)));
  CHECK(ToString(open_confirm.Step(Event::Of(EventType::kUpdateMsg))[0]) == "SendNotification(5/2)");

  Session established = Establish(Defaults());
  CHECK(ToString(established.Step(Event::Open(absl::Seconds(90)))[0]) == "SendNotification(5/3)");
}

TEST_CASE("fsm: a connection collision loser sends Cease/7") {
  Session s(Defaults());
  s.Step(Event::Of(EventType::kManualStart));
  s.Step(Event::Of(EventType::kTcpConnectionUp));
  s.Step(Event::Open(absl::Seconds(90)));
  std::vector<Action> out = s.Step(Event::Of(EventType::kOpenCollisionDump));
  CHECK(ToString(out[0]) == "SendNotification(6/7)");
  CHECK(s.state() == State::kIdle);
}

TEST_CASE("fsm: an invalid OPEN gets the NOTIFICATION the decoder chose") {
  Session s(Defaults());
  s.Step(Event::Of(EventType::kManualStart));
  s.Step(Event::Of(EventType::kTcpConnectionUp));
  Notification bad_peer_as(wire::OpenSubcode::kBadPeerAs);
  std::vector<Action> out = s.Step(Event::Error(EventType::kBgpOpenMsgErr, bad_peer_as));
  CHECK(ToString(out[0]) == "SendNotification(2/2)");
  CHECK(s.state() == State::kIdle);
  REQUIRE(s.last_error().has_value());
  CHECK(*s.last_error() == bad_peer_as);
}

TEST_CASE("fsm: DelayOpen waits for the peer's OPEN or the timer") {
  Config c = Defaults();
  c.delay_open = true;
  c.delay_open_time = absl::Seconds(2);
  Session s(c);
  s.Step(Event::Of(EventType::kManualStart));
  CHECK(Str(s.Step(Event::Of(EventType::kTcpConnectionUp))) ==
        "StopTimer(ConnectRetry), StartTimer(DelayOpen, 2s)");
  CHECK(s.state() == State::kConnect);
  CHECK(Str(s.Step(Event::Open(absl::Seconds(90)))) ==
        "StopTimer(DelayOpen), SendOpen, SendKeepalive, StartTimer(Keepalive, 30s), "
        "StartTimer(Hold, 1m30s)");
  CHECK(s.state() == State::kOpenConfirm);

  Session t(c);
  t.Step(Event::Of(EventType::kManualStart));
  t.Step(Event::Of(EventType::kTcpConnectionUp));
  CHECK(Str(t.Step(Event::TimerFired(Timer::kDelayOpen))) == "SendOpen, StartTimer(Hold, 4m)");
  CHECK(t.state() == State::kOpenSent);
}

TEST_CASE("fsm: losing TCP in OpenSent goes back to listening in Active") {
  Session s(Defaults());
  s.Step(Event::Of(EventType::kManualStart));
  s.Step(Event::Of(EventType::kTcpConnectionUp));
  CHECK(Str(s.Step(Event::Of(EventType::kTcpConnectionFails))) ==
        "DropConnection, StopTimer(Hold), StartTimer(ConnectRetry, 5s), Listen");
  CHECK(s.state() == State::kActive);
}

TEST_CASE("fsm: every event in every state is handled, and Idle never leaves session timers behind") {
  const std::vector<EventType> all = {
      EventType::kManualStart,        EventType::kManualStop,     EventType::kAutomaticStart,
      EventType::kTcpConnectionUp,    EventType::kTcpConnectionFails, EventType::kBgpOpen,
      EventType::kBgpHeaderErr,       EventType::kBgpOpenMsgErr,  EventType::kOpenCollisionDump,
      EventType::kNotifMsgVerErr,     EventType::kNotifMsg,       EventType::kKeepAliveMsg,
      EventType::kUpdateMsg,          EventType::kUpdateMsgErr};
  const std::vector<Timer> timers = {Timer::kConnectRetry, Timer::kHold, Timer::kKeepalive,
                                     Timer::kDelayOpen, Timer::kIdleHold};
  // Paths to each state, then every event from there.
  std::vector<std::vector<Event>> prefixes = {
      {},
      {Event::Of(EventType::kManualStart)},
      {Event::Of(EventType::kManualStart), Event::Of(EventType::kTcpConnectionUp)},
      {Event::Of(EventType::kManualStart), Event::Of(EventType::kTcpConnectionUp), Event::Open(absl::Seconds(90))},
      {Event::Of(EventType::kManualStart), Event::Of(EventType::kTcpConnectionUp), Event::Open(absl::Seconds(90)),
       Event::Of(EventType::kKeepAliveMsg)},
  };
  int checked = 0;
  for (const auto& prefix : prefixes) {
    std::vector<Event> events;
    for (EventType t : all) {
      Event e = Event::Of(t);
      if (t == EventType::kBgpOpen) e.peer_hold_time = absl::Seconds(90);
      events.push_back(e);
    }
    for (Timer t : timers) events.push_back(Event::TimerFired(t));
    for (const Event& e : events) {
      Session s(Defaults());
      for (const Event& p : prefix) s.Step(p);
      std::vector<Action> out = s.Step(e);
      ++checked;
      if (s.state() == State::kIdle) {
        // Whatever timers the actions left running, only IdleHold may remain.
        std::set<int> running;
        Session replay(Defaults());
        std::vector<Action> all_actions;
        for (const Event& p : prefix) {
          auto a = replay.Step(p);
          all_actions.insert(all_actions.end(), a.begin(), a.end());
        }
        auto a = replay.Step(e);
        all_actions.insert(all_actions.end(), a.begin(), a.end());
        for (const Action& act : all_actions) {
          if (act.type == ActionType::kStartTimer) running.insert(static_cast<int>(act.timer));
          if (act.type == ActionType::kStopTimer) running.erase(static_cast<int>(act.timer));
        }
        if (e.type == EventType::kTimerExpired) running.erase(static_cast<int>(e.timer));
        running.erase(static_cast<int>(Timer::kIdleHold));
        INFO("state path length " << prefix.size() << ", event " << static_cast<int>(e.type));
        CHECK(running.empty());
      }
    }
  }
  CHECK(checked == 5 * 19);
}

}  // namespace
}  // namespace calico::birdd::fsm
