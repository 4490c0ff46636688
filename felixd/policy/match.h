#pragma once
// The matcher shared by Explain and the selection index: which entities a selector selects,
// which packets a rule matches.

#include <optional>
#include <string>
#include <vector>

#include "felixd/policy/model.h"

namespace calico::felixd::policy {

// What selectors see of a workload endpoint or a network set.
struct EntityView {
  const Endpoint* endpoint = nullptr;       // exactly one of these two is set
  const NetworkSet* network_set = nullptr;
  std::string ns;                           // empty: not namespaced (GlobalNetworkSet)
  Labels labels;                            // effective labels (endpoints: with profiles')
  Labels namespace_labels;                  // when namespaced
  std::optional<Labels> sa_labels;          // endpoints with a service account
  std::string Id() const;                   // "ns/name" or "name"
};

EntityView ViewOf(const Model& model, const Endpoint& endpoint);
EntityView ViewOf(const Model& model, const NetworkSet& set);
// Every endpoint and network set an address belongs to.
std::vector<EntityView> EntitiesAt(const Model& model, const net::IpAddress& ip);

bool Matches(const EntitySelector& selector, const EntityView& entity);
// Which addresses an entity contributes to an IP set: endpoint addresses or network set nets.
const std::vector<net::Prefix>& AddressesOf(const EntityView& entity);

// The port numbers a named port has on an endpoint for a protocol (usually one).
std::vector<int> ResolveNamedPort(const Endpoint& endpoint, const std::string& name, int protocol);

struct Packet {
  net::IpAddress src;
  net::IpAddress dst;
  int protocol = kProtoTcp;
  int src_port = 0;
  int dst_port = 0;
  std::optional<int> icmp_type;  // ICMP/ICMPv6 packets
  std::optional<int> icmp_code;
  std::string ToString() const;  // "TCP 10.0.0.1:1234 -> 10.0.0.2:80"
};

// A packet with the entities at either end resolved once.
struct PacketContext {
  Packet packet;
  std::vector<EntityView> src_entities;
  std::vector<EntityView> dst_entities;
  const Endpoint* src_endpoint = nullptr;  // workload endpoints
  const Endpoint* dst_endpoint = nullptr;
  const Endpoint* src_host = nullptr;  // host endpoints listing the address in expectedIPs
  const Endpoint* dst_host = nullptr;
};
PacketContext ContextFor(const Model& model, const Packet& packet);

// Whether every criterion of the rule holds for the packet (the action is not looked at).
bool RuleMatches(const Rule& rule, const PacketContext& ctx);

}  // namespace calico::felixd::policy
