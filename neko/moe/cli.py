"""`neko grow-experts`: give an MoE checkpoint more experts, copies of ones it has, for new tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neko.moe.grow import ROUTER_INITS


def grow_experts_command(
    model: Annotated[Path, typer.Argument(help="the MoE model directory to grow (safetensors)")],
    out: Annotated[Path, typer.Argument(help="the new model directory (must not exist, or be empty)")],
    copy: Annotated[
        list[int] | None,
        typer.Option("--copy", help="an expert to copy into a new one (repeat for more)", show_default=False),
    ] = None,
    router: Annotated[
        str, typer.Option("--router", help=f"the new router rows: {' or '.join(ROUTER_INITS)}")
    ] = "mean",
    noise_std: Annotated[float, typer.Option("--noise-std", help="Gaussian noise on the copies")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="seed of the noise")] = 0,
) -> None:
    """Write MODEL with one more expert per --copy into OUT; its neko.json counts them, its tasks stay
    (train the new task with a config whose expert_map gives it a new expert)."""
    from transformers import AutoConfig
    from transformers.utils import logging as transformers_logging

    from neko.moe.grow import expert_count, grow_checkpoint

    transformers_logging.disable_progress_bar()
    copies = copy or []
    written = grow_checkpoint(model, out, copies, noise_std=noise_std, seed=seed, router=router)
    experts = expert_count(AutoConfig.from_pretrained(written))
    new = ", ".join(f"{experts - len(copies) + i} (copy of {donor})" for i, donor in enumerate(copies))
    typer.echo(f"wrote {written}: {experts} experts; new: {new}")
