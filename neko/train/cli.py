"""`neko train CONFIG.yaml`: train a corrector; the same command runs under torchrun or
`accelerate launch`, data-parallel, with one process printing. `neko grow-experts`: give an MoE
checkpoint more experts, copies of ones it has, so that a training config can add tasks. `neko park`:
a run made small enough to commit and continue elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neko.cli_support import start_up


def train_command(
    config: Annotated[Path, typer.Argument(help="Training config (YAML); see configs/.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in run.out_dir from its latest checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the run in run.out_dir (its files are deleted).")
    ] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="e.g. --set optim.lr=3e-4")] = None,
    until: Annotated[
        int | None,
        typer.Option(
            "--until",
            min=1,
            help="Stop after this step (checkpointed) and write its model to run.out_dir/snapshots/; "
            "--resume continues the run on the same schedule.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train one corrector on a mixture of task datasets."""
    from accelerate import PartialState

    from neko.train.config import load_config, parse_override
    from neko.train.loop import train

    overrides = dict(parse_override(item) for item in set_ or [])
    model_dir = train(load_config(config, overrides), resume=resume, overwrite=overwrite, until=until)
    if PartialState().is_main_process:
        typer.echo(f"model saved to {model_dir}")


def grow_experts_command(
    model: Annotated[Path, typer.Argument(help="the MoE model directory to grow (safetensors)")],
    out: Annotated[Path, typer.Argument(help="the new model directory (must not exist, or be empty)")],
    copy: Annotated[
        list[int] | None,
        typer.Option("--copy", help="an expert to copy into a new one (repeat for more)", show_default=False),
    ] = None,
    router: Annotated[
        str,
        typer.Option("--router", help="the new router rows: mean (of the old rows) or copy (the donor's)"),
    ] = "mean",
    noise_std: Annotated[float, typer.Option("--noise-std", help="Gaussian noise on the copies")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="seed of the noise")] = 0,
) -> None:
    """Write MODEL with one more expert per --copy into OUT; its neko.json counts them, its tasks stay
    (train the new task with a config whose expert_map gives it a new expert)."""
    with start_up():
        from transformers import AutoConfig
        from transformers.utils import logging as transformers_logging

        from neko.moe.grow import expert_count, grow_checkpoint

        transformers_logging.disable_progress_bar()
        copies = copy or []
        written = grow_checkpoint(model, out, copies, noise_std=noise_std, seed=seed, router=router)
    experts = expert_count(AutoConfig.from_pretrained(written))
    new = ", ".join(f"{experts - len(copies) + i} (copy of {donor})" for i, donor in enumerate(copies))
    typer.echo(f"wrote {written}: {experts} experts; new: {new}")


def park_command(
    run_dir: Annotated[Path, typer.Argument(help="the run folder (a config's run.out_dir)")],
    out: Annotated[Path, typer.Argument(help="the parked run's folder (new, empty, or an earlier parking)")],
) -> None:
    """Write a run small enough to commit (fp16 weights of its latest checkpoint, or its finished
    model; no optimizer state) into OUT; copy OUT to the run's out_dir and `neko train CONFIG --resume`
    continues it, on this machine or another."""
    with start_up():
        from neko.train.park import park

        parked = park(run_dir, out)
    typer.echo(f"parked {run_dir} in {out} ({parked.relative_to(out)})")
