#pragma once
// common/kernel/libnl_netlink.h — the real kernel behind the Netlink seam: one rtnetlink socket
// (libnl-3 / libnl-route-3, no caches) created inside the namespace given at Open, plus that
// namespace's fd for /proc/sys. Every call is one request and its ack or dump (a route via a
// device named only by ifname adds one RTM_GETLINK; ListRoutes adds one link dump for names).
// Owns: the socket and the netns fd. Never: leaves the calling thread in another namespace (a
// failed restore aborts: continuing in an unknown namespace could program the wrong host), or
// keeps kernel state in memory — every answer is read back from the kernel.
// Errors: ErrnoError(<the kernel's errno>, "<RTM_* or operation> <object>") with the same codes
// FakeNetlink uses (tests/support/kernel/netlink_conformance.h holds both to it), and the
// kernel's extended-ack text appended when it sent one.
// Normalisations, shared with FakeNetlink: IPv6 routes have no scope in the kernel and read back
// as kLink when unicast without a gateway, else kUniverse; IPv6 metric 0 reads back as 1024;
// cloned routes and types we cannot express (local, broadcast, multicast, ...) are skipped.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/kernel/netlink.h"

struct nl_sock;
struct nl_cb;
struct nl_msg;

namespace calico::kernel {

class LibnlNetlink : public Netlink {
 public:
  // Opens an rtnetlink socket in `netns` (an fd, which is duplicated, or a path such as
  // /run/netns/x or /proc/<pid>/ns/net; empty: the calling thread's namespace).
  static absl::StatusOr<std::unique_ptr<LibnlNetlink>> Open(const NetnsRef& netns = {});
  ~LibnlNetlink() override;
  LibnlNetlink(const LibnlNetlink&) = delete;
  LibnlNetlink& operator=(const LibnlNetlink&) = delete;

  // Netlink
  absl::StatusOr<std::vector<Link>> ListLinks() override;
  absl::StatusOr<Link> GetLink(std::string_view name) override;
  absl::Status CreateVeth(const VethSpec& spec) override;
  absl::Status CreateIpipTunnel(std::string_view name) override;
  absl::Status CreateVxlan(const VxlanSpec& spec) override;
  absl::Status DeleteLink(std::string_view name) override;
  absl::Status SetLinkUp(std::string_view name, bool up) override;
  absl::Status SetLinkMtu(std::string_view name, int mtu) override;
  absl::Status SetLinkMac(std::string_view name, const MacAddress& mac) override;
  absl::Status SetLinkGroup(std::string_view name, uint32_t group) override;
  absl::StatusOr<std::vector<Address>> ListAddresses(int ifindex) override;
  absl::Status ReplaceAddress(const Address& address) override;
  absl::Status DeleteAddress(const Address& address) override;
  // ListNeighbors and ListFdb are one dump each, plus one link dump for the names when
  // anything was listed; the others one request (and one RTM_GETLINK for a device by name).
  absl::StatusOr<std::vector<Neighbor>> ListNeighbors(int ifindex) override;
  absl::Status ReplaceNeighbor(const Neighbor& neighbor) override;
  absl::Status DeleteNeighbor(const Neighbor& neighbor) override;
  absl::StatusOr<std::vector<FdbEntry>> ListFdb(int ifindex) override;
  absl::Status AppendFdb(const FdbEntry& entry) override;
  absl::Status ReplaceFdb(const FdbEntry& entry) override;
  absl::Status DeleteFdb(const FdbEntry& entry) override;
  absl::StatusOr<std::vector<Route>> ListRoutes(const RouteFilter& filter) override;
  absl::Status ReplaceRoute(const Route& route) override;
  absl::Status DeleteRoute(const RouteKey& key, uint8_t protocol) override;
  // Packed into sendmsg buffers of up to 32 KiB; only the last request of each asks for an ack,
  // the kernel answers the others only when they fail (rtnetlink handles them in order, inside
  // sendmsg). If failures overflow the socket buffer, the requests left unanswered are reported
  // as ENOBUFS: retrying them is safe (replace and delete are idempotent).
  std::vector<absl::Status> ReplaceRoutes(std::span<const Route> routes) override;
  std::vector<absl::Status> DeleteRoutes(std::span<const RouteKey> keys, uint8_t protocol) override;
  absl::StatusOr<std::string> ReadSysctl(std::string_view path) override;
  absl::Status WriteSysctl(std::string_view path, std::string_view value) override;

 private:
  explicit LibnlNetlink(int netns_fd) : netns_fd_(netns_fd) {}  // owns netns_fd (< 0: none)

  struct Outcome;  // the kernel's errno and extended-ack text, or a local failure
  struct Batch;    // requests packed for one sendmsg
  using OnReply = std::function<void(nl_msg*)>;

  // Creates the socket inside the namespace (again, after a local failure broke the last one).
  absl::Status Connect();
  // Sends `msg` (consumed) with NLM_F_ACK and waits for its ack; `on_reply` sees each reply
  // that comes before it (RTM_GETLINK answers with the link).
  Outcome Request(nl_msg* msg, const OnReply& on_reply = nullptr);
  // Sends the dump request `build()` makes and feeds every reply to `on_reply` until
  // NLMSG_DONE. An interrupted dump (NLM_F_DUMP_INTR: the table changed meanwhile) is repeated
  // from the start after `reset()` dropped what the caller collected.
  Outcome Dump(const std::function<nl_msg*()>& build, const OnReply& on_reply,
               const std::function<void()>& reset);
  Outcome Exchange(nl_msg* msg, bool dump, const OnReply& on_reply, bool* interrupted);
  absl::Status ToStatus(const Outcome& outcome, std::string_view context) const;
  // Index of the device called `name` (one RTM_GETLINK); ENODEV when there is none.
  absl::StatusOr<int> ResolveIndex(std::string_view name, std::string_view context);
  // Every link's name by index (one link dump).
  absl::StatusOr<std::map<int, std::string>> LinkNamesByIndex();
  // `ifindex`, or the index of `ifname` when it is 0 (one RTM_GETLINK).
  absl::StatusOr<int> DeviceIndex(int ifindex, std::string_view ifname, std::string_view context);
  // RTM_NEWNEIGH AF_BRIDGE NTF_SELF with `flags` (NLM_F_APPEND or NLM_F_REPLACE, + CREATE).
  absl::Status AddFdb(const FdbEntry& entry, int flags, const std::string& context);
  // RTM_SETLINK by name: flags under `change`, and the MTU / MAC when given.
  absl::Status SetLink(std::string_view name, const std::string& context, unsigned flags,
                       unsigned change, std::optional<uint32_t> mtu, const MacAddress* mac,
                       std::optional<uint32_t> group = std::nullopt);
  // Sends `batch` and records each failure in results[item] with `context(item)`; with
  // `deleting`, "no such route" is success as in DeleteRoute. Empties the batch.
  void FlushBatch(Batch& batch, std::vector<absl::Status>& results,
                  const std::function<std::string(size_t)>& context, bool deleting);
  // Opens /proc/sys/<path> as the namespace sees it (setns there and back unless it is ours).
  absl::StatusOr<int> OpenSysctl(std::string_view path, int flags, const std::string& context);

  int netns_fd_ = -1;
  nl_sock* sock_ = nullptr;
  nl_cb* cb_ = nullptr;
};

}  // namespace calico::kernel
