#pragma once
// calicoctl: reads and writes projectcalico.org/v3 resources in the datastore.
// Owns nothing: every change goes through resources::Client, which validates first.
// Run() is the whole program minus process plumbing, so tests drive it in-process.

#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/datastore/config.h"
#include "common/datastore/datastore.h"

namespace calico::calicoctl {

struct Io {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

using DatastoreOpener =
    std::function<absl::StatusOr<std::unique_ptr<datastore::Datastore>>(const datastore::Config&)>;

struct Environment {
  DatastoreOpener open;  // datastore::Open in the binary
  // How to read the configuration when -c is not given (ConfigFromEnvironment in the binary).
  std::function<absl::StatusOr<datastore::Config>()> config_from_env;
};

// args excludes argv[0]. Returns the exit status: 0 ok, 1 failure.
int Run(const std::vector<std::string>& args, Io io, const Environment& env);

}  // namespace calico::calicoctl
