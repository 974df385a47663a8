#!/usr/bin/env bash
# Side-by-side benchmark: the Python peers (escnn, plain torch) and `equivar bench` in one run on
# an idle machine, then a table of equivar/peer ratios.
# Usage: bash bench/compare.sh [outfile.jsonl]
#   PEERS=/path/to/shared/peers (default ../shared/peers), VENV=/path (default /tmp/peers-venv)
#   ROUNDS=N (default 1): N rounds of peers then equivar, for a machine whose speed drifts; the
#   table then shows each figure's median over the rounds and the median of the per-round
#   ratios (each ratio taken within one round), with their range.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS=${PEERS:-$ROOT/../shared/peers}
VENV=${VENV:-/tmp/peers-venv}
OUT=${1:-$ROOT/bench/results-$(date +%Y-%m-%d).jsonl}

[[ "${ROUNDS:-1}" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number >= 1, not '${ROUNDS}'" >&2; exit 2; }
[ -f "$PEERS/escnn_p4.py" ] || { echo "no peer scripts in $PEERS (set PEERS=)" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || bash "$PEERS/setup.sh"
cargo build --release -q -p equivar-cli --manifest-path "$ROOT/Cargo.toml"

source "$ROOT/bench/quiet.sh"

{
  echo "{\"bench\": \"env\", \"date\": \"$(date -u +%FT%TZ)\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", \"cores\": $(nproc), \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD)\"}"
  for _ in $(seq "${ROUNDS:-1}"); do
    for s in escnn_p4.py torch_p4_plain.py; do
      wait_quiet
      (cd "$PEERS" && "$VENV/bin/python" "$s" 2>/dev/null | grep '^{')
    done
    wait_quiet
    RAYON_NUM_THREADS=2 "$ROOT/target/release/equivar" bench --json --repeats 20
  done
} | tee "$OUT"

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
# One round = the peers' lines and then equivar's, in the order the loop above writes them.
rounds, current = [], None
for r in rows:
    if r["bench"] == "escnn_p4":
        current = {"peer": {}, "ours": {}}
        rounds.append(current)
    if current is None:
        continue
    if r["bench"] in ("escnn_p4", "torch_p4_plain"):
        current["peer"][r["bench"]] = r
    elif r["bench"] == "equivar_model":
        current["ours"][(r["model"], r["kernels"])] = r

def fmt(v):
    return f"{v:10.4g}" if isinstance(v, (int, float)) else f"{'-':>10}"

def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None

def ratio(e, ref, higher_better):
    return (e / ref if higher_better else ref / e) if (e and ref) else None

def ratios_text(rs):
    rs = [r for r in rs if r is not None]
    if not rs:
        return f"{'nan':>8}x"
    text = f"{statistics.median(rs):8.2f}x"
    return text + (f"  ({min(rs):.2f}-{max(rs):.2f})" if len(rs) > 1 else "")

n = len(rounds)
print(f"\nabusing-p4 at 28x28, batch 128, 2 threads (medians{'' if n == 1 else f' over {n} rounds'})")
print(f"{'figure':<18} {'escnn':>10} {'escnn exp.':>11} {'torch':>10} {'equivar':>10} {'burn conv':>10} {'eq/escnn':>9}")
figures = [("train_b128_ips", "train_b128_ips", True), ("infer_b128_ips", "exported_infer_b128_ips", True),
           ("infer_b1_ms", "exported_infer_b1_ms", False), ("construct_s", "construct_s", False)]
for ours_key, exported_key, higher_better in figures:
    pick = lambda f: median([f(r) for r in rounds])
    esc = pick(lambda r: r["peer"].get("escnn_p4", {}).get(ours_key))
    exp = pick(lambda r: r["peer"].get("escnn_p4", {}).get(exported_key)) if exported_key != ours_key else None
    plain = pick(lambda r: r["peer"].get("torch_p4_plain", {}).get(ours_key))
    e = pick(lambda r: r["ours"].get(("abusing-p4", "equivar"), {}).get(ours_key))
    b = pick(lambda r: r["ours"].get(("abusing-p4", "burn"), {}).get(ours_key))
    ref_key = exported_key if exported_key != ours_key else ours_key
    rs = [ratio(r["ours"].get(("abusing-p4", "equivar"), {}).get(ours_key),
                r["peer"].get("escnn_p4", {}).get(ref_key), higher_better) for r in rounds]
    exported = fmt(exp) if exported_key != ours_key else "%10s" % "-"
    print(f"{ours_key:<18} {fmt(esc)} {exported:>11} {fmt(plain)} {fmt(e)} {fmt(b)} {ratios_text(rs)}")
for ours_key, peer_key, higher_better in [("frozen_infer_b128_ips", "exported_infer_b128_ips", True),
                                          ("frozen_infer_b1_ms", "exported_infer_b1_ms", False)]:
    e = median([r["ours"].get(("abusing-p4", "equivar"), {}).get(ours_key) for r in rounds])
    ref = median([r["peer"].get("escnn_p4", {}).get(peer_key) for r in rounds])
    rs = [ratio(r["ours"].get(("abusing-p4", "equivar"), {}).get(ours_key),
                r["peer"].get("escnn_p4", {}).get(peer_key), higher_better) for r in rounds]
    print(f"{ours_key:<18} {'-':>10} {fmt(ref):>11} {'-':>10} {fmt(e)} {'-':>10} {ratios_text(rs)}")
print("(eq/escnn: how many times better equivar is, the median of the rounds' ratios (range); inference and")
print(" latency against escnn's exported model; frozen_*: equivar's frozen inference model, Net::to_frozen)")
PY
