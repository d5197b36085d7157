#!/usr/bin/env bash
# wardwatch against Suricata on the two whole-pipeline bench captures
# (issue 15). Suricata runs offline only (`-r FILE --runmode single`, its
# fastest mode on two cores), with benches/suricata/suricata.yaml and the
# translation of the built-in ruleset in benches/suricata/wardwatch.rules;
# wardwatch runs with its default configuration and ruleset (1 and 2
# workers) and with the site configuration pcaps/demo.yaml (1 worker),
# whose address groups and allowlist the Suricata rules use. Every run
# writes its EVE to a file in one scratch directory, removed after it.
#
# Method: one warm-up round, then ROUNDS rounds that run, in turn, the bare
# walk (benches/tools/walk.rs), Suricata and the wardwatch variants, the
# capture read into the page cache before each command. Each round gives
# the ratio of every command to Suricata and to the walk, in wall time and
# in CPU time (user+sys, GNU time); the medians of those ratios are
# printed, with the median absolute times for scale. A machine whose speed
# drifts (other builds) moves both sides of a ratio of one round alike.
# The warm-up round's EVE files are kept long enough to count records:
# alerts (by finding) and mqtt records of both, and Suricata's
# stream-depth counter.
#
# Usage: benches/suricata.sh [ROUNDS]    (default 5; needs suricata, GNU time)
#        CAPS=mqtt_small benches/suricata.sh 3   (one capture only)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
command -v suricata >/dev/null || { echo "suricata not installed" >&2; exit 1; }
CAPTURES_ONLY=1 benches/pipeline.sh
BIN=target/release/wardwatch
WALK=target/release/examples/walk
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# run NAME CAPTURE: one timed run of a command; prints "wall cpu".
run() {
    local name=$1 cap=$2 out="$SCRATCH/$1"
    rm -rf "$out"
    mkdir -p "$out"
    cat "$cap" >/dev/null
    local cmd
    case $name in
        walk) cmd=("$WALK" "$cap") ;;
        suricata) cmd=(suricata -r "$cap" --runmode single -c benches/suricata/suricata.yaml -l "$out") ;;
        ww1) cmd=("$BIN" -r "$cap" --eve "$out/eve.json" -q --workers 1) ;;
        ww2) cmd=("$BIN" -r "$cap" --eve "$out/eve.json" -q --workers 2) ;;
        ww1site) cmd=("$BIN" -r "$cap" -c pcaps/demo.yaml --eve "$out/eve.json" -q --workers 1) ;;
    esac
    /usr/bin/time -o "$SCRATCH/time" -f '%e %U %S' "${cmd[@]}" >/dev/null 2>"$SCRATCH/stderr" ||
        { cat "$SCRATCH/stderr" >&2; return 1; }
    awk '{printf "%s %.2f\n", $1, $2 + $3}' "$SCRATCH/time"
}

NAMES=(walk suricata ww1 ww2 ww1site)
counts() { # capture: record counts of the warm-up round's EVE files
    local s="$SCRATCH/suricata/eve.json" w="$SCRATCH/ww1/eve.json"
    echo "records in $1 (warm-up round): Suricata / wardwatch 1 worker (default config)"
    printf '  alert: %s / %s;  mqtt: %s / %s;  flow: %s / %s\n' \
        "$(grep -c '"event_type":"alert"' "$s")" "$(grep -c '"event_type":"alert"' "$w")" \
        "$(grep -c '"event_type":"mqtt"' "$s")" "$(grep -c '"event_type":"mqtt"' "$w")" \
        "$(grep -c '"event_type":"flow"' "$s")" "$(grep -c '"event_type":"flow"' "$w")"
    echo "  alerts by finding, Suricata:"
    grep '"event_type":"alert"' "$s" | grep -o '"finding":\["[^"]*"' | sort | uniq -c | sed 's/^/    /'
    echo "  alerts by finding, wardwatch:"
    grep '"event_type":"alert"' "$w" | grep -o '"finding":\["[^"]*"' | sort | uniq -c | sed 's/^/    /'
    echo "  Suricata stream depth reached: $(grep '"event_type":"stats"' "$s" | tail -1 | grep -o '"stream_depth_reached":[0-9]*')"
}

echo "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | sed 's/^ *//'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(suricata -V); wardwatch $(git rev-parse --short HEAD); $(grep -c '^alert' benches/suricata/wardwatch.rules) Suricata rules"
for cap in ${CAPS:-mqtt_small dicom_bulk}; do
    f="bench-data/$cap.pcap"
    declare -A wall=() cpu=()
    for round in $(seq 0 "$ROUNDS"); do
        for n in "${NAMES[@]}"; do
            read -r w c < <(run "$n" "$f")
            wall[$n,$round]=$w
            cpu[$n,$round]=$c
        done
        [ "$round" = 0 ] && counts "$cap"
    done
    echo "$cap: medians of $ROUNDS rounds after a warm-up (load after: $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "| command | wall | CPU | wall / Suricata | CPU / Suricata | wall / walk | CPU / walk |"
    echo "|---|---|---|---|---|---|---|"
    for n in "${NAMES[@]}"; do
        col() { # array name, round-wise expression
            for r in $(seq 1 "$ROUNDS"); do "$@" "$r"; done | median
        }
        aw() { echo "${wall[$n,$1]}"; }
        ac() { echo "${cpu[$n,$1]}"; }
        rws() { awk -v a="${wall[$n,$1]}" -v b="${wall[suricata,$1]}" 'BEGIN {print a / b}'; }
        rcs() { awk -v a="${cpu[$n,$1]}" -v b="${cpu[suricata,$1]}" 'BEGIN {print a / b}'; }
        rww() { awk -v a="${wall[$n,$1]}" -v b="${wall[walk,$1]}" 'BEGIN {print (b > 0 ? a / b : 0)}'; }
        rcw() { awk -v a="${cpu[$n,$1]}" -v b="${cpu[walk,$1]}" 'BEGIN {print (b > 0 ? a / b : 0)}'; }
        printf '| %s | %.2f s | %.2f s | %.3f | %.3f | %.1f | %.1f |\n' "$n" \
            "$(col aw)" "$(col ac)" "$(col rws)" "$(col rcs)" "$(col rww)" "$(col rcw)"
    done
    unset wall cpu
done
