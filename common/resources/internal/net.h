#pragma once
// The resources code names IPs as it did before common/net existed; these are the same types.

#include "common/net/ip.h"

namespace calico::resources::internal {

using IpAddr = net::IpAddress;
using Cidr = net::Prefix;
using net::Contains;
using net::FormatCidr;
using net::FormatIp;
using net::Masked;
using net::Overlaps;
using net::ParseCidrOrIp;
using net::ParseIp;

}  // namespace calico::resources::internal
