#!/usr/bin/env bash
# The GPU check, in one go (not yet timed end to end; GPU_TABLE_MINUTES bounds the table): the CUDA tests (every method on digits
# on the GPU), the GPU-scale table (full Fashion-MNIST, the CIFAR ResNet-18, every method at its
# documented defaults against Retrain, bench/method_table.py), and, where Ray Tune and Optuna are
# installed, the same 8-trial study run with a whole GPU per trial and with a quarter of one
# (--gpus-per-trial 0.25), printing trials per hour for each, their ratio and the peak GPU memory
# per trial. On a machine without a CUDA GPU it says so and exits 0; a failed CUDA test makes it
# exit 1 after the rest has run.
#
#   bash bench/gpu_check.sh [FASHION_MNIST_FOLDER]   (default: data/fashion-mnist if present, else Debian's)
#
# Environment: GPU_CHECK_DIR (work folder: cache, studies, gpu_table.md; default a fresh temporary
# one), GPU_TABLE_EPOCHS (the original's and Retrain's epochs, default the preset's 40),
# GPU_TABLE_MINUTES (start no method of the table after this many minutes, default 6),
# GPU_TABLE_FORGET (default "random:10 class:0"), GPU_CIFAR10_ROOT (CIFAR-10's pickled release, image folder or
# zip: also runs the paper's CIFAR-10 tables with the same flags; the 63 MB JPEG zip must be carried there).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU visible to torch on this machine; nothing to check"
  exit 0
fi
ROOT="${1:-}"
if [ -z "$ROOT" ] && [ -d data/fashion-mnist ]; then ROOT=data/fashion-mnist; fi
DATA=(); [ -n "$ROOT" ] && DATA=(--data-root "$ROOT")
WORK="${GPU_CHECK_DIR:-$(mktemp -d)}"
mkdir -p "$WORK"
CACHE="$WORK/cache"
python3 -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"

echo "== CUDA tests"
TESTS_STATUS=0
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py || { TESTS_STATUS=1; echo "gpu_check: CUDA tests FAILED"; }

echo "== GPU-scale table: full Fashion-MNIST, CIFAR ResNet-18, every method at its defaults"
EPOCHS=(); [ -n "${GPU_TABLE_EPOCHS:-}" ] && EPOCHS=(--epochs "$GPU_TABLE_EPOCHS")
read -r -a FORGETS <<< "${GPU_TABLE_FORGET:-random:10 class:0}"
# the heaviest per-example methods last, so that a time limit leaves those out first
python3 bench/method_table.py --preset cifar10 --dataset fashion-mnist "${DATA[@]}" "${EPOCHS[@]}" --device cuda \
  --forget "${FORGETS[@]}" --methods dau salun scrub neggrad+ rl ft ga l1-sparse sfr-on lotus scissorhands ssd ff iu \
  --time-limit "${GPU_TABLE_MINUTES:-6}" --cache-dir "$CACHE" --out "$WORK/gpu_table.md" | { grep -v "^training\|^evaluating\|^pre-training" || true; }

if [ -n "${GPU_CIFAR10_ROOT:-}" ]; then
  echo "== the paper's CIFAR-10 tables, one seed: ResNet-18, every method at its defaults ($GPU_CIFAR10_ROOT)"
  python3 bench/method_table.py --preset cifar10 --data-root "$GPU_CIFAR10_ROOT" "${EPOCHS[@]}" --device cuda \
    --forget "${FORGETS[@]}" --methods dau salun scrub neggrad+ rl ft ga l1-sparse sfr-on lotus scissorhands ssd ff iu \
    --time-limit "${GPU_TABLE_MINUTES:-6}" --cache-dir "$CACHE" --out "$WORK/gpu_cifar10_table.md" | \
    { grep -v "^training\|^evaluating\|^pre-training" || true; }
fi

if ! python3 -c "import ray.tune, optuna" 2>/dev/null; then
  echo "gpu_check: Ray Tune or Optuna is not installed here; the fractional-GPU study check is left out"
  exit "$TESTS_STATUS"
fi
cat > "$WORK/space.yaml" <<YAML
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
  python3 -m study.tune --space "$WORK/space.yaml" "${DATA[@]}" --gpus-per-trial "$share" --cpus-per-trial 1 \
    --scheduler fifo --storage "$WORK/studies" --name "share-$share" --cache-dir "$CACHE" --quiet > "$WORK/share-$share.log"
  end=$(date +%s.%N)
  python3 - "$WORK/studies/share-$share" "$start" "$end" "$share" <<'PY'
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
whole, quarter = (float(Path('$WORK/studies/rate-' + s).read_text()) for s in ('1', '0.25'))
print(f'gpu_check: a quarter GPU per trial runs {quarter / whole:.2f}x the trials per hour of a whole GPU')"
exit "$TESTS_STATUS"
