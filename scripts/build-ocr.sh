#!/usr/bin/env bash
# OCR builds: test, a first train slice, dev, then the full train set; every step resumes.
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
B=".venv/bin/python -m neko.data.builders.cli"
W=${WORKERS:-1}
$B ocr --split test --workers $W
$B ocr --split train --count 8000 --workers $W
$B ocr --split dev --workers $W
$B ocr --split train --count 30000 --workers $W
