// Framer: a TCP stream cut anywhere yields the same messages; header errors stop the stream.

#include "birdd/wire/framer.h"

#include "wire_test_util.h"

namespace calico::birdd::wire {
namespace {

using namespace testing;
using Kind = Framer::Frame::Kind;

std::vector<std::vector<uint8_t>> Goldens() {
  return {HexFile("keepalive.hex"), HexFile("open_capabilities.hex"), HexFile("update_ipv4.hex"),
          HexFile("update_mp_reach_ipv6.hex"), HexFile("notification_cease.hex"),
          HexFile("route_refresh.hex")};
}

std::vector<uint8_t> Stream(const std::vector<std::vector<uint8_t>>& messages) {
  std::vector<uint8_t> out;
  for (const auto& m : messages) out.insert(out.end(), m.begin(), m.end());
  return out;
}

// Drains the framer; copies messages out (their spans die at the next call).
void Drain(Framer& framer, std::vector<std::vector<uint8_t>>& got) {
  while (true) {
    Framer::Frame frame = framer.Next();
    if (frame.kind == Kind::kNeedMore) return;
    REQUIRE(frame.kind == Kind::kMessage);
    got.emplace_back(frame.message.begin(), frame.message.end());
  }
}

TEST_CASE("framer: a stream split at every byte boundary", "[unit][wire][framer]") {
  const auto messages = Goldens();
  const std::vector<uint8_t> stream = Stream(messages);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    INFO("cut at " << cut);
    Framer framer;
    std::vector<std::vector<uint8_t>> got;
    std::vector<uint8_t> first(stream.begin(), stream.begin() + cut);
    std::vector<uint8_t> second(stream.begin() + cut, stream.end());
    framer.Feed(first);
    Drain(framer, got);
    framer.Feed(second);
    Drain(framer, got);
    REQUIRE(got == messages);
    CHECK(framer.buffered() == 0);
  }
}

TEST_CASE("framer: one byte at a time", "[unit][wire][framer]") {
  const auto messages = Goldens();
  const std::vector<uint8_t> stream = Stream(messages);
  Framer framer;
  std::vector<std::vector<uint8_t>> got;
  for (uint8_t byte : stream) {
    uint8_t chunk[1] = {byte};
    framer.Feed(chunk);
    Drain(framer, got);
  }
  CHECK(got == messages);
}

TEST_CASE("framer: several messages in one chunk come out without copying", "[unit][wire][framer]") {
  const auto messages = Goldens();
  const std::vector<uint8_t> stream = Stream(messages);
  Framer framer;
  framer.Feed(stream);
  size_t offset = 0;
  for (const auto& m : messages) {
    Framer::Frame frame = framer.Next();
    REQUIRE(frame.kind == Kind::kMessage);
    CHECK(frame.message.data() == stream.data() + offset);  // in place
    CHECK(std::vector<uint8_t>(frame.message.begin(), frame.message.end()) == m);
    offset += m.size();
  }
  CHECK(framer.Next().kind == Kind::kNeedMore);
}

TEST_CASE("framer: feeding again before draining keeps the byte order", "[unit][wire][framer]") {
  const auto messages = Goldens();
  const std::vector<uint8_t> stream = Stream(messages);
  std::vector<uint8_t> a(stream.begin(), stream.begin() + 50), b(stream.begin() + 50, stream.end());
  Framer framer;
  framer.Feed(a);
  framer.Feed(b);
  std::vector<std::vector<uint8_t>> got;
  Drain(framer, got);
  CHECK(got == messages);
}

TEST_CASE("framer: a bad marker stops the stream", "[unit][wire][framer]") {
  std::vector<uint8_t> stream = Stream(Goldens());
  stream[19 + 5] = 0;  // inside the second message's marker
  Framer framer;
  framer.Feed(stream);
  CHECK(framer.Next().kind == Kind::kMessage);
  Framer::Frame frame = framer.Next();
  REQUIRE(frame.kind == Kind::kError);
  CHECK(frame.error->notification.Is(HeaderSubcode::kConnectionNotSynchronized));
  CHECK(frame.error->action == ErrorAction::kSessionReset);
  CHECK(framer.failed());
  framer.Feed(HexFile("keepalive.hex"));
  CHECK(framer.Next().kind == Kind::kError);  // sticky
}

TEST_CASE("framer: length below 19 or above 4096", "[unit][wire][framer]") {
  for (uint16_t length : {0, 18, 4097, 65535}) {
    INFO("length " << length);
    std::vector<uint8_t> header(16, 0xff);
    header.push_back(static_cast<uint8_t>(length >> 8));
    header.push_back(static_cast<uint8_t>(length));
    header.push_back(4);
    Framer framer;
    // Header split across chunks: the check waits for all 19 octets.
    framer.Feed(std::span<const uint8_t>(header).first(10));
    CHECK(framer.Next().kind == Kind::kNeedMore);
    framer.Feed(std::span<const uint8_t>(header).subspan(10));
    Framer::Frame frame = framer.Next();
    REQUIRE(frame.kind == Kind::kError);
    CHECK(frame.error->notification ==
          Notification(HeaderSubcode::kBadMessageLength,
                       {static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length)}));
  }
}

TEST_CASE("framer: a 4096-octet message passes", "[unit][wire][framer]") {
  std::vector<uint8_t> big = MessageBytes(MessageType::kNotification, std::vector<uint8_t>(4077, 1));
  REQUIRE(big.size() == 4096);
  Framer framer;
  framer.Feed(std::span<const uint8_t>(big).first(4000));
  CHECK(framer.Next().kind == Kind::kNeedMore);
  framer.Feed(std::span<const uint8_t>(big).subspan(4000));
  Framer::Frame frame = framer.Next();
  REQUIRE(frame.kind == Kind::kMessage);
  CHECK(frame.message.size() == 4096);
}

}  // namespace
}  // namespace calico::birdd::wire
