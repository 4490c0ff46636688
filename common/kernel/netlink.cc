#include "common/kernel/netlink.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace calico::kernel {
namespace {

// The Route factories take literals; an unparsable one is a bug in the caller, not input.
net::Prefix MustParsePrefix(std::string_view text) {
  std::optional<net::Prefix> prefix = net::ParseCidrOrIp(text);
  if (!prefix) {
    std::fprintf(stderr, "calico::kernel: bad prefix literal \"%.*s\"\n",
                 static_cast<int>(text.size()), text.data());
    std::abort();
  }
  return *prefix;
}

net::IpAddress MustParseIp(std::string_view text) {
  std::optional<net::IpAddress> ip = net::ParseIp(text);
  if (!ip) {
    std::fprintf(stderr, "calico::kernel: bad address literal \"%.*s\"\n",
                 static_cast<int>(text.size()), text.data());
    std::abort();
  }
  return *ip;
}

std::string HopToString(const NextHop& hop) {
  std::string out;
  if (hop.gateway) absl::StrAppend(&out, " via ", net::FormatIp(*hop.gateway));
  if (!hop.ifname.empty()) {
    absl::StrAppend(&out, " dev ", hop.ifname);
  } else if (hop.ifindex != 0) {
    absl::StrAppend(&out, " dev #", hop.ifindex);
  }
  if (hop.onlink) absl::StrAppend(&out, " onlink");
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string Neighbor::ToString() const {
  return absl::StrCat(net::FormatIp(ip), " lladdr ", FormatMac(mac), " dev ",
                      ifname.empty() ? absl::StrCat("#", ifindex) : ifname,
                      permanent ? "" : " nud reachable");
}

std::string FdbEntry::ToString() const {
  return absl::StrCat(FormatMac(mac), " dev ", ifname.empty() ? absl::StrCat("#", ifindex) : ifname,
                      dst ? absl::StrCat(" dst ", net::FormatIp(*dst)) : "");
}

std::string FormatMac(const MacAddress& mac) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                         mac[5]);
}

std::optional<MacAddress> ParseMac(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  MacAddress mac{};
  for (size_t i = 0; i < 6; ++i) {
    int hi = HexDigit(text[i * 3]);
    int lo = HexDigit(text[i * 3 + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (i < 5 && text[i * 3 + 2] != ':') return std::nullopt;
    mac[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return mac;
}

std::string_view LinkKindName(LinkKind kind) {
  switch (kind) {
    case LinkKind::kLoopback:
      return "loopback";
    case LinkKind::kVeth:
      return "veth";
    case LinkKind::kVxlan:
      return "vxlan";
    case LinkKind::kBridge:
      return "bridge";
    case LinkKind::kTun:
      return "tun";
    case LinkKind::kIpip:
      return "ipip";
    case LinkKind::kOther:
      break;
  }
  return "other";
}

std::string RouteKey::ToString() const {
  std::string out = absl::StrCat(net::FormatCidr(dst), " table ", table);
  if (priority != 0) absl::StrAppend(&out, " metric ", priority);
  return out;
}

RouteKey Route::Key() const {
  RouteKey key{.table = table, .dst = dst, .priority = priority};
  if (dst.addr.family == 6 && priority == 0) key.priority = kIpv6DefaultMetric;
  return key;
}

std::string Route::ToString() const {
  std::string out;
  switch (type) {
    case RouteType::kBlackhole:
      out = "blackhole ";
      break;
    case RouteType::kUnreachable:
      out = "unreachable ";
      break;
    case RouteType::kProhibit:
      out = "prohibit ";
      break;
    case RouteType::kUnicast:
      break;
  }
  absl::StrAppend(&out, net::FormatCidr(dst), HopToString(hop));
  for (const NextHop& h : multipath) absl::StrAppend(&out, " nexthop", HopToString(h));
  if (scope == RouteScope::kLink) absl::StrAppend(&out, " scope link");
  if (scope == RouteScope::kHost) absl::StrAppend(&out, " scope host");
  absl::StrAppend(&out, " proto ", protocol, " table ", table);
  if (priority != 0) absl::StrAppend(&out, " metric ", priority);
  return out;
}

Route Route::Local(std::string_view dst, std::string_view ifname) {
  Route route;
  route.dst = MustParsePrefix(dst);
  route.scope = RouteScope::kLink;
  route.hop.ifname = std::string(ifname);
  return route;
}

Route Route::Blackhole(std::string_view dst) {
  Route route;
  route.dst = MustParsePrefix(dst);
  route.type = RouteType::kBlackhole;
  return route;
}

Route Route::Via(std::string_view dst, std::string_view gateway, std::string_view ifname,
                 bool onlink) {
  Route route;
  route.dst = MustParsePrefix(dst);
  route.hop.ifname = std::string(ifname);
  route.hop.gateway = MustParseIp(gateway);
  route.hop.onlink = onlink;
  return route;
}

std::vector<absl::Status> Netlink::ReplaceRoutes(std::span<const Route> routes) {
  std::vector<absl::Status> results;
  results.reserve(routes.size());
  for (const Route& route : routes) results.push_back(ReplaceRoute(route));
  return results;
}

std::vector<absl::Status> Netlink::DeleteRoutes(std::span<const RouteKey> keys, uint8_t protocol) {
  std::vector<absl::Status> results;
  results.reserve(keys.size());
  for (const RouteKey& key : keys) results.push_back(DeleteRoute(key, protocol));
  return results;
}

}  // namespace calico::kernel
