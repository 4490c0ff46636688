#!/usr/bin/env bash
# Runs a libFuzzer binary for a bounded time on a temporary copy of a seed corpus, so that the
# repository's seeds are never written (libFuzzer adds what it finds to its first corpus
# directory). Fails when the fuzzer finds a crash, a leak, a timeout or a sanitizer report, and
# then prints the input as hex and base64 beside the path of the saved artifact.
# Usage: run_fuzzer.sh <fuzzer> <seed dir> <seconds> <artifact dir>
set -euo pipefail
fuzzer=$1 seeds=$2 seconds=$3 artifacts=$4

if [ ! -x "$fuzzer" ]; then
  echo "run_fuzzer: $fuzzer is not built (needs clang++ and libclang-rt-dev)" >&2
  exit 1
fi
corpus=$(mktemp -d "${TMPDIR:-/tmp}/calico-fuzz-corpus.XXXXXX")
trap 'rm -rf "$corpus"' EXIT
find "$seeds" -maxdepth 1 -type f ! -name '*.md' -exec cp {} "$corpus/" \;
rm -rf "$artifacts"
mkdir -p "$artifacts"
log="$artifacts/fuzz.log"

echo "run_fuzzer: $(basename "$fuzzer") for ${seconds}s on $(ls "$corpus" | wc -l) seeds"
rc=0
# -timeout: an input slower than 10 s is a hang, reported like a crash. -max_len covers the
# largest BGP message (4096) plus room for a second framed message.
"$fuzzer" -max_total_time="$seconds" -max_len=4200 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || rc=$?

grep -E '^(Done [0-9]+ runs|stat::)' "$log" || true
if [ "$rc" -eq 0 ] && ! ls "$artifacts" | grep -qv '^fuzz.log$'; then
  echo "run_fuzzer: no crash; corpus grew to $(ls "$corpus" | wc -l) inputs"
  exit 0
fi
echo "run_fuzzer: FAILED (exit $rc); libFuzzer's report from $log:"
# From the first report line (sanitizer, fuzz property, libFuzzer's own) to the end, bounded.
first=$(grep -n -m1 -E 'ERROR|runtime error|property violated|deadly signal' "$log" | cut -d: -f1)
tail -n +"${first:-1}" "$log" | head -n 150
for input in "$artifacts"/*; do
  [ "$input" = "$log" ] && continue
  echo "---- $input ($(stat -c %s "$input") bytes), hex:"
  od -An -tx1 -v "$input" | head -n 300
  echo "---- base64:"
  base64 -w 0 "$input" | head -c 12000
  echo
  echo "---- reproduce: $fuzzer $input"
done
exit 1
