"""Correction throughput of each engine, against transformers' `generate`, in one run on the same inputs.

For each data file: the first `--examples` test examples, corrected by each engine (`transformers`,
`copy`, and `onnx` when the model directory has `model.onnx`; greedy, batches of `--batch-size`
formed by prompt length, safety valve and correction gate on; `--no-gate`: the valve only), after
one warm-up batch. Reports examples/s, seconds per batch, the latency of one-example calls, how many
corrections are identical to the reference's (`transformers`, plain `generate`, every output written
in full), and the task's metric of the corrections. The neko engines compute only what decides a
correction (`Corrector.correct`): no output under a closed gate, none past the point where the
valve is sure to refuse it.
`--bf16` adds the copy engine on the model cast to bfloat16 (`Corrector.from_pretrained(dtype=...)`),
which CPUs with AVX-512 BF16 or AMX multiply faster, at corrections that may differ from fp32's.
`--hf-lookup` adds transformers' own prompt lookup (`prompt_lookup_num_tokens`), which only runs
one sequence at a time. `--gate-cost` instead times the copy engine with the correction gate on
and off: what the gate's scoring passes add to generation. The time to start (imports, loading) is
`benchmarks/startup.py`'s.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/correct_throughput.py
    .venv/bin/python benchmarks/correct_throughput.py --examples 64 --batch-size 16 --threads 1 --hf-lookup
    .venv/bin/python benchmarks/correct_throughput.py --data data/asr/test.jsonl.gz --examples 96 \
        --batch-size 16 --latency-calls 0 --repeats 2 --gate-cost
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers.utils import logging as transformers_logging

from neko.correct import Corrector
from neko.correct.drafts import DRAFT_TOKENS
from neko.correct.prompts import decode
from neko.correct.spacing import match_spacing
from neko.data.formats import read_examples
from neko.evaluate.metrics import Scorer

REFERENCE = "transformers"
TORCH_ENGINES = ("transformers", "copy")
DATA = ("data/asr/test.jsonl.gz", "data/tec/test.jsonl.gz")


@dataclass
class Run:
    engine: str
    seconds: float
    batches: int
    latency: float | None
    outputs: list[str]
    texts: list[str]


def correct_all(
    corrector: Corrector,
    engine: str,
    examples,
    batch_size: int,
    latency_calls: int,
    repeats: int,
    gate: bool = True,
) -> Run:
    """The best of `repeats` timed runs (the least disturbed by other work on the machine); the
    reference writes every output in full."""
    if engine in TORCH_ENGINES:
        corrector.engine = engine
    options = {"batch_size": batch_size, "gate": gate, "full_outputs": engine == REFERENCE}
    corrector.correct(examples[:batch_size], **options)  # warm-up
    seconds = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        corrections = corrector.correct(examples, **options)
        seconds = min(seconds, time.perf_counter() - start)
    start = time.perf_counter()
    for example in examples[:latency_calls]:
        corrector.correct([example], gate=gate, full_outputs=engine == REFERENCE)
    latency = (time.perf_counter() - start) / latency_calls if latency_calls else None
    return Run(
        engine,
        seconds,
        -(-len(examples) // batch_size),
        latency,
        [c.output for c in corrections],
        [c.text for c in corrections],
    )


@torch.inference_mode()
def hf_prompt_lookup(corrector: Corrector, examples, draft_tokens: int) -> Run:
    """transformers' `generate(prompt_lookup_num_tokens=...)`, one example at a time (it refuses
    batches); outputs only (no safety valve), so no metric."""
    items = corrector._prepare(examples, None, None)
    outputs = []
    start = time.perf_counter()
    for item in items:
        input_ids = torch.tensor([item.prompt.ids], device=corrector.device)
        generated = corrector.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=corrector.info.max_new_tokens,
            do_sample=False,
            prompt_lookup_num_tokens=draft_tokens,
            pad_token_id=corrector.pad_id,
            eos_token_id=corrector.eos_id,
        )[0, input_ids.shape[1] :].tolist()
        if corrector.eos_id in generated:
            generated = generated[: generated.index(corrector.eos_id)]
        outputs.append(match_spacing(decode(corrector.tokenizer, generated).strip(), item.hypotheses[0]))
    seconds = time.perf_counter() - start
    return Run("hf-prompt-lookup (batch 1)", seconds, len(items), seconds / len(items), outputs, [])


def print_gate_cost(corrector: Corrector, path: str, examples, args: argparse.Namespace) -> None:
    """Examples/s of the copy engine with the gate on and off, and their time ratio."""
    on, off = (
        correct_all(corrector, "copy", examples, args.batch_size, 0, args.repeats, gate=gate)
        for gate in (True, False)
    )
    print(
        f"\n{path}: {len(examples)} examples, copy engine: gate on "
        f"{len(examples) / on.seconds:.1f} ex/s ({on.seconds:.2f} s), gate off "
        f"{len(examples) / off.seconds:.1f} ex/s ({off.seconds:.2f} s), "
        f"on/off time {on.seconds / off.seconds:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model directory; default: the default model")
    parser.add_argument("--data", nargs="+", default=list(DATA))
    parser.add_argument("--examples", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per engine; the best counts")
    parser.add_argument("--latency-calls", type=int, default=10, help="one-example calls timed per engine")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch and ONNX Runtime threads; default: theirs"
    )
    parser.add_argument("--hf-lookup", action="store_true", help="also time transformers' prompt lookup")
    parser.add_argument("--bf16", action="store_true", help="also time the copy engine in bfloat16")
    parser.add_argument(
        "--gate-cost", action="store_true", help="instead time the default engine with the gate on and off"
    )
    parser.add_argument("--no-gate", action="store_true", help="the safety valve only, no correction gate")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers_logging.disable_progress_bar()
    corrector = Corrector.from_pretrained(args.model, device="cpu", engine="copy")
    correctors = dict.fromkeys(TORCH_ENGINES, corrector)
    if args.bf16:  # the copy engine (the corrector's own) on bfloat16 weights
        correctors["copy-bf16"] = Corrector.from_pretrained(
            args.model, device="cpu", engine="copy", dtype=torch.bfloat16
        )
    if (Path(corrector.name) / "model.onnx").is_file():
        correctors["onnx"] = Corrector.from_pretrained(args.model, engine="onnx", threads=args.threads)
    scorer = Scorer(errant=False)
    print(
        f"model {corrector.name}; {torch.get_num_threads()} threads; batch {args.batch_size}; "
        f"copy engine drafts up to {DRAFT_TOKENS} tokens"
    )
    for path in args.data:
        examples = read_examples(path)[: args.examples]
        if args.gate_cost:
            print_gate_cost(corrector, path, examples, args)
            continue
        metric = scorer.headline(examples[0].task)
        runs = [
            correct_all(
                correctors[e],
                e,
                examples,
                args.batch_size,
                args.latency_calls,
                args.repeats,
                not args.no_gate,
            )
            for e in correctors
        ]
        if args.hf_lookup:
            runs.append(hf_prompt_lookup(corrector, examples, DRAFT_TOKENS))
        reference = next(run for run in runs if run.engine == REFERENCE)
        print(f"\n{path}: {len(examples)} examples, gate {'off' if args.no_gate else 'on'}")
        print(f"{'engine':28} {'ex/s':>7} {'x ref':>6} {'s/batch':>8} {'1-ex s':>7} {'same':>9} {metric:>7}")
        for run in runs:
            mine, theirs = (run.texts, reference.texts) if run.texts else (run.outputs, reference.outputs)
            same = sum(a == b for a, b in zip(mine, theirs, strict=True))
            score = f"{scorer.score(metric, examples, run.texts):.2f}" if run.texts else "-"
            latency = f"{run.latency:.3f}" if run.latency is not None else "-"
            print(
                f"{run.engine:28} {len(examples) / run.seconds:7.1f} {reference.seconds / run.seconds:6.2f} "
                f"{run.seconds / run.batches:8.3f} {latency:>7} {same:>4}/{len(examples):<4} {score:>7}"
            )


if __name__ == "__main__":
    main()
