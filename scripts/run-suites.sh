#!/bin/sh
# Run make targets side by side, each writing to its own log, and keep the output readable:
# each target's log is printed whole, under a header, when that target finishes (never interleaved),
# then one summary line per target (exit code, seconds, pytest's closing line). Exits 1 naming every
# target that failed; a target that fails does not stop the others, so every failure is shown.
#
# Why side by side: the suites spend most of their time waiting on Airflow subprocesses and servers,
# not on the CPU, so on CI's 2 cores they overlap well (see the README's Development section).
#
#   sh scripts/run-suites.sh test-newest test-floor test-distributed lint-ci
set -u

MAKE=${MAKE:-make}
# Seconds between "still running" lines, so a long quiet stretch in CI's log is not mistaken for a hang.
HEARTBEAT=${RUN_SUITES_HEARTBEAT:-60}
logs=$(mktemp -d "${TMPDIR:-/tmp}/pixazo-suites.XXXXXX")
begin=$(date +%s)
pids=""

trap 'for p in $pids; do kill "$p" 2>/dev/null; done; exit 130' INT TERM

for target in "$@"; do
    $MAKE --no-print-directory "$target" >"$logs/$target.log" 2>&1 &
    pids="$pids $!"
    echo "$!" >"$logs/$target.pid"
    echo "$(date +%s)" >"$logs/$target.start"
    echo "[suites] started $target (log: $logs/$target.log)"
done

# CPU-seconds of every process reaped so far (the shell's children and theirs, user + system), from the
# `times` builtin: read after each target is reaped, the difference is that target's CPU. The jobs share
# 2 cores, so CPU, more than each one's wall time, says where the suite's time goes.
# `times` runs in this shell (a command substitution would be a subshell with no children of its own).
children_cpu() {
    times >"$logs/times"
    awk 'NR == 2 { total = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); sub("s", "", t[2]); total += t[1] * 60 + t[2] }; printf "%.0f", total }' "$logs/times"
}
children_cpu >"$logs/cpu"
cpu_before=$(cat "$logs/cpu")

pending="$*"
failed=""
next_beat=$((begin + HEARTBEAT))
while [ -n "$pending" ]; do
    still=""
    for target in $pending; do
        pid=$(cat "$logs/$target.pid")
        if kill -0 "$pid" 2>/dev/null; then
            still="$still $target"
            continue
        fi
        wait "$pid"
        code=$?
        seconds=$(($(date +%s) - $(cat "$logs/$target.start")))
        children_cpu >"$logs/cpu"
        cpu_now=$(cat "$logs/cpu")
        cpu=$((cpu_now - cpu_before))
        cpu_before=$cpu_now
        echo "$code $seconds $cpu" >"$logs/$target.done"
        echo
        echo "======================== $target: exit $code after ${seconds}s (${cpu} CPU-s) ========================"
        cat "$logs/$target.log"
        echo "======================== end of $target ========================"
        [ "$code" -eq 0 ] || failed="$failed $target"
    done
    pending=$still
    if [ -n "$pending" ]; then
        now=$(date +%s)
        if [ "$now" -ge "$next_beat" ]; then
            echo "[suites] $((now - begin))s: still running:$pending"
            next_beat=$((now + HEARTBEAT))
        fi
        sleep 1
    fi
done

echo
children_cpu >"$logs/cpu"
echo "[suites] all done in $(($(date +%s) - begin))s, $(cat "$logs/cpu") CPU-s in all:"
for target in "$@"; do
    read -r code seconds cpu <"$logs/$target.done"
    # pytest's closing line ("1101 passed, 1 xfailed in 512.3s"), when the target ran pytest.
    closing=$(grep -E '^=* *[0-9]+ (passed|failed|error|skipped|xfailed|deselected)' "$logs/$target.log" | tail -n 1 | tr -d '=' | sed 's/^ *//; s/ *$//')
    if [ "$code" -eq 0 ]; then verdict=ok; else verdict=FAILED; fi
    echo "[suites]   $target: $verdict (exit $code, ${seconds}s, ${cpu} CPU-s)${closing:+: $closing}"
done
# CI keeps only the head and tail of a long log, so a failed target's reasons are repeated here, at the
# end: pytest's short summary lines and the first assertion lines of its tracebacks.
for target in $failed; do
    echo "[suites] why $target failed:"
    grep -E '^(FAILED|ERROR) ' "$logs/$target.log" | head -n 20 | sed 's/^/[suites]     /'
    grep -E '^E  |^[^ ]+\.py:[0-9]+: ' "$logs/$target.log" | head -n 40 | cut -c1-400 | sed 's/^/[suites]     /'
done
if [ -n "$failed" ]; then
    echo "[suites] FAILED:$failed (each one's whole output is above, under its header)"
    exit 1
fi
rm -rf "$logs"
