#!/usr/bin/env bash
# Two builds of bitnet side by side (a change against the commit before it): runs
# `bitnet bench` of each in turn, ROUNDS times, on the same model with the same settings, and
# prints the median tok/s of each test and the ratio B/A.
#   bench/ab.sh BITNET_A BITNET_B MODEL [rounds=3] [bench options, default: -p 128 -n 64 -t 2 -r 3]
# e.g. (a worktree of the previous commit, built in /tmp/base):
#   git worktree add /tmp/base HEAD~1 && (cd /tmp/base && cmake --preset release && cmake --build build)
#   bench/ab.sh /tmp/base/build/bin/bitnet build/bin/bitnet models/2b4t-i2_s.gguf
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,8p "$0"; exit 2; }
A="$1" B="$2" MODEL="$3" ROUNDS="${4:-3}"
shift $(( $# >= 4 ? 4 : 3 ))
OPTS=("$@")
[ ${#OPTS[@]} -gt 0 ] || OPTS=(-p 128 -n 64 -t 2 -r 3)
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin="$A"; [ "$side" = B ] && bin="$B"
    "$bin" bench -m "$MODEL" "${OPTS[@]}" --json > "$OUT/$side-$r.json"
  done
  echo "round $r of $ROUNDS done" >&2
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rates = {}
for side in "AB":
    for r in range(1, rounds + 1):
        for t in json.load(open(f"{out}/{side}-{r}.json")):
            rates.setdefault((t["test"], t["threads"]), {}).setdefault(side, []).append(t["tok_s_median"])
print(f"{'test':10} {'threads':>7} {'A tok/s':>10} {'B tok/s':>10} {'B/A':>7}   (medians of {rounds} alternating rounds)")
for (test, threads), v in rates.items():
    a, b = statistics.median(v["A"]), statistics.median(v["B"])
    print(f"{test:10} {threads:7d} {a:10.2f} {b:10.2f} {b / a:7.3f}")
PY
