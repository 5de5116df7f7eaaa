"""What a run logs: interval statistics, reduced over every process, and the metrics.jsonl they go to.

A log line covers every token of every process since the previous line, so the numbers of a
data-parallel run are those of the same run on one process with gradient accumulation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from neko.errors import NekoError
from neko.io import json_line, read_json_lines, write_json_lines
from neko.moe import ExpertAssignment
from neko.moe.context import RouterRecord
from neko.train.data import Encoded

METRICS_FILE = "metrics.jsonl"


class IntervalStats:
    """What one log line reports, over every step since the previous line: loss overall and per task
    (token means), the mean of each scalar (gradient norm, router losses), expert load per task, and
    the throughput. A line per step would be too many; one step's loss alone too noisy to read."""

    def __init__(self) -> None:
        self.loss_sum: dict[str, float] = defaultdict(float)
        self.token_count: dict[str, int] = defaultdict(int)
        self.scalars: dict[str, float] = defaultdict(float)
        self.scalar_counts: dict[str, int] = defaultdict(int)
        self.routes: dict[int, torch.Tensor] = {}
        self.tokens = 0

    def add_tokens(
        self, losses: torch.Tensor, mask: torch.Tensor, items: Sequence[Encoded], tokens: int
    ) -> None:
        self.tokens += tokens
        row_loss, row_count = losses.sum(dim=1).tolist(), mask.sum(dim=1).tolist()
        for item, loss, count in zip(items, row_loss, row_count, strict=True):
            for key in ("all", item.task or "text"):
                self.loss_sum[key] += loss
                self.token_count[key] += count

    def add(self, name: str, value: float) -> None:
        self.scalars[name] += value
        self.scalar_counts[name] += 1

    def add_routes(self, records: list[RouterRecord]) -> None:
        """Count (forced expert, used expert) pairs: the forced expert stands for the task."""
        for record in records:
            if record.forced is None:
                continue
            keep = record.forced >= 0
            forced = record.forced[keep].detach().cpu()
            used = record.selected[keep].detach().cpu()
            experts = record.router_logits.shape[-1]
            pairs = forced[:, None] * experts + used
            counts = torch.bincount(pairs.reshape(-1), minlength=experts * experts).reshape(experts, experts)
            self.routes[record.layer] = self.routes.get(record.layer, 0) + counts

    def merge(self, other: IntervalStats) -> None:
        """Add another process's counts to these."""
        for key, value in other.loss_sum.items():
            self.loss_sum[key] += value
            self.token_count[key] += other.token_count[key]
        for name, value in other.scalars.items():
            self.scalars[name] += value
            self.scalar_counts[name] += other.scalar_counts[name]
        for layer, counts in other.routes.items():
            self.routes[layer] = self.routes.get(layer, 0) + counts
        self.tokens += other.tokens

    def reduced(self, accelerator: Accelerator) -> IntervalStats:
        """The statistics of all processes together (a collective call: every process makes it)."""
        if accelerator.num_processes == 1:
            return self
        total = IntervalStats()
        for part in gather_object([self]):
            total.merge(part)
        return total

    def losses(self) -> dict[str, float]:
        """`loss` (all tokens) and `loss_TASK`: token means."""
        return {
            "loss" if key == "all" else f"loss_{key}": self.loss_sum[key] / max(self.token_count[key], 1)
            for key in self.loss_sum
        }

    def summary(self, lr: float, seconds: float, assignment: ExpertAssignment | None) -> dict:
        out = self.losses() | {
            "lr": lr,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens / max(seconds, 1e-9),
        }
        out.update({name: total / self.scalar_counts[name] for name, total in self.scalars.items()})
        if assignment is not None and self.routes:
            load = sum(self.routes.values()).double()
            out["expert_load"] = {
                task: [round(x, 4) for x in (load[e] / load[e].sum().clamp(min=1)).tolist()]
                for task, e in assignment.task_to_expert.items()
                if load[e].sum() > 0
            }
        return out


class MetricsLog:
    """metrics.jsonl, one JSON object per logged step (and, optionally, the same scalars to
    tensorboard), written by the main process only; a resumed run first drops the lines past its
    restart, and a last line torn by a kill."""

    def __init__(self, path: Path, enabled: bool, keep_until: int, tensorboard: bool = False) -> None:
        self.path = path
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = [line for line in read_log(path) if line.get("step", 0) <= keep_until]
        write_json_lines(path, kept)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise NekoError(
                    "run.tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            self.writer = SummaryWriter(str(path.parent / "tensorboard"), purge_step=keep_until + 1)

    def write(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json_line({"step": step, **values}))
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, int | float):
                    self.writer.add_scalar(name, value, step)
            self.writer.flush()


def read_log(path: Path) -> list[dict]:
    """The records of a metrics file; a last line cut short by a kill is dropped, any other bad line
    is an error naming it."""
    if not path.exists():
        return []
    records = []
    for where, _, record in read_json_lines(path, torn_tail=True):
        if not isinstance(record, dict):
            raise NekoError(f"{where}: not a JSON object; the metrics log is damaged")
        records.append(record)
    return records


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Every logged line of a run, oldest first."""
    return read_log(Path(run_dir) / METRICS_FILE)
