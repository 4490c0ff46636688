#include "calicoctl/table.h"

#include <algorithm>
#include <functional>
#include <map>

#include "absl/strings/str_join.h"

namespace calico::calicoctl {
namespace {

using resources::Json;
using resources::Resource;

const Json* Find(const Json& root, std::initializer_list<const char*> path) {
  const Json* at = &root;
  for (const char* step : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(step);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

std::string Text(const Json* value, const std::string& missing = "") {
  if (value == nullptr || value->is_null()) return missing;
  if (value->is_string()) return value->get<std::string>();
  if (value->is_boolean()) return value->get<bool>() ? "true" : "false";
  if (value->is_array()) {
    std::vector<std::string> parts;
    for (const Json& item : *value) parts.push_back(Text(&item));
    return absl::StrJoin(parts, ",");
  }
  if (value->is_object()) {
    std::vector<std::string> parts;
    for (auto it = value->begin(); it != value->end(); ++it)
      parts.push_back(it.key() + "=" + Text(&it.value()));
    return absl::StrJoin(parts, ",");
  }
  return value->dump();
}

std::string Truncate(std::string s, size_t max) {
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

using Cell = std::function<std::string(const Json&)>;
struct Columns {
  std::vector<std::string> ps;
  std::vector<std::string> wide;
  std::map<std::string, Cell> cells;
};

Cell Field(std::initializer_list<const char*> path, std::string missing = "") {
  std::vector<const char*> p(path);
  return [p, missing](const Json& o) {
    const Json* at = &o;
    for (const char* step : p) {
      if (!at->is_object() || !at->contains(step)) return missing;
      at = &(*at)[step];
    }
    return Text(at, missing);
  };
}

const std::map<std::string, Columns, std::less<>>& AllColumns() {
  // Calico's namespaced and global policies print alike.
  const Columns policy{{"NAME", "TIER"},
                       {"NAME", "TIER", "ORDER", "SELECTOR"},
                       {{"TIER", Field({"spec", "tier"}, "default")},
                        {"ORDER", Field({"spec", "order"})},
                        {"SELECTOR", Field({"spec", "selector"})}}};
  static const auto* columns = new std::map<std::string, Columns, std::less<>>{
      {"IPPool",
       {{"NAME", "CIDR", "SELECTOR"},
        {"NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED", "DISABLEBGPEXPORT",
         "SELECTOR"},
        {{"CIDR", Field({"spec", "cidr"})},
         {"NAT", Field({"spec", "natOutgoing"}, "false")},
         {"IPIPMODE", Field({"spec", "ipipMode"}, "Never")},
         {"VXLANMODE", Field({"spec", "vxlanMode"}, "Never")},
         {"DISABLED", Field({"spec", "disabled"}, "false")},
         {"DISABLEBGPEXPORT", Field({"spec", "disableBGPExport"}, "false")},
         {"SELECTOR", Field({"spec", "nodeSelector"}, "all()")}}}},
      {"Node",
       {{"NAME"},
        {"NAME", "ASN", "IPV4", "IPV6"},
        {{"IPV4", Field({"spec", "bgp", "ipv4Address"})},
         {"IPV6", Field({"spec", "bgp", "ipv6Address"})}}}},
      {"BGPPeer",
       {{"NAME", "PEERIP", "NODE", "ASN"},
        {"NAME", "PEERIP", "NODE", "ASN"},
        {{"PEERIP", Field({"spec", "peerIP"})},
         {"NODE",
          [](const Json& o) {
            std::string node = Text(Find(o, {"spec", "node"}));
            if (!node.empty()) return node;
            std::string sel = Text(Find(o, {"spec", "nodeSelector"}));
            return sel.empty() ? std::string("(global)") : sel;
          }},
         {"ASN", Field({"spec", "asNumber"})}}}},
      {"BGPConfiguration",
       {{"NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"},
        {"NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"},
        {{"LOGSEVERITY", Field({"spec", "logSeverityScreen"})},
         {"MESHENABLED", Field({"spec", "nodeToNodeMeshEnabled"}, "-")},
         {"ASNUMBER", Field({"spec", "asNumber"}, "-")}}}},
      {"BGPFilter", {{"NAME"}, {"NAME"}, {}}},
      {"FelixConfiguration", {{"NAME"}, {"NAME"}, {}}},
      {"IPAMConfiguration",
       {{"NAME"},
        {"NAME", "STRICTAFFINITY", "MAXBLOCKSPERHOST"},
        {{"STRICTAFFINITY", Field({"spec", "strictAffinity"}, "false")},
         {"MAXBLOCKSPERHOST", Field({"spec", "maxBlocksPerHost"}, "0")}}}},
      {"IPReservation",
       {{"NAME"},
        {"NAME", "CIDRS"},
        {{"CIDRS",
          [](const Json& o) {
            return Truncate(Text(Find(o, {"spec", "reservedCIDRs"})), 80);
          }}}}},
      {"Tier", {{"NAME", "ORDER"}, {"NAME", "ORDER"}, {{"ORDER", Field({"spec", "order"})}}}},
      {"NetworkPolicy", policy},
      {"GlobalNetworkPolicy", policy},
      {"networking.k8s.io/NetworkPolicy",
       {{"NAME"},
        {"NAME", "PODSELECTOR"},
        {{"PODSELECTOR",
          [](const Json& o) {
            return Text(Find(o, {"spec", "podSelector", "matchLabels"}));
          }}}}},
      {"NetworkSet",
       {{"NAME"},
        {"NAME", "NETS"},
        {{"NETS",
          [](const Json& o) {
            return Truncate(Text(Find(o, {"spec", "nets"})), 80);
          }}}}},
      {"GlobalNetworkSet",
       {{"NAME"},
        {"NAME", "NETS"},
        {{"NETS",
          [](const Json& o) {
            return Truncate(Text(Find(o, {"spec", "nets"})), 80);
          }}}}},
      {"Profile", {{"NAME"}, {"NAME", "LABELS"}, {{"LABELS", Field({"spec", "labelsToApply"})}}}},
      {"HostEndpoint",
       {{"NAME", "NODE"},
        {"NAME", "NODE", "INTERFACE", "IPS", "PROFILES"},
        {{"NODE", Field({"spec", "node"})},
         {"INTERFACE", Field({"spec", "interfaceName"})},
         {"IPS", Field({"spec", "expectedIPs"})},
         {"PROFILES", Field({"spec", "profiles"})}}}},
      {"WorkloadEndpoint",
       {{"WORKLOAD", "NODE", "NETWORKS", "INTERFACE"},
        {"NAME", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE", "PROFILES", "NATS"},
        {{"WORKLOAD",
          [](const Json& o) {
            std::string w = Text(Find(o, {"spec", "workload"}));
            return w.empty() ? Text(Find(o, {"spec", "pod"})) : w;
          }},
         {"NODE", Field({"spec", "node"})},
         {"NETWORKS", Field({"spec", "ipNetworks"})},
         {"INTERFACE", Field({"spec", "interfaceName"})},
         {"PROFILES", Field({"spec", "profiles"})},
         {"NATS", Field({"spec", "ipNATs"})}}}},
      {"ClusterInformation",
       {{"NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"},
        {"NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"},
        {{"CLUSTERGUID", Field({"spec", "clusterGUID"})},
         {"CLUSTERTYPE", Field({"spec", "clusterType"})},
         {"CALICOVERSION", Field({"spec", "calicoVersion"})},
         {"DATASTOREREADY", Field({"spec", "datastoreReady"})}}}},
  };
  return *columns;
}

std::string ColumnsKey(const resources::KindInfo& kind) {
  std::string key(kind.kind);
  if (kind.api_version != "projectcalico.org/v3") {
    std::string group(kind.api_version.substr(0, kind.api_version.find('/')));
    key = group + "/" + key;
  }
  return key;
}

const Columns& ColumnsFor(const resources::KindInfo& kind) {
  static const Columns kNameOnly{{"NAME"}, {"NAME"}, {}};
  auto it = AllColumns().find(ColumnsKey(kind));
  return it == AllColumns().end() ? kNameOnly : it->second;
}

}  // namespace

std::vector<std::string> Headings(const resources::KindInfo& kind, const TableOptions& options) {
  const Columns& c = ColumnsFor(kind);
  std::vector<std::string> h = options.wide ? c.wide : c.ps;
  if (options.with_namespace && kind.namespaced) h.insert(h.begin(), "NAMESPACE");
  return h;
}

std::vector<std::string> Row(const Resource& resource, const TableOptions& options) {
  const Columns& c = ColumnsFor(*resource.kind);
  std::vector<std::string> row;
  for (const std::string& heading : Headings(*resource.kind, options)) {
    if (heading == "NAME") {
      row.push_back(resource.Name());
    } else if (heading == "NAMESPACE") {
      row.push_back(resource.Namespace());
    } else if (heading == "ASN" && resource.kind->kind == "Node") {
      // A node without its own AS number inherits the cluster's, shown in parentheses.
      const Json* bgp = Find(resource.object, {"spec", "bgp"});
      const Json* asn = bgp != nullptr ? Find(*bgp, {"asNumber"}) : nullptr;
      row.push_back(bgp == nullptr   ? ""
                    : asn != nullptr ? Text(asn)
                                     : "(" + options.default_as_number + ")");
    } else {
      auto it = c.cells.find(heading);
      row.push_back(it == c.cells.end() ? "" : it->second(resource.object));
    }
  }
  return row;
}

void PrintTable(std::ostream& out, const std::vector<std::string>& headings,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headings.size(), 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  };
  measure(headings);
  for (const auto& r : rows) measure(r);
  auto print = [&](const std::vector<std::string>& r) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  print(headings);
  for (const auto& r : rows) print(r);
}

void PrintBorderedTable(std::ostream& out, const std::vector<std::string>& headings,
                        const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right_aligned, bool center_headings) {
  std::vector<size_t> width(headings.size(), 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  };
  measure(headings);
  for (const auto& r : rows) measure(r);
  std::string rule = "+";
  for (size_t w : width) rule += std::string(w + 2, '-') + "+";
  auto print = [&](const std::vector<std::string>& r, bool heading) {
    std::string line = "|";
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < r.size() ? r[i] : "";
      const std::string pad(width[i] - cell.size(), ' ');
      const bool right = !heading && i < right_aligned.size() && right_aligned[i];
      if (heading && center_headings) {
        const size_t left = (width[i] - cell.size()) / 2;
        line += " " + std::string(left, ' ') + cell + std::string(width[i] - cell.size() - left, ' ') + " |";
        continue;
      }
      line += " " + (right ? pad + cell : cell + pad) + " |";
    }
    out << line << "\n";
  };
  out << rule << "\n";
  print(headings, true);
  out << rule << "\n";
  for (const auto& r : rows) print(r, false);
  if (!rows.empty()) out << rule << "\n";
}

}  // namespace calico::calicoctl
