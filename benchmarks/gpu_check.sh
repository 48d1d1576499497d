#!/usr/bin/env bash
# The checks that need a GPU, in one call on a GPU machine (about 10 minutes; nothing here runs in CI):
#   1. benchmarks/bench_gpu.py at the issue targets' settings (32 and 64 px, batch 64) -> gpu_results.json;
#   2. dcgan_train on CUDA for one epoch, then --resume to a second (resume on a GPU) -> resume.log.
# The machine needs fastai's stack beside its own torch: fastai 2.8.7, fastcore<2, fasttransform, plum-dispatch and fastprogress 1.0.3
# (wheels installed with --no-deps into a folder on PYTHONPATH). Results go to $OUT (default: gpu_check/ here); copy the JSON into
# benchmarks/ and quote it in 90_benchmarks. A smoke run of the script on a CPU:
#   DEVICE=cpu BENCH_ARGS='--sizes 16 --bss 16 --nf 8 --steps 4 --repeats 1 --no-compile' OUT=/tmp/gc benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check}; mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
DEVICE=${DEVICE:-cuda}
python3 -c "import torch, fastai; print('torch', torch.__version__, '| fastai', fastai.__version__, '| cuda:', torch.cuda.is_available())" || exit 1
timeout ${BENCH_SECONDS:-420} python3 benchmarks/bench_gpu.py --device "$DEVICE" ${BENCH_ARGS:---sizes 32 64 --bss 64} --out "$OUT/gpu_results.json" 2>&1 |
  tee "$OUT/bench.log"
run=$(mktemp -d)/run
train() { python3 -c "import sys; from dcgan_course.cli import dcgan_train; sys.argv[0] = 'dcgan_train'; dcgan_train()" "$@"; }
{ train --size 32 --device "$DEVICE" --epochs 1 --out "$run" && train --device "$DEVICE" --resume --epochs 2 --out "$run" &&
  python3 -c "import csv, sys; r = list(csv.DictReader(open(sys.argv[1]))); assert [x['epoch'] for x in r] == ['1', '2'], r; print('resume: ok')" "$run/metrics.csv"
} 2>&1 | tee "$OUT/resume.log"
