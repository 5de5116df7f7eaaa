"""The training recipe's promises: the last K checkpoints are kept, the task-balanced mixture gives
each task the same share, gradient accumulation equals one big batch, and the saved model is a plain
transformers model that a process without neko loads and runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import counted_optimizer_steps, write_config

from neko.correct import Corrector
from neko.correct.generation import generate
from neko.data.jsonl import write_jsonl
from neko.data.schema import Example
from neko.tasks import get_task
from neko.train.config import load_config
from neko.train.data import BatchPlan, Encoded
from neko.train.loop import train
from neko.train.metrics import read_metrics

REPOSITORY = Path(__file__).resolve().parents[1]

# --- checkpoints ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep_last", [1, 2])
def test_only_the_last_k_checkpoints_are_kept_and_the_run_resumes_from_the_newest(tmp_path, keep_last):
    config = load_config(
        write_config(tmp_path, optim__max_steps=9, run__save_every=2, run__keep_last=keep_last)
    )
    train(config)
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step-00000008", "step-00000009"][-keep_last:]  # saved at 2, 4, 6, 8 and the end
    with counted_optimizer_steps() as steps:
        train(config, resume=True)
    assert steps[0] == 0  # the newest checkpoint is the final step: nothing is trained again


# --- the task mixture -------------------------------------------------------------------------------------


def _items(sizes: dict[str | None, int]) -> list[Encoded]:
    return [
        Encoded([1] * (3 + i % 4), [1] * (3 + i % 4), task) for task, n in sizes.items() for i in range(n)
    ]


def _seen(plan: BatchPlan, items: list[Encoded]) -> tuple[Counter, Counter]:
    """How often each task's examples, and each example, come up in the plan."""
    indices = [i for batch in plan.batches for i in batch]
    return Counter(items[i].task for i in indices), Counter(indices)


def test_the_balanced_mixture_gives_every_task_the_mean_group_size_per_epoch():
    sizes = {"asr": 30, "ocr": 6, "tec": 12, None: 12}  # None: plain text, a group of its own
    items = _items(sizes)
    per_task, per_example = _seen(BatchPlan(items, "balanced", 40, epochs=1, seed=0), items)
    assert per_task == dict.fromkeys(sizes, 15)  # (30 + 6 + 12 + 12) / 4
    asr = range(30)
    assert sum(per_example[i] for i in asr) == 15 and max(per_example[i] for i in asr) == 1  # subsampled
    ocr = range(30, 36)
    assert sorted(per_example[i] for i in ocr) == [2, 2, 2, 3, 3, 3]  # every one twice, 3 a third time
    per_task, _ = _seen(BatchPlan(items, "balanced", 40, epochs=2, seed=0), items)
    assert per_task == dict.fromkeys(sizes, 30)


def test_the_proportional_mixture_shows_every_example_once_per_epoch():
    items = _items({"asr": 30, "ocr": 6, "tec": 12})
    _, per_example = _seen(BatchPlan(items, "proportional", 40, epochs=2, seed=0), items)
    assert per_example == dict.fromkeys(range(48), 2)


# --- gradient accumulation --------------------------------------------------------------------------------


def test_two_accumulated_half_batches_make_the_update_of_one_full_batch(tmp_path):
    """Two examples with the same target length (so the token mean of the pair is the mean of the two
    row means): one step on both at once, or one step accumulated over one example at a time."""
    data = tmp_path / "pair.jsonl"
    write_jsonl(
        data,
        [
            Example("a", "asr", ["the cat sad on the mat"], reference="the cat sat on the mat"),
            Example("b", "tec", ["a dog run in the park today"], reference="the cat sat on the mat"),
        ],
    )
    common = {
        "data__train": [str(data)],
        "tasks": ["asr", "tec"],
        "aux_loss_coef": 0.0,  # the balancing loss is not linear in the batch
        "optim__warmup_steps": 0,
        "optim__schedule": "constant",
        "optim__epochs": 1,
        "optim__max_steps": 1,
        "run__save_dtype": "float32",
    }
    runs = {}
    for name, budget, accumulate in (("full", 10_000, 1), ("accumulated", 1, 2)):
        config = write_config(
            tmp_path / name, **common, optim__tokens_per_batch=budget, optim__grad_accum=accumulate
        )
        with counted_optimizer_steps() as steps:
            runs[name] = train(load_config(config))
        assert steps[0] == 1, name
    full, accumulated = (read_metrics(tmp_path / name / "run")[-1] for name in ("full", "accumulated"))
    assert accumulated["loss"] == pytest.approx(full["loss"], rel=1e-5)
    assert accumulated["grad_norm"] == pytest.approx(full["grad_norm"], rel=1e-4)
    full_weights = load_file(runs["full"] / "model.safetensors")
    accumulated_weights = load_file(runs["accumulated"] / "model.safetensors")
    for name, tensor in full_weights.items():
        torch.testing.assert_close(accumulated_weights[name], tensor, rtol=0, atol=1e-5, msg=name)


# --- loading without neko -----------------------------------------------------------------------------------

PLAIN_TRANSFORMERS = """
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path, prompt = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
with torch.no_grad():
    output = model.generate(
        torch.tensor([prompt]), max_new_tokens=6, do_sample=False, num_beams=1,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
print(json.dumps({
    "ids": output[0, len(prompt):].tolist(),
    "eos": tokenizer.eos_token_id,
    "type": type(model).__name__,
    "neko_modules": sorted(m for m in sys.modules if m.split(".")[0] == "neko"),
}))
"""


def _trained_model(tmp_path: Path) -> Path:
    return train(load_config(write_config(tmp_path, optim__max_steps=2)))


def _bundled_model(tmp_path: Path) -> Path:
    bundled = REPOSITORY / "models" / "neko-tiny"
    if not (bundled / "model.safetensors").exists():
        pytest.skip(f"{bundled} is not installed")
    return bundled


@pytest.mark.parametrize("make", [_trained_model, _bundled_model], ids=["trainer-output", "neko-tiny"])
def test_a_saved_model_loads_and_generates_in_a_process_without_neko(tmp_path, make):
    model_dir = make(tmp_path)
    corrector = Corrector.from_pretrained(model_dir, device="cpu")
    prompt = corrector.tokenizer.encode(get_task("asr").render_prompt(["the cat sat on the mat"]))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_TRANSFORMERS, str(model_dir), json.dumps(prompt)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    plain = json.loads(result.stdout.splitlines()[-1])
    assert plain["neko_modules"] == [] and plain["type"] == "MixtralForCausalLM"
    ids = plain["ids"]
    ids = ids[: ids.index(plain["eos"])] if plain["eos"] in ids else ids
    [ours] = generate(
        corrector.model, [prompt], pad_id=corrector.pad_id, eos_id=corrector.eos_id, max_new_tokens=6
    )
    assert ids == ours.ids  # at inference neko routes exactly as stock transformers
