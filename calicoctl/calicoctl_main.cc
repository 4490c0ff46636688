// calicoctl: the process plumbing around calicoctl::Run (which the tests drive in-process).
#include <iostream>

#include "calicoctl/cli.h"
#include "common/datastore/config.h"
#include "common/log/log.h"

int main(int argc, char** argv) {
  calico::log::SetComponent("calicoctl");
  // Library logs (e.g. datastore reconnects) would clutter command output; errors still show.
  calico::log::SetLevel(calico::log::Level::kError);
  if (const char* level = std::getenv("CALICOCTL_LOG_LEVEL")) {
    calico::log::Level parsed;
    if (calico::log::ParseLevel(level, &parsed)) calico::log::SetLevel(parsed);
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  calico::calicoctl::Environment env{
      .open = [](const calico::datastore::Config& c) { return calico::datastore::Open(c); },
      .config_from_env = [] { return calico::datastore::ConfigFromEnvironment(); },
  };
  return calico::calicoctl::Run(args, {std::cin, std::cout, std::cerr}, env);
}
