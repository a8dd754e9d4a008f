# bench/stick.sh: what bench/exchange.sh, bench/profile.sh and
# bench/memory.sh share, sourced by them: the ferry binary measured, the
# nodes' ids and the queue in $work, and a loop-device ext4 stick enrolled
# by the spooler, undone by release_stick.

# FERRY=PATH measures another build (an older one, for a before and after).
bench_ferry() {
    if [ -z "${FERRY:-}" ]; then
        swift build -c release --product ferry --static-swift-stdlib >/dev/null
        FERRY=$PWD/.build/release/ferry
    fi
}

bench_nodes() {
    spooler_id=$(cat "$work/spooler/keys/self/id")
    backupsvr_id=$(cat "$work/backupsvr/keys/self/id")
    queue=$work/spooler/spool/$backupsvr_id/tx
}

stick=
# An enrolled stick of $1 MiB at $work/stick.img, on $stick.
make_stick() {
    truncate -s "${1}M" "$work/stick.img"
    mkfs.ext4 -q -L FERRY-BENCH "$work/stick.img"
    stick=$(losetup --find --show "$work/stick.img")
    mkdir -p "$work/mnt"
    "$FERRY" enroll "$stick" --config "$work/spooler/ferry.toml" >/dev/null 2>&1
}

mount_stick() { mount -o nosuid,nodev,noexec,nosymfollow "$stick" "$work/mnt"; }

# Undoes make_stick and whatever a ferry that was stopped left mounted.
release_stick() {
    mountpoint -q "$work/mnt" && umount "$work/mnt"
    for host in spooler backupsvr; do
        for m in "$work/$host/mnt/"*; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
    done
    [ -n "$stick" ] && losetup -d "$stick"
    stick=
    rm -f "$work/stick.img"
}
