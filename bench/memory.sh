#!/usr/bin/env bash
# bench/memory.sh: where ferry's resident memory goes. Two measurements on
# the nodes and the queue that bench/exchange.sh keeps in WORK:
#
# 1. backupsvr's visit of the whole queue, step by step: with -v each step's
#    line carries the peak resident size so far (getrusage of ferry
#    itself), up to the first line of the toss, which is then stopped.
# 2. an empty spooler visit held inside its syncfs (FERRY_TEST_SYNC_DELAY),
#    while /proc/PID/smaps says what is resident: the binary's own pages,
#    the shared libraries, and the heap and stacks.
#
#   WORK=/var/tmp/fb SCALE=1 PREPARE_ONLY=1 bench/exchange.sh
#   WORK=/var/tmp/fb SCALE=1 flock -o /run/ferry-itest.lock bench/memory.sh
#
# Needs root (a loop-device stick) and the machine's lock. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin
WORK=${WORK:?WORK=DIR: the directory bench/exchange.sh prepared}
work=$WORK
[ -f "$work/ready" ] || { echo "no queue in $work: run bench/exchange.sh with WORK=$work PREPARE_ONLY=1 first" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bench/memory.sh needs root (loop devices, mounts)" >&2; exit 1; }
source bench/stick.sh
bench_ferry
bench_nodes
packets=$(find "$queue" -maxdepth 1 -type f -name '[A-Z2-7]*' | wc -l)
megabytes=$(du -sm "$queue" | cut -f1)

cleanup() {
    release_stick
    if [ -d "$queue.away" ]; then rmdir "$queue" 2>/dev/null || true; mv "$queue.away" "$queue"; fi
}
trap cleanup EXIT
make_stick "$((megabytes + megabytes / 4 + packets * 8 / 1024 + 64))"

echo "$packets packets, $megabytes MiB; $(date -u +%Y-%m-%dT%H:%MZ)"

# 1. backupsvr, step by step.
mount_stick
rm -rf "$work/mnt/nncp"
mkdir -p "$work/mnt/nncp/$backupsvr_id/$spooler_id"
find "$queue" -maxdepth 1 -type f -name '[A-Z2-7]*' -exec cp -t "$work/mnt/nncp/$backupsvr_id/$spooler_id/" {} +
rm -rf "$work/backupsvr/spool" "$work/backupsvr/state"; mkdir -p "$work/backupsvr/spool"
sync; umount "$work/mnt"
: > "$work/memory.log"
"$FERRY" handle "$stick" -v --config "$work/backupsvr/ferry.toml" 2> "$work/memory.log" &
pid=$!
until grep -q "tossing: applying" "$work/memory.log"; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" || true
echo "== backupsvr, peak resident size after each step (KiB)"
awk '/peak-rss-kib=/ {
        rss = $0; sub(/.*peak-rss-kib=/, "", rss); sub(/ .*/, "", rss)
        step = ""; for (i = 2; i <= NF && $i !~ /=/; i++) step = step " " $i
        printf "%8d %s\n", rss, step }' "$work/memory.log"

# 2. An empty spooler visit, held in its syncfs for a look at its pages.
mount_stick
rm -rf "$work/mnt/nncp"; sync; umount "$work/mnt"
mv "$queue" "$queue.away"; mkdir "$queue"
FERRY_TEST_SYNC_DELAY=3 "$FERRY" handle "$stick" --config "$work/spooler/ferry.toml" 2>/dev/null &
pid=$!
sleep 2
echo "== an empty spooler visit inside its syncfs: resident KiB by mapping"
awk -v binary="$(readlink -f "$FERRY")" '
    /^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "") ? "(anonymous: heap, stacks)" : $6; if (name == binary) name = name " " $2 }
    /^Rss:/ { rss[name] += $2; total += $2 }
    END { for (n in rss) if (rss[n] >= 64) printf "%8d  %s\n", rss[n], n; printf "%8d  total\n", total }' "/proc/$pid/smaps" | sort -rn
wait "$pid" || true
rmdir "$queue"; mv "$queue.away" "$queue"
