// calico: the CNI plugin. Spec: stdin network config + CNI_* environment; result or error JSON
// on stdout; logs to stderr (or log_file_path), never stdout.
#include "cni-plugin/plugin.h"

int main(int, char**, char** envp) { return calico::cni::PluginMain(calico::cni::Plugin::kCalico, envp); }
