#!/usr/bin/env bash
# Side-by-side benchmark: the Python peers (escnn, plain torch) and `equivar bench` in one run on
# an idle machine, then a table of equivar/peer ratios.
# Usage: bash bench/compare.sh [outfile.jsonl]
#   PEERS=/path/to/shared/peers (default ../shared/peers), VENV=/path (default /tmp/peers-venv)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS=${PEERS:-$ROOT/../shared/peers}
VENV=${VENV:-/tmp/peers-venv}
OUT=${1:-$ROOT/bench/results-$(date +%Y-%m-%d).jsonl}

[ -f "$PEERS/escnn_p4.py" ] || { echo "no peer scripts in $PEERS (set PEERS=)" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || bash "$PEERS/setup.sh"
cargo build --release -q -p equivar-cli --manifest-path "$ROOT/Cargo.toml"

source "$ROOT/bench/quiet.sh"

{
  echo "{\"bench\": \"env\", \"date\": \"$(date -u +%FT%TZ)\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", \"cores\": $(nproc), \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD)\"}"
  for s in escnn_p4.py torch_p4_plain.py; do
    wait_quiet
    (cd "$PEERS" && "$VENV/bin/python" "$s" 2>/dev/null | grep '^{')
  done
  wait_quiet
  RAYON_NUM_THREADS=2 "$ROOT/target/release/equivar" bench --json --repeats 20
} | tee "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
peer = {r["bench"]: r for r in rows if r["bench"] in ("escnn_p4", "torch_p4_plain")}
ours = {(r["model"], r["kernels"]): r for r in rows if r["bench"] == "equivar_model"}
esc, plain = peer.get("escnn_p4", {}), peer.get("torch_p4_plain", {})
print("\nabusing-p4 at 28x28, batch 128, 2 threads (medians)")
print(f"{'figure':<18} {'escnn':>10} {'escnn exp.':>11} {'torch':>10} {'equivar':>10} {'burn conv':>10} {'eq/escnn':>9}")
figures = [("train_b128_ips", "train_b128_ips", True), ("infer_b128_ips", "exported_infer_b128_ips", True),
           ("infer_b1_ms", "exported_infer_b1_ms", False), ("construct_s", "construct_s", False)]
for ours_key, exported_key, higher_better in figures:
    e = ours.get(("abusing-p4", "equivar"), {}).get(ours_key)
    b = ours.get(("abusing-p4", "burn"), {}).get(ours_key)
    ref = esc.get(exported_key) if exported_key in esc else esc.get(ours_key)
    ratio = (e / ref if higher_better else ref / e) if (e and ref) else float("nan")
    fmt = lambda v: f"{v:10.4g}" if isinstance(v, (int, float)) else f"{'-':>10}"
    exported = fmt(esc.get(exported_key)) if exported_key != ours_key else "%10s" % "-"
    print(f"{ours_key:<18} {fmt(esc.get(ours_key))} {exported:>11} {fmt(plain.get(ours_key))} "
          f"{fmt(e)} {fmt(b)} {ratio:8.2f}x")
frozen = ours.get(("abusing-p4", "equivar"), {})
for ours_key, peer_key, higher_better in [("frozen_infer_b128_ips", "exported_infer_b128_ips", True),
                                          ("frozen_infer_b1_ms", "exported_infer_b1_ms", False)]:
    e, ref = frozen.get(ours_key), esc.get(peer_key)
    ratio = (e / ref if higher_better else ref / e) if (e and ref) else float("nan")
    fmt = lambda v: f"{v:10.4g}" if isinstance(v, (int, float)) else f"{'-':>10}"
    print(f"{ours_key:<18} {'-':>10} {fmt(ref):>11} {'-':>10} {fmt(e)} {'-':>10} {ratio:8.2f}x")
print("(eq/escnn: how many times better equivar is; inference and latency against escnn's exported model;")
print(" frozen_*: equivar's frozen inference model, Net::to_frozen, against escnn's exported model)")
PY
