#!/usr/bin/env bash
# A/B of `shmlane bench` between two commits, in one session, the two sides
# alternated round by round (the VM moves between a fast and a slow placement between
# and within runs: only ratios measured side by side mean anything).
#
#   scripts/ab-bench.sh BASE [NEW] [ROUNDS] [ROWS]
#
# BASE, NEW  commits (NEW defaults to the working tree as it is, uncommitted changes
#            included); each is built once, in release, from a clean worktree under
#            $TMPDIR (the working tree in place), into target/ab (shared by both
#            sides, so the dependencies are compiled once).
# ROUNDS     rounds per side (default 5); a round is one `shmlane bench --quick --json`.
# ROWS       the bench's --only list (default: the raw floor and the SPSC and MPMC
#            rows with Wait::Spin and Wait::Adaptive).
#
# Prints, for each row and size, the median of the rounds on each side and NEW/BASE:
# round-trip p50 and p99 (ns, lower is better), one-way messages/s (higher is
# better), and the raw floor's p50 in each round, which tells the placement (about
# 100-140 ns fast, 480 ns slow). Needs git, cargo and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:?usage: scripts/ab-bench.sh BASE [NEW] [ROUNDS] [ROWS]}
new=${2:-}
rounds=${3:-5}
rows=${4:-raw-cache-line,shmlane-spsc-spin,shmlane-spsc-adaptive,shmlane-mpmc-spin,shmlane-mpmc-adaptive}
work=$(mktemp -d "${TMPDIR:-/tmp}/shmlane-ab.XXXXXX")
target="$PWD/target/ab"
trap 'git worktree remove --force "$work/base/tree" >/dev/null 2>&1 || true
      git worktree remove --force "$work/new/tree" >/dev/null 2>&1 || true' EXIT

# build REV DIR: the command at REV (or the working tree if REV is empty) into DIR/shmlane.
build() {
    local rev=$1 out=$2 src
    mkdir -p "$out"
    if [ -z "$rev" ]; then
        src=.
    else
        src="$out/tree"
        git worktree add --detach "$src" "$rev" >/dev/null
    fi
    (cd "$src" && CARGO_TARGET_DIR="$target" cargo build -q --release -p shmlane-cli)
    cp "$target/release/shmlane" "$out/shmlane"
}

echo "building ${base} and ${new:-the working tree} in $work" >&2
build "$base" "$work/base"
build "$new" "$work/new"

# One round of one side: the bench's JSON flattened to "kind row bytes value" lines.
flatten() {
    jq -r '
      (.latency[] | select(.skipped == null)
        | "p50 \(.mechanism) \(.message_bytes) \(.median.p50_ns)",
          "p99 \(.mechanism) \(.message_bytes) \(.median.p99_ns)"),
      (.throughput[] | select(.skipped == null and .load == "messages")
        | "msgs/s \(.mechanism) \(.message_bytes) \(.msgs_per_s)")'
}

for r in $(seq 1 "$rounds"); do
    # Alternate which side goes first, so that a drift in placement falls on both.
    sides=(base new)
    [ $((r % 2)) -eq 0 ] && sides=(new base)
    for side in "${sides[@]}"; do
        "$work/$side/shmlane" bench --quick --json --only "$rows" 2>/dev/null |
            flatten | sed "s/^/$side /" >>"$work/results"
    done
    floor=$(awk -v r="$r" '$1=="base" && $2=="p50" && $3=="raw-cache-line" && $4==8 {v=$5} END {print v}' "$work/results")
    echo "round $r done (last floor p50 at 8 B: ${floor:-n/a} ns)" >&2
done

# Medians per side, and the ratio NEW/BASE.
awk '
  { key = $2 " " $3 " " $4; vals[$1, key] = vals[$1, key] " " $5; keys[key] = 1 }
  function median(s,   n, a, i, j, t) {
      n = split(s, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
      printf "%-7s %-24s %8s %14s %14s %9s\n", "figure", "row", "bytes", "base", "new", "new/base"
      for (k in keys) {
          split(k, p, " ")
          b = median(vals["base", k]); n = median(vals["new", k])
          printf "%-7s %-24s %8s %14.0f %14.0f %9.3f\n", p[1], p[2], p[3], b, n, (b ? n / b : 0)
      }
  }' "$work/results" | sort -k1,1 -k2,2 -k3,3n
