#!/usr/bin/env bash
# bench/status.sh: the wall time and peak RSS of `ferry status` at the
# spooler with a large queue and a peer state of many datasets, against its
# parts: ferry's own start (`ferry --help`) and `nncp-cfgdir -dump`, which
# reads the NNCP config. Not a test.
#
# It uses the nodes and the queue that bench/exchange.sh keeps in WORK, and
# the visit reports its last run left there:
#
#   WORK=/var/tmp/fb SCALE=1 PREPARE_ONLY=1 bench/exchange.sh
#   WORK=/var/tmp/fb SCALE=1 flock -o /run/ferry-itest.lock bench/exchange.sh
#   WORK=/var/tmp/fb DATASETS=100 bench/status.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=/opt/swift/usr/bin:$PATH
WORK=${WORK:?WORK=DIR: the directory bench/exchange.sh kept}
DATASETS=${DATASETS:-100}
RUNS=${RUNS:-11}
[ -f "$WORK/backupsvr/state/last-visit.json" ] || { echo "no visit in $WORK: run bench/exchange.sh with WORK=$WORK first" >&2; exit 1; }
# FERRY=PATH measures another build (an older one, for a before and after).
if [ -z "${FERRY:-}" ]; then
    swift build -c release --product ferry --static-swift-stdlib >/dev/null
    FERRY=$PWD/.build/release/ferry
fi
config=$WORK/spooler/ferry.toml

# backupsvr's last visit, as the spooler would have verified it from the
# journal, with DATASETS datasets on two drives.
python3 - "$WORK" "$DATASETS" <<'PY'
import json, sys
work, count = sys.argv[1], int(sys.argv[2])
visit = json.load(open(f"{work}/backupsvr/state/last-visit.json"))
visit["datasets"] = [{"dataset": f"laptop{i % 10}/tank/data{i}", "snapshot": "ferry-2026-12-01T10:00:00Z",
                      "created": "2026-12-01T10:00:00Z", "received": "2026-12-01T11:00:00Z",
                      "pools": ["backup-a", "backup-b"]} for i in range(count)]
backupsvr_id = open(f"{work}/backupsvr/keys/self/id").read().strip()
peer = {"node": "backupsvr", "nodeID": backupsvr_id, "seq": 1000, "time": visit["finished"] or visit["started"],
        "verified": visit["started"], "visit": visit}
json.dump(peer, open(f"{work}/spooler/state/peer-state.json", "w"))
PY

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
timed() { # command... -> median seconds of RUNS warm runs
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2 || true; exit 1; }
    for _ in $(seq "$RUNS"); do
        local s e; s=$(now); "$@" >/dev/null 2>&1; e=$(now)
        awk -v a="$s" -v b="$e" 'BEGIN {printf "%.4f\n", b-a}'
    done | median
}
dump=$(mktemp -d)
trap 'rm -rf "$dump"' EXIT
cfgdir() { rm -rf "$dump/cfg"; nncp-cfgdir -cfg "$WORK/spooler/nncp.hjson" -dump "$dump/cfg"; }
queued=$(find "$WORK/spooler/spool/$(cat "$WORK/backupsvr/keys/self/id")/tx" -maxdepth 1 -type f -name '[A-Z2-7]*' | wc -l)
rss=$(/usr/bin/time -f %M "$FERRY" status --config "$config" 2>&1 >/dev/null | tail -1)
date -u +"%Y-%m-%d %H:%M UTC, $(nproc) cores, $(uname -r)"
echo "ferry status at the spooler: $queued packets queued, a peer state of $DATASETS datasets; warm, median of $RUNS"
printf '  ferry status         %ss  (peak RSS %s MiB, ferry and nncp-cfgdir the larger)\n' "$(timed "$FERRY" status --config "$config")" "$((rss / 1024))"
printf '  ferry status --json  %ss\n' "$(timed "$FERRY" status --json --config "$config")"
printf '  ferry --help         %ss  (start-up alone)\n' "$(timed "$FERRY" --help)"
printf '  nncp-cfgdir -dump    %ss\n' "$(timed cfgdir)"
