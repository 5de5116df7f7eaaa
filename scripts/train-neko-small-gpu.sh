#!/usr/bin/env bash
# neko-small on one lent GPU in one call: LM pretraining (configs/neko-small-pretrain.yaml), then
# fine-tuning on the correction mixture (configs/neko-small.yaml), bf16. The fp16 model comes back
# under $OUT as a tar in 15 MiB parts (the machine returns at most 8 files of 16 MiB), with both runs'
# logs and metrics in logs.tar.gz. Prepare here, in the repository root:
#   bash scripts/gpu-wheels.sh
#   neko data text data/text/pretrain.txt.gz
#   zcat data/text/pretrain.txt.gz | xz -9 -T0 > data/text/pretrain.txt.xz   (the tree that travels is
#                                                                              at most 64 MiB)
# then run it there: command `bash scripts/train-neko-small-gpu.sh`, carry [".whl",
# "data/text/pretrain.txt.xz"], timeout_s 600. Back here, in the repository root:
#   cat FILES_AT/neko-small.tar.part-* | tar x -C models    (models/neko-small)
# PRETRAIN_STEPS / FINETUNE_STEPS cap the two runs: by default 400 x 32,768 tokens (0.9 epochs of the
# text) and 1,500 x 16,384 (about 2 epochs of the mixture), some 6 minutes of training at 120k
# tokens/s, a guess from the 19.2M benchmark Mixtral's H200 speed (163k-193k; this size was not
# measured there). TRAIN_ARGS: more `--set KEY=VALUE` for both runs (a CPU smoke test: `--set
# run.bf16=false --set optim.tokens_per_batch=4096`). PYTHON / NEKO: the interpreter and the neko
# command (python3, $PYTHON -m neko.cli).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the folder whose files come back}
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
neko=${NEKO:-$python -m neko.cli}
if [ -d .whl ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
logs=$(mktemp -d)
trap 'tar czf "$out/logs.tar.gz" -C "$logs" .; ls -la "$out"' EXIT
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
$neko train configs/neko-small-pretrain.yaml --set optim.max_steps="${PRETRAIN_STEPS:-400}" \
  --set run.save_every=100000 ${TRAIN_ARGS:-} > "$logs/pretrain.log" 2>&1
tail -3 "$logs/pretrain.log"
cp runs/neko-small-pretrain/metrics.jsonl "$logs/pretrain-metrics.jsonl" 2>/dev/null
[ -f runs/neko-small-pretrain/model/config.json ] || { echo "pretraining left no model"; exit 1; }
$neko train configs/neko-small.yaml --set optim.max_steps="${FINETUNE_STEPS:-1500}" \
  --set run.save_every=100000 ${TRAIN_ARGS:-} > "$logs/finetune.log" 2>&1
tail -3 "$logs/finetune.log"
cp runs/neko-small/metrics.jsonl "$logs/finetune-metrics.jsonl" 2>/dev/null
pack runs/neko-small/model neko-small
