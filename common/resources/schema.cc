#include "common/resources/internal/schema.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>

#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/resources/internal/net.h"
#include "common/resources/selector/selector.h"

namespace calico::resources::internal {
namespace {

// ---- Type builders -------------------------------------------------------------------------

TypeP Make(ValueKind kind) {
  auto t = std::make_shared<Type>();
  t->kind = kind;
  return t;
}
TypeP Str() { return Make(ValueKind::kString); }
TypeP Int(int64_t min = std::numeric_limits<int64_t>::min(),
          int64_t max = std::numeric_limits<int64_t>::max()) {
  auto t = std::make_shared<Type>();
  t->kind = ValueKind::kInt;
  t->min = min;
  t->max = max;
  return t;
}
TypeP IntIn(std::vector<int64_t> values) {
  auto t = std::make_shared<Type>();
  t->kind = ValueKind::kInt;
  t->int_values = std::move(values);
  return t;
}
TypeP Num() { return Make(ValueKind::kNumber); }
TypeP Bool() { return Make(ValueKind::kBool); }
TypeP Enum(std::vector<std::string> values) {
  auto t = std::make_shared<Type>();
  t->kind = ValueKind::kEnum;
  t->enum_values = std::move(values);
  return t;
}
TypeP CidrT(int family = 0) {
  auto t = std::make_shared<Type>();
  t->kind = ValueKind::kCidr;
  t->family = family;
  return t;
}
TypeP IpT(int family = 0) {
  auto t = std::make_shared<Type>();
  t->kind = ValueKind::kIp;
  t->family = family;
  return t;
}
TypeP Mac() { return Make(ValueKind::kMac); }
TypeP Sel() { return Make(ValueKind::kSelector); }
TypeP Port() { return Make(ValueKind::kPort); }
TypeP Proto() { return Make(ValueKind::kProtocol); }
TypeP IntOrStr() { return Make(ValueKind::kIntOrString); }
TypeP Asn() { return Make(ValueKind::kAsn); }
TypeP Dur() { return Make(ValueKind::kDuration); }
TypeP Any() { return Make(ValueKind::kAny); }
TypeP StrMap() { return Make(ValueKind::kStringMap); }
TypeP ListOf(TypeP elem) {
  auto t = std::make_shared<Type>();
  t->kind = ValueKind::kList;
  t->elem = std::move(elem);
  return t;
}
TypeP Obj(std::vector<Field> fields) {
  auto t = std::make_shared<Type>();
  t->kind = ValueKind::kObject;
  t->fields = std::move(fields);
  return t;
}
Field F(std::string name, TypeP type) {
  Field f;
  f.name = std::move(name);
  f.type = std::move(type);
  return f;
}
// Required fields report "<path>: required" when absent (a null default never applies).
Field Req(std::string name, TypeP type) {
  Field f = F(std::move(name), std::move(type));
  f.default_value = Json::object({{"__required__", true}});
  return f;
}
bool IsRequiredMarker(const Json& v) { return v.is_object() && v.contains("__required__"); }

// ---- Shared pieces -------------------------------------------------------------------------

TypeP Metadata(bool namespaced) {
  std::vector<Field> fields = {F("name", Str())};
  if (namespaced) fields.push_back(F("namespace", Str()));
  // ObjectMeta's Go order (name, namespace, uid, resourceVersion, generation, creationTimestamp,
  // labels, annotations); server-set fields are kept so `get -o yaml | apply` round-trips.
  for (Field f : {F("uid", Str()), F("resourceVersion", Str()), F("generation", Int(0)).OmitZero(),
                  F("creationTimestamp", Str()), F("labels", StrMap()), F("annotations", StrMap())}) {
    fields.push_back(std::move(f));
  }
  return Obj(std::move(fields));
}

TypeP RuleType() {
  TypeP icmp = Obj({F("type", Int(0, 254)), F("code", Int(0, 255))});
  TypeP entity = Obj({
      F("nets", ListOf(CidrT())),
      F("selector", Sel()),
      F("namespaceSelector", Sel()),
      F("services", Obj({F("name", Str()), F("namespace", Str())})),
      F("ports", ListOf(Port())),
      F("notNets", ListOf(CidrT())),
      F("notSelector", Sel()),
      F("notPorts", ListOf(Port())),
      F("serviceAccounts", Obj({F("names", ListOf(Str())), F("selector", Sel())})),
  });
  TypeP http = Obj({F("methods", ListOf(Str())),
                    F("paths", ListOf(Obj({F("exact", Str()), F("prefix", Str())})))});
  return Obj({
      Req("action", Enum({"Allow", "Deny", "Log", "Pass"})),
      F("ipVersion", IntIn({4, 6})),
      F("protocol", Proto()),
      F("icmp", icmp),
      F("notProtocol", Proto()),
      F("notICMP", icmp),
      F("source", entity),
      F("destination", entity),
      F("http", http),
      F("metadata", Obj({F("annotations", StrMap())})),
  });
}

TypeP Password() {
  return Obj({F("secretKeyRef", Obj({Req("name", Str()), Req("key", Str()), F("optional", Bool())}))});
}

// ---- Specs, one per kind -------------------------------------------------------------------

TypeP IPPoolSpec() {
  return Obj({
      F("cidr", Str()),  // parsed and canonicalised in validate.cc (family decides defaults)
      F("vxlanMode", Enum({"Never", "Always", "CrossSubnet"})).Default("Never"),
      F("ipipMode", Enum({"Never", "Always", "CrossSubnet"})).Default("Never"),
      F("natOutgoing", Bool()).OmitFalse(),
      F("disabled", Bool()).OmitFalse(),
      F("disableBGPExport", Bool()).OmitFalse(),
      F("blockSize", Int()).OmitZero(),  // defaulted per family in validate.cc
      F("nodeSelector", Sel()).Default("all()"),
      F("namespaceSelector", Sel()),
      F("allowedUses", ListOf(Enum({"Workload", "Tunnel", "LoadBalancer"})))
          .Default(Json::array({"Workload", "Tunnel"})),
      F("assignmentMode", Enum({"Automatic", "Manual"})).Default("Automatic"),
  });
}

TypeP IPAMConfigSpec() {
  return Obj({
      F("strictAffinity", Bool()).Default(false),
      F("maxBlocksPerHost", Int(0, 1000000)).OmitZero(),
      F("autoAllocateBlocks", Bool()).Default(true),
  });
}

TypeP IPReservationSpec() { return Obj({F("reservedCIDRs", ListOf(CidrT()))}); }

TypeP BGPConfigSpec() {
  TypeP cidr_block = Obj({F("cidr", CidrT())});
  return Obj({
      F("logSeverityScreen", Enum({"Trace", "Debug", "Info", "Warning", "Error", "Fatal"})),
      F("nodeToNodeMeshEnabled", Bool()),
      F("asNumber", Asn()),
      F("serviceLoadBalancerIPs", ListOf(cidr_block)),
      F("serviceExternalIPs", ListOf(cidr_block)),
      F("serviceClusterIPs", ListOf(cidr_block)),
      F("communities", ListOf(Obj({Req("name", Str()), Req("value", Str())}))),
      F("prefixAdvertisements", ListOf(Obj({Req("cidr", CidrT()), F("communities", ListOf(Str()))}))),
      F("listenPort", Int(1, 65535)),
      F("nodeMeshPassword", Password()),
      F("nodeMeshMaxRestartTime", Dur()),
      F("bindMode", Enum({"None", "NodeIP"})),
      F("ignoredInterfaces", ListOf(Str())),
      F("localWorkloadPeeringIPV4", IpT(4)),
      F("localWorkloadPeeringIPV6", IpT(6)),
      F("programClusterRoutes", Enum({"Enabled", "Disabled"})),
  });
}

TypeP BGPPeerSpec() {
  return Obj({
      F("node", Str()),
      F("nodeSelector", Sel()),
      F("peerIP", Str()),  // IP or IP:port, checked in validate.cc
      F("asNumber", Asn()).OmitZero(),
      F("peerSelector", Sel()),
      F("keepOriginalNextHop", Bool()).OmitFalse(),
      F("nextHopMode", Enum({"Auto", "Self", "Keep"})),
      F("password", Password()),
      F("sourceAddress", Enum({"UseNodeIP", "None"})),
      F("failureDetectionMode", Enum({"None", "BFDIfDirectlyConnected"})),
      F("restartMode", Enum({"GracefulRestart", "LongLivedGracefulRestart"})),
      F("maxRestartTime", Dur()),
      F("birdGatewayMode", Enum({"Recursive", "DirectIfDirectlyConnected"})),
      F("numAllowedLocalASNumbers", Int(0, 2147483647)),
      F("ttlSecurity", Int(0, 255)),
      F("reachableBy", IpT()),
      F("filters", ListOf(Str())),
      F("localWorkloadSelector", Sel()),
      F("reversePeering", Enum({"Auto", "Manual"})),
      F("localASNumber", Asn()),
  });
}

TypeP BGPFilterRule(int family) {
  int bits = family == 4 ? 32 : 128;
  return Obj({
      F("cidr", CidrT(family)),
      F("prefixLength", Obj({F("min", Int(0, bits)), F("max", Int(0, bits))})),
      F("source", Enum({"RemotePeers"})),
      F("interface", Str()),
      F("matchOperator", Enum({"Equal", "NotEqual", "In", "NotIn"})),
      F("peerType", Enum({"eBGP", "iBGP"})),
      F("communities", Any()),
      F("asPathPrefix", ListOf(Asn())),
      F("priority", Int(1, 2147483646)),
      Req("action", Enum({"Accept", "Reject"})),
      F("operations", Any()),
  });
}

TypeP BGPFilterSpec() {
  return Obj({F("exportV4", ListOf(BGPFilterRule(4))), F("importV4", ListOf(BGPFilterRule(4))),
              F("exportV6", ListOf(BGPFilterRule(6))), F("importV6", ListOf(BGPFilterRule(6)))});
}

TypeP FelixConfigSpec() {
  TypeP log_level = Enum({"Trace", "Debug", "Info", "Warning", "Error", "Fatal"});
  TypeP proto_port = Obj({Req("protocol", Enum({"TCP", "UDP", "SCTP"})), Req("port", Int(0, 65535)),
                          F("net", Str())});
  TypeP range = Obj({Req("min", Int()), Req("max", Int())});
  // The field list of upstream's FelixConfigurationSpec, in its order. Rarely used nested
  // structures are passed through (Any) rather than modelled.
  return Obj({
      F("useInternalDataplaneDriver", Bool()),
      F("dataplaneDriver", Str()),
      F("dataplaneWatchdogTimeout", Dur()),
      F("ipv6Support", Bool()),
      F("routeRefreshInterval", Dur()),
      F("interfaceRefreshInterval", Dur()),
      F("iptablesRefreshInterval", Dur()),
      F("iptablesPostWriteCheckInterval", Dur()),
      F("iptablesLockFilePath", Str()),
      F("iptablesLockTimeout", Dur()),
      F("iptablesLockProbeInterval", Dur()),
      F("featureDetectOverride", Str()),
      F("featureGates", Str()),
      F("ipsetsRefreshInterval", Dur()),
      F("maxIpsetSize", Int(0)),
      F("iptablesBackend", Enum({"Legacy", "NFT", "Auto"})),
      F("xdpRefreshInterval", Dur()),
      F("netlinkTimeout", Dur()),
      F("metadataAddr", Str()),
      F("metadataPort", Int(0, 65535)),
      F("openstackRegion", Str()),
      F("interfacePrefix", Str()),
      F("interfaceExclude", Str()),
      F("chainInsertMode", Enum({"Insert", "Append"})),
      F("defaultEndpointToHostAction", Enum({"Drop", "Accept", "Return"})),
      F("iptablesFilterAllowAction", Enum({"Accept", "Return"})),
      F("iptablesMangleAllowAction", Enum({"Accept", "Return"})),
      F("iptablesFilterDenyAction", Enum({"Drop", "Reject"})),
      F("logPrefix", Str()),
      F("logActionRateLimit", Str()),
      F("logActionRateLimitBurst", Int(0)),
      F("logFilePath", Str()),
      F("logSeverityFile", log_level),
      F("logSeverityScreen", log_level),
      F("logSeveritySys", log_level),
      F("logDebugFilenameRegex", Str()),
      F("ipipEnabled", Bool()),
      F("ipipMTU", Int(0)),
      F("vxlanEnabled", Bool()),
      F("vxlanMTU", Int(0)),
      F("vxlanMTUV6", Int(0)),
      F("vxlanPort", Int(0, 65535)),
      F("vxlanVNI", Int(0)),
      F("allowVXLANPacketsFromWorkloads", Bool()),
      F("allowIPIPPacketsFromWorkloads", Bool()),
      F("reportingInterval", Dur()),
      F("reportingTTL", Dur()),
      F("endpointReportingEnabled", Bool()),
      F("endpointReportingDelay", Dur()),
      F("endpointStatusPathPrefix", Str()),
      F("iptablesMarkMask", Int(0, 4294967295LL)),
      F("disableConntrackInvalidCheck", Bool()),
      F("healthEnabled", Bool()),
      F("healthHost", Str()),
      F("healthPort", Int(0, 65535)),
      F("healthTimeoutOverrides", Any()),
      F("prometheusMetricsEnabled", Bool()),
      F("prometheusMetricsHost", Str()),
      F("prometheusMetricsPort", Int(0, 65535)),
      F("prometheusGoMetricsEnabled", Bool()),
      F("prometheusProcessMetricsEnabled", Bool()),
      F("prometheusWireGuardMetricsEnabled", Bool()),
      F("failsafeInboundHostPorts", ListOf(proto_port)),
      F("failsafeOutboundHostPorts", ListOf(proto_port)),
      F("kubeNodePortRanges", ListOf(Port())),
      F("policySyncPathPrefix", Str()),
      F("usageReportingEnabled", Bool()),
      F("usageReportingInitialDelay", Dur()),
      F("usageReportingInterval", Dur()),
      F("natPortRange", Port()),
      F("natOutgoingAddress", IpT(4)),
      F("natOutgoingExclusions", Enum({"IPPoolsOnly", "IPPoolsAndHostIPs"})),
      F("deviceRouteSourceAddress", IpT(4)),
      F("deviceRouteSourceAddressIPv6", IpT(6)),
      F("deviceRouteProtocol", Int(0, 255)),
      F("removeExternalRoutes", Bool()),
      F("programClusterRoutes", Enum({"Enabled", "Disabled"})),
      F("ipForwarding", Enum({"Enabled", "Disabled"})),
      F("externalNodesList", ListOf(CidrT(4))),
      F("debugMemoryProfilePath", Str()),
      F("debugDisableLogDropping", Bool()),
      F("debugSimulateCalcGraphHangAfter", Dur()),
      F("debugSimulateDataplaneHangAfter", Dur()),
      F("debugSimulateDataplaneApplyDelay", Dur()),
      F("debugHost", Str()),
      F("debugPort", Int(0, 65535)),
      F("iptablesNATOutgoingInterfaceFilter", Str()),
      F("sidecarAccelerationEnabled", Bool()),
      F("xdpEnabled", Bool()),
      F("genericXDPEnabled", Bool()),
      F("nftablesMode", Enum({"Disabled", "Enabled", "Auto"})),
      F("nftablesRefreshInterval", Dur()),
      F("nftablesFilterAllowAction", Enum({"Accept", "Return"})),
      F("nftablesMangleAllowAction", Enum({"Accept", "Return"})),
      F("nftablesFilterDenyAction", Enum({"Drop", "Reject"})),
      F("nftablesMarkMask", Int(0, 4294967295LL)),
      F("bpfEnabled", Bool()),
      F("bpfDisableUnprivileged", Bool()),
      F("bpfLogLevel", Enum({"Off", "Info", "Debug"})),
      F("bpfLogFilters", StrMap()),
      F("bpfCTLBLogFilter", Str()),
      F("bpfDataIfacePattern", Str()),
      F("bpfL3IfacePattern", Str()),
      F("bpfConnectTimeLoadBalancingEnabled", Bool()),
      F("bpfConnectTimeLoadBalancing", Enum({"TCP", "Enabled", "Disabled"})),
      F("bpfHostNetworkedNATWithoutCTLB", Enum({"Enabled", "Disabled"})),
      F("bpfExternalServiceMode", Enum({"Tunnel", "DSR"})),
      F("bpfDSROptoutCIDRs", ListOf(CidrT())),
      F("bpfExtToServiceConnmark", Int(0, 4294967295LL)),
      F("bpfKubeProxyIptablesCleanupEnabled", Bool()),
      F("bpfKubeProxyMinSyncPeriod", Dur()),
      F("bpfKubeProxyEndpointSlicesEnabled", Bool()),
      F("bpfPSNATPorts", Port()),
      F("bpfMapSizeNATFrontend", Int(0)),
      F("bpfMapSizeNATBackend", Int(0)),
      F("bpfMapSizeNATAffinity", Int(0)),
      F("bpfMapSizeRoute", Int(0)),
      F("bpfMapSizeConntrack", Int(0)),
      F("bpfMapSizeIPSets", Int(0)),
      F("bpfMapSizeIfState", Int(0)),
      F("bpfHostConntrackBypass", Bool()),
      F("bpfEnforceRPF", Enum({"Disabled", "Strict", "Loose"})),
      F("bpfPolicyDebugEnabled", Bool()),
      F("bpfForceTrackPacketsFromIfaces", ListOf(Str())),
      F("bpfDisableGROForIfaces", Str()),
      F("bpfExcludeCIDRsFromNAT", ListOf(CidrT())),
      F("bpfRedirectToPeer", Enum({"Disabled", "Enabled", "L2Only"})),
      F("bpfAttachType", Enum({"TC", "TCX"})),
      F("routeSource", Enum({"WorkloadIPs", "CalicoIPAM"})),
      F("routeTableRanges", ListOf(range)),
      F("routeTableRange", range),
      F("routeSyncDisabled", Bool()),
      F("wireguardEnabled", Bool()),
      F("wireguardEnabledV6", Bool()),
      F("wireguardListeningPort", Int(1, 65535)),
      F("wireguardListeningPortV6", Int(1, 65535)),
      F("wireguardRoutingRulePriority", Int(1, 32765)),
      F("wireguardInterfaceName", Str()),
      F("wireguardInterfaceNameV6", Str()),
      F("wireguardMTU", Int(0)),
      F("wireguardMTUV6", Int(0)),
      F("wireguardHostEncryptionEnabled", Bool()),
      F("wireguardKeepAlive", Dur()),
      F("wireguardThreadingEnabled", Bool()),
      F("awsSrcDstCheck", Enum({"DoNothing", "Enable", "Disable"})),
      F("serviceLoopPrevention", Enum({"Drop", "Reject", "Disabled"})),
      F("workloadSourceSpoofing", Enum({"Disabled", "Any"})),
      F("mtuIfacePattern", Str()),
      F("floatingIPs", Enum({"Enabled", "Disabled"})),
      F("windowsManageFirewallRules", Enum({"Enabled", "Disabled"})),
      F("goGCThreshold", Int()),
      F("goMemoryLimitMB", Int()),
      F("goMaxProcs", Int()),
      F("requireMTUFile", Bool()),
  });
}

TypeP TierSpec() { return Obj({F("order", Num()), F("defaultAction", Enum({"Deny", "Pass"}))}); }

TypeP PolicyTypes() { return ListOf(Enum({"Ingress", "Egress"})); }
TypeP Hints() { return ListOf(Enum({"AssumeNeededOnEveryNode"})); }

TypeP NetworkPolicySpec() {
  return Obj({
      F("tier", Str()).Default("default"),
      F("order", Num()),
      F("ingress", ListOf(RuleType())),
      F("egress", ListOf(RuleType())),
      F("selector", Sel()),
      F("types", PolicyTypes()),
      F("serviceAccountSelector", Sel()),
      F("performanceHints", Hints()),
  });
}

TypeP GlobalNetworkPolicySpec() {
  return Obj({
      F("tier", Str()).Default("default"),
      F("order", Num()),
      F("ingress", ListOf(RuleType())),
      F("egress", ListOf(RuleType())),
      F("selector", Sel()),
      F("types", PolicyTypes()),
      F("doNotTrack", Bool()).OmitFalse(),
      F("preDNAT", Bool()).OmitFalse(),
      F("applyOnForward", Bool()).OmitFalse(),
      F("serviceAccountSelector", Sel()),
      F("namespaceSelector", Sel()),
      F("performanceHints", Hints()),
  });
}

TypeP NetworkSetSpec() { return Obj({F("nets", ListOf(CidrT()))}); }

TypeP ProfileSpec() {
  return Obj({F("ingress", ListOf(RuleType())), F("egress", ListOf(RuleType())),
              F("labelsToApply", StrMap())});
}

TypeP HostEndpointSpec() {
  TypeP port = Obj({Req("name", Str()), Req("protocol", Proto()), Req("port", Int(1, 65535))});
  return Obj({
      F("node", Str()),
      F("interfaceName", Str()),
      F("expectedIPs", ListOf(IpT())),
      F("profiles", ListOf(Str())),
      F("ports", ListOf(port)),
  });
}

TypeP NodeSpec() {
  return Obj({
      F("bgp", Obj({
                   F("asNumber", Asn()),
                   F("ipv4Address", CidrT(4)),
                   F("ipv6Address", CidrT(6)),
                   F("ipv4IPIPTunnelAddr", IpT(4)),
                   F("routeReflectorClusterID", IpT(4)),
               })),
      F("ipv4VXLANTunnelAddr", IpT(4)),
      F("vxlanTunnelMACAddr", Mac()),
      F("ipv6VXLANTunnelAddr", IpT(6)),
      F("vxlanTunnelMACAddrV6", Mac()),
      F("orchRefs", ListOf(Obj({F("nodeName", Str()), Req("orchestrator", Str())}))),
      F("wireguard", Obj({F("interfaceIPv4Address", IpT(4)), F("interfaceIPv6Address", IpT(6))})),
      F("addresses", ListOf(Obj({Req("address", Str()),
                                 F("type", Enum({"CalicoNodeIP", "InternalIP", "ExternalIP"}))}))),
  });
}

TypeP WorkloadEndpointSpec() {
  TypeP port = Obj({
      F("name", Str()),
      Req("protocol", Proto()),
      Req("port", Int(0, 65535)),
      F("hostPort", Int(0, 65535)).OmitZero(),
      F("hostIP", IpT()),
  });
  return Obj({
      F("orchestrator", Str()),
      F("workload", Str()),
      F("node", Str()),
      F("containerID", Str()),
      F("pod", Str()),
      F("endpoint", Str()),
      F("serviceAccountName", Str()),
      F("ipNetworks", ListOf(CidrT())),
      F("ipNATs", ListOf(Obj({Req("internalIP", IpT()), Req("externalIP", IpT())}))),
      F("ipv4Gateway", IpT(4)),
      F("ipv6Gateway", IpT(6)),
      F("profiles", ListOf(Str())),
      F("interfaceName", Str()),
      F("mac", Mac()),
      F("ports", ListOf(port)),
      F("allowSpoofedSourcePrefixes", ListOf(CidrT())),
  });
}

TypeP ClusterInformationSpec() {
  return Obj({F("clusterGUID", Str()), F("clusterType", Str()), F("calicoVersion", Str()),
              F("datastoreReady", Bool()), F("variant", Str())});
}

// networking.k8s.io/v1, in k8s.io/api's Go order. An empty selector is meaningful there
// ("every pod"), so selectors inside peers keep `{}` when given.
TypeP LabelSelector() {
  return Obj({
      F("matchLabels", StrMap()),
      F("matchExpressions",
        ListOf(Obj({Req("key", Str()), Req("operator", Enum({"In", "NotIn", "Exists", "DoesNotExist"})),
                    F("values", ListOf(Str()))}))),
  });
}

TypeP K8sNetworkPolicySpec() {
  TypeP peer = Obj({
      F("podSelector", LabelSelector()).KeepEmpty(),
      F("namespaceSelector", LabelSelector()).KeepEmpty(),
      F("ipBlock", Obj({Req("cidr", Str()), F("except", ListOf(Str()))})),
  });
  TypeP port = Obj({F("protocol", Enum({"TCP", "UDP", "SCTP"})).Default("TCP"), F("port", IntOrStr()),
                    F("endPort", Int(1, 65535))});
  return Obj({
      F("podSelector", LabelSelector()).Default(Json::object()).KeepEmpty(),
      F("ingress", ListOf(Obj({F("ports", ListOf(port)), F("from", ListOf(peer))}))),
      F("egress", ListOf(Obj({F("ports", ListOf(port)), F("to", ListOf(peer))}))),
      F("policyTypes", PolicyTypes()),
  });
}

TypeP SpecFor(const KindInfo& kind) {
  std::string_view k = kind.kind;
  if (kind.api_version == "networking.k8s.io/v1") return K8sNetworkPolicySpec();
  if (k == "IPPool") return IPPoolSpec();
  if (k == "IPAMConfiguration") return IPAMConfigSpec();
  if (k == "IPReservation") return IPReservationSpec();
  if (k == "BGPConfiguration") return BGPConfigSpec();
  if (k == "BGPPeer") return BGPPeerSpec();
  if (k == "BGPFilter") return BGPFilterSpec();
  if (k == "FelixConfiguration") return FelixConfigSpec();
  if (k == "Tier") return TierSpec();
  if (k == "NetworkPolicy") return NetworkPolicySpec();
  if (k == "GlobalNetworkPolicy") return GlobalNetworkPolicySpec();
  if (k == "NetworkSet" || k == "GlobalNetworkSet") return NetworkSetSpec();
  if (k == "Profile") return ProfileSpec();
  if (k == "HostEndpoint") return HostEndpointSpec();
  if (k == "Node") return NodeSpec();
  if (k == "WorkloadEndpoint") return WorkloadEndpointSpec();
  if (k == "ClusterInformation") return ClusterInformationSpec();
  return Obj({});
}

// ---- Normalisation -------------------------------------------------------------------------

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(path + ": " + what);
}
absl::Status NotA(const std::string& path, const Json& v, const std::string& what) {
  return Invalid(path, ShowValue(v) + " is not " + what);
}

std::optional<int64_t> AsInt(const Json& v) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::optional<int64_t> ParseDigits(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size() || s[0] == '-' || s[0] == '+') return std::nullopt;
  return n;
}

bool IsPortName(const std::string& s) {
  // IANA service name, as upstream's portName validator: lower-case alphanumerics and '-',
  // at most 15, at least one letter, no leading/trailing/double '-'.
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-') return false;
  if (s.find("--") != std::string::npos) return false;
  bool letter = false;
  for (char c : s) {
    if (c >= 'a' && c <= 'z') letter = true;
    else if (!(c >= '0' && c <= '9') && c != '-') return false;
  }
  return letter;
}

bool IsDuration(const std::string& s) {
  // Go's time.ParseDuration: [-+]? then one or more <decimal><unit>, or the bare "0".
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  if (s.substr(i) == "0") return true;
  if (i == s.size()) return false;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return false;
    bool matched = false;
    for (std::string_view unit : {"ns", "us", "\xc2\xb5s", "\xce\xbcs", "ms", "s", "m", "h"}) {
      if (std::string_view(s).substr(i).starts_with(unit)) {
        // "m" must not swallow the "m" of "ms".
        if (unit == "m" && std::string_view(s).substr(i).starts_with("ms")) continue;
        i += unit.size();
        matched = true;
        break;
      }
    }
    if (!matched) return false;
  }
  return true;
}

std::optional<std::string> CanonicalMac(const std::string& s) {
  if (s.size() != 17) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i % 3 == 2) {
      if (c != ':' && c != '-') return std::nullopt;
      out += ':';
    } else {
      if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

bool Omitted(const Json& v, const Field& f) {
  if (v.is_string()) return v.get_ref<const std::string&>().empty();
  if (v.is_array()) return v.empty();
  if (v.is_object()) return v.empty() && !f.keep_empty;
  if (v.is_boolean()) return f.omit_false && !v.get<bool>();
  if (v.is_number_integer()) return f.omit_zero && v.get<int64_t>() == 0;
  return false;
}

}  // namespace

std::string ShowValue(const Json& value) {
  return value.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

std::string JoinPath(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

absl::StatusOr<Json> Normalize(const Json& v, const Type& t, const std::string& path) {
  switch (t.kind) {
    case ValueKind::kString:
      if (!v.is_string()) return NotA(path, v, "a string");
      return v;
    case ValueKind::kInt: {
      std::optional<int64_t> n = AsInt(v);
      if (!n) return NotA(path, v, "an integer");
      if (!t.int_values.empty() &&
          std::find(t.int_values.begin(), t.int_values.end(), *n) == t.int_values.end()) {
        return Invalid(path, std::to_string(*n) + " is not one of " + absl::StrJoin(t.int_values, "|"));
      }
      if (*n < t.min || *n > t.max) {
        if (t.max == std::numeric_limits<int64_t>::max()) {
          return Invalid(path, std::to_string(*n) + " is less than " + std::to_string(t.min));
        }
        return Invalid(path, std::to_string(*n) + " is outside " + std::to_string(t.min) + "-" +
                                 std::to_string(t.max));
      }
      return Json(*n);
    }
    case ValueKind::kNumber: {
      if (!v.is_number()) return NotA(path, v, "a number");
      if (std::optional<int64_t> n = AsInt(v)) return Json(*n);  // Go prints 100.0 as 100
      return v;
    }
    case ValueKind::kBool:
      if (!v.is_boolean()) return NotA(path, v, "a boolean");
      return v;
    case ValueKind::kEnum:
      if (!v.is_string()) return NotA(path, v, "a string");
      if (std::find(t.enum_values.begin(), t.enum_values.end(), v.get<std::string>()) ==
          t.enum_values.end()) {
        return Invalid(path, ShowValue(v) + " is not one of " + absl::StrJoin(t.enum_values, "|"));
      }
      return v;
    case ValueKind::kCidr: {
      if (!v.is_string()) return NotA(path, v, "a string");
      std::optional<Cidr> c = ParseCidrOrIp(v.get<std::string>());
      std::string fam = t.family == 4 ? "an IPv4 CIDR" : t.family == 6 ? "an IPv6 CIDR" : "a valid CIDR";
      if (!c || (t.family != 0 && c->addr.family != t.family)) return NotA(path, v, fam);
      return Json(FormatCidr(*c));
    }
    case ValueKind::kIp: {
      if (!v.is_string()) return NotA(path, v, "a string");
      std::optional<IpAddr> ip = ParseIp(v.get<std::string>());
      std::string fam = t.family == 4 ? "an IPv4 address" : t.family == 6 ? "an IPv6 address" : "a valid IP address";
      if (!ip || (t.family != 0 && ip->family != t.family)) return NotA(path, v, fam);
      return Json(FormatIp(*ip));
    }
    case ValueKind::kMac: {
      if (!v.is_string()) return NotA(path, v, "a string");
      std::optional<std::string> mac = CanonicalMac(v.get<std::string>());
      if (!mac) return NotA(path, v, "a valid MAC address");
      return Json(*mac);
    }
    case ValueKind::kSelector: {
      if (!v.is_string()) return NotA(path, v, "a string");
      absl::StatusOr<selector::Selector> sel = selector::Selector::Parse(v.get<std::string>());
      if (!sel.ok()) return Invalid(path, ToStd(sel.status().message()));
      return v;
    }
    case ValueKind::kPort: {
      auto bad = [&] { return NotA(path, v, "a valid port, port range or port name"); };
      auto in_range = [](int64_t p) { return p >= 1 && p <= 65535; };
      if (std::optional<int64_t> n = AsInt(v)) {
        if (!in_range(*n)) return Invalid(path, std::to_string(*n) + " is outside 1-65535");
        return Json(*n);
      }
      if (!v.is_string()) return bad();
      const std::string& s = v.get_ref<const std::string&>();
      if (std::optional<int64_t> n = ParseDigits(s)) {
        if (!in_range(*n)) return Invalid(path, ShowValue(v) + " is outside 1-65535");
        return Json(*n);
      }
      size_t colon = s.find(':');
      if (colon != std::string::npos) {
        std::optional<int64_t> lo = ParseDigits(s.substr(0, colon));
        std::optional<int64_t> hi = ParseDigits(s.substr(colon + 1));
        if (!lo || !hi) return bad();
        if (!in_range(*lo) || !in_range(*hi)) return Invalid(path, ShowValue(v) + " is outside 1-65535");
        if (*lo > *hi) return Invalid(path, ShowValue(v) + " is not a valid range (start > end)");
        if (*lo == *hi) return Json(*lo);
        return Json(std::to_string(*lo) + ":" + std::to_string(*hi));
      }
      if (!IsPortName(s)) return bad();
      return v;
    }
    case ValueKind::kProtocol: {
      static const std::vector<std::string> kNames = {"TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite"};
      if (std::optional<int64_t> n = AsInt(v)) {
        if (*n < 1 || *n > 255) return Invalid(path, std::to_string(*n) + " is outside 1-255");
        return Json(*n);
      }
      if (v.is_string() &&
          std::find(kNames.begin(), kNames.end(), v.get<std::string>()) != kNames.end()) {
        return v;
      }
      return NotA(path, v, "a protocol (" + absl::StrJoin(kNames, "|") + " or 1-255)");
    }
    case ValueKind::kIntOrString:
      if (std::optional<int64_t> n = AsInt(v)) return Json(*n);
      if (!v.is_string()) return NotA(path, v, "an integer or a string");
      return v;
    case ValueKind::kAsn: {
      auto bad = [&] { return NotA(path, v, "a valid AS number"); };
      constexpr int64_t kMax = 4294967295LL;
      if (std::optional<int64_t> n = AsInt(v)) {
        if (*n < 0 || *n > kMax) return bad();
        return Json(*n);
      }
      if (!v.is_string()) return bad();
      const std::string& s = v.get_ref<const std::string&>();
      if (std::optional<int64_t> n = ParseDigits(s)) {
        if (*n > kMax) return bad();
        return Json(*n);
      }
      size_t dot = s.find('.');  // asdot notation, RFC 5396
      if (dot == std::string::npos) return bad();
      std::optional<int64_t> hi = ParseDigits(s.substr(0, dot));
      std::optional<int64_t> lo = ParseDigits(s.substr(dot + 1));
      if (!hi || !lo || *hi > 65535 || *lo > 65535) return bad();
      return Json(*hi * 65536 + *lo);
    }
    case ValueKind::kDuration:
      if (!v.is_string() || !IsDuration(v.get<std::string>())) return NotA(path, v, "a duration (like \"90s\")");
      return v;
    case ValueKind::kList: {
      if (!v.is_array()) return NotA(path, v, "a list");
      Json out = Json::array();
      for (size_t i = 0; i < v.size(); ++i) {
        ASSIGN_OR_RETURN(Json item, Normalize(v[i], *t.elem, path + "[" + std::to_string(i) + "]"));
        out.push_back(std::move(item));
      }
      return out;
    }
    case ValueKind::kStringMap: {
      if (!v.is_object()) return NotA(path, v, "a map of strings");
      std::map<std::string, std::string> sorted;
      for (const auto& [k, val] : v.items()) {
        if (!val.is_string()) return NotA(JoinPath(path, k), val, "a string");
        sorted[k] = val.get<std::string>();
      }
      Json out = Json::object();
      for (const auto& [k, val] : sorted) out[k] = val;
      return out;
    }
    case ValueKind::kObject: {
      if (!v.is_object()) return NotA(path, v, "an object");
      for (const auto& [k, _] : v.items()) {
        bool known = std::any_of(t.fields.begin(), t.fields.end(), [&](const Field& f) { return f.name == k; });
        if (!known) return Invalid(JoinPath(path, k), "unknown field");
      }
      Json out = Json::object();
      for (const Field& f : t.fields) {
        auto it = v.find(f.name);
        const Json* value = nullptr;
        if (it != v.end() && !it->is_null()) {
          value = &*it;
        } else if (IsRequiredMarker(f.default_value)) {
          return Invalid(JoinPath(path, f.name), "required");
        } else if (!f.default_value.is_null()) {
          value = &f.default_value;
        } else {
          continue;
        }
        ASSIGN_OR_RETURN(Json n, Normalize(*value, *f.type, JoinPath(path, f.name)));
        if (Omitted(n, f)) continue;
        out[f.name] = std::move(n);
      }
      return out;
    }
    case ValueKind::kAny:
      return v;
  }
  return absl::InternalError("unhandled schema type at " + path);
}

const Type& ObjectType(const KindInfo& kind) {
  // Built once per kind; the tables are immutable afterwards.
  static std::mutex mu;
  static std::map<const KindInfo*, TypeP>* types = new std::map<const KindInfo*, TypeP>();
  std::lock_guard<std::mutex> lock(mu);
  TypeP& t = (*types)[&kind];
  if (!t) {
    std::vector<Field> fields = {F("apiVersion", Str()), F("kind", Str()),
                                 F("metadata", Metadata(kind.namespaced)).KeepEmpty(),
                                 F("spec", SpecFor(kind)).Default(Json::object()).KeepEmpty()};
    if (kind.kind == "Node" && kind.api_version == "projectcalico.org/v3") {
      fields.push_back(F("status", Any()));  // written by calico/node, not validated here
    }
    t = Obj(std::move(fields));
  }
  return *t;
}

}  // namespace calico::resources::internal
