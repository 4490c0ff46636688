#!/usr/bin/env bash
# e2e on the cluster in a box, in the routing mode $MODE (default bgp): 3 dual-stack nodes over
# a 3-member etcd — BGP, or felixd's VXLAN (vxlan: every node on one subnet; vxlan-crosssubnet:
# node3 on a second subnet behind a router, encapsulated only there).
#  1. every pod reaches every other (2 per node), over IPv4 and IPv6; with VXLAN the routes,
#     neighbours and FDB entries are checked, and which traffic is encapsulated (both families);
#  2. a pod added on node3 is reachable from node1: the time it takes;
#  3. continuous pod-to-pod traffic across nodes while felixd, birdd (felixd on the peer's node
#     with VXLAN) and ipamd are SIGKILLed and restarted, then upgraded (SIGTERM, the node's
#     binary replaced by a new file, the new one started): no packet lost, the longest gap
#     between replies per step reported, routes unchanged after;
#  4. 100 pods added and deleted across the nodes: no address held by two live pods, and
#     `calicoctl ipam check` clean at the end;
#  5. (VXLAN) node3 removed: node1 drops its routes, neighbour and FDB entry.
# Everything it makes is torn down on exit, also on failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
export CLUSTER_DIR="$(mktemp -d /tmp/calico-e2e-XXXXXX)/cluster"
cluster="$root/scripts/cluster"
trap '"$cluster" down > /dev/null 2>&1 || true; rm -rf "$(dirname "$CLUSTER_DIR")"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ip_of() { cut -d' ' -f2 "$CLUSTER_DIR/pods/$1"; }
routes() {  # every node's routes but the pods' own /32s, which change with pods
  for n in 1 2 3; do echo "node$n"; ip -n "cib-node$n" route show | grep -v ' dev cali' | sort; done
}
mode="${MODE:-bgp}"
vxlan_tx() {  # packets node$1's VXLAN device $2 has sent
  ip -n "cib-node$1" -s -j link show "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["packets"])'
}
ip6_of() { cut -d' ' -f3 "$CLUSTER_DIR/pods/$1"; }
start=$(date +%s.%N)

case "$mode" in
  bgp) "$cluster" up --nodes=3 --ipv6 ;;
  vxlan|vxlan-crosssubnet) "$cluster" up --nodes=3 --ipv6 --mode="$mode" ;;
  *) fail "MODE=$mode: bgp, vxlan or vxlan-crosssubnet" ;;
esac
for n in 1 2 3; do for p in a b; do "$cluster" pod-add "$n" "p$n$p" > /dev/null; done; done

echo "== 1. connectivity matrix"
matrix=$("$cluster" matrix)
echo "$matrix"
grep -q BLOCKED <<< "$matrix" && fail "pods cannot reach each other"
[ "$(grep -o 'ok' <<< "$matrix" | wc -l)" = 30 ] || fail "expected 30 ok cells (6 pods, each to 5 others)"
echo "== 1b. the same over IPv6 (dual-stack pool; $([ "$mode" = bgp ] && echo MP-BGP || echo vxlan-v6.calico))"
matrix6=$("$cluster" matrix -6)
echo "$matrix6"
[ "$(grep -o 'ok' <<< "$matrix6" | wc -l)" = 30 ] || fail "IPv6: expected 30 ok cells"
if [ "$mode" != bgp ]; then
  echo "== 1c. VXLAN state on node1: routes, neighbours, FDB; what is encapsulated"
  route_to() {  # route_to FAMILY POD: node1's route to the block of pod POD
    local ip b
    if [ "$1" = 4 ]; then ip=$(ip_of "$2"); b=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1] + "/26", strict=False))' "$ip")
    else ip=$(ip6_of "$2"); b=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1] + "/122", strict=False))' "$ip"); fi
    echo "$b $(ip -n cib-node1 -"$1" route show "$b")"
  }
  for fam in 4 6; do
    dev=vxlan.calico; [ $fam = 6 ] && dev=vxlan-v6.calico
    under=10.99.0.2; [ $fam = 6 ] && under=fd99::2
    r2=$(route_to $fam p2a); r3=$(route_to $fam p3a)
    echo "node1: $r2"; echo "node1: $r3"
    grep -q "dev $dev proto 80 .*onlink" <<< "$r3" || fail "node3's IPv$fam block is not routed through $dev: $r3"
    if [ "$mode" = vxlan ]; then
      grep -q "dev $dev proto 80 .*onlink" <<< "$r2" || fail "node2's IPv$fam block is not routed through $dev: $r2"
    else
      grep -q "via $under dev eth0 proto 80" <<< "$r2" || fail "node2 (same subnet) is not routed directly over IPv$fam: $r2"
    fi
    [ "$(ip -n cib-node1 neigh show dev $dev | grep -c PERMANENT)" = 2 ] || fail "node1 lacks a VTEP neighbour on $dev"
    [ "$(bridge -n cib-node1 fdb show dev $dev | grep -c 'dst fd99\|dst 10.99')" = 2 ] || fail "node1 lacks a VTEP FDB entry on $dev"
    of=ip_of; [ $fam = 6 ] && of=ip6_of
    tx0=$(vxlan_tx 1 $dev)
    ip netns exec cib-pod-p1a ping -c3 -i 0.05 -W1 "$($of p2a)" > /dev/null
    tx1=$(vxlan_tx 1 $dev)
    ip netns exec cib-pod-p1a ping -c3 -i 0.05 -W1 "$($of p3a)" > /dev/null
    tx2=$(vxlan_tx 1 $dev)
    echo "$dev tx packets: +$((tx1 - tx0)) for 3 pings to node2, +$((tx2 - tx1)) for 3 to node3"
    [ $((tx2 - tx1)) -ge 3 ] || fail "IPv$fam pings to node3's pod were not encapsulated"
    if [ "$mode" = vxlan ]; then
      [ $((tx1 - tx0)) -ge 3 ] || fail "IPv$fam pings to node2's pod were not encapsulated"
    else
      [ $((tx1 - tx0)) = 0 ] || fail "IPv$fam pings to node2's pod (same subnet) were encapsulated"
    fi
  done
  mtu=$(ip -n cib-pod-p1a -j link show eth0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["mtu"])')
  [ "$mtu" = 1430 ] || fail "pod MTU $mtu: expected 1430 (1500 - IPv6 VXLAN's 70)"
fi

echo "== diags of every node"
tarball=$("$cluster" diags)
listing=$(tar -tzf "$tarball")  # (not piped into grep -q: pipefail and SIGPIPE)
for want in node1/node-status.txt node3/felixd.log node2/kernel.txt resources.yaml ipam.txt; do
  grep -q "/$want\$" <<< "$listing" || fail "diags lack $want"
done
if [ "$mode" = bgp ]; then
  [ "$(tar -xzOf "$tarball" --wildcards '*/node2/node-status.txt' | grep -c Established)" = 4 ] ||
    fail "node2's status in the diags does not show 4 Established sessions (IPv4 and IPv6)"
else
  status2=$(tar -xzOf "$tarball" --wildcards '*/node2/node-status.txt')
  grep -q '| vxlan.calico *| 10.244.' <<< "$status2" || fail "node2's status in the diags does not show its VXLAN tunnel"
  grep -q '| vxlan-v6.calico *| fd44:' <<< "$status2" || fail "node2's status in the diags does not show its IPv6 VXLAN tunnel"
fi
resources=$(tar -xzOf "$tarball" --wildcards '*/resources.yaml')
grep -q 'kind: IPPool' <<< "$resources" || fail "diags lack the IP pools"

echo "== 2. a new pod on node3, reachable from node1's pod"
t0=$(date +%s.%N)
"$cluster" pod-add 3 late > /dev/null
late=$(ip_of late)
reached=""
for _ in $(seq 500); do
  if ip netns exec cib-pod-p1a ping -c1 -W0.05 "$late" > /dev/null 2>&1; then reached=$(date +%s.%N); break; fi
done
[ -n "$reached" ] || fail "the pod on node3 ($late) never became reachable from node1"
awk -v a="$t0" -v b="$reached" 'BEGIN { printf "pod ADD on node3 to reachable from node1: %.0f ms (the ADD included)\n", (b - a) * 1000 }'

# Across the subnets in vxlan-crosssubnet, so the flow is encapsulated.
peer=p2a; [ "$mode" = vxlan-crosssubnet ] && peer=p3a
echo "== 3. restarts under traffic (p1a -> $peer, 100 pps)"
before=$(routes)
target=$(ip_of $peer)
ip netns exec cib-pod-p1a ping -D -i 0.01 -c 2500 -W 1 "$target" > "$CLUSTER_DIR/ping.txt" 2>&1 &
pinger=$!
sleep 1
pn=${peer:1:1}  # the peer pod's node
# SIGKILL + restart (a crash), then an upgrade (SIGTERM, the binary replaced, the new one started).
steps=("1 felixd KILL" "$pn birdd KILL" "1 ipamd KILL" "1 felixd UPGRADE" "$pn birdd UPGRADE" "1 ipamd UPGRADE")
[ "$mode" = bgp ] || steps=("1 felixd KILL" "$pn felixd KILL" "1 ipamd KILL" "1 felixd UPGRADE" "$pn felixd UPGRADE" "1 ipamd UPGRADE")
: > "$CLUSTER_DIR/windows.txt"
for step in "${steps[@]}"; do
  set -- $step
  t0=$(date +%s.%N)
  if [ "$3" = UPGRADE ]; then
    echo "upgrade node$1 $2 (SIGTERM, binary replaced, started)"
    inode=$(stat -c %i "$CLUSTER_DIR/node$1/bin/$2")
    "$cluster" upgrade "$1" "$2"
    [ "$(stat -c %i "$CLUSTER_DIR/node$1/bin/$2")" != "$inode" ] || fail "node$1's $2 binary was not replaced"
    [ "$(readlink "/proc/$(cat "$CLUSTER_DIR/node$1/$2.pid")/exe")" = "$CLUSTER_DIR/node$1/bin/$2" ] ||
      fail "node$1's $2 does not run the new binary"
  else
    echo "restart node$1 $2 (SIG$3)"
    "$cluster" restart "$1" "$2" "$3"
  fi
  echo "$t0 $(date +%s.%N) node$1-$2-$3" >> "$CLUSTER_DIR/windows.txt"
  sleep 1
done
wait $pinger || true
# The longest gap between replies overlapping each restart (from the kill to ready again).
grep -o '^\[[0-9.]*\]' "$CLUSTER_DIR/ping.txt" | tr -d '[]' > "$CLUSTER_DIR/replies.txt"
awk 'NR == FNR { s[NR] = $1; e[NR] = $2; name[NR] = $3; n = NR; next }
     FNR > 1 { for (i = 1; i <= n; i++) if ($1 >= s[i] && prev <= e[i] && $1 - prev > g[i]) g[i] = $1 - prev }
     { prev = $1 }
     END { for (i = 1; i <= n; i++) printf "  %-22s longest gap %.0f ms\n", name[i], g[i] * 1000 }' \
  "$CLUSTER_DIR/windows.txt" "$CLUSTER_DIR/replies.txt"
summary=$(grep 'packets transmitted' "$CLUSTER_DIR/ping.txt")
echo "$summary"
# Longest gap between consecutive replies (ping -D prints [epoch] per reply).
gap=$(grep -o '^\[[0-9.]*\]' "$CLUSTER_DIR/ping.txt" | tr -d '[]' |
      awk 'NR>1 { d = $1 - prev; if (d > m) m = d } { prev = $1 } END { printf "%.0f", m * 1000 }')
echo "longest gap between replies: ${gap} ms (10 ms between requests)"
sent=$(awk '{print $1}' <<< "$summary")
received=$(awk '{print $4}' <<< "$summary")
[ "$sent" = "$received" ] || fail "lost $((sent - received)) of $sent packets during the restarts"
after=$(routes)
[ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") || true; fail "routes changed"; }

echo "== 4. 100 pods added and deleted across the nodes"
declare -A owner=()
for i in $(seq 100); do
  n=$(( i % 3 + 1 ))
  "$cluster" pod-add "$n" "c$i" > /dev/null
  ip=$(ip_of "c$i")
  [ -z "${owner[$ip]:-}" ] || fail "address $ip given to c$i while c${owner[$ip]} holds it"
  owner[$ip]=$i
  # Every third pod goes again at once, so addresses are released and reused meanwhile.
  if (( i % 3 == 0 )); then "$cluster" pod-del "c$i"; unset "owner[$ip]"; fi
done
for f in "$CLUSTER_DIR"/pods/c*; do "$cluster" pod-del "$(basename "$f")"; done
for p in late p1a p1b p2a p2b p3a p3b; do "$cluster" pod-del "$p"; done
check=$("$cluster" calicoctl 1 ipam check)
echo "$check" | tail -n 2
grep -q 'found 0 problems' <<< "$check" || fail "ipam check found problems"
inuse=$("$cluster" calicoctl 1 ipam show | awk -F'|' '/IP Pool/ { split($5, f, " "); n += f[1] } END { print n + 0 }')
# What stays: each node's two VXLAN tunnel addresses (IPv4 and IPv6).
tunnels=0; [ "$mode" = bgp ] || tunnels=6
[ "$inuse" = "$tunnels" ] || fail "$inuse addresses in use after every pod was deleted (expected $tunnels tunnel addresses)"

if [ "$mode" != bgp ]; then
  echo "== 5. node3 removed: the others drop its VTEP and the routes through it at once"
  "$cluster" pod-add 3 last > /dev/null
  block3=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1] + "/26", strict=False))' "$(ip_of last)")
  "$cluster" pod-del last
  grep -q vxlan.calico <<< "$(ip -n cib-node1 route show "$block3")" || fail "node1 has no VXLAN route to node3's block $block3"
  t0=$(date +%s.%N)
  "$cluster" node-remove 3
  gone=""
  for _ in $(seq 100); do
    if [ -z "$(ip -n cib-node1 route show "$block3")" ] &&
       [ "$(ip -n cib-node1 neigh show dev vxlan.calico | grep -c PERMANENT)" = 1 ] &&
       [ "$(bridge -n cib-node1 fdb show dev vxlan.calico | grep -c 'dst ')" = 1 ]; then gone=1; break; fi
    sleep 0.1
  done
  [ -n "$gone" ] || fail "node1 still has node3's route, neighbour or FDB entry"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "node3 removed: its VTEP and routes gone from node1 in %.0f ms (the removal included)\n", (b - a) * 1000 }'
fi

awk -v a="$start" -v b="$(date +%s.%N)" -v m="$mode" 'BEGIN { printf "e2e wall time (%s): %.0f s\n", m, b - a }'
echo PASS
