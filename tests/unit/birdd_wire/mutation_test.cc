// A deterministic stand-in for fuzzing on g++ builds: 200k mutations of the seed corpus (byte
// overwrites, bit flips, truncations, insertions, length-field fix-ups) through the fuzz entry.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "wire_test_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace calico::birdd::wire {
namespace {

using namespace testing;

std::vector<std::vector<uint8_t>> Seeds() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(DataDir() + "/fuzz_seeds")) {
    if (entry.path().extension() == ".bin") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());  // directory order is not stable
  std::vector<std::vector<uint8_t>> seeds;
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return seeds;
}

TEST_CASE("fuzz seeds are present", "[unit][wire][fuzz]") {
  CHECK(Seeds().size() >= 20);
}

TEST_CASE("200k seeded mutations through the decoder", "[unit][wire][fuzz]") {
  const std::vector<std::vector<uint8_t>> seeds = Seeds();
  REQUIRE_FALSE(seeds.empty());
  std::mt19937 rng(20240601);
  auto below = [&rng](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  std::vector<uint8_t> input;
  for (int i = 0; i < 200'000; ++i) {
    input = seeds[below(seeds.size())];
    const int edits = 1 + static_cast<int>(below(3));
    for (int e = 0; e < edits; ++e) {
      switch (below(5)) {
        case 0:  // overwrite a byte, biased towards the interesting front of a message
          if (!input.empty()) input[below(std::min<size_t>(input.size(), below(2) ? 64 : 4096))] = static_cast<uint8_t>(rng());
          break;
        case 1:  // flip a bit
          if (!input.empty()) input[below(input.size())] ^= static_cast<uint8_t>(1u << below(8));
          break;
        case 2:  // truncate
          input.resize(below(input.size() + 1));
          break;
        case 3:  // insert a byte
          input.insert(input.begin() + static_cast<long>(below(input.size() + 1)),
                       static_cast<uint8_t>(rng()));
          break;
        case 4:  // small values at a random spot (lengths, counts, type codes)
          if (!input.empty()) input[below(input.size())] = static_cast<uint8_t>(below(5));
          break;
      }
    }
    // Half the time, make the header length agree so the message gets past the framer.
    if (below(2) && input.size() >= 19 && input.size() <= 4096) {
      input[16] = static_cast<uint8_t>(input.size() >> 8);
      input[17] = static_cast<uint8_t>(input.size());
    }
    LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  SUCCEED("no property violated");
}

}  // namespace
}  // namespace calico::birdd::wire
