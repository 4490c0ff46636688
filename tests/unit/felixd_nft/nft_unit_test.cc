// felixd/nft without a kernel: the element codec, rule rendering and tags, ComputeDelta, the
// table layout, and FakeNftables' kernel behaviour (the integration tests hold MnlNftables to
// the same cases on a real kernel).

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "felixd/nft/delta.h"
#include "felixd/nft/elements.h"
#include "felixd/nft/fake_nftables.h"
#include "felixd/nft/layout.h"

namespace calico::felixd::nft {
namespace {

LayoutOptions Options(Dispatch dispatch, EgressHook egress = EgressHook::kForwardAndInput) {
  LayoutOptions o;
  o.dispatch = dispatch;
  o.egress = egress;
  return o;
}

std::string Canon(KeyType t, bool interval, std::string_view k) {
  auto c = CanonicalKey(t, interval, k);
  REQUIRE(c.ok());
  return *c;
}

TEST_CASE("element keys canonicalise and round-trip through kernel bytes", "[unit][nft]") {
  CHECK(Canon(KeyType::kIpv4, false, "10.65.0.3") == "10.65.0.3");
  CHECK(Canon(KeyType::kIpv6, false, "FD00:0::3") == "fd00::3");
  CHECK(Canon(KeyType::kIfnameIpv4, false, "cali1 . 10.0.0.1") == "cali1 . 10.0.0.1");
  CHECK(Canon(KeyType::kIpv4ProtoPort, false, "10.0.0.1 . 6 . 080") == "10.0.0.1 . 6 . 80");
  CHECK(Canon(KeyType::kIpv4, true, "10.65.1.7/16") == "10.65.0.0/16");
  CHECK(Canon(KeyType::kIpv4, true, "10.65.1.7") == "10.65.1.7");
  CHECK(Canon(KeyType::kPort, true, "80-80") == "80");
  CHECK(!CanonicalKey(KeyType::kIfname, false, "a-name-longer-than-15").ok());
  CHECK(!CanonicalKey(KeyType::kIpv4, false, "fd00::1").ok());
  CHECK(!CanonicalKey(KeyType::kIfnameIpv4, true, "cali1 . 10.0.0.0/8").ok());

  auto bytes = EncodeKey(KeyType::kIpv4ProtoPort, "10.0.0.1 . 6 . 80");
  REQUIRE(bytes.ok());
  CHECK(*bytes == std::string("\x0a\x00\x00\x01\x06\x00\x00\x00\x00\x50\x00\x00", 12));
  CHECK(DecodeKey(KeyType::kIpv4ProtoPort, *bytes) == "10.0.0.1 . 6 . 80");
  CHECK(KeyTypeFromNft(NftKeyType(KeyType::kIfnameIpv6), 32) == KeyType::kIfnameIpv6);
}

TEST_CASE("intervals encode as start and end+1 and join back", "[unit][nft]") {
  auto iv = EncodeInterval(KeyType::kIpv4, "10.0.0.0/8");
  REQUIRE(iv.ok());
  CHECK(iv->start == std::string("\x0a\x00\x00\x00", 4));
  CHECK(iv->end == std::string("\x0b\x00\x00\x00", 4));
  auto top = EncodeInterval(KeyType::kIpv4, "255.0.0.0/8");
  REQUIRE(top.ok());
  CHECK(!top->end.has_value());

  // nft's leading end marker at 0, adjacent intervals, one running to the maximum, a range
  // that is no prefix (a hand edit).
  std::vector<std::pair<std::string, bool>> els = {
      {std::string("\x00\x00\x00\x00", 4), true},  {std::string("\x0a\x00\x00\x00", 4), false},
      {std::string("\x0b\x00\x00\x00", 4), true},  {std::string("\x0b\x00\x00\x00", 4), false},
      {std::string("\x0c\x00\x00\x00", 4), true},  {std::string("\x14\x00\x00\x01", 4), false},
      {std::string("\x14\x00\x00\x04", 4), true},  {std::string("\xff\x00\x00\x00", 4), false},
  };
  CHECK(JoinIntervals(KeyType::kIpv4, els) ==
        std::vector<std::string>{"10.0.0.0/8", "11.0.0.0/8", "20.0.0.1-20.0.0.3", "255.0.0.0/8"});
  CHECK(JoinIntervals(KeyType::kPort, {{"\x1f\x40", false}, {"\x23\x29", true}}) ==
        std::vector<std::string>{"8000-9000"});
}

TEST_CASE("rules render as nft syntax and their tags are stable", "[unit][nft]") {
  Rule r = Rule()
               .Add(AddrSetMatch{4, Dir::kSource, "sel-a", true})
               .Add(L4ProtoMatch{6, false})
               .Add(PortMatch{Dir::kDest, 80, 90, false})
               .Add(MarkSet{kMarkPass, kMarkAccept})
               .Add(Return());
  CHECK(r.ToString() ==
        "ip saddr != @sel-a meta l4proto 6 th dport 80-90 meta mark set meta mark & 0xfffdffff | "
        "0x00010000 return");
  CHECK(RuleTag(r) == RuleTag(r));
  CHECK(RuleTag(r).rfind("cali:", 0) == 0);
  CHECK(RuleTag(r).size() == 21);
  CHECK(RuleTag(r) != RuleTag(Rule().Add(Drop())));
  CHECK(ReferencedSets(Rule().Add(IfnameVmap{true, "m"}).Add(NamedPortSetMatch{4, Dir::kDest, "np", false})) ==
        std::set<std::string>{"m", "np"});
}

TEST_CASE("group chains: tiers, pass, profiles, and sharing between endpoints", "[unit][nft]") {
  EndpointPolicies p{{TierChains{{"po-a", "po-b"}, false}, TierChains{{"po-c"}, true}}, {"pro-x", "pro-y"}};
  Chain c = GroupChain(true, p);
  std::vector<std::string> text;
  for (const Rule& r : c.rules) text.push_back(r.ToString());
  CHECK(text == std::vector<std::string>{
                    "jump po-a",
                    "meta mark & 0x00030000 == 0x00000000 jump po-b",  // skipped after Allow/Pass
                    "meta mark & 0x00010000 == 0x00010000 return",     // the tier allowed
                    "meta mark & 0x00020000 == 0x00000000 drop",       // end of tier
                    "meta mark set meta mark & 0xfffdffff",            // next tier
                    "jump po-c",
                    "meta mark & 0x00010000 == 0x00010000 return",
                    "meta mark set meta mark & 0xfffdffff",  // tier passes: on to profiles
                    "jump pro-x",
                    "meta mark & 0x00010000 == 0x00000000 jump pro-y",  // a Pass goes on
                    "meta mark & 0x00010000 == 0x00000000 drop",        // allowed: return
                });
  CHECK(GroupChain(true, EndpointPolicies{}).rules == std::vector<Rule>{Rule().Add(Drop())});
  CHECK(c.name.rfind("tw-", 0) == 0);

  // A last tier with no Pass rule and no Pass default: profiles unreachable, left out.
  auto texts = [](const EndpointPolicies& e) {
    std::vector<std::string> out;
    for (const Rule& r : GroupChain(true, e).rules) out.push_back(r.ToString());
    return out;
  };
  EndpointPolicies closed{{TierChains{{"po-a", "po-b"}, false, false}}, {"pro-x"}};
  CHECK(texts(closed) == std::vector<std::string>{
                             "jump po-a",
                             "meta mark & 0x00030000 == 0x00000000 jump po-b",
                             "meta mark & 0x00010000 == 0x00000000 drop",  // allowed: falls off, a return
                         });
  EndpointPolicies may_pass = closed;
  may_pass.tiers[0].may_pass = true;
  const std::vector<std::string> open = texts(may_pass);
  CHECK(open.size() == 7);  // ... end of tier, clear Pass, jump pro-x, drop
  CHECK(std::find(open.begin(), open.end(), "jump pro-x") != open.end());
  CHECK(GroupChainName(true, may_pass) != GroupChainName(true, closed));
  // Only the last tier decides: an earlier one that cannot pass still ends in its tier drop.
  EndpointPolicies two{{TierChains{{"po-a"}, false, false}, TierChains{{"po-c"}, true, false}}, {"pro-x"}};
  const std::vector<std::string> tiers2 = texts(two);
  CHECK(tiers2.back() == "meta mark & 0x00010000 == 0x00000000 drop");
  CHECK(std::find(tiers2.begin(), tiers2.end(), "meta mark & 0x00020000 == 0x00000000 drop") != tiers2.end());
  CHECK(std::find(tiers2.begin(), tiers2.end(), "jump pro-x") != tiers2.end());
  CHECK(GroupChainName(false, p).rfind("fw-", 0) == 0);

  DesiredTable t = Skeleton(Options(Dispatch::kByInterface));
  size_t chains = t.chains.size();
  AddEndpoint(t, Endpoint{"cali1", {"10.0.0.1"}, p, p});
  AddEndpoint(t, Endpoint{"cali2", {"10.0.0.2", "fd00::2"}, p, p});
  CHECK(t.chains.size() == chains + 2);  // one group chain per direction, shared
  CHECK(t.sets[kToWepMap].elements.at("cali2") == "goto " + GroupChainName(true, p));
  CHECK(t.sets[kWepSrc6].elements.contains("cali2 . fd00::2"));
  CHECK(t.sets[kWepSrc4].elements.size() == 2);
  CHECK(!t.sets.contains(kToGroupMap));
}

TEST_CASE("egress at prerouting: one base chain jumps from-wep, forward and input do not",
          "[unit][nft]") {
  auto jumps_from_wep = [](const Chain& c) {
    for (const Rule& r : c.rules) {
      if (r.ToString() == "iifname \"cali*\" jump from-wep") return true;
    }
    return false;
  };
  DesiredTable before = Skeleton();
  CHECK(jumps_from_wep(before.chains.at("forward")));
  CHECK(jumps_from_wep(before.chains.at("input")));
  CHECK(!before.chains.contains("prerouting"));
  DesiredTable t = Skeleton(Options(Dispatch::kByInterface, EgressHook::kPrerouting));
  const Chain& pre = t.chains.at("prerouting");
  REQUIRE(pre.base);
  CHECK(pre.base->hook == Hook::kPrerouting);
  CHECK(pre.base->priority == 0);  // after conntrack (-200) and DNAT (-100)
  CHECK(jumps_from_wep(pre));
  CHECK(pre.rules.front().ToString() == "ct state established,related accept");
  CHECK(!jumps_from_wep(t.chains.at("forward")));
  CHECK(!jumps_from_wep(t.chains.at("input")));
  const std::vector<Rule>& in_rules = t.chains.at("input").rules;
  CHECK(in_rules[in_rules.size() - 2].ToString() == "iifname \"cali*\" drop");
  CHECK(in_rules.back().ToString() == "iifname != \"cali*\" jump from-hep");  // host endpoints
  CHECK(ToNftScript(t).find("add chain inet calico prerouting { type filter hook prerouting priority 0; policy accept; }") != std::string::npos);
  FakeNftables kernel;
  REQUIRE(kernel.Apply(ComputeDelta(t, std::nullopt)).ok());
  CHECK(**kernel.Read() == ExpectedState(t));
}

TEST_CASE("dispatch by group: interface to group key, group key to group chain", "[unit][nft]") {
  EndpointPolicies p{{TierChains{{"po-a"}, false}}, {}};
  EndpointPolicies q{{TierChains{{"po-b"}, false}}, {}};
  DesiredTable t = Skeleton(Options(Dispatch::kByGroup));
  REQUIRE(t.sets.at(kFromWepMap).spec.data == KeyType::kIfname);
  CHECK(!t.sets.at(kFromWepMap).spec.verdict_map);
  CHECK(t.sets.at(kFromGroupMap).spec.verdict_map);
  CHECK(t.chains.at("from-wep").rules[5].ToString() == "iifname map @from-wep vmap @from-grp");
  CHECK(t.chains.at("to-wep").rules[1].ToString() == "oifname map @to-wep vmap @to-grp");
  CHECK(ReferencedSets(t.chains.at("to-wep").rules[1]) == std::set<std::string>{"to-wep", "to-grp"});

  std::string key = GroupKey(true, p);
  CHECK(key.size() == 15);
  CHECK(GroupChainName(true, p).substr(3, 15) == key);
  CHECK(GroupKey(true, p) != GroupKey(true, q));
  AddEndpoint(t, Endpoint{"cali1", {"10.0.0.1"}, p, p});
  AddEndpoint(t, Endpoint{"cali2", {"10.0.0.2"}, p, p});
  AddEndpoint(t, Endpoint{"cali3", {"10.0.0.3"}, q, p});
  CHECK(t.sets[kToWepMap].elements == Elements{{"cali1", key}, {"cali2", key}, {"cali3", GroupKey(true, q)}});
  CHECK(t.sets[kToGroupMap].elements ==
        Elements{{key, "goto " + GroupChainName(true, p)},
                 {GroupKey(true, q), "goto " + GroupChainName(true, q)}});
  CHECK(t.sets[kFromGroupMap].elements.size() == 1);
  REQUIRE(Canonicalize(t).ok());
  std::string script = ToNftScript(t);
  CHECK(script.find("add map inet calico to-wep { type ifname : ifname; }") != std::string::npos);
  CHECK(script.find(absl::StrCat("\"cali3\" : \"", GroupKey(true, q), "\"")) != std::string::npos);

  // A pod joining an existing group, or moving between existing groups, is data elements only.
  t.chains["po-a"] = Chain{"po-a", std::nullopt, {Rule().Add(AllowMark()).Add(Return())}};
  t.chains["po-b"] = Chain{"po-b", std::nullopt, {Rule().Add(Drop())}};
  DesiredTable u = t;
  AddEndpoint(u, Endpoint{"cali4", {"10.0.0.4"}, q, p});
  u.sets[kToWepMap].elements["cali1"] = GroupKey(true, q);
  Delta d = ComputeDelta(u, ExpectedState(t));
  CHECK(d.put_chains.empty());
  CHECK(d.add_elements == std::vector<ElementChange>{{kFromWepMap, "cali4", GroupKey(false, p)},
                                                     {kToWepMap, "cali1", GroupKey(true, q)},
                                                     {kToWepMap, "cali4", GroupKey(true, q)},
                                                     {kWepSrc4, "cali4 . 10.0.0.4", ""}});
  CHECK(d.delete_elements == std::vector<ElementChange>{{kToWepMap, "cali1", key}});

  FakeNftables kernel;
  REQUIRE(kernel.Apply(ComputeDelta(t, std::nullopt)).ok());
  REQUIRE(kernel.Apply(d).ok());
  CHECK(**kernel.Read() == ExpectedState(u));
  Delta bad_value;
  bad_value.add_elements.push_back({kFromWepMap, "cali9", "a-name-longer-than-15"});
  CHECK(!kernel.Apply(bad_value).ok());
  // Switching an existing table between layouts is one delta (maps re-made, dispatch refilled).
  DesiredTable old = Skeleton(Options(Dispatch::kByInterface));
  old.chains["po-a"] = t.chains["po-a"];
  old.chains["po-b"] = t.chains["po-b"];
  AddEndpoint(old, Endpoint{"cali1", {"10.0.0.1"}, p, p});
  REQUIRE(Canonicalize(old).ok());
  FakeNftables upgraded;
  REQUIRE(upgraded.Apply(ComputeDelta(old, std::nullopt)).ok());
  REQUIRE(upgraded.Apply(ComputeDelta(t, **upgraded.Read())).ok());
  CHECK(**upgraded.Read() == ExpectedState(t));
}

TEST_CASE("SplitByDirection: egress reachable from prerouting, shared chains and sets in both",
          "[unit][nft]") {
  DesiredTable t = Skeleton(Options(Dispatch::kByGroup, EgressHook::kPrerouting));
  t.sets["sel"] = {SetSpec{"sel", KeyType::kIpv4}, {{"10.0.0.1", ""}}};
  t.sets["sel-out"] = {SetSpec{"sel-out", KeyType::kIpv4}, {{"10.0.0.2", ""}}};
  t.sets["unused"] = {SetSpec{"unused", KeyType::kIpv4}, {}};
  auto allow_from = [](const char* set, Dir dir) {
    return Rule().Add(AddrSetMatch{4, dir, set, false}).Add(AllowMark()).Add(Return());
  };
  t.chains["po-i"] = Chain{"po-i", std::nullopt, {allow_from("sel", Dir::kSource)}};
  t.chains["po-e"] = Chain{"po-e", std::nullopt,
                           {allow_from("sel", Dir::kDest), allow_from("sel-out", Dir::kDest)}};
  t.chains["pro-all"] = Chain{"pro-all", std::nullopt, {Rule().Add(AllowMark()).Add(Return())}};
  t.chains["stray"] = Chain{"stray", std::nullopt, {}};
  // Tiers that may pass, so the profile is reachable from both directions.
  EndpointPolicies in{{TierChains{{"po-i"}, false, true}}, {"pro-all"}};
  EndpointPolicies out{{TierChains{{"po-e"}, false, true}}, {"pro-all"}};
  AddEndpoint(t, Endpoint{"cali1", {"10.0.0.1"}, in, out});
  REQUIRE(Canonicalize(t).ok());

  DirectionSplit s = SplitByDirection(t);
  CHECK(s.egress_chains == std::set<std::string>{"prerouting", "from-wep", GroupChainName(false, out),
                                                 "po-e", "pro-all"});
  // Host endpoint dispatch (input, output, forward, pre-dnat) stays with the ingress side.
  CHECK(s.ingress_chains == std::set<std::string>{"forward", "input", "output", "to-wep",
                                                  GroupChainName(true, in), "po-i", "pro-all",
                                                  "stray", "from-hep", "to-hep", "from-hep-fwd",
                                                  "to-hep-fwd", "failsafe-in", "failsafe-out",
                                                  kHepAnyIn, kHepAnyOut, kHepAnyFwdIn, kHepAnyFwdOut,
                                                  kHepAnyPreDnat, kPreDnatChain, kRawPreroutingChain,
                                                  kRawOutputChain});
  CHECK(s.egress_sets == std::set<std::string>{kFromWepMap, kFromGroupMap, kWepSrc4, kWepSrc6,
                                               "sel", "sel-out"});
  CHECK(s.ingress_sets == std::set<std::string>{kToWepMap, kToGroupMap, "sel", "unused", kHepInMap,
                                                kHepOutMap, kHepFwdInMap, kHepFwdOutMap, kHepNodes4, kHepNodes6,
                                                kHepPreDnatMap, kHepUntrackedInMap, kHepUntrackedOutMap});
  CHECK(s.egress.sets.at("sel") == t.sets.at("sel"));
  CHECK(s.ingress.sets.at("sel") == t.sets.at("sel"));
  // Each part is a whole table: every reference resolves.
  for (const DesiredTable* part : {&s.egress, &s.ingress}) {
    FakeNftables kernel;
    REQUIRE(kernel.Apply(ComputeDelta(*part, std::nullopt)).ok());
    CHECK(**kernel.Read() == ExpectedState(*part));
  }
}

DesiredTable Sample() {
  DesiredTable t = Skeleton();
  t.sets["sel"] = {SetSpec{"sel", KeyType::kIpv4, false, false}, {{"10.0.0.1", ""}}};
  t.sets["net"] = {SetSpec{"net", KeyType::kIpv4, true, false}, {{"10.1.0.0/16", ""}}};
  t.chains["po-a"] = Chain{"po-a", std::nullopt,
                           {Rule().Add(AddrSetMatch{4, Dir::kSource, "sel", false}).Add(AllowMark()).Add(Return()),
                            Rule().Add(AddrSetMatch{4, Dir::kSource, "net", false}).Add(Drop())}};
  EndpointPolicies p{{TierChains{{"po-a"}, false}}, {}};
  AddEndpoint(t, Endpoint{"cali1", {"10.0.0.1"}, p, p});
  REQUIRE(Canonicalize(t).ok());
  return t;
}

TEST_CASE("ComputeDelta: from nothing, nothing to do, and element-level changes", "[unit][nft]") {
  DesiredTable t = Sample();
  Delta full = ComputeDelta(t, std::nullopt);
  CHECK(full.add_table);
  CHECK(full.add_sets.size() == t.sets.size());
  CHECK(full.put_chains.size() == t.chains.size());
  CHECK(ComputeDelta(t, ExpectedState(t)).empty());

  DesiredTable u = t;
  u.sets["sel"].elements["10.0.0.2"] = "";
  u.sets["net"].elements.erase("10.1.0.0/16");
  u.sets[kToWepMap].elements["cali1"] = "drop";
  Delta d = ComputeDelta(u, ExpectedState(t));
  CHECK(!d.add_table);
  CHECK(d.put_chains.empty());
  CHECK(d.add_elements == std::vector<ElementChange>{{"sel", "10.0.0.2", ""}, {kToWepMap, "cali1", "drop"}});
  CHECK(d.delete_elements.size() == 2);  // net's prefix, and the map entry's old verdict

  u = t;
  u.sets["net"].spec.interval = false;
  u.sets["net"].elements = {{"10.1.0.1", ""}};
  d = ComputeDelta(u, ExpectedState(t));
  CHECK(d.delete_sets == std::vector<std::string>{"net"});
  CHECK(d.add_sets.size() == 1);
  REQUIRE(d.put_chains.size() == 1);  // po-a uses net
  CHECK(d.put_chains[0].name == "po-a");
}

TEST_CASE("FakeNftables applies a delta whole or not at all", "[unit][nft]") {
  FakeNftables kernel;
  DesiredTable t = Sample();
  REQUIRE(kernel.Apply(ComputeDelta(t, std::nullopt)).ok());
  auto state = kernel.Read();
  REQUIRE(state.ok());
  REQUIRE(state->has_value());
  CHECK(**state == ExpectedState(t));

  Delta bad;
  bad.add_elements.push_back({"sel", "10.0.0.9", ""});
  bad.delete_elements.push_back({"sel", "10.0.0.77", ""});  // not there
  absl::Status s = kernel.Apply(bad);
  CHECK(absl::IsNotFound(s));
  CHECK(kernel.ElementsOf("sel")->size() == 1);

  Delta busy;
  busy.delete_chains.push_back("po-a");  // group chains still jump to it
  CHECK(absl::IsUnavailable(kernel.Apply(busy)));
  Delta in_use;
  in_use.delete_sets.push_back("sel");
  CHECK(absl::IsUnavailable(kernel.Apply(in_use)));
  Delta missing_target;
  missing_target.put_chains.push_back(Chain{"po-a", std::nullopt, {Rule().Add(Jump("nope"))}});
  CHECK(absl::IsNotFound(kernel.Apply(missing_target)));
  Delta overlap;
  overlap.add_elements.push_back({"net", "10.1.2.0/24", ""});
  CHECK(absl::IsAlreadyExists(kernel.Apply(overlap)));
  Delta to_base;
  to_base.add_elements.push_back({kFromWepMap, "cali9", "goto forward"});
  CHECK(!kernel.Apply(to_base).ok());

  kernel.FailNextApply(ENOBUFS);
  Delta ok;
  ok.add_elements.push_back({"sel", "10.0.0.9", ""});
  CHECK(absl::IsUnavailable(kernel.Apply(ok)));
  CHECK(kernel.Apply(ok).ok());
  CHECK(kernel.ElementsOf("sel")->contains("10.0.0.9"));
}

TEST_CASE("FakeNftables: drift is restored and a restart adopts with no writes", "[unit][nft]") {
  FakeNftables kernel;
  DesiredTable t = Sample();
  REQUIRE(kernel.Apply(ComputeDelta(t, std::nullopt)).ok());
  size_t written = kernel.objects_written();

  // A restarted writer: read, diff, nothing to do.
  auto state = kernel.Read();
  REQUIRE(state.ok());
  Delta d = ComputeDelta(t, *state);
  CHECK(d.empty());
  REQUIRE(kernel.Apply(d).ok());
  CHECK(kernel.objects_written() == written);

  // Someone flushes a chain, deletes an element and inserts a rule of their own.
  kernel.FlushChainByHand("po-a");
  kernel.DeleteElementByHand("sel", "10.0.0.1");
  kernel.AddRuleByHand("forward", Rule().Add(Accept()));
  state = kernel.Read();
  REQUIRE(state.ok());
  d = ComputeDelta(t, *state);
  CHECK(d.put_chains.size() == 2);
  CHECK(d.add_elements == std::vector<ElementChange>{{"sel", "10.0.0.1", ""}});
  REQUIRE(kernel.Apply(d).ok());
  state = kernel.Read();
  REQUIRE(state.ok());
  CHECK(**state == ExpectedState(t));

  kernel.DeleteTableByHand();
  state = kernel.Read();
  REQUIRE(state.ok());
  CHECK(!state->has_value());
  REQUIRE(kernel.Apply(ComputeDelta(t, *state)).ok());
  CHECK(kernel.HasTable());
  kernel.FailNextRead(EINTR);
  CHECK(!kernel.Read().ok());
}

TEST_CASE("NAT outgoing: sets, the nat chain and its rules", "[unit][nft]") {
  CHECK(Rule().Add(Masquerade{}).ToString() == "masquerade");
  DesiredTable t;
  AddNatOutgoing(t, NatOutgoing{{"10.231.0.0/24"}, {"fd00:231::/64"},
                                {"10.231.0.0/24", "10.232.0.0/24"}, {"fd00:231::/64"}});
  REQUIRE(Canonicalize(t).ok());
  const Chain& nat = t.chains.at(kNatChain);
  REQUIRE(nat.base.has_value());
  CHECK(*nat.base == BaseChain{Hook::kPostrouting, 100, true, ChainType::kNat});
  REQUIRE(nat.rules.size() == 2);
  CHECK(nat.rules[0].ToString() == "ip saddr @nat-pools4 ip daddr != @all-pools4 masquerade");
  CHECK(nat.rules[1].ToString() ==
        "ip6 saddr @nat-pools6 ip6 daddr != @all-pools6 masquerade");
  CHECK(t.sets.at(kNatPools4).spec == SetSpec{kNatPools4, KeyType::kIpv4, true});
  CHECK(t.sets.at(kAllPools6).spec == SetSpec{kAllPools6, KeyType::kIpv6, true});
  CHECK(t.sets.at(kAllPools4).elements == Elements{{"10.231.0.0/24", ""}, {"10.232.0.0/24", ""}});
  std::string script = ToNftScript(t);
  CHECK(script.find("add chain inet calico nat-postrouting { type nat hook postrouting priority "
                    "100; policy accept; }") != std::string::npos);

  // Empty pool lists still make the sets and the chain, so later pool changes touch elements.
  DesiredTable empty;
  AddNatOutgoing(empty, NatOutgoing{});
  CHECK(empty.sets.size() == 4);
  CHECK(empty.sets.at(kNatPools4).elements.empty());
  CHECK(empty.chains.at(kNatChain).rules.size() == 2);

  // A pool inside another is dropped (overlapping intervals fail in the kernel); an equal one
  // is one element; a bad CIDR is left for Canonicalize to report.
  DesiredTable nested;
  AddNatOutgoing(nested, NatOutgoing{{"10.0.0.0/8", "10.1.0.0/16", "10.0.0.0/8", "11.0.0.0/24"},
                                     {},
                                     {"10.1.2.0/24", "10.1.0.0/16"},
                                     {"fd00::/48", "fd00:0:0:1::/64"}});
  CHECK(nested.sets.at(kNatPools4).elements ==
        Elements{{"10.0.0.0/8", ""}, {"11.0.0.0/24", ""}});
  CHECK(nested.sets.at(kAllPools4).elements == Elements{{"10.1.0.0/16", ""}});
  CHECK(nested.sets.at(kAllPools6).elements == Elements{{"fd00::/48", ""}});
  DesiredTable bad;
  AddNatOutgoing(bad, NatOutgoing{{"10.0.0.0/33"}, {}, {}, {}});
  CHECK(!Canonicalize(bad).ok());

  // FakeNftables takes it, next to the skeleton.
  FakeNftables kernel;
  DesiredTable full = Skeleton();
  AddNatOutgoing(full, NatOutgoing{{"10.231.0.0/24"}, {}, {"10.231.0.0/24", "10.232.0.0/24"}, {}});
  REQUIRE(Canonicalize(full).ok());
  REQUIRE(kernel.Apply(ComputeDelta(full, std::nullopt)).ok());
  auto state = kernel.Read();
  REQUIRE(state.ok());
  REQUIRE(state->has_value());
  CHECK(**state == ExpectedState(full));
  CHECK(kernel.RulesOf(kNatChain)->size() == 2);

  // A pool change (a new natOutgoing pool, one pool gone) is elements only.
  DesiredTable next = Skeleton();
  AddNatOutgoing(next, NatOutgoing{{"10.231.0.0/24", "10.233.0.0/24"},
                                   {"fd00:233::/64"},
                                   {"10.231.0.0/24", "10.233.0.0/24"},
                                   {"fd00:233::/64"}});
  REQUIRE(Canonicalize(next).ok());
  Delta d = ComputeDelta(next, **state);
  CHECK(d.put_chains.empty());
  CHECK(d.add_sets.empty());
  CHECK(d.delete_sets.empty());
  CHECK(d.add_elements == std::vector<ElementChange>{{kAllPools4, "10.233.0.0/24", ""},
                                                     {kAllPools6, "fd00:233::/64", ""},
                                                     {kNatPools4, "10.233.0.0/24", ""},
                                                     {kNatPools6, "fd00:233::/64", ""}});
  CHECK(d.delete_elements == std::vector<ElementChange>{{kAllPools4, "10.232.0.0/24", ""}});
  REQUIRE(kernel.Apply(d).ok());
  CHECK(ComputeDelta(next, *kernel.Read().value()).empty());

  // The kernel's rules for masquerade and chain types.
  Delta masq_in_filter;
  masq_in_filter.put_chains.push_back(Chain{"forward", BaseChain{Hook::kForward, 0, true},
                                            {Rule().Add(Masquerade{})}});
  CHECK(!kernel.Apply(masq_in_filter).ok());
  Delta retype;
  retype.put_chains.push_back(Chain{kNatChain, BaseChain{Hook::kPostrouting, 100, true}, {}});
  CHECK(!kernel.Apply(retype).ok());
}

}  // namespace
}  // namespace calico::felixd::nft
