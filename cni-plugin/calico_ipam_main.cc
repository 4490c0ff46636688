// calico-ipam: the IPAM plugin (also for other main plugins, e.g. bridge). Addresses come from
// ipamd with their block's prefix length.
#include "cni-plugin/plugin.h"

int main(int, char**, char** envp) {
  return calico::cni::PluginMain(calico::cni::Plugin::kCalicoIpam, envp);
}
