// felixd/policy_compiler at scale: NFT_COMPILER_ENDPOINTS (default 10,000) endpoints in 100
// namespaces, 1,000 NetworkPolicies (one selector set per policy, a port, a named port, an egress
// net). Prints the time to index and compile everything, the table's size, and for single
// changes (pod joins existing selectors, label change, pod removed, new policy) the time of the
// index + compiler step and the size of the nft delta.

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "felixd/policy_compiler/compiler.h"

namespace calico::felixd {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

policy::Selector Sel(const std::string& text) {
  auto s = policy::Selector::Parse(text);
  if (!s.ok()) std::abort();
  return *s;
}

policy::Endpoint Pod(int i, const std::string& app) {
  policy::Endpoint e;
  e.ns = absl::StrFormat("ns%d", i % 100);
  e.name = absl::StrFormat("pod%d", i);
  e.node = "node1";
  e.interface = absl::StrFormat("cali%011d", i);
  e.ips = {*net::ParseCidrOrIp(absl::StrFormat("10.%d.%d.%d", 64 + i / 65536, (i / 256) % 256, i % 256))};
  e.labels = {{"app", app},
              {std::string(policy::kLabelNamespace), e.ns},
              {std::string(policy::kLabelOrchestrator), "k8s"}};
  e.ports = {{"http", policy::kProtoTcp, 8080}};
  e.profiles = {"kns." + e.ns};
  return e;
}

policy::Policy Pol(int j) {
  policy::Policy p;
  p.ns = absl::StrFormat("ns%d", j % 100);
  p.name = absl::StrFormat("pol%d", j);
  p.order = j % 10;
  p.applies_to.selector = Sel(absl::StrFormat("app == 'app%d'", j % 200));
  p.applies_to.scope = policy::Scope::kNamespace;
  p.applies_to.ns = p.ns;
  p.ingress = p.egress = true;
  policy::Rule in;
  in.protocol = policy::kProtoTcp;
  policy::EntitySelector from;
  from.selector = Sel(absl::StrFormat("app == 'app%d'", (j + 1) % 200));
  // namespaceSelector all(), as tests/bench/policy: app j+1's pods live in another namespace.
  from.scope = policy::Scope::kNamespaceSelector;
  from.namespace_selector = Sel("all()");
  in.source.selector = from;
  in.destination.ports.ranges = {{80 + j % 10, 80 + j % 10}};
  in.destination.ports.names = {"http"};
  p.ingress_rules = {in};
  policy::Rule out;
  out.destination.nets = {*net::ParseCidrOrIp(absl::StrFormat("172.%d.0.0/16", 16 + j % 16))};
  p.egress_rules = {out};
  return p;
}

int Main() {
  int n = 10000;
  if (const char* env = std::getenv("NFT_COMPILER_ENDPOINTS")) n = std::atoi(env);
  policy::Model model;
  for (int i = 0; i < n; ++i) model.Put(Pod(i, absl::StrFormat("app%d", i % 200)));
  for (int j = 0; j < 1000; ++j) model.Put(Pol(j));

  auto t0 = Clock::now();
  policy::SelectionIndex index = policy::SelectionIndex::Build(model);
  auto t1 = Clock::now();
  // felixd's default layout: dispatch by link group, egress policy at prerouting.
  policy_compiler::Options options;
  options.layout.dispatch = nft::Dispatch::kByLinkGroup;
  options.layout.egress = nft::EgressHook::kPrerouting;
  policy_compiler::Compiler compiler(options);
  const nft::DesiredTable& table = compiler.Build(model, index);
  auto t2 = Clock::now();
  size_t elements = 0, rules = 0;
  for (const auto& [_, s] : table.sets) elements += s.elements.size();
  for (const auto& [_, c] : table.chains) rules += c.rules.size();
  std::printf("endpoints %d policies 1000: index %.0f ms, compile %.0f ms; %zu sets / %zu elements, "
              "%zu chains / %zu rules\n",
              n, Ms(t0, t1), Ms(t1, t2), table.sets.size(), elements, table.chains.size(), rules);

  // fn changes the model and returns the selection delta; the compiler is timed apart.
  auto change = [&](const char* what, auto&& fn, const policy_compiler::Changed& changed = {}) {
    auto a = Clock::now();
    policy::SelectionDelta sd = fn();
    auto b = Clock::now();
    nft::Delta d = compiler.Update(model, index, sd, changed);
    auto c = Clock::now();
    std::printf("%-30s index %8.3f ms, compiler %7.3f ms; delta %zu objects (%zu chains, %zu+%zu "
                "elements, %zu sets)\n",
                what, Ms(a, b), Ms(b, c), d.size(), d.put_chains.size(), d.add_elements.size(),
                d.delete_elements.size(), d.add_sets.size());
  };
  change("pod joins existing selectors", [&] {
    model.Put(Pod(n, "app1"));  // ns0: in the from-set of policies 0, 200, ...
    return index.UpdateEndpoint(model, Pod(n, "app1").Id());
  });
  change("another pod joins", [&] {
    model.Put(Pod(n + 1, "app1"));
    return index.UpdateEndpoint(model, Pod(n + 1, "app1").Id());
  });
  change("label change", [&] {
    model.Put(Pod(n, "app0"));  // out of that set, now selected by policies 0, 200, ...
    return index.UpdateEndpoint(model, Pod(n, "app0").Id());
  });
  change("pod removed", [&] {
    policy::Endpoint e = Pod(n, "app0");
    model.Remove(*resources::FindKind("projectcalico.org/v3", "WorkloadEndpoint"), e.ns, e.name);
    return index.UpdateEndpoint(model, e.Id());
  });
  change("new policy", [&] {
    model.Put(Pol(1000));
    return index.UpdatePolicy(model, Pol(1000).Id());
  }, {{Pol(1000).Id()}, {}});
  change("policy rules changed", [&] {
    policy::Policy p = Pol(1000);
    p.egress_rules[0].destination.nets = {*net::ParseCidrOrIp("192.0.2.0/24")};
    model.Put(p);
    return index.UpdatePolicy(model, p.Id());
  }, {{Pol(1000).Id()}, {}});
  change("policy deleted", [&] {
    policy::Policy p = Pol(1000);
    model.Remove(*resources::FindKind("projectcalico.org/v3", "NetworkPolicy"), p.ns, p.name);
    return index.UpdatePolicy(model, p.Id());
  }, {{Pol(1000).Id()}, {}});
  change("new policy (index: Build+Diff)", [&] {
    model.Put(Pol(1000));
    policy::SelectionIndex after = policy::SelectionIndex::Build(model);
    policy::SelectionDelta d = policy::Diff(index, after);
    index = std::move(after);
    return d;
  }, {{Pol(1000).Id()}, {}});
  // Many new policies, one at a time (each selects the 50 pods of one app): the compiler's
  // share of felixd's new-policy latency, p50/p99 over NFT_COMPILER_ITERATIONS (100).
  int iterations = 100;
  if (const char* env = std::getenv("NFT_COMPILER_ITERATIONS")) iterations = std::atoi(env);
  std::vector<double> index_ms, compile_ms;
  // As felixd after a whole-index rebuild: the old index's blocks are merged now (~30 ms), not
  // by the next change's first large allocation.
  malloc_trim(0);
  for (int k = 0; k < iterations; ++k) {
    policy::Policy p = Pol(1001 + k);
    model.Put(p);
    auto a = Clock::now();
    policy::SelectionDelta sd = index.UpdatePolicy(model, p.Id());
    auto b = Clock::now();
    nft::Delta d = compiler.Update(model, index, sd, {{p.Id()}, {}});
    auto c = Clock::now();
    index_ms.push_back(Ms(a, b));
    compile_ms.push_back(Ms(b, c));
  }
  auto pct = [](std::vector<double> v, double q) {  // nearest rank
    std::sort(v.begin(), v.end());
    size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
  };
  std::printf("%d new policies, one at a time: index p50 %.3f p99 %.3f max %.3f ms, compiler p50 %.3f p99 %.3f "
              "max %.3f ms\n",
              iterations, pct(index_ms, 0.5), pct(index_ms, 0.99), pct(index_ms, 1.0), pct(compile_ms, 0.5),
              pct(compile_ms, 0.99), pct(compile_ms, 1.0));
  return 0;
}

}  // namespace
}  // namespace calico::felixd

int main() { return calico::felixd::Main(); }
