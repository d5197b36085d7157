#!/usr/bin/env bash
# Runs fuzz targets for a fixed time each on the committed seeds, one
# process at a time, and fails on any crash, property failure, timeout or
# out-of-memory.
#
#   fuzz/run.sh [-t SECONDS] [-c CORPUS_DIR] [TARGET…]
#
# Without targets: every target except those listed in fuzz/known (targets
# whose property fails on a known finding assigned elsewhere; the lead
# removes a line when its fix merges). A target named on the command line
# runs even when listed there. SECONDS defaults to 24 (CI: at most 15
# targets, 6 minutes of fuzzing on 2 cores, after the build). Each run is
# also stopped from outside at SECONDS + 60 (a hang while loading the
# corpus), which counts as a failure.
#
# New corpus entries go to a temporary folder (to CORPUS_DIR/<target>/
# with -c, relative to fuzz/, kept between runs, with each run's log as CORPUS_DIR/<target>.log;
# fuzz/corpus/ is ignored by git), never into fuzz/seeds/; a
# failing input is kept under fuzz/artifacts/<target>/ (not committed:
# minimise it with `cargo fuzz tmin -s none TARGET FILE` and keep it under
# fuzz/regressions/<target>/, replayed by tests/fuzz_regressions.rs).
# One summary line per target (executions, coverage, corpus, seed) and a
# closing `fuzz:` line.
#
# Seeds of the random generator: under CI (`CI` set) each target runs with
# a fixed seed derived from its name, so the same commit explores the same
# inputs in the same order on every run (cut at SECONDS, so a slower
# machine explores a prefix of them): a commit does not fail at random on
# a bug it did not bring that a lucky run happened to reach, and a failure
# is replayed by running again. FUZZ_SEED=N fixes the seed of every target
# (to reproduce a run); otherwise (campaigns) libFuzzer picks one per run.
set -uo pipefail
cd "$(dirname "$0")"

secs=24
corpus=""
while [ $# -gt 0 ]; do
    case "$1" in
        -t) secs=$2; shift 2;;
        -c) corpus=$2; shift 2;;
        *) break;;
    esac
done
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install -q cargo-fuzz || { echo "fuzz: cargo-fuzz could not be installed"; exit 1; }
fi
known=$(sed -e 's/#.*//' known 2>/dev/null | tr -s ' \n' ' ')
if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=""
    for t in $(cargo fuzz list); do
        case " $known " in *" $t "*) echo "fuzz: $t skipped (fuzz/known)";; *) targets="$targets $t";; esac
    done
fi
# No sanitizer: libFuzzer's coverage, with debug assertions and overflow
# checks on (cargo fuzz's default); ASan needs RUSTC_BOOTSTRAP=1 on stable.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! cargo fuzz build -s none >"$work/build.log" 2>&1; then
    tail -30 "$work/build.log"
    echo "fuzz: build failed"
    exit 1
fi
ok=0
failed=""
for t in $targets; do
    dir="$work/$t"
    log="$work/$t.log"
    if [ -n "$corpus" ]; then
        dir="$corpus/$t"
        log="$corpus/$t.log"
    fi
    mkdir -p "$dir" "artifacts/$t"
    dict=""
    for d in "dict/$t.dict" "dict/${t%%_*}.dict"; do
        if [ -f "$d" ]; then dict="-dict=$d"; break; fi
    done
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: 2 GiB is
    # far above any harness's need (the sensor's budget is 256 MiB); -max_len
    # lets inputs grow past the largest seed.
    seeds="seeds/$t"
    [ -d "$seeds" ] || seeds="seeds/${t%%_*}"
    seed=""
    if [ -n "${FUZZ_SEED:-}" ]; then
        seed=$FUZZ_SEED
    elif [ -n "${CI:-}" ]; then
        # 1..2^32-1 (libFuzzer takes 0 for "pick one").
        seed=$(( $(printf '%s' "$t" | cksum | cut -d' ' -f1) % 4294967295 + 1 ))
    fi
    # Built first (a no-op when up to date), so the outside stop times
    # fuzzing only.
    cargo fuzz build -s none "$t" >"$log" 2>&1
    timeout $((secs + 60)) cargo fuzz run -s none "$t" "$dir" "$seeds" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 $dict ${seed:+-seed=$seed} >>"$log" 2>&1
    rc=$?
    last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    # Without the final stats (killed, or the log could not be written):
    # the last status line's count.
    [ -n "$execs" ] || execs=$(echo "$last" | grep -o '^#[0-9]*' | tr -d '#')
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')
    corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*')
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$')
    # The seed libFuzzer used (given, or the one it picked).
    used=$(grep -o 'Seed: [0-9]*' "$log" | head -1 | grep -o '[0-9]*$')
    if [ "$rc" -eq 0 ]; then
        ok=$((ok + 1))
        printf 'fuzz: %-14s ok  %10s execs  cov %5s  ft %6s  corpus %5s  rss %4s MB  seed %s\n' \
            "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "${used:-?}"
    else
        failed="$failed $t"
        printf 'fuzz: %-14s FAILED (exit %s) after %s execs, seed %s\n' "$t" "$rc" "${execs:-?}" "${used:-?}"
        grep -E "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written|==[0-9]+== ERROR" "$log" | head -8 | sed 's/^/    /'
    fi
done
n=$(echo $targets | wc -w)
if [ -n "$failed" ]; then
    echo "fuzz: $ok of $n targets passed ${secs}s each; failed:$failed"
    exit 1
fi
echo "fuzz: $ok of $n targets passed ${secs}s each"
