#pragma once
// birdd/wire internal: bounds-checked big-endian reads over a span, appends to a byte vector.
// Every read checks what remains first, so no input can make the decoder read out of bounds.

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace calico::birdd::wire::internal {

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : data_(bytes) {}

  size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return pos_ == data_.size(); }
  size_t position() const { return pos_; }
  std::span<const uint8_t> rest() const { return data_.subspan(pos_); }

  bool U8(uint8_t& out) {
    if (remaining() < 1) return false;
    out = data_[pos_++];
    return true;
  }
  bool U16(uint16_t& out) {
    if (remaining() < 2) return false;
    out = static_cast<uint16_t>(data_[pos_] << 8 | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool U32(uint32_t& out) {
    if (remaining() < 4) return false;
    out = Load32(&data_[pos_]);
    pos_ += 4;
    return true;
  }
  bool Bytes(size_t n, std::span<const uint8_t>& out) {
    if (remaining() < n) return false;
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }

  static uint32_t Load32(const uint8_t* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
  }
  static uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

// Appends to a caller's vector; positions let a length be patched once the body is written.
class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}

  size_t size() const { return out_.size(); }
  void U8(uint8_t v) { out_.push_back(v); }
  void U16(uint16_t v) {
    uint8_t b[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    out_.insert(out_.end(), b, b + 2);
  }
  void U32(uint32_t v) {
    uint8_t b[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                    static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    out_.insert(out_.end(), b, b + 4);
  }
  void Bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void Patch16(size_t at, uint16_t v) {
    out_[at] = static_cast<uint8_t>(v >> 8);
    out_[at + 1] = static_cast<uint8_t>(v);
  }
  void Patch8(size_t at, uint8_t v) { out_[at] = v; }
  std::vector<uint8_t>& vector() { return out_; }

 private:
  std::vector<uint8_t>& out_;
};

}  // namespace calico::birdd::wire::internal
