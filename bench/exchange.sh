#!/usr/bin/env bash
# bench/exchange.sh: wall time of `ferry handle` against the same NNCP steps
# run by hand, and against a plain cp + sync of the same bytes (the physical
# limit), side by side in one run, on a loop-device stick. Also ferry's peak
# RSS. Prints medians and ratios; needs root. Not a test: nothing here fails
# on a slow machine.
#
#   PACKETS=200 PACKET_MIB=5 ROUNDS=3 bench/exchange.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PACKETS=${PACKETS:-200}
PACKET_MIB=${PACKET_MIB:-5}
ROUNDS=${ROUNDS:-3}
HANDLER_SECONDS=${HANDLER_SECONDS:-30}
PATH=/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin

[ "$(id -u)" -eq 0 ] || { echo "bench/exchange.sh needs root (loop devices, mounts)" >&2; exit 1; }
swift build -c release --product ferry --static-swift-stdlib >/dev/null
FERRY=$PWD/.build/release/ferry

work=$(mktemp -d /tmp/ferry-bench.XXXXXX)
stick=
cleanup() {
    [ -n "${KEEP_WORK:-}" ] && { echo "kept $work"; return; }
    mountpoint -q "$work/mnt" && umount "$work/mnt"
    for host in spooler backupsvr; do
        for m in "$work/$host/mnt/"*; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
    done
    [ -n "$stick" ] && losetup -d "$stick"
    rm -rf "$work"
}
trap cleanup EXIT

# Three NNCP nodes that know each other, as in the tests.
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
cfg() { echo "-cfg $work/$1/nncp.hjson -noprogress -quiet"; }
spooler_id=$(cat "$work/spooler/keys/self/id")
backupsvr_id=$(cat "$work/backupsvr/keys/self/id")

total_mib=$((PACKETS * PACKET_MIB))
stick_mib=$((total_mib + total_mib / 4 + 64))
truncate -s "${stick_mib}M" "$work/stick.img"
mkfs.ext4 -q -L FERRY-BENCH "$work/stick.img"
stick=$(losetup --find --show "$work/stick.img")
mkdir -p "$work/mnt"
"$FERRY" enroll "$stick" --config "$work/spooler/ferry.toml" >/dev/null

mount_stick() { mount -o nosuid,nodev,noexec,nosymfollow "$stick" "$work/mnt"; }
wipe_stick() { mount_stick; rm -rf "$work/mnt/nncp"; sync; umount "$work/mnt"; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

# The hand-run spooler sequence of DESIGN.md section 2, with the mount.
hand_spooler() {
    mount_stick
    mkdir -p "$work/mnt/nncp"
    nncp-xfer $(cfg spooler) -rx "$work/mnt/nncp" || true
    nncp-toss $(cfg spooler) -seen
    nncp-xfer $(cfg spooler) -tx -keep -mkdir -node backupsvr "$work/mnt/nncp"
    sync; umount "$work/mnt"
}
# A plain copy of the same packets, the physical limit.
copy_spooler() {
    mount_stick
    mkdir -p "$work/mnt/nncp/$backupsvr_id/$spooler_id"
    cp "$work/spooler/spool/$backupsvr_id/tx/"[A-Z2-7]* "$work/mnt/nncp/$backupsvr_id/$spooler_id/" 2>/dev/null || true
    sync; umount "$work/mnt"
}
# ferry logs its own peak RSS (getrusage of itself, not of the NNCP commands) with -v.
ferry_spooler() {
    "$FERRY" handle "$stick" -v --config "$work/spooler/ferry.toml" 2> "$work/ferry.log"
    sed -n 's/.*peak-rss-kib=\([0-9]*\).*/\1/p' "$work/ferry.log" > "$work/rss"
}

measure() { # label function -> prints seconds
    local start end
    wipe_stick
    sync; echo 3 > /proc/sys/vm/drop_caches
    start=$(now); "$2" >/dev/null 2>&1; end=$(now)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f\n", b-a}'
}

run_spooler_rounds() { # label
    local f h c
    : > "$work/f"; : > "$work/h"; : > "$work/c"; : > "$work/rsses"
    # The order turns each round, so that no side always goes first.
    local round order
    for round in $(seq "$ROUNDS"); do
        case $((round % 3)) in
            1) order="f h c" ;; 2) order="h c f" ;; 0) order="c f h" ;;
        esac
        for side in $order; do
            case $side in
                f) measure ferry ferry_spooler >> "$work/f"; cat "$work/rss" >> "$work/rsses" ;;
                h) measure hand hand_spooler >> "$work/h" ;;
                c) measure copy copy_spooler >> "$work/c" ;;
            esac
        done
    done
    f=$(median < "$work/f"); h=$(median < "$work/h"); c=$(median < "$work/c")
    printf '%-34s ferry %7ss  hand-run %7ss  cp+sync %7ss  ferry/hand %s  ferry/cp %s  peak RSS %s MiB\n' \
        "$1" "$f" "$h" "$c" "$(ratio "$f" "$h")" "$(ratio "$f" "$c")" "$(( $(sort -n "$work/rsses" | tail -1) / 1024 ))"
}

# ferry's own start, cold (caches dropped) and warm, against nncp-xfer's.
start_time() { # cold|warm command...
    local mode=$1; shift
    for _ in $(seq 5); do
        [ "$mode" = cold ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
        local s e; s=$(now); "$@" >/dev/null 2>&1 || true; e=$(now)
        awk -v a="$s" -v b="$e" 'BEGIN {printf "%.4f\n", b-a}'
    done | median
}
printf 'start-up, median of 5: ferry --help cold %ss warm %ss; nncp-xfer -version cold %ss warm %ss\n' \
    "$(start_time cold "$FERRY" --help)" "$(start_time warm "$FERRY" --help)" \
    "$(start_time cold nncp-xfer -version)" "$(start_time warm nncp-xfer -version)"

echo "ferry exchange benchmark: $PACKETS packets of $PACKET_MIB MiB ($total_mib MiB), ${stick_mib} MiB ext4 stick on $stick, medians of $ROUNDS rounds"
run_spooler_rounds "spooler, empty queue"

# Queue the packets: laptop -> directory -> spooler, tossed into the queue for backupsvr.
for i in $(seq "$PACKETS"); do
    head -c "$((PACKET_MIB << 20))" /dev/urandom | nncp-exec $(cfg laptop) -nice B backupsvr zfsreceive "laptop/root"
done
mkdir -p "$work/lan"
nncp-xfer $(cfg laptop) -tx -mkdir -node spooler "$work/lan"
nncp-xfer $(cfg spooler) -rx "$work/lan"
nncp-toss $(cfg spooler) -seen
run_spooler_rounds "spooler, $PACKETS packets"

# backupsvr: time to "safe to remove" with a handler that takes
# HANDLER_SECONDS per packet. The stick carries the packets from the spooler
# each round; ferry's toss runs after the line and is stopped once it is seen.
echo "$HANDLER_SECONDS" > "$work/handler-seconds"
: > "$work/b"; : > "$work/bc"; : > "$work/brss"
for _ in $(seq "$ROUNDS"); do
    wipe_stick
    "$FERRY" handle "$stick" --config "$work/spooler/ferry.toml" >/dev/null 2>&1
    rm -rf "$work/backupsvr/spool"; mkdir -p "$work/backupsvr/spool"
    # The physical limit: the same packets copied off the stick onto the
    # local disk, synced. Caches are dropped before each side.
    sync; echo 3 > /proc/sys/vm/drop_caches
    mount_stick
    rm -rf "$work/copy"; mkdir -p "$work/copy"
    start=$(now); cp -r "$work/mnt/nncp" "$work/copy/"; sync; end=$(now)
    umount "$work/mnt"
    echo "$end $start" | awk '{printf "%.3f\n", $1-$2}' >> "$work/bc"
    rm -rf "$work/copy"
    sync; echo 3 > /proc/sys/vm/drop_caches
    start=$(now)
    "$FERRY" handle "$stick" -v --config "$work/backupsvr/ferry.toml" 2> "$work/b.log" &
    pid=$!
    until grep -q "safe to remove" "$work/b.log"; do sleep 0.01; done
    end=$(now)
    echo "$end $start" | awk '{printf "%.3f\n", $1-$2}' >> "$work/b"
    sed -n 's/.*safe to remove.*peak-rss-kib=\([0-9]*\).*/\1/p' "$work/b.log" >> "$work/brss"
    # The toss that follows would take HANDLER_SECONDS per packet: stop it.
    # Its packets stay queued, as after any interrupted toss.
    kill -TERM "$pid"; wait "$pid" || true
done
b=$(median < "$work/b"); bc=$(median < "$work/bc")
hand=$(awk -v c="$bc" -v n="$PACKETS" -v s="$HANDLER_SECONDS" 'BEGIN {printf "%.0f", c + n*s}')
printf '%-34s ferry %7ss  cp+sync %7ss  ferry/cp %s  hand-run (toss before tx) >= %ss  peak RSS %s MiB\n' \
    "backupsvr, to safe to remove" "$b" "$bc" "$(ratio "$b" "$bc")" "$hand" "$(( $(sort -n "$work/brss" | tail -1) / 1024 ))"
