#!/usr/bin/env bash
# The ablation with all five tasks (configs/ablation-translation.yaml): dense, vanilla MoE,
# task-guided MoE and DAMEX from scratch under one budget (600 steps, the same batches), one CPU
# thread each (about 20 minutes per mode here, two at a time), then their training losses and their
# test reports (rerank and routing; the gates of untrained models keep the 1-best).
# Resumable: rerun it after an interruption; a finished mode is skipped, an unfinished one resumes
# from its latest checkpoint. MODES picks some (default: all four, in turn).
#   nohup bash scripts/ablation-translation.sh > runs/ablation5.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
neko=${NEKO:-.venv/bin/neko}
modes=(${MODES:-dense moe task_guided damex})
for mode in "${modes[@]}"; do
  [ -f "runs/ablation5-$mode/model/neko.json" ] ||
    $neko train configs/ablation-translation.yaml --resume --set mode="$mode" --set run.out_dir="runs/ablation5-$mode"
done
for mode in "${modes[@]}"; do
  [ -f "reports/ablation5-$mode/mt-test/report.md" ] ||
    bash scripts/evaluate-model.sh "runs/ablation5-$mode/model" "reports/ablation5-$mode" 6 20 2 60 200 50
  cp "runs/ablation5-$mode/metrics.jsonl" "reports/ablation5-$mode/metrics.jsonl"  # runs/ is not kept
  [ "$mode" = dense ] || .venv/bin/python scripts/merge-routing-stats.py \
    reports/ablation5-"$mode"/{asr-test,st-handbook-test,st-bible-test,ocr-test,tec-test,tec-jfleg,mt-test} \
    --out "reports/ablation5-$mode"
done
.venv/bin/python scripts/compare-losses.py "${modes[@]/#/reports/ablation5-}" --steps 520-600
