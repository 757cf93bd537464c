#!/usr/bin/env bash
# One prepared GPU check (about 8 min on one H100/H200 with 16 cores): CUDA tests, the bf16
# train-step table, end-to-end training (loader workers + step) against the step alone and the
# loader table on this machine's idle cores (issue 15), then AMP training through tools/train.py
# and the other step tables. Run it as one command with a 600 s limit; each part has its own.
# Run from the repository root on a GPU machine:
#   bash benchmarks/gpu_smoke.sh [OUT_DIR]
# Where the machine lacks mmengine-lite (and friends), put their wheels in .whl/ first
# (see README, "GPU check"; since issue 15 also xxhash 4.1.0, and scikit-image + scikit-learn for
# the loader benchmarks' photos).
set -uo pipefail
OUT=${1:-${OUT:-work_dirs/gpu_smoke}}
mkdir -p "$OUT"
if [ -d .whl ] && ! python3 -c 'import mmengine, xxhash' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} HF_HUB_OFFLINE=1 WANDB_MODE=offline PYTHONUNBUFFERED=1
python3 -c 'import xxhash' || { echo "xxhash missing: put its wheel (requirements.txt pin) in .whl/"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import torch, timm, mmengine; print("torch", torch.__version__, "timm", timm.__version__, "mmengine", mmengine.__version__)' | tee -a "$OUT/gpu.txt"

# Issue 15's measurements first (if the device time runs out, these are what the README needs).
echo "== CUDA tests"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_region_cache.py tests/test_region_view_skip.py 2>&1 | tail -5 | tee "$OUT/tests.txt"

echo "== train-step throughput, bf16, batch 128 (ViT-S vs RA-MIQA: no cache / cache / cache with every view skipped)"
python3 benchmarks/bench_train_step.py --device cuda --batch-size 128 --steps 10 --amp --out "$OUT/step_bs128.json" 2>&1 | grep -v WARNING | tee "$OUT/throughput_bs128.txt"

echo "== end to end: loader workers + train step vs the step alone (bf16, batch 128)"
W=$(( $(nproc) - 2 ))
timeout 300 python3 benchmarks/bench_train_e2e.py --device cuda --batch-size 128 --amp --workers 8 "$W" --sources 40 --epochs 2 --out "$OUT/e2e.json" 2>&1 | grep -v WARNING | tee "$OUT/e2e.txt"

echo "== loader per worker on this machine's idle cores (decode alone vs pipelines; workers for the bf16 step above)"
timeout 150 python3 benchmarks/bench_dataloader.py --rounds 5 --step-json "$OUT/step_bs128.json" --cores "$(nproc)" --out "$OUT/dataloader.json" 2>&1 | grep -v WARNING | tee "$OUT/dataloader.txt"

echo "== AMP training on the fixture tree (tools/train.py --amp, then tools/test.py)"
python3 - "$OUT" <<'PY' 2>&1 | tail -25 | tee "$OUT/train.txt"
import subprocess, sys, pathlib, json
from miqa.testing import make_miqd_tree
sys.path.insert(0, 'tests')
from test_tools import tiny_config
out = pathlib.Path(sys.argv[1]).resolve()
tree = make_miqd_tree(out / 'miqd')
cfg = tiny_config(out / 'tiny.py', tree['root'])
work = out / 'work'
subprocess.run([sys.executable, 'tools/train.py', str(cfg), '--amp', '--work-dir', str(work)], check=True,
               capture_output=True)
res = subprocess.run([sys.executable, 'tools/test.py', str(cfg), str(work / 'epoch_2.pth'),
                      '--work-dir', str(work)], check=True, capture_output=True, text=True)
print(res.stdout[-1500:])
PY

echo "== train-step throughput, bf16 batch 32 and fp32 batch 128"
python3 benchmarks/bench_train_step.py --device cuda --batch-size 32 --steps 10 --amp --out "$OUT/step_bs32.json" 2>&1 | grep -v WARNING | tee "$OUT/throughput_bs32.txt"
python3 benchmarks/bench_train_step.py --device cuda --batch-size 128 --steps 10 --out "$OUT/step_bs128_fp32.json" 2>&1 | grep -v WARNING | tee "$OUT/throughput_bs128_fp32.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_models.py 2>&1 | tail -3 | tee -a "$OUT/tests.txt"
