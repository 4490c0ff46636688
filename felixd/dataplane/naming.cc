#include "felixd/dataplane/naming.h"

#include <openssl/evp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace calico::felixd {
namespace {

std::string Sha1Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string Escape(std::string_view part) {
  return absl::StrReplaceAll(std::string(part), {{"-", "--"}});
}

}  // namespace

std::string HostVethName(std::string_view ns, std::string_view pod) {
  return kHostVethPrefix + (Sha1Hex(std::string(ns) + "." + std::string(pod)).substr(0, 11));
}

std::string HostVethNameForContainer(std::string_view container_id) {
  return kHostVethPrefix + std::string(container_id.substr(0, 11));
}

std::string WorkloadEndpointName(std::string_view node, std::string_view orchestrator,
                                 std::string_view workload, std::string_view endpoint) {
  return absl::StrCat(Escape(node), "-", Escape(orchestrator), "-", Escape(workload), "-",
                      Escape(endpoint));
}

}  // namespace calico::felixd
