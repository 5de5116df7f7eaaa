"""Tiny neko model directories (random Mixtral + byte-level BPE), and a way to script their outputs.

`make_model_dir(path)` writes what the trainer writes (see `neko.correct.model_dir`): HF model files,
a fast tokenizer whose markers are special tokens, and `neko.json`. The model is random, so it writes
junk: exactly what the safety valve is for. `script_outputs` makes it write chosen tokens instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    MistralConfig,
    MistralForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    PreTrainedTokenizerFast,
)

from neko.correct.gate import GateRule
from neko.correct.model_dir import ModelInfo, write_model_info
from neko.data.schema import Example
from neko.moe import ExpertAssignment
from neko.tasks import END_MARKER, special_tokens

TASKS = ("asr", "st", "ocr", "tec")
OPEN_GATE = GateRule(accept_margin=-100.0, require_support=False)
"""A gate rule that takes any output the valve passes (a finite margin, so that neko.json holds it)."""
PAD = "<|pad|>"
SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "the cat sat on the mat and the dog sat on the log",
    "hola mundo, el gato duerme en la casa",
    "The Cat Sat. He goes home; they went home!",
    "numbers 0 1 2 3 4 5 6 7 8 9 and more words",
)
TINY_MODEL = dict(
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
)


def tiny_tokenizer(tasks: Sequence[str] = TASKS, vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE with neko's markers (and `<|pad|>`) as special tokens; END_MARKER is EOS."""
    markers = special_tokens(tasks)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, *markers],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(SENTENCES) * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=END_MARKER,
        pad_token=PAD,
        additional_special_tokens=[m for m in markers if m != END_MARKER],
    )


def make_model_dir(
    path: str | Path,
    tasks: Sequence[str] = TASKS,
    *,
    num_experts: int = 4,
    dense: bool = False,
    strategy: str = "task_guided",
    prompt_style: str = "compact",
    max_source_tokens: int = 96,
    max_new_tokens: int = 12,
    max_hypotheses: int | None = None,
    custom_tasks: Sequence[dict] = (),
    seed: int = 0,
    open_gate: bool = False,
) -> Path:
    """Write a tiny model directory at `path`: Mixtral with `num_experts` experts (or a dense Mistral).
    Its correction gate is untuned (every task keeps its 1-best), or with `open_gate` takes every
    output the safety valve passes, as for a model whose tuning found that safe."""
    path = Path(path)
    tokenizer = tiny_tokenizer(tasks)
    common = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **TINY_MODEL,
    )
    torch.manual_seed(seed)
    if dense:
        model = MistralForCausalLM(MistralConfig(**common))
    else:
        model = MixtralForCausalLM(
            MixtralConfig(num_local_experts=num_experts, num_experts_per_tok=2, **common)
        )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    assignment = None if dense else ExpertAssignment.random(list(tasks), num_experts, seed)
    info = ModelInfo(
        tasks=list(tasks),
        assignment=assignment,
        strategy="dense" if dense else strategy,
        prompt_style=prompt_style,
        max_source_tokens=max_source_tokens,
        max_new_tokens=max_new_tokens,
        max_hypotheses=max_hypotheses,
        custom_tasks=[dict(spec) for spec in custom_tasks],
        gate={task: OPEN_GATE for task in tasks} if open_gate else {},
    )
    write_model_info(path, info)
    return path


def script_outputs(model: torch.nn.Module, token_ids: Sequence[int]) -> Callable[[], None]:
    """Make generation emit `token_ids` (the last one repeats) in every row, whatever the engine;
    returns the undo function.

    Each position's logits boost the scripted token of the output place it predicts: its position id
    minus its row's prompt length, plus one. The prompts are what the passes over an empty cache (or
    without one) fed; the engines keep their columns first in the attention mask, left-padded to the
    widest. Logits come per row and position, or (copy engine) flattened over the fed positions, those
    whose mask column of this pass is set.
    """
    script = torch.tensor(list(token_ids))
    state: dict[str, torch.Tensor | int | bool] = {}

    def before(module, args, kwargs):
        input_ids = kwargs["input_ids"] if kwargs.get("input_ids") is not None else args[0]
        batch, width = input_ids.shape
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = 0 if cache is None else cache.get_seq_length()
        mask = kwargs.get("attention_mask")
        if mask is None:  # transformers leaves it out where nothing is padded
            mask = torch.ones(batch, past + width, dtype=torch.long)
        if cache is None:  # a pass without cache (scoring) is a prompt of its own
            prompt_width = mask.shape[1]
        elif past == 0:  # a prompt pass; an engine may run a batch's prompts in several (the widest counts)
            width_so_far = 0 if state.get("decoding", True) else state["prompt_width"]
            state["prompt_width"] = prompt_width = max(width_so_far, mask.shape[1])
            state["decoding"] = False
        else:
            state["decoding"] = True
            prompt_width = state["prompt_width"]
        prompt_lengths = mask[:, :prompt_width].sum(-1)
        positions = kwargs.get("position_ids")
        if positions is None:
            positions = (mask.cumsum(-1) - 1)[:, -width:]
        state["place"] = positions.expand(batch, -1) - prompt_lengths[:, None] + 1
        state["fed"] = mask[:, -width:].bool()

    def on_logits(module, args, logits):
        place = state["place"]
        place = place[state["fed"]] if logits.dim() == 2 else place[:, -logits.shape[1] :]
        boosted = script[place.clamp(0, len(script) - 1)].to(logits.device)
        return logits.scatter_add(-1, boosted[..., None], torch.full_like(logits[..., :1], 1e4))

    handles = [
        model.base_model.register_forward_pre_hook(before, with_kwargs=True),
        model.get_output_embeddings().register_forward_hook(on_logits),
    ]
    return lambda: [handle.remove() for handle in handles]


def random_inputs(count: int, seed: int) -> list[Example]:
    """N-best lists of word-level edits of the fixture sentences, of varied lengths and sizes."""
    rng = random.Random(seed)
    words = " ".join(SENTENCES).split()
    examples = []
    for i in range(count):
        best = rng.choice(SENTENCES).split()[: rng.randint(2, 9)]
        nbest = [" ".join(best)]
        for _ in range(rng.randint(0, 3)):
            edited = list(best)
            edited[rng.randrange(len(edited))] = rng.choice(words)
            nbest.append(" ".join(edited))
        examples.append(Example(str(i), rng.choice(["asr", "ocr", "tec"]), nbest))
    return examples
