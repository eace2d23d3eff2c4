#!/usr/bin/env bash
# Builds and runs every fuzz target (or the ones named) for a given time each, with
# `cargo +nightly fuzz` (installed if missing), starting from the checked-in corpus.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      default: 600 s, every target
#
# Environment:
#   PARALLEL=N   targets run at a time (default 1; each is one libFuzzer process,
#                -jobs=1, so N cores)
#   CMIN=1       minimise each corpus afterwards (cargo fuzz cmin, edge coverage only),
#                so that what is checked in stays small; seed-* and crash-* files stay
#
# New corpus files land in fuzz/corpus/<target>/, crashes in fuzz/artifacts/<target>/,
# libFuzzer's output in fuzz/logs/<target>.log; the summary line of each target
# (executions per second, coverage, corpus size) is printed at the end. A crash makes
# the script exit 1: add the input to the corpus once fixed, so that
# `cargo test --test fuzz_replay` replays it on stable.
set -euo pipefail
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz_dir")
secs=${1:-600}
[ $# -gt 0 ] && shift
parallel=${PARALLEL:-1}

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
cd "$fuzz_dir"
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Seeds (valid rings, headers and operation sequences) into the corpus directories.
(cd "$root" && cargo test --release --test fuzz_replay -- --ignored write_seeds --quiet >/dev/null 2>&1)
# -a: debug assertions and overflow checks, as in `cargo test`.
cargo +nightly fuzz build -a

run_one() {
    local t=$1
    mkdir -p "logs/$t.work" "artifacts/$t" "corpus/$t"
    # libFuzzer with -jobs writes fuzz-0.log into its working directory.
    (cd "logs/$t.work" && cargo +nightly fuzz run -a --fuzz-dir "$fuzz_dir" "$t" \
        "$fuzz_dir/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -jobs=1 -workers=1 \
        -artifact_prefix="$fuzz_dir/artifacts/$t/" -print_final_stats=1 \
        >"$fuzz_dir/logs/$t.log" 2>&1) || true
    cat "logs/$t.work"/fuzz-*.log >>"logs/$t.log" 2>/dev/null || true
    rm -rf "logs/$t.work"
}

status=0
running=0
for t in "${targets[@]}"; do
    echo "fuzzing $t for ${secs}s"
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

echo
for t in "${targets[@]}"; do
    if [ "${CMIN:-0}" = 1 ]; then
        # Keep the seeds and the reproducers of fixed crashes (crash-*) as they are:
        # cmin would rename or drop them. Edge coverage only (-use_counters=0), so
        # the corpus stays at a few hundred files.
        keep=$(mktemp -d)
        find "corpus/$t" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'crash-*' \) \
            -exec mv {} "$keep/" \;
        cargo +nightly fuzz cmin -a "$t" "corpus/$t" -- -use_counters=0 \
            >>"logs/$t.log" 2>&1 || true
        mv "$keep"/* "corpus/$t/" 2>/dev/null || true
        rmdir "$keep"
    fi
    last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "logs/$t.log" | tail -1 || true)
    crashes=$(find "artifacts/$t" -type f | wc -l)
    printf '%-18s %s\n' "$t" "${last:-no libFuzzer status line: see fuzz/logs/$t.log}"
    printf '%-18s corpus: %s files; crashes: %s\n' "" "$(ls "corpus/$t" | wc -l)" "$crashes"
    if [ "$crashes" -gt 0 ] || grep -qE 'ERROR: libFuzzer|panicked|SUMMARY: ' "logs/$t.log"; then
        echo "  !! $t found a problem: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        status=1
    fi
done
exit $status
