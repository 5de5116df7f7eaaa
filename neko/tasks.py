"""Correction tasks: what a recognizer produced, how it is shown to the model, how it is scored.

A task is data, not code: a name, the metric it is judged by, and two prompt styles. The built-in
tasks are `asr`, `st`, `mt`, `ocr` and `tec`; `register_task` adds a user's own (for example from the
`custom_tasks:` section of a training config), after which every part of neko (routing, training,
correction, evaluation) accepts it by name. The metric a task names (`Task.metric`) decides how the
task is scored: direction, normaliser, references and oracles (`neko.evaluate.metrics.Metric`); a
task with a metric of its own works once `neko.evaluate.metrics.register_metric` knows it.

Prompt styles:
- `compact`: special tokens and nothing else. Models trained from scratch here pay for every token
  of context, and they learn what the markers mean from the data.
- `instruct`: a plain-English instruction with numbered hypotheses, the form large pretrained LMs
  (the reference system fine-tunes Mixtral 8x7B) expect.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from neko.errors import NekoError

PROMPT_STYLES = ("compact", "instruct")

# Markers of the compact style. They are added to the tokenizer as special tokens so that each is
# exactly one token. The tokenizer would also find them inside text, so text written like a marker
# is refused (`check_no_marker`): an input could otherwise end its own prompt or answer.
HYPOTHESIS_MARKER = "<|hyp|>"
ANSWER_MARKER = "<|out|>"
END_MARKER = "<|end|>"
MARKER_PATTERN = re.compile(r"<\|[^|\s]+\|>")
"""Every special token neko's tokenizers add (the markers above, a task's `<|name|>`, `<|pad|>`)."""


def check_no_marker(text: str, where: str) -> None:
    """A one-line error naming `where` when `text` holds something written like a marker."""
    found = MARKER_PATTERN.search(text)
    if found:
        raise NekoError(
            f"{where}: holds {found.group()!r}, written like one of the model's markers (special tokens)"
        )


@dataclass(frozen=True)
class Task:
    """One correction task.

    `metric` is the headline metric of the task (`wer`, `cer`, `bleu`, `gleu`, or one registered with
    `neko.evaluate.metrics.register_metric`); evaluation reports it first. `language` is the language
    of the outputs (`es` for translation into Spanish). `description` fills the instruction prompt:
    "the N-best hypotheses of {description}".
    """

    name: str
    description: str
    output: str
    metric: str
    language: str = "en"

    @property
    def marker(self) -> str:
        """The compact-style token that opens a prompt of this task."""
        return f"<|{self.name}|>"

    def render_prompt(self, hypotheses: Sequence[str], style: str = "compact") -> str:
        """The text the model continues with the correction."""
        if not hypotheses:
            raise NekoError(f"task {self.name}: an example needs at least one hypothesis")
        if style == "compact":
            return self.marker + "".join(HYPOTHESIS_MARKER + h for h in hypotheses) + ANSWER_MARKER
        if style == "instruct":
            numbered = "\n".join(f"{i}. {h}" for i, h in enumerate(hypotheses, start=1))
            shown = (
                f"Below are {len(hypotheses)} hypotheses of {self.description}, best first. "
                "They may contain errors."
                if len(hypotheses) > 1
                else f"Below is the output of {self.description}. It may contain errors."
            )
            heading = self.output[:1].upper() + self.output[1:]  # "Correct Spanish translation", names kept
            return f"{shown} Write the {self.output}, and nothing else.\n\n{numbered}\n\n{heading}:"
        raise NekoError(f"unknown prompt style {style!r}; expected one of {', '.join(PROMPT_STYLES)}")

    def render_target(self, reference: str, style: str = "compact") -> str:
        """The text the model is trained to produce after the prompt, end marker included."""
        if style == "compact":
            return reference + END_MARKER
        return " " + reference + END_MARKER


BUILTIN_TASKS = (
    Task("asr", "a speech recognizer (English)", "correct transcription", "wer"),
    Task(
        "st",
        "a speech translation system (English speech to Spanish text)",
        "correct Spanish translation",
        "bleu",
        language="es",
    ),
    Task(
        "mt",
        "a machine translation system (English text to Spanish text)",
        "correct Spanish translation",
        "bleu",
        language="es",
    ),
    Task("ocr", "an OCR system reading a line of printed English text", "correct text of the line", "cer"),
    Task(
        "tec",
        "an English sentence that may contain grammatical and spelling errors",
        "corrected sentence",
        "gleu",
    ),
)

_REGISTRY: dict[str, Task] = {task.name: task for task in BUILTIN_TASKS}


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Make a user's task known by name everywhere in neko."""
    if not task.name.isidentifier():
        raise NekoError(f"task name {task.name!r} must be a short identifier such as 'asr' or 'handwriting'")
    if task.name in _REGISTRY and not replace and _REGISTRY[task.name] != task:
        raise NekoError(f"task {task.name!r} is already registered with a different definition")
    _REGISTRY[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task called `name`, or a one-line error listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise NekoError(f"unknown task {name!r}; known tasks: {', '.join(known_tasks())}") from None


def known_tasks() -> list[str]:
    return list(_REGISTRY)


def special_tokens(task_names: Sequence[str]) -> list[str]:
    """Every marker a compact-style tokenizer needs for these tasks."""
    return [HYPOTHESIS_MARKER, ANSWER_MARKER, END_MARKER, *(get_task(t).marker for t in task_names)]
