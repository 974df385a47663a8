#!/usr/bin/env bash
# Side-by-side benchmark of the E(2) MNIST-rot models: escnn (../shared/peers/escnn_e2.py) and
# `equivar bench` in one run on an idle machine, then a table of equivar/escnn ratios.
# Usage: bash bench/compare_e2.sh [c8] [c16] [d16c16]   (default: c8)
#   PEERS=/path/to/shared/peers (default ../shared/peers), VENV=/path (default /tmp/peers-venv),
#   OUT=file.jsonl (default bench/e2-<date>.jsonl)
# escnn measures training and inference at batch 64, equivar at batch 128 (its bench's batch):
# both are throughput (images/s) of saturated 2-thread runs, but the batches differ.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS=${PEERS:-$ROOT/../shared/peers}
VENV=${VENV:-/tmp/peers-venv}
OUT=${OUT:-$ROOT/bench/e2-$(date +%Y-%m-%d).jsonl}
SETS=("$@")
[ ${#SETS[@]} -gt 0 ] || SETS=(c8)

[ -f "$PEERS/escnn_e2.py" ] || { echo "no peer scripts in $PEERS (set PEERS=)" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || bash "$PEERS/setup.sh"
cargo build --release -q -p equivar-cli --manifest-path "$ROOT/Cargo.toml"

source "$ROOT/bench/quiet.sh"

models=$(printf 'e2-%s,' "${SETS[@]}"); models=${models%,}
{
  echo "{\"bench\": \"env\", \"date\": \"$(date -u +%FT%TZ)\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", \"cores\": $(nproc), \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD)\"}"
  wait_quiet
  (cd "$PEERS" && "$VENV/bin/python" escnn_e2.py "${SETS[@]}" 2>/dev/null | grep '^{')
  wait_quiet
  RAYON_NUM_THREADS=2 "$ROOT/target/release/equivar" bench --json --kernels equivar --no-layers \
    --repeats 3 --models "$models"
} | tee "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
esc = {r["group"]: r for r in rows if r.get("bench") == "escnn_e2"}
ours = {r["model"]: r for r in rows if r.get("bench") == "equivar_model"}
env = next((r for r in rows if r.get("bench") == "env"), {})
print(f"\nE(2) MNIST-rot models at 28x28, 2 threads, {env.get('cpu', '?')} (medians; escnn batch 64, equivar batch 128)")
print(f"{'model':<10} {'figure':<24} {'escnn':>10} {'equivar':>10} {'eq/escnn':>9}")
figures = [  # (equivar key, escnn key, higher is better)
    ("construct_s", "construct_s", False),
    ("train_b128_ips", "train_b64_ips", True),
    ("infer_b128_ips", "infer_b64_ips", True),
    ("infer_b1_ms", "infer_b1_ms", False),
    ("frozen_infer_b128_ips", "exported_infer_b64_ips", True),
    ("frozen_infer_b1_ms", "exported_infer_b1_ms", False),
]
for group, e in esc.items():
    o = ours.get(f"e2-{group}", {})
    for ok, ek, higher in figures:
        a, b = o.get(ok), e.get(ek)
        ratio = (a / b if higher else b / a) if (a and b) else float("nan")
        print(f"e2-{group:<7} {ok:<24} {b if b is not None else float('nan'):10.4g} "
              f"{a if a is not None else float('nan'):10.4g} {ratio:8.2f}x")
print("(eq/escnn: how many times better equivar is; frozen_* against escnn's exported model)")
PY
