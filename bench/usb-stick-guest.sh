#!/bin/bash
# bench/usb-stick-guest.sh: bench/usb-stick.py's steps inside the system
# test's guest, beside the system test's own (guest.sh, sourced: its nodes,
# configs and helpers).
#
#   bash /mnt/payload/usb-stick-guest.sh STEP [ARGS...]
#
# The guest is the spooler, with a queue of packets for backupsvr; the
# timed steps print their wall time in seconds, measured in the guest.
source /mnt/payload/guest.sh
set -euo pipefail

mnt=/mnt/bench-stick
spooler_cfg=/etc/nncp/spooler.hjson

# The spooler's queue for backupsvr, in the spool.
queue() { echo "/var/spool/nncp/spooler/$(key backupsvr id)/tx"; }

# COUNT packets of KIB KiB, made as bench/exchange.sh makes them on the
# host: nncp-exec at the laptop for backupsvr (via the spooler), carried to
# the spooler through a directory and tossed into its queue. The status
# watcher of the system test's setup would cost CPU during every timing.
step_bench_queue() {
    local count=$1 kib=$2
    systemctl stop ferry-status-watch.service
    seq "$count" | xargs -P 2 -I{} sh -c "head -c $((kib << 10)) /dev/urandom |
        runuser -u nncp -- nncp-exec -quiet -cfg /etc/nncp/laptop.hjson -nice B backupsvr zfsreceive laptop/data"
    nncp_as nncp-xfer -quiet -cfg /etc/nncp/laptop.hjson -tx -mkdir "$work/lan"
    nncp_as nncp-xfer -quiet -cfg "$spooler_cfg" -rx "$work/lan"
    nncp_as nncp-toss -quiet -cfg "$spooler_cfg" -seen
    rm -rf "${work:?}/lan"/*
    echo "$(find "$(queue)" -maxdepth 1 -type f -name '[A-Z2-7]*' | wc -l) packets," \
        "$(du -sm --apparent-size "$(queue)" | cut -f1) MiB queued for backupsvr"
}

# ferry's udev rule off (an empty file of the same name in /run overrides
# the installed one) or on again: with it off, a plugged-in stick is left
# to the benchmark, as the system test leaves a stick that is not enrolled.
step_bench_rule() {
    case $1 in
        off) install -d /run/udev/rules.d && : > /run/udev/rules.d/90-ferry.rules ;;
        on) rm -f /run/udev/rules.d/90-ferry.rules ;;
    esac
    udevadm control --reload
}

mount_stick() {
    mkdir -p "$mnt"
    mount -o nosuid,nodev,noexec,nosymfollow "$1" "$mnt"
}

# Between sides the stick loses what the last side wrote, as in
# bench/exchange.sh: its nncp/ directory (ferry's .ferry/ stays).
step_bench_wipe() {
    mount_stick "$1"
    rm -rf "$mnt/nncp"
    sync
    umount "$mnt"
}

# The packets the last side left on the stick for backupsvr.
step_bench_count() {
    mount_stick "$1"
    find "$mnt/nncp/$(key backupsvr id)/$(key spooler id)" -maxdepth 1 -type f -name '[A-Z2-7]*' 2>/dev/null | wc -l
    umount "$mnt"
}

# Waits until nothing of ferry runs (a toss started by a visit), then
# drops the guest's caches: every side starts cold.
step_bench_settle() {
    for _ in $(seq 600); do
        systemctl is-active --quiet ferry-toss.service || break
        sleep 0.5
    done
    sync
    echo 3 > /proc/sys/vm/drop_caches
}

# The hand-run spooler steps of DESIGN.md section 2, with ferry's mount
# options, as the nncp user (ferry runs them so at the spooler).
side_hand() {
    mount_stick "$1"
    install -d -o nncp -g nncp "$mnt/nncp"
    nncp_as nncp-xfer -quiet -cfg "$spooler_cfg" -rx "$mnt/nncp" || true
    nncp_as nncp-toss -quiet -cfg "$spooler_cfg" -seen
    nncp_as nncp-xfer -quiet -cfg "$spooler_cfg" -tx -keep -mkdir -node backupsvr "$mnt/nncp"
    sync
    umount "$mnt"
}

# A plain copy of the same packets and a sync: the physical limit.
side_copy() {
    local to
    mount_stick "$1"
    to="$mnt/nncp/$(key backupsvr id)/$(key spooler id)"
    mkdir -p "$to"
    find "$(queue)" -maxdepth 1 -type f -name '[A-Z2-7]*' -exec cp -t "$to/" {} +
    sync
    umount "$mnt"
}

# ferry as the unit runs it, by hand, with ferry@.service kept out (the
# rule is off).
side_handle() {
    /usr/bin/ferry handle "$1" 2> "$work/handle.log" || { cat "$work/handle.log" >&2; return 1; }
    grep -q "safe to remove" "$work/handle.log" || { cat "$work/handle.log" >&2; return 1; }
}

# Times one side on the stick's partition $2; prints the seconds.
step_bench_side() {
    local side=$1 device=$2 start end
    start=$(date +%s.%N)
    "side_$side" "$device" > /dev/null
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f\n", b - a}'
}

# Waits, without polling, for ferry@'s "safe to remove" in unit $1's
# journal since $2 (journalctl -f follows by inotify, so the wait takes no
# CPU from the visit it waits for).
step_bench_wait_safe() {
    local unit=$1 since=$2 line
    coproc follow { exec timeout 900 journalctl -f -q -o cat --since "@$since" -u "$unit"; }
    while IFS= read -r line <&"${follow[0]}"; do
        case $line in *"safe to remove"*) kill "$follow_PID" 2> /dev/null || true; return 0 ;; esac
    done
    echo "$unit: no \"safe to remove\"" >&2
    return 1
}

"step_$1" "${@:2}"
