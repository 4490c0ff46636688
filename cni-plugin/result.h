#pragma once
// CNI results as plain structs, and their JSON in each supported spec version: the ADD result
// (types/040 layout for 0.3.0, 0.3.1 and 0.4.0: ips carry "version"; types/100 layout for 1.0.0
// and 1.1.0), the VERSION answer, and the parse of a prevResult of any supported version.
// Field names and omissions follow the spec and upstream's omitempty tags, so a result printed
// here is byte-for-byte what the reference Go types would print for the same values.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net/ip.h"

namespace calico::cni {

struct Interface {
  std::string name;
  std::string mac;      // omitted when empty
  std::string sandbox;  // netns path for container-side interfaces; empty for host-side ones
};

struct IpConfig {
  net::Prefix address;                   // host bits kept: "10.0.0.5/32"
  std::optional<net::IpAddress> gateway;
  std::optional<int> interface;          // index into Result::interfaces
};

struct Route {
  net::Prefix dst;
  std::optional<net::IpAddress> gw;
};

struct Dns {
  std::vector<std::string> nameservers;
  std::string domain;
  std::vector<std::string> search;
  std::vector<std::string> options;
  bool operator==(const Dns&) const = default;
};

struct Result {
  std::vector<Interface> interfaces;
  std::vector<IpConfig> ips;
  std::vector<Route> routes;
  Dns dns;
};

// Versions this plugin speaks, oldest first; the last is the one we answer in when free to choose.
const std::vector<std::string>& SupportedVersions();
inline constexpr char kLatestVersion[] = "1.1.0";
bool IsSupportedVersion(std::string_view version);

// The result JSON for cni_version (one of SupportedVersions()). InvalidArgument for another version
// or an interface index out of range (the runtime would reject it anyway).
absl::StatusOr<std::string> FormatResult(const Result& result, std::string_view cni_version);

// {"cniVersion": cni_version, "supportedVersions": [...]}.
std::string FormatVersionInfo(std::string_view cni_version);

// A result as JSON text of any supported version (a prevResult, or a delegated IPAM plugin's stdout).
// Errors are CNI errors (MakeCniError): 6 for malformed JSON, 1 for an unsupported cniVersion,
// 7 for a field of the wrong type or value; messages name the field ("ips[0].address").
// The version inside the JSON wins; expected_version is used when the text carries none (a
// prevResult embedded in a config inherits the config's version).
absl::StatusOr<Result> ParseResult(std::string_view json, std::string_view expected_version);

}  // namespace calico::cni
