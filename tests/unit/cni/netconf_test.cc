// Config and invocation parsing: upstream Calico's configs parse unchanged, and each bad input
// gets the spec's error code with a message naming the field or variable.

#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "cni-plugin/cni_error.h"
#include "cni-plugin/netconf.h"
#include "common/base/status_macros.h"

namespace calico::cni {
namespace {

std::string Message(const absl::Status& s) { return ToStd(s.message()); }

// The calico entry of upstream's manifests/calico.yaml conflist as the runtime hands it to the
// plugin (name and cniVersion copied in from the list, placeholders substituted by the installer).
constexpr char kUpstreamK8s[] = R"({
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "type": "calico",
  "log_level": "info",
  "log_file_path": "/var/log/calico/cni/cni.log",
  "datastore_type": "kubernetes",
  "nodename": "node1",
  "mtu": 1440,
  "ipam": {
      "type": "calico-ipam"
  },
  "policy": {
      "type": "k8s"
  },
  "kubernetes": {
      "kubeconfig": "/etc/cni/net.d/calico-kubeconfig"
  }
})";

// Upstream's etcd-mode example (calico-etcd.yaml / docs), with the string-typed IPAM booleans.
constexpr char kUpstreamEtcd[] = R"({
  "name": "calico-k8s-network",
  "cniVersion": "0.3.1",
  "type": "calico",
  "etcd_endpoints": "http://127.0.0.1:2379",
  "etcd_key_file": "",
  "etcd_cert_file": "",
  "etcd_ca_cert_file": "",
  "log_level": "debug",
  "mtu": 1500,
  "ipam": {
    "type": "calico-ipam",
    "assign_ipv4": "true",
    "assign_ipv6": "true",
    "ipv4_pools": ["10.0.0.0/24", "default-ipv4-ippool"],
    "ipv6_pools": ["2001:db8::/120"]
  },
  "container_settings": {"allow_ip_forwarding": true},
  "policy": {"type": "k8s"},
  "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}
})";

// Upstream's host-local mode (calico with host-local IPAM and usePodCidr).
constexpr char kUpstreamHostLocal[] = R"({
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "type": "calico",
  "log_level": "info",
  "datastore_type": "kubernetes",
  "nodename_file_optional": true,
  "ipam": {"type": "host-local", "subnet": "usePodCidr"},
  "policy": {"type": "k8s"},
  "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}
})";

TEST_CASE("upstream kubernetes-datastore config parses unchanged", "[cni][netconf]") {
  absl::StatusOr<NetConf> conf = ParseNetConf(kUpstreamK8s);
  REQUIRE(conf.ok());
  CHECK(conf->cni_version == "0.3.1");
  CHECK(conf->name == "k8s-pod-network");
  CHECK(conf->type == "calico");
  CHECK(conf->log_level == "info");
  CHECK(conf->log_file_path == "/var/log/calico/cni/cni.log");
  CHECK(conf->datastore_type == "kubernetes");
  CHECK(conf->nodename == "node1");
  CHECK(conf->mtu == 1440);
  CHECK(conf->ipam.type == "calico-ipam");
  CHECK(conf->ipam.assign_ipv4);
  CHECK_FALSE(conf->ipam.assign_ipv6);
  CHECK(conf->policy.type == "k8s");
  CHECK(conf->kubernetes.kubeconfig == "/etc/cni/net.d/calico-kubeconfig");
  CHECK(conf->ipamd_socket == "/var/run/calico/ipam.sock");
  CHECK(conf->felixd_socket == "/var/run/calico/dataplane.sock");
  CHECK(conf->nodename_file == "/var/lib/calico/nodename");
  CHECK_FALSE(conf->prev_result.has_value());
  CHECK(conf->runtime_config_json == "{}");
}

TEST_CASE("upstream etcd config parses unchanged", "[cni][netconf]") {
  absl::StatusOr<NetConf> conf = ParseNetConf(kUpstreamEtcd);
  REQUIRE(conf.ok());
  CHECK(conf->etcd_endpoints == "http://127.0.0.1:2379");
  CHECK(conf->ipam.assign_ipv4);
  CHECK(conf->ipam.assign_ipv6);
  CHECK(conf->ipam.ipv4_pools == std::vector<std::string>{"10.0.0.0/24", "default-ipv4-ippool"});
  CHECK(conf->ipam.ipv6_pools == std::vector<std::string>{"2001:db8::/120"});
  CHECK(conf->container_settings.allow_ip_forwarding);
  CHECK(conf->log_level == "debug");
}

TEST_CASE("upstream host-local config parses unchanged and keeps the ipam object", "[cni][netconf]") {
  absl::StatusOr<NetConf> conf = ParseNetConf(kUpstreamHostLocal);
  REQUIRE(conf.ok());
  CHECK(conf->ipam.type == "host-local");
  CHECK(conf->ipam.subnet == "usePodCidr");
  CHECK(conf->nodename_file_optional);
  CHECK(conf->ipam.raw_json == R"({"subnet":"usePodCidr","type":"host-local"})");
}

TEST_CASE("every supported version parses and our own socket fields override", "[cni][netconf]") {
  for (const std::string& v : SupportedVersions()) {
    std::string text = R"({"cniVersion":")" + v +
                       R"(","name":"n","type":"calico","ipamd_socket":"/run/a.sock","felixd_socket":"/run/b.sock"})";
    absl::StatusOr<NetConf> conf = ParseNetConf(text);
    REQUIRE(conf.ok());
    CHECK(conf->cni_version == v);
    CHECK(conf->ipamd_socket == "/run/a.sock");
    CHECK(conf->felixd_socket == "/run/b.sock");
  }
}

TEST_CASE("args.cni.labels become workload labels and runtimeConfig kept", "[cni][netconf]") {
  absl::StatusOr<NetConf> conf = ParseNetConf(R"({
    "cniVersion": "1.0.0", "name": "net", "type": "calico",
    "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
    "args": {"cni": {"labels": [{"key": "app", "value": "web"}, {"key": "tier", "value": "front"}]}}
  })");
  REQUIRE(conf.ok());
  CHECK(conf->labels == std::map<std::string, std::string>{{"app", "web"}, {"tier", "front"}});
  CHECK(conf->runtime_config_json ==
        R"({"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]})");

  absl::StatusOr<NetConf> bad = ParseNetConf(
      R"({"cniVersion":"1.0.0","name":"n","type":"calico","args":{"cni":{"labels":[{"value":"x"}]}}})");
  REQUIRE_FALSE(bad.ok());
  CHECK(CniCodeOf(bad.status()) == ErrorCode::kInvalidNetworkConfig);
  CHECK_THAT(Message(bad.status()), Catch::Contains("args.cni.labels[0]"));
}

TEST_CASE("prevResult of the config's version is parsed", "[cni][netconf]") {
  absl::StatusOr<NetConf> conf = ParseNetConf(R"({
    "cniVersion": "0.4.0", "name": "net", "type": "calico",
    "prevResult": {
      "cniVersion": "0.4.0",
      "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
      "ips": [{"version": "4", "interface": 0, "address": "10.1.2.3/32"}],
      "dns": {}
    }
  })");
  REQUIRE(conf.ok());
  REQUIRE(conf->prev_result.has_value());
  REQUIRE(conf->prev_result->ips.size() == 1);
  CHECK(net::FormatCidr(conf->prev_result->ips[0].address) == "10.1.2.3/32");

  absl::StatusOr<NetConf> bad = ParseNetConf(R"({
    "cniVersion": "1.0.0", "name": "net", "type": "calico",
    "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.300/32"}]}})");
  REQUIRE_FALSE(bad.ok());
  CHECK(CniCodeOf(bad.status()) == ErrorCode::kInvalidNetworkConfig);
  CHECK_THAT(Message(bad.status()), Catch::Contains("prevResult") && Catch::Contains("ips[0].address"));

  // A prevResult of a version we do not speak keeps its own code through the context.
  bad = ParseNetConf(R"({
    "cniVersion": "1.0.0", "name": "net", "type": "calico", "prevResult": {"cniVersion": "0.2.0"}})");
  REQUIRE_FALSE(bad.ok());
  CHECK(CniCodeOf(bad.status()) == ErrorCode::kIncompatibleVersion);
  CHECK_THAT(Message(bad.status()), Catch::Contains("prevResult"));
}

TEST_CASE("GC valid attachments are read", "[cni][netconf]") {
  absl::StatusOr<NetConf> conf = ParseNetConf(R"({
    "cniVersion": "1.1.0", "name": "net", "type": "calico",
    "cni.dev/valid-attachments": [{"containerID": "abc", "ifname": "eth0"}]})");
  REQUIRE(conf.ok());
  CHECK(conf->valid_attachments == std::vector<Attachment>{{"abc", "eth0"}});
}

struct BadConfig {
  const char* what;
  const char* json;
  ErrorCode code;
  const char* field;
};

TEST_CASE("bad configs get the spec's code and name the field", "[cni][netconf]") {
  const BadConfig cases[] = {
      {"malformed JSON", R"({"cniVersion": "1.0.0", "name": )", ErrorCode::kDecodeFailure, "malformed JSON"},
      {"not an object", R"([1,2])", ErrorCode::kDecodeFailure, "network config"},
      {"unknown cniVersion", R"({"cniVersion":"9.9.9","name":"n","type":"calico"})",
       ErrorCode::kIncompatibleVersion, "cniVersion"},
      {"0.2.0 is not supported", R"({"cniVersion":"0.2.0","name":"n","type":"calico"})",
       ErrorCode::kIncompatibleVersion, "0.2.0"},
      {"missing cniVersion", R"({"name":"n","type":"calico"})", ErrorCode::kIncompatibleVersion, "cniVersion"},
      {"assign_ipv4 maybe",
       R"({"cniVersion":"0.3.1","name":"n","type":"calico","ipam":{"type":"calico-ipam","assign_ipv4":"maybe"}})",
       ErrorCode::kInvalidNetworkConfig, "ipam.assign_ipv4"},
      {"assign_ipv6 number",
       R"({"cniVersion":"0.3.1","name":"n","type":"calico","ipam":{"type":"calico-ipam","assign_ipv6":1}})",
       ErrorCode::kInvalidNetworkConfig, "ipam.assign_ipv6"},
      {"ipam without type", R"({"cniVersion":"0.3.1","name":"n","type":"calico","ipam":{}})",
       ErrorCode::kInvalidNetworkConfig, "ipam.type"},
      {"ipv4_pools not a list",
       R"({"cniVersion":"0.3.1","name":"n","type":"calico","ipam":{"type":"calico-ipam","ipv4_pools":"10.0.0.0/8"}})",
       ErrorCode::kInvalidNetworkConfig, "ipam.ipv4_pools"},
      {"bad subnet",
       R"({"cniVersion":"0.3.1","name":"n","type":"calico","ipam":{"type":"host-local","subnet":"pods"}})",
       ErrorCode::kInvalidNetworkConfig, "ipam.subnet"},
      {"missing name", R"({"cniVersion":"1.0.0","type":"calico"})", ErrorCode::kInvalidNetworkConfig, "name"},
      {"bad name", R"({"cniVersion":"1.0.0","name":"-x y","type":"calico"})", ErrorCode::kInvalidNetworkConfig,
       "name"},
      {"missing type", R"({"cniVersion":"1.0.0","name":"n"})", ErrorCode::kInvalidNetworkConfig, "type"},
      {"mtu string", R"({"cniVersion":"1.0.0","name":"n","type":"calico","mtu":"1500"})",
       ErrorCode::kInvalidNetworkConfig, "mtu"},
      {"mtu too small", R"({"cniVersion":"1.0.0","name":"n","type":"calico","mtu":10})",
       ErrorCode::kInvalidNetworkConfig, "mtu"},
      {"log level", R"({"cniVersion":"1.0.0","name":"n","type":"calico","log_level":"loud"})",
       ErrorCode::kInvalidNetworkConfig, "log_level"},
      {"nodename_file_optional string",
       R"({"cniVersion":"1.0.0","name":"n","type":"calico","nodename_file_optional":"yes"})",
       ErrorCode::kInvalidNetworkConfig, "nodename_file_optional"},
      {"policy not an object", R"({"cniVersion":"1.0.0","name":"n","type":"calico","policy":"k8s"})",
       ErrorCode::kInvalidNetworkConfig, "policy"},
      {"kubeconfig number",
       R"({"cniVersion":"1.0.0","name":"n","type":"calico","kubernetes":{"kubeconfig":3}})",
       ErrorCode::kInvalidNetworkConfig, "kubernetes.kubeconfig"},
  };
  for (const BadConfig& c : cases) {
    INFO(c.what);
    absl::StatusOr<NetConf> conf = ParseNetConf(c.json);
    REQUIRE_FALSE(conf.ok());
    CHECK(CniCodeOf(conf.status()) == c.code);
    CHECK_THAT(Message(conf.status()), Catch::Contains(c.field));
  }
}

TEST_CASE("assign_ipv4 false and JSON booleans", "[cni][netconf]") {
  absl::StatusOr<NetConf> conf = ParseNetConf(
      R"({"cniVersion":"0.3.1","name":"n","type":"calico","ipam":{"type":"calico-ipam","assign_ipv4":"false","assign_ipv6":true}})");
  REQUIRE(conf.ok());
  CHECK_FALSE(conf->ipam.assign_ipv4);
  CHECK(conf->ipam.assign_ipv6);
}

TEST_CASE("commands are gated by the config's version", "[cni][netconf]") {
  CHECK(CheckCommandVersion(Command::kAdd, "0.3.0").ok());
  CHECK(CheckCommandVersion(Command::kCheck, "0.4.0").ok());
  CHECK(CniCodeOf(CheckCommandVersion(Command::kCheck, "0.3.1")) == ErrorCode::kIncompatibleVersion);
  CHECK(CheckCommandVersion(Command::kGc, "1.1.0").ok());
  CHECK(CniCodeOf(CheckCommandVersion(Command::kStatus, "1.0.0")) == ErrorCode::kIncompatibleVersion);
  CHECK_THAT(Message(CheckCommandVersion(Command::kGc, "1.0.0")), Catch::Contains("GC"));
}

std::map<std::string, std::string> AddEnv() {
  return {{"CNI_COMMAND", "ADD"},
          {"CNI_CONTAINERID", "3f2a9c"},
          {"CNI_NETNS", "/var/run/netns/cni-1"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_PATH", "/opt/cni/bin:/usr/lib/cni"},
          {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
                       "K8S_POD_INFRA_CONTAINER_ID=3f2a9c;K8S_POD_UID=1234"}};
}

TEST_CASE("a kubelet-style ADD environment is read", "[cni][netconf]") {
  absl::StatusOr<Invocation> inv = ParseInvocation(AddEnv());
  REQUIRE(inv.ok());
  CHECK(inv->command == Command::kAdd);
  CHECK(inv->container_id == "3f2a9c");
  CHECK(inv->netns == "/var/run/netns/cni-1");
  CHECK(inv->ifname == "eth0");
  CHECK(inv->cni_path == std::vector<std::string>{"/opt/cni/bin", "/usr/lib/cni"});
  CHECK(inv->args.k8s_pod_namespace == "default");
  CHECK(inv->args.k8s_pod_name == "web-0");
  CHECK(inv->args.k8s_pod_infra_container_id == "3f2a9c");
  CHECK(inv->args.ignore_unknown);
}

TEST_CASE("bad environments are code 4 and name the variable", "[cni][netconf]") {
  struct Case {
    const char* what;
    const char* var;
    const char* value;  // nullptr: unset
    const char* expect;
  };
  const Case cases[] = {
      {"missing CNI_NETNS on ADD", "CNI_NETNS", nullptr, "CNI_NETNS"},
      {"missing CNI_COMMAND", "CNI_COMMAND", nullptr, "CNI_COMMAND"},
      {"unknown command", "CNI_COMMAND", "ATTACH", "CNI_COMMAND"},
      {"missing container id", "CNI_CONTAINERID", nullptr, "CNI_CONTAINERID"},
      {"bad container id", "CNI_CONTAINERID", "-abc", "CNI_CONTAINERID"},
      {"ifname too long", "CNI_IFNAME", "eth0123456789012", "CNI_IFNAME"},
      {"ifname with slash", "CNI_IFNAME", "eth/0", "CNI_IFNAME"},
      {"ifname dot-dot", "CNI_IFNAME", "..", "CNI_IFNAME"},
      {"unknown CNI_ARGS key", "CNI_ARGS", "K8S_POD_NAME=a;FOO=bar", "FOO"},
      {"CNI_ARGS pair without =", "CNI_ARGS", "K8S_POD_NAME", "CNI_ARGS"},
      {"IgnoreUnknown not a bool", "CNI_ARGS", "IgnoreUnknown=maybe;FOO=1", "IgnoreUnknown"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    auto env = AddEnv();
    if (c.value == nullptr) {
      env.erase(c.var);
    } else {
      env[c.var] = c.value;
    }
    absl::StatusOr<Invocation> inv = ParseInvocation(env);
    REQUIRE_FALSE(inv.ok());
    CHECK(CniCodeOf(inv.status()) == ErrorCode::kInvalidEnvironment);
    CHECK_THAT(Message(inv.status()), Catch::Contains(c.expect));
  }
}

TEST_CASE("interface names: 15 characters are fine", "[cni][netconf]") {
  CHECK(ValidateIfName("eth012345678901", "CNI_IFNAME").ok());
  CHECK_FALSE(ValidateIfName("", "CNI_IFNAME").ok());
  CHECK_FALSE(ValidateIfName(".", "CNI_IFNAME").ok());
  CHECK_FALSE(ValidateIfName("a b", "CNI_IFNAME").ok());
}

TEST_CASE("DEL needs no netns and VERSION needs nothing and GC needs CNI_PATH", "[cni][netconf]") {
  auto del = AddEnv();
  del["CNI_COMMAND"] = "DEL";
  del.erase("CNI_NETNS");
  REQUIRE(ParseInvocation(del).ok());

  absl::StatusOr<Invocation> version = ParseInvocation({{"CNI_COMMAND", "VERSION"}});
  REQUIRE(version.ok());
  CHECK(version->command == Command::kVersion);

  absl::StatusOr<Invocation> gc = ParseInvocation({{"CNI_COMMAND", "GC"}});
  REQUIRE_FALSE(gc.ok());
  CHECK(CniCodeOf(gc.status()) == ErrorCode::kInvalidEnvironment);
  CHECK_THAT(Message(gc.status()), Catch::Contains("CNI_PATH"));
  CHECK(ParseInvocation({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/opt/cni/bin"}}).ok());
  CHECK(ParseInvocation({{"CNI_COMMAND", "STATUS"}}).ok());
}

TEST_CASE("CNI_ARGS: IgnoreUnknown may come anywhere any case", "[cni][netconf]") {
  CHECK(ParseCniArgs("FOO=1;IgnoreUnknown=true").ok());
  CHECK(ParseCniArgs("FOO=1;IgnoreUnknown=TRUE").ok());
  CHECK_FALSE(ParseCniArgs("FOO=1;IgnoreUnknown=0").ok());
  CHECK(ParseCniArgs("").ok());
  absl::StatusOr<CniArgs> args = ParseCniArgs("K8S_POD_NAME=a=b");
  REQUIRE(args.ok());
  CHECK(args->k8s_pod_name == "a=b");
}

TEST_CASE("node name: config else nodename file else hostname", "[cni][netconf]") {
  NetConf conf;
  CHECK(*ResolveNodename(conf, std::string("node-file\n"), "host") == "node-file");
  CHECK(*ResolveNodename(conf, std::nullopt, "host") == "host");
  CHECK(*ResolveNodename(conf, std::string("  \n"), "host") == "host");
  conf.nodename = "node-conf";
  CHECK(*ResolveNodename(conf, std::string("node-file"), "host") == "node-conf");
  NetConf empty;
  CHECK_FALSE(ResolveNodename(empty, std::nullopt, "").ok());
}

}  // namespace
}  // namespace calico::cni
