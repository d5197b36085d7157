#!/usr/bin/env bash
# Rewrites fuzz/seeds/<target>/ from the real captures in pcaps/ and the
# rule files (fuzz/src/seeds.rs says what each target gets), then shows
# how many seeds each target has. Review `git status fuzz/seeds` after.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_WRITE_SEEDS=1 cargo test -q --test fuzz_regressions -- --ignored --exact write_seeds --nocapture
for d in fuzz/seeds/*/; do
    printf '%-14s %4d seeds %6d KiB\n' "$(basename "$d")" "$(ls "$d" | wc -l)" "$(du -sk "$d" | cut -f1)"
done
