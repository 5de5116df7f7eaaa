#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored through .git/info/exclude) the wheels neko's training needs on
# the lent GPU machine (Python 3.12 there, no package registry), at the versions this checkout's venv
# runs: .whl/base, what its image lacks (pydantic and its parts); .whl/stack, the Hugging Face stack
# and the command-line libraries, whose versions there may differ from the ones tested here (its
# image had transformers 5.17 with huggingface-hub 1.33 in 2026-11). The GPU script tries the image
# with both sets first and falls back to the image's own stack if that fails a smoke run. Torch,
# numpy and safetensors are the image's.
#   bash scripts/gpu-wheels.sh        then carry .whl (scripts/train-neko-small-gpu.sh says how)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl
download() {  # $1: the folder under .whl; the rest: distribution names
  local folder=$1
  shift
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d ".whl/$folder" $("$python" -c 'import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))' "$@")
}
download base pydantic pydantic-core annotated-types typing-inspection
download stack transformers huggingface-hub httpx2 httpcore2 truststore idna anyio hf-xet click kernels \
  tomlkit accelerate tokenizers typer annotated-doc shellingham rich
du -sh .whl/*
