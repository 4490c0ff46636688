// Fuzz entry point for birdd/wire: the input is a TCP byte stream. It goes through the Framer
// (cut where the first octet says), every message is decoded on a 2-octet and a 4-octet session,
// and what decodes is re-encoded. Properties checked (a violation aborts):
//  - nothing crashes or reads out of bounds (ASan/UBSan builds catch that);
//  - Decode() only ever fails with a session reset, and DecodeUpdate() into a reused Update
//    agrees with Decode();
//  - a re-encoded message decodes again without a session reset, and encode∘decode reaches a
//    fixed point after one pass (a second pass reproduces its bytes);
//  - packing a decoded UPDATE's IPv4 NLRI and decoding the pack gives the same prefixes.
// Used by libFuzzer (clang), by the seed replay test, and by the mutation loop in unit tests.

#include <cstdio>
#include <cstdlib>

#include "birdd/wire/decode.h"
#include "birdd/wire/encode.h"
#include "birdd/wire/framer.h"
#include "birdd/wire/pack.h"

namespace calico::birdd::wire {
namespace {

[[noreturn]] void Violation(const char* what) {
  std::fprintf(stderr, "birdd_wire fuzz property violated: %s\n", what);
  std::abort();
}

// encode(decode(bytes)); false when it does not decode or encode (not a violation by itself).
bool Normalize(std::span<const uint8_t> bytes, const SessionContext& session,
               std::vector<uint8_t>& out) {
  Decoded decoded = Decode(bytes, session);
  auto* message = std::get_if<Message>(&decoded);
  if (!message) return false;
  out.clear();
  return Encode(*message, session, out).ok();
}

void CheckPack(const Update& update, const SessionContext& session) {
  if (update.nlri.empty() || !update.attrs.next_hop) return;
  std::vector<uint8_t> stream;
  auto n = EncodeAnnouncements(update.attrs, NextHop{*update.attrs.next_hop, std::nullopt},
                               update.nlri, session, stream);
  if (!n.ok()) return;
  Framer framer;
  framer.Feed(stream);
  std::vector<net::Prefix> got;
  Update scratch;
  while (true) {
    Framer::Frame frame = framer.Next();
    if (frame.kind == Framer::Frame::Kind::kNeedMore) break;
    if (frame.kind == Framer::Frame::Kind::kError) Violation("packed stream does not frame");
    if (DecodeUpdate(frame.message, session, scratch)) Violation("packed UPDATE resets");
    got.insert(got.end(), scratch.nlri.begin(), scratch.nlri.end());
  }
  // Prefixes come back masked; the decoder masked them the first time too.
  if (got != update.nlri) Violation("packed NLRI differ");
}

void CheckMessage(std::span<const uint8_t> bytes, const SessionContext& session, Update& reuse) {
  Decoded decoded = Decode(bytes, session);
  if (auto* error = std::get_if<DecodeError>(&decoded)) {
    if (error->action != ErrorAction::kSessionReset) Violation("a returned error is not a reset");
    return;
  }
  const Message& message = std::get<Message>(decoded);
  if (const Update* update = std::get_if<Update>(&message)) {
    if (DecodeUpdate(bytes, session, reuse)) Violation("DecodeUpdate fails where Decode works");
    if (!(reuse == *update)) Violation("DecodeUpdate into a reused Update differs");
    if (update->action() == ErrorAction::kNone) CheckPack(*update, session);
  }
  std::vector<uint8_t> once, twice, thrice;
  if (!Encode(message, session, once).ok()) return;  // e.g. AS4_PATH growth past 4096
  Decoded again = Decode(once, session);
  if (!std::holds_alternative<Message>(again)) Violation("a re-encoded message does not decode");
  if (!Normalize(once, session, twice)) return;
  if (!Normalize(twice, session, thrice)) Violation("second normalization fails");
  if (twice != thrice) Violation("encode(decode()) is not idempotent");
}

}  // namespace
}  // namespace calico::birdd::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace calico::birdd::wire;
  std::span<const uint8_t> input(data, size);
  const size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  for (const SessionContext session : {SessionContext{false}, SessionContext{true}}) {
    Update reuse;
    Framer framer;
    bool second_fed = false;
    framer.Feed(input.first(cut));
    while (true) {
      Framer::Frame frame = framer.Next();
      if (frame.kind == Framer::Frame::Kind::kError) break;
      if (frame.kind == Framer::Frame::Kind::kNeedMore) {
        if (second_fed) break;
        framer.Feed(input.subspan(cut));
        second_fed = true;
        continue;
      }
      // The span dies at the next Next(): check it now.
      CheckMessage(frame.message, session, reuse);
    }
    // The whole input as one message: exercises the length and type checks of Decode itself.
    CheckMessage(input, session, reuse);
  }
  return 0;
}
