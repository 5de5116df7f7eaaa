"""`neko train CONFIG.yaml`: train a corrector; the same command runs under torchrun or
`accelerate launch`, data-parallel, with one process printing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train_command(
    config: Annotated[Path, typer.Argument(help="Training config (YAML); see configs/.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in run.out_dir from its latest checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the run in run.out_dir (its files are deleted).")
    ] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="e.g. --set optim.lr=3e-4")] = None,
) -> None:
    """Train one corrector on a mixture of task datasets."""
    from accelerate import PartialState

    from neko.train.config import load_config, parse_override
    from neko.train.loop import train

    overrides = dict(parse_override(item) for item in set_ or [])
    model_dir = train(load_config(config, overrides), resume=resume, overwrite=overwrite)
    if PartialState().is_main_process:
        typer.echo(f"model saved to {model_dir}")
