"""What a one-line correction costs without torch: ONNX Runtime on `neko export --to onnx`, in one run.

Each command runs `--runs` times in a fresh interpreter from this checkout, its wall time measured
from here (interpreter start to exit); min and median are printed (the machine may be shared, so the
min is the least disturbed). Compared, on the same line and model:

- `neko correct - --task asr --no-gate`: the torch one-liner (copy engine, safety valve on);
- the same correction in an interpreter that imports only onnxruntime, numpy, tokenizers and neko's
  torch-free modules (prompts, tasks, data formats, safety valve; checked: neither torch nor
  transformers is loaded at the end): read the line as `neko correct` does, build the prompt with
  `neko.correct.prompts.build_prompt`, greedy-decode it on the exported model with no KV cache (every
  step runs the whole sequence again), apply the safety valve with the model's `max_edit_rate`.

The output tokens of ONNX Runtime are compared with greedy search on the torch model (both neko
engines, the same prompt ids), and the correction with the one-liner's. No correction gate on either
side: its evidence (scores of the output and the hypotheses) would be one more pass.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/onnx_one_line.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
LINE = "the cat sad on the mat"
UNWANTED = ("torch", "transformers")


class RawTokenizer:
    """A `tokenizers.Tokenizer` with the two methods `neko.correct.prompts` calls on a transformers
    tokenizer (byte-level BPE decoding needs no clean-up of spaces, so that option has nothing to do)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True, **_: object) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)


def greedy(session, prompt: list[int], eos_id: int, max_new_tokens: int) -> tuple[list[int], bool]:
    """Greedy continuation of `prompt` (one row, no padding, no cache); True when `eos_id` ended it."""
    import numpy as np

    ids, new = list(prompt), []
    for _ in range(max_new_tokens):
        row = np.array([ids], dtype=np.int64)
        (logits,) = session.run(["logits"], {"input_ids": row, "attention_mask": np.ones_like(row)})
        token = int(logits[0, -1].argmax())
        if token == eos_id:
            return new, True
        new.append(token)
        ids.append(token)
    return new, False


def correct_one_line(export: Path, task_name: str, threads: int) -> dict:
    """The torch-free one-liner (standard input, as `neko correct -`): its result and phase times."""
    start = time.perf_counter()
    import onnxruntime
    from tokenizers import Tokenizer

    from neko.correct.prompts import build_prompt, decode
    from neko.correct.safety import SafetyValve
    from neko.data.formats import read_data
    from neko.tasks import END_MARKER, get_task

    imported = time.perf_counter()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(export / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    loaded = time.perf_counter()
    info = json.loads((export / "neko.json").read_text(encoding="utf-8"))
    tokenizer = RawTokenizer(Tokenizer.from_file(str(export / "tokenizer.json")))
    example = read_data("-", task=task_name).examples[0]
    task = get_task(task_name)
    shown = example.hypotheses[: info.get("max_hypotheses")]
    prompt = build_prompt(tokenizer, task, shown, info["prompt_style"], info["max_source_tokens"])
    prepared = time.perf_counter()
    eos_id = tokenizer.tokenizer.token_to_id(END_MARKER)
    tokens, finished = greedy(session, prompt.ids, eos_id, info["max_new_tokens"])
    output = decode(tokenizer, tokens).strip()
    rate = info.get("max_edit_rate", {}).get(task_name, SafetyValve.max_edit_rate)
    reason = SafetyValve(max_edit_rate=rate).check(
        output, example.hypotheses[0], finished, example.hypotheses
    )
    done = time.perf_counter()
    return {
        "prompt": prompt.ids,
        "tokens": tokens,
        "output": output,
        "correction": example.hypotheses[0] if reason else output,
        "fell_back": reason is not None,
        "loaded_unwanted": sorted(m for m in UNWANTED if m in sys.modules),
        "phases": {
            "imports": imported - start,
            "session": loaded - imported,
            "tokenizer, input, prompt": prepared - loaded,
            f"greedy, {len(tokens) + finished} passes": done - prepared,
        },
    }


def timed(args: list[str], line: str) -> tuple[float, str]:
    """Wall seconds of one interpreter running `args` in the checkout, `line` on standard input."""
    env = os.environ | {"PYTHONPATH": str(CHECKOUT)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], input=line + "\n", capture_output=True, text=True, cwd=CHECKOUT, env=env
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall, done.stdout


def load_corrector(model: str):
    from transformers.utils import logging as transformers_logging

    from neko.correct.corrector import Corrector

    transformers_logging.disable_progress_bar()
    return Corrector.from_pretrained(model, device="cpu")


def torch_greedy(corrector, prompt: list[int], engine: str) -> list[int]:
    """Greedy output tokens of `prompt` on the torch model with a neko engine, as `Corrector` runs it."""
    from neko.correct.decoding import generate

    (generated,) = generate(
        corrector.model,
        [prompt],
        pad_id=corrector.pad_id,
        eos_id=corrector.eos_id,
        max_new_tokens=corrector.info.max_new_tokens,
        engine=engine,
        separators=corrector.tokenizer.all_special_ids,
    )
    return generated.ids


def torch_prompt(corrector, hypotheses: list[str], task_name: str) -> list[int]:
    from neko.correct.prompts import build_prompt
    from neko.tasks import get_task

    info = corrector.info
    shown = hypotheses[: info.max_hypotheses]
    return build_prompt(
        corrector.tokenizer, get_task(task_name), shown, info.prompt_style, info.max_source_tokens
    ).ids


def check_examples(corrector, export: Path, path: Path, count: int) -> tuple[int, int, int, int]:
    """On the first `count` examples of `path`: how many prompts and greedy outputs (copy engine) of
    ONNX Runtime with the raw tokenizer are identical to torch's with the transformers one, and how
    many of ONNX Runtime's outputs differ from the 1-best."""
    import onnxruntime
    from tokenizers import Tokenizer

    from neko.correct.prompts import build_prompt, decode
    from neko.data.formats import read_data
    from neko.tasks import get_task

    session = onnxruntime.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = RawTokenizer(Tokenizer.from_file(str(export / "tokenizer.json")))
    info = corrector.info
    examples = read_data(path).examples[:count]
    same_prompts = same_outputs = changed = 0
    for example in examples:
        shown = example.hypotheses[: info.max_hypotheses]
        task = get_task(example.task)
        prompt = build_prompt(tokenizer, task, shown, info.prompt_style, info.max_source_tokens).ids
        reference = torch_prompt(corrector, list(example.hypotheses), example.task)
        same_prompts += prompt == reference
        tokens, _ = greedy(session, prompt, corrector.eos_id, info.max_new_tokens)
        same_outputs += tokens == torch_greedy(corrector, reference, "copy")
        changed += decode(tokenizer, tokens).strip() != example.hypotheses[0]
    return len(examples), same_prompts, same_outputs, changed


def export_model(model: str, folder: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "neko.cli", "export", model, str(folder), "--to", "onnx"],
        capture_output=True,
        text=True,
        cwd=CHECKOUT,
        env=os.environ | {"PYTHONPATH": str(CHECKOUT)},
    )
    if done.returncode != 0:
        sys.exit(f"neko export failed:\n{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/neko-tiny")
    parser.add_argument(
        "--export", type=Path, help="its ONNX export (default: exported to a temporary folder)"
    )
    parser.add_argument("--line", default=LINE)
    parser.add_argument("--task", default="asr")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--check",
        type=Path,
        default=CHECKOUT / "data/asr/dev.jsonl.gz",
        help="examples whose outputs are compared",
    )
    parser.add_argument("--check-count", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime's intra-op threads (0: its own)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(correct_one_line(args.export, args.task, args.threads)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        export = args.export or Path(scratch) / "onnx"
        if args.export is None:
            export_model(args.model, export)
        compare(args, export)


def compare(args: argparse.Namespace, export: Path) -> None:
    load_before = os.getloadavg()[0]
    commands = {
        "python (nothing)": ["-c", "pass"],
        f'echo "{args.line}" | neko correct - --task {args.task} --no-gate (torch)': [
            *("-m", "neko.cli", "correct", "-", "--task", args.task, "--no-gate", "--model", args.model),
        ],
        "the same on ONNX Runtime (no torch, no transformers)": [
            *(__file__, "--child", "--export", str(export), "--task", args.task),
            *("--threads", str(args.threads)),
        ],
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    outputs: dict[str, str] = {}
    for _ in range(args.runs):
        for name, command in commands.items():
            wall, outputs[name] = timed(command, args.line)
            walls[name].append(wall)
    *_, torch_name, onnx_name = commands
    result = json.loads(outputs[onnx_name])
    cli = json.loads(outputs[torch_name].splitlines()[0])
    corrector = load_corrector(args.model)
    reference = torch_prompt(corrector, [args.line], args.task)
    checked, same_prompts, same_outputs, changed = check_examples(
        corrector, export, args.check, args.check_count
    )
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (the machine is shared)\n")
    print(f"| one line, {args.model}, wall time of {args.runs} runs | min | median |")
    print("| --- | ---: | ---: |")
    for name, values in walls.items():
        cell = name.replace("|", "\\|")
        print(f"| {cell} | {min(values):.2f} s | {statistics.median(values):.2f} s |")
    print("\nphases of the last ONNX Runtime run, in the interpreter:")
    for phase, seconds in result["phases"].items():
        print(f"  {phase}: {seconds:.3f} s")
    print(f"\ntorch or transformers loaded by the ONNX Runtime run: {result['loaded_unwanted'] or 'neither'}")
    print(f"prompt ids identical: {result['prompt'] == reference} ({len(result['prompt'])} tokens)")
    for engine in ("copy", "transformers"):
        same = result["tokens"] == torch_greedy(corrector, reference, engine)
        print(f"output tokens identical to torch greedy, {engine} engine: {same}")
    print(f"model output {result['output']!r}, correction {result['correction']!r}")
    same = cli["correction"] == result["correction"]
    print(f"neko correct's correction {cli['correction']!r}, identical: {same}")
    print(
        f"{args.check.relative_to(CHECKOUT) if args.check.is_relative_to(CHECKOUT) else args.check}, "
        f"first {checked}: prompts identical {same_prompts}/{checked}, "
        f"greedy output tokens identical (copy engine) {same_outputs}/{checked}, "
        f"outputs that differ from the 1-best {changed}/{checked}"
    )
    if result["loaded_unwanted"]:
        sys.exit(f"the ONNX Runtime run loaded {', '.join(result['loaded_unwanted'])}")


if __name__ == "__main__":
    main()
