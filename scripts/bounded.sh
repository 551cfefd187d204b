#!/usr/bin/env bash
# Runs a command with a time limit, its output line-buffered. Past the limit it prints the tests that started without
# finishing and every thread's stack of the command's own binaries (gdb), kills the command and all it started, and
# exits 124: a hang fails CI in bounded time and says where it was.
# Usage: scripts/bounded.sh SECONDS command [arguments...]
set -uo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS command [arguments...]" >&2
    exit 2
fi
limit=$1
shift
output=$(mktemp /tmp/wahost-bounded.XXXXXX)
started=$SECONDS

# The command leads a session of its own, so everything it starts can be found and killed as one.
setsid stdbuf -oL -eL "$@" >"$output" 2>&1 </dev/null &
command_pid=$!
tail -n +1 -s 0.2 -f --pid="$command_pid" "$output" &
tail_pid=$!

kill_all() {
    kill -TERM -- "-$command_pid" 2>/dev/null
    sleep 5
    kill -KILL -- "-$command_pid" 2>/dev/null
    pkill -KILL -s "$command_pid" 2>/dev/null
}

report_hang() {
    touch "$output.hung"
    sleep 1 # let tail print the last lines first
    echo "bounded: '$*' still running after $limit s"
    echo "bounded: tests started and not finished:"
    sed -n 's/^.*◇ Test \([^ ]*\) started\.$/\1/p' "$output" | sort -u >"$output.started"
    sed -n 's/^.*\(✔\|✘\) Test \([^ ]*\) \(passed\|failed\).*$/\2/p' "$output" | sort -u >"$output.ended"
    comm -23 "$output.started" "$output.ended" | sed 's/^/    /'
    echo "bounded: processes:"
    ps -o pid,ppid,etimes,stat,args -s "$command_pid" | cut -c1-240
    local build_dir
    build_dir=$(cd "$(dirname "$0")/.." && pwd)/.build
    for pid in $(ps -o pid= -s "$command_pid"); do
        local executable
        executable=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
        case "$executable" in "$build_dir"/*) ;; *) continue ;; esac
        echo "bounded: threads of $pid ($executable):"
        timeout 180 gdb -p "$pid" -batch -nx -ex "set complaints 0" -ex "set pagination off" -ex "thread apply all bt 40" 2>&1 \
            | grep -v '^During symbol reading\|^\[New LWP\|^warning: \|^Using host libthread_db\|^\[Thread debugging' | cut -c1-300 | head -n 4000
    done
    rm -f "$output.started" "$output.ended"
}

interrupted() {
    kill_all
    rm -f "$output" "$output.hung" "$output.done"
    exit 130
}
trap interrupted INT TERM

# The watchdog polls for the command's end rather than sleeping the whole limit: a background job of a non-interactive
# shell ignores SIGINT, so a long sleep could not be cut short that way.
(
    while [ ! -e "$output.done" ]; do
        if [ $((SECONDS - started)) -ge "$limit" ]; then
            report_hang "$@"
            kill_all
            break
        fi
        sleep 0.5
    done
) &
watchdog_pid=$!

wait "$command_pid"
status=$?
touch "$output.done"
wait "$watchdog_pid" 2>/dev/null
wait "$tail_pid" 2>/dev/null
# Nothing the command started outlives it (a leftover holding CI's output open would hang the run).
pkill -KILL -s "$command_pid" 2>/dev/null
if [ -e "$output.hung" ]; then
    echo "bounded: '$*' killed after $limit s" >&2
    status=124
fi
rm -f "$output" "$output.hung" "$output.done"
echo "bounded: '$*' ended with status $status after $((SECONDS - started)) s"
exit "$status"
