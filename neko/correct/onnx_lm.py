"""The `onnx` engine: a model's ONNX export (`neko export --to onnx`) on ONNX Runtime, no torch.

It exists for start-up: a correction that imports neither torch nor transformers begins in well under
a second, where importing them alone takes seconds; for a handful of inputs that is most of the time.
The graph has no KV cache (`neko.correct.onnx_export`), so every pass runs whole rows again, and it
runs every expert on every token: on large batches the torch engines are faster.

Decoding is copy-aware greedy search, as the `copy` engine's: each pass runs every row's prompt,
output so far and draft (`neko.correct.drafts`) and keeps the draft's longest prefix that greedy
search would have written, plus the model's next token; so the outputs are greedy search's. A copied
output of n tokens takes about n / 9 passes. Scoring runs each prompt followed by each answer as one
row; the familiarity comes from the prompt's part of its first row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neko.correct.drafts import DRAFT_TOKENS, NGRAM, DraftRow, PromptLookup, copy_sources
from neko.correct.engines import ONNX_MODEL_FILE as MODEL_FILE
from neko.correct.lm import Generated, Hopeless, PromptScores
from neko.errors import NekoError, first_line

INPUTS = ("input_ids", "attention_mask", "logit_index")
OUTPUT = "logits"
"""The graph's inputs and output (`neko.correct.onnx_export` names them so)."""
WEIGHTS_KEY = "neko_weights_sha256"
"""Metadata of the export: the digest of the weights it was made from (`weights_digest`)."""
RUNTIME_HINT = "pip install onnxruntime (a dependency of neko)"


class StaleExport(NekoError):
    """`model.onnx` was exported from other weights than its directory holds."""


def weights_digest(model_dir: Path) -> str | None:
    """SHA-256 over the directory's safetensors files, in name order (None when it has none)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class OnnxLM:
    """`model.onnx` of a model directory (or export folder) on ONNX Runtime's CPU provider; `threads`
    None: its default (one per core). Idle threads sleep instead of spinning, as torch's do under
    `OMP_WAIT_POLICY=PASSIVE`: on a shared machine spinning threads slowed a correction by half."""

    engine = "onnx"

    def __init__(self, model_dir: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise NekoError(
                f"the onnx engine needs ONNX Runtime, which is not installed: {RUNTIME_HINT}"
            ) from None
        path = model_dir / MODEL_FILE
        if not path.is_file():
            raise NekoError(
                f"{model_dir}: has no {MODEL_FILE} for the onnx engine; write it with "
                f"`neko export {model_dir} {model_dir} --to onnx`, or use --engine copy"
            )
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ONNX Runtime raises its own exception types for a malformed file
            raise NekoError(f"{path}: cannot load the ONNX model ({first_line(error)})") from None
        exported_from = self.session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)
        current = weights_digest(model_dir)
        if current is not None and exported_from != current:
            raise StaleExport(
                f"{path}: was not exported from this directory's weights (they changed since); export it "
                f"again with `neko export {model_dir} {model_dir} --to onnx`"
            )

    def _logits(self, rows: Sequence[Sequence[int]], pad_id: int, kept: int) -> np.ndarray:
        """Logits `(rows, kept, vocab)` at the last `kept` positions of the left-padded `rows`."""
        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for k, row in enumerate(rows):
            ids[k, width - len(row) :] = row
            mask[k, width - len(row) :] = 1
        index = np.broadcast_to(np.arange(width - kept, width, dtype=np.int64), (len(rows), kept))
        feed = dict(zip(INPUTS, (ids, mask, np.ascontiguousarray(index)), strict=True))
        (logits,) = self.session.run([OUTPUT], feed)
        return logits

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        pad_id: int,
        eos_id: int,
        max_new_tokens: int,
        num_beams: int = 1,
        separators: Sequence[int] = (),
        hopeless: Hopeless | None = None,
    ) -> list[Generated]:
        if num_beams != 1:
            raise NekoError(
                "the onnx engine decodes greedily; beam search (--beams > 1) needs --engine transformers"
            )
        rows = [
            DraftRow(i, PromptLookup(copy_sources(prompt, separators, eos_id), NGRAM), hopeless)
            for i, prompt in enumerate(prompts)
        ]
        active = list(rows)
        while active:
            drafts = [
                row.lookup.draft(row.tokens, min(DRAFT_TOKENS, max_new_tokens - len(row.tokens) - 1))
                for row in active
            ]
            fed = [
                [*prompts[row.index], *row.tokens, *draft] for row, draft in zip(active, drafts, strict=True)
            ]
            logits = self._logits(fed, pad_id, kept=1 + max(len(draft) for draft in drafts))
            for k, (row, draft) in enumerate(zip(active, drafts, strict=True)):
                # the predictions after the last kept token and after each draft token
                greedy = logits[k, logits.shape[1] - len(draft) - 1 :].argmax(-1).tolist()
                accepted = 0
                while accepted < len(draft) and greedy[accepted] == draft[accepted]:
                    accepted += 1
                row.take(greedy[: accepted + 1], eos_id, max_new_tokens)
            active = [row for row in active if not row.done(max_new_tokens)]
        return [row.result() for row in rows]

    def score_after_prompts(
        self,
        prompts: Sequence[Sequence[int]],
        targets: Sequence[Sequence[Sequence[int]]],
        *,
        pad_id: int,
        rows_per_pass: int,
        familiarity_skip_ids: Sequence[int] | None = None,
    ) -> list[PromptScores]:
        pairs = [(p, j) for p, row in enumerate(targets) for j in range(len(row))]
        scores: dict[tuple[int, int], float] = {}
        for start in range(0, len(pairs), rows_per_pass):
            chunk = pairs[start : start + rows_per_pass]
            kept = 1 + max(len(targets[p][j]) for p, j in chunk)
            logits = self._logits([[*prompts[p], *targets[p][j]] for p, j in chunk], pad_id, kept)
            for k, (p, j) in enumerate(chunk):
                target = targets[p][j]
                # the prompt's last position predicts the target's first token, and so on
                log_probs = _log_softmax(logits[k, kept - len(target) - 1 : kept - 1])
                scores[p, j] = float(log_probs[np.arange(len(target)), target].sum())
        familiarity: list[float | None] = [None] * len(prompts)
        if familiarity_skip_ids is not None:
            familiarity = self._familiarity(prompts, pad_id, rows_per_pass, set(familiarity_skip_ids))
        return [
            PromptScores([scores[p, j] for j in range(len(row))], familiarity[p])
            for p, row in enumerate(targets)
        ]

    def _familiarity(
        self, prompts: Sequence[Sequence[int]], pad_id: int, rows_per_pass: int, skip: set[int]
    ) -> list[float | None]:
        """Per prompt, the mean log-probability of its tokens after the first, each given those before
        it, leaving out the `skip` ids (markers), as `neko.correct.generation.mean_next_token_logprobs`."""
        found: list[float | None] = []
        for start in range(0, len(prompts), rows_per_pass):
            chunk = prompts[start : start + rows_per_pass]
            width = max(len(prompt) for prompt in chunk)
            logits = self._logits(chunk, pad_id, kept=width)
            for k, prompt in enumerate(chunk):
                following = np.asarray(prompt[1:], dtype=np.int64)
                log_probs = _log_softmax(logits[k, width - len(prompt) : width - 1])
                counted = ~np.isin(following, list(skip))
                total = log_probs[np.arange(len(following)), following][counted].sum()
                found.append(float(total / max(int(counted.sum()), 1)))
        return found


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def export_matches(model_dir: Path) -> bool:
    """Whether `model_dir` has a `model.onnx` that ONNX Runtime loads and that was exported from the
    directory's weights (scripts/setup.sh asks, to export again only when needed)."""
    try:
        OnnxLM(model_dir, threads=1)
    except NekoError:
        return False
    return True
