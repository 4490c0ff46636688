#!/usr/bin/env bash
# e2e faults on the cluster in a box (BGP, 3 nodes, 3-member etcd):
#  0. an IP-in-IP cluster on this kernel (no ipip module) fails to come up, naming the module;
#  1. one etcd member killed: pods still come and go;
#  2. all of etcd down: existing pods keep working; a new ADD fails with a clear try-again
#     error and leaves nothing behind; once etcd is back, ADDs work and IPAM is clean;
#  3. a node removed for good: its routes leave the other nodes, and ipamd releases its blocks
#     and addresses (leak grace 3 s here).
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
export CLUSTER_DIR="$(mktemp -d /tmp/calico-e2e-XXXXXX)/cluster"
export CLUSTER_LEAK_GRACE=3s CLUSTER_LEAK_INTERVAL=1s
cluster="$root/scripts/cluster"
trap '"$cluster" down > /dev/null 2>&1 || true; rm -rf "$(dirname "$CLUSTER_DIR")"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ip_of() { cut -d' ' -f2 "$CLUSTER_DIR/pods/$1"; }
ping_ok() { ip netns exec "cib-pod-$1" ping -c1 -W1 "$(ip_of "$2")" > /dev/null 2>&1; }
start=$(date +%s.%N)

echo "== 0. IP-in-IP on this kernel (no ipip module): up fails, names the module, leaves nothing"
if out=$("$cluster" up --nodes=2 --mode=ipip 2>&1); then fail "an IP-in-IP cluster came up without the ipip module"; fi
grep -q 'no ipip module' <<< "$out" || fail "the IP-in-IP failure does not name the module: $out"
grep -m1 'no ipip module' <<< "$out"
[ "$(ip netns list | grep -c '^cib-' || true)" = 0 ] || fail "the failed up left namespaces behind"
[ ! -e "$CLUSTER_DIR" ] || fail "the failed up left $CLUSTER_DIR behind"

"$cluster" up --nodes=3
for n in 1 2 3; do "$cluster" pod-add "$n" "p$n" > /dev/null; done
ping_ok p1 p3 || fail "p1 cannot reach p3 before any fault"

echo "== 1. etcd member m2 killed"
"$cluster" etcd-stop 2
"$cluster" pod-add 2 x1 > /dev/null || fail "ADD failed with one etcd member down"
ping_ok p1 x1 || fail "the pod added with one member down is unreachable"
"$cluster" pod-del x1 || fail "DEL failed with one etcd member down"
"$cluster" etcd-start 2

echo "== 2. all of etcd down"
for m in 0 1 2; do "$cluster" etcd-stop "$m" 2>/dev/null || true; done
ip netns exec cib-pod-p1 ping -i 0.05 -c 40 -W 1 "$(ip_of p2)" > "$CLUSTER_DIR/ping.txt" 2>&1 || true
grep -q ' 0% packet loss' "$CLUSTER_DIR/ping.txt" || { cat "$CLUSTER_DIR/ping.txt"; fail "existing pods lost traffic with etcd down"; }
links_before=$(ip -n cib-node1 -o link show | grep -c cali || true)
if out=$("$cluster" pod-add 1 during 2>&1); then fail "ADD succeeded with all of etcd down"; fi
echo "$out" | tail -n 3
grep -qi 'try again\|unavailable\|"code": *11\|"code":11' <<< "$out" || fail "the failed ADD does not say to try again: $out"
links_after=$(ip -n cib-node1 -o link show | grep -c cali || true)
[ "$links_before" = "$links_after" ] || fail "the failed ADD left a cali interface behind"
grep -q 'cib-pod-during' <<< "$(ip netns list)" && fail "the failed ADD's netns was left behind"
for m in 0 1 2; do "$cluster" etcd-start "$m"; done
ok=""
for _ in $(seq 60); do
  if "$cluster" pod-add 1 after > /dev/null 2>&1; then ok=1; break; fi
  ip netns del cib-pod-after 2>/dev/null || true
  sed -i '/^ns cib-pod-after$/d' "$CLUSTER_DIR/made"
  sleep 0.5
done
[ -n "$ok" ] || fail "ADD still failing 30 s after etcd came back"
ping_ok p2 after || fail "the pod added after the outage is unreachable"
grep -q 'found 0 problems' <<< "$("$cluster" calicoctl 1 ipam check)" || fail "ipam check after the outage"

echo "== 3. node3 removed"
block3=$(ip -n cib-node3 route show type blackhole | awk 'NR == 1 { print $2 }')
[ -n "$block3" ] || fail "node3 has no block"
# node1 had this route before the outage (p1 reached p3). Not having it now would be a session
# or an advertisement lost to the outage: wait a little, but say so, with the evidence.
# (Never `ip ... | grep -q` here: ip writes a line per write(), grep -q leaves at its match, and
# under pipefail ip's SIGPIPE on the next line fails the pipeline although the line was there.)
learned=""
for i in $(seq 100); do
  if grep -q "^$block3 " <<< "$(ip -n cib-node1 route show proto bird)"; then learned=$i; break; fi
  sleep 0.1
done
if [ "${learned:-0}" != 1 ]; then
  echo "node1 lacked node3's block $block3 after the outage (found after ${learned:-no} tries of 0.1 s):"
  ip -n cib-node1 route; ip -n cib-node3 route
  grep -h 'peer_\|felixd_\|graceful' "$CLUSTER_DIR"/node{1,3}/birdd.log | tail -n 30
fi
[ -n "$learned" ] || fail "node1 never learned node3's block $block3"
"$cluster" node-remove 3
gone=""
for _ in $(seq 100); do
  if ! grep -q "^$block3 " <<< "$(ip -n cib-node1 route show proto bird)"; then gone=1; break; fi
  sleep 0.1
done
[ -n "$gone" ] || fail "node1 still routes node3's block $block3"
released=""
for _ in $(seq 60); do
  if ! grep -q " ${block3} " <<< "$("$cluster" calicoctl 1 ipam show --show-blocks)"; then released=1; break; fi
  sleep 0.5
done
[ -n "$released" ] || fail "node3's block $block3 is still allocated"
grep -q 'found 0 problems' <<< "$("$cluster" calicoctl 1 ipam check)" || fail "ipam check after node removal"
ping_ok p1 p2 || fail "p1 cannot reach p2 after node3 left"

awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "faults e2e wall time: %.0f s\n", b - a }'
echo PASS
