#!/usr/bin/env bash
# ASR + ST builds: test sets, then a first slice of train (so that training can start early),
# then dev sets and the full train sets. Every step resumes where it stopped.
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
B=".venv/bin/python -m neko.data.builders.cli"
W=${WORKERS:-1}
$B asr --split test --workers $W
$B asr --split train --count 3000 --workers $W
$B st --split test --workers $W
$B st --split train --count 2000 --workers $W
$B asr --split dev --workers $W
$B st --split dev --workers $W
$B asr --split train --count 30000 --workers $W
$B st --split train --count 15000 --workers $W
