#!/usr/bin/env bash
# Side-by-side DISCO benchmark: torch-harmonics (../shared/peers/th_disco.py) and
# `equivar bench --disco` in one run on an idle machine, then a table of ratios and of the
# time growth per 4x pixels.
# Usage: bash bench/compare_disco.sh [outfile.jsonl]
#   PEERS=/path/to/shared/peers (default ../shared/peers), VENV=/path (default /tmp/peers-venv)
#   GRIDS (equivar; default 64x128,128x256,256x512,512x1024,1024x2048)
#   ROUNDS=N (default 1): N rounds of torch-harmonics then equivar, for a machine whose speed
#   drifts from process to process; each ratio and each step of the time per 4x pixels is then
#   taken within one round, and the table shows their medians over the rounds with the range.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS=${PEERS:-$ROOT/../shared/peers}
VENV=${VENV:-/tmp/peers-venv}
OUT=${1:-$ROOT/bench/disco-$(date +%Y-%m-%d).jsonl}
GRIDS=${GRIDS:-64x128,128x256,256x512,512x1024,1024x2048}

[[ "${ROUNDS:-1}" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number >= 1, not '${ROUNDS}'" >&2; exit 2; }
[ -f "$PEERS/th_disco.py" ] || { echo "no peer scripts in $PEERS (set PEERS=)" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || bash "$PEERS/setup.sh"
cargo build --release -q -p equivar-cli --manifest-path "$ROOT/Cargo.toml"

source "$ROOT/bench/quiet.sh"

{
  echo "{\"bench\": \"env\", \"date\": \"$(date -u +%FT%TZ)\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", \"cores\": $(nproc), \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD)\"}"
  for _ in $(seq "${ROUNDS:-1}"); do
    wait_quiet
    (cd "$PEERS" && "$VENV/bin/python" th_disco.py 2>/dev/null | grep '^{')
    wait_quiet
    RAYON_NUM_THREADS=2 "$ROOT/target/release/equivar" bench --json --models '' --no-layers \
      --disco "$GRIDS" --repeats 10 | grep equivar_disco
  done
} | tee "$OUT"

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
# One round = torch-harmonics' lines and then equivar's, in the order the loop above writes them.
rounds = []
for r in rows:
    if r["bench"] not in ("th_disco", "equivar_disco"):
        continue
    if r["bench"] == "th_disco" and (not rounds or rounds[-1]["eq"]):
        rounds.append({"th": {}, "eq": {}})
    if not rounds:
        rounds.append({"th": {}, "eq": {}})
    rounds[-1]["th" if r["bench"] == "th_disco" else "eq"][tuple(r["shape"])] = r
n = len(rounds)

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return f"{'-':>16}"
    m = statistics.median(values)
    return f"{m:6.2f}x" + (f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else "")

shapes = sorted({s for r in rounds for side in ("th", "eq") for s in r[side]})
print(f"\nDISCO conv 16 -> 16, batch 4, piecewise linear (3, 3), equiangular, 2 threads "
      f"(medians{'' if n == 1 else f' over {n} rounds; ratios and steps per round, then their median (range)'})")
print(f"{'grid':<10} {'th fwd':>9} {'eq fwd':>9} {'fwd ratio':>20} {'th f+b':>9} {'eq f+b':>9} "
      f"{'f+b ratio':>20} {'th constr':>10} {'eq constr':>10} {'eq MB':>7}")
fmt = lambda v: f"{v:9.2f}" if v is not None else f"{'-':>9}"
ms = lambda v: f"{1e3 * v:8.1f}ms" if v is not None else f"{'-':>10}"
for shape in shapes:
    get = lambda side, key: [r[side][shape][key] if shape in r[side] else None for r in rounds]
    ratio = lambda key: [t / e if t and e else None for t, e in zip(get("th", key), get("eq", key))]
    print(f"{shape[0]}x{shape[1]:<6} {fmt(med(get('th', 'fwd_ms')))} {fmt(med(get('eq', 'fwd_ms')))} "
          f"{spread(ratio('fwd_ms')):>20} {fmt(med(get('th', 'fwd_bwd_ms')))} "
          f"{fmt(med(get('eq', 'fwd_bwd_ms')))} {spread(ratio('fwd_bwd_ms')):>20} "
          f"{ms(med(get('th', 'construct_s')))} {ms(med(get('eq', 'construct_s')))} "
          f"{med(get('eq', 'peak_rss_mb')) or 0:7.0f}")
print("(ratio: torch-harmonics time / equivar time)")
for name, side in (("torch-harmonics", "th"), ("equivar", "eq")):
    present = sorted({s for r in rounds for s in r[side]})
    steps = []
    for a, b in zip(present, present[1:]):
        step = lambda key: [r[side][b][key] / r[side][a][key] if a in r[side] and b in r[side] else None
                            for r in rounds]
        steps.append(f"{b[0]}x{b[1]}: fwd {spread(step('fwd_ms')).strip()}, "
                     f"f+b {spread(step('fwd_bwd_ms')).strip()}")
    print(f"{name} time per 4x pixels: " + "; ".join(steps))
PY
