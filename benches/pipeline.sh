#!/usr/bin/env bash
# Whole-pipeline benchmark: capture → decode → flow → reassembly → flow EVE.
#
# Builds two large captures from the committed corpus by multiplying its
# flows (benches/tools/multiply.rs: every copy gets its own client address,
# checksums recomputed, copies interleaved so all flows are open at once):
#   bench-data/mqtt_small.pcap  ~300 MB of small MQTT packets, ~100 000 flows
#   bench-data/dicom_bulk.pcap  ~1 GB dominated by DICOM C-STORE bulk data
# then runs wardwatch over each with 1 and 2 workers, RUNS times, and prints
# the median wall time, packets/s, GB/s, peak RSS (GNU time) and the ratio
# to the bare walk (benches/tools/walk.rs: the same reader over the same
# mapping, hashing every 5-tuple and nothing more), the two run in turn and
# the ratio taken pair by pair, so a machine whose speed drifts (other
# builds on a shared host) moves both sides of each ratio alike.
#
# Peak RSS of a run over a file includes the pages of the memory-mapped
# capture it touched; the "stdin" row pipes the file in instead (no mapping),
# so its peak RSS is the sensor's own memory: flows, buffers, output.
#
# Usage: benches/pipeline.sh [RUNS]      (default 5; needs GNU time)
#        CAPTURES_ONLY=1 benches/pipeline.sh   (build the captures, no runs;
#        benches/suricata.sh does this)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
OUT=bench-data
mkdir -p "$OUT"

cargo build --release --quiet --bin wardwatch --example multiply --example walk
BIN=target/release/wardwatch
MUL=target/release/examples/multiply
WALK=target/release/examples/walk

make_capture() { # name source copies
    local dst="$OUT/$1.pcap"
    if [ ! -s "$dst" ]; then
        "$MUL" "pcaps/$2" "$3" "$dst"
    fi
    # In the page cache as a capture read from disk is, not as one just
    # written: a file written here stays in the 4 KiB pages it was written
    # in, one read in comes in large folios (2 MiB on this machine's ext4),
    # and a mapped file's faults and unmapping cost follows that (dicom_bulk,
    # 1 worker: 24 341 minor faults and 0.20 s of system time against 9 610
    # and 0.02 s). Written back, dropped from the cache, read in again; the
    # same state for every command compared.
    sync "$dst"
    dd if="$dst" iflag=nocache count=0 status=none
    cat "$dst" >/dev/null
}
# mqtt_v311_anon_phi: 7 short MQTT connections in 16 kB of ~80-byte frames;
# 18 000 copies give ~290 MB and ~126 000 flows. dicom_store_large: one
# 2.3 MB C-STORE; 440 copies give ~1 GB.
make_capture mqtt_small mqtt_v311_anon_phi.pcap "${MQTT_COPIES:-18000}"
make_capture dicom_bulk dicom_store_large.pcap "${DICOM_COPIES:-440}"
[ -n "${CAPTURES_ONLY:-}" ] && exit 0

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

bench() { # label capture workers mode
    local label=$1 cap=$2 w=$3 mode=$4 walls=() rss=() ratios=()
    local pkts bytes
    pkts=$(capinfos -c -M "$cap" 2>/dev/null | awk '/Number of packets/ {print $NF}') || pkts=
    bytes=$(stat -c %s "$cap")
    for _ in $(seq "$RUNS"); do
        cat "$cap" >/dev/null   # page cache warm, as the notes advise
        local t b
        b=$( { /usr/bin/time -f '%e' "$WALK" "$cap" >/dev/null ; } 2>&1 | tail -1)
        if [ "$mode" = stdin ]; then
            t=$( { /usr/bin/time -f '%e %M' sh -c "cat '$cap' | $BIN -r - --eve /dev/null -q --workers $w" ; } 2>&1 | tail -1)
        else
            t=$( { /usr/bin/time -f '%e %M' "$BIN" -r "$cap" --eve /dev/null -q --workers "$w" ; } 2>&1 | tail -1)
        fi
        walls+=("${t% *}")
        rss+=("${t#* }")
        ratios+=("$(awk -v a="${t% *}" -v b="$b" 'BEGIN {print (b > 0 ? a / b : 0)}')")
    done
    local wall kb ratio
    wall=$(printf '%s\n' "${walls[@]}" | median)
    kb=$(printf '%s\n' "${rss[@]}" | median)
    ratio=$(printf '%s\n' "${ratios[@]}" | median)
    awk -v l="$label" -v w="$w" -v m="$mode" -v s="$wall" -v p="$pkts" -v b="$bytes" -v kb="$kb" -v r="$ratio" 'BEGIN {
        printf "| %-11s | %-5s | %d | %7.2f s | %6.2f M | %6.2f GB/s | %6.0f MB | %5.1f× |\n",
            l, m, w, s, (p ? p / s / 1e6 : 0), b / s / 1e9, kb / 1024, r }'
}

echo "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | sed 's/^ *//')"
echo "| capture     | input | workers | wall (median of $RUNS) | packets/s | throughput | peak RSS | / bare walk |"
echo "|---|---|---|---|---|---|---|---|"
for cap in mqtt_small dicom_bulk; do
    for w in 1 2; do
        bench "$cap" "$OUT/$cap.pcap" "$w" file
    done
    bench "$cap" "$OUT/$cap.pcap" 1 stdin
done
echo "Per idle flow: cargo bench --bench flow_memory"
