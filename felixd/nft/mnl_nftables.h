#pragma once
// felixd/nft/mnl_nftables.h — the real kernel behind the Nftables seam: one NETLINK_NETFILTER
// socket (libmnl) opened inside the namespace given at Open; every Apply is one batch
// (NFNL_MSG_BATCH_BEGIN, the delta's messages built with libnftnl, END) in one sendmsg, with
// only the last message asking for an ack (the kernel answers failures anyway); rules are
// compiled from our Rule values straight to nf_tables expressions.
// Why not libnftables: measured here at 10k endpoints / 1k policies, a long-lived libnftables
// context spends 12-17 ms per chain change and ~50 ms per element change re-reading its cache
// (every set of every table) after each commit; this path sends only the delta (README).
// Owns: the socket, and a cache of set specs learnt from Apply and Read (an element change
// needs its set's key type; an unknown set costs one NFT_MSG_GETSET).
// Never: leaves the calling thread in another namespace (a failed restore aborts).

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "felixd/nft/nftables.h"

struct mnl_socket;
struct nlmsghdr;

namespace calico::felixd::nft {

class MnlNftables : public Nftables {
 public:
  // `netns_path`: /run/netns/x or /proc/<pid>/ns/net; empty: the calling thread's namespace.
  // `table`: the inet table this writer owns (felixd's is kTableName; others for experiments
  // such as splitting the policy across tables, tests/bench/nft).
  static absl::StatusOr<std::unique_ptr<MnlNftables>> Open(const std::string& netns_path = "",
                                                           const std::string& table = kTableName);
  ~MnlNftables() override;
  MnlNftables(const MnlNftables&) = delete;
  MnlNftables& operator=(const MnlNftables&) = delete;

  // Nftables
  absl::Status Apply(const Delta& delta) override;
  absl::StatusOr<std::optional<TableState>> Read() override;

  // Bytes of the last batch sent (benchmark and logs).
  size_t last_batch_bytes() const { return last_batch_bytes_; }

 private:
  MnlNftables(mnl_socket* sock, std::string table);
  absl::StatusOr<SetSpec> SpecOf(const std::string& set);
  // Sends a request and feeds every answer to `on_msg` until the dump ends or the ack comes.
  absl::Status Talk(const char* request, size_t len, uint32_t seq, std::string_view what,
                    std::function<int(const nlmsghdr*)> on_msg);

  std::string table_;
  mnl_socket* sock_;
  uint32_t portid_;
  uint32_t seq_;
  std::map<std::string, SetSpec> specs_;
  size_t last_batch_bytes_ = 0;
};

}  // namespace calico::felixd::nft
