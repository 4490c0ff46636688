#!/usr/bin/env bash
# CTest splits a discovered test name at ';', and each half then matches no Catch test and
# "passes" without running anything. Refuse such names so no test can silently vanish.
set -euo pipefail
bad=$(grep -rnE 'TEST_CASE\("[^"]*;' "$1" --include='*.cc' --include='*.h' || true)
if [ -n "$bad" ]; then
  echo "test names must not contain ';' (CTest would split them into tests that run nothing):"
  echo "$bad"
  exit 1
fi
echo "test names: ok"
