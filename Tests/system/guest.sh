#!/bin/bash
# guest.sh: the system test's steps inside the Debian guest.
#
#   bash /mnt/payload/guest.sh STEP [ARGS...]
#
# The host (Tests/system/system-test) runs each step through the QEMU guest
# agent and reads what it prints. One guest plays every NNCP node: laptop,
# spooler, backupsvr, and a stranger whose sticks nobody trusts. The guest
# is the spooler or backupsvr in turn: /etc/ferry/ferry.toml, which
# ferry@.service and ferry-toss.service read, is a copy of that role's file.
set -euo pipefail

work=/var/tmp/ferry-test
nodes=(laptop spooler backupsvr stranger)

nncp_as() { runuser -u nncp -- "$@"; }

key() { cat "$work/$1.d/self/$2"; }

# The public half of node $1, as JSON members.
public_keys() {
    printf '"id": "%s", "exchpub": "%s", "signpub": "%s", "noisepub": "%s"' \
        "$(key "$1" id)" "$(key "$1" exchpub)" "$(key "$1" signpub)" "$(key "$1" noisepub)"
}

# Writes /etc/nncp/$1.hjson: JSON is valid HJSON. $1's neighbours are the
# other nodes named after it; "via" and "exec" come from the caller's
# variables via_NAME and exec_NAME.
nncp_config() {
    local self=$1 other neighbours="" extra
    shift
    for other in "$@"; do
        extra=""
        local via="via_${self}_${other}" exec="exec_${self}"
        [ -n "${!via:-}" ] && extra+=", \"via\": [\"${!via}\"]"
        [ -n "${!exec:-}" ] && extra+=", \"exec\": ${!exec}"
        neighbours+=", \"$other\": {$(public_keys "$other")$extra}"
    done
    cat > "/etc/nncp/$self.hjson" <<EOF
{
  "spool": "/var/spool/nncp/$self",
  "log": "/var/spool/nncp/$self/log",
  "self": {$(public_keys "$self"), "exchprv": "$(key "$self" exchprv)", "signprv": "$(key "$self" signprv)", "noiseprv": "$(key "$self" noiseprv)"},
  "neigh": {"self": {$(public_keys "$self")}$neighbours}
}
EOF
    chgrp nncp "/etc/nncp/$self.hjson"
    chmod 0640 "/etc/nncp/$self.hjson"
    install -d -o nncp -g nncp -m 0700 "/var/spool/nncp/$self"
}

ferry_config() {
    local name=$1 role=$2 peer=$3
    cat > "/etc/ferry/$name.toml" <<EOF
role = "$role"
nncp-config = "/etc/nncp/$name.hjson"
nncp-user = "nncp"
peer = "$peer"
state-dir = "/var/lib/ferry/$name"
mount-root = "/run/ferry"
EOF
}

step_setup() {
    dpkg -i /mnt/payload/ferry.deb > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; exit 1; }
    echo "installed: $(dpkg-query -W -f='${Package} ${Version}' ferry)"
    install -d -m 0755 /etc/nncp
    for node in "${nodes[@]}"; do
        nncp-cfgnew > "$work/$node.new"
        nncp-cfgdir -cfg "$work/$node.new" -dump "$work/$node.d"
    done
    via_laptop_backupsvr=spooler
    via_backupsvr_laptop=spooler
    exec_backupsvr='{"zfsreceive": ["/usr/bin/ferry", "receive", "--config", "/etc/ferry/backupsvr.toml"]}'
    nncp_config laptop spooler backupsvr
    nncp_config spooler laptop backupsvr
    nncp_config backupsvr spooler laptop
    nncp_config stranger spooler backupsvr
    ferry_config spooler spooler backupsvr
    ferry_config stranger spooler backupsvr
    ferry_config backupsvr backupsvr spooler
    # At backupsvr the toss runs ferry receive, which writes state-dir and
    # runs zfs receive: both need root, so NNCP runs as root there.
    sed -i 's/^nncp-user = .*/nncp-user = ""/' /etc/ferry/backupsvr.toml
    chown -R root:root /var/spool/nncp/backupsvr
    cat >> /etc/ferry/backupsvr.toml <<EOF

[receive]
senders = { laptop = "laptop" }
zfs-receive-options = ["-u", "-o", "readonly=on"]
EOF
    install -d -o nncp -g nncp -m 0700 "$work/lan"

    # The laptop's pool, on a file, in the same zfs-fuse as the drives.
    for _ in $(seq 60); do zpool list > /dev/null 2>&1 && break; sleep 1; done
    truncate -s 256M "$work/laptop.img"
    zpool create -f ltank "$work/laptop.img"
    zfs create ltank/data

    # Records every ferry@ unit's STATUS= text while the test runs, as
    # `systemctl status` would show it.
    systemd-run --quiet --unit=ferry-status-watch /bin/bash -c '
        while :; do
            systemctl show --property=Id,InvocationID,StatusText "ferry@*" 2>/dev/null
            echo
            sleep 0.2
        done >> '"$work"'/status.log'
    role spooler
}

# The units as installed, where the binary they name exists.
step_verify_units() {
    systemd-analyze verify /lib/systemd/system/ferry@.service /lib/systemd/system/ferry-toss.service 2>&1 || true
    systemd-analyze verify ferry@sda1.service 2>&1 || true
}

role() {
    cp "/etc/ferry/$1.toml" /etc/ferry/ferry.toml
    echo "role: $1"
}
step_role() { role "$1"; }

# Snapshot $1 of the laptop's dataset, with $2 MiB of new data, sent (as an
# increment from $3 when given) to backupsvr's zfsreceive, and carried
# from the laptop to the spooler through a directory, as on a LAN.
step_queue_stream() {
    local snapshot=$1 mib=$2 from=${3:-}
    head -c "$((mib << 20))" /dev/urandom > "/ltank/data/$snapshot.bin"
    zfs snapshot "ltank/data@$snapshot"
    if [ -n "$from" ]; then
        zfs send -i "@$from" "ltank/data@$snapshot"
    else
        zfs send "ltank/data@$snapshot"
    fi | nncp_as nncp-exec -quiet -cfg /etc/nncp/laptop.hjson -nice B backupsvr zfsreceive laptop/data
    nncp_as nncp-xfer -quiet -cfg /etc/nncp/laptop.hjson -tx -mkdir "$work/lan"
    nncp_as nncp-xfer -quiet -cfg /etc/nncp/spooler.hjson -rx "$work/lan"
    nncp_as nncp-toss -quiet -cfg /etc/nncp/spooler.hjson
    step_queue spooler
}

# What the node $1 has queued, per neighbour.
step_queue() {
    nncp_as nncp-stat -cfg "/etc/nncp/$1.hjson" 2>&1
}

# The packets node $1 still keeps for sending, one path a line.
step_outgoing() {
    find "/var/spool/nncp/$1/$(key "$2" id)" -path '*/tx/*' -type f 2>/dev/null || true
}

# The device node of the stick or disk with USB serial $1 (partition 1 of
# it with "part"), once udev has named it.
step_device() {
    local serial=$1 part=${2:-} link
    for _ in $(seq 300); do
        for link in /dev/disk/by-id/usb-*"$serial"*; do
            [ -e "$link" ] || continue
            case "$link" in
                *-part1) [ -n "$part" ] && { readlink -f "$link"; return; } ;;
                *-part*) ;;
                *) [ -z "$part" ] && { readlink -f "$link"; return; } ;;
            esac
        done
        sleep 0.1
    done
    echo "no device with serial $serial" >&2
    exit 1
}

# Waits until the start job of unit $1, begun after time $2, has ended
# (finished, failed, or cancelled by a stop), and then for any stop.
step_wait_unit() {
    local unit=$1 since=$2 seconds=${3:-300} results=()
    for r in done failed canceled timeout dependency skipped invalid assert unsupported collected once; do
        results+=("JOB_RESULT=$r")
    done
    for _ in $(seq $((seconds * 5))); do
        if journalctl -q -o cat --since "@$since" _PID=1 UNIT="$unit" "${results[@]}" | grep -q .; then
            for _ in $(seq 150); do
                case "$(systemctl show -p ActiveState --value "$unit")" in
                    activating | active | deactivating) sleep 0.2 ;;
                    *) break ;;
                esac
            done
            echo "$unit: $(systemctl show -p ActiveState,Result --value "$unit" | paste -sd ' ')"
            return
        fi
        sleep 0.2
    done
    echo "$unit: no end of its start job within $seconds s" >&2
    exit 1
}

# Waits until the journal of unit $1 since $2 holds the text $3.
step_wait_log() {
    local unit=$1 since=$2 text=$3 seconds=${4:-300}
    for _ in $(seq $((seconds * 10))); do
        journalctl -q -o cat --since "@$since" -u "$unit" | grep -qF -- "$text" && return
        sleep 0.1
    done
    echo "$unit: no \"$text\" within $seconds s" >&2
    exit 1
}

# Waits until ferry-toss.service has run after $1 and is done.
step_wait_toss() {
    step_wait_unit ferry-toss.service "$1" "${2:-300}"
}

# The journal since $1, as JSON lines, of the units named after it.
step_journal() {
    local since=$1 args=()
    shift
    for unit in "$@"; do args+=(-u "$unit"); done
    journalctl -q -o json --since "@$since" "${args[@]}"
}

# Every mount of /run/ferry/... in any mount namespace of the guest.
step_ferry_mounts() {
    { cat /proc/[0-9]*/mountinfo 2>/dev/null || true; } | awk '$5 ~ "^/run/ferry/" {print $5}' | sort -u
}

step_now() { date +%s.%N; }

# Sourced (bench/usb-stick-guest.sh adds its own steps to these), it only
# defines; run, it runs the step it is given.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    "step_$1" "${@:2}"
fi
