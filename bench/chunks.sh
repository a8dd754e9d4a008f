#!/usr/bin/env bash
# bench/chunks.sh: split streams, side by side in one run, on zfs-fuse pools
# on image files (DESIGN.md section 9):
#   - laptop: `ferry send` of a DATA_MIB dataset with CHUNK_MIB chunks (it
#     counts the stream up to one chunk, then sends it in parts) against
#     `zfs send | nncp-exec` of the same snapshot whole;
#   - backupsvr: `ferry receive --stream ID --part N` of every part, the
#     last of which completes the stream and applies it to the drive,
#     against `zfs receive` of the whole stream from a file.
# The parts for backupsvr are cut by this script's own splitter (Python), an
# independent writer of the part format. Medians of ROUNDS; peak RSS is GNU
# time's, the largest of any ferry run. Needs root and a running zfs-fuse
# (run it under scripts/with-zfs-fuse). Not a test: nothing fails here on a
# slow machine.
#
#   DATA_MIB=2048 CHUNK_MIB=64 ROUNDS=3 scripts/with-zfs-fuse bench/chunks.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_MIB=${DATA_MIB:-2048}
CHUNK_MIB=${CHUNK_MIB:-64}
ROUNDS=${ROUNDS:-3}
source bench/zfs-bench.sh
tag=$$
src=fcsrc$tag; direct=fcdir$tag; viaferry=fcfer$tag
image_pools $((DATA_MIB * 3 / 2 + 256)) $src $direct $viaferry
zfs create "$src/data"
head -c $((DATA_MIB << 20)) /dev/urandom > "$(zfs get -H -o value mountpoint $src/data)/random"
zfs snapshot "$src/data@whole"

# The laptop: its own NNCP node, which knows backupsvr's keys, and a ferry
# config that sends $src/data in CHUNK_MIB parts.
backupsvr_config
mkdir -p "$work/laptop.d/neigh/backupsvr" "$work/laptop-spool"
for key in id exchpub signpub noisepub; do cp "$work/backupsvr.d/self/$key" "$work/laptop.d/neigh/backupsvr/$key"; done
echo "$work/laptop-spool" > "$work/laptop.d/spool"
nncp-cfgdir -load "$work/laptop.d" > "$work/laptop-nncp.hjson"
cat > "$work/laptop.toml" <<TOML
role = "laptop"
nncp-config = "$work/laptop-nncp.hjson"
nncp-user = ""
state-dir = "$work/laptop-state"
mount-root = "$work/mnt"
[send]
backupsvr = "backupsvr"
host = "laptop"
datasets = ["$src/data"]
chunk-size = "${CHUNK_MIB}MiB"
TOML
clear_spool() { rm -rf "$work/laptop-spool"/*/tx; }
packets() { find "$work/laptop-spool" -path '*/tx/*' -type f | grep -vc /hdr/ || true; }

send_whole() {
    clear_spool
    fresh; local t0; t0=$(now)
    zfs send "$src/data@whole" | nncp-exec -cfg "$work/laptop-nncp.hjson" -noprogress -nice B backupsvr zfsreceive laptop/data
    echo "$(now) - $t0" | bc >> "$work/t.send-whole"
    [ "$(packets)" -eq 1 ] || { echo "the whole stream made $(packets) packets" >&2; exit 1; }
}
send_ferry() {
    clear_spool
    zfs inherit ferry:sent "$src/data"
    for snapshot in $(zfs list -H -o name -t snapshot -r "$src/data" | grep @ferry-); do zfs destroy "$snapshot"; done
    fresh; local t0; t0=$(now)
    /usr/bin/time -f %M -o "$work/rss" "$FERRY" send --config "$work/laptop.toml" >/dev/null 2>>"$work/ferry.log"
    echo "$(now) - $t0" | bc >> "$work/t.send-ferry"
    cat "$work/rss" >> "$work/rss.send"
    local expected=$(( (stream_bytes + (CHUNK_MIB << 20) - 117) / ((CHUNK_MIB << 20) - 116) ))
    [ "$(packets)" -eq "$expected" ] || { echo "ferry send made $(packets) packets, not $expected" >&2; exit 1; }
}

zfs send "$src/data@whole" > "$work/stream"
stream_bytes=$(stat -c %s "$work/stream")
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then send_whole; send_ferry; else send_ferry; send_whole; fi
done
clear_spool

# backupsvr: the parts of the same stream, as ferry send writes them.
mkdir "$work/parts"
stream_id=$(python3 - "$work/stream" "$work/parts" $((CHUNK_MIB << 20)) <<'PY'
import hashlib, os, struct, sys
path, out, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = chunk - 116
stream = os.urandom(16)
total = os.path.getsize(path)
digests = []
with open(path, "rb") as f:
    number = 0
    while True:
        data = f.read(size)
        number += 1
        digest = hashlib.sha256(data).digest()
        digests.append(digest)
        last = f.tell() >= total
        tail = struct.pack(">IQ", number, total) + hashlib.sha256(b"".join(digests)).digest() if last else bytes(44)
        trailer = b"FERRYPRT" + bytes([1, 1 if last else 0, 0, 0]) + stream + struct.pack(">IQ", number, len(data)) + digest + tail
        with open(f"{out}/{number}", "wb") as part:
            part.write(data + trailer)
        if last:
            break
print(stream.hex())
PY
)
part_count=$(ls "$work/parts" | wc -l)
"$FERRY" drive enroll --config "$work/ferry.toml" "$viaferry" >/dev/null

receive_direct() {
    zfs destroy -r "$direct/x" 2>/dev/null || true
    fresh; local t0; t0=$(now)
    zfs receive -u "$direct/x" < "$work/stream"
    echo "$(now) - $t0" | bc >> "$work/t.receive-direct"
}
receive_ferry() {
    zfs destroy -r "$viaferry/laptop" 2>/dev/null || true
    rm -rf "$work/state/streams"
    fresh; local t0; t0=$(now)
    for number in $(seq "$part_count"); do
        NNCP_SENDER=$sender /usr/bin/time -f %M -a -o "$work/rss.receive-all" \
            "$FERRY" receive --config "$work/ferry.toml" laptop/x --stream "$stream_id" --part "$number" \
            < "$work/parts/$number" 2>>"$work/ferry.log"
    done
    echo "$(now) - $t0" | bc >> "$work/t.receive-ferry"
    [ "$(zfs list -H -o name -t snapshot -r "$viaferry/laptop/x")" = "$viaferry/laptop/x@whole" ] || { echo "ferry did not receive" >&2; exit 1; }
}
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then receive_direct; receive_ferry; else receive_ferry; receive_direct; fi
done
sort -n "$work/rss.receive-all" | tail -1 > "$work/rss.receive"

mib=$(echo "$stream_bytes / 1048576" | bc -l)
echo "stream: $(printf %.0f "$mib") MiB in $part_count parts of ${CHUNK_MIB} MiB, $ROUNDS rounds, medians, caches dropped before each run"
ws=$(median < "$work/t.send-whole"); fs=$(median < "$work/t.send-ferry")
wr=$(median < "$work/t.receive-direct"); fr=$(median < "$work/t.receive-ferry")
printf "laptop:    zfs send | nncp-exec (whole) %6.2f s   ferry send (parts) %6.2f s   ratio %.2f   ferry peak RSS %d KiB\n" \
    "$ws" "$fs" "$(echo "$ws / $fs" | bc -l)" "$(median < "$work/rss.send")"
printf "backupsvr: zfs receive < file           %6.2f s   ferry receive (parts) %6.2f s   ratio %.2f   ferry peak RSS %d KiB\n" \
    "$wr" "$fr" "$(echo "$wr / $fr" | bc -l)" "$(cat "$work/rss.receive")"
