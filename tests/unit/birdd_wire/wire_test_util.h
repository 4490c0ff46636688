#pragma once
// Helpers for the birdd_wire tests: hex in and out, message builders that compute lengths, and
// typed decode checks.

#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "birdd/wire/decode.h"
#include "birdd/wire/encode.h"
#include "common/net/ip.h"

namespace calico::birdd::wire::testing {

// "ff ff 00 # comment" → bytes. Whitespace and '#'-to-end-of-line comments are ignored.
inline std::vector<uint8_t> Hex(std::string_view text) {
  std::vector<uint8_t> out;
  int nibble = -1;
  bool comment = false;
  for (char c : text) {
    if (comment) {
      comment = c != '\n';
      continue;
    }
    if (c == '#') {
      comment = true;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                                                         : std::tolower(c) - 'a' + 10;
    REQUIRE((v >= 0 && v < 16));
    if (nibble < 0) {
      nibble = v;
    } else {
      out.push_back(static_cast<uint8_t>(nibble << 4 | v));
      nibble = -1;
    }
  }
  REQUIRE(nibble < 0);
  return out;
}

inline std::string ToHex(const std::vector<uint8_t>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

inline std::string DataDir() { return std::string(CALICO_BGP_TESTDATA); }

inline std::vector<uint8_t> HexFile(const std::string& name) {
  std::ifstream in(DataDir() + "/" + name);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return Hex(text.str());
}

inline std::vector<uint8_t> Concat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A whole message with the header's length computed.
inline std::vector<uint8_t> MessageBytes(MessageType type, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> out(16, 0xff);
  size_t length = 19 + body.size();
  out.push_back(static_cast<uint8_t>(length >> 8));
  out.push_back(static_cast<uint8_t>(length));
  out.push_back(static_cast<uint8_t>(type));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// An UPDATE from hex pieces, with the Withdrawn Routes and Total Path Attribute lengths computed.
inline std::vector<uint8_t> UpdateMsg(std::string_view attrs, std::string_view nlri = "",
                                      std::string_view withdrawn = "") {
  std::vector<uint8_t> w = Hex(withdrawn), a = Hex(attrs), n = Hex(nlri);
  std::vector<uint8_t> body;
  body.push_back(static_cast<uint8_t>(w.size() >> 8));
  body.push_back(static_cast<uint8_t>(w.size()));
  body.insert(body.end(), w.begin(), w.end());
  body.push_back(static_cast<uint8_t>(a.size() >> 8));
  body.push_back(static_cast<uint8_t>(a.size()));
  body.insert(body.end(), a.begin(), a.end());
  body.insert(body.end(), n.begin(), n.end());
  return MessageBytes(MessageType::kUpdate, body);
}

inline net::Prefix P(std::string_view text) {
  auto prefix = net::ParsePrefix(text);
  REQUIRE(prefix.has_value());
  return *prefix;
}

inline net::IpAddress Ip(std::string_view text) {
  auto ip = net::ParseIp(text);
  REQUIRE(ip.has_value());
  return *ip;
}

inline uint32_t Id(std::string_view dotted) {
  net::IpAddress ip = Ip(dotted);
  return uint32_t{ip.bytes[0]} << 24 | uint32_t{ip.bytes[1]} << 16 | uint32_t{ip.bytes[2]} << 8 |
         ip.bytes[3];
}

inline constexpr SessionContext kOld{false};  // 2-octet AS session
inline constexpr SessionContext kNew{true};   // 4-octet AS session

// Decodes and requires a message of type T.
template <typename T>
T DecodeAs(const std::vector<uint8_t>& bytes, const SessionContext& session) {
  Decoded decoded = Decode(bytes, session);
  if (auto* error = std::get_if<DecodeError>(&decoded)) FAIL(error->ToString());
  auto* message = std::get_if<wire::Message>(&decoded);
  REQUIRE(message != nullptr);
  auto* typed = std::get_if<T>(message);
  REQUIRE(typed != nullptr);
  return std::move(*typed);
}

// Decodes and requires a session-reset DecodeError.
inline DecodeError DecodeFails(const std::vector<uint8_t>& bytes, const SessionContext& session) {
  Decoded decoded = Decode(bytes, session);
  auto* error = std::get_if<DecodeError>(&decoded);
  REQUIRE(error != nullptr);
  CHECK(error->action == ErrorAction::kSessionReset);
  return *error;
}

template <typename T>
std::vector<uint8_t> EncodeOk(const T& message, const SessionContext& session = kNew) {
  std::vector<uint8_t> out;
  absl::Status s;
  if constexpr (std::is_same_v<T, Update> || std::is_same_v<T, wire::Message>) {
    s = Encode(message, session, out);
  } else {
    s = Encode(message, out);
  }
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

}  // namespace calico::birdd::wire::testing
