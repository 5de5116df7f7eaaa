"""A run sized to a time budget: its length comes from the measured step rate, its schedule is sized to
that length (annealed at the end, not cut off), and a resumed run keeps the length it was given."""

from __future__ import annotations

import json
import math
import shutil
from types import SimpleNamespace

import pytest
from test_train_runs import config_file
from torch.optim.optimizer import register_optimizer_step_pre_hook
from train_fixtures import counted_optimizer_steps

import neko.train.loop
from neko.train.budget import MARGIN, PROBE_STEPS, WARM_UP_STEPS, fitted_steps
from neko.train.checkpoints import REWARM_STEPS
from neko.train.config import load_config
from neko.train.loop import train
from neko.train.metrics import read_metrics
from neko.train.park import park

PLANNED = 200
WARMUP = 30


@pytest.fixture
def clock(monkeypatch):
    """The trainer's clock made to read `seconds_per_step[0]` seconds per optimizer step taken."""
    seconds_per_step = [1.0]
    with counted_optimizer_steps() as taken:
        elapsed = [1000.0]  # a clock's zero is arbitrary
        last = [0]

        def perf_counter() -> float:
            elapsed[0] += (taken[0] - last[0]) * seconds_per_step[0]
            last[0] = taken[0]
            return elapsed[0]

        monkeypatch.setattr(neko.train.loop, "time", SimpleNamespace(perf_counter=perf_counter))
        yield seconds_per_step


def budget_config(tmp_path, seconds: float):
    return config_file(
        tmp_path,
        optim__epochs=500,
        optim__max_steps=PLANNED,
        optim__warmup_steps=WARMUP,
        optim__time_budget_s=seconds,
        run__save_every=10,
        run__log_every=1,
    )


def learning_rates(run_dir) -> dict[int, float]:
    return {m["step"]: m["lr"] for m in read_metrics(run_dir) if "lr" in m}


def test_the_steps_that_fit_the_remaining_budget_at_the_measured_rate_are_planned():
    assert fitted_steps(budget=50, elapsed=20, seconds_per_step=2.0, done=20) == 20 + int(30 * MARGIN / 2)
    assert fitted_steps(budget=50, elapsed=20, seconds_per_step=0.5, done=20) == 20 + int(30 * MARGIN * 2)
    assert fitted_steps(budget=50, elapsed=60, seconds_per_step=0.1, done=20) == 20  # over: stop now


def test_a_budgeted_run_ends_at_the_step_its_rate_reaches_with_its_schedule_annealed(tmp_path, clock, capsys):
    train(load_config(budget_config(tmp_path, seconds=50)))
    expected = PROBE_STEPS + int((50 - PROBE_STEPS) * MARGIN)  # a second a step: 20 s spent probing
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("time budget")]
    assert said == [  # once: the run is sized once
        f"time budget 50 s: 1 s per step over steps 3-20; the run ends at step {expected} of {PLANNED}, "
        "its learning-rate schedule fitted to it"
    ]
    rates = learning_rates(tmp_path / "run")
    assert max(rates) == expected < PLANNED
    assert rates[expected] == 0.0  # the cosine schedule ran to its end
    assert rates[10] == pytest.approx(3e-3 * 10 / WARMUP)  # the warmup is the same for any length
    state = json.loads(
        (tmp_path / "run" / "checkpoints" / f"step-{expected:08d}" / "trainer_state.json").read_text()
    )
    assert state["sized_steps"] == expected
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


def test_a_budget_never_lengthens_a_run_past_its_epochs_and_max_steps(tmp_path, clock):
    train(load_config(budget_config(tmp_path, seconds=10_000)))
    assert max(learning_rates(tmp_path / "run")) == PLANNED


def test_a_resumed_run_keeps_the_length_its_budget_gave_it(tmp_path, clock):
    config = load_config(budget_config(tmp_path, seconds=50))
    train(config, until=22)
    clock[0] = 10.0  # a slower machine now: a new probe (ending at step 42) would give it fewer steps
    with counted_optimizer_steps() as taken:
        train(config, resume=True)
    expected = PROBE_STEPS + int((50 - PROBE_STEPS) * MARGIN)
    assert taken[0] == expected - 22
    assert learning_rates(tmp_path / "run")[expected] == 0.0


def test_the_probe_ignores_the_first_steps_slowness(tmp_path, monkeypatch):
    """Steps 1-2 (kernel compilation) take 100 s each on this clock and the rest 1 s; the rate is
    measured from step `WARM_UP_STEPS` on, so the run is planned at 1 s a step."""
    with counted_optimizer_steps() as taken:
        clock = {"t": 0.0, "seen": 0}

        def perf_counter() -> float:
            while clock["seen"] < taken[0]:
                clock["seen"] += 1
                clock["t"] += 100.0 if clock["seen"] <= WARM_UP_STEPS else 1.0
            return clock["t"]

        monkeypatch.setattr(neko.train.loop, "time", SimpleNamespace(perf_counter=perf_counter))
        train(load_config(budget_config(tmp_path, seconds=300)))
    spent = 2 * 100 + (PROBE_STEPS - WARM_UP_STEPS)
    assert max(learning_rates(tmp_path / "run")) == PROBE_STEPS + int((300 - spent) * MARGIN)


def cosine(step: int, warmup: int, total: int) -> float:
    """transformers' cosine-with-warmup factor at `step`."""
    if step < warmup:
        return step / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def test_a_probe_that_ends_after_the_warmup_moves_the_learning_rate_to_the_new_schedule_at_once(
    tmp_path, clock
):
    used = []  # the rate each optimizer step takes
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, *_: used.append(optimizer.param_groups[0]["lr"])
    )
    try:
        train(load_config(budget_config(tmp_path, seconds=50), {"optim.warmup_steps": 5}))
    finally:
        hook.remove()
    expected = PROBE_STEPS + int((50 - PROBE_STEPS) * MARGIN)
    rates = learning_rates(tmp_path / "run")
    # the rate logged after step s is the one step s + 1 uses: planned over 200 steps until the probe
    # ends at step 20, over the fitted 48 from then on
    assert rates[PROBE_STEPS - 1] == pytest.approx(3e-3 * cosine(PROBE_STEPS - 1, 5, PLANNED))
    assert rates[PROBE_STEPS] == pytest.approx(3e-3 * cosine(PROBE_STEPS, 5, expected))
    assert used[PROBE_STEPS] == pytest.approx(rates[PROBE_STEPS])  # and step 21 takes it
    assert rates[expected] == 0.0


def test_a_parked_budgeted_run_continues_on_its_fitted_schedule_rewarmed(tmp_path, clock):
    config = load_config(budget_config(tmp_path, seconds=50))
    train(config, until=30)
    park(tmp_path / "run", tmp_path / "parked")
    shutil.rmtree(tmp_path / "run")
    shutil.copytree(tmp_path / "parked", tmp_path / "run")
    train(config, resume=True)
    expected = PROBE_STEPS + int((50 - PROBE_STEPS) * MARGIN)
    rates = learning_rates(tmp_path / "run")
    assert max(rates) == expected and rates[expected] == 0.0
    for step in (31, 35, 40):
        ramp = min(1.0, (step - 30 + 1) / REWARM_STEPS)
        assert rates[step] == pytest.approx(3e-3 * cosine(step, WARMUP, expected) * ramp)
