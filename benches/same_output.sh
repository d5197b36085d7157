#!/usr/bin/env bash
# Output identity for speed work: a change that makes wardwatch faster must
# not change what it logs. Prints one line per capture — its name, the
# number of EVE lines and the SHA-256 of those lines sorted (line order
# depends on the worker count; `stats.uptime` is the one timing field and
# is removed) — for every capture in pcaps/ and pcaps/evasion/ and the two
# whole-pipeline bench captures when benches/pipeline.sh has made them.
#
# Every capture runs with the site configuration of pcaps/demo.yaml (rules,
# address groups, countries), a fixed mask key, so masked values hash the
# same from run to run, and flow and parser budgets large enough that
# nothing is evicted or shed: mqtt_small holds 126 000 MQTT flows at once,
# past the default 32 MiB `flow.memcap` and 64 MiB `app_layer.memcap`
# (main at d900c9b evicts 2 578 flows and sheds 6 038 parsers), so with the
# defaults what is evicted depends on the bytes a flow costs, not on how
# packets are processed. The stream, asset and threshold budgets are raised
# too: with their defaults, mqtt_small fills the 16 MiB asset table (18 001
# hosts), the shared `stream.memcap` and `detect.threshold_memcap`, and
# what each refuses then depends on how the workers' threads interleave,
# so two runs with 2 workers differed (main 7c694f0).
#
# Usage: benches/same_output.sh BIN [WORKERS] > digests.txt
#        diff digests-before.txt digests-after.txt   (no output: identical)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "$1")
WORKERS=${2:-1}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

head -c 32 /dev/zero | tr '\0' 'k' >"$TMP/key"
{
    sed 's/^detect:$/detect:\n  threshold_memcap: 1gb/' pcaps/demo.yaml
    printf 'outputs:\n  mask_key_file: %s\nflow:\n  memcap: 512mb\napp_layer:\n  memcap: 1gb\n' "$TMP/key"
    printf 'stream:\n  memcap: 1gb\nasset:\n  max_hosts: 1000000\n  memcap: 1gb\n'
} >"$TMP/site.yaml"
grep -q '^  threshold_memcap: 1gb$' "$TMP/site.yaml"

caps=(pcaps/*.pcap pcaps/*.pcapng pcaps/evasion/*.pcap)
for b in bench-data/mqtt_small.pcap bench-data/dicom_bulk.pcap; do
    [ -s "$b" ] && caps+=("$b")
done
for cap in "${caps[@]}"; do
    rm -f "$TMP/eve.json"
    "$BIN" -r "$cap" -c "$TMP/site.yaml" --eve "$TMP/eve.json" -q --workers "$WORKERS" || true
    touch "$TMP/eve.json"
    sed -E 's/"uptime":[0-9]+,?//' "$TMP/eve.json" | LC_ALL=C sort -S 512M -T "$TMP" >"$TMP/sorted"
    printf '%s %s %s\n' "$cap" "$(wc -l <"$TMP/sorted")" "$(sha256sum <"$TMP/sorted" | cut -c1-16)"
done
