"""A one-line `neko correct` starts quickly: the commands import only what they use, and torch,
transformers and the model load without the cyclic garbage collector (`neko.cli_support.start_up`),
as in every command that loads a model. Each check runs in a fresh interpreter, whose `sys.modules`
is what the command imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from correct_fixtures import make_model_dir

CHECKOUT = Path(__file__).resolve().parents[1]
DEV = CHECKOUT / "tests" / "fixtures" / "eval" / "data.jsonl"

SCORING_AND_SERVING = ("jiwer", "sacrebleu", "num2words", "matplotlib", "fastapi", "uvicorn", "peft")
"""Each costs tens to hundreds of milliseconds to import; no command needs them to start."""

NOT_FOR_CORRECT = (
    "sacrebleu",
    "num2words",
    "matplotlib",
    "fastapi",
    "uvicorn",
    "peft",
    "gguf",
    "neko.evaluate.metrics",
    "neko.correct.tuning",
    "neko.correct.gate_report",
    "neko.serve.app",
    "transformers.models.olmoe",
    "transformers.models.qwen2_moe",
    "transformers.models.qwen3_moe",
)
"""What `neko correct` with a Mixtral model does not use: scoring, plots, serving, export, the
modeling code of the other MoE families."""


def run_python(code: str, stdin: str = "") -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], input=stdin, capture_output=True, text=True, cwd=CHECKOUT, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_registering_the_commands_imports_no_torch_and_no_scoring():
    """`neko --help` and the commands that need no model start without torch (seconds to import),
    numpy or pydantic."""
    unwanted = [*SCORING_AND_SERVING, "torch", "numpy", "pydantic"]
    code = (
        "import json, sys; from neko.cli import _register_commands; _register_commands(); "
        f"print(json.dumps(sorted(m for m in {unwanted!r} if m in sys.modules)))"
    )
    assert json.loads(run_python(code)) == []


def run_neko(args: list[str], stdin: str = "") -> tuple[list[str], dict]:
    """`neko ARGS` in a fresh interpreter: its output lines, and then which of NOT_FOR_CORRECT it
    imported, whether the collector is on, how many objects are frozen and whether torch is loaded."""
    code = (
        "import gc, json, sys\n"
        "from neko.cli import main\n"
        f"sys.argv = ['neko', *{[str(arg) for arg in args]!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        f"loaded = sorted(m for m in {list(NOT_FOR_CORRECT)!r} if m in sys.modules)\n"
        "print(json.dumps({'loaded': loaded, 'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count(),\n"
        "                  'torch': 'torch' in sys.modules}))\n"
    )
    *lines, state = run_python(code, stdin).splitlines()
    return lines, json.loads(state)


def test_a_one_line_correction_imports_only_what_it_uses_and_freezes_what_it_loaded(tmp_path):
    model_dir = make_model_dir(tmp_path / "m", open_gate=True)
    lines, state = run_neko(
        ["correct", "-", "--task", "asr", "--model", model_dir], "the cat sad on the mat\n"
    )
    assert json.loads(lines[0])["id"] == "stdin-1"  # the correction was written
    assert state["loaded"] == []
    assert state["torch"] and state["enabled"]
    assert state["frozen"] > 100_000  # torch and transformers: left out of later collections


def test_a_one_line_correction_of_a_model_with_an_onnx_export_imports_no_torch(tmp_path):
    """`--engine auto` takes the onnx engine for a few inputs: neither torch nor transformers loads."""
    pytest.importorskip("onnxscript")
    from neko.correct.onnx_export import export_onnx

    model_dir = make_model_dir(tmp_path / "m", open_gate=True)
    export_onnx(model_dir, model_dir)
    code = (
        "import json, sys\n"
        "from neko.cli import main\n"
        f"sys.argv = ['neko', 'correct', '-', '--task', 'asr', '--model', {str(model_dir)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))\n"
    )
    correction, loaded = run_python(code, "the cat sad on the mat\n").splitlines()
    assert json.loads(correction)["id"] == "stdin-1"
    assert json.loads(loaded) == []


@pytest.mark.parametrize("command", ["eval", "tune-gate", "export", "grow-experts"])
def test_each_command_that_loads_a_model_freezes_what_it_loaded(tmp_path, model_path, command):
    args = {
        "eval": ["eval", DEV, "--model", model_path, "--out", tmp_path / "report"],
        "tune-gate": ["tune-gate", DEV, "--model", model_path],
        "export": ["export", model_path, tmp_path / "m.gguf"],
        "grow-experts": ["grow-experts", model_path, tmp_path / "grown", "--copy", "0"],
    }[command]
    _, state = run_neko(args)
    assert state["enabled"] and state["frozen"] > 100_000
