"""Atomic, rotating training checkpoints.

A checkpoint is written into a temporary directory and renamed into place, so a run killed at any
moment leaves either the complete checkpoint or none; `latest` never sees a half-written one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from accelerate import Accelerator

from neko.errors import NekoError
from neko.io import read_json_object, write_json

STATE_FILE = "trainer_state.json"
PREFIX = "step-"


class Checkpoints:
    def __init__(self, directory: Path, keep_last: int) -> None:
        self.directory = directory
        self.keep_last = max(1, keep_last)

    def all(self) -> list[Path]:
        if not self.directory.exists():
            return []
        found = [
            p for p in self.directory.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).exists()
        ]
        return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))

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
            if final.exists():
                shutil.rmtree(final)
            temporary.rename(final)
            for old in self.all()[: -self.keep_last]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return final

    def restore(self, accelerator: Accelerator, run: str) -> dict:
        """Load the latest checkpoint into the prepared objects and return its state ({} if there is
        none); a checkpoint of another run (its `run` key differs) is refused before it is loaded."""
        latest = self.latest()
        if latest is None:
            return {}
        state = read_json_object(latest / STATE_FILE)
        if state.get("run") != run:
            raise NekoError(
                f"{latest}: a checkpoint of another run (run {state.get('run')}, this run {run}); "
                "pass --overwrite to start over"
            )
        accelerator.load_state(str(latest))
        return state
