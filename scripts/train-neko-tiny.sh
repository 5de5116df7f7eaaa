#!/usr/bin/env bash
# Reproduces models/neko-tiny and its ablation from the committed corpus, on a CPU.
# Every step resumes after an interruption (rerun the script); finished steps are skipped.
#   bash scripts/train-neko-tiny.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
neko=.venv/bin/neko

# Stage 1: a plain language model on clean train-split text (English and Spanish).
[ -f data/text/pretrain.txt.gz ] || $neko data text data/text/pretrain.txt.gz
[ -f runs/neko-tiny-pretrain/model/neko.json ] || $neko train configs/neko-tiny-pretrain.yaml --resume
# Stage 2: task-guided fine-tuning on the correction mixture.
[ -f runs/neko-tiny-stage2/model/neko.json ] || $neko train configs/neko-tiny.yaml --resume
# The ablation under one budget, from scratch: dense, vanilla MoE, task-guided (DAMEX: add "damex").
for mode in dense moe task_guided; do
  [ -f "runs/ablation-$mode/model/neko.json" ] ||
    $neko train configs/ablation.yaml --resume --set mode=$mode --set run.out_dir=runs/ablation-$mode
done

# Stage 3: more fine-tuning (600 steps had not taught the model to copy its input).
[ -f runs/neko-tiny-stage3/model/neko.json ] || $neko train configs/neko-tiny-stage3.yaml --resume

# Evaluation: a fixed subset of every test file (see scripts/evaluate-model.sh).
bash scripts/evaluate-model.sh runs/neko-tiny-stage3/model reports/neko-tiny 10 50 3 150 754
for mode in dense moe task_guided; do
  bash scripts/evaluate-model.sh "runs/ablation-$mode/model" "reports/ablation-$mode" 6 20 2 60 200
done
