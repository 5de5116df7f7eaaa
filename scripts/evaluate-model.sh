#!/usr/bin/env bash
# Scores a model on every test file (held-out zero-shot data included) with the 1-best, N-best
# oracle and rerank baselines and routing statistics: one `neko eval` report per file under OUT.
# A CPU pass over all 6,754 test examples takes about 15 minutes for a 5M model, so the counts say
# how many examples of each dataset of each file to score (the first N: a fixed subset).
#   bash scripts/evaluate-model.sh MODEL OUT ASR_N ST_N OCR_N TEC_N JFLEG_N [HANDBOOK_ST_N]
# (JFLEG_N 0 leaves JFLEG dev out: scripts/tune-and-evaluate.sh tunes the gate on its first half and
# scores only the second.)
# (HANDBOOK_ST_N: per dataset of st/handbook-test, the faithful handbook translations, and of mt/test
# when the model learnt mt; default 100).
# NEKO: the neko command (default .venv/bin/neko); BATCH_SIZE: inputs per forward pass (default 16;
# 64 on a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export OMP_WAIT_POLICY=PASSIVE
neko=${NEKO:-.venv/bin/neko}
model=$1 out=$2
shift 2
files=("asr/test:$1" "st/bible-test:$2" "st/handbook-test:${6:-100}" "ocr/test:$3" "tec/test:$4")
[ "$5" -gt 0 ] && files+=("tec/jfleg:$5")
tasks=$(model_tasks "$model")
[[ " $tasks " == *" mt "* ]] && files+=("mt/test:${6:-100}")  # a model that learnt mt: its test file too
for file_n in "${files[@]}"; do
  file=${file_n%%:*} n=${file_n##*:}
  $neko eval "data/$file.jsonl.gz" --model "$model" --out "$out/${file//\//-}" \
    --group-by dataset:1 --limit-per-dataset "$n" --batch-size "${BATCH_SIZE:-16}"
done
