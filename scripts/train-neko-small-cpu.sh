#!/usr/bin/env bash
# neko-small on this machine's CPU (one thread unless THREADS says more), in the background and
# across sessions: the same two runs as scripts/train-neko-small-gpu.sh (LM pretraining,
# configs/neko-small-pretrain.yaml, then fine-tuning, configs/neko-small.yaml) under bf16 autocast
# as the configs say where the CPU has bfloat16 instructions (with AVX-512 BF16, pretraining's first
# 20 steps ran at 915 tokens/s against 710 in fp32, to the same loss, 8.244), in fp32 where it has
# not (emulated bf16 trained 4-5x slower than fp32), each resumed from its latest checkpoint, so running
# this script again after an interruption continues where it stopped. A checkpoint every 10
# pretraining steps (about 6 minutes) or 20 fine-tuning steps loses little to a kill. Both runs are
# cut to fit a few sessions of this machine, their cosine schedules fitted to the cut: pretraining
# to PRETRAIN_STEPS (default 180 steps of 32,768 tokens, 40% of the epoch, warmup 30 instead of 200;
# under 2 hours on two threads at 36 s per step), fine-tuning to FINETUNE_STEPS (default 500 x
# 16,384 tokens, two thirds of an epoch of the mixture, warmup 100 instead of 200, 3.5 hours on two
# threads in fp32, less in bf16; the GPU script's 1,500 would take 10 in fp32), with dev losses
# every 100 steps (the learning curves per task), then 1,000 more fine-tuning steps in a second run
# (configs/neko-small-stage3.yaml), whose model is the one shipped. Logs: runs/neko-small-*.log. THREADS (default 1)
# is torch's thread count: 2 when nothing else runs on this 2-core machine. After fine-tuning it
# tunes the gate, evaluates and fills models/neko-small (below). The finished pretraining is parked
# in parked/ (commit it); a session that ends mid-run parks the run for the next by hand (fp16
# weights, no optimizer state; see `neko park --help`). This script continues from parked/ when
# runs/ is empty:
#   .venv/bin/neko park runs/neko-small-pretrain parked/neko-small-pretrain   (or runs/neko-small, runs/neko-small-stage3)
#   THREADS=2 nohup bash scripts/train-neko-small-cpu.sh > /dev/null 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
neko=${NEKO:-.venv/bin/neko}
cpu=(--resume --set run.threads="${THREADS:-1}")
# bf16 autocast where the CPU computes in bfloat16 natively (elsewhere it is emulated, 4-5x slower
# than fp32), except for a run begun in the other precision: a run resumes only with its own recipe.
bf16_for() {
  if [ -f "$1/run.json" ]; then
    python3 -c 'import json, sys; print(str(json.load(open(sys.argv[1]))["recipe"]["run"]["bf16"]).lower())' "$1/run.json"
  elif grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
    echo true
  else
    echo false
  fi
}
mkdir -p runs
unpark runs/neko-small-pretrain parked/neko-small-pretrain
unpark runs/neko-small parked/neko-small
if [ ! -f runs/neko-small-pretrain/model/config.json ]; then
  [ -f data/text/pretrain.txt.gz ] || $neko data text data/text/pretrain.txt.gz
  $neko train configs/neko-small-pretrain.yaml "${cpu[@]}" --set run.bf16="$(bf16_for runs/neko-small-pretrain)" \
    --set optim.max_steps="${PRETRAIN_STEPS:-180}" \
    --set optim.warmup_steps=30 --set run.save_every=10 >> runs/neko-small-pretrain.log 2>&1
fi
[ -f parked/neko-small-pretrain/model/config.json ] || $neko park runs/neko-small-pretrain parked/neko-small-pretrain
[ -f runs/neko-small/model/config.json ] ||  # finished, perhaps parked with no checkpoint to resume
  $neko train configs/neko-small.yaml "${cpu[@]}" --set run.bf16="$(bf16_for runs/neko-small)" \
    --set optim.max_steps="${FINETUNE_STEPS:-500}" --set optim.warmup_steps=100 --set run.save_every=20 \
    --set run.eval_every=100 >> runs/neko-small.log 2>&1

# Then the second fine-tuning run (configs/neko-small-stage3.yaml: 1,000 more steps from the first
# run's model), its correction gate tuned on dev data only and its test reports
# (scripts/tune-and-evaluate.sh; about an hour here), and the files of models/neko-small with its
# routing heatmap and learning curves. Its model card (models/neko-small/README.md) is written by
# hand; the default is the bundled model with the larger mean relative dev gain (README).
[ -f parked/neko-small/model/config.json ] || $neko park runs/neko-small parked/neko-small
unpark runs/neko-small-stage3 parked/neko-small-stage3
[ -f runs/neko-small-stage3/model/config.json ] ||
  $neko train configs/neko-small-stage3.yaml "${cpu[@]}" >> runs/neko-small-stage3.log 2>&1
model=runs/neko-small-stage3/model reports=reports/neko-small-stage3-final
[ -f $reports/mt-test/report.json ] ||
  bash scripts/tune-and-evaluate.sh $model $reports >> runs/neko-small-evaluate.log 2>&1
ship_model $model models/neko-small
$neko export models/neko-small models/neko-small --to onnx
mapfile -t routed < <(dirname $reports/*/routing_stats.json)
.venv/bin/python scripts/merge-routing-stats.py "${routed[@]}" --out models/neko-small
.venv/bin/python scripts/plot-learning-curves.py runs/neko-small-stage3 --out models/neko-small/learning-curves.png
