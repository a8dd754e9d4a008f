#!/usr/bin/env bash
# bench/exchange.sh: wall time of `ferry handle` on both sides against the
# same NNCP steps run by hand (DESIGN.md section 2), and against a plain cp
# + sync of the same bytes (the physical limit), side by side in one run,
# on a loop-device ext4 stick. Also ferry's peak RSS. Prints medians and
# ratios; needs root. Not a test: nothing here fails on a slow machine.
#
#   PACKETS=200 PACKET_MIB=5 ROUNDS=3 bench/exchange.sh
#   PACKETS=2000 PACKET_MIB=1 bench/exchange.sh
#   SCALE=1 bench/exchange.sh            # 10,000 packets of 64 KiB
#   CASES="backupsvr" bench/exchange.sh  # only some of: empty spooler backupsvr
#
# Making the queue (one nncp-exec per packet) takes longer than the
# measurement and needs no stick. With WORK=DIR the NNCP nodes and the
# queue are kept in DIR and used again; PREPARE_ONLY=1 stops once they are
# made, so that only the measurement needs the machine's shared lock:
#
#   WORK=/var/tmp/fb PREPARE_ONLY=1 PACKETS=2000 PACKET_MIB=1 bench/exchange.sh
#   WORK=/var/tmp/fb PACKETS=2000 PACKET_MIB=1 flock -o /run/ferry-itest.lock bench/exchange.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${SCALE:-}" ]; then
    PACKETS=${PACKETS:-10000}
    PACKET_KIB=${PACKET_KIB:-64}
fi
PACKETS=${PACKETS:-200}
PACKET_MIB=${PACKET_MIB:-5}
PACKET_KIB=${PACKET_KIB:-$((PACKET_MIB * 1024))}
ROUNDS=${ROUNDS:-3}
HANDLER_SECONDS=${HANDLER_SECONDS:-30}
PATH=/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin

[ "$(id -u)" -eq 0 ] || { echo "bench/exchange.sh needs root (loop devices, mounts)" >&2; exit 1; }

if [ -n "${WORK:-}" ]; then
    work=$WORK
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/ferry-bench.XXXXXX)
fi
source bench/stick.sh
cleanup() {
    release_stick
    [ -n "${KEEP_WORK:-}" ] || [ -n "${WORK:-}" ] && { echo "kept $work"; return; }
    rm -rf "$work"
}
trap cleanup EXIT
cfg() { echo "-cfg $work/$1/nncp.hjson -noprogress -quiet"; }

# Three NNCP nodes that know each other, as in the tests, and the queue:
# laptop -> directory -> spooler, tossed into the queue for backupsvr.
prepare() {
    rm -rf "${work:?}"/{laptop,spooler,backupsvr,lan}
    for node in laptop spooler backupsvr; do
        mkdir -p "$work/$node/spool"
        nncp-cfgnew -nocomments > "$work/$node/new.hjson"
        nncp-cfgdir -cfg "$work/$node/new.hjson" -dump "$work/$node/keys"
    done
    cat > "$work/handler.sh" <<HANDLER
#!/bin/sh
/bin/cat > /dev/null
/bin/sleep \$(/bin/cat $work/handler-seconds 2>/dev/null || echo 0)
HANDLER
    chmod 755 "$work/handler.sh"
    python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
nodes = ["laptop", "spooler", "backupsvr"]
keys = {n: {k: open(f"{work}/{n}/keys/self/{k}").read().strip()
            for k in ["id", "exchpub", "exchprv", "signpub", "signprv", "noisepub", "noiseprv"]} for n in nodes}
public = lambda n: {k: keys[n][k] for k in ["id", "exchpub", "signpub", "noisepub"]}
for n in nodes:
    neigh = {"self": public(n)}
    for o in nodes:
        if o == n: continue
        neigh[o] = public(o)
        if n == "laptop" and o == "backupsvr": neigh[o]["via"] = ["spooler"]
        if n == "backupsvr": neigh[o]["exec"] = {"zfsreceive": [f"{work}/handler.sh"]}
    json.dump({"spool": f"{work}/{n}/spool", "log": f"{work}/{n}/log", "self": keys[n], "neigh": neigh},
              open(f"{work}/{n}/nncp.hjson", "w"), indent=1)
for host, peer in [("spooler", "backupsvr"), ("backupsvr", "spooler")]:
    open(f"{work}/{host}/ferry.toml", "w").write(
        f'role = "{host}"\nnncp-config = "{work}/{host}/nncp.hjson"\nnncp-user = ""\npeer = "{peer}"\n'
        f'state-dir = "{work}/{host}/state"\nmount-root = "{work}/{host}/mnt"\n')
PY
    # Two at a time: the machine has two cores.
    seq "$PACKETS" | xargs -P 2 -I{} sh -c \
        "head -c $((PACKET_KIB << 10)) /dev/urandom | nncp-exec $(cfg laptop) -nice B backupsvr zfsreceive laptop/root"
    mkdir -p "$work/lan"
    nncp-xfer $(cfg laptop) -tx -mkdir -node spooler "$work/lan"
    nncp-xfer $(cfg spooler) -rx "$work/lan"
    nncp-toss $(cfg spooler) -seen
    rm -rf "$work/lan" "$work/laptop/spool"
    echo "$PACKETS $PACKET_KIB" > "$work/ready"
}
if [ "$(cat "$work/ready" 2>/dev/null)" != "$PACKETS $PACKET_KIB" ]; then
    prepare
fi
[ -n "${PREPARE_ONLY:-}" ] && { echo "prepared $PACKETS packets of $PACKET_KIB KiB in $work"; exit 0; }
bench_ferry
bench_nodes
queued=$(find "$queue" -maxdepth 1 -type f -name '[A-Z2-7]*' | wc -l)

total_mib=$((PACKETS * PACKET_KIB / 1024))
stick_mib=$((total_mib + total_mib / 4 + PACKETS * 8 / 1024 + 64))
make_stick "$stick_mib"
wipe_stick() { mount_stick; rm -rf "$work/mnt/nncp"; sync; umount "$work/mnt"; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f\n", b-a}'; }
dropcaches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# The spooler: the stick comes in empty (the queue is what it carries).
spooler_setup() { wipe_stick; }
# The hand-run spooler steps of DESIGN.md section 2, with the mount.
spooler_hand() {
    mount_stick
    mkdir -p "$work/mnt/nncp"
    nncp-xfer $(cfg spooler) -rx "$work/mnt/nncp" || true
    nncp-toss $(cfg spooler) -seen
    nncp-xfer $(cfg spooler) -tx -keep -mkdir -node backupsvr "$work/mnt/nncp"
    sync; umount "$work/mnt"
}
# A plain copy of the same packets, the physical limit.
spooler_copy() {
    mount_stick
    mkdir -p "$work/mnt/nncp/$backupsvr_id/$spooler_id"
    find "$queue" -maxdepth 1 -type f -name '[A-Z2-7]*' -exec cp -t "$work/mnt/nncp/$backupsvr_id/$spooler_id/" {} +
    sync; umount "$work/mnt"
}
# ferry logs its own peak RSS (getrusage of itself, not of the NNCP commands) with -v.
spooler_ferry() {
    "$FERRY" handle "$stick" -v --config "$work/spooler/ferry.toml" 2> "$work/ferry.log"
    sed -n 's/.*safe to remove.*peak-rss-kib=\([0-9]*\).*/\1/p' "$work/ferry.log" >> "$work/rsses"
}

# backupsvr: the stick comes in with the spooler's packets on it, and
# backupsvr's spool has never seen them.
backupsvr_setup() {
    wipe_stick
    spooler_copy
    rm -rf "$work/backupsvr/spool" "$work/backupsvr/state"
    mkdir -p "$work/backupsvr/spool"
}
# The hand-run backupsvr steps: rx, ack, tx, rm, sync, unmount.
backupsvr_hand() {
    mount_stick
    nncp-xfer $(cfg backupsvr) -rx -mkdir "$work/mnt/nncp"
    nncp-ack $(cfg backupsvr) -node spooler 4> "$work/acklist"
    nncp-xfer $(cfg backupsvr) -tx -mkdir "$work/mnt/nncp"
    nncp-rm $(cfg backupsvr) -node spooler -pkt < "$work/acklist" || true
    sync; umount "$work/mnt"
}
# The physical limit: the packets copied off the stick onto the local disk.
backupsvr_copy() {
    mount_stick
    rm -rf "$work/copy"; mkdir -p "$work/copy"
    cp -r "$work/mnt/nncp" "$work/copy/"
    sync; umount "$work/mnt"
}
# ferry to "safe to remove". The toss that follows would run the handler
# (HANDLER_SECONDS per packet): it is stopped once it starts, and its
# packets stay queued, as after any interrupted toss.
backupsvr_ferry() {
    : > "$work/b.log"
    "$FERRY" handle "$stick" -v --config "$work/backupsvr/ferry.toml" 2> "$work/b.log" &
    local pid=$!
    until grep -q "safe to remove" "$work/b.log"; do
        kill -0 "$pid" 2>/dev/null || { cat "$work/b.log" >&2; return 1; }
        sleep 0.01
    done
    echo "$(now)" > "$work/released"
    # nncp-rm of backupsvr's copies comes after the line; its memory counts
    # too: the peak up to the toss's first line.
    until grep -q "tossing: applying" "$work/b.log"; do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    grep -o 'peak-rss-kib=[0-9]*' "$work/b.log" | cut -d= -f2 | sort -n | tail -1 >> "$work/rsses"
    kill -TERM "$pid"; wait "$pid" || true
}

measure() { # host side -> prints seconds
    local start end
    "${1}_setup" >/dev/null 2>&1
    dropcaches
    rm -f "$work/released"
    start=$(now)
    "${1}_$2" >/dev/null 2> "$work/side.err" || { echo "$1 $2 failed:" >&2; tail -5 "$work/side.err" >&2; }
    end=$(now)
    [ -f "$work/released" ] && end=$(cat "$work/released")
    elapsed "$start" "$end"
}

rounds() { # host label
    local host=$1 f h c round order side
    : > "$work/f"; : > "$work/h"; : > "$work/c"; : > "$work/rsses"
    # The order turns each round, so that no side always goes first.
    for round in $(seq "$ROUNDS"); do
        case $((round % 3)) in
            1) order="ferry hand copy" ;; 2) order="hand copy ferry" ;; 0) order="copy ferry hand" ;;
        esac
        for side in $order; do
            measure "$host" "$side" >> "$work/${side:0:1}"
        done
    done
    f=$(median < "$work/f"); h=$(median < "$work/h"); c=$(median < "$work/c")
    printf '%-40s ferry %7ss  hand-run %7ss  cp+sync %7ss  ferry/hand %s  ferry/cp %s  peak RSS %s MiB\n' \
        "$2" "$f" "$h" "$c" "$(ratio "$f" "$h")" "$(ratio "$f" "$c")" "$(( $(sort -n "$work/rsses" | tail -1) / 1024 ))"
    echo "  rounds: ferry $(paste -sd' ' "$work/f"); hand $(paste -sd' ' "$work/h"); cp $(paste -sd' ' "$work/c")"
}

# ferry's own start, cold (caches dropped) and warm, against nncp-xfer's,
# and `ferry status`, which reads the NNCP config (nncp-cfgdir) too.
start_time() { # cold|warm command...
    local mode=$1; shift
    for _ in $(seq 5); do
        [ "$mode" = cold ] && dropcaches
        local s e; s=$(now); "$@" >/dev/null 2>&1 || true; e=$(now)
        awk -v a="$s" -v b="$e" 'BEGIN {printf "%.4f\n", b-a}'
    done | median
}
date -u +"%Y-%m-%d %H:%M UTC, $(nproc) cores, $(uname -r)"
printf 'start-up, median of 5: ferry --help cold %ss warm %ss; nncp-xfer -version cold %ss warm %ss; ferry status (%s queued) cold %ss warm %ss\n' \
    "$(start_time cold "$FERRY" --help)" "$(start_time warm "$FERRY" --help)" \
    "$(start_time cold nncp-xfer -version)" "$(start_time warm nncp-xfer -version)" "$queued" \
    "$(start_time cold "$FERRY" status --config "$work/spooler/ferry.toml")" \
    "$(start_time warm "$FERRY" status --config "$work/spooler/ferry.toml")"

echo "ferry exchange benchmark: $queued packets of $PACKET_KIB KiB ($total_mib MiB), ${stick_mib} MiB ext4 stick on $stick, medians of $ROUNDS rounds"
# CASES picks some of the three: "empty spooler backupsvr".
cases=" ${CASES:-empty spooler backupsvr} "
if [[ $cases == *" empty "* ]]; then
    mv "$queue" "$queue.away"; mkdir "$queue"
    rounds spooler "spooler, empty queue"
    rmdir "$queue"; mv "$queue.away" "$queue"
fi
if [[ $cases == *" spooler "* ]]; then rounds spooler "spooler, $queued packets"; fi
echo "$HANDLER_SECONDS" > "$work/handler-seconds"
if [[ $cases == *" backupsvr "* ]]; then rounds backupsvr "backupsvr, $queued packets, to safe to remove"; fi
