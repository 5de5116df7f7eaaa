#!/usr/bin/env bash
# Tunes MODEL's correction gate on dev data only, then scores it on the HyPoradise test files and on a
# fixed subset of every corpus test file (scripts/evaluate-model.sh), each with its baselines.
#   bash scripts/tune-and-evaluate.sh MODEL OUT [DEV_N] [ASR_N ST_N OCR_N TEC_N]
# DEV_N: the first N examples of each dev file the gate is tuned on (default 1000, all of them: a larger
# dev set tells a setting's luck from its skill on each domain and dataset; JFLEG dev is split in
# halves: the gate sees the first, the second is scored as data it was not tuned on). The HyPoradise
# test files are scored whole; the rest: examples per dataset of each corpus test file (defaults 4 10
# 1 50). NEKO: the neko command (default .venv/bin/neko).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export OMP_WAIT_POLICY=PASSIVE
neko=${NEKO:-.venv/bin/neko}
model=$1 out=$2 dev_n=${3:-1000}
mkdir -p "$out/gate-tuning" work
half=$(( $(zcat data/tec/jfleg.jsonl.gz | wc -l) / 2 ))
zcat data/tec/jfleg.jsonl.gz | sed -n "1,${half}p" | gzip -n > work/jfleg-dev-tune.jsonl.gz  # sed reads to the end: no SIGPIPE
zcat data/tec/jfleg.jsonl.gz | tail -n +"$((half + 1))" | gzip -n > work/jfleg-dev-heldout.jsonl.gz

# Tasks a model learnt beyond the four of neko-tiny's first stages bring their dev files.
tasks=$(model_tasks "$model")
extra_dev=()
[[ " $tasks " == *" mt "* ]] && extra_dev+=(data/mt/dev.jsonl.gz)

$neko tune-gate data/asr/hyporadise-dev.jsonl.gz data/asr/dev.jsonl.gz data/asr/modern-dev.jsonl.gz \
  data/ocr/dev.jsonl.gz data/ocr/zero-shot-dev.jsonl.gz data/tec/dev.jsonl.gz data/tec/learner-dev.jsonl.gz \
  work/jfleg-dev-tune.jsonl.gz data/st/bible-dev.jsonl.gz data/st/handbook-dev.jsonl.gz "${extra_dev[@]}" --limit "$dev_n" \
  --model "$model" --batch-size 32 --evidence "$out/gate-tuning/evidence.jsonl" --out "$out/gate-tuning" \
  --write | tee "$out/gate-tuning/tuning.txt"

$neko eval data/asr/hyporadise-test.jsonl.gz --model "$model" --batch-size 32 --out "$out/hyporadise-test"
$neko eval work/jfleg-dev-heldout.jsonl.gz --model "$model" --batch-size 32 --out "$out/jfleg-heldout"
bash scripts/evaluate-model.sh "$model" "$out" "${4:-4}" "${5:-10}" "${6:-1}" "${7:-50}" 0  # JFLEG: held-out half above
