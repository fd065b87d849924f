#!/usr/bin/env bash
# The checks that need a GPU, as one short script (about 7 minutes on one recent GPU).
# Run it from the repository root on a machine with CUDA and a Python that has torch,
# torchvision, xarray and netCDF4 (the library itself is taken from src/):
#   bash benchmarks/device_check.sh [OUT_FOLDER]
# It writes its log to OUT_FOLDER (default: results/device_check/) and prints:
#   1. the device tests (the lease of a real card, GPU-only paths; they skip on a CPU);
#   2. turn-over and scoring cost against plain training on the paper's MLP (784-4096-10,
#      60,000 examples, batch 256) on the GPU: the ratios of benchmarks/README.md;
#      its per-epoch seconds are what config/paper.yaml's GPU estimates should be checked
#      against (`memorization plan --configfile config/paper.yaml`);
#   3. mixed precision and memory layout on the card: bf16, fp16, channels-last against fp32
#      for a turn-over epoch (paper's MLP and VGG-11 at width 1), a scoring pass and a
#      gradient-statistics step (benchmarks/bench_precision.py: the ratios of
#      docs/benchmarks.md), and the bf16/fp16 precision tests (scores against fp32);
#   4. the out-of-bag networks' step backends on the card: vmap (func, the GPU's default)
#      against one network after another (loop, a CPU's), full-width and narrow VGG-11
#      (benchmarks/bench_oob.py: the ratios of docs/benchmarks.md).
# The tests run in one process (-o addopts=: no pytest-xdist needed).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/device_check}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
log="$out/device_check.log"
step() { echo "== $*" | tee -a "$log"; }
: >"$log"
step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$log"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$log"
step "1. device tests"
timeout 120 "$py" -m pytest -q -o addopts= -p no:cacheprovider tests/infra/test_device.py 2>&1 | tail -5 | tee -a "$log"
step "2. turn-over vs plain, paper's MLP"
timeout 120 "$py" benchmarks/bench_turnover.py --device cuda --examples 60000 2>&1 | tee -a "$log"
step "3. bf16, fp16 and channels-last vs fp32 on the card"
timeout 150 "$py" benchmarks/bench_precision.py --device cuda --examples 60000 --vgg-examples 10000 \
    --vgg-width 1 --precisions bf16 fp16 2>&1 | tee -a "$log"
timeout 60 "$py" -m pytest -q -o addopts= -p no:cacheprovider tests/method/test_precision.py -k "cuda" 2>&1 | tail -3 | tee -a "$log"
step "4. out-of-bag step backends on the card: func (vmap) vs loop"
timeout 150 "$py" benchmarks/bench_oob.py --device cuda --paths func,loop --models VGG \
    --networks 4,8 --epochs 3 2>&1 | tee -a "$log"
step "done: $log"
