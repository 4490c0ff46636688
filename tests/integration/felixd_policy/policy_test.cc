// Network policy end to end on one node: the cni harness's node (real ipamd + felixd over an
// embedded datastore), pods made by the real CNI plugin in two Kubernetes namespaces, policy
// written with `calicoctl apply`, and real TCP, UDP and ICMP (IPv4 and IPv6) between the pod
// namespaces sent by policy_probe. Every scenario checks a small matrix of probes against what
// the policy says AND that `calicoctl policy explain` (felixd's model) agrees with the traffic
// seen for every probe. Traffic stays inside namespaces this test made.
#include <unistd.h>

#include <cstdio>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/integration/cni/node_harness.h"

namespace calico::cni::testing {
namespace {

using Labels = std::map<std::string, std::string>;

struct PodInfo {
  std::string name, ns, v4, v6, host_ifname;
  std::string wep() const { return "node1-k8s-" + name + "-eth0"; }  // names without '-'
};

// One probe of a matrix: from a pod to a pod (or a raw address), expected ok or not.
struct Probe {
  std::string src;     // pod name
  std::string proto;   // tcp | udp | icmp
  std::string dst;     // pod name, or an address when dst_ip is set
  int port = 0;
  bool v6 = false;
  bool expect_ok = true;
  std::string dst_ip;  // a non-pod destination
  std::string source;  // bind the probe to this source address (anti-spoofing)
  bool explain = true; // ask `calicoctl policy explain` too
};

class Cluster {
 public:
  explicit Cluster(Node::Options options = {}) : node_(std::move(options)) {}
  ~Cluster() { servers_.clear(); }  // before the node's namespaces go

  Node& node() { return node_; }

  void Start() {
    absl::Status st = node_.Start();
    INFO(st.ToString());
    REQUIRE(st.ok());
  }

  // A pod by the real CNI plugin, labels as a runtime passes them (args.cni.labels), with the
  // echo server running in its namespace.
  const PodInfo& AddPod(const std::string& name, const std::string& ns, const Labels& labels) {
    node_.AddPodNetns(name);
    nlohmann::json conf = nlohmann::json::parse(node_.Conf());
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [k, v] : labels) list.push_back({{"key", k}, {"value", v}});
    conf["args"] = {{"cni", {{"labels", list}}}};
    PodSpec spec = Pod(name);
    spec.ns = ns;
    CniRun add = node_.Cni("ADD", spec, conf.dump());
    INFO(add.out << add.err);
    REQUIRE(add.exit_code == 0);
    std::vector<std::string> ips = ResultIps(add.out);
    REQUIRE(ips.size() == 2);
    PodInfo p{name, ns, ips[0], ips[1],
              nlohmann::json::parse(add.out)["interfaces"][0]["name"].get<std::string>()};
    pods_[name] = p;
    Serve(name, node_.PodNetns(name).path());
    return pods_[name];
  }

  // The echo server (tcp 80, tcp 5432, udp 53; v4 and v6) in a namespace, killed by pid.
  void Serve(const std::string& tag, const std::string& netns_path) {
    auto p = std::make_unique<Process>(
        std::vector<std::string>{POLICY_PROBE_BINARY, "serve", "tcp:80", "tcp:5432", "udp:53"},
        std::map<std::string, std::string>{}, node_.dir() + "/serve-" + tag + ".log", netns_path);
    p->Spawn();
    servers_.push_back(std::move(p));
  }

  const PodInfo& pod(const std::string& name) { return pods_.at(name); }

  // calicoctl apply/delete -f of a YAML document.
  void Apply(const std::string& yaml) { Ctl("apply", yaml); }
  void Delete(const std::string& yaml) { Ctl("delete", yaml); }

  CniRun Calicoctl(const std::vector<std::string>& args) { return node_.Calicoctl(args); }

  std::string Target(const Probe& p) {
    std::string ip = p.dst_ip.empty() ? (p.v6 ? pod(p.dst).v6 : pod(p.dst).v4) : p.dst_ip;
    if (p.proto == "icmp") return "icmp:" + ip;
    return absl::StrCat(p.proto, ":", p.v6 ? "[" + ip + "]" : ip, ":", p.port);
  }

  // Runs one row (probes of one source) in one exec; target → result word.
  std::map<std::string, std::string> RunRow(const std::string& src, const std::string& source,
                                            const std::vector<std::string>& targets) {
    std::string cmd = absl::StrCat(POLICY_PROBE_BINARY, " probe --timeout-ms=500");
    if (!source.empty()) absl::StrAppend(&cmd, " --source=", source);
    for (const std::string& t : targets) absl::StrAppend(&cmd, " ", t);
    ::calico::testing::ExecResult r = node_.PodNetns(src).Exec(cmd);
    std::map<std::string, std::string> out;
    for (const std::string& line : std::vector<std::string>(absl::StrSplit(r.output, '\n', absl::SkipEmpty()))) {
      size_t sp = line.find(' ');
      if (sp != std::string::npos) out[line.substr(0, sp)] = line.substr(sp + 1);
    }
    for (const std::string& t : targets) {
      if (!out.count(t)) out[t] = "error (no output) " + r.output;
    }
    return out;
  }

  // {allowed, output} from `calicoctl policy explain` (exit 0 allowed, 3 denied).
  std::pair<int, std::string> Explain(const Probe& p) {
    std::string src_ip = !p.source.empty() ? p.source : (p.v6 ? pod(p.src).v6 : pod(p.src).v4);
    std::string dst_ip = p.dst_ip.empty() ? (p.v6 ? pod(p.dst).v6 : pod(p.dst).v4) : p.dst_ip;
    std::string proto = p.proto == "icmp" ? (p.v6 ? "ICMPv6" : "ICMP") : p.proto == "tcp" ? "TCP" : "UDP";
    std::vector<std::string> args = {"policy", "explain", "--source=" + src_ip,
                                     "--destination=" + dst_ip, "--protocol=" + proto,
                                     "--felixd-socket=" + node_.dir() + "/dataplane.sock"};
    if (p.proto != "icmp") args.push_back(absl::StrCat("--port=", p.port));
    CniRun r = node_.Calicoctl(args);
    return {r.exit_code, r.out};
  }

  std::string Describe(const Probe& p) {
    return absl::StrCat(p.src, p.source.empty() ? "" : " (from " + p.source + ")", " -> ",
                        p.dst_ip.empty() ? p.dst : p.dst_ip, " ", Target(p));
  }

  // Applies nothing: waits (≤ 5 s per row) until every probe of `probes` shows what it expects,
  // then checks each probe and its explanation.
  void CheckMatrix(const std::string& scenario, const std::vector<Probe>& probes) {
    INFO("scenario: " << scenario);
    // The table is programmed in milliseconds; this keeps a row that already matches the old
    // state from being read before the change was applied at all.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::vector<std::pair<std::string, std::string>> rows;  // (src, source) in order
    for (const Probe& p : probes) {
      auto key = std::make_pair(p.src, p.source);
      if (std::find(rows.begin(), rows.end(), key) == rows.end()) rows.push_back(key);
    }
    std::map<std::string, std::string> observed;  // Describe(probe) → result
    for (const auto& [src, source] : rows) {
      std::vector<const Probe*> row;
      std::vector<std::string> targets;
      for (const Probe& p : probes) {
        if (p.src == src && p.source == source) {
          row.push_back(&p);
          targets.push_back(Target(p));
        }
      }
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      std::map<std::string, std::string> got;
      while (true) {
        got = RunRow(src, source, targets);
        bool all = true;
        for (const Probe* p : row) {
          if ((got[Target(*p)] == "ok") != p->expect_ok || (got[Target(*p)] != "ok" && got[Target(*p)] != "blocked")) {
            all = false;
          }
        }
        if (all || std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      for (const Probe* p : row) observed[Describe(*p)] = got[Target(*p)];
    }
    bool dumped = false;
    for (const Probe& p : probes) {
      const std::string& seen = observed[Describe(p)];
      if ((seen == "ok") != p.expect_ok && !dumped) {
        dumped = true;  // evidence for a report: the table as programmed
        std::fprintf(stderr, "---- scenario \"%s\": nft list table inet calico ----\n%s\n",
                     scenario.c_str(), node_.Exec("nft list table inet calico").output.c_str());
      }
      INFO(Describe(p) << ": expected " << (p.expect_ok ? "ok" : "blocked") << ", traffic " << seen);
      int code = -1;
      std::string text = "(not asked)";
      if (p.explain) std::tie(code, text) = Explain(p);
      INFO("calicoctl policy explain (exit " << code << "):\n" << text);
      CHECK((seen == "ok" || seen == "blocked"));
      CHECK((seen == "ok") == p.expect_ok);
      if (p.explain) {
        CHECK((code == 0 || code == 3));
        CHECK((code == 0) == (seen == "ok"));  // the explainer agrees with the traffic
      }
    }
  }

 private:
  void Ctl(const std::string& verb, const std::string& yaml) {
    std::string path = absl::StrCat(node_.dir(), "/res-", counter_++, ".yaml");
    {
      std::ofstream f(path);
      f << yaml;
    }
    CniRun r = node_.Calicoctl({verb, "-f", path});
    INFO(verb << " " << yaml << "\n→ " << r.out);
    REQUIRE(r.exit_code == 0);
  }

  Node node_;
  std::map<std::string, PodInfo> pods_;
  std::vector<std::unique_ptr<Process>> servers_;
  int counter_ = 0;
};

// The probes from each of `srcs` to `dst`: tcp 80, tcp 5432, udp 53, icmp over IPv4; tcp 80
// and icmp over IPv6. `ok(src, proto, port, v6)` gives the expectation.
using Expect = std::function<bool(const std::string& src, const std::string& proto, int port, bool v6)>;

std::vector<Probe> To(const std::string& dst, const std::vector<std::string>& srcs, const Expect& ok) {
  std::vector<Probe> out;
  for (const std::string& s : srcs) {
    for (auto [proto, port, v6] : {std::tuple<const char*, int, bool>{"tcp", 80, false},
                                   {"tcp", 5432, false}, {"udp", 53, false}, {"icmp", 0, false},
                                   {"tcp", 80, true}, {"icmp", 0, true}}) {
      Probe p;
      p.src = s;
      p.proto = proto;
      p.dst = dst;
      p.port = port;
      p.v6 = v6;
      p.expect_ok = ok(s, proto, port, v6);
      out.push_back(p);
    }
  }
  return out;
}

std::vector<Probe> Concat(std::vector<Probe> a, const std::vector<Probe>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Expect Only(std::vector<std::string> allowed) {
  return [allowed](const std::string& s, const std::string&, int, bool) {
    return std::find(allowed.begin(), allowed.end(), s) != allowed.end();
  };
}
const Expect kAll = [](const std::string&, const std::string&, int, bool) { return true; };
const Expect kNone = [](const std::string&, const std::string&, int, bool) { return false; };

std::string NamespaceProfile(const std::string& ns, const Labels& labels) {
  std::string out = absl::StrCat(
      "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: kns.", ns,
      "\nspec:\n  ingress:\n  - action: Allow\n  egress:\n  - action: Allow\n  labelsToApply:\n"
      "    pcns.projectcalico.org/name: ",
      ns, "\n");
  for (const auto& [k, v] : labels) absl::StrAppend(&out, "    pcns.", k, ": ", v, "\n");
  return out;
}

// Five pods in two namespaces: prod (team=a) web, db, client; dev (team=b) ext (app=client)
// and tool. Every pod serves tcp 80/5432 and udp 53.
void MakePods(Cluster& c) {
  c.Start();
  c.Apply(NamespaceProfile("prod", {{"team", "a"}, {"env", "prod"}}));
  c.Apply(NamespaceProfile("dev", {{"team", "b"}, {"env", "dev"}}));
  c.AddPod("web", "prod", {{"app", "web"}, {"role", "frontend"}});
  c.AddPod("db", "prod", {{"app", "db"}, {"role", "backend"}});
  c.AddPod("client", "prod", {{"app", "client"}});
  c.AddPod("ext", "dev", {{"app", "client"}});
  c.AddPod("tool", "dev", {{"app", "tool"}});
}

const std::vector<std::string> kSrcs = {"client", "db", "ext", "tool"};

const char kDenyIngressProd[] = R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
  namespace: prod
spec:
  podSelector: {}
  policyTypes: [Ingress]
)";

TEST_CASE("Kubernetes NetworkPolicy: deny, pod/namespace selectors, ports, ipBlock, egress, "
          "updates, label changes, delete") {
  Cluster c;
  MakePods(c);

  c.CheckMatrix("no policy: everything allowed",
                Concat(To("web", kSrcs, kAll), To("tool", {"web", "client"}, kAll)));

  c.Apply(kDenyIngressProd);
  c.CheckMatrix("default deny ingress in prod",
                Concat(To("web", kSrcs, kNone), To("tool", {"web", "client"}, kAll)));

  const std::string allow_pod = R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - podSelector:
        matchLabels: {app: client}
)";
  c.Apply(allow_pod);
  // ext has app=client too, but a bare podSelector means the policy's own namespace.
  c.CheckMatrix("allow from podSelector app=client", To("web", kSrcs, Only({"client"})));

  // Updating the same policy: from namespaces with team=b.
  c.Apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {team: b}
)");
  c.CheckMatrix("policy updated: from namespaceSelector team=b", To("web", kSrcs, Only({"ext", "tool"})));

  c.Apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {team: b}
      podSelector:
        matchLabels: {app: client}
)");
  c.CheckMatrix("podSelector and namespaceSelector in one peer", To("web", kSrcs, Only({"ext"})));

  // A named port: the CNI path sets no ports, so the WorkloadEndpoint gets spec.ports by patch
  // (as the Kubernetes controller would write a pod's containerPorts).
  CniRun patch = c.Calicoctl({"patch", "workloadendpoint", c.pod("web").wep(), "-n", "prod", "-p",
                              R"({"spec":{"ports":[{"name":"http","protocol":"TCP","port":80}]}})"});
  INFO(patch.out);
  REQUIRE(patch.exit_code == 0);
  c.Apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - namespaceSelector: {}
    ports:
    - port: http
    - port: 53
      protocol: UDP
)");
  c.CheckMatrix("ports: named port http (tcp 80) and udp 53 from every namespace",
                To("web", kSrcs, [](const std::string&, const std::string& proto, int port, bool) {
                  return (proto == "tcp" && port == 80) || (proto == "udp" && port == 53);
                }));

  const std::string client_ip = c.pod("client").v4;
  c.Apply(absl::StrCat(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - ipBlock:
        cidr: 10.77.0.0/24
        except: [)", client_ip, R"(/32]
)"));
  // An IPv4 block: IPv6 traffic matches no peer.
  c.CheckMatrix("ipBlock 10.77.0.0/24 except the client",
                To("web", kSrcs, [](const std::string& s, const std::string&, int, bool v6) {
                  return !v6 && s != "client";
                }));

  // Changing a pod's labels: db becomes a client and is let in by the podSelector.
  c.Apply(allow_pod);
  CniRun label = c.Calicoctl({"label", "workloadendpoint", c.pod("db").wep(), "app=client",
                              "--overwrite", "--namespace=prod"});
  INFO(label.out);
  REQUIRE(label.exit_code == 0);
  c.CheckMatrix("db relabelled app=client", To("web", kSrcs, Only({"client", "db"})));
  label = c.Calicoctl({"label", "workloadendpoint", c.pod("db").wep(), "app=db", "--overwrite",
                       "--namespace=prod"});
  REQUIRE(label.exit_code == 0);
  c.CheckMatrix("db back to app=db", To("web", kSrcs, Only({"client"})));

  // Changing a namespace's labels (its kns profile): prod gets team=b.
  c.Apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {team: b}
)");
  c.CheckMatrix("before the namespace label change", To("web", kSrcs, Only({"ext", "tool"})));
  c.Apply(NamespaceProfile("prod", {{"team", "b"}, {"env", "prod"}}));
  c.CheckMatrix("prod relabelled team=b", To("web", kSrcs, kAll));
  c.Apply(NamespaceProfile("prod", {{"team", "a"}, {"env", "prod"}}));

  // Deleting the policies restores access.
  c.Delete(allow_pod);
  c.CheckMatrix("web-from deleted, deny-all left", To("web", kSrcs, kNone));
  c.Delete(kDenyIngressProd);
  c.CheckMatrix("every policy deleted", To("web", kSrcs, kAll));

  // Egress: deny all egress of app=client pods in prod, then allow them db:5432.
  const std::string deny_egress = R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: client-egress
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: client}
  policyTypes: [Egress]
)";
  c.Apply(deny_egress);
  c.CheckMatrix("default deny egress for prod clients",
                Concat(To("web", kSrcs, Only({"db", "ext", "tool"})), To("db", {"client"}, kNone)));
  c.Apply(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: client-egress
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: client}
  policyTypes: [Egress]
  egress:
  - to:
    - podSelector:
        matchLabels: {app: db}
    ports:
    - port: 5432
)");
  c.CheckMatrix("egress rule: prod clients to db:5432 only",
                Concat(To("web", {"client", "ext"}, Only({"ext"})),
                       To("db", {"client"}, [](const std::string&, const std::string& proto, int port, bool) {
                         return proto == "tcp" && port == 5432;
                       })));
  c.Delete(deny_egress);
  c.CheckMatrix("egress policy deleted", Concat(To("web", {"client"}, kAll), To("db", {"client"}, kAll)));
}

TEST_CASE("Calico policy: Deny before a later Allow by order, tiers with Pass, "
          "GlobalNetworkPolicy, notSelector and notNets") {
  Cluster c;
  MakePods(c);

  const std::string deny_then_allow = R"(apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: deny-client
  namespace: prod
spec:
  order: 100
  selector: app == 'web'
  ingress:
  - action: Deny
    source:
      selector: app == 'client'
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-all
  namespace: prod
spec:
  order: 200
  selector: app == 'web'
  ingress:
  - action: Allow
)";
  c.Apply(deny_then_allow);
  // The Deny's selector is confined to prod: ext (app=client in dev) is allowed by the later rule.
  c.CheckMatrix("Deny at order 100 overrides Allow at order 200", To("web", kSrcs, Only({"db", "ext", "tool"})));
  c.Delete(deny_then_allow);

  const std::string tiers = R"(apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: security
spec:
  order: 100
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: security.web-gate
  namespace: prod
spec:
  tier: security
  selector: app == 'web'
  ingress:
  - action: Pass
    source:
      selector: app == 'client'
  - action: Deny
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: web-http
  namespace: prod
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    destination:
      ports: [80]
)";
  c.Apply(tiers);
  c.CheckMatrix("tier security passes the client to the default tier, which allows tcp 80",
                To("web", kSrcs, [](const std::string& s, const std::string& proto, int port, bool) {
                  return s == "client" && proto == "tcp" && port == 80;
                }));
  c.Delete(tiers);
  c.CheckMatrix("tier and policies deleted", To("web", {"client", "ext"}, kAll));

  const std::string gnp = R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: web-from-clients
spec:
  selector: app == 'web'
  types: [Ingress]
  ingress:
  - action: Allow
    source:
      selector: app == 'client'
)";
  c.Apply(gnp);
  // A global policy's selector sees every namespace: ext (dev) as well as client (prod).
  c.CheckMatrix("GlobalNetworkPolicy: from app=client in any namespace",
                To("web", kSrcs, Only({"client", "ext"})));
  c.Delete(gnp);

  const std::string not_selector = R"(apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: not-client
  namespace: prod
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    source:
      notSelector: app == 'client'
)";
  c.Apply(not_selector);
  // Confined to the policy's namespace: only db (prod, not a client).
  c.CheckMatrix("notSelector app=client (namespaced)", To("web", kSrcs, Only({"db"})));
  c.Delete(not_selector);

  const std::string not_nets = absl::StrCat(R"(apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: not-client-net
  namespace: prod
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    ipVersion: 4
    source:
      notNets: [)", c.pod("client").v4, R"(/32]
  - action: Allow
    ipVersion: 6
    source:
      notNets: [)", c.pod("ext").v6, R"(/128]
)");
  c.Apply(not_nets);
  // A rule cannot mix families: one rule per family, each with its ipVersion (without it, see
  // the next test case).
  // notNets names no selector, so no namespace confinement: everyone but client (v4) and ext (v6).
  c.CheckMatrix("notNets client/32 and ext/128",
                To("web", kSrcs, [](const std::string& s, const std::string&, int, bool v6) {
                  return !(s == "client" && !v6) && !(s == "ext" && v6);
                }));
  c.Delete(not_nets);
  c.CheckMatrix("all Calico policy deleted", To("web", kSrcs, kAll));
}

TEST_CASE("anti-spoofing: a pod's traffic from an address it does not own is dropped") {
  Cluster c;
  c.Start();
  c.AddPod("web", "prod", {{"app", "web"}});
  const PodInfo& client = c.AddPod("client", "prod", {{"app", "client"}});
  // A second address on the client's eth0, and a route back to it on the node, so that only
  // felixd's source check can stop the round trip.
  const std::string spoof4 = "10.99.0.7", spoof6 = "fd99::7";
  auto& pns = c.node().PodNetns("client");
  REQUIRE(pns.Exec(absl::StrCat("ip addr add ", spoof4, "/32 dev eth0 && ip -6 addr add ", spoof6,
                                "/128 dev eth0 nodad"))
              .status == 0);
  REQUIRE(c.node().Exec(absl::StrCat("ip route add ", spoof4, "/32 dev ", client.host_ifname,
                                     " && ip -6 route add ", spoof6, "/128 dev ", client.host_ifname))
              .status == 0);
  std::vector<Probe> probes = To("web", {"client"}, kAll);
  for (Probe p : To("web", {"client"}, kNone)) {
    p.source = p.v6 ? spoof6 : spoof4;
    p.explain = false;  // the explainer models policy, not the source check
    probes.push_back(p);
  }
  c.CheckMatrix("real source passes, spoofed source dropped", probes);
}

// Upstream Felix renders a rule once per IP family and drops it for a family when one of its
// nets/notNets fields is non-empty but holds no CIDR of that family (felix/rules/policy.go,
// FilterRuleToIPVersion: "filteredAll ... return nil"). So `Allow source notNets [<v6>/128]`
// without ipVersion matches no IPv4 packet at all, and IPv4 traffic that no other rule allows
// is denied. (Mixing families in one rule is rejected by calicoctl, so one family per rule is
// how a dual-stack notNets is written.)
// Currently FAILS, a felixd bug left for its owners: felixd's model and compiler both match the
// other family (the compiled chain has `meta nfproto ipv4 ... allow` for this rule), so IPv4
// from every pod, the client included, is allowed; `policy explain` agrees with that traffic.
TEST_CASE("notNets holding only one family's CIDRs does not match the other family (upstream)") {
  Cluster c;
  c.Start();
  c.AddPod("web", "prod", {{"app", "web"}});
  c.AddPod("client", "prod", {{"app", "client"}});
  c.AddPod("db", "prod", {{"app", "db"}});
  c.Apply(absl::StrCat(R"(apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: not-client-v6
  namespace: prod
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    source:
      notNets: [)", c.pod("client").v6, R"(/128]
)"));
  // IPv6: everyone but the client. IPv4: the rule is not rendered for IPv4, nothing allows.
  c.CheckMatrix("notNets [client/128] without ipVersion",
                To("web", {"client", "db"}, [](const std::string& s, const std::string&, int, bool v6) {
                  return v6 && s != "client";
                }));
}

// With `node_ip` a non-pod destination in the node's namespace.
std::vector<Probe> ToHost(const std::string& src, const std::string& v4, const std::string& v6, bool ok) {
  std::vector<Probe> out;
  for (auto [proto, port, is6] : {std::tuple<const char*, int, bool>{"tcp", 80, false},
                                  {"udp", 53, false}, {"icmp", 0, false}, {"tcp", 80, true},
                                  {"icmp", 0, true}}) {
    Probe p;
    p.src = src;
    p.proto = proto;
    p.port = port;
    p.v6 = is6;
    p.dst_ip = is6 ? v6 : v4;
    p.expect_ok = ok;
    // DefaultEndpointToHostAction is not policy: the explainer does not model it (a packet to
    // a non-workload address is judged by the source's egress policy only).
    p.explain = ok;
    out.push_back(p);
  }
  return out;
}

TEST_CASE("DefaultEndpointToHostAction: Drop stops pod-to-host traffic while pod-to-pod works, "
          "Accept lets it in") {
  for (std::string action : {"Drop", "Accept"}) {
    INFO("endpoint_to_host_action=" << action);
    Node::Options o;
    o.endpoint_to_host_action = action;
    Cluster c(o);
    c.Start();
    c.AddPod("web", "prod", {{"app", "web"}});
    c.AddPod("client", "prod", {{"app", "client"}});
    c.Serve("node", c.node().ns().path());
    const bool accept = action == "Accept";
    c.CheckMatrix("endpoint to host " + action,
                  Concat(To("web", {"client"}, kAll),
                         ToHost("client", c.node().host_address(), c.node().host_address6(), accept)));
  }
}

}  // namespace
}  // namespace calico::cni::testing
