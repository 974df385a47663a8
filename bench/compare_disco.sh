#!/usr/bin/env bash
# Side-by-side DISCO benchmark: torch-harmonics (../shared/peers/th_disco.py) and
# `equivar bench --disco` in one run on an idle machine, then a table of ratios and of the
# time growth per 4x pixels.
# Usage: bash bench/compare_disco.sh [outfile.jsonl]
#   PEERS=/path/to/shared/peers (default ../shared/peers), VENV=/path (default /tmp/peers-venv)
#   GRIDS (equivar; default 64x128,128x256,256x512,512x1024,1024x2048)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS=${PEERS:-$ROOT/../shared/peers}
VENV=${VENV:-/tmp/peers-venv}
OUT=${1:-$ROOT/bench/disco-$(date +%Y-%m-%d).jsonl}
GRIDS=${GRIDS:-64x128,128x256,256x512,512x1024,1024x2048}

[ -f "$PEERS/th_disco.py" ] || { echo "no peer scripts in $PEERS (set PEERS=)" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || bash "$PEERS/setup.sh"
cargo build --release -q -p equivar-cli --manifest-path "$ROOT/Cargo.toml"

source "$ROOT/bench/quiet.sh"

{
  echo "{\"bench\": \"env\", \"date\": \"$(date -u +%FT%TZ)\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", \"cores\": $(nproc), \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD)\"}"
  wait_quiet
  (cd "$PEERS" && "$VENV/bin/python" th_disco.py 2>/dev/null | grep '^{')
  wait_quiet
  RAYON_NUM_THREADS=2 "$ROOT/target/release/equivar" bench --json --models '' --no-layers \
    --disco "$GRIDS" --repeats 10 | grep equivar_disco
} | tee "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
th = {tuple(r["shape"]): r for r in rows if r["bench"] == "th_disco"}
eq = {tuple(r["shape"]): r for r in rows if r["bench"] == "equivar_disco"}
print("\nDISCO conv 16 -> 16, batch 4, piecewise linear (3, 3), equiangular, 2 threads (medians)")
print(f"{'grid':<10} {'th fwd':>9} {'eq fwd':>9} {'ratio':>6} {'th f+b':>9} {'eq f+b':>9} {'ratio':>6} "
      f"{'th constr':>10} {'eq constr':>10} {'eq MB':>7}")
fmt = lambda v: f"{v:9.2f}" if v is not None else f"{'-':>9}"
for shape in sorted(set(th) | set(eq)):
    t, e = th.get(shape, {}), eq.get(shape, {})
    r1 = t["fwd_ms"] / e["fwd_ms"] if t and e else None
    r2 = t["fwd_bwd_ms"] / e["fwd_bwd_ms"] if t and e else None
    rat = lambda r: f"{r:5.2f}x" if r else f"{'-':>6}"
    ms = lambda d: f"{1e3 * d['construct_s']:8.1f}ms" if d else f"{'-':>10}"
    print(f"{shape[0]}x{shape[1]:<6} {fmt(t.get('fwd_ms'))} {fmt(e.get('fwd_ms'))} {rat(r1)} "
          f"{fmt(t.get('fwd_bwd_ms'))} {fmt(e.get('fwd_bwd_ms'))} {rat(r2)} {ms(t)} {ms(e)} "
          f"{e.get('peak_rss_mb', 0):7.0f}")
print("(ratio: torch-harmonics time / equivar time)")
for name, d in (("torch-harmonics", th), ("equivar", eq)):
    shapes = sorted(d)
    growth = [f"{b[0]}x{b[1]}: fwd x{d[b]['fwd_ms'] / d[a]['fwd_ms']:.2f}, f+b x{d[b]['fwd_bwd_ms'] / d[a]['fwd_bwd_ms']:.2f}"
              for a, b in zip(shapes, shapes[1:])]
    print(f"{name} time per 4x pixels: " + "; ".join(growth))
PY
