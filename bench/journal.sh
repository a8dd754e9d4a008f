#!/usr/bin/env bash
# bench/journal.sh: the stick journal's append time as the journal grows
# (it should not grow with it), and the time to read and verify a journal
# at its size limit. Not a test. Runs on the local disk, not a stick.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=/opt/swift/usr/bin:$PATH
swift build -c release --product ferry-bench --static-swift-stdlib >/dev/null
work=$(mktemp -d /tmp/ferry-journal-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
nncp-cfgnew -nocomments > "$work/nncp.hjson"
mkdir "$work/ferry"
.build/release/ferry-bench journal "$work/nncp.hjson" "$work/ferry"
