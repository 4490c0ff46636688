#pragma once
// cni-plugin/plugin.h — one invocation of `calico` or `calico-ipam`, from stdin + environment to
// the bytes on stdout and the exit code. Short-lived and stateless: every decision is made by the
// daemons (ipamd allocates, felixd wires); this file sequences the calls and undoes what an ADD
// did when a later step fails, so a failed ADD leaves no address, veth or route behind.

#include <map>
#include <string>

namespace calico::cni {

enum class Plugin { kCalico, kCalicoIpam };

struct Outcome {
  std::string stdout_text;
  int exit_code = 0;
};

// `env` is the process environment; `hostname` is used when no nodename is configured.
Outcome RunPlugin(Plugin plugin, const std::string& stdin_text,
                  const std::map<std::string, std::string>& env);

// main() for both executables.
int PluginMain(Plugin plugin, char** envp);

}  // namespace calico::cni
