"""Training configs as data: a YAML file maps onto these dataclasses, strictly.

Every mistake (an unknown key, a missing file, a task without an expert, a value of the wrong type)
is a one-line `NekoError` raised by `load_config`, before any model is built or data is read.
Defaults are the reference system's recipe (AdamW lr 1e-4, weight decay 0.01, cosine schedule with
warmup, gradient clipping 1.0, 3 epochs); from-scratch configs override the learning rate.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neko.errors import NekoError
from neko.moe.assignment import ExpertAssignment
from neko.moe.routing import RoutingMode
from neko.tasks import PROMPT_STYLES, Task, get_task, register_task

MODES = tuple(RoutingMode)
SOURCES = ("scratch", "pretrained", "dense")


@dataclass
class ArchitectureConfig:
    """Shape of a model built from scratch (Mixtral; `dense` mode builds the matching Mistral)."""

    hidden_size: int = 192
    num_hidden_layers: int = 4
    intermediate_size: int = 384
    num_attention_heads: int = 6
    num_key_value_heads: int = 2
    num_experts: int = 4
    experts_per_token: int = 2
    vocab_size: int = 4000
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0


@dataclass
class LoraConfig:
    """LoRA adapters via peft: attention projections and, optionally, the fused expert weights."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    target_parameters: list[str] = field(
        default_factory=lambda: ["experts.gate_up_proj", "experts.down_proj"]
    )


@dataclass
class ModelConfig:
    """Where the model comes from: `scratch`, a local MoE checkpoint (`pretrained`), or a local dense
    checkpoint to upcycle (`dense`). `pretrained` also accepts a neko model directory (e.g. the LM
    pretrained on clean text by an earlier run)."""

    source: str = "scratch"
    path: str | None = None
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    upcycle_experts: int = 8
    lora: LoraConfig | None = None


@dataclass
class DataSource:
    path: str
    format: str | None = None
    task: str | None = None
    limit: int | None = None


@dataclass
class DataConfig:
    """Correction examples (`train`, `dev`) and plain text for language-model pretraining (`text`:
    one document per line, trained on every token, routed with no task)."""

    train: list[DataSource] = field(default_factory=list)
    dev: list[DataSource] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    prompt_style: str = "compact"
    mixture: str = "proportional"
    loss_on: str = "response"
    max_source_tokens: int = 256
    max_target_tokens: int = 128
    max_hypotheses: int = 5


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    schedule: str = "cosine"
    grad_clip: float = 1.0
    epochs: float = 3.0
    max_steps: int | None = None
    tokens_per_batch: int = 4096
    grad_accum: int = 1


@dataclass
class RunConfig:
    out_dir: str = "runs/neko"
    seed: int = 0
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 10
    eval_every: int | None = None
    bf16: bool = False
    gradient_checkpointing: bool = False
    tensorboard: bool = False
    threads: int | None = None
    save_dtype: str = "float16"


@dataclass
class TrainConfig:
    mode: str = "task_guided"
    tasks: list[str] = field(default_factory=lambda: ["asr", "st", "ocr", "tec"])
    custom_tasks: list[dict[str, str]] = field(default_factory=list)
    expert_map: dict[str, int] | None = None
    routing_seed: int = 0
    aux_loss_coef: float = 0.01
    damex_loss_coef: float = 0.1
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def assignment(self, num_experts: int) -> ExpertAssignment | None:
        """f(T) for this run; None for a dense model."""
        if self.mode == "dense":
            return None
        return ExpertAssignment.from_config(self.tasks, num_experts, self.expert_map, self.routing_seed)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read, type-check and validate a YAML config; relative data paths resolve against the cwd."""
    path = Path(path)
    if not path.exists():
        raise NekoError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise NekoError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    config = _build(TrainConfig, raw, f"{path}")
    validate(config, str(path))
    return config


def validate(config: TrainConfig, where: str = "config") -> None:
    for spec in config.custom_tasks:
        try:
            register_task(Task(**spec))
        except TypeError as error:
            raise NekoError(f"{where}: custom_tasks entry {spec}: {error}") from None
    for task in config.tasks:
        get_task(task)
    _choice(where, "mode", config.mode, MODES)
    _choice(where, "model.source", config.model.source, SOURCES)
    _choice(where, "data.prompt_style", config.data.prompt_style, PROMPT_STYLES)
    _choice(where, "data.mixture", config.data.mixture, ("proportional", "balanced"))
    _choice(where, "data.loss_on", config.data.loss_on, ("response", "sequence"))
    _choice(where, "optim.schedule", config.optim.schedule, ("cosine", "linear", "constant"))
    _choice(where, "run.save_dtype", config.run.save_dtype, ("float16", "bfloat16", "float32"))
    if config.model.source != "scratch":
        if not config.model.path:
            raise NekoError(f"{where}: model.path is required when model.source is {config.model.source!r}")
        if not Path(config.model.path).is_dir():
            raise NekoError(f"{where}: model.path {config.model.path!r} is not a directory")
    if config.mode == "dense" and config.model.source != "scratch":
        raise NekoError(f"{where}: mode 'dense' builds a dense model from scratch; use model.source: scratch")
    if config.mode != "dense" and config.model.source == "scratch":
        config.assignment(config.model.architecture.num_experts)
    if not config.data.train and not config.data.text:
        raise NekoError(f"{where}: data.train and data.text are both empty; there is nothing to train on")
    for source in [*config.data.train, *config.data.dev]:
        if not Path(source.path).exists():
            raise NekoError(f"{where}: data file {source.path!r} does not exist")
    for text in config.data.text:
        if not Path(text).exists():
            raise NekoError(f"{where}: text file {text!r} does not exist")


def _choice(where: str, name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise NekoError(f"{where}: {name} is {value!r}; expected one of {', '.join(allowed)}")


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        raw = raw.setdefault(key, {})
    raw[last] = value


def _build(cls: type, raw: Any, where: str) -> Any:
    """Instantiate dataclass `cls` from `raw`, rejecting unknown keys and wrong types by name."""
    if not isinstance(raw, dict):
        raise NekoError(f"{where}: expected a mapping for {cls.__name__}, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise NekoError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(names))})")
    values = {key: _convert(hints[key], value, f"{where}: {key}") for key, value in raw.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if dataclasses.is_dataclass(hint):
        if hint is DataSource and isinstance(value, str):
            return DataSource(path=value)
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise NekoError(f"{where} must be a list")
        return [_convert(args[0], item, where) for item in value] if args else value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise NekoError(f"{where} must be a list of {len(args)} values")
        return tuple(_convert(a, v, where) for a, v in zip(args, value, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            raise NekoError(f"{where} must be a mapping")
        return value
    if hint is float:
        hint = int | float
    if hint in (int, str, bool, int | float):
        if not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool):
            name = "float" if hint == int | float else hint.__name__
            raise NekoError(f"{where} must be {name}, got {value!r}")
        return float(value) if hint == int | float else value
    return value
