#pragma once
// A node's kernel for felixd unit tests: the host namespace and workload namespaces as
// FakeNetlinks, joined the way veths join real ones — creating a veth whose peer goes to a
// namespace puts the peer there, deleting either side removes both.

#include <map>
#include <memory>
#include <string>

#include "common/kernel/fake_netlink.h"
#include "felixd/dataplane/plumber.h"

namespace calico::felixd::testing {

class FakeKernel;

// Forwards to one FakeNetlink; the host's copy also wires veth peers into other namespaces.
class NamespaceHandle : public kernel::Netlink {
 public:
  NamespaceHandle(FakeKernel& kernel, kernel::FakeNetlink& ns) : kernel_(kernel), ns_(ns) {}
  absl::StatusOr<std::vector<kernel::Link>> ListLinks() override { return ns_.ListLinks(); }
  absl::StatusOr<kernel::Link> GetLink(std::string_view n) override { return ns_.GetLink(n); }
  absl::Status CreateVeth(const kernel::VethSpec& spec) override;
  absl::Status CreateIpipTunnel(std::string_view name) override { return ns_.CreateIpipTunnel(name); }
  absl::Status CreateVxlan(const kernel::VxlanSpec& spec) override { return ns_.CreateVxlan(spec); }
  absl::Status DeleteLink(std::string_view name) override;
  absl::Status SetLinkUp(std::string_view n, bool up) override { return ns_.SetLinkUp(n, up); }
  absl::Status SetLinkMtu(std::string_view n, int mtu) override { return ns_.SetLinkMtu(n, mtu); }
  absl::Status SetLinkMac(std::string_view n, const kernel::MacAddress& m) override {
    return ns_.SetLinkMac(n, m);
  }
  absl::Status SetLinkGroup(std::string_view n, uint32_t g) override { return ns_.SetLinkGroup(n, g); }
  absl::StatusOr<std::vector<kernel::Address>> ListAddresses(int i) override {
    return ns_.ListAddresses(i);
  }
  absl::Status ReplaceAddress(const kernel::Address& a) override { return ns_.ReplaceAddress(a); }
  absl::Status DeleteAddress(const kernel::Address& a) override { return ns_.DeleteAddress(a); }
  absl::StatusOr<std::vector<kernel::Neighbor>> ListNeighbors(int i) override {
    return ns_.ListNeighbors(i);
  }
  absl::Status ReplaceNeighbor(const kernel::Neighbor& n) override { return ns_.ReplaceNeighbor(n); }
  absl::Status DeleteNeighbor(const kernel::Neighbor& n) override { return ns_.DeleteNeighbor(n); }
  absl::StatusOr<std::vector<kernel::FdbEntry>> ListFdb(int i) override { return ns_.ListFdb(i); }
  absl::Status AppendFdb(const kernel::FdbEntry& f) override { return ns_.AppendFdb(f); }
  absl::Status ReplaceFdb(const kernel::FdbEntry& f) override { return ns_.ReplaceFdb(f); }
  absl::Status DeleteFdb(const kernel::FdbEntry& f) override { return ns_.DeleteFdb(f); }
  absl::StatusOr<std::vector<kernel::Route>> ListRoutes(const kernel::RouteFilter& f) override {
    return ns_.ListRoutes(f);
  }
  absl::Status ReplaceRoute(const kernel::Route& r) override { return ns_.ReplaceRoute(r); }
  absl::Status DeleteRoute(const kernel::RouteKey& k, uint8_t p) override {
    return ns_.DeleteRoute(k, p);
  }
  absl::StatusOr<std::string> ReadSysctl(std::string_view p) override { return ns_.ReadSysctl(p); }
  absl::Status WriteSysctl(std::string_view p, std::string_view v) override {
    return ns_.WriteSysctl(p, v);
  }

 private:
  FakeKernel& kernel_;
  kernel::FakeNetlink& ns_;
};

class FakeKernel {
 public:
  kernel::FakeNetlink host;

  // A workload namespace at `path` (like `ip netns add`), with its "lo".
  kernel::FakeNetlink& AddNetns(const std::string& path) {
    auto& ns = netns_[path];
    ns = std::make_unique<kernel::FakeNetlink>();
    return *ns;
  }
  void RemoveNetns(const std::string& path) {
    // Like the kernel: the namespace's veth ends die, taking their host peers with them.
    auto it = netns_.find(path);
    if (it == netns_.end()) return;
    for (const kernel::Link& l : host.Links()) {
      if (l.kind == kernel::LinkKind::kVeth && l.peer_netns.path == path) (void)host.DeleteLink(l.name);
    }
    netns_.erase(it);
  }
  kernel::FakeNetlink* Netns(const std::string& path) {
    auto it = netns_.find(path);
    return it == netns_.end() ? nullptr : it->second.get();
  }
  NetlinkOpener Opener() {
    return [this](const kernel::NetnsRef& ref) -> absl::StatusOr<std::unique_ptr<kernel::Netlink>> {
      if (ref.IsSelf()) return std::unique_ptr<kernel::Netlink>(new NamespaceHandle(*this, host));
      kernel::FakeNetlink* ns = Netns(ref.path);
      if (ns == nullptr) return absl::NotFoundError("open " + ref.path + ": No such file or directory");
      return std::unique_ptr<kernel::Netlink>(new NamespaceHandle(*this, *ns));
    };
  }
  NamespaceHandle HostHandle() { return NamespaceHandle(*this, host); }

 private:
  std::map<std::string, std::unique_ptr<kernel::FakeNetlink>> netns_;
};

inline absl::Status NamespaceHandle::CreateVeth(const kernel::VethSpec& spec) {
  kernel::FakeNetlink* peer_ns = spec.peer_netns.IsSelf() ? nullptr : kernel_.Netns(spec.peer_netns.path);
  if (!spec.peer_netns.IsSelf() && peer_ns == nullptr) {
    return absl::NotFoundError("netns " + spec.peer_netns.path + " does not exist");
  }
  if (peer_ns != nullptr && peer_ns->GetLink(spec.peer_name).ok()) {
    return absl::AlreadyExistsError("RTM_NEWLINK " + spec.peer_name + ": File exists");
  }
  absl::Status s = ns_.CreateVeth(spec);
  if (!s.ok() || peer_ns == nullptr) return s;
  kernel::Link peer;
  peer.name = spec.peer_name;
  peer.kind = kernel::LinkKind::kVeth;
  peer.mtu = spec.mtu != 0 ? spec.mtu : 1500;
  peer.mac = kernel::MacAddress{0x0a, 0x58, 0, 0, 0, static_cast<uint8_t>(peer_ns->Links().size())};
  peer.peer_name = spec.name;
  peer_ns->AddLinkByHand(peer);
  return s;
}

inline absl::Status NamespaceHandle::DeleteLink(std::string_view name) {
  absl::StatusOr<kernel::Link> link = ns_.GetLink(name);
  absl::Status s = ns_.DeleteLink(name);
  if (s.ok() && link.ok() && !link->peer_netns.IsSelf()) {
    if (kernel::FakeNetlink* peer_ns = kernel_.Netns(link->peer_netns.path)) {
      (void)peer_ns->DeleteLink(link->peer_name);
    }
  }
  return s;
}

}  // namespace calico::felixd::testing
