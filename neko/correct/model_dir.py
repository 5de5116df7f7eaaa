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
                        "min_familiarity": -4.2, "require_support": true}},  # gate's per task
       "custom_tasks": [{"name": "handwriting", "description": "...", "output": "...",
                         "metric": "cer", "language": "en"}]}

  Custom tasks are registered (`neko.tasks.register_task`) when the file is read, before anything
  else looks their names up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neko.correct.gate import GateRule
from neko.errors import NekoError
from neko.io import read_json, write_json
from neko.moe import ExpertAssignment, RoutingMode
from neko.resources import CHECKOUT, DEFAULT_MODEL, locate
from neko.tasks import PROMPT_STYLES, Task, get_task, register_task

NEKO_JSON = "neko.json"
FORMAT_VERSION = 1
MODEL_STRATEGIES = tuple(RoutingMode)
DEFAULT_MODEL_DIR = CHECKOUT / DEFAULT_MODEL
"""Where `neko correct` looks when no `--model` is given and `$NEKO_HOME/models/neko-tiny` is not
there: `models/neko-tiny` in the checkout (`neko.resources`)."""

ROUTING_STRATEGY = {mode: mode for mode in RoutingMode if mode is not RoutingMode.DENSE}
"""neko.json strategy -> `neko.moe.apply_task_guidance` strategy: the same `RoutingMode`."""


@dataclass(frozen=True)
class ModelInfo:
    """The contents of `neko.json`."""

    tasks: list[str]
    assignment: ExpertAssignment | None = None
    strategy: RoutingMode = RoutingMode.TASK_GUIDED
    prompt_style: str = "compact"
    max_source_tokens: int = 512
    max_new_tokens: int = 128
    max_hypotheses: int | None = None
    max_edit_rate: dict[str, float | None] = field(default_factory=dict)
    """Per task, the safety valve's `max_edit_rate` (None: no limit), e.g. tuned on dev data with
    `neko tune-gate`; tasks left out use `SafetyValve`'s default."""
    gate: dict[str, GateRule] = field(default_factory=dict)
    """Per task, the correction gate's thresholds (`neko.correct.gate`), tuned on dev data with
    `neko tune-gate`; a task left out keeps its 1-best."""
    custom_tasks: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", RoutingMode(self.strategy))

    @property
    def routing_strategy(self) -> RoutingMode | None:
        """The `apply_task_guidance` strategy (all route alike in eval mode), or None for a dense model."""
        if self.assignment is None:
            return None
        return ROUTING_STRATEGY.get(self.strategy, RoutingMode.MOE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "tasks": list(self.tasks),
            "assignment": None if self.assignment is None else self.assignment.to_dict(),
            "strategy": self.strategy,
            "prompt_style": self.prompt_style,
            "max_source_tokens": self.max_source_tokens,
            "max_new_tokens": self.max_new_tokens,
            "max_hypotheses": self.max_hypotheses,
            "max_edit_rate": dict(self.max_edit_rate),
            "gate": {task: rule.to_dict() for task, rule in self.gate.items()},
            "custom_tasks": [dict(spec) for spec in self.custom_tasks],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = NEKO_JSON) -> ModelInfo:
        """Validate a decoded `neko.json`, registering its custom tasks; errors name `where` and the key."""
        if not isinstance(data, dict):
            raise NekoError(f"{where}: expected a JSON object")
        if data.get("format") != FORMAT_VERSION:
            raise NekoError(f"{where}: unsupported format {data.get('format')!r}; expected {FORMAT_VERSION}")
        for spec in _list(data, "custom_tasks", where, required=False):
            register_task(_custom_task(spec, where))
        tasks = _list(data, "tasks", where)
        if not tasks or not all(isinstance(t, str) for t in tasks):
            raise NekoError(f"{where}: 'tasks' must be a non-empty list of task names")
        for name in tasks:
            get_task(name)
        strategy = data.get("strategy", "task_guided")
        if strategy not in MODEL_STRATEGIES:
            raise NekoError(
                f"{where}: unknown strategy {strategy!r}; expected one of {', '.join(MODEL_STRATEGIES)}"
            )
        style = data.get("prompt_style", "compact")
        if style not in PROMPT_STYLES:
            raise NekoError(
                f"{where}: unknown prompt_style {style!r}; expected one of {', '.join(PROMPT_STYLES)}"
            )
        assignment = data.get("assignment")
        if assignment is not None:
            if not isinstance(assignment, dict) or not {"num_experts", "task_to_expert"} <= set(assignment):
                raise NekoError(f"{where}: 'assignment' must hold 'num_experts' and 'task_to_expert'")
            assignment = ExpertAssignment.from_dict(assignment)
        return cls(
            tasks=list(tasks),
            assignment=assignment,
            strategy=strategy,
            prompt_style=style,
            max_source_tokens=_positive_int(data, "max_source_tokens", where, 512),
            max_new_tokens=_positive_int(data, "max_new_tokens", where, 128),
            max_hypotheses=None
            if data.get("max_hypotheses") is None
            else _positive_int(data, "max_hypotheses", where, 1),
            max_edit_rate=_edit_rates(data, tasks, where),
            gate=_gate_rules(data, tasks, where),
            custom_tasks=[dict(spec) for spec in data.get("custom_tasks") or []],
        )


def resolve_model_dir(path: str | Path | None) -> Path:
    """`path`, or the default model when None; a one-line error when it is not there."""
    if path is None:
        return locate(
            DEFAULT_MODEL,
            "the default model is not installed",
            "train one and pass its directory with --model DIR (Corrector.from_pretrained(path))",
            DEFAULT_MODEL_DIR,
        )
    path = Path(path)
    if not path.exists():
        raise NekoError(f"{path}: no such model directory")
    if not path.is_dir():
        raise NekoError(f"{path}: is a file, expected a model directory")
    return path


def check_model_files(path: Path, onnx: bool = False) -> None:
    """Name the first file a model directory lacks; `onnx`: the weights may be `model.onnx` alone (an
    ONNX export's folder, which the onnx engine runs)."""
    required = [NEKO_JSON, "config.json", "tokenizer.json", "tokenizer_config.json"]
    for name in required:
        if not (path / name).is_file():
            raise NekoError(f"{path}: model directory is missing {name}")
    if onnx and (path / "model.onnx").is_file():
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


def _list(data: dict, key: str, where: str, required: bool = True) -> list:
    if key not in data or data[key] is None:
        if required:
            raise NekoError(f"{where}: missing key '{key}'")
        return []
    if not isinstance(data[key], list):
        raise NekoError(f"{where}: '{key}' must be a list")
    return data[key]


def _positive_int(data: dict, key: str, where: str, default: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise NekoError(f"{where}: '{key}' must be a positive integer, got {value!r}")
    return value


def _per_task(data: dict, key: str, tasks: list[str], where: str, values: str) -> dict[str, Any]:
    """The optional task -> value mapping under `key`; its task names checked, its values left to the
    caller (`values` says what they should be, for the error)."""
    mapping = data.get(key) or {}
    if not isinstance(mapping, dict):
        raise NekoError(f"{where}: '{key}' must map task names to {values}")
    for name in mapping:
        if name not in tasks:
            raise NekoError(f"{where}: '{key}' names {name!r}, which is not one of the model's tasks")
    return mapping


def _edit_rates(data: dict, tasks: list[str], where: str) -> dict[str, float | None]:
    rates = _per_task(data, "max_edit_rate", tasks, where, "numbers or null")
    for name, rate in rates.items():
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0):
            raise NekoError(
                f"{where}: 'max_edit_rate' of {name!r} must be a number >= 0 or null, got {rate!r}"
            )
    return {name: None if rate is None else float(rate) for name, rate in rates.items()}


def _gate_rules(data: dict, tasks: list[str], where: str) -> dict[str, GateRule]:
    rules = _per_task(data, "gate", tasks, where, "objects of gate thresholds")
    return {name: _gate_rule(spec, f"{where}: 'gate' of {name!r}") for name, spec in rules.items()}


def _gate_rule(spec: Any, where: str) -> GateRule:
    keys = ("accept_margin", "rerank_margin", "min_familiarity", "require_support")
    if not isinstance(spec, dict):
        raise NekoError(f"{where}: must be an object with {', '.join(keys)}")
    unknown = set(spec) - set(keys)
    if unknown:
        raise NekoError(f"{where}: unknown key {sorted(unknown)[0]!r}; expected {', '.join(keys)}")
    for key in keys[:3]:
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise NekoError(f"{where}: {key!r} must be a number or null, got {value!r}")
    if not isinstance(spec.get("require_support", True), bool):
        raise NekoError(f"{where}: 'require_support' must be true or false")
    return GateRule(
        **{key: None if spec.get(key) is None else float(spec[key]) for key in keys[:3]},
        require_support=spec.get("require_support", True),
    )


def _custom_task(spec: Any, where: str) -> Task:
    if not isinstance(spec, dict):
        raise NekoError(f"{where}: each of 'custom_tasks' must be a JSON object")
    fields = ("name", "description", "output", "metric")
    for name in fields:
        if not isinstance(spec.get(name), str):
            raise NekoError(f"{where}: custom task needs a string '{name}'")
    unknown = set(spec) - {*fields, "language"}
    if unknown:
        raise NekoError(f"{where}: custom task {spec['name']!r} has unknown key '{sorted(unknown)[0]}'")
    return Task(**spec)
