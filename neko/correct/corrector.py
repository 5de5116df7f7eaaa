"""`Corrector`: a trained neko model that corrects, scores and reranks recognizer hypotheses.

    corrector = Corrector.from_pretrained("runs/neko-small/model")
    corrections = corrector.correct(examples)                       # Examples carry their task
    corrector.correct([["helo world", "hello word"]], task="asr")   # or plain N-best lists
    corrector.rerank(examples)                                      # the most likely hypothesis
    corrector.routing_stats(examples).to_dict()                     # which experts each task uses

Inputs are `Example`s, N-best lists (best first) or single strings; `task=` sets the task of every
input (it overrides `Example.task`). Results come back in input order; batches are formed by prompt
length. Prompts longer than `max_source_tokens` lose their worst hypotheses first, then the end of the
best one, with a warning (`neko.correct.prompts`). Degenerate outputs are caught by the safety valve
(`neko.correct.safety`), and the correction gate (`neko.correct.gate`) decides per example whether the
model's output, the rerank pick or the 1-best is used; `last_fallbacks` counts the corrections that
did not use the model's output, per reason, for the latest `correct` call.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from neko.correct.engines import DEFAULT_ENGINE, check_engine, pick_engine
from neko.correct.gate import Evidence, GateRule, choose, supported
from neko.correct.lm import Generated, Hopeless, LanguageModel, PromptScores, length_batches
from neko.correct.model_dir import ModelInfo, check_model_files, read_model_info, resolve_model_dir
from neko.correct.prompts import Prompt, build_prompt, decode, decode_start, encode
from neko.correct.safety import SafetyValve
from neko.correct.spacing import Spacing, match_spacing, match_spacing_start
from neko.correct.tokenizer import load_tokenizer
from neko.data.schema import Example
from neko.errors import NekoError
from neko.tasks import END_MARKER, Task, check_no_marker, get_task

if TYPE_CHECKING:
    import torch

    from neko.moe import RoutingStats

Inputs = Sequence[Example | Sequence[str] | str]
"""What the methods accept: Examples, N-best lists (best first), or single hypotheses."""


@dataclass(frozen=True)
class Correction:
    """The correction of one input.

    `text` is what to use; `decision` (one of `neko.correct.gate.DECISIONS`) says what it is: the
    model's output (`model`, or `unchanged` when that is the 1-best), the hypothesis the model ranks
    first (`rerank`) or the 1-best (`1-best`). `fell_back` is true for the last two, with `reason`: a
    degeneracy of the safety valve (`neko.correct.safety.REASONS`) or the gate's refusal. `output` is
    the model's own output, as far as it was written (see `Corrector.correct`); `evidence` what the
    gate decided on (None unless asked for).
    """

    id: str
    task: str
    text: str
    fell_back: bool = False
    reason: str | None = None
    output: str = ""
    decision: str = "model"
    evidence: Evidence | None = None


@dataclass(frozen=True)
class _Item:
    id: str
    task: Task
    hypotheses: list[str]
    prompt: Prompt


class Corrector:
    """A correction model with its tokenizer and `neko.json` settings (`ModelInfo`). `model` is a
    transformers causal LM, run by the torch engine `engine` (one of `neko.correct.engines.ENGINES`;
    `auto`: copy), or a `neko.correct.lm.LanguageModel` that is its own engine (e.g. the onnx engine's
    `OnnxLM`); the tokenizer is transformers' fast one or `neko.correct.tokenizer.Tokenizer`."""

    def __init__(
        self,
        model: torch.nn.Module | LanguageModel,
        tokenizer,
        info: ModelInfo,
        name: str = "the model",
        engine: str = DEFAULT_ENGINE,
    ) -> None:
        self.tokenizer = tokenizer
        self.info = info
        self.name = name
        self.eos_id = tokenizer.convert_tokens_to_ids(END_MARKER)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.model: torch.nn.Module | None = None
        """The torch model (None when a `LanguageModel` such as the onnx engine's runs it)."""
        if hasattr(model, "score_after_prompts"):
            self.lm: LanguageModel = model
        else:
            self.model = model.eval()
            if info.routing_strategy is not None and not hasattr(model, "neko_guidance"):
                from neko.moe import apply_task_guidance

                apply_task_guidance(model, info.assignment, info.routing_strategy)
            self.lm = self._torch_lm(engine)
        self.last_fallbacks: Counter[str] = Counter()
        self.progress: Callable[[int], None] | None = None
        """Called with the number of inputs done after each batch of `correct` (e.g. a progress bar)."""
        self._separators = list(tokenizer.all_special_ids)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str = DEFAULT_ENGINE,
        threads: int | None = None,
        inputs: int | None = None,
    ) -> Corrector:
        """Load a model directory or a bundled model by name (None: the default model;
        `resolve_model_dir`) on `device` (None or "auto": CUDA when available). `dtype` overrides
        the checkpoint's. `engine` `onnx` runs the directory's `model.onnx` on the CPU with `threads`
        (None: one per core); `auto` picks by the number of `inputs` to come
        (`neko.correct.engines.pick_engine`; None: `copy`, except on an ONNX export's folder) and,
        should the export be stale, warns and takes `copy`."""
        path = resolve_model_dir(path)
        chosen = pick_engine(engine, path, inputs, device=None if device is None else str(device))
        check_model_files(path, onnx=chosen == "onnx")
        info = read_model_info(path)
        tokenizer = load_tokenizer(path, info.prompt_style, info.tasks)
        if chosen == "onnx":
            from neko.correct.onnx_lm import OnnxLM, StaleExport

            if device is not None and str(device) not in ("auto", "cpu"):  # a torch.device("cpu") too
                raise NekoError(
                    f"the onnx engine runs on the CPU, not on {device!r}; use --engine copy there"
                )
            try:
                return cls(OnnxLM(path, threads), tokenizer, info, name=str(path))
            except StaleExport as error:
                if engine != "auto":
                    raise
                warnings.warn(f"{error}; correcting with the copy engine meanwhile", stacklevel=2)
                chosen = "copy"
        from neko.correct.torch_lm import load_model, resolve_device

        model = load_model(path, resolve_device(device), dtype)
        return cls(model, tokenizer, info, name=str(path), engine=chosen)

    @property
    def engine(self) -> str:
        return self.lm.engine

    @engine.setter
    def engine(self, engine: str) -> None:
        self.lm = self._torch_lm(engine)

    def _torch_lm(self, engine: str) -> LanguageModel:
        if check_engine(engine) == "onnx" or self.model is None:
            raise NekoError(
                f"{self.name}: the onnx engine and the torch engines are chosen when loading "
                "(Corrector.from_pretrained(path, engine=...))"
            )
        from neko.correct.torch_lm import TorchLM

        return TorchLM(self.model, "copy" if engine == "auto" else engine)

    @property
    def device(self) -> torch.device | str:
        """Where the model runs: the torch model's device, or "cpu" for the onnx engine."""
        return "cpu" if self.model is None else next(self.model.parameters()).device

    @property
    def tasks(self) -> list[str]:
        return list(self.info.tasks)

    # -----------------------------------------------------------------------------------------------

    def correct(
        self,
        examples: Inputs,
        task: str | None = None,
        *,
        num_beams: int = 1,
        batch_size: int = 16,
        max_new_tokens: int | None = None,
        max_source_tokens: int | None = None,
        safety_valve: bool | SafetyValve = True,
        gate: bool | GateRule | Mapping[str, GateRule] = True,
        evidence: bool = False,
        full_outputs: bool = False,
    ) -> list[Correction]:
        """Correct every input (greedy, or beam search with `num_beams` > 1); in input order.

        `max_new_tokens`/`max_source_tokens` default to the model's (`neko.json`). `safety_valve`: True
        for the default thresholds with the model's per-task `max_edit_rate` (`neko.json`, see
        `neko tune-gate`), a `SafetyValve` for others, False for no degeneracy check. `gate`: True for
        the model's tuned rules (`neko.json`; an untuned task keeps its 1-best), a `GateRule` for every
        task or a mapping per task, False to take every output the valve passes.

        Only what decides the corrections is computed, unless asked for: the model does not run for
        an input whose gate is closed (`Correction.output` is empty), a copy-aware engine stops
        writing an output the safety valve will refuse whatever follows (`output` is its start), and
        the gate scores only what each task's rule reads (`GateRule.scored_texts`). The corrections
        are the same. `full_outputs` writes every output in full; `evidence` also scores the output
        and every hypothesis of every input and gives each `Correction` what the gate decided on
        (`neko eval` and `neko tune-gate` need it).
        """
        items = self._prepare(examples, task, max_source_tokens)
        return self._correct(
            items, num_beams, batch_size, max_new_tokens, safety_valve, gate, evidence, full_outputs
        )

    def _correct(
        self,
        items: list[_Item],
        num_beams: int = 1,
        batch_size: int = 16,
        max_new_tokens: int | None = None,
        safety_valve: bool | SafetyValve = True,
        gate: bool | GateRule | Mapping[str, GateRule] = True,
        evidence: bool = False,
        full_outputs: bool = False,
    ) -> list[Correction]:
        if num_beams < 1:
            raise NekoError(f"num_beams must be at least 1, got {num_beams}")
        if evidence and gate is False:
            raise NekoError("evidence is what the gate decides on: it needs a gate (gate=True or a GateRule)")
        full_outputs = full_outputs or evidence
        rules = None if gate is False else [self._gate_rule(item.task.name, gate) for item in items]
        valves = [self._valve(item.task.name, safety_valve) for item in items]
        texts, reasons = self._outputs(
            items,
            valves,
            [full_outputs or rules is None or rules[i].uses_output for i in range(len(items))],
            num_beams,
            batch_size,
            max_new_tokens or self.info.max_new_tokens,
            full_outputs,
        )
        if rules is None:
            corrections = [
                Correction(
                    item.id,
                    item.task.name,
                    item.hypotheses[0] if reason else text,
                    reason is not None,
                    reason,
                    text,
                    "1-best" if reason else "model",
                )
                for item, text, reason in zip(items, texts, reasons, strict=True)
            ]
        else:
            found = self._evidence(items, texts, reasons, batch_size, None if evidence else rules)
            corrections = [
                self._decide(item, item_evidence, rule, evidence)
                for item, item_evidence, rule in zip(items, found, rules, strict=True)
            ]
        self.last_fallbacks = Counter(c.reason for c in corrections if c.fell_back)
        return corrections

    def _outputs(
        self,
        items: list[_Item],
        valves: list[SafetyValve | None],
        wanted: list[bool],
        num_beams: int,
        batch_size: int,
        max_new_tokens: int,
        full_outputs: bool,
    ) -> tuple[list[str], list[str | None]]:
        """The model's output for each `wanted` item ("" for the others) and why its valve refuses it
        (None: it passes); without `full_outputs`, outputs the valve will refuse are abandoned early."""
        texts: list[str] = [""] * len(items)
        reasons: list[str | None] = [None] * len(items)
        written = [i for i in range(len(items)) if wanted[i]]
        if self.progress is not None and len(written) < len(items):
            self.progress(len(items) - len(written))
        for batch in length_batches([len(items[i].prompt.ids) for i in written], batch_size):
            rows = [written[k] for k in batch]
            generated = self.lm.generate(
                [items[i].prompt.ids for i in rows],
                pad_id=self.pad_id,
                eos_id=self.eos_id,
                max_new_tokens=max_new_tokens,
                num_beams=num_beams,
                separators=self._separators,
                hopeless=None
                if full_outputs
                else self._hopeless([items[i] for i in rows], [valves[i] for i in rows]),
            )
            if self.progress is not None:
                self.progress(len(rows))
            for i, result in zip(rows, generated, strict=True):
                texts[i], reasons[i] = self._judge(items[i], result, valves[i])
        return texts, reasons

    def _judge(self, item: _Item, result: Generated, valve: SafetyValve | None) -> tuple[str, str | None]:
        """An output's text and why `valve` refuses it (None: it passes, or there is no valve); an
        abandoned output is its start, refused for what made it hopeless."""
        best = item.hypotheses[0]
        if result.abandoned:
            start = match_spacing_start(decode_start(self.tokenizer, result.ids), best)
            return start, valve.certain_refusal(start, best, item.hypotheses) if valve else None
        text = match_spacing(decode(self.tokenizer, result.ids).strip(), best)
        return text, valve.check(text, best, result.finished, item.hypotheses) if valve else None

    def _hopeless(self, items: list[_Item], valves: list[SafetyValve | None]) -> Hopeless | None:
        """Which rows of a batch of `items` their valves will refuse whatever follows."""
        if all(valve is None for valve in valves):
            return None

        spacings = [Spacing.of(item.hypotheses[0]) for item in items]  # read once, not at every step

        def hopeless(row: int, ids: Sequence[int]) -> bool:
            valve, hypotheses = valves[row], items[row].hypotheses
            if valve is None:
                return False
            start = match_spacing_start(decode_start(self.tokenizer, ids), hypotheses[0], spacings[row])
            return valve.certain_refusal(start, hypotheses[0], hypotheses) is not None

        return hopeless

    def _valve(self, task: str, safety_valve: bool | SafetyValve) -> SafetyValve | None:
        """The degeneracy check of `task`'s outputs (None: none); True: the default thresholds with
        the model's `max_edit_rate` for the task (neko.json)."""
        if safety_valve is False:
            return None
        if safety_valve is True:
            return SafetyValve(max_edit_rate=self.info.max_edit_rate.get(task, SafetyValve.max_edit_rate))
        return safety_valve

    def _evidence(
        self,
        items: list[_Item],
        outputs: list[str],
        reasons: list[str | None],
        batch_size: int,
        rules: list[GateRule] | None = None,
    ) -> list[Evidence]:
        """What the gate decides on (`neko.correct.gate`): scores of each output and hypothesis as the
        answer, the familiarity of each prompt, N-best support of each change. With `rules`, only
        what each input's rule needs is scored (`GateRule.scored_texts`), and every hypothesis only
        where a rerank is still possible after that (`GateRule.may_rerank`): the rest is the 1-best
        (`pick`) or NaN (`margin`, `rerank_margin`, `familiarity`), which its rule never reads."""
        every = [[output, *item.hypotheses] for item, output in zip(items, outputs, strict=True)]
        if rules is None:
            return self._evidence_of(items, outputs, reasons, every, batch_size)[0]
        first = [
            rules[i].scored_texts(output, item.hypotheses, reasons[i])
            for i, (item, output) in enumerate(zip(items, outputs, strict=True))
        ]
        evidence, best_scores = self._evidence_of(items, outputs, reasons, first, batch_size)
        again = [
            i for i, found in enumerate(evidence) if first[i] and rules[i].may_rerank(found, best_scores[i])
        ]
        rescored, _ = self._evidence_of(
            [items[i] for i in again],
            [outputs[i] for i in again],
            [reasons[i] for i in again],
            [every[i] for i in again],
            batch_size,
        )
        for i, found in zip(again, rescored, strict=True):
            evidence[i] = found
        return evidence

    def _evidence_of(
        self,
        items: list[_Item],
        outputs: list[str],
        reasons: list[str | None],
        texts: list[list[str]],
        batch_size: int,
    ) -> tuple[list[Evidence], list[float]]:
        """The evidence of each output with `texts` scored (the output's and the 1-best's scores NaN
        when not among them; `pick` the best of the hypotheses scored, else the 1-best), and the
        1-best's score."""
        scored = [i for i, wanted in enumerate(texts) if wanted]
        found: list[PromptScores] = [PromptScores([], math.nan)] * len(items)
        for i, scores in zip(
            scored,
            self._score_texts(
                [items[i] for i in scored], [texts[i] for i in scored], batch_size, with_familiarity=True
            ),
            strict=True,
        ):
            found[i] = scores
        evidence, best_scores = [], []
        for item, output, reason, wanted, scores in zip(items, outputs, reasons, texts, found, strict=True):
            by_text = dict(zip(wanted, scores.targets, strict=True))
            ranked = [(by_text[h], -k, h) for k, h in enumerate(item.hypotheses) if h in by_text]
            best_score = by_text.get(item.hypotheses[0], math.nan)
            top_score, _, pick = max(ranked) if ranked else (math.nan, 0, item.hypotheses[0])
            output_score = by_text.get(output, math.nan)
            evidence.append(
                Evidence(
                    output=output,
                    best=item.hypotheses[0],
                    pick=pick,
                    margin=output_score - best_score,
                    rerank_margin=top_score - best_score,
                    familiarity=scores.familiarity,
                    supported=supported(output, item.hypotheses),
                    valve_reason=reason,
                    confidence=output_score,
                )
            )
            best_scores.append(best_score)
        return evidence, best_scores

    def _gate_rule(self, task: str, gate: bool | GateRule | Mapping[str, GateRule]) -> GateRule:
        if gate is True:
            return self.info.gate.get(task, GateRule.closed())
        if isinstance(gate, GateRule):
            return gate
        return gate.get(task, GateRule.closed())

    @staticmethod
    def _decide(item: _Item, evidence: Evidence, rule: GateRule, keep_evidence: bool = True) -> Correction:
        decision, reason = rule.decide(evidence)
        return Correction(
            item.id,
            item.task.name,
            choose(evidence, decision),
            decision in ("rerank", "1-best"),
            reason,
            evidence.output,
            decision,
            evidence if keep_evidence else None,
        )

    def fallback_target(self, corrections: Sequence[Correction]) -> str:
        """What the corrections that fell back were replaced by ("the 1-best", "the rerank", or both),
        for messages."""
        kinds = {c.decision for c in corrections if c.fell_back}
        return " or ".join(f"the {kind}" for kind in sorted(kinds or {"1-best"}))

    def score(
        self,
        examples: Inputs,
        task: str | None = None,
        *,
        batch_size: int = 16,
        max_source_tokens: int | None = None,
        per_token: bool = False,
    ) -> list[list[float]]:
        """Per input, each hypothesis's log-likelihood as the model's output for the prompt: the sum of
        the token log-probabilities of `task.render_target(hypothesis)` (end marker included), or
        with `per_token` their mean."""
        return self._score(self._prepare(examples, task, max_source_tokens), batch_size, per_token)

    def _score(self, items: list[_Item], batch_size: int, per_token: bool = False) -> list[list[float]]:
        found = self._score_texts(items, [item.hypotheses for item in items], batch_size, per_token)
        return [scores.targets for scores in found]

    def _score_texts(
        self,
        items: list[_Item],
        texts: list[list[str]],
        batch_size: int,
        per_token: bool = True,
        with_familiarity: bool = False,
    ) -> list[PromptScores]:
        """Per item, the log-likelihood of each of its `texts` as the model's answer to its prompt
        (mean per token with `per_token`, else the sum; a text repeated within an item is scored once)
        and, `with_familiarity`, the mean token log-probability of the prompt as text, markers left out.
        Each prompt runs once, in batches of `batch_size` by length; its answers continue from it."""
        skip_ids = self.tokenizer.all_special_ids if with_familiarity else None
        results: list[PromptScores] = [PromptScores([])] * len(items)
        for batch in length_batches([len(item.prompt.ids) for item in items], batch_size):
            unique = [list(dict.fromkeys(texts[i])) for i in batch]
            targets = [
                [self._target_ids(items[i], text) for text in row]
                for i, row in zip(batch, unique, strict=True)
            ]
            found = self.lm.score_after_prompts(
                [items[i].prompt.ids for i in batch],
                targets,
                pad_id=self.pad_id,
                rows_per_pass=batch_size,
                familiarity_skip_ids=skip_ids,
            )
            for i, row, row_targets, scores in zip(batch, unique, targets, found, strict=True):
                by_text = {
                    text: value / len(target) if per_token else value
                    for text, target, value in zip(row, row_targets, scores.targets, strict=True)
                }
                results[i] = PromptScores([by_text[text] for text in texts[i]], scores.familiarity)
        return results

    def _target_ids(self, item: _Item, text: str) -> list[int]:
        """Token ids of `text` written as the model's answer for `item` (end marker included)."""
        return encode(self.tokenizer, item.task.render_target(text, self.info.prompt_style))

    def rerank(
        self,
        examples: Inputs,
        task: str | None = None,
        *,
        batch_size: int = 16,
        max_source_tokens: int | None = None,
        per_token: bool = True,
    ) -> list[str]:
        """Per input, the hypothesis the model finds most likely (`score`); ties go to the better-ranked.
        `per_token` compares mean token log-probabilities: summed ones favour short hypotheses, such as
        an OCR reading that lost words."""
        return self._pick(self._prepare(examples, task, max_source_tokens), batch_size, per_token)

    def _pick(self, items: list[_Item], batch_size: int, per_token: bool) -> list[str]:
        scores = self._score(items, batch_size, per_token)
        return [
            item.hypotheses[max(range(len(values)), key=lambda k, v=values: (v[k], -k))]
            for item, values in zip(items, scores, strict=True)
        ]

    def routing_stats(
        self,
        examples: Inputs,
        task: str | None = None,
        *,
        outputs: Sequence[str | Correction] | None = None,
        batch_size: int = 16,
        max_source_tokens: int | None = None,
        **correct_options,
    ) -> RoutingStats:
        """Which experts each task's tokens use: prompts followed by outputs, run through the model in
        eval mode with tokens labelled by task. `outputs` (strings or `Correction`s, whose model output is
        used) default to fresh `correct` outputs (`correct_options` go there). Needs an MoE model with an
        expert assignment, on a torch engine; every task of the inputs must own an expert."""
        from neko.correct.generation import collect_routing
        from neko.moe import RoutingStats
        from neko.moe.routing import find_routers

        if self.model is None:
            raise NekoError(
                f"{self.name}: routing statistics need the torch model, not the {self.engine} engine"
            )
        assignment = self.info.assignment
        if assignment is None:
            raise NekoError(
                f"{self.name} is a dense model (no expert assignment): it has no routing statistics"
            )
        items = self._prepare(examples, task, max_source_tokens)
        task_ids = [assignment.task_id(item.task.name) for item in items]
        if outputs is None:
            # the routing of what the model writes, in full: abandoned rows would show only their start
            outputs = self._correct(items, batch_size=batch_size, **{**correct_options, "full_outputs": True})
        if len(outputs) != len(items):
            raise NekoError(f"routing_stats got {len(outputs)} outputs for {len(items)} inputs")
        texts = [o.output if isinstance(o, Correction) else o for o in outputs]
        rows = [
            item.prompt.ids + self._target_ids(item, text) for item, text in zip(items, texts, strict=True)
        ]
        layers = [layer for layer, _ in find_routers(self.model)]
        stats = RoutingStats(assignment.tasks, max(layers) + 1, assignment.num_experts)
        was_training = self.model.training
        self.model.eval()
        try:
            for batch in length_batches([len(row) for row in rows], batch_size):
                collect_routing(
                    self.model,
                    [rows[i] for i in batch],
                    [task_ids[i] for i in batch],
                    stats,
                    pad_id=self.pad_id,
                )
        finally:
            self.model.train(was_training)
        return stats

    # -----------------------------------------------------------------------------------------------

    def _task(self, name: str) -> Task:
        task = get_task(name)
        if name not in self.info.tasks:
            raise NekoError(
                f"{self.name} was not trained for task {name!r}; its tasks: {', '.join(self.tasks)}"
            )
        return task

    def _prepare(self, examples: Inputs, task: str | None, max_source_tokens: int | None) -> list[_Item]:
        if isinstance(examples, (str, Example)):
            raise NekoError("pass a list of inputs (Examples, N-best lists or strings), not a single one")
        override = self._task(task) if task is not None else None
        limit = max_source_tokens or self.info.max_source_tokens
        items = []
        for index, example in enumerate(examples):
            if isinstance(example, Example):
                example_id, name, hypotheses = example.id, example.task, list(example.hypotheses)
            elif isinstance(example, str):
                example_id, name, hypotheses = str(index), None, [example]
            elif isinstance(example, Sequence) and all(isinstance(h, str) for h in example):
                example_id, name, hypotheses = str(index), None, list(example)
            else:
                raise NekoError(
                    f"input {index}: expected an Example, a list of hypotheses or a string, "
                    f"got {type(example).__name__}"
                )
            for rank, hypothesis in enumerate(hypotheses):
                check_no_marker(hypothesis, f"input {example_id}: hypothesis {rank}")
            if override is not None:
                task_of = override
            elif name is None:
                raise NekoError(
                    f"plain hypothesis lists need task=; {self.name} knows {', '.join(self.tasks)}"
                )
            else:
                task_of = self._task(name)
            if not hypotheses:
                raise NekoError(f"example {example_id!r} has no hypotheses; it needs at least one")
            # the prompt shows at most the N-best size the model was trained on; all are scored
            shown = hypotheses[: self.info.max_hypotheses]
            prompt = build_prompt(self.tokenizer, task_of, shown, self.info.prompt_style, limit)
            items.append(_Item(example_id, task_of, hypotheses, prompt))
        _warn_truncated(items, limit)
        return items


def _warn_truncated(items: list[_Item], limit: int) -> None:
    truncated = [item for item in items if item.prompt.truncated]
    if not truncated:
        return
    dropped = sum(item.prompt.total - item.prompt.kept for item in truncated)
    cut = sum(item.prompt.cut for item in truncated)
    warnings.warn(
        f"{len(truncated)} of {len(items)} prompts were longer than max_source_tokens={limit}: "
        f"dropped {dropped} worst hypotheses, cut the best hypothesis of {cut} "
        f"(first: {truncated[0].id!r})",
        stacklevel=4,
    )
