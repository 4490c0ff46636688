#pragma once
// Helpers shared by the ipamd service unit tests.

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"

namespace calico::ipamd::testing {

// A private temp dir, removed with everything in it (sockets included) even when a REQUIRE
// fails. Short paths: a unix socket path must fit in 108 bytes.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/ipamd-ut-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) FAIL("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

template <typename T>
T Ok(absl::StatusOr<T> result) {
  if (!result.ok()) FAIL(result.status().ToString());
  return std::move(result).value();
}

}  // namespace calico::ipamd::testing
