#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored through .git/info/exclude) the wheels neko's training needs that
# the lent GPU machine's image lacks (Python 3.12 there, no package registry): pydantic and its parts,
# at the versions this checkout's venv runs.
# Its image has torch, transformers, accelerate, peft, tokenizers, safetensors, typer, rich and pyyaml.
#   bash scripts/gpu-wheels.sh        then carry .whl (scripts/train-neko-small-gpu.sh says how)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl $("$python" -c 'from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in ("pydantic", "pydantic-core", "annotated-types", "typing-inspection")))')
ls .whl
