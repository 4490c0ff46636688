#pragma once
// birdd/wire: splits a TCP byte stream into BGP messages (RFC 4271 §4.1 header: marker, length).
// Complete messages inside a chunk are handed out in place; only a message that straddles chunks
// is copied (into one buffer, at most a message long). After a header error the stream cannot be
// resynchronised, so the error repeats until the connection is dropped.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "birdd/wire/message.h"

namespace calico::birdd::wire {

class Framer {
 public:
  struct Frame {
    enum class Kind { kNeedMore, kMessage, kError };
    Kind kind = Kind::kNeedMore;
    // kMessage: the whole message, header included; valid until the next Feed() or Next().
    std::span<const uint8_t> message;
    std::optional<DecodeError> error;  // kError: Connection Not Synchronized / Bad Message Length
  };

  // `max_message_size` stays 4096 until RFC 8654 extended messages are negotiated.
  explicit Framer(size_t max_message_size = kMaxMessageSize) : max_(max_message_size) {}

  // The next chunk read from the stream. It must stay valid until Next() returns kNeedMore; by
  // then whatever is left of it has been copied. (Feeding before that works, at a copy.)
  void Feed(std::span<const uint8_t> chunk);
  Frame Next();

  bool failed() const { return error_.has_value(); }
  size_t buffered() const { return pending_.size() + chunk_.size(); }

 private:
  std::optional<DecodeError> CheckHeader(std::span<const uint8_t> header, size_t& length) const;
  Frame Fail(DecodeError error);

  size_t max_;
  std::span<const uint8_t> chunk_;  // unread part of the caller's chunk
  std::vector<uint8_t> pending_;    // a message begun in an earlier chunk
  bool release_pending_ = false;    // pending_ was handed out; clear it on the next call
  std::vector<uint8_t> overflow_;   // only when Feed() came before Next() drained a chunk
  std::optional<DecodeError> error_;
};

}  // namespace calico::birdd::wire
