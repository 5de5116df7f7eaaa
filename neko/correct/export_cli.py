"""`neko export`: write a model in a format other engines serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neko.cli_support import MODEL_HELP, start_up
from neko.errors import NekoError

FORMATS = ("gguf", "onnx")


def export_command(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    out: Annotated[Path, typer.Argument(help="the file (gguf) or folder (onnx) to write")],
    to: Annotated[
        str,
        typer.Option(
            "--to", help="gguf (llama.cpp and the engines built on it) or onnx (ONNX Runtime; the onnx extra)"
        ),
    ] = "gguf",
) -> None:
    """Export MODEL to OUT: a GGUF file that llama.cpp runs (float32; quantise it with llama-quantize),
    or a folder with model.onnx and the tokenizer, which ONNX Runtime runs without torch."""
    if to not in FORMATS:
        raise NekoError(f"unknown export format {to!r}; expected one of {', '.join(FORMATS)}")
    with start_up():
        if to == "gguf":
            from neko.correct.gguf_export import export_gguf

            written = export_gguf(model, out)
        else:
            from neko.correct.onnx_export import export_onnx

            written = export_onnx(model, out)
    typer.echo(f"wrote {written} ({written.stat().st_size / 2**20:.1f} MiB)", err=True)
