#!/usr/bin/env bash
# Grows the local fuzz corpus with `cargo +nightly fuzz` (installed if missing), starting
# from the checked-in seeds, for a given time per target; then minimises it.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      default: 600 s, every target
#
# Environment:
#   PARALLEL=N   targets run at a time (default 1; each is one libFuzzer process,
#                -jobs=1, so N cores)
#   CMIN=0       leave the local corpus as it grew (default: minimise it afterwards with
#                `cargo fuzz cmin`, edge coverage only)
#   PROMOTE=1    afterwards, copy into fuzz/seeds/<target>/ the corpus inputs that reach
#                edges the seeds do not (libFuzzer -merge=1, edge coverage only)
#
# Where things are:
#   fuzz/seeds/<target>/   tracked in git, replayed on stable by tests/fuzz_replay.rs
#                          (`cargo test --release --test fuzz_replay`): the reproducers
#                          of fixed crashes (crash-<what>), the harness's seeds as they
#                          were first written (seed-<i>), and a minimised corpus (inputs
#                          named by their SHA-1). At most 2,000 files across targets.
#   fuzz/corpus/<target>/  local, ignored by git: what fuzzing finds. libFuzzer reads it
#                          and the seeds, and writes new inputs here only; the harness's
#                          seeds are written here first (seed-<i>).
#   fuzz/artifacts/<target>/, fuzz/logs/<target>.log   local: crashes, libFuzzer output.
#
# Promoting: a crash makes the script exit 1. Fix it (or park the input in fuzz/pending/
# with a note until it is fixed), then copy it to fuzz/seeds/<target>/crash-<what>, so
# that the replay test runs it for ever. New seeds: after a long run, `PROMOTE=1
# fuzz/run.sh 0 <target>` adds only the inputs that reach new edges; check the count
# (`git ls-files fuzz/seeds | wc -l`, at most 2,000), replay them
# (`cargo test --release --test fuzz_replay`) and commit them. The summary line of
# each target (executions per second, coverage, corpus size) is printed at the end.
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

# The harness's seeds (valid rings, headers and operation sequences) into the corpus.
(cd "$root" && cargo test --release --test fuzz_replay -- --ignored write_seeds --quiet >/dev/null 2>&1)
# -a: debug assertions and overflow checks, as in `cargo test`.
cargo +nightly fuzz build -a

run_one() {
    local t=$1
    mkdir -p "logs/$t.work" "artifacts/$t" "corpus/$t"
    # 0 s: no fuzzing (libFuzzer would take -max_total_time=0 as "no limit").
    if [ "$secs" -le 0 ]; then
        rm -rf "logs/$t.work"
        return 0
    fi
    # libFuzzer with -jobs writes fuzz-0.log into its working directory. It reads both
    # directories and writes new inputs into the first.
    (cd "logs/$t.work" && cargo +nightly fuzz run -a --fuzz-dir "$fuzz_dir" "$t" \
        "$fuzz_dir/corpus/$t" "$fuzz_dir/seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -jobs=1 -workers=1 \
        -artifact_prefix="$fuzz_dir/artifacts/$t/" -print_final_stats=1 \
        >"$fuzz_dir/logs/$t.log" 2>&1) || true
    cat "logs/$t.work"/fuzz-*.log >>"logs/$t.log" 2>/dev/null || true
    rm -rf "logs/$t.work"
}

status=0
running=0
for t in "${targets[@]}"; do
    [ "$secs" -gt 0 ] && echo "fuzzing $t for ${secs}s"
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
    # The fuzzing run's last status line (before cmin and the merge append theirs).
    last=$(grep -sE '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "logs/$t.log" | tail -1 || true)
    if [ "${CMIN:-1}" = 1 ]; then
        # Edge coverage only (-use_counters=0), so that it stays at a few hundred files.
        cargo +nightly fuzz cmin -a --fuzz-dir "$fuzz_dir" "$t" "corpus/$t" -- -use_counters=0 \
            >>"logs/$t.log" 2>&1 || true
    fi
    if [ "${PROMOTE:-0}" = 1 ]; then
        before=$(ls "seeds/$t" | wc -l)
        cargo +nightly fuzz run -a --fuzz-dir "$fuzz_dir" "$t" "seeds/$t" "corpus/$t" -- -merge=1 -use_counters=0 \
            >>"logs/$t.log" 2>&1 || true
        printf '%-18s promoted %s inputs to fuzz/seeds/%s/\n' "$t" \
            $(($(ls "seeds/$t" | wc -l) - before)) "$t"
    fi
    crashes=$(find "artifacts/$t" -type f | wc -l)
    printf '%-18s %s\n' "$t" "${last:-no libFuzzer status line: see fuzz/logs/$t.log}"
    printf '%-18s corpus: %s files; crashes: %s\n' "" "$(ls "corpus/$t" | wc -l)" "$crashes"
    if [ "$crashes" -gt 0 ] || grep -sqE 'ERROR: libFuzzer|panicked|SUMMARY: ' "logs/$t.log"; then
        echo "  !! $t found a problem: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        status=1
    fi
done
exit $status
