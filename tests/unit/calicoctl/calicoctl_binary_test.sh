#!/usr/bin/env bash
# The calicoctl binary with its datastore from the environment: apply every valid manifest,
# list each kind, and check a failure exits non-zero with one line on stderr.
set -euo pipefail
calicoctl=$1
data=$2
dir=$(mktemp -d /tmp/calicoctl-bin-XXXXXX)
trap 'rm -rf "$dir"' EXIT
export DATASTORE_TYPE=embedded CALICO_DATASTORE_PATH="$dir/calico.db"
unset ETCD_ENDPOINTS

for f in "$data"/*.yaml; do
  "$calicoctl" apply -f "$f" > "$dir/out" || { echo "apply $f failed"; exit 1; }
  grep -q '^Successfully applied' "$dir/out" || { echo "unexpected: $(cat "$dir/out")"; exit 1; }
done
[ -s "$dir/calico.db" ] || { echo "no datastore file at $dir/calico.db"; exit 1; }
grep -q '^NAME *CIDR *NAT' <<< "$("$calicoctl" get ippools -o wide)" || { echo "no ippool table"; exit 1; }

set +e
printf 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: x\nspec:\n  cidr: 10.250.0.0/16\n  blockSize: 33\n' \
  | "$calicoctl" apply -f - > "$dir/out" 2> "$dir/err"
code=$?
set -e
[ "$code" -ne 0 ] || { echo "invalid pool was accepted"; exit 1; }
[ "$(wc -l < "$dir/err")" -eq 1 ] || { echo "expected one error line, got: $(cat "$dir/err")"; exit 1; }
grep -q 'spec.blockSize: 33 is outside 20-32 for IPv4' "$dir/err" || { echo "wrong error: $(cat "$dir/err")"; exit 1; }

DATASTORE_TYPE=bogus "$calicoctl" get ippools 2> "$dir/err" && { echo "bogus DATASTORE_TYPE accepted"; exit 1; }
grep -q 'bogus' "$dir/err" || { echo "error does not name the bad DATASTORE_TYPE: $(cat "$dir/err")"; exit 1; }
echo "calicoctl binary: ok"
