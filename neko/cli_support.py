"""What every neko command shares: the standard-error console, the one-line error exit and a quick
start-up.

A user mistake raises `NekoError`; `run_app` prints its one line on standard error and exits with
status 2, so no command shows a traceback for bad input. A usage mistake (an unknown option, a value
out of range) is one line too, naming the command's `--help`.

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
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # typer's own click

from neko.errors import NekoError
from neko.resources import DEFAULT_MODEL_NAME

stderr = Console(stderr=True)

MODEL_HELP = f"a model directory or a bundled model's name (default: {DEFAULT_MODEL_NAME})"
ModelOption = Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)]
"""The model of the commands that load one (the default model when absent)."""
DeviceOption = Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda, cuda:N")]


def run_app(app: typer.Typer) -> None:
    """Run a typer application, turning a `NekoError` or a usage mistake into one line and exit
    status 2."""
    _freeze_at_exit()
    try:
        status = app(standalone_mode=False)
    except NekoError as error:
        _error_line(str(error))
        sys.exit(2)
    except NoArgsIsHelpError as error:
        error.show()
        sys.exit(error.exit_code)
    except UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "neko"
        _error_line(f"{' '.join(error.format_message().split())} (see '{command} --help')")
        sys.exit(error.exit_code)
    except ClickException as error:
        _error_line(" ".join(error.format_message().split()))
        sys.exit(error.exit_code)
    except typer.Abort:
        stderr.print("Aborted!", highlight=False)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


def _error_line(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


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
