"""Atomic, rotating training checkpoints.

A checkpoint is written into a temporary directory and renamed into place, so a run killed at any
moment leaves either the complete checkpoint or none; `latest` never sees a half-written one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from accelerate import Accelerator

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
        """Write the model, optimizer, scheduler and RNG states plus `state` for `step`."""
        final = self.directory / f"{PREFIX}{step:08d}"
        temporary = self.directory / f".tmp-{PREFIX}{step:08d}"
        if accelerator.is_main_process and temporary.exists():
            shutil.rmtree(temporary)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(temporary))
        if accelerator.is_main_process:
            (temporary / STATE_FILE).write_text(json.dumps({**state, "step": step}))
            if final.exists():
                shutil.rmtree(final)
            temporary.rename(final)
            for old in self.all()[: -self.keep_last]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return final

    def restore(self, accelerator: Accelerator) -> dict:
        """Load the latest checkpoint into the prepared objects; returns its state ({} if none)."""
        latest = self.latest()
        if latest is None:
            return {}
        accelerator.load_state(str(latest))
        return json.loads((latest / STATE_FILE).read_text())
