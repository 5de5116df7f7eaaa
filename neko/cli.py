"""The `neko` command. Each sub-command lives beside the code it drives; this file only wires them.

User mistakes raise `NekoError`; `main` prints its one line and exits with status 2.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from neko.errors import NekoError

app = typer.Typer(
    help="Correct the mistakes of recognizers with task-guided MoE language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_stderr = Console(stderr=True)


def _register_commands() -> None:
    from neko.correct.cli import correct_command, tune_valve_command
    from neko.correct.export_cli import export_command
    from neko.data.cli import data_app
    from neko.demo import demo_command
    from neko.evaluate.cli import eval_command
    from neko.train.cli import train_command

    app.add_typer(data_app, name="data", help="Build, validate, convert and describe correction data.")
    app.command("train")(train_command)
    app.command("correct")(correct_command)
    app.command("tune-valve")(tune_valve_command)
    app.command("eval")(eval_command)
    app.command("demo")(demo_command)
    app.command("export")(export_command)


def main() -> None:
    _register_commands()
    try:
        app()
    except NekoError as error:
        _stderr.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
