"""A trained neko model on disk: what the directory holds, and its settings (no torch here: loading
the weights is `neko.correct.torch_lm`'s, the tokenizer `neko.correct.tokenizer`'s).

A model directory (written by the trainer) holds

- `config.json` and `model.safetensors` (or a sharded `model.safetensors.index.json`): a plain
  transformers causal LM, loaded with `AutoModelForCausalLM` from safetensors only;
- optionally `model.onnx`: the same model for ONNX Runtime (`neko export DIR DIR --to onnx`), which the
  `onnx` engine runs without torch (an ONNX export's folder holds it instead of the safetensors);
- `tokenizer.json` and `tokenizer_config.json`: a fast tokenizer whose `eos_token` is `END_MARKER`,
  whose `pad_token` is `<|pad|>`, and in which every marker of `neko.tasks.special_tokens(tasks)` is
  a single special token;
- `neko.json`: what neko needs beyond transformers::

      {"format": 1, "tasks": ["asr", "ocr"],
       "assignment": {"num_experts": 8, "task_to_expert": {"asr": 3, "ocr": 5}},   # null: dense model
       "strategy": "task_guided", "prompt_style": "compact",
       "max_source_tokens": 512, "max_new_tokens": 128, "max_hypotheses": 5,   # optional, null: all
       "max_edit_rate": {"asr": 0.2, "tec": null},   # optional: the safety valve's per task
       "gate": {"asr": {"accept_margin": 0.1, "rerank_margin": null,      # optional: the correction
                        "min_familiarity": -4.2, "require_support": true,   # gate's per task
                        "min_confidence": null}},
       "custom_tasks": [{"name": "handwriting", "description": "...", "output": "...",
                         "metric": "cer", "language": "en"}]}

  Custom tasks are registered (`neko.tasks.register_task`) when the file is read, before anything
  else looks their names up.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from neko.correct.engines import ONNX_MODEL_FILE
from neko.correct.gate import GateRule
from neko.errors import NekoError
from neko.io import read_json, write_json
from neko.moe import ExpertAssignment, RoutingMode
from neko.resources import BUNDLED_MODELS, CHECKOUT, DEFAULT_MODEL, NEKO_JSON, locate
from neko.schema import CustomTasks, Schema, describe, distinct, field_errors, fields_of
from neko.tasks import PROMPT_STYLES, get_task

FORMAT_VERSION = 1
DEFAULT_MODEL_DIR = CHECKOUT / DEFAULT_MODEL
"""Where `neko correct` looks when no `--model` is given and `$NEKO_HOME` holds no default model:
`neko.resources.DEFAULT_MODEL` in the checkout."""

ROUTING_STRATEGY = {mode: mode for mode in RoutingMode if mode is not RoutingMode.DENSE}
"""neko.json strategy -> `neko.moe.apply_task_guidance` strategy: the same `RoutingMode`."""

Positive = Annotated[int, Field(ge=1)]
Assignment = fields_of(ExpertAssignment)
Rule = fields_of(GateRule)


class ModelInfo(Schema):
    """The contents of `neko.json`. Fields are checked in order: the custom tasks are registered
    before `tasks` and `assignment` look their names up."""

    model_config = ConfigDict(frozen=True)

    format: Literal[FORMAT_VERSION] = FORMAT_VERSION  # type: ignore[valid-type]
    custom_tasks: CustomTasks = Field(default_factory=list)
    tasks: Annotated[list[str], Field(min_length=1)]
    assignment: Assignment | None = None  # type: ignore[valid-type]
    strategy: Annotated[RoutingMode, Field(strict=False)] = RoutingMode.TASK_GUIDED
    prompt_style: Literal[PROMPT_STYLES] = "compact"  # type: ignore[valid-type]
    max_source_tokens: Positive = 512
    max_new_tokens: Positive = 128
    max_hypotheses: Positive | None = None
    max_edit_rate: dict[str, Annotated[float, Field(ge=0)] | None] = Field(default_factory=dict)
    """Per task, the safety valve's `max_edit_rate` (None: no limit), e.g. tuned on dev data with
    `neko tune-gate`; tasks left out use `SafetyValve`'s default."""
    gate: dict[str, Rule] = Field(default_factory=dict)  # type: ignore[valid-type]
    """Per task, the correction gate's thresholds (`neko.correct.gate`), tuned on dev data with
    `neko tune-gate`; a task left out keeps its 1-best."""

    @field_validator("tasks")
    @classmethod
    def _registered(cls, tasks: list[str]) -> list[str]:
        distinct(tasks)
        with field_errors():
            for task in tasks:
                get_task(task)
        return tasks

    @field_validator("max_edit_rate", "gate")
    @classmethod
    def _of_the_tasks(cls, per_task: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """A setting per task names only the model's tasks (nothing to check when `tasks` is wrong)."""
        for name in per_task:
            if "tasks" in info.data and name not in info.data["tasks"]:
                raise ValueError(f"names {name!r}, which is not one of the model's tasks")
        return per_task

    @property
    def routing_strategy(self) -> RoutingMode | None:
        """The `apply_task_guidance` strategy (all route alike in eval mode), or None for a dense model."""
        if self.assignment is None:
            return None
        return ROUTING_STRATEGY.get(self.strategy, RoutingMode.MOE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "tasks": list(self.tasks),
            "assignment": None if self.assignment is None else self.assignment.to_dict(),
            "strategy": self.strategy,
            "prompt_style": self.prompt_style,
            "max_source_tokens": self.max_source_tokens,
            "max_new_tokens": self.max_new_tokens,
            "max_hypotheses": self.max_hypotheses,
            "max_edit_rate": dict(self.max_edit_rate),
            "gate": {task: rule.to_dict() for task, rule in self.gate.items()},
            "custom_tasks": [asdict(task) for task in self.custom_tasks],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = NEKO_JSON) -> ModelInfo:
        """Validate a decoded `neko.json`, registering its custom tasks; errors name `where` and the key.
        A file must say its format (a `ModelInfo` made in code is of the current one)."""
        if isinstance(data, dict):
            data = {"format": None} | data
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise NekoError(f"{where}: {describe(error, cls)}") from None


def resolve_model_dir(model: str | Path | None) -> Path:
    """The model directory `model` names: a path; None or "default" for the default model; or a
    bundled model's name (a folder of `models/`, e.g. "neko-tiny") when no such path exists. A
    one-line error when it is not there."""
    if model is None or str(model) == "default":
        return locate(
            DEFAULT_MODEL,
            "the default model is not installed",
            "train one and pass its directory with --model DIR (Corrector.from_pretrained(path))",
            DEFAULT_MODEL_DIR,
        )
    path = Path(model)
    if path.exists():
        if not path.is_dir():
            raise NekoError(f"{path}: is a file, expected a model directory")
        return path
    if not _is_a_name(str(model)):
        raise NekoError(f"{path}: no such model directory")
    return locate(
        f"{BUNDLED_MODELS}/{model}",
        f"{model}: no such model directory, nor a bundled model of that name",
        "pass a model directory with --model DIR",
    )


def _is_a_name(model: str) -> bool:
    """Whether `model` can name a bundled model: one path component, not "", "." or ".."."""
    return model not in ("", ".", "..") and Path(model).name == model


def check_model_files(path: Path, onnx: bool = False) -> None:
    """Name the first file a model directory lacks; `onnx`: the weights may be `model.onnx` alone (an
    ONNX export's folder, which the onnx engine runs)."""
    required = [NEKO_JSON, "config.json", "tokenizer.json", "tokenizer_config.json"]
    for name in required:
        if not (path / name).is_file():
            raise NekoError(f"{path}: model directory is missing {name}")
    if onnx and (path / ONNX_MODEL_FILE).is_file():
        return
    if not (path / "model.safetensors").is_file() and not (path / "model.safetensors.index.json").is_file():
        raise NekoError(
            f"{path}: model directory is missing model.safetensors (weights are read as safetensors only)"
        )


def read_model_info(path: Path) -> ModelInfo:
    return ModelInfo.from_dict(read_json(path / NEKO_JSON), str(path / NEKO_JSON))


def write_model_info(path: str | Path, info: ModelInfo) -> None:
    """Write `neko.json` into a model directory, at once (a reader never sees half a file)."""
    write_json(Path(path) / NEKO_JSON, info.to_dict())
