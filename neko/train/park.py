"""A training run parked small enough to commit, so that another session or machine continues it.

A full checkpoint holds fp32 weights and AdamW's two moments (16 bytes a parameter: 430 MB for
neko-small); a machine that loses its run folder between sessions (CPU training spread over several)
would start over. A parked run is a run folder holding only what continuing needs: the identity, the
tokenizer, the metrics and, for an unfinished run, the latest checkpoint's weights in fp16 (2 bytes
a parameter), or, for a finished one, its model folder. Copied to `run.out_dir`, it continues with
`neko train CONFIG --resume`: at the parked step, with the same batches, fresh AdamW moments and the
learning rate re-warmed over a few steps (`checkpoints.REWARM_STEPS`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from neko.errors import NekoError
from neko.io import atomic_folder, give_usual_mode, read_json_object, write_json
from neko.train.checkpoints import CHECKPOINT_WEIGHTS, STATE_FILE, Checkpoints, read_weights
from neko.train.metrics import METRICS_FILE
from neko.train.run_dir import CHECKPOINT_DIR, IDENTITY_FILE, MODEL_DIR, RunDir


def park(run_dir: Path, out: Path) -> Path:
    """Write the run in `run_dir` parked into `out` (missing, empty, or an earlier parking, which it
    replaces) and return the parked step's folder or the model folder."""
    run = RunDir(run_dir)
    if not run.identity_file.exists():
        raise NekoError(f"{run_dir}: not a training run (no {IDENTITY_FILE})")
    finished = run.finished()
    latest = Checkpoints(run_dir / CHECKPOINT_DIR, keep_last=1).latest()
    if not finished and latest is None:
        raise NekoError(f"{run_dir}: no checkpoint and no finished model to park")
    check_replaceable(out)
    with atomic_folder(out, replace=True) as staging:
        for name in (IDENTITY_FILE, METRICS_FILE):
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, staging / name)
        shutil.copytree(run.tokenizer_dir, staging / run.tokenizer_dir.name)
        if finished:
            shutil.copytree(run_dir / MODEL_DIR, staging / MODEL_DIR)
        else:
            park_checkpoint(latest, staging / CHECKPOINT_DIR / latest.name)
    return out / MODEL_DIR if finished else out / CHECKPOINT_DIR / latest.name


def park_checkpoint(checkpoint: Path, out: Path) -> None:
    """The checkpoint's weights in fp16 and its state marked weights-only."""
    out.mkdir(parents=True)
    tensors = read_weights(checkpoint / CHECKPOINT_WEIGHTS)
    half = {name: t.to(torch.float16) if t.is_floating_point() else t for name, t in tensors.items()}
    save_file(half, out / CHECKPOINT_WEIGHTS, metadata={"format": "pt"})
    give_usual_mode(out / CHECKPOINT_WEIGHTS)  # committed and read by others, unlike a checkpoint
    state = read_json_object(checkpoint / STATE_FILE)
    write_json(out / STATE_FILE, {**state, "weights_only": True})


def check_replaceable(out: Path) -> None:
    """`out` may be replaced: it is missing, empty, or a parked run (a run folder whose checkpoints
    are all weights-only), never a live run's folder nor a folder of anything else."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not (out / IDENTITY_FILE).exists():
        raise NekoError(f"{out}: exists and is not a parked run; choose an empty or new folder")
    for checkpoint in Checkpoints(out / CHECKPOINT_DIR, keep_last=1).all():
        if not read_json_object(checkpoint / STATE_FILE).get("weights_only"):
            raise NekoError(f"{out}: holds a run's full checkpoints, not a parked run; choose another folder")
