#!/usr/bin/env bash
# The checks that need a GPU, in one short run (a few minutes on one H100/H200):
#   1. the model, training and correction tests with CUDA visible (accelerate trains on it, the
#      corrector loads on it);
#   2. training throughput of the benchmark Mixtrals on the GPU, fp32 and bf16 autocast;
#   3. real `neko train` steps of CONFIG on the corpus (tokens/s in OUT/probe-metrics.jsonl).
#   bash benchmarks/gpu_check.sh OUT [CONFIG]      (NEKO: the neko command; default `neko`)
set -uo pipefail
cd "$(dirname "$0")/.."
out=$1 config=${2:-configs/neko-tiny-stage6.yaml} neko=${NEKO:-neko}
mkdir -p "$out"
nvidia-smi -L
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
python -m pytest -q -p no:cacheprovider tests/test_moe.py tests/test_train.py tests/test_correct.py \
  tests/test_tuning.py 2>&1 | tee "$out/pytest.log" | tail -20
python benchmarks/train_throughput.py --device cuda --batch 64 --steps 10 | tee "$out/throughput.txt"
$neko train "$config" --set optim.max_steps=60 --set run.out_dir=/tmp/gpu-check-probe \
  --set run.log_every=10 --set run.eval_every=null --set run.save_every=1000 2>&1 | tail -5
cp /tmp/gpu-check-probe/metrics.jsonl "$out/probe-metrics.jsonl"
