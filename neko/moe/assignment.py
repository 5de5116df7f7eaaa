"""Which expert each task owns: the mapping f(T) of task-guided routing.

The reference system draws the mapping at random (seeded); a config may also spell it out. Every task
gets its own expert, so there can be no more tasks than experts.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neko.errors import NekoError
from neko.tasks import get_task

if TYPE_CHECKING:
    import torch

NO_TASK = -1
"""Task id of tokens that belong to no task (padding, plain LM text): they are routed by the gate alone."""


@dataclass(frozen=True)
class ExpertAssignment:
    """f(T): task name -> expert index, over `num_experts` experts.

    `tasks` fixes the order of task ids: task id i is `tasks[i]`; tensors of task ids use it.
    """

    task_to_expert: Mapping[str, int]
    num_experts: int

    def __post_init__(self) -> None:
        if self.num_experts < 2:
            raise NekoError(f"task-guided routing needs at least 2 experts, the model has {self.num_experts}")
        if len(self.task_to_expert) > self.num_experts:
            raise NekoError(
                f"{len(self.task_to_expert)} tasks ({', '.join(self.task_to_expert)}) but only "
                f"{self.num_experts} experts: each task needs an expert of its own"
            )
        owner: dict[int, str] = {}
        for task, expert in self.task_to_expert.items():
            get_task(task)
            if not isinstance(expert, int) or not 0 <= expert < self.num_experts:
                raise NekoError(
                    f"task {task!r} mapped to expert {expert!r}, outside 0..{self.num_experts - 1}"
                )
            if expert in owner:
                raise NekoError(f"tasks {owner[expert]!r} and {task!r} are both mapped to expert {expert}")
            owner[expert] = task

    @classmethod
    def random(cls, tasks: Sequence[str], num_experts: int, seed: int = 0) -> ExpertAssignment:
        """The reference system's mapping: distinct experts drawn at random, reproducible from `seed`."""
        if len(set(tasks)) != len(tasks):
            raise NekoError(f"task list {list(tasks)} names a task twice")
        if len(tasks) > num_experts:
            raise NekoError(
                f"{len(tasks)} tasks ({', '.join(tasks)}) but only {num_experts} experts: "
                "each task needs an expert of its own"
            )
        experts = random.Random(seed).sample(range(num_experts), len(tasks))
        return cls(dict(zip(tasks, experts, strict=True)), num_experts)

    @classmethod
    def from_config(
        cls, tasks: Sequence[str], num_experts: int, mapping: Mapping[str, int] | None = None, seed: int = 0
    ) -> ExpertAssignment:
        """An explicit `mapping` when the config gives one (it must cover `tasks`), else `random`."""
        if mapping is None:
            return cls.random(tasks, num_experts, seed)
        missing = [t for t in tasks if t not in mapping]
        if missing:
            raise NekoError(f"task {missing[0]!r} has no expert in the explicit expert map")
        return cls({task: mapping[task] for task in tasks}, num_experts)

    @property
    def tasks(self) -> list[str]:
        return list(self.task_to_expert)

    def expert_of(self, task: str) -> int:
        try:
            return self.task_to_expert[task]
        except KeyError:
            raise NekoError(f"task {task!r} has no expert; mapped tasks: {', '.join(self.tasks)}") from None

    def task_id(self, task: str) -> int:
        """The index of `task` in `tasks`, the id used in task-id tensors."""
        self.expert_of(task)
        return self.tasks.index(task)

    def expert_table(self, device: torch.device | None = None) -> torch.Tensor:
        """Task id -> expert index, as a tensor for vectorised lookup."""
        import torch

        return torch.tensor([self.task_to_expert[t] for t in self.tasks], dtype=torch.long, device=device)

    def to_dict(self) -> dict:
        return {"num_experts": self.num_experts, "task_to_expert": dict(self.task_to_expert)}
