#!/usr/bin/env bash
# make fuzz: run every fuzz target of the module for FUZZTIME each (default
# 60s), one after the other, and print the figures at the end.
#
#   ./scripts/fuzz.sh [FUZZTIME] [PACKAGE_PATTERN]
#   ./scripts/fuzz.sh 5m ./audit
#
# Targets are found by name (func FuzzXxx in *_test.go), so a new one is
# picked up without editing this file. A crasher is written by go test to
# the package's testdata/fuzz/FuzzXxx/ directory: commit it, and 'go test'
# replays it from then on. Minimization of a new interesting input is
# capped (FUZZMINIMIZE, default 5s) so that large inputs do not eat the
# budget of the run.
set -uo pipefail
cd "$(dirname "$0")/.."

fuzztime=${1:-${FUZZTIME:-60s}}
pattern=${2:-./...}
minimize=${FUZZMINIMIZE:-5s}
go=${GO:-go}

pkgs=$($go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}|{{.ImportPath}}{{end}}' "$pattern")
failed=0
summary=()
for line in $pkgs; do
  dir=${line%%|*}
  pkg=${line#*|}
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u)
  for t in $targets; do
    echo "== $pkg $t for $fuzztime"
    start=$(date +%s)
    out=$($go test "$pkg" -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" 2>&1)
    rc=$?
    secs=$(( $(date +%s) - start ))
    execs=$(printf '%s\n' "$out" | grep -o 'execs: [0-9]*' | tail -1 | awk '{print $2}')
    printf '%s\n' "$out" | tail -4
    if [ $rc -ne 0 ]; then
      failed=1
      summary+=("FAIL  $pkg $t (${secs}s) — a crasher is in $dir/testdata/fuzz/$t/")
    else
      summary+=("ok    $pkg $t ${secs}s, ${execs:-?} execs")
    fi
  done
done

echo
echo "== fuzz summary (fuzztime $fuzztime per target)"
printf '%s\n' "${summary[@]}"
exit $failed
