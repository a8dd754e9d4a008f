#!/usr/bin/env bash
# bench/catchup.sh: a backup drive back from offsite catching up. `ferry
# handle DEVNODE` (import by GUID, then every stored stream applied in chain
# order from the stream store) against the same steps by hand (`zpool import`
# by GUID, then `zfs receive` of each stream file in order), side by side in
# one run, on zfs-fuse pools on loop devices; and ferry's peak RSS.
# Prints medians and the ratio; needs root and a running zfs-fuse (run it
# under scripts/with-zfs-fuse). Not a test: nothing fails on a slow machine.
#
#   STREAMS=8 STEP_MIB=32 ROUNDS=3 scripts/with-zfs-fuse bench/catchup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

STREAMS=${STREAMS:-8}   # incremental streams after the full one
STEP_MIB=${STEP_MIB:-32}
ROUNDS=${ROUNDS:-3}
source bench/zfs-bench.sh
tag=$$
src=fcsrc$tag; hand=fchand$tag; drive=fcdrv$tag
pools=(); loops=()
cleanup() {
    for pool in "${pools[@]}"; do
        zpool list "$pool" >/dev/null 2>&1 || continue
        zpool destroy -f "$pool" || echo "could not destroy $pool" >&2
    done
    for loop in "${loops[@]}"; do losetup -d "$loop" || echo "could not detach $loop" >&2; done
    rm -rf "$work"
}
trap cleanup EXIT

image_mib=$(( (STREAMS + 1) * STEP_MIB * 2 + 256 ))
truncate -s ${image_mib}M "$work/$src.img"
pools+=("$src")
zpool create -f -R "$work/altroot-$src" "$src" "$work/$src.img" 2>/dev/null
declare -A device
for pool in $hand $drive; do
    truncate -s ${image_mib}M "$work/$pool.img"
    device[$pool]=$(losetup --find --show "$work/$pool.img")
    loops+=("${device[$pool]}")
    pools+=("$pool")
    zpool create -f -R "$work/altroot-$pool" "$pool" "${device[$pool]}" 2>/dev/null
done
zfs create "$src/data"
data=$(zfs get -H -o value mountpoint "$src/data")
for i in $(seq 0 "$STREAMS"); do
    head -c $((STEP_MIB << 20)) /dev/urandom > "$data/f$i"
    zfs snapshot "$src/data@s$i"
    if [ "$i" -eq 0 ]; then zfs send "$src/data@s0" > "$work/stream.0"
    else zfs send -i "$src/data@s$((i - 1))" "$src/data@s$i" > "$work/stream.$i"; fi
done
bytes=$(cat "$work"/stream.* | wc -c)
guid_hand=$(zpool list -H -o guid "$hand")

backupsvr_config
"$FERRY" drive enroll --config "$work/ferry.toml" "$drive" >/dev/null
# A second drive, offsite: the streams stay in the store for it.
python3 - "$work/state/drives.json" <<'PY'
import json, sys
path = sys.argv[1]
drives = json.load(open(path))
drives.append({"pool": "offsite", "guid": "1", "enrolled": drives[0]["enrolled"], "place": "offsite", "since": drives[0]["enrolled"]})
json.dump(drives, open(path, "w"))
PY
"$FERRY" drive eject --config "$work/ferry.toml" "$drive" >/dev/null
for i in $(seq 0 "$STREAMS"); do
    NNCP_SENDER=$sender "$FERRY" receive --config "$work/ferry.toml" laptop/x < "$work/stream.$i" 2>>"$work/ferry.log"
done
[ "$(ls "$work/state/streams" | grep -c zstream)" -eq $((STREAMS + 1)) ] || { echo "the store did not keep every stream" >&2; exit 1; }
cp -a "$work/state" "$work/state.filled"
zpool export "$hand"

run_hand() {
    fresh; local t0; t0=$(now)
    zpool import -d /dev -R "$work/altroot-$hand" "$guid_hand"
    for i in $(seq 0 "$STREAMS"); do zfs receive -u "$hand/x" < "$work/stream.$i"; done
    echo "$(now) - $t0" | bc >> "$work/t.hand"
    [ "$(zfs list -H -o name -t snapshot -r "$hand/x" | wc -l)" -eq $((STREAMS + 1)) ] || { echo "hand-run did not receive" >&2; exit 1; }
    zfs destroy -r "$hand/x"
    zpool export "$hand"
}
run_ferry() {
    rm -rf "$work/state"; cp -a "$work/state.filled" "$work/state"
    fresh; local t0; t0=$(now)
    /usr/bin/time -f %M -o "$work/rss" "$FERRY" handle --config "$work/ferry.toml" "${device[$drive]}" 2>>"$work/ferry.log"
    echo "$(now) - $t0" | bc >> "$work/t.ferry"
    cat "$work/rss" >> "$work/rss.ferry"
    [ "$(zfs list -H -o name -t snapshot -r "$drive/laptop/x" | wc -l)" -eq $((STREAMS + 1)) ] || { echo "ferry did not catch up" >&2; exit 1; }
    zfs destroy -r "$drive/laptop"
    zpool export "$drive"
}

for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then run_hand; run_ferry; else run_ferry; run_hand; fi
done

mib=$(echo "$bytes / 1048576" | bc -l)
h=$(median < "$work/t.hand")
f=$(median < "$work/t.ferry")
echo "catch-up: $((STREAMS + 1)) streams (one full, $STREAMS incremental), $(printf %.0f "$mib") MiB, $ROUNDS rounds, medians, caches dropped before each run"
printf "by hand (zpool import, zfs receive < each file): %6.2f s  %6.1f MiB/s\n" "$h" "$(echo "$mib / $h" | bc -l)"
printf "ferry handle DEVNODE (import, catch-up):          %6.2f s  %6.1f MiB/s  ratio to by hand %.2f  peak RSS %d KiB\n" \
    "$f" "$(echo "$mib / $f" | bc -l)" "$(echo "$h / $f" | bc -l)" "$(median < "$work/rss.ferry")"
