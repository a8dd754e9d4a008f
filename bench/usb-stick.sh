#!/usr/bin/env bash
# bench/usb-stick.sh: the spooler's visit on a throttled USB stick, in the
# system test's Debian guest (qemu, USB hot-plug): ferry as udev starts it,
# `ferry handle` by hand, the NNCP steps by hand, and cp + sync, side by
# side, medians of ROUNDS rounds. See bench/usb-stick.py for what each side
# times. Needs root, the package (`make deb`, which needs no lock) and the
# machine's lock, for the guest:
#
#   make deb
#   flock -o /run/ferry-itest.lock bench/usb-stick.sh
#   PACKETS=200 KIB=1024 ROUNDS=3 WRITE_MBS=10 READ_MBS=30 IOPS=300 bench/usb-stick.sh
#
# DEB=PATH installs another package. The guest image is the system test's,
# cached in /var/cache/ferry-system-test (built when missing, ~4 min).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "bench/usb-stick.sh needs root (the image cache, qemu)" >&2; exit 1; }
DEB=${DEB:-.build/deb/ferry_$(dpkg-parsechangelog -S Version)_amd64.deb}
[ -f "$DEB" ] || { echo "bench/usb-stick.sh: no $DEB; run make deb first" >&2; exit 1; }

# The Python powers the guest off and removes its overlay, sockets and
# stick image on its way out, also on SIGTERM, SIGINT or SIGHUP (passed on
# from here); qemu dies with it even on SIGKILL (PR_SET_PDEATHSIG in the
# system test's Guest), and then this script removes what it left.
work=$(mktemp -d /var/tmp/ferry-usb-stick.XXXXXX)
python3 bench/usb-stick.py --deb "$DEB" --work "$work" --packets "${PACKETS:-200}" --kib "${KIB:-1024}" \
    --rounds "${ROUNDS:-3}" --write-mbs "${WRITE_MBS:-10}" --read-mbs "${READ_MBS:-30}" --iops "${IOPS:-300}" &
bench=$!
trap 'kill -TERM "$bench" 2> /dev/null || true' TERM INT HUP
trap 'rm -rf "$work"' EXIT
# wait returns early when a trapped signal comes: wait again until it ends.
status=0
while :; do
    wait "$bench" && status=0 || status=$?
    kill -0 "$bench" 2> /dev/null || break
done
exit "$status"
