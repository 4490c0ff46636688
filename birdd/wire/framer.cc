#include "birdd/wire/framer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "birdd/wire/buffer.h"

namespace calico::birdd::wire {

void Framer::Feed(std::span<const uint8_t> chunk) {
  if (release_pending_) {
    pending_.clear();
    release_pending_ = false;
  }
  if (!chunk_.empty()) {  // the caller fed again before draining: keep the order of bytes
    pending_.insert(pending_.end(), chunk_.begin(), chunk_.end());
  }
  chunk_ = chunk;
}

std::optional<DecodeError> Framer::CheckHeader(std::span<const uint8_t> header,
                                               size_t& length) const {
  if (!std::all_of(header.begin(), header.begin() + kMarkerSize,
                   [](uint8_t b) { return b == 0xff; })) {
    return DecodeError{Notification(HeaderSubcode::kConnectionNotSynchronized),
                       ErrorAction::kSessionReset, "marker is not all ones"};
  }
  length = internal::Reader::Load16(&header[16]);
  if (length < kHeaderSize || length > max_) {
    return DecodeError{Notification(HeaderSubcode::kBadMessageLength, {header[16], header[17]}),
                       ErrorAction::kSessionReset,
                       absl::StrCat("length field ", length, " outside 19..", max_)};
  }
  return std::nullopt;
}

Framer::Frame Framer::Fail(DecodeError error) {
  error_ = std::move(error);
  chunk_ = {};
  pending_.clear();
  return Frame{Frame::Kind::kError, {}, error_};
}

Framer::Frame Framer::Next() {
  if (error_) return Frame{Frame::Kind::kError, {}, error_};
  if (release_pending_) {
    pending_.clear();
    release_pending_ = false;
  }
  size_t length = 0;
  if (pending_.empty()) {
    // Fast path: a whole message inside the chunk is handed out without a copy.
    if (chunk_.size() >= kHeaderSize) {
      if (auto error = CheckHeader(chunk_.first(kHeaderSize), length)) return Fail(*error);
      if (chunk_.size() >= length) {
        std::span<const uint8_t> message = chunk_.first(length);
        chunk_ = chunk_.subspan(length);
        return Frame{Frame::Kind::kMessage, message, std::nullopt};
      }
    }
    if (pending_.capacity() < max_) pending_.reserve(max_);
    pending_.assign(chunk_.begin(), chunk_.end());
    chunk_ = {};
    return Frame{};
  }
  // A message begun earlier: complete its header, then its body.
  if (pending_.size() < kHeaderSize) {
    size_t take = std::min(kHeaderSize - pending_.size(), chunk_.size());
    pending_.insert(pending_.end(), chunk_.begin(), chunk_.begin() + take);
    chunk_ = chunk_.subspan(take);
    if (pending_.size() < kHeaderSize) return Frame{};
  }
  if (auto error = CheckHeader(std::span<const uint8_t>(pending_).first(kHeaderSize), length)) {
    return Fail(*error);
  }
  size_t take = std::min(length - std::min(length, pending_.size()), chunk_.size());
  pending_.insert(pending_.end(), chunk_.begin(), chunk_.begin() + take);
  chunk_ = chunk_.subspan(take);
  if (pending_.size() < length) return Frame{};
  if (pending_.size() > length) {
    // Only after a double Feed: the surplus belongs to the next message; keep it ahead of chunk_.
    // Rare enough that moving it is fine.
    std::vector<uint8_t> rest(pending_.begin() + length, pending_.end());
    rest.insert(rest.end(), chunk_.begin(), chunk_.end());
    overflow_ = std::move(rest);
    chunk_ = overflow_;
    pending_.resize(length);
  }
  release_pending_ = true;
  return Frame{Frame::Kind::kMessage, std::span<const uint8_t>(pending_), std::nullopt};
}

}  // namespace calico::birdd::wire
