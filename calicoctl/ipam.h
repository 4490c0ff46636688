#pragma once
// calicoctl ipam: show, check, release, configure — upstream's commands and table shapes.
// Reads and writes IPAM state only through the ipamd allocator library (every block write a
// compare-and-swap, like ipamd's own) and resources only through resources::Client.
// Never frees an address it cannot prove is still the one it judged: `release --from-report`
// quotes each leak candidate's handle and sequence number, so an address re-allocated since
// the report stays allocated.

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "calicoctl/cli.h"
#include "common/datastore/datastore.h"
#include "common/resources/client/client.h"
#include "ipamd/allocator/allocator.h"

namespace calico::calicoctl {

// `calicoctl ipam ...` after generic parsing: positional[0] is the subcommand.
struct IpamArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // --ip, --output, --from-report, ...
  std::set<std::string> flags;                // --show-blocks, --help, ...
};

struct IpamConnection {
  datastore::Datastore* store = nullptr;
  resources::Client* client = nullptr;
};
// Opens the datastore on first use, so --help and argument errors never touch it.
using IpamConnect = std::function<absl::StatusOr<IpamConnection>()>;

// The long options `calicoctl ipam` accepts across its subcommands (each subcommand then
// refuses the ones that are not its own).
struct IpamOption {
  const char* long_name;
  char short_name;
  bool takes_value;
};
const std::vector<IpamOption>& IpamOptions();

// Returns the exit status: 0 ok, 1 failure (one line on io.err).
int RunIpam(const IpamArgs& args, Io io, const IpamConnect& connect);


}  // namespace calico::calicoctl
