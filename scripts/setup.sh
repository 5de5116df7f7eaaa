#!/usr/bin/env bash
# Sets up neko on a fresh Debian machine: recognizers and fonts (apt), a virtual environment in
# .venv, torch 2.13.0 (the CPU build; installed first so nothing pulls a CUDA build), then neko.
# Usage: bash scripts/setup.sh [--dev]      (--dev adds the test tools, and Chromium for the web page's
# browser test; Playwright drives Debian's Chromium, so `playwright install` is never needed)
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(
  python3 python3-venv                                                      # the virtual environment
  flite sox libsox-fmt-all festival festvox-us-slt-hts festvox-kallpc16k   # speech synthesis
  tesseract-ocr tesseract-ocr-eng                                           # OCR
  apertium apertium-eng-spa                                                 # machine translation
  diatheke sword-text-web sword-text-sparv fortune-mod fortunes wordnet-base debian-handbook  # text
  sword-text-kjv dict-gcide python3-doc manpages manpages-dev               # more text
  linux-doc sword-comm-mhcc sword-comm-tdavid perl-doc dict-foldoc dict-jargon  # more text
  fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-noto-core fonts-urw-base35
  fonts-crosextra-carlito fonts-crosextra-caladea fonts-linuxlibertine fonts-roboto fonts-ebgaramond
)
if [ "${1:-}" = "--dev" ]; then SYSTEM_PACKAGES+=(chromium); fi         # the web page's browser test
missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
extra=""; [ "${1:-}" = "--dev" ] && extra="[dev]" || extra="[speech,onnx]"
.venv/bin/python -m pip install -q -e ".${extra}"
# Each bundled model's ONNX export, which the onnx engine runs (a one-line correction without torch);
# made from the committed weights, again when they change (the engine refuses a stale export).
for model in models/*/; do
  if ! .venv/bin/python -c "import sys; from pathlib import Path; from neko.correct.onnx_lm import export_matches; \
      raise SystemExit(not export_matches(Path(sys.argv[1])))" "$model" 2>/dev/null; then
    .venv/bin/neko export "$model" "$model" --to onnx
  fi
done
