"""`neko train CONFIG.yaml`: train a corrector; the same command runs under `accelerate launch`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from neko.errors import NekoError


def train_command(
    config: Annotated[Path, typer.Argument(help="Training config (YAML); see configs/.")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="e.g. --set optim.lr=3e-4")] = None,
) -> None:
    """Train one corrector on a mixture of task datasets."""
    from neko.train.config import load_config
    from neko.train.loop import train

    overrides = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise NekoError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=3e-4")
        overrides[key] = yaml.safe_load(value)
    model_dir = train(load_config(config, overrides), resume=resume)
    typer.echo(f"model saved to {model_dir}")
