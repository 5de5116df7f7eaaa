"""What every neko command shares: the standard-error console, the one-line error exit and a quick
start-up.

A user mistake raises `NekoError`; `run_app` prints its one line on standard error and exits with
status 2, so no command shows a traceback for bad input.

torch, transformers and a model are about 380,000 long-lived objects. Python's cyclic garbage
collector walks every one of them in each full collection: six times while they load and several
times more at exit, about 2.5 s of the 7 s a one-line `neko correct` took on 2 cores. `start_up`
loads without the collector and then exempts what it loaded from later collections (`gc.freeze`);
`run_app` does the same at exit. What a command allocates afterwards is collected as usual.
"""

from __future__ import annotations

import atexit
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from neko.errors import NekoError
from neko.resources import DEFAULT_MODEL_NAME

stderr = Console(stderr=True)

MODEL_HELP = f"a model directory or a bundled model's name (default: {DEFAULT_MODEL_NAME})"
ModelOption = Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)]
"""The model of the commands that load one (the default model when absent)."""
DeviceOption = Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda, cuda:N")]


def run_app(app: typer.Typer) -> None:
    """Run a typer application, turning a `NekoError` into one line and exit status 2."""
    _freeze_at_exit()
    try:
        app()
    except NekoError as error:
        stderr.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)


@contextmanager
def start_up() -> Iterator[None]:
    """Import and load long-lived things (torch, a model) without the cyclic garbage collector, then
    leave them out of every later collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@cache
def _freeze_at_exit() -> None:
    """Spare the interpreter's last collections the objects still alive at exit (atexit handlers run
    before them; the memory goes back with the process)."""
    atexit.register(gc.freeze)
