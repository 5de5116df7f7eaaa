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
# The ablation under one budget, from scratch: dense, vanilla MoE, task-guided, DAMEX.
for mode in dense moe task_guided damex; do
  [ -f "runs/ablation-$mode/model/neko.json" ] ||
    $neko train configs/ablation.yaml --resume --set mode=$mode --set run.out_dir=runs/ablation-$mode
done
# Task guidance vs none after the same pretraining: stage 2 again as a vanilla MoE.
[ -f runs/pretrained-moe/model/neko.json ] ||
  $neko train configs/neko-tiny.yaml --resume --set mode=moe --set run.out_dir=runs/pretrained-moe

# Stages 3-5: more fine-tuning (600 steps had not taught the model to copy its input); stage 5 adds
# the training data built in session 2 (asr 5,697, ocr 10,000).
[ -f runs/neko-tiny-stage3/model/neko.json ] || $neko train configs/neko-tiny-stage3.yaml --resume
[ -f runs/neko-tiny-stage4/model/neko.json ] || $neko train configs/neko-tiny-stage4.yaml --resume
[ -f runs/neko-tiny-stage5/model/neko.json ] || $neko train configs/neko-tiny-stage5.yaml --resume

# Stage 6, on a GPU (two minutes on one H200; about two and a half hours on one CPU core): 3 epochs on
# the corpus as grown in session 3 (asr 30,000). Stage 5 keeps its own valve and reports.
[ -f runs/neko-tiny-stage6/model/neko.json ] || $neko train configs/neko-tiny-stage6.yaml --resume

# Per stage: the safety valve per task (edit limit, fallback), chosen on fixed dev subsets and written
# into neko.json; then a fixed subset of every test file (see scripts/evaluate-model.sh).
tune_and_evaluate() {
  local model=$1 reports=$2
  mkdir -p "$reports"
  for file_n in asr:6 st:20 ocr:2 tec:75; do
    $neko tune-valve "data/${file_n%%:*}/dev.jsonl.gz" --model "$model" --limit-per-dataset "${file_n##*:}" \
      --batch-size "${BATCH_SIZE:-16}" --write
  done | tee "$reports/valve-tuning.txt"
  bash scripts/evaluate-model.sh "$model" "$reports" 10 50 3 150 754
  for file_n in asr:10 ocr:3; do  # seen vs held-out (zero-shot) voices, fonts and text sources
    local file=${file_n%%:*}-test
    $neko eval "data/${file_n%%:*}/test.jsonl.gz" --limit-per-dataset "${file_n##*:}" --group-by metadata:zero_shot \
      -p corrected="$reports/$file/predictions-corrected.jsonl" -p rerank="$reports/$file/predictions-rerank.jsonl" \
      --out "$reports/$file-zero-shot"
  done
}
tune_and_evaluate runs/neko-tiny-stage5/model reports/neko-tiny-stage5
tune_and_evaluate runs/neko-tiny-stage6/model reports/neko-tiny
model=runs/neko-tiny-stage6/model
.venv/bin/python scripts/merge-routing-stats.py reports/neko-tiny/{asr-test,st-test,ocr-test,tec-test,tec-jfleg} --out $model
.venv/bin/python scripts/plot-learning-curves.py runs/neko-tiny-stage{2,3,4,5,6} --out $model/learning-curves.png
# Ship: the files of models/neko-tiny (its README.md, the model card, is written by hand).
cp $model/{config.json,generation_config.json,model.safetensors,neko.json,tokenizer.json,tokenizer_config.json} \
  $model/{routing_stats.json,routing.png,learning-curves.png} models/neko-tiny/
for mode in dense moe task_guided damex; do
  bash scripts/evaluate-model.sh "runs/ablation-$mode/model" "reports/ablation-$mode" 6 20 2 60 200
done
