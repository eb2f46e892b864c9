#!/usr/bin/env bash
# The GPU check, in one go (under 8 minutes on one GPU): the CUDA tests, the Fashion-MNIST proxy's
# original trained on the GPU, and the same 8-trial study run with a whole GPU per trial and with
# a quarter of one (--gpus-per-trial 0.25), printing trials per hour for each, their ratio and the
# peak GPU memory per trial. On a machine without a CUDA GPU it says so and exits 0.
#
#   bash bench/gpu_check.sh [FASHION_MNIST_FOLDER]   (default: data/fashion-mnist if present, else Debian's)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU visible to torch on this machine; nothing to check"
  exit 0
fi
ROOT="${1:-}"
if [ -z "$ROOT" ] && [ -d data/fashion-mnist ]; then ROOT=data/fashion-mnist; fi
DATA=(); [ -n "$ROOT" ] && DATA=(--data-root "$ROOT")
OUT="${OUT:-$(mktemp -d)}"
CACHE="$OUT/cache"
python3 -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"

echo "== CUDA tests"
python3 -m pytest -q tests/test_cuda.py

echo "== the proxy's original and Retrain on the GPU"
start=$(date +%s)
python3 -m study.run --method original --preset fmnist-proxy "${DATA[@]}" --device cuda --cache-dir "$CACHE" | tail -6
echo "gpu_check: original and Retrain trained in $(( $(date +%s) - start )) s"

cat > "$OUT/space.yaml" <<YAML
description: gpu check, 8 DAU trials on the proxy
experiment: {preset: fmnist-proxy, forget: "random:10", seeds: [0]}
method: dau
fixed: {epochs: 1, attacker_pretrain_iters: 250}
search: {lr: {loguniform: [1.0e-3, 3.0e-2]}, alpha: {loguniform: [1.0e-1, 2.0]}}
study: {num_samples: 8, max_concurrent: 8}
YAML
for share in 1 0.25; do
  echo "== 8 trials, --gpus-per-trial $share"
  start=$(date +%s.%N)
  python3 -m study.tune --space "$OUT/space.yaml" "${DATA[@]}" --gpus-per-trial "$share" --cpus-per-trial 1 \
    --scheduler fifo --storage "$OUT/studies" --name "share-$share" --cache-dir "$CACHE" --quiet > "$OUT/share-$share.log"
  end=$(date +%s.%N)
  python3 - "$OUT/studies/share-$share" "$start" "$end" "$share" <<'PY'
import json, sys
from pathlib import Path
folder, start, end, share = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
peaks = []
for result in folder.glob("trial_*/result.json"):
    lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
    peaks.append(max(r.get("gpu_peak_mib", 0.0) for r in lines))
hours = (end - start) / 3600
print(f"gpu_check: share {share}: {len(peaks)} trials in {end - start:.0f} s = {len(peaks) / hours:.0f} trials/hour; "
      f"peak GPU memory per trial {max(peaks, default=0):.0f} MiB")
(folder.parent / f"rate-{share}").write_text(str(len(peaks) / hours))
PY
done
python3 -c "
import sys; from pathlib import Path
whole, quarter = (float(Path('$OUT/studies/rate-' + s).read_text()) for s in ('1', '0.25'))
print(f'gpu_check: a quarter GPU per trial runs {quarter / whole:.2f}x the trials per hour of a whole GPU')"
