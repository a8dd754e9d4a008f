#!/usr/bin/env bash
# bench/profile.sh: where a visit's time goes, on both sides, for the queue
# bench/exchange.sh keeps in WORK. For each side one visit is timed step by
# step (ferry's -v lines, stamped as they come), one runs under
# `strace -c -f` (every process's system calls) and `strace -c` (ferry's
# own), and one under `perf record` of ferry's own process (CPU samples).
# Needs root and the machine's shared lock. Not a test.
#
#   WORK=/var/tmp/fb PACKETS=2000 PACKET_MIB=1 PREPARE_ONLY=1 bench/exchange.sh
#   WORK=/var/tmp/fb flock -o /run/ferry-itest.lock bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin
WORK=${WORK:?WORK=DIR: the directory bench/exchange.sh prepared}
work=$WORK
out=${OUT:-$work/profile}
[ -f "$work/ready" ] || { echo "no queue in $work: run bench/exchange.sh with WORK=$work PREPARE_ONLY=1 first" >&2; exit 1; }
source bench/stick.sh
bench_ferry
mkdir -p "$out"
bench_nodes
packets=$(find "$queue" -maxdepth 1 -type f -name '[A-Z2-7]*' | wc -l)
megabytes=$(du -sm "$queue" | cut -f1)

trap release_stick EXIT
make_stick "$((megabytes + megabytes / 4 + packets * 8 / 1024 + 64))"
setup() { # host
    mount_stick
    rm -rf "$work/mnt/nncp"
    if [ "$1" = backupsvr ]; then
        mkdir -p "$work/mnt/nncp/$backupsvr_id/$spooler_id"
        find "$queue" -maxdepth 1 -type f -name '[A-Z2-7]*' -exec cp -t "$work/mnt/nncp/$backupsvr_id/$spooler_id/" {} +
        rm -rf "$work/backupsvr/spool" "$work/backupsvr/state"; mkdir -p "$work/backupsvr/spool"
    fi
    sync; umount "$work/mnt"
    sync; echo 3 > /proc/sys/vm/drop_caches
}
# ferry until "safe to remove"; backupsvr's toss after it is stopped.
visit() { # host wrapper...
    local host=$1; shift
    "$@" "$FERRY" handle "$stick" -v --config "$work/$host/ferry.toml" 2> "$out/$host.raw" &
    local pid=$!
    until grep -q "safe to remove" "$out/$host.raw" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    if [ "$host" = backupsvr ]; then
        # The wrapper's child is ferry: stop it, and the toss, by pid.
        local ferry_pid
        ferry_pid=$(pgrep -P "$pid" || echo "$pid")
        kill -TERM "$ferry_pid" 2>/dev/null || true
    fi
    wait "$pid" || true
}
for host in spooler backupsvr; do
    # 1. Step times: each -v line stamped as ferry writes it.
    setup "$host"
    start=$(date +%s.%N)
    "$FERRY" handle "$stick" -v --config "$work/$host/ferry.toml" 2> >(
        while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done > "$out/$host.stamped") &
    pid=$!
    until grep -q "safe to remove" "$out/$host.stamped" 2>/dev/null; do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
    [ "$host" = backupsvr ] && kill -TERM "$pid" 2>/dev/null
    wait "$pid" || true
    sleep 0.2
    awk -v s="$start" '{t=$1; $1=""; printf "%7.3f s %s\n", t-s, substr($0, 1, 160)}' "$out/$host.stamped" > "$out/$host.steps"
    # 2. System calls of every process, and of ferry's own threads: a
    #    process that exec'd something else (an NNCP command), and every
    #    thread or process it made, is set apart.
    setup "$host"; visit "$host" strace -c -f -o "$out/$host.strace-all"
    setup "$host"; visit "$host" strace -f -qq -o "$out/$host.strace-raw"
    awk 'FNR == NR {
             if ($2 ~ /^execve\(/) { if (!first) first = $1; else if ($1 != first) child[$1] = 1 }
             if ($0 ~ /clone/ && $NF ~ /^[0-9]+$/ && ($1 in child)) child[$NF] = 1
             next }
         !($1 in child) { name = ($2 == "<...") ? $3 : $2; sub(/\(.*/, "", name); if (name !~ /^[+-]/) count[name]++ }
         END { for (n in count) printf "%8d %s\n", count[n], n }' "$out/$host.strace-raw" "$out/$host.strace-raw" |
        sort -rn > "$out/$host.strace-ferry"
    rm -f "$out/$host.strace-raw"
    # 3. ferry's own CPU, sampled (its threads, not the commands it runs).
    setup "$host"; visit "$host" perf record -q -e cpu-clock -o "$out/$host.perf"
    perf report -i "$out/$host.perf" --stdio --sort comm 2>/dev/null | grep '%' > "$out/$host.perf-comm.txt" || true
    # ferry's threads carry its name or a dispatch queue's (…default-qos).
    comms=$(awk '$2 !~ /^(nncp-|strace|perf)/ {print $2}' "$out/$host.perf-comm.txt" | paste -sd, -)
    perf report -i "$out/$host.perf" --stdio --comm "$comms" --sort dso,sym 2>/dev/null |
        grep '%' | head -40 > "$out/$host.perf.txt" || true
done
echo "$packets packets, $megabytes MiB; $(date -u +%Y-%m-%dT%H:%MZ)"
for host in spooler backupsvr; do
    echo "== $host: steps"; cat "$out/$host.steps"
    echo "== $host: system calls, every process (strace -c -f)"; head -25 "$out/$host.strace-all"
    echo "== $host: system calls of ferry's own threads (count, name)"; head -25 "$out/$host.strace-ferry"
    echo "== $host: CPU samples by command (perf, cpu-clock)"; cat "$out/$host.perf-comm.txt"
    echo "== $host: ferry's own CPU samples"; head -25 "$out/$host.perf.txt"
done
