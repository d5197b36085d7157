#!/usr/bin/env bash
# Stress benchmark: hostile captures that try to make the sensor hold memory.
#
# Generates synthetic captures (benches/tools/hostile.rs, valid checksums;
# its table says what each holds) into bench-data/stress/:
#   packed-publish  12.8 MB: 2.56 M five-byte MQTT PUBLISHes packed in 64 kB segments
#   syn-flood       1 M SYNs from random sources to one broker
#   frag-flood      200 k never-completed IPv4 first fragments
#   unacked-qos1    100 k QoS 1 PUBLISHes the broker never acknowledges
#   qos2-open       1 000 MQTT connections with 1 024 unanswered QoS 2 PUBLISHes each
#   pubrec-repeat   2 M PUBRECs for one QoS 2 PUBLISH
#   subscribe-tiny  48 unanswered 1 MiB SUBSCRIBEs of 262 000 one-byte filters
#   ooo-pieces      24 connections holding 60 000 one-byte out-of-order ranges each
#   all-at-once     SYN flood, fragments, ranges and open transactions together
# then runs wardwatch over each through stdin (so the file mapping does not
# count; MODES="stdin file" adds runs from the mapped file, whose RSS
# includes the capture pages touched, at most the file size), with the
# default configuration, with 1 and 2 workers, and prints wall time, peak
# RSS (GNU time: the largest process of the pipeline, wardwatch) and the
# memory counters of the final stats record: every `*.memuse`, and every
# cap counter that is not zero (memcap, evictions, table full, dropped
# lines). EVE goes to stdout and only the stats record is kept (some runs
# write close to 1 GB of records).
#
# Not a test: the figures go into the README's "Memory under attack" table.
# Usage: [MODES="stdin file"] [KINDS="..."] benches/stress.sh [WORKERS...]
#        (default: stdin, every kind, 1 and 2 workers; needs GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=("${@:-1}")
[ $# -eq 0 ] && WORKERS=(1 2)
OUT=bench-data/stress
mkdir -p "$OUT"

cargo build --release --quiet --bin wardwatch --example hostile
BIN=target/release/wardwatch
GEN=target/release/examples/hostile
read -r -a KINDS <<<"${KINDS:-packed-publish syn-flood frag-flood unacked-qos1 qos2-open pubrec-repeat subscribe-tiny ooo-pieces all-at-once}"
read -r -a MODES <<<"${MODES:-stdin}"
for k in "${KINDS[@]}"; do
    [ -s "$OUT/$k.pcap" ] || "$GEN" "$k" "$OUT/$k.pcap"
done

# The counters of the final stats record that say which cap acted.
counters() {
    python3 - "$1" <<'EOF'
import json, sys
stats = None
with open(sys.argv[1]) as f:
    for line in f:
        if '"event_type":"stats"' in line:
            stats = json.loads(line)["stats"]
def walk(o, path):
    for k, v in o.items():
        p = path + [k]
        if isinstance(v, dict):
            yield from walk(v, p)
        else:
            yield ".".join(p), v
keys = ("memuse", "memcap", "evict", "reuse", "full", "dropped", "reached", "shed_")
out = []
for name, v in walk(stats or {}, []):
    if any(k in name for k in keys) and (v or name.endswith("memuse")):
        out.append(f"{name}={v}")
print(" ".join(out) or "-")
EOF
}

echo "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | sed 's/^ *//')"
echo "| capture | size | input | workers | wall | peak RSS | exit | counters |"
echo "|---|---|---|---|---|---|---|---|"
for k in "${KINDS[@]}"; do
    cap="$OUT/$k.pcap"
    size=$(du -h "$cap" | cut -f1)
    for mode in "${MODES[@]}"; do
        for w in "${WORKERS[@]}"; do
            eve="$OUT/$k.$mode.w$w.eve.json"
            cat "$cap" >/dev/null
            if [ "$mode" = stdin ]; then
                cmd="cat '$cap' | $BIN -r - --eve - -q --workers $w | grep '\"event_type\":\"stats\"' >'$eve'"
            else
                cmd="$BIN -r '$cap' --eve - -q --workers $w | grep '\"event_type\":\"stats\"' >'$eve'"
            fi
            set +e
            t=$( { /usr/bin/time -f '%e %M %x' bash -o pipefail -c "$cmd"; } 2>&1 | tail -1)
            set -e
            read -r wall kb rc <<<"$t"
            printf '| %s | %s | %s | %d | %.2f s | %d MiB | %s | %s |\n' "$k" "$size" "$mode" "$w" "$wall" "$((kb / 1024))" "$rc" "$(counters "$eve")"
            rm -f "$eve"
        done
    done
done
