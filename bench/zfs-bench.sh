# bench/zfs-bench.sh, sourced by the ZFS benchmarks (receive.sh, catchup.sh,
# chunks.sh) from the repository root: checks for root and a running
# zfs-fuse, builds the release ferry ($FERRY), makes the scratch directory
# $work, and defines the helpers below.
PATH=/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin
[ "$(id -u)" -eq 0 ] || { echo "${0##*/} needs root (zfs, loop devices)" >&2; exit 1; }
zpool list >/dev/null 2>&1 || { echo "zfs-fuse does not answer; run under scripts/with-zfs-fuse" >&2; exit 1; }
swift build -c release --product ferry --static-swift-stdlib >/dev/null
FERRY=$PWD/.build/release/ferry
work=$(mktemp -d /tmp/ferry-bench.XXXXXX)

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
fresh() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# backupsvr_config: a backupsvr ferry config in $work, whose NNCP config
# knows a node "laptop" that may write under laptop/. Sets $sender to
# laptop's node id (NNCP_SENDER).
backupsvr_config() {
    for node in laptop backupsvr; do
        nncp-cfgnew -nocomments > "$work/$node.hjson"
        nncp-cfgdir -cfg "$work/$node.hjson" -dump "$work/$node.d"
    done
    mkdir -p "$work/backupsvr.d/neigh/laptop" "$work/spool"
    for key in id exchpub signpub noisepub; do cp "$work/laptop.d/self/$key" "$work/backupsvr.d/neigh/laptop/$key"; done
    echo "$work/spool" > "$work/backupsvr.d/spool"
    nncp-cfgdir -load "$work/backupsvr.d" > "$work/nncp.hjson"
    sender=$(cat "$work/laptop.d/self/id")
    cat > "$work/ferry.toml" <<TOML
role = "backupsvr"
nncp-config = "$work/nncp.hjson"
nncp-user = ""
peer = "spooler"
state-dir = "$work/state"
mount-root = "$work/mnt"
[receive]
senders = { laptop = "laptop" }
TOML
}

# image_pools MIB POOL...: a pool on an image file of MIB MiB in $work for
# each POOL, under an altroot of its own. The EXIT trap destroys them and
# removes $work (kept when KEEP_WORK is set).
pools=()
destroy_image_pools() {
    for pool in "${pools[@]}"; do zpool destroy -f "$pool" 2>/dev/null || echo "could not destroy $pool" >&2; done
    [ -n "${KEEP_WORK:-}" ] && { echo "kept $work"; return; }
    rm -rf "$work"
}
image_pools() {
    local mib=$1
    shift
    trap destroy_image_pools EXIT
    for pool in "$@"; do
        truncate -s "${mib}M" "$work/$pool.img"
        pools+=("$pool")
        zpool create -f -R "$work/altroot-$pool" "$pool" "$work/$pool.img" 2>/dev/null
    done
}
