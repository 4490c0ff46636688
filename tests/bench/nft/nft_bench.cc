// tests/bench/nft: felixd's nftables writer at 10,000 endpoints and 1,000 policies (issue 6).
// Builds the table of felixd/nft/layout.h (1,000 policies x 2 directions, a selector set and a
// net set per policy, endpoints in groups sharing chains), then measures, each in a namespace of
// its own (root):
//   - full load through MnlNftables (one batch) and `nft -f` of the same table (the reference);
//   - p50/p99 of single changes through MnlNftables: a pod joining a selector's set, a label
//     change (one set out, one set in), a new pod (maps, anti-spoofing, a selector), one policy
//     chain replaced, and a new policy (its set, its chain, a group chain refilled);
//   - the same single element change through a long-lived libnftables context, for the choice;
//   - a full Read and ComputeDelta (the drift refresh).
// Every layout option (layout.h), each in fresh namespaces: Dispatch kByInterface (interface →
// group chain, the default) or kByGroup (interface → group key → group chain), egress policy
// from forward+input (the default) or from prerouting, and kByGroup + prerouting with egress in
// a table of its own (calico-egress: the kernel then validates only the table a change touched;
// two writers, two transactions per change); `nft -f` loads the default table (nft 1.0 cannot parse kByGroup's chained lookup; the tables hold the same
// policies, sets and chains).
// Prints ratios against the targets: p99 <= 5 ms and <= 0.01x the full rebuild.
// NFT_BENCH_ENDPOINTS=<n> changes the endpoint count (the kernel's validation of the jump graph
// after a chain or verdict-map change grows with the group chains reachable from the maps);
// NFT_BENCH_GROUPS (500), NFT_BENCH_ITERATIONS (200), NFT_BENCH_EXTRA_RULES (rules added to every
// policy chain, 0), NFT_BENCH_DISPATCH=group|interface and NFT_BENCH_EGRESS=forward|prerouting
// (those layouts only) are for experiments.

#include <fcntl.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"
#include "felixd/nft/delta.h"
#include "felixd/nft/layout.h"
#include "felixd/nft/mnl_nftables.h"
#include "tests/support/netns/test_netns.h"

namespace calico::felixd::nft {
namespace {

using Clock = std::chrono::steady_clock;
using ::calico::testing::TestNetns;

const int kEndpoints = getenv("NFT_BENCH_ENDPOINTS") ? atoi(getenv("NFT_BENCH_ENDPOINTS")) : 10000;
constexpr int kPolicies = 1000;
const int kGroups = getenv("NFT_BENCH_GROUPS") ? atoi(getenv("NFT_BENCH_GROUPS")) : 500;
constexpr int kMembers = 20;
const int kIterations = getenv("NFT_BENCH_ITERATIONS") ? atoi(getenv("NFT_BENCH_ITERATIONS")) : 200;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string Ip(int i) {
  return absl::StrFormat("10.%d.%d.%d", 64 + (i >> 16), (i >> 8) & 255, i & 255);
}
std::string Ifname(int e) { return absl::StrFormat("cali%011d", e); }
std::string Sel(int p) { return absl::StrCat("sel-", p); }
std::string Net(int p) { return absl::StrCat("net-", p); }
std::string PolicyChain(int p, bool ingress) { return absl::StrCat("po-", p, ingress ? "-i" : "-e"); }

std::vector<Rule> PolicyRules(int p, bool ingress, int variant = 0) {
  Dir peer = ingress ? Dir::kSource : Dir::kDest;
  std::vector<Rule> rules = {
      Rule().Add(AddrSetMatch{4, peer, Sel(p), false}).Add(L4ProtoMatch{6, false})
          .Add(PortMatch{Dir::kDest, uint16_t(80 + variant), uint16_t(80 + variant), false})
          .Add(AllowMark()).Add(Return()),
      Rule().Add(AddrSetMatch{4, peer, Net(p), false}).Add(AllowMark()).Add(Return()),
      Rule().Add(AddrSetMatch{4, peer, Sel((p + 1) % kPolicies), false}).Add(L4ProtoMatch{17, false})
          .Add(PortMatch{Dir::kDest, 53, 53, false}).Add(AllowMark()).Add(Return()),
  };
  static const int extra = getenv("NFT_BENCH_EXTRA_RULES") ? atoi(getenv("NFT_BENCH_EXTRA_RULES")) : 0;
  for (int k = 0; k < extra; ++k) {
    rules.push_back(Rule().Add(L4ProtoMatch{6, false}).Add(PortMatch{Dir::kDest, uint16_t(1000 + k), uint16_t(1000 + k), false})
                        .Add(AllowMark()).Add(Return()));
  }
  return rules;
}

struct Model {
  DesiredTable table;
  std::vector<EndpointPolicies> group_in, group_out;
};

struct Layout {
  Dispatch dispatch = Dispatch::kByInterface;
  EgressHook egress = EgressHook::kForwardAndInput;
  // With kPrerouting: what prerouting reaches goes to table calico-egress, the rest stays in
  // calico; a set used by both is written to both. Two transactions per change (not atomic
  // together); the kernel validates only the table(s) a change touched.
  bool split_tables = false;
  LayoutOptions Options() const { return {EndpointToHost::kDrop, dispatch, egress}; }
};

// Which objects of a change go to which table (split_tables): SplitByDirection's answer for the
// loaded table, plus a guess for objects the change creates.
struct Partition {
  std::set<std::string> egress_chains, ingress_chains, egress_sets, ingress_sets;
  // A chain both directions reach (a profile) is in both tables.
  bool ChainIn(bool egress, const std::string& c) const {
    bool e = egress_chains.contains(c) || c.rfind("fw-", 0) == 0;  // new egress group chains
    return egress ? e : (ingress_chains.contains(c) || !e);
  }
  bool In(bool egress, const ElementChange& e) const { return SetIn(egress, e.set); }
  bool SetIn(bool egress, const std::string& set) const {
    if (egress) return egress_sets.contains(set);
    return ingress_sets.contains(set) || !egress_sets.contains(set);  // unknown: ingress
  }
};

Delta PartOf(const Delta& d, const Partition& p, bool egress) {
  Delta out;
  for (const SetSpec& s : d.add_sets) if (p.SetIn(egress, s.name)) out.add_sets.push_back(s);
  for (const Chain& c : d.put_chains) if (p.ChainIn(egress, c.name)) out.put_chains.push_back(c);
  for (const ElementChange& e : d.delete_elements) if (p.In(egress, e)) out.delete_elements.push_back(e);
  for (const ElementChange& e : d.add_elements) if (p.In(egress, e)) out.add_elements.push_back(e);
  for (const std::string& c : d.delete_chains) if (p.ChainIn(egress, c)) out.delete_chains.push_back(c);
  for (const std::string& s : d.delete_sets) if (p.SetIn(egress, s)) out.delete_sets.push_back(s);
  return out;
}

Model Build(const Layout& layout) {
  std::mt19937 rng(1);
  Model m;
  m.table = Skeleton(layout.Options());
  DesiredTable& t = m.table;
  for (int p = 0; p < kPolicies; ++p) {
    DesiredSet sel{SetSpec{Sel(p), KeyType::kIpv4, false, false}, {}};
    for (int i = 0; i < kMembers; ++i) sel.elements[Ip(int(rng() % kEndpoints))] = "";
    t.sets[Sel(p)] = std::move(sel);
    t.sets[Net(p)] = {SetSpec{Net(p), KeyType::kIpv4, true, false},
                      {{absl::StrFormat("192.168.%d.0/24", p % 256), ""},
                       {absl::StrFormat("172.%d.%d.0/24", 16 + p / 256, p % 256), ""}}};
    for (bool in : {true, false}) {
      t.chains[PolicyChain(p, in)] = Chain{PolicyChain(p, in), std::nullopt, PolicyRules(p, in)};
    }
  }
  t.chains["pro-kns"] = Chain{"pro-kns", std::nullopt, {Rule().Add(AllowMark()).Add(Return())}};
  for (int g = 0; g < kGroups; ++g) {
    for (bool in : {true, false}) {
      std::vector<int> pols;
      while (pols.size() < 5) {
        int p = int(rng() % kPolicies);
        if (std::find(pols.begin(), pols.end(), p) == pols.end()) pols.push_back(p);
      }
      std::sort(pols.begin(), pols.end());
      EndpointPolicies ep;
      ep.tiers.push_back(TierChains{{PolicyChain(pols[0], in), PolicyChain(pols[1], in)}, true});
      ep.tiers.push_back(TierChains{{PolicyChain(pols[2], in), PolicyChain(pols[3], in),
                                     PolicyChain(pols[4], in)}, false});
      ep.profile_chains = {"pro-kns"};
      (in ? m.group_in : m.group_out).push_back(ep);
    }
  }
  for (int e = 0; e < kEndpoints; ++e) {
    AddEndpoint(t, Endpoint{Ifname(e), {Ip(e)}, m.group_in[e % kGroups], m.group_out[e % kGroups]});
  }
  return m;
}

struct Stats {
  double p50 = 0, p99 = 0, max = 0;
};
Stats Percentiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(q * double(v.size())))]; };
  return {at(0.5), at(0.99), v.back()};
}

void Check(const absl::Status& s, std::string_view what) {
  if (!s.ok()) {
    std::fprintf(stderr, "nft_bench: %s: %s\n", std::string(what).c_str(), s.ToString().c_str());
    std::exit(1);
  }
}

using Writer = std::function<absl::Status(const Delta&)>;

// Runs `change(i)` kIterations times, each one transaction (per table); returns its latency
// distribution.
Stats Measure(const Writer& apply, const std::function<Delta(int)>& change) {
  std::vector<double> ms;
  for (int i = 0; i < kIterations; ++i) {
    Delta d = change(i);
    auto t0 = Clock::now();
    Check(apply(d), "single change");
    ms.push_back(Ms(Clock::now() - t0));
  }
  return Percentiles(ms);
}

std::string LayoutName(const Layout& l) {
  return absl::StrCat(l.split_tables ? "[egress in its own table] " : "",
                      l.dispatch == Dispatch::kByGroup ? "by group (iifname map @from-wep vmap @from-grp)"
                                                       : "by interface (iifname vmap @from-wep)",
                      l.egress == EgressHook::kPrerouting ? ", egress at prerouting"
                                                          : ", egress at forward+input");
}

void Describe(const Model& m, double build_ms) {
  size_t elements = 0, rules = 0;
  for (const auto& [n, s] : m.table.sets) elements += s.elements.size();
  for (const auto& [n, c] : m.table.chains) rules += c.rules.size();
  std::printf("table: %d endpoints, %d policies: %zu sets (%zu elements), %zu chains (%zu rules); "
              "model built in %.0f ms\n",
              kEndpoints, kPolicies, m.table.sets.size(), elements, m.table.chains.size(), rules,
              build_ms);
}

struct Row {
  std::string name;
  Stats s;
};

// Full load, drift refresh and the single changes for one layout; leaves the loaded namespace
// and writer in `node` / `nft` (for the libnftables comparison).
std::vector<Row> RunLayout(const Layout& layout, double full_ref, std::optional<TestNetns>& node,
                           std::unique_ptr<MnlNftables>& nft) {
  const Dispatch dispatch = layout.dispatch;
  auto t0 = Clock::now();
  Model m = Build(layout);
  Check(Canonicalize(m.table), "canonicalize");
  double build_ms = Ms(Clock::now() - t0);
  std::printf("\n== dispatch %s ==\n", LayoutName(layout).c_str());
  Describe(m, build_ms);
  const bool by_group = dispatch == Dispatch::kByGroup;

  // Full load through MnlNftables (median of 3, fresh namespaces); keep the last one.
  std::vector<double> full;
  node.reset();
  nft.reset();
  std::unique_ptr<MnlNftables> nft_egress;
  Partition part;
  DesiredTable tables[2];  // ingress (calico), egress (calico-egress) when split
  if (layout.split_tables) {
    DirectionSplit split = SplitByDirection(m.table);
    part = Partition{split.egress_chains, split.ingress_chains, split.egress_sets, split.ingress_sets};
    tables[0] = std::move(split.ingress);
    tables[1] = std::move(split.egress);
    // New objects of the changes below: the new policy's set and chain are ingress.
    part.ingress_sets.insert("sel-new");
    std::printf("split: egress table %zu chains / %zu sets, ingress table %zu chains / %zu sets\n",
                tables[1].chains.size(), tables[1].sets.size(), tables[0].chains.size(),
                tables[0].sets.size());
  }
  for (int i = 0; i < 3; ++i) {
    auto ns = TestNetns::Create("nftb-node");
    Check(ns.status(), "netns");
    auto w = MnlNftables::Open(ns->path());
    Check(w.status(), "open");
    auto we = MnlNftables::Open(ns->path(), kEgressTableName);
    Check(we.status(), "open");
    auto s = Clock::now();
    if (layout.split_tables) {
      Check((*w)->Apply(ComputeDelta(tables[0], std::nullopt)), "full load (ingress)");
      Check((*we)->Apply(ComputeDelta(tables[1], std::nullopt)), "full load (egress)");
    } else {
      Delta d = ComputeDelta(m.table, std::nullopt);
      s = Clock::now();
      Check((*w)->Apply(d), "full load");
    }
    full.push_back(Ms(Clock::now() - s));
    if (i == 2) {
      node.emplace(std::move(*ns));
      nft = std::move(*w);
      nft_egress = std::move(*we);
    }
  }
  Writer apply = [&](const Delta& d) -> absl::Status {
    if (!layout.split_tables) return nft->Apply(d);
    Delta in = PartOf(d, part, false), out = PartOf(d, part, true);
    if (!out.empty()) RETURN_IF_ERROR(nft_egress->Apply(out));
    if (!in.empty()) RETURN_IF_ERROR(nft->Apply(in));
    return absl::OkStatus();
  };
  std::sort(full.begin(), full.end());
  std::printf("full load, MnlNftables (one %zu KiB batch): %8.1f ms (median of 3; %.2fx nft -f)\n",
              nft->last_batch_bytes() / 1024, full[1], full[1] / full_ref);

  // Drift refresh: read everything back and diff.
  auto rs = Clock::now();
  auto state = nft->Read();
  Check(state.status(), "read");
  double read_ms = Ms(Clock::now() - rs);
  auto ds = Clock::now();
  Delta none = ComputeDelta(layout.split_tables ? tables[0] : m.table, *state);
  if (layout.split_tables) {
    auto egress_state = nft_egress->Read();
    Check(egress_state.status(), "read");
    Delta more = ComputeDelta(tables[1], *egress_state);
    if (!more.empty()) none = more;
  }
  double diff_ms = Ms(Clock::now() - ds);
  std::printf("drift refresh: Read %.1f ms, ComputeDelta %.1f ms, delta %s\n", read_ms, diff_ms,
              none.empty() ? "empty (adopted as is)" : "NOT EMPTY");

  std::vector<Row> rows;
  // 1. A pod joins an existing selector's set (and leaves again on odd iterations).
  rows.push_back({"pod joins a selector set (1 element)", Measure(apply, [&](int i) {
                    Delta d;
                    ElementChange e{Sel(7), Ip(kEndpoints + 1), ""};
                    (i % 2 ? d.delete_elements : d.add_elements).push_back(e);
                    return d;
                  })});
  // 2. A label change: the pod leaves one selector and joins another.
  rows.push_back({"label change (1 set out, 1 set in)", Measure(apply, [&](int i) {
                    Delta d;
                    int from = i % 2 ? 9 : 8, to = i % 2 ? 8 : 9;
                    d.delete_elements.push_back({Sel(from), Ip(kEndpoints + 2), ""});
                    d.add_elements.push_back({Sel(to), Ip(kEndpoints + 2), ""});
                    if (i == 0) d.delete_elements.clear();
                    return d;
                  })});
  // 3. A new pod on the node (and its removal): both maps, anti-spoofing, one selector.
  rows.push_back({"pod added/removed, existing group (4 elements)", Measure(apply, [&](int i) {
                    Delta d;
                    int e = kEndpoints + 10;
                    auto& list = i % 2 ? d.delete_elements : d.add_elements;
                    if (by_group) {
                      list.push_back({kFromWepMap, Ifname(e), GroupKey(false, m.group_out[3])});
                      list.push_back({kToWepMap, Ifname(e), GroupKey(true, m.group_in[3])});
                    } else {
                      list.push_back({kFromWepMap, Ifname(e), absl::StrCat("goto ", GroupChainName(false, m.group_out[3]))});
                      list.push_back({kToWepMap, Ifname(e), absl::StrCat("goto ", GroupChainName(true, m.group_in[3]))});
                    }
                    list.push_back({kWepSrc4, absl::StrCat(Ifname(e), " . ", Ip(e)), ""});
                    list.push_back({Sel(11), Ip(e), ""});
                    return d;
                  })});
  // 3b. A pod whose policy lists no other endpoint has: its two group chains, their map
  //     entries, the pod's elements (and all of it removed again).
  rows.push_back({"pod added/removed, new group (+2 chains)", Measure(apply, [&](int i) {
                    Delta d;
                    int e = kEndpoints + 20;
                    EndpointPolicies in = m.group_in[4], out = m.group_out[4];
                    in.tiers.front().policy_chains.push_back(PolicyChain(999, true));
                    out.tiers.front().policy_chains.push_back(PolicyChain(999, false));
                    DesiredTable mine = Skeleton(layout.Options());
                    AddEndpoint(mine, Endpoint{Ifname(e), {Ip(e)}, in, out});
                    auto& list = i % 2 ? d.delete_elements : d.add_elements;
                    for (bool ingress : {true, false}) {
                      Chain c = GroupChain(ingress, ingress ? in : out);
                      if (i % 2) d.delete_chains.push_back(c.name);
                      else d.put_chains.push_back(c);
                    }
                    for (const auto& [name, set] : mine.sets) {
                      for (const auto& [key, value] : set.elements) list.push_back({name, key, value});
                    }
                    list.push_back({Sel(11), Ip(e), ""});
                    return d;
                  })});
  // 4. One policy's rules change: its ingress chain replaced (flush + 3 rules).
  rows.push_back({"policy chain replaced (flush + 3 rules)", Measure(apply, [&](int i) {
                    Delta d;
                    d.put_chains.push_back(Chain{PolicyChain(5, true), std::nullopt,
                                                 PolicyRules(5, true, (i % 2) + 1)});
                    return d;
                  })});
  // 5. A new policy: its selector set (20 members), its chain, one group chain refilled to use
  //    it; removed again on odd iterations.
  rows.push_back({"new policy (set, chain, group chain)", Measure(apply, [&](int i) {
                    Delta d;
                    std::string set = "sel-new", chain = "po-new-i";
                    EndpointPolicies with = m.group_in[0];
                    with.tiers.back().policy_chains.push_back(chain);
                    Chain group = GroupChain(true, m.group_in[0]);
                    if (i % 2 == 0) {
                      d.add_sets.push_back(SetSpec{set, KeyType::kIpv4, false, false});
                      for (int k = 0; k < kMembers; ++k) d.add_elements.push_back({set, Ip(k * 7), ""});
                      d.put_chains.push_back(Chain{chain, std::nullopt,
                          {Rule().Add(AddrSetMatch{4, Dir::kSource, set, false}).Add(AllowMark()).Add(Return())}});
                      Chain g2 = GroupChain(true, with);
                      g2.name = group.name;  // refill the group's chain in place
                      d.put_chains.push_back(g2);
                    } else {
                      d.put_chains.push_back(group);
                      d.delete_chains.push_back(chain);
                      d.delete_sets.push_back(set);
                    }
                    return d;
                  })});

  // 6. Batching: ten policies' chains replaced in one transaction (the kernel validates the
  //    jump graph once per commit, so this costs about what one change costs).
  rows.push_back({"10 policy chains replaced, one transaction", Measure(apply, [&](int i) {
                    Delta d;
                    for (int p = 20; p < 30; ++p) {
                      d.put_chains.push_back(Chain{PolicyChain(p, true), std::nullopt,
                                                   PolicyRules(p, true, (i % 2) + 1)});
                    }
                    return d;
                  })});
  return rows;
}

int Main() {
  if (!::calico::testing::IsRoot()) {
    std::fprintf(stderr, "nft_bench: needs root (namespaces)\n");
    return 1;
  }
  auto t0 = Clock::now();
  Model m = Build(Layout{});
  Check(Canonicalize(m.table), "canonicalize");
  Describe(m, Ms(Clock::now() - t0));
  // Reference: nft -f of the whole table into an empty namespace (median of 3).
  std::string script = ToNftScript(m.table);
  std::string path = absl::StrCat("/tmp/nft_bench_", getpid(), ".nft");
  std::ofstream(path) << script;
  std::vector<double> nft_f;
  for (int i = 0; i < 3; ++i) {
    auto ns = TestNetns::Create("nftb-ref");
    Check(ns.status(), "netns");
    auto s = Clock::now();
    auto r = ns->Exec(absl::StrCat("nft -f ", path));
    nft_f.push_back(Ms(Clock::now() - s));
    if (r.status != 0) {
      std::fprintf(stderr, "nft -f failed: %s\n", r.output.substr(0, 2000).c_str());
      return 1;
    }
  }
  std::sort(nft_f.begin(), nft_f.end());
  double full_ref = nft_f[1];
  std::printf("full rebuild, nft -f (%zu KiB script):      %8.1f ms (median of 3)\n",
              script.size() / 1024, full_ref);

  std::optional<TestNetns> node;
  std::unique_ptr<MnlNftables> nft;
  std::vector<std::pair<Layout, std::vector<Row>>> results;
  for (Layout l : {Layout{Dispatch::kByInterface, EgressHook::kForwardAndInput},
                   Layout{Dispatch::kByInterface, EgressHook::kPrerouting},
                   Layout{Dispatch::kByGroup, EgressHook::kForwardAndInput},
                   Layout{Dispatch::kByGroup, EgressHook::kPrerouting},
                   Layout{Dispatch::kByGroup, EgressHook::kPrerouting, true}}) {
    const char* only = getenv("NFT_BENCH_DISPATCH");  // "group" or "interface": that one only
    if (only && std::string(only) != (l.dispatch == Dispatch::kByGroup ? "group" : "interface")) continue;
    const char* egress = getenv("NFT_BENCH_EGRESS");  // "prerouting" or "forward"
    if (egress && std::string(egress) != (l.egress == EgressHook::kPrerouting ? "prerouting" : "forward")) continue;
    results.emplace_back(l, RunLayout(l, full_ref, node, nft));
  }

  // The same single element change through a long-lived libnftables context (the alternative).
  std::vector<double> lib;
  {
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int target = open(node->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
      std::fprintf(stderr, "setns failed\n");
      return 1;
    }
    nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    if (setns(self, CLONE_NEWNET) != 0) std::abort();
    close(self);
    close(target);
    for (int i = 0; i < 20; ++i) {
      std::string cmd = absl::StrCat(i % 2 ? "delete" : "add", " element inet calico ", Sel(7),
                                     " { ", Ip(kEndpoints + 1), " }");
      auto s = Clock::now();
      if (nft_run_cmd_from_buffer(ctx, cmd.c_str()) != 0) {
        std::fprintf(stderr, "libnftables: %s\n", nft_ctx_get_error_buffer(ctx));
        return 1;
      }
      lib.push_back(Ms(Clock::now() - s));
    }
    nft_ctx_free(ctx);
  }
  Stats libs = Percentiles(lib);

  std::printf("\nsingle changes at %d endpoints / %d policies, %d each (ms); nft -f %.1f ms:\n",
              kEndpoints, kPolicies, kIterations, full_ref);
  bool ok = false;
  for (const auto& [layout, rows] : results) {
    bool layout_ok = true;
    std::printf("dispatch %s\n  %-48s %8s %8s %8s %12s\n", LayoutName(layout).c_str(), "", "p50", "p99",
                "max", "p99/nft -f");
    for (const Row& r : rows) {
      double ratio = r.s.p99 / full_ref;
      layout_ok = layout_ok && r.s.p99 <= 5.0 && ratio <= 0.01;
      std::printf("  %-48s %8.3f %8.3f %8.3f %12.5f%s\n", r.name.c_str(), r.s.p50, r.s.p99,
                  r.s.max, ratio, r.s.p99 <= 5.0 && ratio <= 0.01 ? "" : "  > target");
    }
    std::printf("  targets %s\n", layout_ok ? "met" : "NOT met");
    ok = ok || layout_ok;
  }
  std::printf("  %-48s %8.3f %8.3f %8.3f %12.5f\n", "libnftables ctx: 1 element (20 runs)", libs.p50,
              libs.p99, libs.max, libs.p99 / full_ref);
  std::printf("\ntargets (p99 <= 5 ms and <= 0.01x nft -f) for MnlNftables: %s\n",
              ok ? "met by a layout" : "NOT met by any layout");
  std::remove(path.c_str());
  return 0;
}

}  // namespace
}  // namespace calico::felixd::nft

int main() { return calico::felixd::nft::Main(); }
