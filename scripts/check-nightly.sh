#!/usr/bin/env bash
# Checks that need a nightly toolchain, for local runs (CI need not run them: Miri
# may not be installable there).
#
#   scripts/check-nightly.sh [miri] [tsan] [asan]      default: all three
#
# miri  The protocols over the heap backing under Miri, with strict provenance and
#       symbolic alignment checks, once with Stacked Borrows and once with Tree
#       Borrows: the library's unit tests, the tests over the heap backing in the claim
#       files listed in MIRI_TESTS below, tests/fuzz_replay.rs (the fuzz targets' seeds
#       and random inputs; Miri's isolation has no file system for the corpus) and the
#       heap ring of tests/no_data_races.rs. Tests
#       that need the OS (shm_open, fork, futex waits between processes, membarrier)
#       are `#[cfg_attr(miri, ignore = "...")]` or live in files not run here.
# tsan  tests/no_data_races.rs under ThreadSanitizer: two rings, each a POSIX
#       segment mapped twice in one process, a thread per endpoint, a million
#       messages; then a heap ring (one mapping, where TSan relates the two sides'
#       accesses).
# asan  The same under AddressSanitizer.
#
# The sanitizers need an instrumented std (-Zbuild-std, so the rust-src component)
# and their own target directories; SHMLANE_STRESS_MESSAGES overrides the count.
set -euo pipefail
cd "$(dirname "$0")/.."

# The test files with tests over the heap backing (the rest of each is ignored under
# Miri, or compiled out).
MIRI_TESTS=(ordering_and_integrity mpmc_exactly_once_in_order try_and_timed_calls disconnect
    create_and_open message_sizes zero_copy_and_typed mpmc_stalls fuzz_replay no_data_races)

checks=("$@")
[ ${#checks[@]} -eq 0 ] && checks=(miri tsan asan)
target=$(rustc +nightly -vV | sed -n 's/^host: //p')

run() {
    printf '\n==> %s\n' "$*"
    "$@"
}

for check in "${checks[@]}"; do
    case "$check" in
    miri)
        base="-Zmiri-strict-provenance -Zmiri-symbolic-alignment-check"
        for borrows in "" "-Zmiri-tree-borrows"; do
            run env MIRIFLAGS="$base${borrows:+ $borrows}" \
                cargo +nightly miri test -p shmlane --lib \
                "${MIRI_TESTS[@]/#/--test=}"
        done
        ;;
    tsan | asan)
        san=$([ "$check" = tsan ] && echo thread || echo address)
        # halt_on_error: the first report fails the run, whatever the test asserts.
        run env RUSTFLAGS="-Zsanitizer=$san" RUSTDOCFLAGS="-Zsanitizer=$san" \
            CARGO_TARGET_DIR="target/$check" \
            TSAN_OPTIONS="halt_on_error=1 ${TSAN_OPTIONS:-}" \
            ASAN_OPTIONS="halt_on_error=1 detect_leaks=1 ${ASAN_OPTIONS:-}" \
            cargo +nightly test -Zbuild-std --target "$target" \
            --test no_data_races -- --test-threads=1 --nocapture
        ;;
    *)
        echo "unknown check '$check' (miri, tsan, asan)" >&2
        exit 2
        ;;
    esac
done
printf '\nnightly checks passed: %s\n' "${checks[*]}"
