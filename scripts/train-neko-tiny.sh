#!/usr/bin/env bash
# Reproduces models/neko-tiny and its ablation from the committed corpus, on a CPU.
# Every step resumes after an interruption (rerun the script); finished steps are skipped.
#   bash scripts/train-neko-tiny.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export OMP_WAIT_POLICY=PASSIVE
neko=.venv/bin/neko

# Stage 1: a plain language model on clean train-split text (English and Spanish).
[ -f data/text/pretrain.txt.gz ] || $neko data text data/text/pretrain.txt.gz
[ -f runs/neko-tiny-pretrain/model/neko.json ] || $neko train configs/neko-tiny-pretrain.yaml --resume
# Stage 2: task-guided fine-tuning on the correction mixture.
[ -f runs/neko-tiny-stage2/model/neko.json ] || $neko train configs/neko-tiny.yaml --resume
# The ablation under one budget, from scratch: dense, vanilla MoE, task-guided, DAMEX.
for mode in dense moe task_guided damex; do
  [ -f "runs/ablation-$mode/model/neko.json" ] ||
    $neko train configs/ablation.yaml --resume --set mode=$mode --set run.out_dir=runs/ablation-$mode
done
# Task guidance vs none after the same pretraining: stage 2 again as a vanilla MoE.
[ -f runs/pretrained-moe/model/neko.json ] ||
  $neko train configs/neko-tiny.yaml --resume --set mode=moe --set run.out_dir=runs/pretrained-moe

# Stages 3-5: more fine-tuning (600 steps had not taught the model to copy its input); stage 5 adds
# training data (the first 5,697 asr and 10,000 ocr examples).
[ -f runs/neko-tiny-stage3/model/neko.json ] || $neko train configs/neko-tiny-stage3.yaml --resume
[ -f runs/neko-tiny-stage4/model/neko.json ] || $neko train configs/neko-tiny-stage4.yaml --resume
[ -f runs/neko-tiny-stage5/model/neko.json ] || $neko train configs/neko-tiny-stage5.yaml --resume

# Stage 6, on a GPU (two minutes on one H200; about two and a half hours on one CPU core): 3 epochs on
# more of the corpus (the first 30,000 asr examples). Stage 5 keeps its own valve and reports.
[ -f runs/neko-tiny-stage6/model/neko.json ] || $neko train configs/neko-tiny-stage6.yaml --resume

# Stage 7 (about 80 minutes on one CPU core): real modern-recognizer N-best lists (HyPoradise ATIS
# train) with a replay of every task's corpus.
[ -f data/asr/hyporadise-train.jsonl.gz ] || $neko data build hyporadise
[ -f runs/neko-tiny-stage7/model/neko.json ] || $neko train configs/neko-tiny-stage7.yaml --resume

# The correction gate tuned on dev data only, then the HyPoradise tests and fixed test subsets.
model=runs/neko-tiny-stage7/model
bash scripts/tune-and-evaluate.sh $model reports/neko-tiny
# Ship: the files of models/neko-tiny (its README.md, the model card, is written by hand).
ship_model $model models/neko-tiny
for mode in dense moe task_guided damex; do
  bash scripts/evaluate-model.sh "runs/ablation-$mode/model" "reports/ablation-$mode" 6 20 2 60 200
done
