#include "cni-plugin/result.h"

#include <algorithm>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "cni-plugin/cni_error.h"
#include "common/base/status_macros.h"

namespace calico::cni {
namespace {

using ojson = nlohmann::ordered_json;

// 0.3.0, 0.3.1 and 0.4.0 share upstream's types/040 layout; 1.x share types/100.
bool IsLegacyLayout(std::string_view version) { return version.size() >= 2 && version[0] == '0'; }

absl::Status FieldError(std::string_view field, std::string_view problem) {
  return MakeCniError(ErrorCode::kInvalidNetworkConfig, absl::StrCat(ToAbsl(field), ": ", ToAbsl(problem)));
}

ojson DnsJson(const Dns& dns) {
  ojson j = ojson::object();
  if (!dns.nameservers.empty()) j["nameservers"] = dns.nameservers;
  if (!dns.domain.empty()) j["domain"] = dns.domain;
  if (!dns.search.empty()) j["search"] = dns.search;
  if (!dns.options.empty()) j["options"] = dns.options;
  return j;
}

absl::StatusOr<std::string> GetString(const nlohmann::json& obj, const char* key,
                                      const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return FieldError(absl::StrCat(where, key), "must be a string");
  return it->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> GetStringList(const nlohmann::json& obj, const char* key,
                                                       const std::string& where) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_array()) return FieldError(absl::StrCat(where, key), "must be a list of strings");
  for (const auto& v : *it) {
    if (!v.is_string()) return FieldError(absl::StrCat(where, key), "must be a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

const nlohmann::json* GetList(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

}  // namespace

const std::vector<std::string>& SupportedVersions() {
  static const auto* versions =
      new std::vector<std::string>{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  return *versions;
}

bool IsSupportedVersion(std::string_view version) {
  const auto& v = SupportedVersions();
  return std::find(v.begin(), v.end(), version) != v.end();
}

absl::StatusOr<std::string> FormatResult(const Result& result, std::string_view cni_version) {
  if (!IsSupportedVersion(cni_version)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot format a result for cniVersion \"", ToAbsl(cni_version), "\""));
  }
  const bool legacy = IsLegacyLayout(cni_version);
  ojson j;
  j["cniVersion"] = std::string(cni_version);
  if (!result.interfaces.empty()) {
    ojson list = ojson::array();
    for (const Interface& intf : result.interfaces) {
      ojson i;
      i["name"] = intf.name;
      if (!intf.mac.empty()) i["mac"] = intf.mac;
      if (!intf.sandbox.empty()) i["sandbox"] = intf.sandbox;
      list.push_back(std::move(i));
    }
    j["interfaces"] = std::move(list);
  }
  if (!result.ips.empty()) {
    ojson list = ojson::array();
    for (size_t n = 0; n < result.ips.size(); ++n) {
      const IpConfig& ip = result.ips[n];
      ojson i;
      if (legacy) i["version"] = ip.address.addr.family == 4 ? "4" : "6";
      if (ip.interface) {
        if (*ip.interface < 0 || static_cast<size_t>(*ip.interface) >= result.interfaces.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("ips[", n, "].interface ", *ip.interface, " is not an interface index"));
        }
        i["interface"] = *ip.interface;
      }
      i["address"] = net::FormatCidr(ip.address);
      if (ip.gateway) i["gateway"] = net::FormatIp(*ip.gateway);
      list.push_back(std::move(i));
    }
    j["ips"] = std::move(list);
  }
  if (!result.routes.empty()) {
    ojson list = ojson::array();
    for (const Route& route : result.routes) {
      ojson r;
      r["dst"] = net::FormatCidr(route.dst);
      if (route.gw) r["gw"] = net::FormatIp(*route.gw);
      list.push_back(std::move(r));
    }
    j["routes"] = std::move(list);
  }
  // Upstream's DNS is a struct value, so Go prints "dns": {} even when it is empty.
  j["dns"] = DnsJson(result.dns);
  return j.dump();
}

std::string FormatVersionInfo(std::string_view cni_version) {
  ojson j;
  j["cniVersion"] = std::string(cni_version);
  j["supportedVersions"] = SupportedVersions();
  return j.dump();
}

absl::StatusOr<Result> ParseResult(std::string_view text, std::string_view expected_version) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return MakeCniError(ErrorCode::kDecodeFailure, "result: malformed JSON");
  if (!j.is_object()) return MakeCniError(ErrorCode::kDecodeFailure, "result: not a JSON object");

  ASSIGN_OR_RETURN(std::string version, GetString(j, "cniVersion", ""));
  if (version.empty()) version = std::string(expected_version);
  if (!IsSupportedVersion(version)) {
    return MakeCniError(ErrorCode::kIncompatibleVersion,
                        absl::StrCat("result cniVersion \"", version, "\" is not supported"));
  }
  const bool legacy = IsLegacyLayout(version);
  Result result;

  if (const nlohmann::json* list = GetList(j, "interfaces")) {
    if (!list->is_array()) return FieldError("interfaces", "must be a list");
    for (size_t n = 0; n < list->size(); ++n) {
      const nlohmann::json& e = (*list)[n];
      std::string where = absl::StrCat("interfaces[", n, "].");
      if (!e.is_object()) return FieldError(where, "must be an object");
      Interface intf;
      ASSIGN_OR_RETURN(intf.name, GetString(e, "name", where));
      ASSIGN_OR_RETURN(intf.mac, GetString(e, "mac", where));
      ASSIGN_OR_RETURN(intf.sandbox, GetString(e, "sandbox", where));
      result.interfaces.push_back(std::move(intf));
    }
  }

  if (const nlohmann::json* list = GetList(j, "ips")) {
    if (!list->is_array()) return FieldError("ips", "must be a list");
    for (size_t n = 0; n < list->size(); ++n) {
      const nlohmann::json& e = (*list)[n];
      std::string where = absl::StrCat("ips[", n, "].");
      if (!e.is_object()) return FieldError(where, "must be an object");
      IpConfig ip;
      ASSIGN_OR_RETURN(std::string address, GetString(e, "address", where));
      auto prefix = net::ParsePrefix(address);
      if (!prefix) return FieldError(where + "address", absl::StrCat("\"", address, "\" is not a CIDR"));
      ip.address = *prefix;
      ASSIGN_OR_RETURN(std::string gateway, GetString(e, "gateway", where));
      if (!gateway.empty()) {
        ip.gateway = net::ParseIp(gateway);
        if (!ip.gateway) return FieldError(where + "gateway", absl::StrCat("\"", gateway, "\" is not an IP"));
      }
      if (auto it = e.find("interface"); it != e.end() && !it->is_null()) {
        if (!it->is_number_integer() || it->get<int64_t>() < 0 ||
            it->get<uint64_t>() >= result.interfaces.size()) {
          return FieldError(where + "interface", "must be an index into interfaces");
        }
        ip.interface = it->get<int>();
      }
      // 0.3.x/0.4.0 carry the family redundantly; a mismatch means the producer is confused.
      if (legacy) {
        ASSIGN_OR_RETURN(std::string fam, GetString(e, "version", where));
        if (!fam.empty() && fam != (ip.address.addr.family == 4 ? "4" : "6")) {
          return FieldError(where + "version", absl::StrCat("\"", fam, "\" does not match ", address));
        }
      }
      result.ips.push_back(ip);
    }
  }

  if (const nlohmann::json* list = GetList(j, "routes")) {
    if (!list->is_array()) return FieldError("routes", "must be a list");
    for (size_t n = 0; n < list->size(); ++n) {
      const nlohmann::json& e = (*list)[n];
      std::string where = absl::StrCat("routes[", n, "].");
      if (!e.is_object()) return FieldError(where, "must be an object");
      Route route;
      ASSIGN_OR_RETURN(std::string dst, GetString(e, "dst", where));
      auto prefix = net::ParsePrefix(dst);
      if (!prefix) return FieldError(where + "dst", absl::StrCat("\"", dst, "\" is not a CIDR"));
      route.dst = *prefix;
      ASSIGN_OR_RETURN(std::string gw, GetString(e, "gw", where));
      if (!gw.empty()) {
        route.gw = net::ParseIp(gw);
        if (!route.gw) return FieldError(where + "gw", absl::StrCat("\"", gw, "\" is not an IP"));
      }
      result.routes.push_back(route);
    }
  }

  if (const nlohmann::json* dns = GetList(j, "dns")) {
    if (!dns->is_object()) return FieldError("dns", "must be an object");
    ASSIGN_OR_RETURN(result.dns.nameservers, GetStringList(*dns, "nameservers", "dns."));
    ASSIGN_OR_RETURN(result.dns.domain, GetString(*dns, "domain", "dns."));
    ASSIGN_OR_RETURN(result.dns.search, GetStringList(*dns, "search", "dns."));
    ASSIGN_OR_RETURN(result.dns.options, GetStringList(*dns, "options", "dns."));
  }
  return result;
}

}  // namespace calico::cni
