"""What every neko command shares: the standard-error console and the one-line error exit.

A user mistake raises `NekoError`; `run_app` prints its one line on standard error and exits with
status 2, so no command shows a traceback for bad input.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from neko.errors import NekoError

stderr = Console(stderr=True)


def run_app(app: typer.Typer) -> None:
    """Run a typer application, turning a `NekoError` into one line and exit status 2."""
    try:
        app()
    except NekoError as error:
        stderr.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
