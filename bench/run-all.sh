#!/usr/bin/env bash
# run-all.sh: the full benchmark in one command, for docs/BENCHMARKS.md.
#
#   bench/run-all.sh [BUILDDIR] [OUTDIR]      (build/hbench, BUILDDIR/bench-results)
#
# Sets up BUILDDIR as a release build if it is not one yet, builds the daemon
# and the benchmark, records the machine's load before and after, and runs
# every phase: closed loop (64 clients x 4 in flight, 10 s), open loop at
# 5,000 transitions/s (10 s), the store phase (20,000 lifecycles), the
# in-process engine and the ceilings, and scale mode (1,000,000 finished
# claims, 1,000,000 pending timers, fire 10,000; latency at 1,000/s there and
# on 1,000 claims).  Writes OUTDIR/bench.txt
# (the table) and OUTDIR/bench.json.  Takes about 5 minutes and ~6 GiB of
# temporary disk under $TMPDIR (/tmp), removed at the end.  Extra arguments
# after OUTDIR go to claimflow-bench (e.g. --scale 0 to skip scale mode).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/hbench}
out=${2:-$build/bench-results}
shift $(( $# < 2 ? $# : 2 ))

[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" adapters/claimflowd bench/claimflow-bench >/dev/null
mkdir -p "$out"

cmd=("$build/bench/claimflow-bench" --daemon "$build/adapters/claimflowd"
     --workflows workflows --json "$out/bench.json" --scale 1000000 "$@")
{
  echo "# command: ${cmd[*]}"
  echo "# uptime before: $(uptime)"
} >"$out/bench.txt"
status=0
"${cmd[@]}" >>"$out/bench.txt" || status=$?
echo "# uptime after: $(uptime)" >>"$out/bench.txt"
cat "$out/bench.txt"
echo "run-all: wrote $out/bench.txt and $out/bench.json" >&2
exit $status
