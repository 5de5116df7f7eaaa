#!/usr/bin/env bash
# Reproduces models/neko-tiny and its ablation from the committed corpus, on a CPU.
# Every step resumes after an interruption (rerun the script); finished steps are skipped.
#   bash scripts/train-neko-tiny.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
neko=.venv/bin/neko
tests=(data/asr/test.jsonl.gz data/st/test.jsonl.gz data/ocr/test.jsonl.gz data/tec/test.jsonl.gz data/tec/jfleg.jsonl.gz)

# Stage 1: a plain language model on clean train-split text (English and Spanish).
[ -f data/text/pretrain.txt.gz ] || $neko data text data/text/pretrain.txt.gz
[ -f runs/neko-tiny-pretrain/model/neko.json ] || $neko train configs/neko-tiny-pretrain.yaml --resume
# Stage 2: task-guided fine-tuning on the correction mixture.
[ -f runs/neko-tiny/model/neko.json ] || $neko train configs/neko-tiny.yaml --resume
# The ablation under one budget, from scratch: dense, vanilla MoE, task-guided, DAMEX.
for mode in dense moe task_guided damex; do
  [ -f "runs/ablation-$mode/model/neko.json" ] ||
    $neko train configs/ablation.yaml --resume --set mode=$mode --set run.out_dir=runs/ablation-$mode
done

# Evaluation on every test set (held-out zero-shot data included), with baselines and routing.
$neko eval "${tests[@]}" --model runs/neko-tiny/model --out reports/neko-tiny --group-by dataset:1
for mode in dense moe task_guided damex; do
  $neko eval "${tests[@]}" --model "runs/ablation-$mode/model" --out "reports/ablation-$mode" \
    --group-by dataset:1 --limit-per-dataset "${ABLATION_LIMIT:-100000}"
done
