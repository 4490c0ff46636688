// calicoctl driven in-process (calicoctl::Run) against a real SQLite datastore in a temp dir.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_split.h"
#include "calicoctl/cli.h"
#include "common/datastore/sqlite/sqlite_datastore.h"
#include "common/resources/resource.h"

namespace fs = std::filesystem;
using calico::datastore::Config;

namespace {

struct Result {
  int code;
  std::string out;
  std::string err;
};

class Ctl {
 public:
  Ctl() {
    char tmpl[] = "/tmp/calicoctl-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_.sqlite_path = dir_ + "/calico.db";
  }
  ~Ctl() { fs::remove_all(dir_); }

  Result operator()(std::vector<std::string> args, const std::string& stdin_text = "") {
    std::istringstream in(stdin_text);
    std::ostringstream out, err;
    calico::calicoctl::Environment env{
        .open = [](const Config& c) { return calico::datastore::OpenSqlite(c); },
        .config_from_env = [this]() -> absl::StatusOr<Config> { return config_; },
    };
    int code = calico::calicoctl::Run(args, {in, out, err}, env);
    return {code, out.str(), err.str()};
  }

  // Every key in the datastore, whatever its kind.
  size_t KeyCount() {
    auto store = calico::datastore::OpenSqlite(config_);
    REQUIRE(store.ok());
    auto listed = (*store)->List("/");
    REQUIRE(listed.ok());
    return listed->entries.size();
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

 private:
  std::string dir_;
  Config config_;
};

std::string ReadFile(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Server-set metadata differs per run; everything else must be byte-identical.
std::string MaskServerFields(const std::string& yaml) {
  static const std::regex kServer(R"((\n\s*)(resourceVersion|uid|creationTimestamp): [^\n]*)");
  return std::regex_replace(yaml, kServer, "");
}

// Splits a multi-document YAML file on `---` lines, keeping each document's text exactly.
std::vector<std::string> SplitDocuments(const std::string& text) {
  std::vector<std::string> docs;
  std::string current;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line == "---") {
      if (!current.empty()) docs.push_back(current);
      current.clear();
      continue;
    }
    current += line + "\n";
  }
  if (!current.empty()) docs.push_back(current);
  return docs;
}

const fs::path kData = fs::path(CALICO_SOURCE_DIR) / "tests/data/resources";

const char* kPoolP1 = R"(apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: p1
spec:
  cidr: 10.10.0.0/16
)";

}  // namespace

TEST_CASE("calicoctl round-trips every valid manifest byte-stable through apply and get -o yaml",
          "[unit][calicoctl]") {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kData / "valid")) {
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  }
  REQUIRE(files.size() >= 6);
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    Ctl ctl;
    INFO(file.filename().string());
    Result applied = ctl({"apply", "-f", file.string()});
    INFO(applied.err);
    REQUIRE(applied.code == 0);
    REQUIRE(applied.out.rfind("Successfully applied", 0) == 0);

    for (const std::string& doc_text : SplitDocuments(ReadFile(file))) {
      absl::StatusOr<std::vector<calico::resources::ParsedDocument>> parsed =
          calico::resources::ParseDocuments(doc_text);
      REQUIRE(parsed.ok());
      REQUIRE(parsed->size() == 1);
      const calico::resources::Resource& r = *parsed->front().resource;
      std::string kind_arg(r.kind->aliases.front());
      std::vector<std::string> get = {"get", kind_arg, r.Name(), "-o", "yaml"};
      if (r.kind->namespaced) {
        get.push_back("-n");
        get.push_back(r.Namespace());
      }
      Result got = ctl(get);
      INFO(r.Describe() << "\n" << got.err);
      REQUIRE(got.code == 0);
      // Byte-stable: what get prints is the manifest, plus only server-set metadata.
      REQUIRE(MaskServerFields(got.out) == doc_text);
      REQUIRE(got.out.find("resourceVersion: ") != std::string::npos);
      REQUIRE(got.out.find("uid: ") != std::string::npos);

      // Applying get's output again changes nothing but the revision.
      std::string again_path = ctl.WriteFile("again.yaml", got.out);
      Result reapplied = ctl({"apply", "-f", again_path});
      INFO(reapplied.err);
      REQUIRE(reapplied.code == 0);
      Result got_again = ctl(get);
      REQUIRE(got_again.code == 0);
      static const std::regex kRv(R"(resourceVersion: [^\n]*)");
      REQUIRE(std::regex_replace(got_again.out, kRv, "") == std::regex_replace(got.out, kRv, ""));
    }
  }
}

TEST_CASE("calicoctl rejects every invalid manifest with its expected message and writes nothing",
          "[unit][calicoctl]") {
  int checked = 0;
  for (const auto& e : fs::directory_iterator(kData / "invalid")) {
    if (e.path().extension() != ".yaml") continue;
    fs::path expected_path = e.path();
    expected_path.replace_extension(".expected");
    REQUIRE(fs::exists(expected_path));
    std::string expected = ReadFile(expected_path);
    while (!expected.empty() && expected.back() == '\n') expected.pop_back();
    Ctl ctl;
    INFO(e.path().filename().string());
    Result r = ctl({"apply", "-f", e.path().string()});
    REQUIRE(r.code == 1);
    REQUIRE(r.out.empty());
    // One line naming the file, then the validation message.
    REQUIRE(r.err.find("Failed to apply " + e.path().string() + ": " + expected + "\n") == 0);
    // Nothing of it reached the datastore.
    REQUIRE(ctl.KeyCount() == 0);
    ++checked;
  }
  REQUIRE(checked >= 8);
}

TEST_CASE("calicoctl applies the valid documents of a file and names the invalid ones", "[unit][calicoctl]") {
  Ctl ctl;
  std::string file = ctl.WriteFile("mixed.yaml", std::string(kPoolP1) + R"(---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: bad
spec:
  cidr: 10.20.0.0/16
  blockSize: 33
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: p3
spec:
  cidr: 10.30.0.0/16
)");
  Result r = ctl({"apply", "-f", file});
  CHECK(r.code == 1);
  CHECK(r.err == "Failed to apply document 2 of " + file +
                     ": IPPool \"bad\": spec.blockSize: 33 is outside 20-32 for IPv4\n");
  CHECK(r.out == "Partially applied: 2 of 3 'IPPool' resource(s): IPPool \"p1\" (document 1), "
                 "IPPool \"p3\" (document 3)\n");
  Result table = ctl({"get", "ippools"});
  REQUIRE(table.code == 0);
  CHECK(table.out ==
        "NAME   CIDR           SELECTOR\n"
        "p1     10.10.0.0/16   all()\n"
        "p3     10.30.0.0/16   all()\n");
}

TEST_CASE("calicoctl refuses a pool that overlaps an existing one, naming both", "[unit][calicoctl]") {
  Ctl ctl;
  REQUIRE(ctl({"create", "-f", "-"}, kPoolP1).code == 0);
  Result r = ctl({"create", "-f", "-"}, R"(apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: p2
spec:
  cidr: 10.10.128.0/17
)");
  CHECK(r.code == 1);
  CHECK(r.err.find("p2") != std::string::npos);
  CHECK(r.err.find("p1") != std::string::npos);
  CHECK(r.err.find("overlap") != std::string::npos);
  CHECK(ctl({"get", "ippool", "p2"}).code == 1);
}

TEST_CASE("calicoctl create, replace and delete follow existence rules", "[unit][calicoctl]") {
  Ctl ctl;
  Result created = ctl({"create", "-f", "-"}, kPoolP1);
  REQUIRE(created.code == 0);
  CHECK(created.out == "Successfully created 1 'IPPool' resource(s)\n");

  Result again = ctl({"create", "-f", "-"}, kPoolP1);
  CHECK(again.code == 1);
  CHECK(again.err == "Failed to create stdin: IPPool \"p1\" already exists\n");
  CHECK(ctl({"create", "--skip-exists", "-f", "-"}, kPoolP1).code == 0);

  std::string missing = std::regex_replace(std::string(kPoolP1), std::regex("name: p1"), "name: p9");
  Result replace_missing = ctl({"replace", "-f", "-"}, missing);
  CHECK(replace_missing.code == 1);
  CHECK(replace_missing.err == "Failed to replace stdin: IPPool \"p9\" not found\n");

  // replace with a stale resourceVersion is a conflict, not a silent overwrite.
  Result got = ctl({"get", "ippool", "p1", "-o", "yaml"});
  REQUIRE(got.code == 0);
  REQUIRE(ctl({"patch", "ippool", "p1", "-p", R"({"spec":{"disabled":true}})"}).code == 0);
  Result stale = ctl({"replace", "-f", "-"}, got.out);
  CHECK(stale.code == 1);
  CHECK(stale.err.find("was modified") != std::string::npos);

  Result wide = ctl({"get", "ippool", "p1", "-o", "wide"});
  CHECK(wide.out ==
        "NAME   CIDR           NAT     IPIPMODE   VXLANMODE   DISABLED   DISABLEBGPEXPORT   SELECTOR\n"
        "p1     10.10.0.0/16   false   Never      Never       true       false              all()\n");

  Result deleted = ctl({"delete", "ippool", "p1"});
  CHECK(deleted.code == 0);
  CHECK(deleted.out == "Successfully deleted 1 'IPPool' resource(s)\n");
  Result gone = ctl({"delete", "ipp", "p1"});
  CHECK(gone.code == 1);
  CHECK(gone.err == "Failed to delete: IPPool \"p1\" not found\n");
  CHECK(ctl({"delete", "pools", "p1", "--skip-not-exists"}).code == 0);
  Result get_gone = ctl({"get", "ippool", "p1"});
  CHECK(get_gone.code == 1);
  CHECK(get_gone.err == "Failed to get resources: IPPool \"p1\" not found\n");
}

TEST_CASE("calicoctl label and patch validate before writing", "[unit][calicoctl]") {
  Ctl ctl;
  REQUIRE(ctl({"create", "-f", "-"}, kPoolP1).code == 0);
  Result set = ctl({"label", "ippool", "p1", "rack=r1"});
  CHECK(set.code == 0);
  CHECK(set.out == "Successfully set label rack on ippool p1\n");
  Result dup = ctl({"label", "ippool", "p1", "rack=r2"});
  CHECK(dup.code == 1);
  CHECK(dup.err.find("--overwrite") != std::string::npos);
  CHECK(ctl({"label", "ippool", "p1", "rack=r2", "--overwrite"}).code == 0);
  CHECK(ctl({"get", "ippool", "p1", "-o", "yaml"}).out.find("rack: r2") != std::string::npos);
  CHECK(ctl({"label", "ippool", "p1", "rack", "--remove"}).code == 0);
  CHECK(ctl({"get", "ippool", "p1", "-o", "yaml"}).out.find("rack") == std::string::npos);

  Result bad = ctl({"patch", "ippool", "p1", "-p", R"({"spec":{"blockSize":40}})"});
  CHECK(bad.code == 1);
  CHECK(bad.err == "Failed to patch: IPPool \"p1\": spec.blockSize: 40 is outside 20-32 for IPv4\n");
  CHECK(ctl({"get", "ippool", "p1", "-o", "yaml"}).out.find("blockSize: 26") != std::string::npos);
  Result rename = ctl({"patch", "ippool", "p1", "-p", R"({"metadata":{"name":"p2"}})"});
  CHECK(rename.code == 1);
  Result move = ctl({"patch", "ippool", "p1", "-p", R"({"spec":{"cidr":"10.11.0.0/16"}})"});
  CHECK(move.code == 1);
  CHECK(move.err ==
        "Failed to patch: IPPool \"p1\": spec.cidr: cannot be changed (\"10.10.0.0/16\" to "
        "\"10.11.0.0/16\"); create a new pool and disable this one\n");
}

TEST_CASE("calicoctl lists namespaced kinds per namespace or across all", "[unit][calicoctl]") {
  Ctl ctl;
  std::string policies = R"(apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-a
  namespace: ns1
spec:
  selector: app == "a"
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-b
spec:
  selector: app == "b"
)";
  Result applied = ctl({"apply", "-f", "-", "-n", "ns2"}, policies);
  INFO(applied.err);
  REQUIRE(applied.code == 0);
  CHECK(ctl({"get", "networkpolicy"}).out == "NAME   TIER\n");
  CHECK(ctl({"get", "networkpolicy", "-n", "ns2"}).out == "NAME      TIER\nallow-b   default\n");
  CHECK(ctl({"get", "np", "-A"}).out ==
        "NAMESPACE   NAME      TIER\n"
        "ns1         allow-a   default\n"
        "ns2         allow-b   default\n");
  CHECK(ctl({"get", "policies", "-A", "-n", "ns1"}).code == 1);
}

TEST_CASE("calicoctl argument and input errors are one clear line", "[unit][calicoctl]") {
  Ctl ctl;
  Result unknown_kind = ctl({"get", "widgets"});
  CHECK(unknown_kind.code == 1);
  CHECK(unknown_kind.err.find("resource type 'widgets' is not supported") != std::string::npos);
  Result bad_format = ctl({"get", "ippools", "-o", "xml"});
  CHECK(bad_format.code == 1);
  CHECK(bad_format.err == "Failed to get resources: output format 'xml' is not supported (ps, wide, yaml, json)\n");
  Result missing_file = ctl({"apply", "-f", "/nonexistent/x.yaml"});
  CHECK(missing_file.code == 1);
  CHECK(missing_file.err.find("/nonexistent/x.yaml") != std::string::npos);
  Result syntax = ctl({"apply", "-f", "-"}, "kind: IPPool\nmetadata: [unclosed\n");
  CHECK(syntax.code == 1);
  CHECK(std::count(syntax.err.begin(), syntax.err.end(), '\n') == 1);
  Result bad_option = ctl({"get", "ippools", "--frobnicate"});
  CHECK(bad_option.code == 1);
  CHECK(bad_option.err.find("--frobnicate") != std::string::npos);
  Result cluster_info = ctl({"apply", "-f", "-"},
                            "apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata:\n  name: default\n");
  CHECK(cluster_info.code == 1);
  CHECK(cluster_info.err.find("written by the calico-cpp daemons") != std::string::npos);
}

TEST_CASE("calicoctl validate checks without a datastore", "[unit][calicoctl]") {
  Ctl ctl;
  Result ok = ctl({"validate", "-f", "-"}, kPoolP1);
  CHECK(ok.code == 0);
  CHECK(ok.out == "Successfully validated 1 resource(s)\n");
  Result bad = ctl({"validate", "-f", "-"}, std::string(kPoolP1) + "  vxlanMode: Always\n  ipipMode: Always\n");
  CHECK(bad.code == 1);
  CHECK(bad.err.find("Failed to validate stdin: IPPool \"p1\": ") == 0);
}
