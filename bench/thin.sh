#!/usr/bin/env bash
# bench/thin.sh: drive care, two measurements on zfs-fuse pools on loop
# devices, each side by side with the same work by hand, in one run.
#  1. Thinning: a drive holding SNAPS snapshots of DATASETS datasets, all
#     received by ferry, thinned to "10,1d1w,1w1m,1m1y" by `ferry drive
#     thin`, against the same `zfs destroy` calls run by hand from the list
#     that `ferry drive thin --dry-run` prints.
#  2. Catch-up: a drive BEHIND snapshots behind, plugged in (`ferry handle`)
#     while another drive that holds them is in the dock (one `zfs send -I`
#     per dataset), against the same plug-in with that drive away, so that
#     the streams come from the store (one `zfs receive` per stream).
# Prints medians and ratios; needs root and a running zfs-fuse (run it under
# scripts/with-zfs-fuse). Not a test: nothing fails on a slow machine.
#
#   DATASETS=20 SNAPS=50 BEHIND=20 STEP_MIB=4 ROUNDS=3 scripts/with-zfs-fuse bench/thin.sh
set -Eeuo pipefail
cd "$(dirname "$0")/.."

DATASETS=${DATASETS:-20}
SNAPS=${SNAPS:-50}          # per dataset: DATASETS x SNAPS snapshots in all
BEHIND=${BEHIND:-20}
STEP_MIB=${STEP_MIB:-4}
ROUNDS=${ROUNDS:-3}
source bench/zfs-bench.sh
tag=$$
thin=ftthin$tag; a=ftdrva$tag; b=ftdrvb$tag; src=ftsrc$tag
pools=(); loops=()
cleanup() {
    for pool in "${pools[@]}"; do
        zpool list "$pool" >/dev/null 2>&1 || continue
        # zfs-fuse may call a pool busy for a moment after ferry's imports.
        for attempt in 1 2 3 4 5 6 7 8 9 10; do
            zpool destroy -f "$pool" 2>/dev/null && break
            [ "$attempt" -lt 10 ] || echo "could not destroy $pool" >&2
            sleep 1
        done
    done
    for loop in "${loops[@]}"; do losetup -d "$loop" || echo "could not detach $loop" >&2; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "failed at line $LINENO; ferry.log ends:" >&2; tail -5 "$work/ferry.log" >&2 2>/dev/null' ERR
declare -A device
make_pool() {  # make_pool NAME MIB [loop]
    truncate -s "$2"M "$work/$1.img"
    pools+=("$1")
    local vdev="$work/$1.img"
    if [ "${3:-}" = loop ]; then vdev=$(losetup --find --show "$work/$1.img"); loops+=("$vdev"); device[$1]=$vdev; fi
    zpool create -f -R "$work/altroot-$1" "$1" "$vdev" 2>/dev/null
}

backupsvr_config
# ferry thins only what it received: the received GUIDs, as ferry receive records them.
record_received() {  # record_received POOL
    zfs get -H -p -o name,value -r guid "$1" | python3 -c '
import json, sys
pool, path = sys.argv[1], sys.argv[2]
try: seen = json.load(open(path))
except FileNotFoundError: seen = {}
for line in sys.stdin:
    name, guid = line.rstrip("\n").split("\t")
    if "@" not in name: continue
    dataset = name.split("@")[0][len(pool) + 1:]
    if dataset.count("/") == 0: continue
    if guid not in seen.setdefault(dataset, []): seen[dataset].append(guid)
json.dump(seen, open(path, "w"))' "$1" "$work/state/received-snapshots.json"
}

# 1. Thinning (THIN=0 skips it).
if [ "${THIN:-1}" = 1 ]; then
make_pool "$thin" 512
"$FERRY" drive enroll --config "$work/ferry.toml" "$thin" >/dev/null
cp "$work/ferry.toml" "$work/ferry-plain.toml"
printf '[retention]\nkeep = "10,1d1w,1w1m,1m1y"\n' >> "$work/ferry.toml"
fill() {
    zfs destroy -r "$thin/laptop" 2>/dev/null || true
    zfs create -o mountpoint=none "$thin/laptop"
    for d in $(seq "$DATASETS"); do zfs create "$thin/laptop/ds$d"; done
    # One zfs snapshot -r a round; the container's own snapshots are not
    # recorded as received, so ferry leaves them alone.
    for s in $(seq "$SNAPS"); do zfs snapshot -r "$thin/laptop@s$s"; done
    rm -f "$work/state/received-snapshots.json"
    record_received "$thin"
}
fill
"$FERRY" drive thin --config "$work/ferry.toml" --dry-run "$thin" | sed -n 's/^would destroy //p' > "$work/list"
destroys=$(wc -l < "$work/list")
run_thin_hand() {
    fill; fresh; local t0; t0=$(now)
    while read -r name; do zfs destroy "$name"; done < "$work/list"
    echo "$(now) - $t0" | bc >> "$work/t.thin.hand"
}
run_thin_ferry() {
    fill; fresh; local t0; t0=$(now)
    "$FERRY" drive thin --config "$work/ferry.toml" "$thin" > "$work/thin.out" 2>>"$work/ferry.log"
    echo "$(now) - $t0" | bc >> "$work/t.thin.ferry"
    grep -q "^$thin: $destroys snapshot(s) destroyed" "$work/thin.out" || { echo "ferry did not destroy the list: $(tail -1 "$work/thin.out")" >&2; exit 1; }
}
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then run_thin_hand; run_thin_ferry; else run_thin_ferry; run_thin_hand; fi
done
th=$(median < "$work/t.thin.hand"); tf=$(median < "$work/t.thin.ferry")
echo "thinning: $((DATASETS * SNAPS)) snapshots of $DATASETS datasets to \"10,1d1w,1w1m,1m1y\" ($destroys destroyed), $ROUNDS rounds, medians"
printf "by hand (zfs destroy of each from the list):  %6.2f s\n" "$th"
printf "ferry drive thin POOL:                        %6.2f s  ratio to by hand %.2f\n" "$tf" "$(echo "$tf / $th" | bc -l)"
# The thinned pool stays imported until the end (cleanup destroys it):
# zfs-fuse may call it busy for a while after its datasets went.
zfs destroy -r "$thin/laptop"
rm -rf "$work/state"; cp "$work/ferry-plain.toml" "$work/ferry.toml"
fi

# 2. Catch-up from a present drive against from the store.
image=$(( (BEHIND + 1) * STEP_MIB * 3 + 256 ))
make_pool "$src" "$image"
make_pool "$a" "$image" loop
make_pool "$b" "$image" loop
zfs create "$src/data"
data=$(zfs get -H -o value mountpoint "$src/data")
for i in $(seq 0 "$BEHIND"); do
    head -c $((STEP_MIB << 20)) /dev/urandom > "$data/f$i"
    zfs snapshot "$src/data@s$i"
    if [ "$i" -eq 0 ]; then zfs send "$src/data@s0" > "$work/stream.0"
    else zfs send -i "$src/data@s$((i - 1))" "$src/data@s$i" > "$work/stream.$i"; fi
done
bytes=$(cat "$work"/stream.[1-9]* | wc -c)
receive() { NNCP_SENDER=$sender "$FERRY" receive --config "$work/ferry.toml" laptop/x < "$work/stream.$1" 2>>"$work/ferry.log"; }
for pool in $a $b; do "$FERRY" drive enroll --config "$work/ferry.toml" "$pool" >/dev/null; done
receive 0
"$FERRY" drive eject --config "$work/ferry.toml" "$b" >/dev/null
guid_a=$(zpool list -H -o guid "$a")
# From the store: A away too while the streams arrive, so the store keeps them all.
"$FERRY" drive eject --config "$work/ferry.toml" "$a" >/dev/null
for i in $(seq "$BEHIND"); do receive "$i"; done
[ "$(ls "$work/state/streams" | grep -c zstream)" -eq "$BEHIND" ] || { echo "the store did not keep every stream" >&2; exit 1; }
# ferry imports under state-dir/altroot (zfs-fuse has no import -N): the
# saved states leave that out, and a restore leaves it alone.
save_state() { mkdir -p "$work/state.$1"; (cd "$work/state" && find . -mindepth 1 -maxdepth 1 ! -name altroot -exec cp -a {} "$work/state.$1/" \;); }
restore_state() {
    find "$work/state" -mindepth 1 -maxdepth 1 ! -name altroot -exec rm -rf {} +
    (cd "$work/state.$1" && find . -mindepth 1 -maxdepth 1 -exec cp -a {} "$work/state/" \;)
}
save_state store
# From A: A back in the dock takes them, and the store lets go.
"$FERRY" handle --config "$work/ferry.toml" "${device[$a]}" 2>>"$work/ferry.log"
zpool scrub -s "$a" 2>/dev/null || true
[ "$(ls "$work/state/streams" | grep -c zstream || true)" -eq 0 ] || { echo "the store kept what A holds" >&2; exit 1; }
save_state drive
plug_b() {  # plug_b STATE: ferry handle B, timed into t.STATE
    restore_state "$1"
    fresh; local t0; t0=$(now)
    "$FERRY" handle --config "$work/ferry.toml" "${device[$b]}" 2>>"$work/ferry.log"
    echo "$(now) - $t0" | bc >> "$work/t.$1"
    zpool scrub -s "$b" 2>/dev/null || true
    [ "$(zfs list -H -o name -t snapshot -r "$b/laptop/x" | wc -l)" -eq $((BEHIND + 1)) ] || { echo "$1: B did not catch up" >&2; exit 1; }
    zfs rollback -r "$b/laptop/x@s0"  # back to s0, content and all
    zpool export "$b"
}
from_store() { zpool export "$a"; plug_b store; zpool import -d /dev -R "$work/altroot-$a" "$guid_a"; }
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then plug_b drive; from_store; else from_store; plug_b drive; fi
done

mib=$(echo "$bytes / 1048576" | bc -l)
ts=$(median < "$work/t.store"); td=$(median < "$work/t.drive")
echo "catch-up: a drive $BEHIND snapshots ($(printf %.0f "$mib") MiB) behind, ferry handle DEVNODE, $ROUNDS rounds, medians"
printf "from the store (today's path, a drive away):  %6.2f s  %6.1f MiB/s\n" "$ts" "$(echo "$mib / $ts" | bc -l)"
printf "from a present drive (zfs send -I):           %6.2f s  %6.1f MiB/s  ratio to the store %.2f\n" \
    "$td" "$(echo "$mib / $td" | bc -l)" "$(echo "$td / $ts" | bc -l)"
