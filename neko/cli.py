"""The `neko` command. Each sub-command lives beside the code it drives; this file only wires them.

User mistakes raise `NekoError`; `main` prints its one line and exits with status 2 (`run_app`).
"""

from __future__ import annotations

from typing import Annotated

import typer

import neko
from neko.cli_support import run_app

app = typer.Typer(
    help="Correct the mistakes of recognizers with task-guided MoE language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(f"neko {neko.__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Correct the mistakes of recognizers with task-guided MoE language models."""


def _register_commands() -> None:
    """Wire the sub-commands in (once: `main` may run more than once in a process, as in tests)."""
    if app.registered_commands:
        return
    from neko.correct.cli import correct_command, tune_gate_command
    from neko.correct.export_cli import export_command
    from neko.data.cli import data_app
    from neko.demo import demo_command
    from neko.evaluate.cli import eval_command
    from neko.serve.cli import serve_command
    from neko.train.cli import grow_experts_command, park_command, train_command

    app.add_typer(data_app, name="data", help="Build, validate, convert and describe correction data.")
    app.command("train")(train_command)
    app.command("correct")(correct_command)
    app.command("tune-gate")(tune_gate_command)
    app.command("eval")(eval_command)
    app.command("demo")(demo_command)
    app.command("serve")(serve_command)
    app.command("export")(export_command)
    app.command("grow-experts")(grow_experts_command)
    app.command("park")(park_command)


def main() -> None:
    _register_commands()
    run_app(app)


if __name__ == "__main__":
    main()
