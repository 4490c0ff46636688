// Golden manifests: every valid file is already in canonical form (parse → ToYaml reproduces it
// byte for byte), and every invalid file fails with exactly the line in its .expected sibling.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base/status_macros.h"
#include "common/resources/resource.h"

namespace calico::resources {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> Files(const std::string& dir, const std::string& ext) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(fs::path(CALICO_RESOURCES_TESTDATA) / dir)) {
    if (entry.path().extension() == ext) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("Valid manifests are canonical", "[unit][resources][golden]") {
  std::vector<fs::path> files = Files("valid", ".yaml");
  REQUIRE(files.size() >= 8);
  for (const fs::path& file : files) {
    INFO("file: " << file.filename().string());
    std::string text = ReadFile(file);
    absl::StatusOr<std::vector<ParsedDocument>> docs = ParseDocuments(text, "default");
    REQUIRE(docs.ok());
    REQUIRE_FALSE(docs->empty());
    std::string printed;
    std::vector<Resource> all;
    for (const ParsedDocument& doc : *docs) {
      INFO("document " << doc.index << ": " << doc.resource.status().ToString());
      REQUIRE(doc.resource.ok());
      if (!printed.empty()) printed += "---\n";
      printed += ToYaml({*doc.resource});
      all.push_back(*doc.resource);
    }
    CHECK(printed == text);
    // The same objects survive JSON and the stored form.
    absl::StatusOr<std::vector<ParsedDocument>> from_json = ParseDocuments(ToJson(all, true), "default");
    REQUIRE(from_json.ok());
    REQUIRE(from_json->size() == all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      REQUIRE((*from_json)[i].resource.ok());
      CHECK(*(*from_json)[i].resource == all[i]);
      absl::StatusOr<Resource> stored = FromStored(ToStored(all[i]), 5);
      REQUIRE(stored.ok());
      CHECK(stored->object["spec"] == all[i].object["spec"]);
    }
  }
}

TEST_CASE("Invalid manifests fail with the expected message", "[unit][resources][golden]") {
  std::vector<fs::path> files = Files("invalid", ".yaml");
  REQUIRE(files.size() >= 10);
  for (const fs::path& file : files) {
    INFO("file: " << file.filename().string());
    fs::path expected_path = file;
    expected_path.replace_extension(".expected");
    REQUIRE(fs::exists(expected_path));
    std::string expected = ReadFile(expected_path);
    while (!expected.empty() && (expected.back() == '\n' || expected.back() == '\r')) expected.pop_back();
    absl::StatusOr<std::vector<ParsedDocument>> docs = ParseDocuments(ReadFile(file), "default");
    std::string error;
    if (!docs.ok()) {
      error = ToStd(docs.status().message());
    } else {
      for (const ParsedDocument& doc : *docs) {
        if (!doc.resource.ok()) {
          error = ToStd(doc.resource.status().message());
          break;
        }
      }
    }
    CHECK(error == expected);
  }
}

}  // namespace
}  // namespace calico::resources
