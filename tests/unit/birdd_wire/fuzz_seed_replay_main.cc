// Replays every file of a seed directory through LLVMFuzzerTestOneInput, so g++ builds (no
// libFuzzer) still run the fuzz properties on a corpus (every file but *.md).
// Usage: birdd_wire_fuzz_replay <dir>...

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    for (const auto& entry : std::filesystem::directory_iterator(argv[i])) {
      if (!entry.is_regular_file() || entry.path().extension() == ".md") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++files;
    }
  }
  if (files == 0) {
    std::fprintf(stderr, "no seeds found\n");
    return 1;
  }
  std::printf("replayed %zu seeds\n", files);
  return 0;
}
