#!/bin/sh
# run-fuzzer.sh BINARY CORPUS SECONDS [REGRESS]: first run every input kept
# in REGRESS (crashes found before, each a regression test), then fuzz for
# SECONDS on a scratch copy of the seed corpus; a crash fails the test and
# leaves its input in the scratch dir (copy it to REGRESS once fixed).
set -eu
bin=$1 corpus=$2 secs=$3 regress=${4:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/cf-fuzz.XXXXXX")
mkdir -p "$work/corpus"
[ -d "$corpus" ] && cp -r "$corpus"/. "$work/corpus/" 2>/dev/null || true
cd "$work"
if [ -n "$regress" ] && [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
    if ! "$bin" -rss_limit_mb=2048 "$regress"/* >"$work/regress.log" 2>&1; then
        tail -n 60 "$work/regress.log"
        echo "a regression input of $regress fails again; log in $work" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "regression inputs: $(ls "$regress" | wc -l) ok"
fi
if "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 "$work/corpus" >"$work/log" 2>&1; then
    tail -n 12 "$work/log"
    rm -rf "$work"
    echo "1 passed, 0 failed"
else
    tail -n 60 "$work/log"
    echo "fuzzer found a failure; inputs kept in $work" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
