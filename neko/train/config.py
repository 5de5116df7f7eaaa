"""Training configs as data: the schema of a YAML config, declared once with pydantic, checked strictly.

Every mistake (an unknown key, a value of the wrong type or out of range, a missing file, a task
without an expert, a model shape that cannot be built) is a one-line `NekoError` raised by
`load_config`, naming the file and the key, before any model is built, data is read or file written.
Defaults are the reference system's recipe (AdamW lr 1e-4, weight decay 0.01, cosine schedule with
warmup, gradient clipping 1.0, 3 epochs); from-scratch configs override the learning rate.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from neko.data.formats import FORMATS
from neko.errors import NekoError
from neko.moe.assignment import ExpertAssignment
from neko.moe.modes import RoutingMode
from neko.schema import CustomTasks, Schema, describe, distinct
from neko.tasks import PROMPT_STYLES, get_task

Mode = Literal[tuple(mode.value for mode in RoutingMode)]
Source = Literal["scratch", "pretrained", "dense"]
MODES: tuple[str, ...] = get_args(Mode)
SOURCES: tuple[str, ...] = get_args(Source)

Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class ArchitectureConfig(Schema):
    """Shape of a model built from scratch (Mixtral; `dense` mode builds the matching Mistral)."""

    hidden_size: Positive = 192
    num_hidden_layers: Positive = 4
    intermediate_size: Positive = 384
    num_attention_heads: Positive = 6
    num_key_value_heads: Positive = 2
    num_experts: Positive = 4
    experts_per_token: Positive = 2
    vocab_size: Positive = 4000
    max_position_embeddings: Positive = 512
    tie_word_embeddings: bool = True
    rope_theta: PositiveFloat = 10000.0

    @model_validator(mode="after")
    def _buildable(self) -> ArchitectureConfig:
        """Shapes transformers would only reject (with a traceback) when the model is built."""
        if self.experts_per_token > self.num_experts:
            raise ValueError(
                f"experts_per_token ({self.experts_per_token}) must be <= num_experts ({self.num_experts})"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must divide "
                f"hidden_size ({self.hidden_size})"
            )
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("hidden_size / num_attention_heads must be even (rotary embeddings)")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_key_value_heads ({self.num_key_value_heads}) must divide "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        return self


class LoraConfig(Schema):
    """LoRA adapters via peft: attention projections and, optionally, the fused expert weights."""

    r: Positive = 16
    alpha: PositiveFloat = 32
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    target_modules: Annotated[list[str], Field(min_length=1)] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    target_parameters: list[str] = ["experts.gate_up_proj", "experts.down_proj"]


class ModelConfig(Schema):
    """Where the model comes from: `scratch`, a local MoE checkpoint (`pretrained`), or a local dense
    checkpoint to upcycle (`dense`). `pretrained` also accepts a neko model directory (e.g. the LM
    pretrained on clean text by an earlier run)."""

    source: Source = "scratch"
    path: str | None = None
    architecture: ArchitectureConfig = ArchitectureConfig()
    upcycle_experts: Positive = 8
    lora: LoraConfig | None = None


class DataSource(Schema):
    """One data file; a bare string in YAML is its path."""

    path: Annotated[str, Field(min_length=1)]
    format: Literal[FORMATS] | None = None  # type: ignore[valid-type]
    task: str | None = None
    limit: Positive | None = None

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class DataConfig(Schema):
    """Correction examples (`train`, `dev`) and plain text for language-model pretraining (`text`:
    one document per line, trained on every token, routed with no task)."""

    train: list[DataSource] = []
    dev: list[DataSource] = []
    text: list[Annotated[str, Field(min_length=1)]] = []
    prompt_style: Literal[PROMPT_STYLES] = "compact"  # type: ignore[valid-type]
    mixture: Literal["proportional", "balanced"] = "proportional"
    loss_on: Literal["response", "sequence"] = "response"
    max_source_tokens: Positive = 256
    max_target_tokens: Positive = 128
    max_hypotheses: Positive = 5


class OptimConfig(Schema):
    lr: PositiveFloat = 1e-4
    weight_decay: NonNegativeFloat = 0.01
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
    warmup_steps: NonNegative = 100
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    grad_clip: PositiveFloat = 1.0
    epochs: PositiveFloat = 3.0
    max_steps: Positive | None = None
    time_budget_s: PositiveFloat | None = None
    """Seconds the steps may take: the run ends at the step its measured rate reaches by then, its
    schedule sized to that step (`neko.train.budget`); at most `epochs` and `max_steps` still."""
    tokens_per_batch: Positive = 4096
    grad_accum: Positive = 1

    @field_validator("betas", mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        """YAML has no tuples: a list of two numbers is the pair."""
        if isinstance(value, list) and len(value) != 2:
            raise ValueError(f"must be a pair [beta1, beta2], got {len(value)} values")
        return tuple(value) if isinstance(value, list) else value


class RunConfig(Schema):
    out_dir: Annotated[str, Field(min_length=1)] = "runs/neko"
    seed: NonNegative = 0
    save_every: Positive = 500
    keep_last: Positive = 2
    log_every: Positive = 10
    eval_every: Positive | None = None
    bf16: bool = False
    gradient_checkpointing: bool = False
    tensorboard: bool = False
    threads: Positive | None = None
    save_dtype: Literal["float16", "bfloat16", "float32"] = "float16"


class TrainConfig(Schema):
    mode: Mode = "task_guided"
    tasks: Annotated[list[str], Field(min_length=1)] = ["asr", "st", "ocr", "tec"]
    custom_tasks: CustomTasks = []
    """The user's own tasks (`neko.tasks.Task`), registered as the config is read."""
    expert_map: dict[str, NonNegative] | None = None
    routing_seed: NonNegative = 0
    aux_loss_coef: NonNegativeFloat = 0.01
    damex_loss_coef: NonNegativeFloat = 0.1
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    run: RunConfig = RunConfig()

    @field_validator("tasks")
    @classmethod
    def _distinct(cls, tasks: list[str]) -> list[str]:
        return distinct(tasks)

    def assignment(self, num_experts: int) -> ExpertAssignment | None:
        """f(T) for this run; None for a dense model."""
        if self.mode == "dense":
            return None
        return ExpertAssignment.from_config(self.tasks, num_experts, self.expert_map, self.routing_seed)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read, type-check and validate a YAML config; relative data paths resolve against the cwd."""
    path = Path(path)
    raw = read_raw(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as error:
        raise NekoError(f"{path}: {describe(error, TrainConfig)}") from None
    validate(config, str(path))
    return config


def read_raw(path: Path, including: tuple[Path, ...] = ()) -> dict:
    """The settings of a YAML config, merged over those of its `base:` (a config file named relative to
    this one's folder): sections merge key by key, any other value replaces the base's. Staged configs
    say only what their stage changes."""
    if path.is_dir():
        raise NekoError(f"{path}: is a folder, expected a config file")
    if not path.is_file():
        named = f" (the base of {including[-1]})" if including else ""
        raise NekoError(f"{path}: no such config file{named}")
    if path.resolve() in including:
        raise NekoError(f"{path}: its base configs include it again")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise NekoError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise NekoError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise NekoError(f"{path}: base: expected the file name of a config, got {base!r}")
    return merged(read_raw(path.parent / base, (*including, path.resolve())), raw)


def merged(base: dict, changes: dict) -> dict:
    """`changes` over `base`: nested mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def parse_override(item: str) -> tuple[str, Any]:
    """`--set KEY=VALUE`: a dotted key of identifiers and a YAML value."""
    key, sep, text = item.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", key.strip()):
        raise NekoError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. optim.lr=3e-4")
    try:
        return key.strip(), yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise NekoError(
            f"--set {item!r}: the value is not valid YAML ({str(error).splitlines()[0]})"
        ) from None


def set_dotted(raw: dict, dotted: str, value: Any) -> None:
    """Set `a.b.c` in nested mappings, creating missing sections; a setting is not a section."""
    *parents, last = dotted.split(".")
    node = raw
    for depth, key in enumerate(parents):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise NekoError(f"--set {dotted}: {'.'.join(parents[: depth + 1])} is a setting, not a section")
    node[last] = value


CHECKPOINT_FILES = (
    ("config.json",),
    ("model.safetensors", "model.safetensors.index.json"),  # weights load as safetensors only
    ("tokenizer.json", "tokenizer_config.json"),
)
"""What a checkpoint to fine-tune or upcycle must hold: one file of each group."""


def check_checkpoint_folder(path: Path, where: str) -> None:
    """A one-line error naming what a checkpoint folder lacks."""
    if not path.is_dir():
        raise NekoError(f"{where} {str(path)!r} is not a directory")
    for names in CHECKPOINT_FILES:
        if not any((path / name).is_file() for name in names):
            raise NekoError(f"{where} {str(path)!r} has no {' or '.join(names)}")


def validate(config: TrainConfig, where: str = "config") -> None:
    """The rules that look past one section: tasks exist and have experts, files exist."""
    for index, task in enumerate(config.tasks):
        try:
            get_task(task)
        except NekoError as error:
            raise NekoError(f"{where}: tasks[{index}]: {error}") from None
    if config.model.source != "scratch":
        if not config.model.path:
            raise NekoError(f"{where}: model.path is required when model.source is {config.model.source!r}")
        check_checkpoint_folder(Path(config.model.path), f"{where}: model.path")
    if config.mode == "dense" and config.model.source != "scratch":
        raise NekoError(f"{where}: mode 'dense' builds a dense model from scratch; use model.source: scratch")
    if config.mode != "dense" and config.model.source == "scratch":
        try:
            config.assignment(config.model.architecture.num_experts)
        except NekoError as error:
            raise NekoError(f"{where}: expert_map: {error}") from None
    if config.expert_map is not None and config.mode == "dense":
        raise NekoError(f"{where}: expert_map: a dense model has no experts")
    if not config.data.train and not config.data.text:
        raise NekoError(f"{where}: data.train and data.text are both empty; there is nothing to train on")
    for split in ("train", "dev"):
        for index, source in enumerate(getattr(config.data, split)):
            if source.task is not None and source.task not in config.tasks:
                raise NekoError(
                    f"{where}: data.{split}[{index}].task {source.task!r} is not in tasks "
                    f"({', '.join(config.tasks)})"
                )
            _check_file(Path(source.path), f"{where}: data file")
    for text in config.data.text:
        _check_file(Path(text), f"{where}: text file")


def _check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise NekoError(f"{what} {str(path)!r} is a folder, expected a file")
    if not path.is_file():
        raise NekoError(f"{what} {str(path)!r} does not exist")
