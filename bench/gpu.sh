#!/usr/bin/env bash
# The GPU path: builds the CLI with one of burn's GPU backends and, on that device,
#  1. measures the reference models' equivariance error under every group element (the planar
#     models at their exact size, DISCO under polar and random SO(3) rotations): every layer
#     through burn's generic ops, so exactness must hold there as on the CPU;
#  2. benchmarks abusing-p4 (training and inference at batch 128, batch-1 latency) and the
#     DISCO layer at the sizes of torch-harmonics' H100 figures in DESIGN.md 2.4 (batch 1,
#     K = 9: 180x360 with 64 channels, 360x720 with 256), as JSON lines in OUT.
# Usage: bash bench/gpu.sh [outfile.jsonl]
#   FEATURE=cuda|wgpu|vulkan (default cuda), DEVICE (default $FEATURE, e.g. cuda:1);
#   FEATURE=cpu runs the same steps on the CPU (a dry run of the script where there is no GPU).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FEATURE=${FEATURE:-cuda}
DEVICE=${DEVICE:-$FEATURE}
OUT=${1:-$ROOT/bench/gpu-$(date +%Y-%m-%d).jsonl}

if [ "$FEATURE" = cpu ]; then FEATURES=(); else FEATURES=(--features "$FEATURE"); fi
cargo build --release -q -p equivar-cli "${FEATURES[@]}" --manifest-path "$ROOT/Cargo.toml"
EQ="$ROOT/target/release/equivar"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true

# 1. Equivariance on the device (fails the script if a model is not exact where it should be).
# Exact models must stay within float32's 1e-5 there too; DISCO's polar rotations are exact.
CHECK=$(mktemp); trap 'rm -f "$CHECK"' EXIT
verdict() {
  python3 - "$CHECK" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if "grids" in r:
    for g in r["grids"]:
        print("%s %s: polar rel error %.2e, SO(3) %.2e" % (r["model"], g["grid"], g["polar_rel_error"], g["so3_rel_error"]))
    sys.exit(0 if all(g["polar_rel_error"] <= 1e-5 for g in r["grids"]) else 1)
print("%s: exact by plan %s, max rel error %.2e" % (r["model"], r["exact_by_plan"], r["max_rel_error"]))
sys.exit(0 if r["exact_by_plan"] and r["max_rel_error"] <= 1e-5 else 1)
PY
}
for model in abusing-p4 abusing-p4m cohen-p4cnn; do
  "$EQ" check --model "$model" --input-size 28 --device "$DEVICE" --batch 8 --json > "$CHECK"
  verdict
done
"$EQ" check --model disco-s2 --grids 64x128,128x256 --device "$DEVICE" --json > "$CHECK"
verdict

# 2. Throughput beside the CPU's (the frozen-model figures are the CPU's on every device).
{
  echo "{\"bench\": \"env\", \"date\": \"$(date -u +%FT%TZ)\", \"device\": \"$DEVICE\", \"gpu\": \"$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)\", \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD)\"}"
  "$EQ" bench --json --device "$DEVICE" --models abusing-p4 --kernels burn --no-layers --repeats 20
  "$EQ" bench --json --device "$DEVICE" --models '' --no-layers --disco 180x360 \
    --disco-batch 1 --disco-channels 64 --repeats 20 | grep equivar_disco
  "$EQ" bench --json --device "$DEVICE" --models '' --no-layers --disco 360x720 \
    --disco-batch 1 --disco-channels 256 --repeats 10 | grep equivar_disco
} | tee "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
# torch-harmonics on an H100, fp32, batch 1, K = 9 (DESIGN.md 2.4): forward and backward ms.
th = {(180, 360): (0.37, 0.44), (360, 720): (8.43, 15.19)}
for r in rows:
    if r["bench"] == "equivar_disco":
        shape = tuple(r["shape"])
        fwd, bwd = r["fwd_ms"], r["fwd_bwd_ms"] - r["fwd_ms"]
        ref = th.get(shape)
        note = f" (torch-harmonics H100: fwd {ref[0]} ms, bwd {ref[1]} ms)" if ref else ""
        print(f"DISCO {shape[0]}x{shape[1]}, {r['channels']} ch: fwd {fwd:.2f} ms, bwd {bwd:.2f} ms{note}")
    if r["bench"] == "equivar_model":
        print(f"{r['model']}: train {r['train_b128_ips']:.0f} img/s, infer {r['infer_b128_ips']:.0f} img/s, "
              f"batch-1 {r['infer_b1_ms']:.3f} ms")
PY
