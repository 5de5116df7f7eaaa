"""A run sized to the time it may take (`optim.time_budget_s`).

A machine lent for a few minutes, or a job slot with a wall-clock limit, gives a run a time, not a
number of steps, and the step rate of a model on a device is not known before it runs. Cutting the
run off when time is up leaves a model mid-schedule (its learning rate high, its weights unsettled);
so instead the first `PROBE_STEPS` steps are timed and the run's last step becomes the one that rate
reaches within the budget, with the learning-rate schedule sized to it: the model that comes out is
annealed. The size is checkpointed, so a resumed run keeps it.
"""

from __future__ import annotations

import torch
from accelerate.utils import broadcast_object_list
from transformers import get_scheduler

from neko.train.checkpoints import rewarmed
from neko.train.setup import Run, notice

PROBE_STEPS = 20
"""Steps timed before the run is sized. The first `WARM_UP_STEPS` of them are not counted: they
compile kernels and grow the allocator."""
WARM_UP_STEPS = 2
MARGIN = 0.95
"""The share of the remaining budget the remaining steps are planned to fill; the rest is for what a
step's timing does not see: dev evaluation, the final checkpoint and model."""


class TimeBudget:
    """Times a run's first steps and then sizes it; a resumed run takes its checkpointed size."""

    def __init__(self, run: Run, started: float) -> None:
        self.seconds = run.config.optim.time_budget_s
        self.started = started
        self.run = run
        if run.sized_steps is not None:
            resize(run, run.sized_steps)
        self.timer_start: tuple[int, float] | None = None

    @property
    def sized(self) -> bool:
        """Whether the run's length is settled: it has no budget, or the budget has sized it."""
        return self.seconds is None or self.run.sized_steps is not None

    def after_step(self, done: int, now: float) -> None:
        """Note the step `done` finished at `now`; at the probe's end, size the run."""
        if self.sized:
            return
        run = self.run
        if done == run.start + WARM_UP_STEPS:
            self.timer_start = (done, now)
        if done < run.start + PROBE_STEPS or self.timer_start is None:
            return
        first, then = self.timer_start
        seconds_per_step = (now - then) / (done - first)
        planned = run.total_steps
        steps = fitted_steps(self.seconds, now - self.started, seconds_per_step, done)
        resize(run, min(planned, agreed(steps)))
        run.sized_steps = run.total_steps
        notice(
            run.accelerator,
            f"time budget {self.seconds:g} s: {seconds_per_step:.3g} s per step over steps "
            f"{first + 1}-{done}; the run ends at step {run.total_steps} of {planned}, its "
            "learning-rate schedule fitted to it",
        )


def fitted_steps(budget: float, elapsed: float, seconds_per_step: float, done: int) -> int:
    """The run's last step: `done` plus the steps `MARGIN` of the remaining budget holds."""
    remaining = max(0.0, budget - elapsed) * MARGIN
    return done + int(remaining / max(seconds_per_step, 1e-9))


def agreed(steps: int) -> int:
    """The main process's count on every process, so all stop at the same step."""
    return broadcast_object_list([steps])[0]


def resize(run: Run, total_steps: int) -> None:
    """Give the run `total_steps` steps and the learning-rate schedule of that length. Before the
    warmup ends (the probe's case) the learning rate is the same for any length, so the change is
    seamless; the current rate is recomputed for the case where it is not (a resumed run)."""
    run.total_steps = total_steps
    scheduler = run.scheduler
    lambdas = schedule_lambdas(run, total_steps) * len(scheduler.optimizer.param_groups)
    if run.rewarmed_from is not None:
        lambdas = rewarmed(lambdas, run.rewarmed_from)
    scheduler.lr_lambdas = lambdas
    step = scheduler.last_epoch
    rates = [base * factor(step) for base, factor in zip(scheduler.base_lrs, lambdas, strict=True)]
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    scheduler._last_lr = rates


def schedule_lambdas(run: Run, total_steps: int) -> list:
    """The learning-rate factors of the config's schedule over `total_steps`, built on a throwaway
    optimizer so the run's own keeps its rates."""
    optim = run.config.optim
    throwaway = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return get_scheduler(optim.schedule, throwaway, optim.warmup_steps, total_steps).lr_lambdas
