#!/usr/bin/env bash
# bench/receive.sh: throughput of `ferry receive` against `zfs receive` fed
# the same stream directly, side by side in one run, on zfs-fuse pools on
# image files; and ferry's peak RSS (GNU time). Two ferry cases:
#   - "applied": the only enrolled drive is here, so the stream goes into it
#     as it is copied to the store, and leaves the store at once;
#   - "stored": a second enrolled drive is offsite, so the stream is also
#     kept in the store (written out and fsynced) for that drive.
# Prints medians and ratios; needs root and a running zfs-fuse (run it under
# scripts/with-zfs-fuse). Not a test: nothing here fails on a slow machine.
#
#   STREAM_MIB=1024 ROUNDS=3 scripts/with-zfs-fuse bench/receive.sh
set -euo pipefail
cd "$(dirname "$0")/.."

STREAM_MIB=${STREAM_MIB:-1024}
ROUNDS=${ROUNDS:-3}
source bench/zfs-bench.sh
tag=$$
src=fbsrc$tag; direct=fbdir$tag; viaferry=fbfer$tag
image_pools $((STREAM_MIB * 3 / 2 + 256)) $src $direct $viaferry
zfs create "$src/data"
head -c $((STREAM_MIB << 20)) /dev/urandom > "$(zfs get -H -o value mountpoint $src/data)/random"
zfs snapshot "$src/data@s1"
zfs send "$src/data@s1" > "$work/stream"
bytes=$(stat -c %s "$work/stream")

backupsvr_config
"$FERRY" drive enroll --config "$work/ferry.toml" "$viaferry" >/dev/null


run_direct() {
    zfs destroy -r "$direct/x" 2>/dev/null || true
    fresh; local t0; t0=$(now)
    zfs receive -u "$direct/x" < "$work/stream"
    echo "$(now) - $t0" | bc >> "$work/t.direct"
}
run_piped() {  # what nncp-toss does with a plain handler: the stream on a pipe
    zfs destroy -r "$direct/x" 2>/dev/null || true
    fresh; local t0; t0=$(now)
    cat "$work/stream" | zfs receive -u "$direct/x"
    echo "$(now) - $t0" | bc >> "$work/t.piped"
}
run_ferry() {  # $1: applied | stored
    zfs destroy -r "$viaferry/laptop" 2>/dev/null || true
    rm -rf "$work/state/streams"
    fresh; local t0; t0=$(now)
    NNCP_SENDER=$sender /usr/bin/time -f %M -o "$work/rss" \
        "$FERRY" receive --config "$work/ferry.toml" laptop/x < "$work/stream" 2>>"$work/ferry.log"
    echo "$(now) - $t0" | bc >> "$work/t.$1"
    cat "$work/rss" >> "$work/rss.$1"
    local kept; kept=$(ls "$work/state/streams" | grep -c zstream || true)
    [ "$1" = stored ] && [ "$kept" -ne 1 ] && { echo "stored case kept $kept streams" >&2; exit 1; }
    [ "$1" = applied ] && [ "$kept" -ne 0 ] && { echo "applied case kept $kept streams" >&2; exit 1; }
    [ "$(zfs list -H -o name -t snapshot -r "$viaferry/laptop/x")" = "$viaferry/laptop/x@s1" ] || { echo "ferry did not receive" >&2; exit 1; }
}

for case in applied stored; do
    if [ $case = stored ]; then
        # An offsite drive: enrolled, not imported.
        python3 - "$work/state/drives.json" <<'PY'
import json, sys
path = sys.argv[1]
drives = json.load(open(path))
drives.append({"pool": "offsite", "guid": "1", "enrolled": drives[0]["enrolled"]})
json.dump(drives, open(path, "w"))
PY
    fi
    for round in $(seq "$ROUNDS"); do
        if [ $((round % 2)) -eq 1 ]; then run_direct; run_piped; run_ferry $case; else run_ferry $case; run_piped; run_direct; fi
    done
done

mib=$(echo "$bytes / 1048576" | bc -l)
d=$(median < "$work/t.direct")
p=$(median < "$work/t.piped")
echo "stream: $(printf %.0f "$mib") MiB, $ROUNDS rounds per case, medians, caches dropped before each run"
printf "zfs receive < file (direct):  %6.2f s  %6.1f MiB/s\n" "$d" "$(echo "$mib / $d" | bc -l)"
printf "cat file | zfs receive:       %6.2f s  %6.1f MiB/s\n" "$p" "$(echo "$mib / $p" | bc -l)"
for case in applied stored; do
    f=$(median < "$work/t.$case")
    printf "ferry receive (%-7s):      %6.2f s  %6.1f MiB/s  ratio to direct %.2f, to piped %.2f  peak RSS %d KiB\n" \
        "$case" "$f" "$(echo "$mib / $f" | bc -l)" "$(echo "$d / $f" | bc -l)" "$(echo "$p / $f" | bc -l)" "$(median < "$work/rss.$case")"
done
