# bench/backupsvr-config.sh, sourced by the ZFS benchmarks: a backupsvr
# ferry config in $work, whose NNCP config knows a node "laptop" that may
# write under laptop/. Sets $sender to laptop's node id (NNCP_SENDER).
#   needs: $work
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

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
fresh() { sync; echo 3 > /proc/sys/vm/drop_caches; }
