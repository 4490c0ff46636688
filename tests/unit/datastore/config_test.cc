#include "common/datastore/config.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include "common/base/status_macros.h"
#include "tests/support/datastore/conformance.h"

namespace calico::datastore {
namespace {

constexpr const char* kVariables[] = {"DATASTORE_TYPE", "ETCD_ENDPOINTS",       "ETCD_CA_CERT_FILE",
                                      "ETCD_CERT_FILE", "ETCD_KEY_FILE",        "ETCD_USERNAME",
                                      "ETCD_PASSWORD",  "CALICO_DATASTORE_PATH"};

// Clears the datastore variables for one test and puts the originals back afterwards, so the
// tests neither see the developer's environment nor leak into the next test.
class ScopedEnvironment {
 public:
  ScopedEnvironment() {
    for (const char* name : kVariables) {
      const char* value = std::getenv(name);
      saved_.emplace_back(name, value ? std::optional<std::string>(value) : std::nullopt);
      unsetenv(name);
    }
  }
  ~ScopedEnvironment() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }
  void Set(const char* name, const char* value) { setenv(name, value, 1); }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::string Msg(const absl::Status& s) { return ToStd(s.message()); }

TEST_CASE("ConfigFromEnvironment defaults to the embedded store", "[unit][datastore][config]") {
  ScopedEnvironment env;
  absl::StatusOr<Config> config = ConfigFromEnvironment();
  REQUIRE(config.ok());
  REQUIRE(config->type == BackendType::kEmbedded);
  REQUIRE(config->sqlite_path == "/var/lib/calico/calico.db");
  env.Set("CALICO_DATASTORE_PATH", "/tmp/x/calico.db");
  REQUIRE(ConfigFromEnvironment()->sqlite_path == "/tmp/x/calico.db");
}

TEST_CASE("ConfigFromEnvironment picks etcd when endpoints are set", "[unit][datastore][config]") {
  ScopedEnvironment env;
  env.Set("ETCD_ENDPOINTS", " http://10.0.0.1:2379, https://10.0.0.2:2379,,");
  env.Set("ETCD_CA_CERT_FILE", "/ca.pem");
  env.Set("ETCD_CERT_FILE", "/cert.pem");
  env.Set("ETCD_KEY_FILE", "/key.pem");
  env.Set("ETCD_USERNAME", "calico");
  env.Set("ETCD_PASSWORD", "secret");
  absl::StatusOr<Config> config = ConfigFromEnvironment();
  REQUIRE(config.ok());
  REQUIRE(config->type == BackendType::kEtcdV3);
  REQUIRE(config->etcd_endpoints ==
          std::vector<std::string>{"http://10.0.0.1:2379", "https://10.0.0.2:2379"});
  REQUIRE(config->etcd_ca_cert_file == "/ca.pem");
  REQUIRE(config->etcd_cert_file == "/cert.pem");
  REQUIRE(config->etcd_key_file == "/key.pem");
  REQUIRE(config->etcd_username == "calico");
  REQUIRE(config->etcd_password == "secret");

  // An explicit type wins over the endpoints' presence.
  env.Set("DATASTORE_TYPE", "embedded");
  REQUIRE(ConfigFromEnvironment()->type == BackendType::kEmbedded);
}

TEST_CASE("ConfigFromEnvironment rejects bad settings", "[unit][datastore][config]") {
  ScopedEnvironment env;
  env.Set("DATASTORE_TYPE", "kubernetes");
  absl::StatusOr<Config> config = ConfigFromEnvironment();
  REQUIRE(config.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(Msg(config.status()).find("DATASTORE_TYPE") != std::string::npos);
  REQUIRE(Msg(config.status()).find("kubernetes") != std::string::npos);

  env.Set("DATASTORE_TYPE", "etcdv3");
  config = ConfigFromEnvironment();
  REQUIRE(config.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(Msg(config.status()).find("endpoint") != std::string::npos);

  env.Set("ETCD_ENDPOINTS", "10.0.0.1:2379");
  REQUIRE(Msg(ConfigFromEnvironment().status()).find("10.0.0.1:2379") != std::string::npos);

  env.Set("ETCD_ENDPOINTS", "http://10.0.0.1:2379");
  env.Set("ETCD_CERT_FILE", "/cert.pem");
  REQUIRE(ConfigFromEnvironment().status().code() == absl::StatusCode::kInvalidArgument);
}

class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) : path_(dir_.path() + "/calicoctl.cfg") {
    std::ofstream(path_) << text;
  }
  const std::string& path() const { return path_; }

 private:
  testing::TempDir dir_;
  std::string path_;
};

TEST_CASE("ConfigFromFile reads a calicoctl etcd config", "[unit][datastore][config]") {
  ScopedEnvironment env;  // the file alone decides
  env.Set("DATASTORE_TYPE", "embedded");
  ConfigFile file(R"(apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata:
spec:
  datastoreType: "etcdv3"
  etcdEndpoints: "http://etcd1:2379,http://etcd2:2379"
  etcdCACertFile: /etc/calico/ca.pem
  etcdCertFile: /etc/calico/cert.pem
  etcdKeyFile: /etc/calico/key.pem
  etcdUsername: user
  etcdPassword: pass
)");
  absl::StatusOr<Config> config = ConfigFromFile(file.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  REQUIRE(config->type == BackendType::kEtcdV3);
  REQUIRE(config->etcd_endpoints ==
          std::vector<std::string>{"http://etcd1:2379", "http://etcd2:2379"});
  REQUIRE(config->etcd_ca_cert_file == "/etc/calico/ca.pem");
  REQUIRE(config->etcd_cert_file == "/etc/calico/cert.pem");
  REQUIRE(config->etcd_key_file == "/etc/calico/key.pem");
  REQUIRE(config->etcd_username == "user");
  REQUIRE(config->etcd_password == "pass");
}

TEST_CASE("ConfigFromFile reads an embedded config", "[unit][datastore][config]") {
  ConfigFile file(R"(apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
spec:
  datastoreType: embedded
  datastorePath: /srv/calico/calico.db
)");
  absl::StatusOr<Config> config = ConfigFromFile(file.path());
  REQUIRE(config.ok());
  REQUIRE(config->type == BackendType::kEmbedded);
  REQUIRE(config->sqlite_path == "/srv/calico/calico.db");
}

// Each bad file names the file and the offending field.
TEST_CASE("ConfigFromFile errors name the file and the field", "[unit][datastore][config]") {
  struct Bad {
    const char* text;
    const char* field;
  };
  const Bad cases[] = {
      {"apiVersion: v1\nkind: CalicoAPIConfig\nspec: {}\n", "apiVersion"},
      {"apiVersion: projectcalico.org/v3\nkind: Node\nspec: {}\n", "kind"},
      {"apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n", "spec"},
      {"apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: k8s\n",
       "spec.datastoreType"},
      {"apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoint: x\n",
       "spec.etcdEndpoint"},
      {"apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoints: [a]\n",
       "spec.etcdEndpoints"},
      {"apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: "
       "etcdv3\n",
       "endpoint"},
      {"apiVersion: [unclosed\n", "YAML"},
      {"- just\n- a list\n", "mapping"},
  };
  for (const Bad& bad : cases) {
    ConfigFile file(bad.text);
    absl::StatusOr<Config> config = ConfigFromFile(file.path());
    INFO(bad.text << "→ " << config.status().ToString());
    REQUIRE(config.status().code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(Msg(config.status()).find(file.path()) != std::string::npos);
    REQUIRE(Msg(config.status()).find(bad.field) != std::string::npos);
  }
  absl::StatusOr<Config> missing = ConfigFromFile("/nonexistent/calicoctl.cfg");
  REQUIRE(missing.status().code() == absl::StatusCode::kNotFound);
  REQUIRE(Msg(missing.status()).find("/nonexistent/calicoctl.cfg") != std::string::npos);
}

}  // namespace
}  // namespace calico::datastore
