#!/usr/bin/env bash
# neko-small on one lent GPU in one call: LM pretraining (configs/neko-small-pretrain.yaml), then
# fine-tuning on the correction mixture (configs/neko-small.yaml), bf16, each run sized to a time
# budget (`optim.time_budget_s`: its first steps are timed and its cosine schedule fitted to the steps
# that fit), so the whole call ends within SECONDS_TOTAL (default 560) of its start whatever the
# GPU's speed. The fp16 model comes back under $OUT as a tar in 15 MiB parts (the machine returns at
# most 8 files of 16 MiB), with both runs' logs and metrics in logs.tar.gz; if fine-tuning fails, the
# pretrained model comes back instead (neko-small-pretrain.tar.part-*). Prepare here, in the
# repository root:
#   bash scripts/gpu-wheels.sh
#   neko data text data/text/pretrain.txt.gz
#   zcat data/text/pretrain.txt.gz | xz -9 -T0 > data/text/pretrain.txt.xz   (the tree that travels is
#                                                                              at most 64 MiB)
#   bash scripts/stage-gpu-tree.sh      (the tracked tree is larger than that: it keeps what the runs
#                                         read; `git checkout -- .` restores the rest afterwards)
# then run it there: command `bash scripts/train-neko-small-gpu.sh`, carry [".whl",
# "data/text/pretrain.txt.xz"], timeout_s 600. Back here, in the repository root:
#   cat FILES_AT/neko-small.tar.part-* | tar x -C runs    (runs/neko-small, the fine-tuned model)
# PRETRAIN_SECONDS (default 130): pretraining's budget, at most 3 epochs of the text; fine-tuning gets
# what is left of SECONDS_TOTAL after its data are read (FINETUNE_PREPARE_SECONDS, default 75, and 30
# for saving and packing), at most 4 epochs of the mixture. TRAIN_ARGS: more `--set KEY=VALUE` for
# both runs (a CPU smoke test: `--set run.bf16=false --set optim.tokens_per_batch=4096`). PYTHON /
# NEKO: the interpreter and the neko command (python3, $PYTHON -m neko.cli).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the folder whose files come back}
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
neko=${NEKO:-$python -m neko.cli}
logs=$(mktemp -d)
trap 'tar czf "$out/logs.tar.gz" -C "$logs" .; ls -la "$out"' EXIT
install() {  # the wheels of .whl/$1, if any, into /tmp/site-$1
  [ ! -d ".whl/$1" ] || "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target "/tmp/site-$1" ".whl/$1"/*.whl
}
smoke() {  # a few bf16 steps of the tiny smoke config, with a time budget: the stack trains here
  rm -rf /tmp/smoke-run
  $neko train configs/tiny-smoke.yaml --set run.out_dir=/tmp/smoke-run --set optim.max_steps=30 \
    --set optim.time_budget_s=60 --set run.bf16=true > "$logs/smoke-$1.log" 2>&1
}
install base || exit 1
export PYTHONPATH=/tmp/site-base:$PWD
if install stack && PYTHONPATH=/tmp/site-stack:$PYTHONPATH smoke stack; then
  export PYTHONPATH=/tmp/site-stack:$PYTHONPATH
  echo "the carried stack works"
elif smoke image; then
  echo "the image's stack works (the carried one failed: logs.tar.gz, smoke-stack.log)"
else
  echo "neither stack runs the smoke config"; tail -5 "$logs"/smoke-*.log; exit 1
fi
"$python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" | tee "$logs/versions.txt"
if [ ! -f data/text/pretrain.txt.gz ]; then
  "$python" - data/text/pretrain.txt.xz data/text/pretrain.txt.gz <<'PY' || exit 1
import gzip, lzma, shutil, sys
with lzma.open(sys.argv[1]) as source, gzip.open(sys.argv[2], "wb", compresslevel=1) as target:
    shutil.copyfileobj(source, target)
PY
fi
pack() {  # the model folder $1 as $out/$2.tar.part-*, unpacking to a folder named $2
  [ -d "$1" ] && tar c -C "$(dirname "$1")" --transform "s,^$(basename "$1"),$2," "$(basename "$1")" \
    | split -b 15M - "$out/$2.tar.part-"
}
$neko train configs/neko-small-pretrain.yaml --set optim.epochs=3 \
  --set optim.time_budget_s="${PRETRAIN_SECONDS:-130}" --set run.save_every=100000 ${TRAIN_ARGS:-} \
  > "$logs/pretrain.log" 2>&1
tail -3 "$logs/pretrain.log"
cp runs/neko-small-pretrain/metrics.jsonl "$logs/pretrain-metrics.jsonl" 2>/dev/null
[ -f runs/neko-small-pretrain/model/config.json ] || { echo "pretraining left no model"; exit 1; }
echo "pretraining done at ${SECONDS} s"
finetune_budget=$(( ${SECONDS_TOTAL:-560} - SECONDS - ${FINETUNE_PREPARE_SECONDS:-75} - 30 ))
$neko train configs/neko-small.yaml --set optim.epochs=4 --set optim.time_budget_s="$finetune_budget" \
  --set run.save_every=100000 ${TRAIN_ARGS:-} > "$logs/finetune.log" 2>&1
tail -3 "$logs/finetune.log"
echo "fine-tuning done at ${SECONDS} s"
cp runs/neko-small/metrics.jsonl "$logs/finetune-metrics.jsonl" 2>/dev/null
pack runs/neko-small/model neko-small || pack runs/neko-small-pretrain/model neko-small-pretrain
