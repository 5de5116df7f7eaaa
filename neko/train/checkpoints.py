"""Atomic, rotating training checkpoints.

A checkpoint is written into a temporary directory and renamed into place, so a run killed at any
moment leaves either the complete checkpoint or none; `latest` never sees a half-written one. A
checkpoint of a step already saved (a resumed run saving its first step again) replaces the old one
by two renames, the old folder set aside first and deleted last; a run killed between the two finds
the set-aside folder put back (`Checkpoints.all`), so no moment leaves the run without its latest
checkpoint.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch.optim.lr_scheduler import LambdaLR

from neko.errors import NekoError, first_line
from neko.io import read_json_object, write_json

STATE_FILE = "trainer_state.json"
PREFIX = "step-"
CHECKPOINT_WEIGHTS = "model.safetensors"
"""accelerate's name for the weights of the one model a checkpoint holds."""
REPLACED_PREFIX = ".replaced-"
"""The name a checkpoint takes while a new one of the same step replaces it."""
REWARM_STEPS = 20
"""Steps over which the learning rate climbs back after a weights-only restore (a parked run): AdamW's
fresh moments make its first updates about lr in size for every weight, whatever the gradient."""


class Checkpoints:
    def __init__(self, directory: Path, keep_last: int) -> None:
        self.directory = directory
        self.keep_last = max(1, keep_last)

    def all(self) -> list[Path]:
        if not self.directory.exists():
            return []
        self._recover_replaced()
        found = [
            p
            for p in self.directory.iterdir()
            if p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit() and (p / STATE_FILE).exists()
        ]  # a copy such as step-00000100.bak is the user's, not a checkpoint
        return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))

    def _recover_replaced(self) -> None:
        """Finish a replacement a kill interrupted: a set-aside checkpoint whose successor is in place
        is deleted, one whose successor never arrived goes back to its name."""
        for replaced in self.directory.glob(f"{REPLACED_PREFIX}{PREFIX}*"):
            final = replaced.with_name(replaced.name.removeprefix(REPLACED_PREFIX))
            if final.exists():
                shutil.rmtree(replaced)
            else:
                replaced.rename(final)

    def latest(self) -> Path | None:
        found = self.all()
        return found[-1] if found else None

    def save(self, accelerator: Accelerator, step: int, state: dict) -> Path:
        """Write the model, optimizer, scheduler and RNG states plus `state` (with the `run` key of
        the run's identity) for `step`; every process calls it, the main one renames and rotates."""
        final = self.directory / f"{PREFIX}{step:08d}"
        temporary = self.directory / f".tmp-{PREFIX}{step:08d}"
        if accelerator.is_main_process:
            shutil.rmtree(temporary, ignore_errors=True)
            # made here, before the others write their random states into it: accelerate's
            # `save_state` creates it on the main process only, which may come late
            temporary.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(temporary))
        # every process has written its random states before the main one renames the folder
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_json(temporary / STATE_FILE, {**state, "step": step})
            replaced = _replaced_name(final)
            if final.exists():
                shutil.rmtree(replaced, ignore_errors=True)
                final.rename(replaced)
            temporary.rename(final)
            shutil.rmtree(replaced, ignore_errors=True)
            for old in self.all()[: -self.keep_last]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return final

    def restore(self, accelerator: Accelerator, run: str, model: torch.nn.Module) -> dict:
        """Load the latest checkpoint into the prepared objects and return its state ({} if there is
        none); a checkpoint of another run (its `run` key differs) is refused before it is loaded. A
        parked one (`weights_only`) loads into `model` only: the optimizer and schedule start afresh."""
        latest = self.latest()
        if latest is None:
            return {}
        state = read_json_object(latest / STATE_FILE)
        if state.get("run") != run:
            raise NekoError(
                f"{latest}: a checkpoint of another run (run {state.get('run')}, this run {run}); "
                "pass --overwrite to start over"
            )
        if state.get("weights_only"):
            load_weights(accelerator.unwrap_model(model), latest / CHECKPOINT_WEIGHTS)
        else:
            accelerator.load_state(str(latest))
        return state


def _replaced_name(checkpoint: Path) -> Path:
    return checkpoint.with_name(REPLACED_PREFIX + checkpoint.name)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's weights (safetensors only); a one-line error when they cannot be read."""
    try:
        return load_file(path)
    except (OSError, SafetensorError) as error:
        raise NekoError(f"{path}: cannot read the weights ({first_line(error)})") from None


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Copy the (fp16) weights of `path` into `model`, cast to its dtype; tied weights may be absent."""
    tensors = read_weights(path)
    expected = model.state_dict()
    missing = [name for name in expected if name not in tensors and not _tied(model, name)]
    unexpected = [name for name in tensors if name not in expected]
    if missing or unexpected:
        names = ", ".join((missing + unexpected)[:3])
        raise NekoError(f"{path}: weights of another model ({names} missing or unexpected)")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise NekoError(
                f"{path}: weights of another model ({name} is {list(tensor.shape)}, "
                f"the model's {list(expected[name].shape)})"
            )
    with torch.no_grad():
        for name, tensor in tensors.items():
            expected[name].copy_(tensor.to(expected[name].dtype))


def _tied(model: torch.nn.Module, name: str) -> bool:
    return name == "lm_head.weight" and bool(getattr(model.config, "tie_word_embeddings", False))


def rewarm(scheduler: LambdaLR, start: int) -> None:
    """Advance a fresh schedule to `start`, its learning rate ramped over `REWARM_STEPS` from there."""
    scheduler.lr_lambdas = rewarmed(scheduler.lr_lambdas, start)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)`")
        for _ in range(start):
            scheduler.step()


def rewarmed(lambdas: list, start: int) -> list:
    """Learning-rate factors ramped from zero over `REWARM_STEPS` steps from `start`."""
    return [
        lambda step, f=f: f(step) * min(1.0, max(0.0, (step - start + 1) / REWARM_STEPS)) for f in lambdas
    ]
