#!/usr/bin/env bash
# Live-capture benchmark: replays a large capture into a veth pair with
# tcpreplay at increasing rates while `wardwatch -i` captures the other end,
# and prints per rate what was sent, what the kernel saw and dropped
# (PACKET_STATISTICS, from the final stats record) and what the workers
# analysed.
#
# The capture is built from the corpus like benches/pipeline.sh does:
# mqtt_v311_anon_phi.pcap multiplied COPIES times (default 2000: ~400 000
# small MQTT frames in ~14 000 concurrent flows).
#
# Needs root (network namespaces, AF_PACKET), ip, tcpreplay, python3.
# Traffic stays inside two namespaces this script creates and deletes.
#
# Usage: [RING='block_size: N, block_count: N'] benches/live_replay.sh [WORKERS] [RATES...]
#   RATES are tcpreplay --mbps values, or "top" for --topspeed
#   (default: 100 200 400 top)
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-2}
shift || true
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(100 200 400 top)
OUT=bench-data
mkdir -p "$OUT"
for c in ip tcpreplay python3; do
    command -v "$c" >/dev/null || { echo "live_replay: $c is needed" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "live_replay: needs root" >&2; exit 1; }

cargo build --release --quiet --bin wardwatch --example multiply
BIN=${CARGO_TARGET_DIR:-target}/release/wardwatch
MUL=${CARGO_TARGET_DIR:-target}/release/examples/multiply
CAP="$OUT/mqtt_live.pcap"
[ -s "$CAP" ] || "$MUL" pcaps/mqtt_v311_anon_phi.pcap "${COPIES:-2000}" "$CAP"

TX=ww_bench_tx_$$ RX=ww_bench_rx_$$
VT=wwbt$$ VR=wwbr$$
TMP=$(mktemp -d)
cleanup() {
    ip netns del "$TX" 2>/dev/null || true
    ip netns del "$RX" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$TX"
ip netns add "$RX"
ip link add "$VT" type veth peer name "$VR"
ip link set "$VT" netns "$TX"
ip link set "$VR" netns "$RX"
ip -n "$TX" link set "$VT" mtu 1500 up
ip -n "$RX" link set "$VR" mtu 1500 up
for p in "$TX $VT" "$RX $VR"; do
    set -- $p
    ip netns exec "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
done
# RING overrides the ring, e.g. RING='block_size: 4096, block_count: 2' to
# see drops counted.
printf 'capture: {stats_interval: 0, allow_root: true, %s}\n' "${RING:-}" >"$TMP/ww.yaml"

printf '%-6s %10s %10s %12s %12s %12s %10s %10s\n' rate sent_pkts sent_Mbps kernel_pkts kernel_drops analysed drop_pct eve_lost
for rate in "${RATES[@]}"; do
    eve="$TMP/eve-$rate.json"
    ip netns exec "$RX" "$BIN" -i "$VR" --workers "$WORKERS" -q -c "$TMP/ww.yaml" --eve "$eve" &
    ww=$!
    sleep 1
    if [ "$rate" = top ]; then arg=--topspeed; else arg=--mbps=$rate; fi
    rep=$(ip netns exec "$TX" tcpreplay -i "$VT" "$arg" "$CAP" 2>&1)
    sleep 1
    kill -TERM "$ww"
    wait "$ww"
    sent=$(echo "$rep" | awk '/Actual:/ {print $2; exit}')
    mbps=$(echo "$rep" | awk '/Rated:/ {for (i=1;i<=NF;i++) if ($i ~ /Mbps/) {print $(i-1); exit}}')
    python3 - "$eve" "$rate" "$sent" "$mbps" <<'EOF'
import json, sys
path, rate, sent, mbps = sys.argv[1:]
last = [json.loads(l) for l in open(path)][-1]["stats"]
k, d = last["capture"]["kernel_packets"], last["capture"]["kernel_drops"]
a = last["capture"]["ring"]["packets"]
lost = last["output"]["eve"]["dropped_lines"]
print(f"{rate:<6} {sent:>10} {mbps:>10} {k:>12} {d:>12} {a:>12} {100.0 * d / max(k, 1):>9.2f}% {lost:>10}")
EOF
done
