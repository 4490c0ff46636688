#pragma once
// A small cluster for policy tests: namespaces (kns profiles), pods (WorkloadEndpoints as felixd
// writes them), and policies applied from YAML through common/resources (so conversion runs on
// validated, defaulted objects exactly as the datastore would hold them).

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "common/base/status_macros.h"
#include "felixd/policy/convert.h"
#include "felixd/policy/explain.h"
#include "felixd/policy/index.h"

namespace calico::felixd::policy::testing {

struct PodPort {
  std::string name;
  std::string protocol;
  int port;
};

class World {
 public:
  // Applies every document of a YAML stream; each must validate and convert.
  void Apply(const std::string& yaml) {
    absl::StatusOr<std::vector<resources::ParsedDocument>> docs = resources::ParseDocuments(yaml);
    REQUIRE(docs.ok());
    for (const resources::ParsedDocument& d : *docs) {
      INFO(d.object.dump());
      REQUIRE(d.resource.status().message() == "");
      REQUIRE(d.resource.ok());
      absl::Status s = model.Apply(*d.resource);
      INFO(ToStd(s.message()));
      REQUIRE(s.ok());
    }
  }
  void Delete(const std::string& api_version, const std::string& kind, const std::string& ns,
              const std::string& name) {
    const resources::KindInfo* k = resources::FindKind(api_version, kind);
    REQUIRE(k);
    model.Remove(*k, ns, name);
  }

  void Namespace(const std::string& ns, const Labels& labels = {}) {
    REQUIRE(model.Apply(NamespaceProfile(ns, labels)).ok());
  }
  void ServiceAccount(const std::string& ns, const std::string& sa, const Labels& labels) {
    REQUIRE(model.Apply(ServiceAccountProfile(ns, sa, labels)).ok());
  }

  // A Kubernetes pod's WorkloadEndpoint, as felixd writes it (profiles kns.<ns>, ksa.<ns>.<sa>).
  void Pod(const std::string& ns, const std::string& name, const std::string& ip, const Labels& labels = {},
           const std::string& sa = "", const std::vector<PodPort>& ports = {}) {
    resources::Json l = resources::Json::object();
    for (const auto& [k, v] : labels) l[k] = v;
    l["projectcalico.org/namespace"] = ns;
    l["projectcalico.org/orchestrator"] = "k8s";
    if (!sa.empty()) l["projectcalico.org/serviceaccount"] = sa;
    resources::Json profiles = resources::Json::array({"kns." + ns});
    if (!sa.empty()) profiles.push_back("ksa." + ns + "." + sa);
    resources::Json p = resources::Json::array();
    for (const PodPort& pp : ports) p.push_back({{"name", pp.name}, {"protocol", pp.protocol}, {"port", pp.port}});
    resources::Json obj = {
        {"apiVersion", "projectcalico.org/v3"},
        {"kind", "WorkloadEndpoint"},
        {"metadata", {{"name", "node1-k8s-" + name + "-eth0"}, {"namespace", ns}, {"labels", l}}},
        {"spec",
         {{"orchestrator", "k8s"},
          {"node", "node1"},
          {"pod", name},
          {"endpoint", "eth0"},
          {"serviceAccountName", sa},
          {"ipNetworks", resources::Json::array({ip + "/32"})},
          {"profiles", profiles},
          {"interfaceName", "cali" + name},
          {"ports", p}}}};
    absl::StatusOr<resources::Resource> r = resources::FromObject(obj);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    REQUIRE(model.Apply(*r).ok());
  }
  void RemovePod(const std::string& ns, const std::string& name) {
    Delete("projectcalico.org/v3", "WorkloadEndpoint", ns, "node1-k8s-" + name + "-eth0");
  }

  static Packet TcpPacket(const std::string& src, const std::string& dst, int port) {
    return Make(src, dst, kProtoTcp, port);
  }
  static Packet Make(const std::string& src, const std::string& dst, int protocol, int port) {
    Packet p;
    p.src = *net::ParseIp(src);
    p.dst = *net::ParseIp(dst);
    p.protocol = protocol;
    p.src_port = 40000;
    p.dst_port = port;
    return p;
  }
  static Packet PingPacket(const std::string& src, const std::string& dst, int type = 8, int code = 0) {
    Packet p = Make(src, dst, kProtoIcmp, 0);
    p.src_port = 0;
    p.icmp_type = type;
    p.icmp_code = code;
    return p;
  }

  Verdict Probe(const Packet& p) const { return Explain(model, p); }
  bool Tcp(const std::string& src, const std::string& dst, int port = 80) const {
    return Probe(TcpPacket(src, dst, port)).allowed;
  }
  bool Udp(const std::string& src, const std::string& dst, int port) const {
    return Probe(Make(src, dst, kProtoUdp, port)).allowed;
  }
  bool Icmp(const std::string& src, const std::string& dst, int type = 8, int code = 0) const {
    return Probe(PingPacket(src, dst, type, code)).allowed;
  }

  Model model;
};

}  // namespace calico::felixd::policy::testing
