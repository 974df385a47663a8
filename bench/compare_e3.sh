#!/usr/bin/env bash
# Side-by-side E(3) benchmark: e3nn (../shared/peers/e3nn_ops.py, and bench/segnn_step.py for a
# SEGNN training step on bench/qm9-batch-32.json) and `equivar bench --o3 --segnn-step` in one
# run on an idle machine, then a table of ratios (e3nn time / equivar time).
# Usage: bash bench/compare_e3.sh [outfile.jsonl]
#   PEERS=/path/to/shared/peers (default ../shared/peers), VENV=/path (default /tmp/peers-venv)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS=${PEERS:-$ROOT/../shared/peers}
VENV=${VENV:-/tmp/peers-venv}
OUT=${1:-$ROOT/bench/o3-$(date +%Y-%m-%d).jsonl}

[ -f "$PEERS/e3nn_ops.py" ] || { echo "no peer scripts in $PEERS (set PEERS=)" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || bash "$PEERS/setup.sh"
cargo build --release -q -p equivar-cli --manifest-path "$ROOT/Cargo.toml"

source "$ROOT/bench/quiet.sh"

{
  echo "{\"bench\": \"env\", \"date\": \"$(date -u +%FT%TZ)\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", \"cores\": $(nproc), \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD)\"}"
  wait_quiet
  (cd "$PEERS" && "$VENV/bin/python" e3nn_ops.py 2>/dev/null | grep '^{')
  wait_quiet
  "$VENV/bin/python" "$ROOT/bench/segnn_step.py" "$ROOT/bench/qm9-batch-32.json" 10 2>/dev/null | grep '^{'
  wait_quiet
  RAYON_NUM_THREADS=2 "$ROOT/target/release/equivar" bench --json --models '' --no-layers --o3 \
    --kernels equivar --repeats 20 | grep '"equivar_'
  wait_quiet
  RAYON_NUM_THREADS=2 "$ROOT/target/release/equivar" bench --json --models '' --no-layers \
    --segnn-step "$ROOT/bench/qm9-batch-32.json" --repeats 10 | grep '"equivar_'
} | tee "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
peer = {(r["bench"].replace("e3nn_", ""), r["case"]): r for r in rows if r["bench"].startswith("e3nn_")}
ours = {(r["bench"].replace("equivar_", ""), r["case"]): r for r in rows if r["bench"].startswith("equivar_") and "case" in r}
steps = sorted(k for k in set(peer) & set(ours) if k[0] == "segnn")
print("\nE(3) ops, float32, 2 threads, medians (ms); ratio = e3nn time / equivar time")
print(f"{'op':<6} {'case':<13} {'e3nn fwd':>9} {'eq fwd':>8} {'ratio':>6} {'e3nn f+b':>9} {'eq f+b':>8} {'ratio':>6}")
for key in sorted(set(peer) & set(ours) - set(steps)):
    p, o = peer[key], ours[key]
    print(f"{key[0]:<6} {key[1]:<13} {p['fwd_ms']:9.2f} {o['fwd_ms']:8.2f} {p['fwd_ms'] / o['fwd_ms']:5.2f}x "
          f"{p['fwd_bwd_ms']:9.2f} {o['fwd_bwd_ms']:8.2f} {p['fwd_bwd_ms'] / o['fwd_bwd_ms']:5.2f}x")
print("\nSEGNN training step (forward, L1 loss, backward, Adam) on 32 QM9 molecules (ms)")
print(f"{'case':<10} {'params e3nn/eq':>15} {'edges':>6} {'e3nn':>8} {'equivar':>8} {'ratio':>6}")
for key in steps:
    p, o = peer[key], ours[key]
    print(f"{key[1]:<10} {p['params']:>7}/{o['params']:<7} {o['edges']:>6} {p['step_ms']:8.1f} "
          f"{o['step_ms']:8.1f} {p['step_ms'] / o['step_ms']:5.2f}x")
PY
