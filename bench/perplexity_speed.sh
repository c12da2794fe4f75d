#!/usr/bin/env bash
# Perplexity's evaluation speed against prompt processing, in the same run: alternates
# `bitnet bench -p 128 -n 0` (pp128: a 128-token prompt, logits of its last row only) and
# `bitnet perplexity` over 16 chunks of 512 tokens of scripts/corpus's text (logits of the 255
# scored rows of every chunk, scoring included), ROUNDS times with the same threads, and prints
# the median tok/s of each and the ratio perplexity/pp128.
#   bench/perplexity_speed.sh BITNET MODEL [rounds=3] [threads=2] [perplexity options...]
# e.g.
#   build/bin/bitnet synth --preset 2b4t --weights i2_s -o models/2b4t-i2_s.gguf
#   bench/perplexity_speed.sh build/bin/bitnet models/2b4t-i2_s.gguf 3 2 --head-type q8_0
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,10p "$0"; exit 2; }
BIN="$1" MODEL="$2" ROUNDS="${3:-3}" THREADS="${4:-2}"
shift $(( $# >= 4 ? 4 : $# ))
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
"$(dirname "$0")/../scripts/corpus" 10000 > "$OUT/text.txt"
for r in $(seq 1 "$ROUNDS"); do
  "$BIN" bench -m "$MODEL" -p 128 -n 0 -t "$THREADS" -r 3 --json > "$OUT/bench-$r.json"
  "$BIN" perplexity -m "$MODEL" -f "$OUT/text.txt" --ctx 512 --chunks 16 -t "$THREADS" "$@" \
    --json > "$OUT/ppl-$r.json"
  echo "round $r of $ROUNDS done" >&2
done
python3 - "$OUT" "$ROUNDS" "$THREADS" "$*" <<'PY'
import json, statistics, sys
out, rounds, threads, opts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
pp = [t["tok_s_median"] for r in range(1, rounds + 1)
      for t in json.load(open(f"{out}/bench-{r}.json")) if t["test"] == "pp128"]
ppl = [json.load(open(f"{out}/ppl-{r}.json"))["tok_s"] for r in range(1, rounds + 1)]
for r in range(rounds):
    print(f"round {r + 1}: pp128 {pp[r]:8.2f} tok/s   perplexity {ppl[r]:8.2f} tok/s   ratio {ppl[r] / pp[r]:.3f}")
a, b = statistics.median(pp), statistics.median(ppl)
print(f"median of {rounds} alternating rounds, {threads} threads, perplexity options '{opts}': "
      f"pp128 {a:.2f} tok/s, perplexity (16 x 512) {b:.2f} tok/s, ratio {b / a:.3f}")
PY
